//! The `OAuthProviders` Durable Object: one per user, owning that user's
//! providers, pending flows and tokens in SQLite; one more, the registry,
//! holding the deployment's client registrations and server metadata.
//!
//! - [`sql_store`]: the engine's SQL store on the object's SQLite (the schema
//!   and its migrations are the engine's, [`crate::store::sql`]).
//! - [`dispatch`]: the answer to each internal call.

mod device;
mod dispatch;
mod login;
mod providers;
mod registry;
mod upkeep;
pub(crate) use dispatch::{reply, Answer, Cx};
mod lifecycle;
mod sql_store;
pub(crate) use sql_store::Role;
pub use sql_store::REGISTRY_WRITES_PER_HOUR;

use super::hook::{Connected, OnAuthSuccess, ProviderInfo};
use super::http::{now, random_bytes, WorkerHttp};
use super::protocol::{Envelope, ProviderView, RefreshOutcome, RefreshStatus, RemoteError, Reply};
use crate::error::Error;
use crate::flow::{Refresher, Refused};
use crate::matching::ResourceKey;
use crate::store::seal::{Keyring, Sealing};
use crate::store::update::{update_provider, Change};
use crate::store::{Provider, Store, UserStore};
use sql_store::ObjectStore;
use worker::{Env, Request, Response, State};

/// The Durable Object's behaviour. Declare the class in your Worker (the
/// `#[idp_worker]` macro does this for you) and forward to it:
///
/// ```ignore
/// #[durable_object]
/// pub struct OAuthProviders(idp::workers::ProvidersObject<MyHook>);
///
/// impl DurableObject for OAuthProviders {
///     fn new(state: State, env: Env) -> Self {
///         Self(idp::workers::ProvidersObject::new(state, env, MyHook))
///     }
///     async fn fetch(&self, req: Request) -> worker::Result<Response> {
///         self.0.fetch(req).await
///     }
///     async fn alarm(&self) -> worker::Result<Response> {
///         self.0.alarm().await?;
///         Response::empty()
///     }
/// }
/// ```
pub struct ProvidersObject<H: OnAuthSuccess> {
    state: State,
    env: Env,
    hook: H,
    schema: std::result::Result<i64, String>,
    /// Refresh single-flight; its lock is held by every write of a provider
    /// row that follows an `.await` on the network (refresh, login, callback,
    /// the hook's write-back), so a removal cannot be undone by a refresh
    /// finishing later, and a spent refresh token never overwrites a rotated
    /// one.
    refresher: Refresher<tokio::sync::Mutex<()>>,
    /// How secrets are kept at rest (from `IDP_ENCRYPTION_KEYS`).
    sealing: Sealing,
    /// Whether this instance stored what the alarm needs to know.
    remembered: std::cell::Cell<bool>,
    /// The registry's answer to `KnownIssuers` (with the limit asked), kept
    /// until the next `ServerPut`: the client ID metadata document, fetched
    /// by anyone without a session, does not scan the registry each time.
    document: std::cell::RefCell<Option<(usize, Vec<crate::registration::DocumentIssuer>)>>,
    #[cfg(feature = "bench")]
    calls: std::cell::Cell<u64>,
}

/// The variable (a Workers secret in production) holding the encryption keys.
pub const ENCRYPTION_KEYS_VAR: &str = "IDP_ENCRYPTION_KEYS";

/// How secrets are kept, from the Worker's variables: sealed with
/// `IDP_ENCRYPTION_KEYS`; without it, in plain text only in local
/// development (`IDP_ALLOW_INSECURE_LOOPBACK=true`, with a warning),
/// otherwise refused with an error that says how to set a key.
fn sealing_from_env(env: &Env) -> Sealing {
    let keys = env
        .secret(ENCRYPTION_KEYS_VAR)
        .or_else(|_| env.var(ENCRYPTION_KEYS_VAR))
        .map(|v| v.to_string());
    match keys {
        Ok(spec) => match Keyring::parse(&spec) {
            Ok(k) => Sealing::keyring(k, random_bytes),
            Err(e) => {
                worker::console_error!("idp: {e}; tokens will not be stored");
                Sealing::refuse()
            }
        },
        Err(_) => {
            let dev = env
                .var("IDP_ALLOW_INSECURE_LOOPBACK")
                .is_ok_and(|v| v.to_string().trim().eq_ignore_ascii_case("true"));
            if dev {
                worker::console_warn!(
                    "idp: {ENCRYPTION_KEYS_VAR} is not set: tokens are stored in plain text (allowed only in local development)"
                );
                Sealing::plaintext()
            } else {
                Sealing::refuse()
            }
        }
    }
}

