//! Reaching the `OAuthProviders` objects: their names, the internal call, and
//! [`ProvidersStub`], a user's object as the Worker calls it.

use super::error::{parse_url, Error};
use super::protocol::{
    Authorization, AuthorizationReply, Call, Envelope, Find, Op, ProviderView, RegistryOp,
    Rejected, RemoteError, Reply, UserOp, INTERNAL_URL,
};
use crate::error::ErrorKind;
use crate::matching::ResourceKey;
#[cfg(feature = "bench")]
use crate::store::Provider;
use worker::Env;

/// The name of the object that holds deployment-wide registrations.
pub(crate) const REGISTRY_NAME: &str = "idp:v1:registry";

/// The name of a user's object: a versioned prefix and the user id.
pub(crate) fn user_object_name(user_id: &str) -> String {
    format!("idp:v1:user:{user_id}")
}

/// The name of the object of the app's workload `name` (a name space apart
/// from users', so no user id reaches it).
pub(crate) fn app_object_name(name: &str) -> String {
    format!("idp:v1:app:{name}")
}

/// Sends one internal call to the object `name` of `binding` and reads its
/// reply. Calls to a user's object carry the binding so it can reach the
/// registry; calls to the registry do not.
async fn call_object<O: Op>(
    env: &Env,
    binding: &str,
    name: &str,
    timeout_ms: Option<u32>,
    op: O,
) -> std::result::Result<O::Reply, RemoteError> {
    let body = exchange(env, binding, name, timeout_ms, op.into()).await?;
    match serde_json::from_str::<Reply<O::Reply>>(&body) {
        Ok(Reply::Ok(v)) => Ok(v),
        Ok(Reply::Err(e)) => Err(e),
        Err(e) => Err(unreachable_object(binding, &e)),
    }
}

fn unreachable_object(binding: &str, e: &dyn std::fmt::Display) -> RemoteError {
    RemoteError::new(
        ErrorKind::Runtime,
        format!("could not reach the {binding} Durable Object: {e}"),
        true,
    )
}

/// The part of [`call_object`] that does not depend on the call's type (one
/// copy in the bundle, not one per call): sends the envelope, returns the
/// reply's text.
async fn exchange(
    env: &Env,
    binding: &str,
    name: &str,
    timeout_ms: Option<u32>,
    call: Call,
) -> std::result::Result<String, RemoteError> {
    let runtime = |e: worker::Error| unreachable_object(binding, &e);
    let envelope = Envelope {
        registry: (name != REGISTRY_NAME).then(|| binding.to_owned()),
        timeout_ms,
        call,
    };
    let stub = env
        .durable_object(binding)
        .and_then(|ns| ns.id_from_name(name).and_then(|id| id.get_stub()))
        .map_err(runtime)?;
    let body = serde_json::to_string(&envelope).map_err(|e| unreachable_object(binding, &e))?;
    let headers = worker::Headers::new();
    let body = wasm_bindgen::JsValue::from(body);
    let req = super::http::new_request(INTERNAL_URL, "POST", &headers, Some(&body), false)
        .map_err(runtime)?;
    let mut resp = stub.fetch_with_request(req).await.map_err(runtime)?;
    resp.text().await.map_err(runtime)
}

/// A call to the deployment's registry object under `binding`.
pub(crate) async fn call_registry<O: RegistryOp>(
    env: &Env,
    binding: &str,
    op: O,
) -> std::result::Result<O::Reply, RemoteError> {
    call_object(env, binding, REGISTRY_NAME, None, op).await
}

/// The user's `OAuthProviders` object, reached over its internal protocol.
#[derive(Debug, Clone)]
pub struct ProvidersStub {
    pub(crate) env: Env,
    binding: String,
    pub(crate) owner: String,
    pub(crate) timeout_ms: Option<u32>,
    object: String,
}

impl ProvidersStub {
    /// The stub for `user_id`'s object under `binding`.
    pub fn new(env: &Env, binding: &str, user_id: &str) -> Result<Self, Error> {
        Self::named(
            env,
            binding,
            user_id,
            user_id.to_owned(),
            user_object_name(user_id),
        )
    }

    /// The stub for the object of the app's own workload `name` (a job, a
    /// service): the credentials the app holds as itself, kept apart from
    /// every user's ([`crate::flow::connect_with`]).
    pub fn for_app(env: &Env, binding: &str, name: &str) -> Result<Self, Error> {
        Self::named(
            env,
            binding,
            name,
            format!("app:{name}"),
            app_object_name(name),
        )
    }

    fn named(
        env: &Env,
        binding: &str,
        id: &str,
        owner: String,
        object: String,
    ) -> Result<Self, Error> {
        if id.trim().is_empty() {
            return Err(Error::NoUser);
        }
        // A user id cannot name another user's account.
        crate::flow::accounts::check_user(id)?;
        Ok(Self {
            env: env.clone(),
            binding: binding.to_owned(),
            owner,
            timeout_ms: None,
            object,
        })
    }

    /// One call to the user's object, answered with its reply type.
    pub(crate) async fn call<O: UserOp>(&self, op: O) -> Result<O::Reply, Error> {
        Ok(call_object(&self.env, &self.binding, &self.object, self.timeout_ms, op).await?)
    }

    /// The `Authorization` for a URL from the longest-prefix provider
    /// (refreshed when within 5 minutes of expiry). `None` when no provider
    /// matches.
    /// The `Authorization` for `url`; with `narrower`, the answer names the
    /// owner's providers under its key (what the isolate cache needs).
    pub(crate) async fn authorization(
        &self,
        url: &str,
        narrower: bool,
    ) -> Result<Option<AuthorizationReply>, Error> {
        self.authorization_as(&self.owner, url, narrower).await
    }

    /// [`ProvidersStub::authorization`] as the store owner `owner` (the
    /// user, or one of their accounts).
    pub(crate) async fn authorization_as(
        &self,
        owner: &str,
        url: &str,
        narrower: bool,
    ) -> Result<Option<AuthorizationReply>, Error> {
        self.call(Authorization {
            owner: owner.to_owned(),
            url: parse_url(url)?,
            narrower,
        })
        .await
    }

    /// Reports that the resource rejected `access_token`; concurrent reports of
    /// the same token cause one refresh. Returns the header to retry with.
    pub(crate) async fn rejected(
        &self,
        owner: &str,
        key: &ResourceKey,
        access_token: &str,
        narrower: bool,
    ) -> Result<AuthorizationReply, Error> {
        self.call(Rejected {
            owner: owner.to_owned(),
            key: key.clone(),
            fingerprint: crate::token::fingerprint(access_token),
            narrower,
        })
        .await
    }

    /// The provider that serves `url` (longest matching prefix), if any.
    pub async fn find_provider(&self, url: &str) -> Result<Option<ProviderView>, Error> {
        self.call(Find {
            owner: self.owner.clone(),
            url: parse_url(url)?,
        })
        .await
    }

    /// How many internal calls the user's object has answered since it started
    /// (feature `bench`).
    #[cfg(feature = "bench")]
    pub async fn stats(&self) -> Result<super::protocol::CallStats, Error> {
        self.call(super::protocol::Stats {}).await
    }

    /// Stores providers directly, bypassing the flow (feature `bench`).
    #[cfg(feature = "bench")]
    pub async fn seed(&self, providers: Vec<Provider>) -> Result<usize, Error> {
        self.call(super::protocol::Seed {
            owner: self.owner.clone(),
            providers,
        })
        .await
    }
}
