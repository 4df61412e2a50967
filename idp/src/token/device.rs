//! The device authorization grant (RFC 8628): a login with no browser
//! callback. The app asks the server's device authorization endpoint for a
//! code pair, shows the person the user code and where to enter it, and polls
//! the token endpoint with the device code until the person has approved
//! (or declined, or the code expired).
//!
//! ```
//! use idp::token::device::{parse_device_authorization, DeviceAnswer};
//! use idp::http::HttpResponse;
//! let url = url::Url::parse("https://as.example/device/auth").unwrap();
//! let answer = HttpResponse::new(200, r#"{"device_code": "dc", "user_code": "WDJB-MJHT",
//!     "verification_uri": "https://as.example/device", "expires_in": 1800}"#);
//! let DeviceAnswer { user_code, interval, .. } = parse_device_authorization(&url, &answer)?;
//! assert_eq!((user_code.as_str(), interval), ("WDJB-MJHT", 5));
//! # Ok::<(), idp::error::Error>(())
//! ```

use super::{form_request, parse_bound, send_signed, TokenRules, TokenSet};
use crate::client::{Client, DEVICE_CODE_GRANT};
use crate::discovery::read_json;
use crate::error::{Error, OAuthErrorCode, Result};
use crate::http::{HttpClient, HttpRequest, HttpResponse};
use crate::secret::{DeviceCode, DpopKey};
use serde::{Deserialize, Serialize};
use url::Url;

/// The polling interval when the server names none (RFC 8628 §3.2).
pub const DEFAULT_INTERVAL_SECS: u64 = 5;
/// What `slow_down` adds to the interval (RFC 8628 §3.5).
pub const SLOW_DOWN_SECS: u64 = 5;
/// The longest interval idp waits between polls, whatever the server says.
pub const MAX_INTERVAL_SECS: u64 = 300;
/// The shortest interval idp waits between polls, whatever the server says
/// (RFC 8628's default): a server answering `interval: 1` gets no more.
pub const MIN_INTERVAL_SECS: u64 = 5;
/// The longest a device login waits for its person, whatever the server's
/// `expires_in` says: 30 minutes, so a server that answers
/// `authorization_pending` forever gets at most
/// `MAX_EXPIRES_SECS / MIN_INTERVAL_SECS` polls.
pub const MAX_EXPIRES_SECS: u64 = 1800;
/// The longest `user_code` idp shows, in characters.
pub const MAX_USER_CODE_LEN: usize = 64;

/// The device authorization request (RFC 8628 §3.1): the client, the scope
/// and the resource (RFC 8707) the grant is for.
pub fn device_authorization_request(
    endpoint: &Url,
    client: &Client,
    scope: Option<&str>,
    resource: Option<&str>,
) -> HttpRequest {
    let mut pairs = Vec::new();
    if let Some(s) = scope {
        pairs.push(("scope", s.to_owned()));
    }
    if let Some(r) = resource {
        pairs.push(("resource", r.to_owned()));
    }
    form_request(endpoint, client, pairs)
}

/// A device authorization answer (RFC 8628 §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAnswer {
    /// What the app polls with; never shown.
    pub device_code: DeviceCode,
    /// What the person enters.
    pub user_code: String,
    /// Where the person enters it.
    pub verification_uri: Url,
    /// The same with the code filled in, when the server gives one.
    pub verification_uri_complete: Option<Url>,
    /// Seconds the codes stay valid (at most [`MAX_EXPIRES_SECS`]).
    pub expires_in: u64,
    /// Seconds between polls (at least [`MIN_INTERVAL_SECS`], at most
    /// [`MAX_INTERVAL_SECS`]).
    pub interval: u64,
}

#[derive(Deserialize)]
struct RawAnswer {
    device_code: String,
    user_code: String,
    // Google names it `verification_url`.
    #[serde(alias = "verification_url")]
    verification_uri: String,
    #[serde(default)]
    verification_uri_complete: Option<String>,
    expires_in: serde_json::Value,
    #[serde(default)]
    interval: Option<serde_json::Value>,
}