impl<H: OnAuthSuccess> std::fmt::Debug for ProvidersObject<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvidersObject")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// An error as the object reports it.
fn remote(e: Error) -> RemoteError {
    e.report()
}

impl<H: OnAuthSuccess> ProvidersObject<H> {
    /// Opens the object: applies pending schema migrations.
    pub fn new(state: State, env: Env, hook: H) -> Self {
        let schema = crate::store::sql::migrate(&&state.storage().sql());
        let sealing = sealing_from_env(&env);
        Self {
            state,
            env,
            hook,
            schema,
            refresher: Refresher::default(),
            sealing,
            remembered: std::cell::Cell::new(false),
            document: std::cell::RefCell::new(None),
            #[cfg(feature = "bench")]
            calls: std::cell::Cell::new(0),
        }
    }

    /// Answers one internal call.
    pub async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        #[cfg(feature = "bench")]
        self.calls.set(self.calls.get() + 1);
        // Read as text and decoded by serde_json: `Request::json` decodes
        // through serde-wasm-bindgen, a second decoder for every call type.
        let envelope = match req.text().await {
            Ok(text) => serde_json::from_str::<Envelope>(&text).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let reply = match (&self.schema, envelope) {
            (Err(e), _) => error_reply(&Error::storage(
                crate::error::StorageCause::Backend,
                format!("schema migration failed: {e}"),
            )),
            (_, Err(e)) => {
                let r = RemoteError::new(
                    crate::error::ErrorKind::BadCall,
                    format!("unreadable internal call: {e}"),
                    false,
                );
                serde_json::to_string(&Reply::<()>::Err(r)).unwrap_or_default()
            }
            (
                Ok(_),
                Ok(Envelope {
                    registry,
                    timeout_ms,
                    call,
                }),
            ) => {
                if !self.remembered.get() {
                    // For the alarm, which runs without a call.
                    if let Some(b) = &registry {
                        self.remember("registry", b);
                    }
                    if let Some(ms) = timeout_ms {
                        self.remember("timeout_ms", &ms.to_string());
                    }
                    self.remembered.set(true);
                }
                let http = timeout_ms.map_or_else(WorkerHttp::default, WorkerHttp::with_timeout_ms);
                let reply = self.handle(registry.as_deref(), &http, call).await;
                self.record_refreshes().await;
                reply
            }
        };
        let mut resp = Response::ok(reply)?;
        resp.headers_mut().set("content-type", "application/json")?;
        Ok(resp)
    }

    /// The store as `role` sees it.
    fn store<'a>(&'a self, role: Role<'a>) -> ObjectStore<'a> {
        ObjectStore {
            sql: crate::store::sql::SqlStore::with_sealing(
                self.state.storage().sql(),
                self.sealing.clone(),
            ),
            env: &self.env,
            role,
        }
    }

