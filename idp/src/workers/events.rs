//! Lifecycle events: what happened to a user's connections, for the app
//! ([`OnAuthSuccess::on_event`](super::OnAuthSuccess::on_event),
//! [`IdpWorker::on_event`](super::IdpWorker::on_event)) and for the
//! per-user audit log ([`Handler::events`](super::Handler::events)). An
//! event never carries a secret.

use serde::{Deserialize, Serialize};

/// How many events the audit log keeps per user: the last 200.
pub const AUDIT_LOG_LEN: usize = 200;

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// A resource was connected (or connected again).
    Connected,
    /// New tokens were obtained with the refresh token.
    Refreshed,
    /// A refresh failed; the grant is kept. `transient` when trying later
    /// may work (it will be retried).
    RefreshFailed {
        /// Trying later may work.
        transient: bool,
        /// What was tried and what came back.
        message: String,
    },
    /// The grant no longer works: the person must connect again.
    NeedsReauthorization {
        /// Why.
        reason: String,
    },
    /// A connection that needed re-authorization works again.
    Recovered,
    /// The person removed the connection.
    Removed,
    /// Its token was revoked at the server (on removal).
    Revoked,
}

/// One lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The user.
    pub user: String,
    /// The resource (the provider's key).
    pub resource: String,
    /// The account, for a connection beside the user's first at this
    /// resource ([`crate::flow::accounts`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// When (seconds since the epoch).
    pub at: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}