/// A number of seconds, as a number or a numeric string.
fn seconds(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A page the person is sent to: https, or http on loopback (a local
/// server); never a `javascript:` or other scheme.
fn person_url(raw: &str) -> std::result::Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if crate::policy::is_loopback(&url) => Ok(url),
        other => Err(format!("{raw:?} is {other}, not https")),
    }
}

/// Reads a device authorization answer: both codes, an https verification
/// URI, the lifetime and the interval.
pub fn parse_device_authorization(url: &Url, resp: &HttpResponse) -> Result<DeviceAnswer> {
    let invalid = |reason: String| Error::InvalidResponse {
        url: url.clone(),
        reason,
    };
    let oauth = || {
        read_json::<crate::error::OAuthError>(resp)
            .ok()
            .filter(|e| !e.error.is_empty())
    };
    if !resp.is_success() || oauth().is_some() {
        return Err(Error::Token {
            url: url.clone(),
            status: resp.status,
            oauth: oauth().map(Box::new),
        });
    }
    let raw: RawAnswer = read_json(resp).map_err(invalid)?;
    if raw.device_code.is_empty() || raw.user_code.is_empty() {
        return Err(invalid("an empty device_code or user_code".into()));
    }
    // Shown to the person as it is: short, and printable ASCII only (no
    // control, bidirectional or look-alike characters).
    if raw.user_code.chars().count() > MAX_USER_CODE_LEN
        || !raw
            .user_code
            .chars()
            .all(|c| c.is_ascii_graphic() || c == ' ')
    {
        return Err(invalid(format!(
            "a user_code of more than {MAX_USER_CODE_LEN} characters, or with characters other than printable ASCII"
        )));
    }
    let expires_in = seconds(&raw.expires_in)
        .filter(|s| *s > 0)
        .ok_or_else(|| invalid("no usable expires_in".into()))?
        .min(MAX_EXPIRES_SECS);
    let interval = raw
        .interval
        .as_ref()
        .and_then(seconds)
        .unwrap_or(DEFAULT_INTERVAL_SECS)
        .clamp(MIN_INTERVAL_SECS, MAX_INTERVAL_SECS);
    Ok(DeviceAnswer {
        device_code: DeviceCode::new(raw.device_code),
        user_code: raw.user_code,
        verification_uri: person_url(&raw.verification_uri)
            .map_err(|e| invalid(format!("verification_uri: {e}")))?,
        verification_uri_complete: raw
            .verification_uri_complete
            .as_deref()
            .map(person_url)
            .transpose()
            .map_err(|e| invalid(format!("verification_uri_complete: {e}")))?,
        expires_in,
        interval,
    })
}

/// The device access token request (RFC 8628 §3.4).
pub fn device_token_request(
    token_endpoint: &Url,
    client: &Client,
    device_code: &DeviceCode,
    resource: Option<&str>,
) -> HttpRequest {
    let mut pairs = vec![
        ("grant_type", DEVICE_CODE_GRANT.to_owned()),
        ("device_code", device_code.secret().to_owned()),
    ];
    if let Some(r) = resource {
        pairs.push(("resource", r.to_owned()));
    }
    form_request(token_endpoint, client, pairs)
}

/// What one poll of the token endpoint said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    /// The person approved: the grant's tokens.
    Granted(TokenSet),
    /// Not yet (`authorization_pending`): poll again after the interval.
    Pending,
    /// Poll less often (`slow_down`): the interval grows by
    /// [`SLOW_DOWN_SECS`].
    SlowDown,
}

/// What a poll needs: where, as whom, for which resource, under which
/// token rules, and the key the tokens are bound to (DPoP), if any.
#[derive(Debug, Clone, Copy)]
pub struct DeviceGrant<'a> {
    /// The authorization server that issued the device code (the audience
    /// of a `private_key_jwt` client's assertion).
    pub issuer: &'a str,
    /// The token endpoint.
    pub token_endpoint: &'a Url,
    /// The client the device code was issued to (a `private_key_jwt`
    /// client signs for each request it sends).
    pub client: &'a Client,
    /// The device code.
    pub device_code: &'a DeviceCode,
    /// The resource (RFC 8707), where the rules send it.
    pub resource: Option<&'a str>,
    /// The server's token rules.
    pub rules: &'a TokenRules,
    /// The grant's DPoP key, if bound.
    pub dpop: Option<&'a DpopKey>,
}

