//! [`ErrorKind`] and [`ErrorReport`]: the serialisable form of an error that
//! every layer reports the same way.

use super::{Error, Reason};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What went wrong, as a stable, serialisable code: the same for the engine,
/// the Durable Object boundary and the Worker's JSON answers (where it is the
/// `"error"` field, in snake_case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// A URL is not one, or not an acceptable one.
    InvalidUrl,
    /// A URL is not https (or loopback http in development).
    InsecureUrl,
    /// A URL's host is a private, loopback or otherwise off-limits address.
    BlockedAddress,
    /// One user reached a limit on what they may make the deployment do.
    RateLimited,
    /// A `WWW-Authenticate` challenge could not be read.
    BadChallenge,
    /// Protected resource metadata was refused.
    ResourceMetadata,
    /// Discovery failed for a passing reason.
    DiscoveryUnavailable,
    /// No usable authorization server metadata.
    AuthorizationServer,
    /// No way to get a client at the server.
    NoClient,
    /// The app's own client at the server is for other resources.
    ClientNotAllowedForResource,
    /// Dynamic registration failed.
    Registration,
    /// The person or the server declined.
    AuthorizationDenied,
    /// The callback was refused.
    Callback,
    /// A login with no browser cannot go on (RFC 8628).
    DeviceLogin,
    /// An account label that cannot be used.
    InvalidAccount,
    /// Nothing is connected for the URL.
    NotConnected,
    /// The person must (re-)authorize: see the report's `reauthorize_url`.
    AuthorizationRequired,
    /// The token expired and cannot be refreshed.
    Expired,
    /// The server no longer accepts the grant.
    Revoked,
    /// The stored credentials cannot be decrypted with the configured keys.
    Unreadable,
    /// A token request failed.
    Token,
    /// A request did not complete.
    Transport,
    /// An unexpected status.
    UnexpectedStatus,
    /// The URL is neither public nor protected as far as it says.
    NotAResource,
    /// An answer could not be used.
    InvalidResponse,
    /// The store failed.
    Storage,
    /// A login from another site was not confirmed.
    Confirmation,
    /// The server does not promise PKCE S256.
    PkceUnsupported,
    /// The runtime failed (a Durable Object could not be reached, ...).
    Runtime,
    /// The deployment's configuration is not usable.
    Configuration,
    /// An internal call could not be read.
    BadCall,
    /// No signed-in user.
    NoUser,
    /// A request body could not be replayed for the retry.
    NotReplayable,
    /// An upstream API answered with an unexpected status.
    Upstream,
}

impl ErrorKind {
    /// The HTTP status an app answers with.
    pub fn status(self) -> u16 {
        use ErrorKind::*;
        match self {
            AuthorizationRequired | Expired | Revoked | Unreadable | NoUser => 401,
            NotConnected => 404,
            Confirmation | ClientNotAllowedForResource => 403,
            RateLimited => 429,
            DiscoveryUnavailable | Registration | Token | Transport | InvalidResponse
            | Upstream => 502,
            Storage | Runtime | Configuration => 500,
            InvalidUrl | InsecureUrl | BlockedAddress | BadChallenge | ResourceMetadata
            | AuthorizationServer | NoClient | AuthorizationDenied | Callback | DeviceLogin
            | InvalidAccount | UnexpectedStatus | NotAResource | PkceUnsupported | BadCall
            | NotReplayable => 400,
        }
    }
}

/// A failure as it is reported: across the Durable Object boundary, and as
/// the JSON body of an error answer. Never carries a secret.
///
/// ```
/// use idp::error::{Error, ErrorKind};
/// let e = Error::NoRefreshToken { resource: "https://api.example/v1".into() };
/// let report = e.report();
/// assert_eq!((report.error, report.reauthorize), (ErrorKind::Expired, true));
/// assert_eq!(serde_json::to_value(&report)?["error"], "expired");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReport {
    /// What went wrong.
    pub error: ErrorKind,
    /// What was tried and what came back.
    pub message: String,
    /// The person must authorize (again) for this to work.
    pub reauthorize: bool,
    /// Trying the same later may work.
    pub retryable: bool,
    /// For [`ErrorKind::AuthorizationRequired`]: the resource to connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// For [`ErrorKind::AuthorizationRequired`]: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// For [`ErrorKind::AuthorizationRequired`] in a runtime with a login
    /// route: the URL that connects it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reauthorize_url: Option<String>,
}

