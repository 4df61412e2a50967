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

/// One lifecycle event (`{"user", "resource", "at", "event": "<kind>",
/// ...the kind's fields}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// [`Event`] as stored and sent: its fields and every kind's side by side.
/// Decoding through it reads the object once; serde's decoder for a
/// flattened, internally tagged enum buffers it first.
#[derive(Deserialize)]
struct EventWire {
    user: String,
    resource: String,
    #[serde(default)]
    account: Option<String>,
    at: u64,
    event: String,
    #[serde(default)]
    transient: Option<bool>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let w = EventWire::deserialize(d)?;
        let field = |v: Option<String>, name| v.ok_or_else(|| D::Error::missing_field(name));
        let kind = match w.event.as_str() {
            "connected" => EventKind::Connected,
            "refreshed" => EventKind::Refreshed,
            "refresh_failed" => EventKind::RefreshFailed {
                transient: w
                    .transient
                    .ok_or_else(|| D::Error::missing_field("transient"))?,
                message: field(w.message, "message")?,
            },
            "needs_reauthorization" => EventKind::NeedsReauthorization {
                reason: field(w.reason, "reason")?,
            },
            "recovered" => EventKind::Recovered,
            "removed" => EventKind::Removed,
            "revoked" => EventKind::Revoked,
            other => {
                return Err(D::Error::unknown_variant(
                    other,
                    &[
                        "connected",
                        "refreshed",
                        "refresh_failed",
                        "needs_reauthorization",
                        "recovered",
                        "removed",
                        "revoked",
                    ],
                ))
            }
        };
        Ok(Event {
            user: w.user,
            resource: w.resource,
            account: w.account,
            at: w.at,
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Event, EventKind};

    #[test]
    fn every_event_reads_back_as_written() {
        for kind in [
            EventKind::Connected,
            EventKind::Refreshed,
            EventKind::RefreshFailed {
                transient: true,
                message: "503".into(),
            },
            EventKind::NeedsReauthorization {
                reason: "invalid_grant".into(),
            },
            EventKind::Recovered,
            EventKind::Removed,
            EventKind::Revoked,
        ] {
            for account in [None, Some("work".to_owned())] {
                let e = Event {
                    user: "alice".into(),
                    resource: "https://api.example/".into(),
                    account,
                    at: 7,
                    kind: kind.clone(),
                };
                let text = serde_json::to_string(&e).unwrap();
                assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), e, "{text}");
            }
        }
    }

    #[test]
    fn an_event_that_cannot_be_read_says_why() {
        let read = |t: &str| serde_json::from_str::<Event>(t).unwrap_err().to_string();
        let base = r#""user": "u", "resource": "r", "at": 1"#;
        assert!(read(&format!(r#"{{{base}, "event": "exploded"}}"#))
            .contains("unknown variant `exploded`"));
        assert!(read(&format!(
            r#"{{{base}, "event": "refresh_failed", "message": "m"}}"#
        ))
        .contains("missing field `transient`"));
        assert!(
            read(r#"{"user": "u", "resource": "r", "event": "removed"}"#)
                .contains("missing field `at`")
        );
    }
}