/// Polls once: tokens, or wait, or slow down. `expired_token`,
/// `access_denied` and every other refusal are the [`Error::Token`] the
/// server sent ([`OAuthErrorCode::ExpiredToken`], [`OAuthErrorCode::AccessDenied`]).
pub async fn poll(http: &impl HttpClient, grant: &DeviceGrant<'_>, now: u64) -> Result<Poll> {
    let build = |client: &Client| {
        device_token_request(
            grant.token_endpoint,
            client,
            grant.device_code,
            grant.resource,
        )
    };
    let (url, resp) =
        send_signed(http, grant.client, grant.issuer, &build, grant.dpop, now).await?;
    match parse_bound(&url, &resp, now, None, grant.rules, grant.dpop) {
        Ok(tokens) => Ok(Poll::Granted(tokens)),
        Err(Error::Token {
            oauth: Some(ref o), ..
        }) if o.code() == OAuthErrorCode::AuthorizationPending => Ok(Poll::Pending),
        Err(Error::Token {
            oauth: Some(ref o), ..
        }) if o.code() == OAuthErrorCode::SlowDown => Ok(Poll::SlowDown),
        Err(e) => Err(e),
    }
}

/// A device login waiting for its person, as a pending flow keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceWait {
    /// The device code (sealed in the store).
    pub device_code: DeviceCode,
    /// What the person enters.
    pub user_code: String,
    /// Where the person enters it.
    pub verification_uri: Url,
    /// The same with the code filled in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_uri_complete: Option<Url>,
    /// When the codes expire (seconds since the epoch).
    pub expires_at: u64,
    /// Seconds between polls, grown by each `slow_down`.
    pub interval: u64,
    /// The earliest moment of the next poll.
    pub poll_at: u64,
}

impl DeviceWait {
    /// The wait that begins at `now` with a server's answer.
    pub fn new(answer: DeviceAnswer, now: u64) -> Self {
        Self {
            device_code: answer.device_code,
            user_code: answer.user_code,
            verification_uri: answer.verification_uri,
            verification_uri_complete: answer.verification_uri_complete,
            expires_at: now.saturating_add(answer.expires_in),
            interval: answer.interval,
            poll_at: now.saturating_add(answer.interval),
        }
    }

