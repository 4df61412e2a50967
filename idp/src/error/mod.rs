//! The engine's one error type. Messages say what was tried and what came back
//! (URLs, statuses, OAuth error codes), never a secret.

mod oauth;
mod report;
mod storage;

pub use oauth::{OAuthError, OAuthErrorCode};
pub use report::{ErrorKind, ErrorReport};
pub use storage::{StorageCause, StorageError};

use crate::challenge::ChallengeError;
use serde::{Deserialize, Serialize};
use std::fmt;
use url::Url;

/// What one request of a discovery sequence returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The URL that was fetched.
    pub url: Url,
    /// What came back.
    pub outcome: Outcome,
}

/// The outcome of one discovery request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The server answered with this non-success status.
    Status(u16),
    /// The request did not complete.
    Transport(String),
    /// A 2xx response whose document was refused, and why.
    Refused(String),
    /// The URL was not fetched, and why (for example, not https).
    Skipped(String),
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Outcome::Status(s) => write!(f, "{} -> HTTP {s}", self.url),
            Outcome::Transport(m) => write!(f, "{} -> network error: {m}", self.url),
            Outcome::Refused(m) => write!(f, "{} -> refused: {m}", self.url),
            Outcome::Skipped(m) => write!(f, "{} -> not fetched: {m}", self.url),
        }
    }
}

struct Attempts<'a>(&'a [Attempt]);

impl fmt::Display for Attempts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("nothing to try");
        }
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

fn status_and_oauth(status: &u16, oauth: &Option<Box<OAuthError>>) -> String {
    match oauth {
        Some(e) => format!("HTTP {status}, {e}"),
        None => format!("HTTP {status}"),
    }
}

/// Why a callback was refused before any token request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallbackProblem {
    /// No `state` parameter.
    MissingState,
    /// The `state` names no pending flow (unknown, already used, or another user's).
    UnknownState,
    /// The pending flow is older than its lifetime.
    Expired,
    /// No `code` parameter.
    MissingCode,
    /// The server advertises RFC 9207 but sent no `iss`.
    MissingIssuer,
    /// `iss` names another issuer.
    IssuerMismatch {
        /// The issuer the flow was started with.
        expected: String,
        /// The `iss` received.
        found: String,
    },
    /// The callback arrived at another authorization server's callback URL
    /// than the one the flow was sent with (a mix-up attempt, RFC 9700
    /// §4.4): refused before the code goes anywhere.
    WrongCallback {
        /// The callback URL it arrived at.
        arrived_at: String,
    },
    /// The authorization server refused the code (`invalid_grant`, or its
    /// own name for it: GitHub's `bad_verification_code`, Slack's
    /// `invalid_code`): the login failed, nothing stored changed.
    CodeRefused {
        /// The server's error, as it named it.
        error: String,
    },
}

/// Why a login with no browser (RFC 8628) cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceProblem {
    /// The authorization server has no device authorization endpoint (its
    /// metadata lists none, or the profile states none).
    Unsupported {
        /// The server.
        issuer: String,
    },
    /// No device login waits under this id for this user.
    Unknown,
    /// The codes expired before the person answered.
    Expired,
    /// A discovered server named a device endpoint, a token endpoint or a
    /// page for the person on another origin than its issuer's (another
    /// server's device flow, whose codes and tokens it would get the
    /// person to approve): refused before anything is sent there.
    ForeignEndpoint {
        /// The issuer that named it.
        issuer: String,
        /// Which endpoint or page.
        what: &'static str,
        /// Where it points.
        url: String,
    },
    /// The user already has as many device logins waiting as one may.
    TooMany {
        /// How many may wait at once.
        limit: usize,
    },
}

