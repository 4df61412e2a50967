//! [`Session`]: a signed session cookie for the Worker, over
//! [`crate::session::SessionKey`].

use super::error::Error;
use crate::session::SessionKey;
use url::Url;
use worker::{Env, Request};

/// The Workers secret (or variable) holding the session key.
pub const SESSION_KEY_VAR: &str = "IDP_SESSION_KEY";

/// The cookie's name.
pub const SESSION_COOKIE: &str = "idp_session";

/// A signed session cookie: [`Session::user_id`] reads the signed-in user from
/// a request, [`Session::set_cookie`] gives the `Set-Cookie` value for your
/// sign-in route. The key comes from the `IDP_SESSION_KEY` secret
/// (`wrangler secret put IDP_SESSION_KEY`, 32 bytes or more).
///
/// ```no_run
/// use idp::worker::{Env, Request};
/// use idp::workers::Session;
///
/// fn user_id(req: &Request, env: &Env) -> Option<String> {
///     Session::from_env(env).ok()?.user_id(req)
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Session {
    key: SessionKey,
}

impl Session {
    /// A session over `key`.
    pub fn new(key: SessionKey) -> Self {
        Self { key }
    }

    /// The key from the `IDP_SESSION_KEY` secret (or variable).
    pub fn from_env(env: &Env) -> Result<Self, Error> {
        let secret = env
            .secret(SESSION_KEY_VAR)
            .or_else(|_| env.var(SESSION_KEY_VAR))
            .map_err(|_| {
                Error::Runtime(format!(
                    "no {SESSION_KEY_VAR}: set it with `wrangler secret put {SESSION_KEY_VAR}` (32 bytes or more)"
                ))
            })?
            .to_string();
        let key = SessionKey::new(secret.as_bytes()).map_err(|e| Error::Runtime(e.to_string()))?;
        Ok(Self::new(key))
    }

    /// The signed-in user: the id in a valid, unexpired session cookie.
    pub fn user_id(&self, req: &Request) -> Option<String> {
        let cookies = req.headers().get("cookie").ok().flatten()?;
        cookies
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .filter(|(name, _)| *name == SESSION_COOKIE)
            .find_map(|(_, value)| self.key.verify(value, super::now()))
    }

    /// The `Set-Cookie` value that signs `user_id` in for `ttl_secs`:
    /// `HttpOnly`, `SameSite=Lax`, `Path=/`, and `Secure` when `request_url`
    /// is https.
    pub fn set_cookie(&self, request_url: &Url, user_id: &str, ttl_secs: u64) -> String {
        let token = self
            .key
            .sign(user_id, super::now().saturating_add(ttl_secs));
        format!(
            "{SESSION_COOKIE}={token}; Max-Age={ttl_secs}; Path=/; HttpOnly; SameSite=Lax{}",
            secure(request_url)
        )
    }

    /// The `Set-Cookie` value that signs the person out.
    pub fn clear_cookie(&self, request_url: &Url) -> String {
        format!(
            "{SESSION_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax{}",
            secure(request_url)
        )
    }
}

fn secure(url: &Url) -> &'static str {
    if url.scheme() == "https" {
        "; Secure"
    } else {
        ""
    }
}