    /// After a poll at `now` that said `slow` (or only "pending"): the next
    /// poll waits the interval, grown by [`SLOW_DOWN_SECS`] for `slow_down`.
    pub fn waited(&mut self, now: u64, slow: bool) {
        if slow {
            self.interval = (self.interval + SLOW_DOWN_SECS).min(MAX_INTERVAL_SECS);
        }
        self.poll_at = now.saturating_add(self.interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, Script};

    const TOKEN: &str = "https://as.example/token";

    fn answer(body: serde_json::Value) -> Result<DeviceAnswer> {
        let url = Url::parse("https://as.example/device/auth").unwrap();
        parse_device_authorization(&url, &HttpResponse::new(200, body.to_string()))
    }

    #[test]
    fn an_answer_is_read_with_its_defaults_and_bounds() {
        let a = answer(
            serde_json::json!({"device_code": "dc-SECRET", "user_code": "ABCD",
            "verification_url": "https://as.example/device", "expires_in": "600", "interval": 0}),
        )
        .unwrap();
        assert_eq!(a.interval, 5, "an interval of 0 would hammer the server");
        assert_eq!(a.expires_in, 600);
        let endless = answer(
            serde_json::json!({"device_code": "d", "user_code": "ABCD-EFGH",
            "verification_uri": "https://as.example/device", "expires_in": 1_000_000_000_000_000u64, "interval": 1}),
        )
        .unwrap();
        assert_eq!((endless.expires_in, endless.interval), (1800, 5));
        assert_eq!(a.verification_uri.as_str(), "https://as.example/device");
        assert!(!format!("{a:?}").contains("dc-SECRET"));
        for bad in [
            serde_json::json!({"device_code": "d", "user_code": "u", "verification_uri": "javascript:alert(1)", "expires_in": 60}),
            serde_json::json!({"device_code": "d", "user_code": "u", "verification_uri": "http://as.example/device", "expires_in": 60}),
            serde_json::json!({"device_code": "", "user_code": "u", "verification_uri": "https://as.example/d", "expires_in": 60}),
            serde_json::json!({"device_code": "d", "user_code": "u", "verification_uri": "https://as.example/d"}),
            serde_json::json!({"error": "unauthorized_client"}),
            serde_json::json!({"device_code": "d", "user_code": "A".repeat(65), "verification_uri": "https://as.example/d", "expires_in": 60}),
            serde_json::json!({"device_code": "d", "user_code": "AB\u{202e}CD", "verification_uri": "https://as.example/d", "expires_in": 60}),
            serde_json::json!({"device_code": "d", "user_code": "AB\nCD", "verification_uri": "https://as.example/d", "expires_in": 60}),
        ] {
            assert!(answer(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_poll_tells_pending_slow_down_tokens_and_refusals_apart() {
        let client = Client::public("c");
        let code = DeviceCode::new("dc");
        let endpoint = Url::parse(TOKEN).unwrap();
        let grant = DeviceGrant {
            issuer: "https://as.example",
            token_endpoint: &endpoint,
            client: &client,
            device_code: &code,
            resource: Some("https://api.example"),
            rules: &TokenRules::default(),
            dpop: None,
        };
        let poll_with = |status: u16, body: serde_json::Value| {
            let script = Script::new().json(TOKEN, status, body);
            let got = block_on(poll(&script, &grant, 100));
            let sent = String::from_utf8(script.requests()[0].body.clone()).unwrap();
            assert!(
                sent.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code")
                    && sent.contains("device_code=dc")
                    && sent.contains("resource="),
                "{sent}"
            );
            got
        };
        let err = |e: &str| serde_json::json!({ "error": e });
        assert_eq!(
            poll_with(400, err("authorization_pending")).unwrap(),
            Poll::Pending
        );
        assert_eq!(poll_with(400, err("slow_down")).unwrap(), Poll::SlowDown);
        // GitHub answers its errors with HTTP 200.
        assert_eq!(
            poll_with(200, err("authorization_pending")).unwrap(),
            Poll::Pending
        );
        for (e, code) in [
            ("expired_token", OAuthErrorCode::ExpiredToken),
            ("access_denied", OAuthErrorCode::AccessDenied),
        ] {
            let got = poll_with(400, err(e)).unwrap_err();
            assert!(
                matches!(&got, Error::Token { oauth: Some(o), .. } if o.code() == code),
                "{got}"
            );
        }
        let tokens = poll_with(
            200,
            serde_json::json!({"access_token": "at", "token_type": "Bearer", "expires_in": 60}),
        )
        .unwrap();
        assert!(matches!(tokens, Poll::Granted(t) if t.expires_at == Some(160)));
    }

    #[test]
    fn slow_down_grows_the_interval_up_to_its_cap() {
        let mut wait = DeviceWait::new(
            answer(serde_json::json!({"device_code": "d", "user_code": "u",
                "verification_uri": "https://as.example/d", "expires_in": 60, "interval": 5}))
            .unwrap(),
            1000,
        );
        assert_eq!((wait.poll_at, wait.expires_at), (1005, 1060));
        wait.waited(1005, false);
        assert_eq!((wait.interval, wait.poll_at), (5, 1010));
        wait.waited(1010, true);
        assert_eq!((wait.interval, wait.poll_at), (10, 1020));
        for _ in 0..100 {
            wait.waited(1020, true);
        }
        assert_eq!(wait.interval, MAX_INTERVAL_SECS);
    }
}
