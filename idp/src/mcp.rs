//! What an app needs to talk to an MCP server over Streamable HTTP as the
//! signed-in user, without a full MCP SDK: the request headers, and reading a
//! JSON-RPC response that comes back as JSON or as a `text/event-stream`.
//!
//! The transport is plain HTTP, so the runtimes' authorized clients (the
//! Workers `AuthedFetch`) carry it with every token rule they apply.
//!
//! ```
//! use idp::mcp::{response_for, MCP_ACCEPT};
//!
//! let sse = b"event: message\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"tools\":[]}}\n\n";
//! let reply = response_for(Some("text/event-stream"), sse, &serde_json::json!(7)).unwrap();
//! assert_eq!(reply.unwrap()["result"]["tools"], serde_json::json!([]));
//! assert_eq!(MCP_ACCEPT, "application/json, text/event-stream");
//! ```

use serde_json::Value;

/// The `Accept` header of every MCP request.
pub const MCP_ACCEPT: &str = "application/json, text/event-stream";

/// The session header servers assign on `initialize`.
pub const SESSION_HEADER: &str = "mcp-session-id";

/// The header naming the negotiated protocol version.
pub const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";

/// Why a response could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// The body is not JSON (or no event carried JSON).
    #[error("the MCP server's answer is not JSON-RPC ({0})")]
    NotJsonRpc(String),
    /// The content type is neither JSON nor an event stream.
    #[error("the MCP server answered with content type {0:?}")]
    ContentType(String),
}

/// The data of each event in a `text/event-stream` body (lines of one event
/// joined with `\n`; events without data skipped).
pub fn sse_data(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut data: Vec<&str> = Vec::new();
    for line in body.lines().chain(std::iter::once("")) {
        if line.is_empty() {
            if !data.is_empty() {
                out.push(data.join("\n"));
                data.clear();
            }
        } else if let Some(rest) = line.strip_prefix("data:") {
            data.push(rest.strip_prefix(' ').unwrap_or(rest));
        }
    }
    out
}

/// The JSON-RPC response to the request with `id` in an MCP answer: a JSON
/// body (a single message or a batch) or an event stream (whose other
/// messages, notifications and server requests, are skipped). `Ok(None)`
/// when the answer holds no response to that id.
pub fn response_for(
    content_type: Option<&str>,
    body: &[u8],
    id: &Value,
) -> Result<Option<Value>, ResponseError> {
    let text = String::from_utf8_lossy(body);
    let kind = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let messages: Vec<Value> = match kind.as_str() {
        "text/event-stream" => sse_data(&text)
            .iter()
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .flat_map(flatten)
            .collect(),
        "application/json" | "" => {
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| ResponseError::NotJsonRpc(e.to_string()))?;
            flatten(v)
        }
        other => return Err(ResponseError::ContentType(other.to_owned())),
    };
    Ok(messages.into_iter().find(|m| {
        m.get("id") == Some(id) && (m.get("result").is_some() || m.get("error").is_some())
    }))
}

fn flatten(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items,
        one => vec![one],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_and_batches() {
        let one = br#"{"jsonrpc":"2.0","id":1,"result":{"ok":true}}"#;
        assert_eq!(
            response_for(Some("application/json; charset=utf-8"), one, &json!(1))
                .unwrap()
                .unwrap()["result"]["ok"],
            true
        );
        let batch = br#"[{"jsonrpc":"2.0","method":"notifications/x"},{"jsonrpc":"2.0","id":"a","error":{"code":-32601,"message":"no"}}]"#;
        let r = response_for(Some("application/json"), batch, &json!("a"))
            .unwrap()
            .unwrap();
        assert_eq!(r["error"]["code"], -32601);
        assert_eq!(
            response_for(Some("application/json"), one, &json!(2)).unwrap(),
            None
        );
        assert!(response_for(Some("application/json"), b"<html>", &json!(1)).is_err());
        assert!(response_for(Some("text/html"), b"<html>", &json!(1)).is_err());
    }

    #[test]
    fn event_streams_skip_other_messages() {
        let body = "id: 0\nretry: 500\ndata: \n\n\
event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n\
event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\ndata: \"result\":{\"n\":1}}\n\n";
        let r = response_for(Some("text/event-stream"), body.as_bytes(), &json!(3))
            .unwrap()
            .unwrap();
        assert_eq!(r["result"]["n"], 1);
        assert_eq!(
            sse_data("data:x\r\ndata: y\r\n\r\n"),
            vec!["x\ny".to_owned()]
        );
    }
}
