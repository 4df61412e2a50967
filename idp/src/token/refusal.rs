//! How an API says "this token is refused" when it does not answer 401:
//! Slack's Web API answers HTTP 200 `{"ok": false, "error":
//! "invalid_auth"}`, GraphQL APIs an `UNAUTHENTICATED` error inside a 200.
//! A provider profile states it ([`Refusal`]); the grant keeps it, and an
//! authed call reads such an answer as a 401: one refresh and a retry, or
//! re-authorization ([`crate::fetch`]).
//!
//! ```
//! use idp::token::Refusal;
//! let slack = Refusal::json(&[200], "/error", &["invalid_auth", "token_expired"]);
//! assert!(slack.reads_body(200));
//! assert!(slack.refuses(br#"{"ok": false, "error": "token_expired"}"#));
//! assert!(!slack.refuses(br#"{"ok": true}"#));
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What in an answer means the token was refused: its status (any of
/// `status`; empty for any status but 401, which always means it), and,
/// when `field` is set, a JSON body whose value at `field` (a JSON pointer
/// such as `/error` or `/errors/0/extensions/code`; a bare name means the
/// top-level member) is one of `values`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Statuses that (with `field`, when set) mean refused; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub status: Vec<u16>,
    /// Where in the JSON body to look.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The values at `field` that mean refused (strings, booleans, numbers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<Value>,
}

impl Refusal {
    /// A rule on a JSON field's string values, for answers of `status`.
    pub fn json(status: &[u16], field: &str, values: &[&str]) -> Self {
        Self {
            status: status.to_vec(),
            field: Some(field.to_owned()),
            values: values.iter().map(|v| Value::from(*v)).collect(),
        }
    }

    /// A rule on the status alone (an API that answers 403 for a dead token).
    pub fn status(status: &[u16]) -> Self {
        Self {
            status: status.to_vec(),
            ..Self::default()
        }
    }

    fn status_matches(&self, status: u16) -> bool {
        status != 401 && (self.status.is_empty() || self.status.contains(&status))
    }

    /// Whether an answer of `status` means refused without its body.
    pub fn refuses_status(&self, status: u16) -> bool {
        self.field.is_none() && !self.status.is_empty() && self.status_matches(status)
    }

    /// Whether an answer of `status` must have its body read to tell
    /// ([`Refusal::refuses`]).
    pub fn reads_body(&self, status: u16) -> bool {
        self.field.is_some() && self.status_matches(status)
    }

    /// Whether `body` (of an answer [`Refusal::reads_body`] named) says the
    /// token was refused. A body that is not JSON says nothing.
    pub fn refuses(&self, body: &[u8]) -> bool {
        let Some(field) = &self.field else {
            return false;
        };
        let Ok(doc) = crate::encoding::json_from_bytes::<Value>(body) else {
            return false;
        };
        let pointer = if field.starts_with('/') {
            field.clone()
        } else {
            format!("/{field}")
        };
        doc.pointer(&pointer)
            .is_some_and(|v| self.values.contains(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_reads_statuses_and_fields_as_configured() {
        let graphql = Refusal::json(&[], "/errors/0/extensions/code", &["UNAUTHENTICATED"]);
        assert!(graphql.reads_body(200) && graphql.reads_body(400));
        assert!(!graphql.reads_body(401), "a 401 is a 401 already");
        assert!(graphql.refuses(br#"{"errors":[{"extensions":{"code":"UNAUTHENTICATED"}}]}"#));
        assert!(!graphql.refuses(br#"{"errors":[{"extensions":{"code":"FORBIDDEN"}}]}"#));
        assert!(!graphql.refuses(b"<html>"), "not JSON: nothing said");
        let bare = Refusal::json(&[200], "error", &["not_authed"]);
        assert!(bare.refuses(br#"{"ok":false,"error":"not_authed"}"#));
        assert!(!bare.reads_body(500));
        let status = Refusal::status(&[403]);
        assert!(status.refuses_status(403) && !status.refuses_status(200));
        assert!(!status.reads_body(403));
        let parsed: Refusal =
            serde_json::from_str(r#"{"status":[200],"field":"ok","values":[false]}"#).unwrap();
        assert!(parsed.refuses(br#"{"ok":false}"#) && !parsed.refuses(br#"{"ok":true}"#));
    }
}