    /// The store of this object's own tables (registry calls answered
    /// locally).
    fn local(&self) -> ObjectStore<'_> {
        self.store(Role::Registry)
    }

    /// The reply for a resource a login found public: named by the hook,
    /// as the user's whatever account `owner` named.
    async fn public(
        &self,
        store: &ObjectStore<'_>,
        owner: &str,
        p: Provider,
    ) -> super::protocol::CallbackReply {
        let user = crate::flow::accounts::split(owner).0;
        let (provider, hook_error) = self.named(store, user, p).await;
        super::protocol::CallbackReply {
            provider,
            hook_error,
        }
    }

    async fn named(
        &self,
        store: &ObjectStore<'_>,
        owner: &str,
        mut provider: Provider,
    ) -> (ProviderView, Option<String>) {
        let tokens = provider.tokens();
        let info = self
            .hook
            .on_auth_success(Connected {
                resource_url: provider.key.as_str(),
                connected_url: &provider.resource_url,
                access_token: tokens.map(|t| &t.access_token),
                scope: tokens.and_then(|t| t.scope.as_deref()),
                env: &self.env,
                dpop: tokens.and_then(|t| t.dpop.as_ref()),
                account: provider.account.as_deref(),
            })
            .await;
        let hook_error = match info {
            Ok(ProviderInfo {
                name,
                metadata,
                account,
            }) => {
                // The app's label names a connection the person did not.
                let account = account
                    .filter(|_| provider.account.is_none())
                    .filter(|l| crate::flow::accounts::check_label(l).is_ok());
                provider.name = name.clone();
                provider.metadata = metadata.clone();
                if account.is_some() {
                    provider.account.clone_from(&account);
                }
                // Only name and metadata, on the row as it is now (a refresh
                // or a removal may have happened while the hook ran).
                let _writes = self.refresher.lock().await;
                rename(store, owner, &provider.key, name, metadata, account)
                    .await
                    .err()
                    .map(|e| e.to_string())
            }
            Err(e) => Some(format!(
                "the app could not finish setting up this connection: {e}"
            )),
        };
        (ProviderView::of(&provider), hook_error)
    }

    async fn refresh_one(
        &self,
        http: &WorkerHttp,
        store: &ObjectStore<'_>,
        owner: &str,
        url: String,
        force: bool,
    ) -> RefreshOutcome {
        let account = crate::flow::accounts::split(owner).1.map(str::to_owned);
        let outcome = |status: RefreshStatus, expires_at, error| RefreshOutcome {
            account: account.clone(),
            url: url.clone(),
            status,
            expires_at,
            error,
        };
        let key = match ResourceKey::parse(&url) {
            Ok(k) => k,
            Err(e) => return outcome(RefreshStatus::Error, None, Some(remote(e))),
        };
        let p = match store.provider_for(owner, &key).await {
            Ok(Some(p)) => p,
            Ok(None) => return outcome(RefreshStatus::NotConnected, None, None),
            Err(e) => return outcome(RefreshStatus::Error, None, Some(remote(e))),
        };
        if p.is_public() {
            return outcome(RefreshStatus::Public, None, None);
        }
        let before = p.tokens().map(|t| t.access_token.clone());
        // Now: as if the resource had refused the token held. The answer is
        // always another token (refreshed here, or by someone meanwhile).
        if let (Some(token), true) = (&before, force) {
            let refused = Refused::Token(token.secret());
            return match self
                .refresher
                .rejected(http, store, owner, &p.key, refused, now())
                .await
            {
                Ok(a) => outcome(RefreshStatus::Refreshed, a.expires_at, None),
                Err(e) => outcome(RefreshStatus::Error, None, Some(remote(e))),
            };
        }
        match self
            .refresher
            .refresh_expiring(http, store, owner, &p.key, now())
            .await
        {
            Ok(t) => {
                let after = t.as_ref().map(|t| t.access_token.clone());
                let expires_at = t.and_then(|t| t.expires_at);
                outcome(
                    if after != before {
                        RefreshStatus::Refreshed
                    } else {
                        RefreshStatus::Fresh
                    },
                    expires_at,
                    None,
                )
            }
            Err(e) => outcome(RefreshStatus::Error, None, Some(remote(e))),
        }
    }
}

/// Sets a provider's name and metadata on the row as it is now, by
/// compare-and-swap (a refresh or a removal may have happened while the hook
/// ran; a removed provider stays removed).
async fn rename(
    store: &impl Store,
    owner: &str,
    key: &ResourceKey,
    name: String,
    metadata: serde_json::Value,
    account: Option<String>,
) -> Result<(), Error> {
    let decide = |now: Option<&crate::store::Provider>| match now {
        // A removed provider stays removed.
        None => Change::Keep,
        Some(current) => {
            let mut next = current.clone();
            next.name.clone_from(&name);
            next.metadata.clone_from(&metadata);
            if next.account.is_none() {
                next.account.clone_from(&account);
            }
            Change::Write(Box::new(next))
        }
    };
    update_provider(store, owner, key, "it was named", decide).await?;
    Ok(())
}

fn error_reply(e: &Error) -> String {
    serde_json::to_string(&Reply::<()>::Err(e.report())).unwrap_or_default()
}
