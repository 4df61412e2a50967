//! The OAuth error responses servers send, and their codes.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An OAuth error response (RFC 6749 §5.2, §4.1.2.1; RFC 7591 §3.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthError {
    /// The error code, such as `invalid_grant` or `access_denied`.
    pub error: String,
    /// Human-readable detail from the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
    /// A page about the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_uri: Option<String>,
}

/// The OAuth error codes idp acts on (RFC 6749 §4.1.2.1, §5.2; RFC 6750
/// §3.1), read from an error's `error` string; any other is [`Other`](OAuthErrorCode::Other).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OAuthErrorCode {
    /// `invalid_request`.
    InvalidRequest,
    /// `invalid_client`: the server does not know (or no longer accepts) the client.
    InvalidClient,
    /// `invalid_grant`: the code or refresh token is dead.
    InvalidGrant,
    /// `unauthorized_client`.
    UnauthorizedClient,
    /// `unsupported_grant_type`.
    UnsupportedGrantType,
    /// `invalid_scope`.
    InvalidScope,
    /// `access_denied`: the person (or the server) declined.
    AccessDenied,
    /// `temporarily_unavailable`.
    TemporarilyUnavailable,
    /// `slow_down` (RFC 8628): poll less often.
    SlowDown,
    /// `authorization_pending` (RFC 8628): the person has not answered yet.
    AuthorizationPending,
    /// `expired_token` (RFC 8628): the device code expired.
    ExpiredToken,
    /// `invalid_token` (RFC 6750).
    InvalidToken,
    /// `insufficient_scope` (RFC 6750).
    InsufficientScope,
    /// `use_dpop_nonce` (RFC 9449): send the proof again with the server's nonce.
    UseDpopNonce,
    /// Any other code.
    Other,
}

impl OAuthErrorCode {
    const NAMES: [(&'static str, OAuthErrorCode); 14] = [
        ("invalid_request", Self::InvalidRequest),
        ("invalid_client", Self::InvalidClient),
        ("invalid_grant", Self::InvalidGrant),
        ("unauthorized_client", Self::UnauthorizedClient),
        ("unsupported_grant_type", Self::UnsupportedGrantType),
        ("invalid_scope", Self::InvalidScope),
        ("access_denied", Self::AccessDenied),
        ("temporarily_unavailable", Self::TemporarilyUnavailable),
        ("slow_down", Self::SlowDown),
        ("authorization_pending", Self::AuthorizationPending),
        ("expired_token", Self::ExpiredToken),
        ("invalid_token", Self::InvalidToken),
        ("insufficient_scope", Self::InsufficientScope),
        ("use_dpop_nonce", Self::UseDpopNonce),
    ];

    /// The code an `error` string names (exactly, as RFC 6749 writes it).
    ///
    /// ```
    /// use idp::error::OAuthErrorCode;
    /// assert_eq!(OAuthErrorCode::parse("invalid_grant"), OAuthErrorCode::InvalidGrant);
    /// assert_eq!(OAuthErrorCode::parse("bad_verification_code"), OAuthErrorCode::Other);
    /// ```
    pub fn parse(error: &str) -> Self {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == error)
            .map_or(Self::Other, |(_, c)| *c)
    }

    /// Names providers use instead of RFC 6749's, and the code each means:
    /// GitHub's and Slack's refused codes and refresh tokens, unknown
    /// clients and rate limits. Each is unambiguous, whoever sends it.
    const PROVIDER_NAMES: [(&'static str, OAuthErrorCode); 11] = [
        ("bad_verification_code", Self::InvalidGrant),
        ("invalid_code", Self::InvalidGrant),
        ("code_already_used", Self::InvalidGrant),
        ("code_expired", Self::InvalidGrant),
        ("invalid_refresh_token", Self::InvalidGrant),
        ("token_revoked", Self::InvalidGrant),
        ("incorrect_client_credentials", Self::InvalidClient),
        ("invalid_client_id", Self::InvalidClient),
        ("bad_client_secret", Self::InvalidClient),
        ("ratelimited", Self::TemporarilyUnavailable),
        ("rate_limited", Self::TemporarilyUnavailable),
    ];

    /// The code a token endpoint's `error` means: RFC 6749's names
    /// ([`OAuthErrorCode::parse`]), and the names well-known providers use
    /// for the same things (GitHub's `bad_verification_code`, Slack's
    /// `invalid_code`, ...), so one refusal gets one answer whatever the
    /// server calls it.
    ///
    /// ```
    /// use idp::error::OAuthErrorCode;
    /// assert_eq!(OAuthErrorCode::meaning("bad_verification_code"), OAuthErrorCode::InvalidGrant);
    /// assert_eq!(OAuthErrorCode::meaning("invalid_code"), OAuthErrorCode::InvalidGrant);
    /// assert_eq!(OAuthErrorCode::meaning("something_else"), OAuthErrorCode::Other);
    /// ```
    pub fn meaning(error: &str) -> Self {
        match Self::parse(error) {
            Self::Other => Self::PROVIDER_NAMES
                .iter()
                .find(|(n, _)| *n == error)
                .map_or(Self::Other, |(_, c)| *c),
            code => code,
        }
    }

    /// The grant or client is gone: the person must authorize again.
    pub fn is_dead_grant(self) -> bool {
        matches!(
            self,
            Self::InvalidGrant | Self::InvalidClient | Self::UnauthorizedClient
        )
    }

    /// The server does not accept the client (any more).
    pub fn is_client_rejected(self) -> bool {
        matches!(self, Self::InvalidClient | Self::UnauthorizedClient)
    }

    /// Trying again later may work.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::TemporarilyUnavailable | Self::SlowDown)
    }
}

impl OAuthError {
    /// Its code, as one of those idp acts on (provider names included:
    /// [`OAuthErrorCode::meaning`]).
    pub fn code(&self) -> OAuthErrorCode {
        OAuthErrorCode::meaning(&self.error)
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.error)?;
        if let Some(d) = &self.error_description {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}