impl fmt::Display for DeviceProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsupported { issuer } => write!(
                f,
                "{issuer} offers no device authorization (no device_authorization_endpoint); connect it in a browser"
            ),
            Self::Unknown => f.write_str(
                "no device login waits under this id for this user (unknown, finished, expired, or being polled right now)",
            ),
            Self::Expired => f.write_str("the code expired before it was entered; start again"),
            Self::ForeignEndpoint { issuer, what, url } => write!(
                f,
                "the device login at {issuer} was refused: its {what} {url} is not on the issuer's origin, and a discovered server may not send a device login to another server; nothing was sent there (an operator allows a provider that splits its device flow across origins with IDP_DEVICE_ORIGINS)"
            ),
            Self::TooMany { limit } => write!(
                f,
                "{limit} device logins are already waiting for this user; finish or let one expire first"
            ),
        }
    }
}

impl fmt::Display for CallbackProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingState => f.write_str("the callback has no state parameter"),
            Self::UnknownState => f.write_str(
                "the state matches no pending authorization (unknown, already used, or started by someone else)",
            ),
            Self::Expired => f.write_str("the authorization took too long; start it again"),
            Self::MissingCode => f.write_str("the callback has neither code nor error"),
            Self::MissingIssuer => f.write_str(
                "the authorization server promises an iss parameter (RFC 9207) but the callback has none",
            ),
            Self::IssuerMismatch { expected, found } => write!(
                f,
                "the callback's iss is {found:?} but the flow was started with issuer {expected:?}"
            ),
            Self::WrongCallback { arrived_at } => write!(
                f,
                "the callback arrived at {arrived_at}, which belongs to another authorization server than the one this authorization was sent to; nothing was exchanged (a server may have redirected you elsewhere: start again)"
            ),
            Self::CodeRefused { error } => write!(
                f,
                "the authorization server refused the authorization code ({error}); nothing was stored or changed: start again"
            ),
        }
    }
}

/// Why the person must (re-)authorize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// No provider is connected for the URL.
    NeverConnected,
    /// The token expired and cannot be refreshed.
    Expired,
    /// The server refused the token or the refresh token.
    Revoked,
    /// The token lacks a scope the resource requires.
    InsufficientScope,
    /// The token is DPoP-bound and the resource takes Bearer tokens only:
    /// a new login gets an unbound one.
    BoundTokenRefused,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reason::NeverConnected => "never connected",
            Reason::Expired => "the token expired and cannot be refreshed",
            Reason::Revoked => "the server no longer accepts the token",
            Reason::InsufficientScope => "the token lacks a required scope",
            Reason::BoundTokenRefused => {
                "the resource takes no DPoP-bound token: connect again for a Bearer token"
            }
        })
    }
}

/// What to connect (again) so the call can work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reauthorize {
    /// The resource (the provider's key, or the URL that challenged).
    pub resource: String,
    /// The scope to ask for: for a step-up, the union of held and required.
    pub scope: Option<String>,
    /// Why.
    pub reason: Reason,
}

