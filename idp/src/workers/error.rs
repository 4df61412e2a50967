//! The Workers layer's errors, and the typed "the person must authorize".

use super::protocol::RemoteError;
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
    Remote(RemoteError),
    /// The Workers runtime failed.
    #[error("Workers runtime: {0}")]
    Runtime(String),
    /// The person must (re-)authorize.
    #[error("authorization required for {} ({})", .0.resource, .0.reason)]
    AuthorizationRequired(AuthorizationRequired),
    /// A request could not be replayed for the one retry.
    #[error("{0}")]
    NotReplayable(String),
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

impl From<RemoteError> for Error {
    fn from(e: RemoteError) -> Self {
        Error::Remote(e)
    }
}

impl Error {
    /// The HTTP status an app would answer with.
    pub fn status(&self) -> u16 {
        match self {
            Error::NoUser | Error::AuthorizationRequired(_) => 401,
            Error::Engine(e) => RemoteError::from(e).status,
            Error::Remote(e) => e.status,
            Error::Runtime(_) => 500,
            Error::NotReplayable(_) => 400,
            Error::Status { .. } => 502,
        }
    }

    /// A JSON response: `{"error": "authorization_required", "reauthorize_url",
    /// "reason", "resource"}` for [`Error::AuthorizationRequired`], else
    /// `{"error": code, "message"}`.
    pub fn to_response(&self) -> worker::Result<Response> {
        let body = match self {
            Error::AuthorizationRequired(a) => serde_json::json!({
                "error": "authorization_required",
                "resource": a.resource,
                "reauthorize_url": a.reauthorize_url,
                "reason": a.reason,
            }),
            Error::NoUser => serde_json::json!({"error": "no_user", "message": self.to_string()}),
            Error::Remote(e) => serde_json::json!({"error": e.code, "message": e.message}),
            _ => serde_json::json!({"error": "error", "message": self.to_string()}),
        };
        Ok(Response::from_json(&body)?.with_status(self.status()))
    }
}
