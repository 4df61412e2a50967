//! Naming and describing a resource once it is connected.

use crate::secret::{AccessToken, DpopKey};

/// What was just connected.
#[derive(Debug)]
#[non_exhaustive]
pub struct Connected<'a> {
    /// The resource URL (the prefix the provider serves).
    pub resource_url: &'a str,
    /// The URL the person connected (under `resource_url`; for an MCP
    /// server, its endpoint).
    pub connected_url: &'a str,
    /// The new access token; `None` for a public resource.
    pub access_token: Option<&'a AccessToken>,
    /// The scope granted, if the server said.
    pub scope: Option<&'a str>,
    /// The Worker's environment, for calling other bindings.
    pub env: &'a worker::Env,
    /// The key the token is bound to (DPoP), if it is: a request that
    /// carries the token needs a proof ([`Connected::token_headers`]).
    pub dpop: Option<&'a DpopKey>,
    /// The account label the person gave when connecting, if any
    /// ([`crate::flow::accounts`]).
    pub account: Option<&'a str>,
}

impl Connected<'_> {
    /// The `sub` claim of the new access token when it is a JWT, read
    /// without checking its signature: an account label for a server that
    /// names the person in its tokens, never a proof of who they are.
    pub fn token_subject(&self) -> Option<String> {
        let payload = self.access_token?.secret().split('.').nth(1)?;
        let bytes = crate::encoding::base64url_decode(payload)?;
        let claims: serde_json::Value = crate::encoding::json_from_bytes(&bytes).ok()?;
        claims["sub"].as_str().map(str::to_owned)
    }

    /// The headers that present the new token on a request of `method` to
    /// `url`: `Authorization` (`Bearer`, or `DPoP` for a bound token) and,
    /// for a bound token, a fresh `DPoP` proof. Empty for a public resource.
    pub fn token_headers(&self, method: &str, url: &url::Url) -> Vec<(String, String)> {
        let Some(token) = self.access_token else {
            return Vec::new();
        };
        let Some(key) = self.dpop else {
            return vec![("authorization".into(), format!("Bearer {}", token.secret()))];
        };
        let mut out = vec![("authorization".into(), format!("DPoP {}", token.secret()))];
        let mut jti = [0u8; 16];
        let now = super::http::now();
        let nonce = super::http::nonces().get(url, now);
        let p = crate::dpop::Proof {
            method,
            url,
            iat: now,
            nonce: nonce.as_deref(),
            access_token: Some(token.secret()),
        };
        let proof = super::http::random_bytes(&mut jti)
            .ok()
            .and_then(|()| crate::dpop::proof(key, &p, jti));
        if let Some(proof) = proof {
            out.push((crate::dpop::HEADER.into(), proof));
        }
        out
    }
}

/// The display name and metadata stored with a provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderInfo {
    /// Display name.
    pub name: String,
    /// App-defined JSON metadata, returned in provider views.
    pub metadata: serde_json::Value,
    /// The account this connection is (a login, an email address), when
    /// the app can tell and the person named none when connecting (a label
    /// they gave wins): a call with [`AuthedFetch::account`](super::AuthedFetch::account)
    /// finds the connection by it.
    pub account: Option<String>,
}

impl ProviderInfo {
    /// The default: the resource's host as the name, no metadata.
    pub fn default_for(resource_url: &str) -> Self {
        let name = url::Url::parse(resource_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| resource_url.to_owned());
        ProviderInfo {
            name,
            metadata: serde_json::Value::Null,
            account: None,
        }
    }
}

/// Called in the user's Durable Object after a resource is connected (after a
/// successful callback, and for public resources), to name it and attach
/// metadata. The tokens are stored before this runs: an error here is shown
/// to the person and loses nothing.
///
/// ```
/// use idp::workers::{Connected, OnAuthSuccess, ProviderInfo};
///
/// struct NameByPath;
///
/// impl OnAuthSuccess for NameByPath {
///     async fn on_auth_success(&self, c: Connected<'_>) -> Result<ProviderInfo, String> {
///         Ok(ProviderInfo {
///             name: format!("API at {}", c.resource_url),
///             metadata: serde_json::json!({ "connected_with_token": c.access_token.is_some() }),
///             // Named after the person the token is for, when it says.
///             account: c.token_subject(),
///         })
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not implement `idp::workers::OnAuthSuccess`",
    note = "add `impl idp::workers::OnAuthSuccess for {Self} {{}}` to keep the default (host as name, no metadata), or write `on_auth_success` to name providers yourself"
)]
pub trait OnAuthSuccess: 'static {
    /// Returns the name and metadata to store. The default uses the host as
    /// the name and no metadata.
    #[allow(async_fn_in_trait)]
    async fn on_auth_success(&self, connected: Connected<'_>) -> Result<ProviderInfo, String> {
        Ok(ProviderInfo::default_for(connected.resource_url))
    }

    /// Hears a lifecycle event ([`super::Event`]), in the user's Durable
    /// Object, after it is in the audit log: email the person, enqueue work.
    /// The default does nothing.
    #[allow(async_fn_in_trait)]
    async fn on_event(&self, event: &super::Event, env: &worker::Env) {
        let _ = (event, env);
    }
}

/// The default hook.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultHook;

impl OnAuthSuccess for DefaultHook {}