/// Everything that can go wrong in the engine.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A string that should be a URL is not one, or not an acceptable one.
    #[error("invalid URL {input:?}: {reason}")]
    InvalidUrl {
        /// The input.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// A URL that must be https is not (loopback http needs `allow_insecure_loopback`).
    #[error("{url} must use https (plain http is allowed only for loopback hosts, and only when insecure loopback is enabled)")]
    InsecureUrl {
        /// The refused URL.
        url: String,
    },
    /// A URL whose host is an address the [`Policy`](crate::policy::Policy)
    /// keeps the SDK away from (private, loopback, link-local, ...): nothing
    /// was sent to it.
    #[error("refused to contact {url}: its host is {reason}; nothing was sent (a deployment that needs a private API sets allow_private_addresses)")]
    BlockedAddress {
        /// The refused URL.
        url: String,
        /// What its address is.
        reason: &'static str,
    },
    /// A limit on what one user may make the deployment do was reached.
    #[error("{what}: at most {limit} an hour for one user; try again in {retry_after_secs} s")]
    RateLimited {
        /// What was limited.
        what: String,
        /// The limit per hour.
        limit: u32,
        /// When the next hour's allowance starts.
        retry_after_secs: u64,
    },
    /// A `WWW-Authenticate` header could not be parsed.
    #[error("malformed WWW-Authenticate header: {0}")]
    Challenge(#[from] ChallengeError),
    /// A protected resource metadata document was found but refused.
    #[error("protected resource metadata at {url} refused: {reason}")]
    ResourceMetadata {
        /// Where the document came from.
        url: Url,
        /// Why it was refused.
        reason: String,
    },
    /// Discovery could not decide because a server failed (not because metadata
    /// is absent); trying again later may work.
    #[error("discovery for {resource} failed: {}", Attempts(attempts))]
    DiscoveryUnavailable {
        /// The resource being discovered.
        resource: Url,
        /// Every request made and what it returned.
        attempts: Vec<Attempt>,
    },
    /// None of the authorization servers gave usable metadata.
    #[error("no usable authorization server metadata: {}", Attempts(attempts))]
    AuthorizationServer {
        /// Every request made and what it returned.
        attempts: Vec<Attempt>,
    },
    /// There is no way to identify this app at the issuer.
    #[error("no client for issuer {issuer}: it has no registration endpoint, does not accept client ID metadata documents (or none is configured), and no pre-registered client is configured for it")]
    NoClient {
        /// The issuer.
        issuer: String,
    },
    /// Connecting as the app (client credentials) needs a confidential
    /// client of the app's own at the resource's issuer.
    #[error("the app has no client of its own at {issuer} to connect {resource} as itself: configure a pre-registered client with a secret (client_secret_basic or client_secret_post) for that issuer, with the resource among its `resources`")]
    NoAppClient {
        /// The issuer the resource's metadata names.
        issuer: String,
        /// The resource being connected.
        resource: String,
    },
    /// The app's own client at `issuer` (a provider profile, a pre-registered
    /// client) is configured for other resources: a resource whose metadata
    /// names that issuer does not get it.
    #[error("the app's client at {issuer} is not for {resource}: it is configured for other resources (add the resource's prefix to the client's `resources`, or set `any_resource` for a server that binds every token to the resource it was asked for)")]
    ClientNotAllowedForResource {
        /// The resource being connected.
        resource: String,
        /// The issuer its metadata named.
        issuer: String,
    },
    /// Dynamic client registration failed.
    #[error(
        "client registration at {url} failed: {}",
        status_and_oauth(status, oauth)
    )]
    Registration {
        /// The registration endpoint.
        url: Url,
        /// Response status.
        status: u16,
        /// The server's OAuth error, when it sent one.
        oauth: Option<Box<OAuthError>>,
    },
    /// The authorization server redirected back with an error (for example
    /// `access_denied`).
    #[error("the authorization server answered: {0}")]
    AuthorizationDenied(OAuthError),
    /// The callback could not be accepted.
    #[error("invalid callback: {0}")]
    Callback(CallbackProblem),
    /// An account label (or a user id) that cannot be used.
    #[error(
        "invalid account {label:?}: an account label is 1 to 64 ASCII letters, digits or . _ - + @"
    )]
    InvalidAccount {
        /// The label (at most 64 characters of it).
        label: String,
    },
    /// A login with no browser (RFC 8628) cannot go on.
    #[error("device login: {0}")]
    DeviceLogin(DeviceProblem),
    /// The token endpoint answered with an error.
    #[error("token request to {url} failed: {}", status_and_oauth(status, oauth))]
    Token {
        /// The token endpoint.
        url: Url,
        /// Response status.
        status: u16,
        /// The server's OAuth error, when it sent one.
        oauth: Option<Box<OAuthError>>,
    },
    /// A request could not be completed.
    #[error("request to {url} failed: {message}")]
    Transport {
        /// The URL.
        url: Url,
        /// What the transport said.
        message: String,
    },
    /// A response had an unexpected status.
    #[error("{url} answered HTTP {status}; expected {expected}")]
    UnexpectedStatus {
        /// The URL.
        url: Url,
        /// The status received.
        status: u16,
        /// What was expected, in words.
        expected: &'static str,
    },
    /// Nothing told whether the URL is a protected resource: every probe
    /// answered a 4xx other than 401 (see [`crate::probe::probe`]).
    #[error("{url} is neither public nor protected as far as it says: {}", .attempts.join("; "))]
    NotAResource {
        /// The URL.
        url: Url,
        /// Each probe and its answer.
        attempts: Vec<String>,
    },
    /// A response body could not be used.
    #[error("invalid response from {url}: {reason}")]
    InvalidResponse {
        /// The URL.
        url: Url,
        /// Why (never the body itself).
        reason: String,
    },
    /// The store failed.
    #[error("storage failed: {0}")]
    Storage(StorageError),
    /// The runtime has no source of randomness (no state or PKCE verifier
    /// can be made).
    #[error("no randomness available: {0}")]
    NoRandomness(String),
    /// The authorization server does not say it supports PKCE S256.
    #[error("the authorization server {issuer} does not list S256 in code_challenge_methods_supported, so it may ignore PKCE; idp refuses to use it (the MCP authorization spec requires clients to). If you know it supports PKCE S256, list it with `Config::assume_pkce`")]
    PkceUnsupported {
        /// The issuer.
        issuer: String,
    },
    /// A request to connect came from another site and was not confirmed
    /// on the confirmation page (or its token was used, expired, or is
    /// another user's).
    #[error("this connection was not confirmed: its confirmation expired or was already used; start again from the app")]
    Confirmation,
    /// No provider is connected for the URL.
    #[error("no provider is connected for {url}")]
    NotConnected {
        /// The URL.
        url: String,
    },
    /// The person must (re-)authorize before this call can work: what to
    /// connect, with which scope, and why (from [`crate::fetch`]'s policy).
    #[error("authorization required for {} ({})", .0.resource, .0.reason)]
    AuthorizationRequired(Reauthorize),
    /// The stored credentials cannot be decrypted (the key they were sealed
    /// with is not configured): the person must connect again.
    #[error("the stored credentials for {resource} cannot be decrypted: {reason}; connect it again (or configure the key in IDP_ENCRYPTION_KEYS)")]
    Unreadable {
        /// The resource.
        resource: String,
        /// Why they cannot be opened.
        reason: String,
    },
    /// A piece of configuration is not usable.
    #[error("{name} is not usable: {reason}")]
    Configuration {
        /// What was configured (a variable, a profile).
        name: String,
        /// Why, naming the field.
        reason: String,
    },
    /// A refresh was needed but no refresh token is held.
    #[error("the token for {resource} expired or was rejected and there is no refresh token")]
    NoRefreshToken {
        /// The resource.
        resource: String,
    },
}

