//! The Workers layer's errors, and the typed "the person must authorize".

use crate::error::{ErrorKind, ErrorReport};
use serde::{Deserialize, Serialize};
use worker::Response;

pub use crate::fetch::Reason;

/// The person must (re-)authorize: where to send them, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequired {
    /// The resource (or URL) that needs authorization.
    pub resource: String,
    /// Opening this URL connects the resource again (with the union of scopes
    /// for step-up).
    pub reauthorize_url: String,
    /// Why.
    pub reason: Reason,
}

/// Errors of the Workers layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No signed-in user: the handler needs a user id.
    #[error("no user: the handler needs the id of the signed-in user")]
    NoUser,
    /// The engine refused something in the Worker.
    #[error(transparent)]
    Engine(#[from] crate::Error),
    /// The user's Durable Object answered with an error.
    #[error("{0}")]
    Remote(ErrorReport),
    /// The Workers runtime failed.
    #[error("Workers runtime: {0}")]
    Runtime(String),
    /// The person must (re-)authorize.
    #[error("authorization required for {} ({})", .0.resource, .0.reason)]
    AuthorizationRequired(AuthorizationRequired),
    /// A request could not be replayed for the one retry.
    #[error("{0}")]
    NotReplayable(String),
    /// An upstream answer declares a body larger than the relay cap
    /// ([`relay`](super::relay())): refused before any of it is passed on.
    #[error(
        "the answer declares {declared} bytes, more than the relay cap of {max_bytes} bytes (IDP_RELAY_MAX_BYTES)"
    )]
    TooLargeToRelay {
        /// Its `Content-Length`.
        declared: u64,
        /// The relay cap.
        max_bytes: u64,
    },
    /// A typed response was not what was expected.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// Its status.
        status: u16,
    },
}

impl From<worker::Error> for Error {
    fn from(e: worker::Error) -> Self {
        Error::Runtime(e.to_string())
    }
}

impl From<ErrorReport> for Error {
    fn from(e: ErrorReport) -> Self {
        Error::Remote(e)
    }
}

impl Error {
    /// The failure as it is reported: the same [`ErrorReport`] (and so the
    /// same JSON) whether it happened in the Worker, in the engine, or in the
    /// user's Durable Object.
    pub fn report(&self) -> ErrorReport {
        match self {
            Error::NoUser => ErrorReport::new(ErrorKind::NoUser, self.to_string(), false),
            Error::Engine(e) => e.report(),
            Error::Remote(r) => r.clone(),
            Error::Runtime(_) => ErrorReport::new(ErrorKind::Runtime, self.to_string(), true),
            Error::AuthorizationRequired(a) => ErrorReport {
                resource: Some(a.resource.clone()),
                reason: Some(a.reason),
                reauthorize_url: Some(a.reauthorize_url.clone()),
                ..ErrorReport::new(ErrorKind::AuthorizationRequired, self.to_string(), false)
            },
            Error::NotReplayable(_) => {
                ErrorReport::new(ErrorKind::NotReplayable, self.to_string(), false)
            }
            Error::TooLargeToRelay { .. } => {
                ErrorReport::new(ErrorKind::InvalidResponse, self.to_string(), false)
            }
            Error::Status { status, .. } => {
                ErrorReport::new(ErrorKind::Upstream, self.to_string(), *status >= 500)
            }
        }
    }

    /// The HTTP status an app would answer with.
    pub fn status(&self) -> u16 {
        self.report().status()
    }

    /// A JSON response with the [`ErrorReport`]: `{"error": kind, "message",
    /// "reauthorize", "retryable"}`, plus `"resource"`, `"reason"` and
    /// `"reauthorize_url"` for [`Error::AuthorizationRequired`].
    pub fn to_response(&self) -> worker::Result<Response> {
        let report = self.report();
        Ok(Response::from_json(&report)?.with_status(report.status()))
    }
}

impl crate::fetch::GrantFailure for Error {
    fn reauthorization(&self) -> Option<(Reason, Option<String>)> {
        match self {
            Error::Remote(e) => crate::fetch::GrantFailure::reauthorization(e),
            Error::Engine(e) => crate::fetch::GrantFailure::reauthorization(e),
            _ => None,
        }
    }
}

/// `input` as a URL, refused in the Worker before any call to an object.
pub(crate) fn parse_url(input: &str) -> Result<url::Url, Error> {
    url::Url::parse(input).map_err(|e| {
        Error::Engine(crate::Error::InvalidUrl {
            input: input.to_owned(),
            reason: e.to_string(),
        })
    })
}