impl ErrorReport {
    /// A report of `error` with `message` and no detail.
    pub fn new(error: ErrorKind, message: impl Into<String>, retryable: bool) -> Self {
        Self {
            error,
            message: message.into(),
            reauthorize: matches!(
                error,
                ErrorKind::AuthorizationRequired
                    | ErrorKind::Expired
                    | ErrorKind::Revoked
                    | ErrorKind::Unreadable
                    | ErrorKind::NotConnected
            ),
            retryable,
            resource: None,
            reason: None,
            reauthorize_url: None,
        }
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        self.error.status()
    }

    /// Why the person must (re-)authorize, when they must: the token expired
    /// with no way to refresh it, or the grant no longer works.
    pub fn reauthorization(&self) -> Option<Reason> {
        if !self.reauthorize {
            return None;
        }
        Some(match (self.error, self.reason) {
            (_, Some(r)) => r,
            (ErrorKind::Expired, None) => Reason::Expired,
            (ErrorKind::NotConnected, None) => Reason::NeverConnected,
            _ => Reason::Revoked,
        })
    }
}

impl fmt::Display for ErrorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ErrorReport {}

impl From<Error> for ErrorReport {
    fn from(e: Error) -> Self {
        e.report()
    }
}

impl From<&Error> for ErrorReport {
    fn from(e: &Error) -> Self {
        e.report()
    }
}

impl Error {
    /// What went wrong, as a stable code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidUrl { .. } => ErrorKind::InvalidUrl,
            Error::InsecureUrl { .. } => ErrorKind::InsecureUrl,
            Error::BlockedAddress { .. } => ErrorKind::BlockedAddress,
            Error::RateLimited { .. } => ErrorKind::RateLimited,
            Error::Challenge(_) => ErrorKind::BadChallenge,
            Error::ResourceMetadata { .. } => ErrorKind::ResourceMetadata,
            Error::DiscoveryUnavailable { .. } => ErrorKind::DiscoveryUnavailable,
            Error::AuthorizationServer { .. } => ErrorKind::AuthorizationServer,
            Error::NoClient { .. } => ErrorKind::NoClient,
            Error::NoAppClient { .. } => ErrorKind::NoClient,
            Error::ClientNotAllowedForResource { .. } => ErrorKind::ClientNotAllowedForResource,
            Error::Registration { .. } => ErrorKind::Registration,
            Error::AuthorizationDenied(_) => ErrorKind::AuthorizationDenied,
            Error::Callback(_) => ErrorKind::Callback,
            Error::DeviceLogin(_) => ErrorKind::DeviceLogin,
            Error::InvalidAccount { .. } => ErrorKind::InvalidAccount,
            Error::NotConnected { .. } => ErrorKind::NotConnected,
            Error::AuthorizationRequired(_) => ErrorKind::AuthorizationRequired,
            Error::NoRefreshToken { .. } => ErrorKind::Expired,
            Error::Unreadable { .. } => ErrorKind::Unreadable,
            Error::Token { .. } if self.requires_reauthorization() => ErrorKind::Revoked,
            Error::Token { .. } => ErrorKind::Token,
            Error::Transport { .. } => ErrorKind::Transport,
            Error::UnexpectedStatus { .. } => ErrorKind::UnexpectedStatus,
            Error::NotAResource { .. } => ErrorKind::NotAResource,
            Error::InvalidResponse { .. } => ErrorKind::InvalidResponse,
            Error::Storage(_) => ErrorKind::Storage,
            Error::NoRandomness(_) => ErrorKind::Runtime,
            Error::Configuration { .. } => ErrorKind::Configuration,
            Error::Confirmation => ErrorKind::Confirmation,
            Error::PkceUnsupported { .. } => ErrorKind::PkceUnsupported,
        }
    }

    /// The error as it is reported ([`ErrorReport`]).
    pub fn report(&self) -> ErrorReport {
        let mut r = ErrorReport::new(self.kind(), self.to_string(), self.is_retryable());
        r.reauthorize = self.requires_reauthorization();
        match self {
            Error::AuthorizationRequired(a) => {
                r.resource = Some(a.resource.clone());
                r.reason = Some(a.reason);
            }
            Error::NoRefreshToken { resource } | Error::Unreadable { resource, .. } => {
                r.resource = Some(resource.clone());
            }
            _ => {}
        }
        r
    }
}
