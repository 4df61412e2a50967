//! [`Session`]: a signed session cookie for the Worker, over
//! [`crate::session::SessionKey`].

use super::error::Error;
use crate::session::SessionKey;
use url::Url;
use worker::{Env, Request};

/// The Workers secret (or variable) holding the session key.
pub const SESSION_KEY_VAR: &str = "IDP_SESSION_KEY";

/// The cookie's name over plain http (local development on loopback).
pub const SESSION_COOKIE: &str = "idp_session";

/// The cookie's name over https. Browsers accept a `__Host-` cookie only
/// from the host itself, over https, with `Path=/` and no `Domain`, so a
/// sibling subdomain or a network attacker on plain http cannot plant one.
pub const HOST_SESSION_COOKIE: &str = "__Host-idp_session";

/// The session cookie's name for a request or page at `url`.
pub fn cookie_name(url: &Url) -> &'static str {
    if url.scheme() == "https" {
        HOST_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

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

    /// The signed-in user: the id in a valid, unexpired session cookie (see
    /// [`Session::user_id_from`]).
    pub fn user_id(&self, req: &Request) -> Option<String> {
        let url = req.url().ok()?;
        let cookies = req.headers().get("cookie").ok().flatten()?;
        self.user_id_from(&url, &cookies, super::now())
    }

    /// The signed-in user of a request to `url` with this `Cookie` header at
    /// `now`: the one session cookie of [`cookie_name`]`(url)`, when valid.
    /// A request that carries two is nobody's: one of them was planted
    /// (cookie tossing, with a narrower path, so the victim's login or
    /// callback would run as the attacker).
    ///
    /// ```
    /// use idp::session::SessionKey;
    /// use idp::workers::Session;
    /// let session = Session::new(SessionKey::new(&[7; 32]).unwrap());
    /// let url = url::Url::parse("https://app.example/oauth/login").unwrap();
    /// let alice = SessionKey::new(&[7; 32]).unwrap().sign("alice", 2_000);
    /// let mallory = SessionKey::new(&[7; 32]).unwrap().sign("mallory", 2_000);
    /// let one = format!("__Host-idp_session={alice}");
    /// assert_eq!(session.user_id_from(&url, &one, 1_000).as_deref(), Some("alice"));
    /// let two = format!("__Host-idp_session={mallory}; {one}");
    /// assert_eq!(session.user_id_from(&url, &two, 1_000), None);
    /// let plain = format!("idp_session={alice}");
    /// assert_eq!(session.user_id_from(&url, &plain, 1_000), None, "https reads only __Host-");
    /// ```
    pub fn user_id_from(&self, url: &Url, cookie_header: &str, now: u64) -> Option<String> {
        let name = cookie_name(url);
        let mut values = cookie_header
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v);
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        self.key.verify(value, now)
    }

    /// The `Set-Cookie` value that signs `user_id` in for `ttl_secs`:
    /// `HttpOnly`, `SameSite=Lax`, `Path=/`, and over https `Secure` with
    /// the `__Host-` name ([`HOST_SESSION_COOKIE`]).
    pub fn set_cookie(&self, request_url: &Url, user_id: &str, ttl_secs: u64) -> String {
        let token = self
            .key
            .sign(user_id, super::now().saturating_add(ttl_secs));
        cookie(request_url, &token, ttl_secs)
    }

    /// The `Set-Cookie` value that signs the person out.
    pub fn clear_cookie(&self, request_url: &Url) -> String {
        cookie(request_url, "", 0)
    }
}

fn cookie(url: &Url, value: &str, max_age: u64) -> String {
    format!(
        "{}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax{}",
        cookie_name(url),
        secure(url)
    )
}

fn secure(url: &Url) -> &'static str {
    if url.scheme() == "https" {
        "; Secure"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_host_only_over_https() {
        let https = Url::parse("https://app.example/signin").unwrap();
        let http = Url::parse("http://127.0.0.1:8787/signin").unwrap();
        assert_eq!(
            cookie(&https, "t", 60),
            "__Host-idp_session=t; Max-Age=60; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        assert_eq!(
            cookie(&http, "t", 60),
            "idp_session=t; Max-Age=60; Path=/; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn two_session_cookies_are_nobody() {
        let key = SessionKey::new(&[1; 32]).unwrap();
        let session = Session::new(key.clone());
        let url = Url::parse("http://127.0.0.1/oauth/callback/x").unwrap();
        let alice = format!("idp_session={}", key.sign("alice", 100));
        let mallory = format!("idp_session={}", key.sign("mallory", 100));
        assert_eq!(
            session.user_id_from(&url, &alice, 1).as_deref(),
            Some("alice")
        );
        for both in [format!("{mallory}; {alice}"), format!("{alice};{mallory}")] {
            assert_eq!(session.user_id_from(&url, &both, 1), None, "{both}");
        }
        let other = format!("theme=dark; {alice}; lang=en");
        assert_eq!(
            session.user_id_from(&url, &other, 1).as_deref(),
            Some("alice")
        );
        assert_eq!(session.user_id_from(&url, &alice, 100), None, "expired");
    }
}