impl Error {
    /// Whether the person must authorize again: the grant or client is gone
    /// (`invalid_grant`, `invalid_client`, `unauthorized_client`), or no refresh
    /// token is held.
    pub fn requires_reauthorization(&self) -> bool {
        match self {
            // Only the server's own word that the grant or client is dead:
            // an HTML page, a bare 400 or 401, a 5xx or an unreadable body
            // says nothing about the grant, and the tokens are kept.
            Error::Token { oauth: Some(e), .. } => e.code().is_dead_grant(),
            Error::NoRefreshToken { .. }
            | Error::Unreadable { .. }
            | Error::NotConnected { .. }
            | Error::AuthorizationRequired(_) => true,
            _ => false,
        }
    }

    /// Whether trying the same thing later may succeed: network failures, 5xx,
    /// `temporarily_unavailable`, `slow_down`.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. }
            | Error::DiscoveryUnavailable { .. }
            | Error::RateLimited { .. } => true,
            Error::Token { status, oauth, .. } | Error::Registration { status, oauth, .. } => {
                *status >= 500
                    || *status == 429
                    || oauth.as_ref().is_some_and(|e| e.code().is_transient())
            }
            Error::UnexpectedStatus { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// Whether the server no longer knows the client, so a cached registration
    /// should be dropped and the client registered again.
    pub fn client_rejected(&self) -> bool {
        matches!(
            self,
            Error::Token { oauth: Some(e), .. } if e.code().is_client_rejected()
        )
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a JSON document (configuration) could not be read, never quoting a
/// value from it: serde's messages about a value's type or form quote the
/// value, which may be a secret written where it does not belong. Messages
/// about fields (names from the schema) are kept whole.
pub(crate) fn json_reason(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let about_a_field = ["unknown field", "missing field", "duplicate field"]
        .iter()
        .any(|p| message.starts_with(p));
    if about_a_field {
        return message;
    }
    // "unknown variant `x`, expected ...": keep what was expected.
    if let Some(expected) = message
        .strip_prefix("unknown variant `")
        .and_then(|rest| rest.split_once("`, "))
        .map(|(_, expected)| expected)
    {
        let expected = expected.split(" at line ").next().unwrap_or(expected);
        return format!(
            "unknown variant at line {} column {}, {expected}",
            e.line(),
            e.column()
        );
    }
    let what = match e.classify() {
        serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Eof => "the JSON ends too early",
        serde_json::error::Category::Data => "a value has the wrong type or form",
        serde_json::error::Category::Io => "unreadable",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_reasons_name_fields_and_never_quote_values() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Entry {
            client_id: String,
            port: u16,
        }
        let reason = |json: &str| {
            super::json_reason(&serde_json::from_str::<Entry>(json).expect_err("invalid"))
        };
        let r = reason(r#"{"client_id": "a", "port": "hunter2-secret"}"#);
        assert!(!r.contains("hunter2"), "{r}");
        assert!(
            r.starts_with("a value has the wrong type or form at line 1"),
            "{r}"
        );
        let r = reason(r#"{"client_id": "a", "port": 1, "sekret": "x"}"#);
        assert!(r.starts_with("unknown field `sekret`"), "{r}");
        assert!(reason(r#"{"client_id": "a""#).starts_with("the JSON ends too early"));
        assert!(reason("{hunter2}").starts_with("not valid JSON"));
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        enum Mode {
            Fast,
        }
        let e = serde_json::from_str::<Mode>(r#""hunter2""#).expect_err("invalid");
        let r = super::json_reason(&e);
        assert_eq!(r, "unknown variant at line 1 column 9, expected `Fast`");
    }

    use super::*;

    fn token_err(status: u16, code: Option<&str>) -> Error {
        Error::Token {
            url: Url::parse("https://as.example/token").unwrap(),
            status,
            oauth: code.map(|c| {
                Box::new(OAuthError {
                    error: c.into(),
                    error_description: Some("why".into()),
                    error_uri: None,
                })
            }),
        }
    }

    #[test]
    fn classification() {
        assert!(token_err(400, Some("invalid_grant")).requires_reauthorization());
        assert!(!token_err(400, Some("invalid_grant")).is_retryable());
        assert!(token_err(401, Some("invalid_client")).client_rejected());
        assert!(!token_err(400, Some("invalid_grant")).client_rejected());
        assert!(token_err(503, None).is_retryable());
        assert!(!token_err(503, None).requires_reauthorization());
        assert!(token_err(400, Some("temporarily_unavailable")).is_retryable());
        for (status, code) in [
            (400, None),
            (401, None),
            (401, Some("server_error")),
            (502, None),
        ] {
            assert!(
                !token_err(status, code).requires_reauthorization(),
                "{status} {code:?} says nothing about the grant"
            );
        }
        let t = Error::Transport {
            url: Url::parse("https://as.example/token").unwrap(),
            message: "connection refused".into(),
        };
        assert!(t.is_retryable() && !t.requires_reauthorization());
    }

    #[test]
    fn messages_say_what_came_back() {
        let m = token_err(400, Some("invalid_grant")).to_string();
        assert_eq!(
            m,
            "token request to https://as.example/token failed: HTTP 400, invalid_grant (why)"
        );
        let e = Error::AuthorizationServer {
            attempts: vec![
                Attempt {
                    url: Url::parse("https://as/.well-known/oauth-authorization-server").unwrap(),
                    outcome: Outcome::Status(404),
                },
                Attempt {
                    url: Url::parse("https://as/.well-known/openid-configuration").unwrap(),
                    outcome: Outcome::Refused("issuer mismatch".into()),
                },
            ],
        };
        let m = e.to_string();
        assert!(m.contains("oauth-authorization-server -> HTTP 404"), "{m}");
        assert!(
            m.contains("openid-configuration -> refused: issuer mismatch"),
            "{m}"
        );
    }
}
