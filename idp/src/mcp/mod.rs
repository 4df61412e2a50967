//! What an app needs to talk to an MCP server over Streamable HTTP as the
//! signed-in user, without a full MCP SDK: [`Session`] builds the requests
//! (JSON-RPC messages, `Accept`, `Mcp-Session-Id`, `Mcp-Protocol-Version`)
//! and reads the answers, JSON or `text/event-stream`, doing no I/O itself;
//! [`Session::call`] sends through any [`HttpClient`]. The Workers
//! `McpClient` carries the same session over `AuthedFetch`, with every token
//! rule it applies.
//!
//! ```
//! use idp::mcp::{response_for, MCP_ACCEPT};
//!
//! let sse = b"event: message\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"tools\":[]}}\n\n";
//! let reply = response_for(Some("text/event-stream"), sse, &serde_json::json!(7)).unwrap();
//! assert_eq!(reply.unwrap()["result"]["tools"], serde_json::json!([]));
//! assert_eq!(MCP_ACCEPT, "application/json, text/event-stream");
//! ```

mod headers;
mod session;
use crate::http::{HttpClient, HttpRequest, HttpResponse};
pub use headers::{header_params, header_value, usable_tools, HeaderParam, PARAM_HEADER_PREFIX};
use serde_json::{json, Value};
pub use session::Session;
use std::collections::BTreeMap;
use url::Url;

/// The `Accept` header of every MCP request.
pub const MCP_ACCEPT: &str = "application/json, text/event-stream";

/// The session header servers assign on `initialize`.
pub const SESSION_HEADER: &str = "mcp-session-id";

/// The header naming the negotiated protocol version.
pub const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";

/// The header naming the method of a request (revision 2026-07-28).
pub const METHOD_HEADER: &str = "mcp-method";

/// The header naming the tool, prompt or resource a request is about
/// (revision 2026-07-28).
pub const NAME_HEADER: &str = "mcp-name";

/// The revision without `initialize` or sessions: every request carries its
/// version and the client's description in `_meta`, and `server/discover`
/// tells what the server speaks.
pub const STATELESS_PROTOCOL_VERSION: &str = "2026-07-28";

/// The revision idp announces in `initialize` to servers of the earlier
/// revisions.
pub const LEGACY_PROTOCOL_VERSION: &str = "2025-11-25";

/// Whether `version` is a revision without `initialize` and sessions
/// (2026-07-28 or later: revisions are dates, so they order as text).
pub fn is_stateless(version: &str) -> bool {
    version.len() == 10 && version >= STATELESS_PROTOCOL_VERSION
}

/// The method that asks a server which revisions it speaks.
pub const DISCOVER: &str = "server/discover";

/// The prefix of the `_meta` keys the protocol reserves.
const META: &str = "io.modelcontextprotocol/";

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

/// A JSON-RPC error answered by the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the MCP server answered error {code}: {message}")]
pub struct RpcError {
    /// The code.
    pub code: i64,
    /// The message.
    pub message: String,
    /// The data, if any.
    pub data: Option<Value>,
}

/// Why a call to an MCP server failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// The request did not complete.
    #[error("the MCP server could not be reached: {0}")]
    Transport(String),
    /// The server answered this HTTP status.
    #[error("the MCP server answered HTTP {0}")]
    Status(u16),
    /// The server answered with a JSON-RPC error.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The answer was not the JSON-RPC response expected.
    #[error("{0}")]
    Protocol(String),
}

/// The `result` of a JSON-RPC response, or its `error`.
pub fn result_of(reply: Value) -> Result<Value, RpcError> {
    match reply.get("error") {
        Some(e) => Err(RpcError {
            code: e["code"].as_i64().unwrap_or_default(),
            message: e["message"].as_str().unwrap_or_default().to_owned(),
            data: e.get("data").cloned(),
        }),
        None => Ok(reply.get("result").cloned().unwrap_or(Value::Null)),
    }
}

/// The JSON-RPC error code of an unsupported protocol version (revision
/// 2026-07-28).
pub const UNSUPPORTED_VERSION: i64 = -32022;

/// Whether `error` refuses a request's protocol version while listing the
/// stateless revision among those the server supports (`data.supported`):
/// the request is then worth sending once more as it was.
pub fn supports_stateless_after_all(error: &RpcError) -> bool {
    error.code == UNSUPPORTED_VERSION
        && error
            .data
            .as_ref()
            .and_then(|d| d.get("supported"))
            .and_then(Value::as_array)
            .is_some_and(|v| v.iter().any(|s| s == STATELESS_PROTOCOL_VERSION))
}

/// [`supports_stateless_after_all`] for a whole answer (any message id).
pub fn refused_version_but_supports_stateless(resp: &HttpResponse) -> bool {
    if resp.is_success() {
        return false;
    }
    let Ok(reply) = crate::encoding::json_from_bytes::<Value>(&resp.body) else {
        return false;
    };
    matches!(result_of(reply), Err(e) if supports_stateless_after_all(&e))
}

fn client_info() -> Value {
    json!({"name": "idp", "version": env!("CARGO_PKG_VERSION")})
}

/// The `initialize` parameters idp sends.
pub fn initialize_params() -> Value {
    json!({
        "protocolVersion": LEGACY_PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": client_info(),
    })
}

/// `params` with the `_meta` every request of a stateless revision carries
/// (protocol version, client description and capabilities); keys the caller
/// set are kept.
pub fn with_request_meta(params: Value, version: &str) -> Value {
    let mut params = match params {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    let meta = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Default::default()));
    if !meta.is_object() {
        *meta = Value::Object(Default::default());
    }
    if let Value::Object(m) = meta {
        m.entry(format!("{META}protocolVersion"))
            .or_insert_with(|| json!(version));
        m.entry(format!("{META}clientInfo"))
            .or_insert_with(client_info);
        m.entry(format!("{META}clientCapabilities"))
            .or_insert_with(|| json!({}));
    }
    Value::Object(params)
}

/// The name a request is about, for the `Mcp-Name` header: the tool or
/// prompt of `tools/call` and `prompts/get`, the URI of `resources/read`.
fn name_of<'a>(method: &str, params: &'a Value) -> Option<&'a str> {
    let key = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => return None,
    };
    params.get(key).and_then(Value::as_str)
}

/// The server's description in a `server/discover` or `initialize` result:
/// (name, version).
pub fn server_info(result: &Value) -> (String, String) {
    let info = result
        .get("serverInfo")
        .or_else(|| result.get("_meta")?.get(format!("{META}serverInfo")))
        .cloned()
        .unwrap_or_default();
    let text = |k: &str| {
        info.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (text("name"), text("version"))
}

/// A result that asks the client for input before its request can
/// complete (revision 2026-07-28's multi-round-trip requests): the requests
/// to answer (an elicitation, a sampling, ...), by key, and the server's
/// opaque state. The client answers each request, then sends the original
/// request again, with a new id, through [`InputRequired::retry_params`].
///
/// ```
/// use idp::mcp::InputRequired;
/// use serde_json::json;
///
/// let result = json!({"resultType": "input_required",
///     "inputRequests": {"confirm": {"method": "elicitation/create", "params": {}}},
///     "requestState": "opaque-1"});
/// let asked = InputRequired::of(&result).unwrap();
/// assert_eq!(asked.input_requests["confirm"]["method"], "elicitation/create");
/// let mut answers = serde_json::Map::new();
/// answers.insert("confirm".into(), json!({"action": "accept", "content": {}}));
/// let retry = asked.retry_params(json!({"name": "deploy"}), answers);
/// assert_eq!(retry["requestState"], "opaque-1");
/// assert_eq!(retry["inputResponses"]["confirm"]["action"], "accept");
/// // A result without `resultType` is complete.
/// assert!(InputRequired::of(&json!({"content": []})).is_none());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct InputRequired {
    /// What the server asks, by key.
    pub input_requests: serde_json::Map<String, Value>,
    /// The server's state, echoed exactly as received (never read); absent
    /// when the server sent none.
    pub request_state: Option<Value>,
}

impl InputRequired {
    /// The input a result asks for: `None` for a complete result
    /// (`resultType` `complete`, or none at all).
    pub fn of(result: &Value) -> Option<Self> {
        if result.get("resultType").and_then(Value::as_str) != Some("input_required") {
            return None;
        }
        Some(Self {
            input_requests: result
                .get("inputRequests")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            request_state: result.get("requestState").cloned(),
        })
    }

    /// The original request's `params` with the answers (`inputResponses`)
    /// and the state as received; any answers or state already in `params`
    /// (from another request) are replaced, never carried over.
    pub fn retry_params(&self, params: Value, responses: serde_json::Map<String, Value>) -> Value {
        let mut params = match params {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        params.remove("requestState");
        params.insert("inputResponses".into(), Value::Object(responses));
        if let Some(state) = &self.request_state {
            params.insert("requestState".into(), state.clone());
        }
        Value::Object(params)
    }
}

/// How a `server/discover` answer ends the negotiation.
#[derive(Debug, Clone, PartialEq)]
pub enum Discovered {
    /// The server speaks this stateless revision; its `server/discover` result.
    Stateless(String, Value),
    /// The server does not: an earlier revision, reached with `initialize`.
    Legacy,
}

/// Reads the answer to `server/discover` (request `id`, sent with
/// [`STATELESS_PROTOCOL_VERSION`]): a result names the revisions the server
/// supports; any other error but 401 and 403 (which the caller handles as
/// authorization) means a server of an earlier revision.
pub fn read_discover(id: u64, resp: &HttpResponse) -> Result<Discovered, McpError> {
    if matches!(resp.status, 401 | 403) {
        return Err(McpError::Status(resp.status));
    }
    if !resp.is_success() {
        return Ok(Discovered::Legacy);
    }
    let reply = match response_for(resp.header("content-type"), &resp.body, &json!(id)) {
        Ok(Some(r)) => r,
        _ => return Ok(Discovered::Legacy),
    };
    let Ok(result) = result_of(reply) else {
        return Ok(Discovered::Legacy);
    };
    let supported: Vec<&str> = result
        .get("supportedVersions")
        .and_then(Value::as_array)
        .map(|v| v.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if supported.is_empty() || supported.contains(&STATELESS_PROTOCOL_VERSION) {
        return Ok(Discovered::Stateless(
            STATELESS_PROTOCOL_VERSION.to_owned(),
            result,
        ));
    }
    Ok(Discovered::Legacy)
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

    #[test]
    fn a_session_numbered_from_the_clock_never_repeats_the_id_before_it() {
        let url: Url = "https://mcp.example/mcp".parse().unwrap();
        let body = |r: &HttpRequest| serde_json::from_slice::<Value>(&r.body).unwrap();
        let (first, req) = Session::new(url.clone())
            .starting_at(1_700_000_000_000)
            .request("tools/call", json!({}));
        assert_eq!(body(&req)["id"], 1_700_000_000_000u64);
        let (retry, _) = Session::new(url)
            .starting_at(1_700_000_000_007)
            .request("tools/call", json!({}));
        assert_ne!(first, retry);
    }
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
    #[test]
    fn a_session_over_the_scripted_client() {
        use crate::testing::{block_on, Script};
        let url = "https://mcp.example/mcp";
        let script = Script::new()
            .raw(
                url,
                HttpResponse::new(
                    200,
                    r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","serverInfo":{"name":"s","version":"1"}}}"#,
                )
                .with_header("content-type", "application/json")
                .with_header("mcp-session-id", "abc"),
            )
            .raw(url, HttpResponse::new(202, ""))
            .raw(
                url,
                HttpResponse::new(
                    200,
                    "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-32601,\"message\":\"no\"}}\n\n",
                )
                .with_header("content-type", "text/event-stream"),
            );
        let mut s = Session::new(url.parse().unwrap());
        let init = block_on(s.initialize(&script)).unwrap();
        assert_eq!(init["serverInfo"]["name"], "s");
        let e = block_on(s.call(&script, "nope", json!({}))).unwrap_err();
        assert_eq!(
            e,
            McpError::Rpc(RpcError {
                code: -32601,
                message: "no".into(),
                data: None
            })
        );
        let reqs = script.requests();
        assert_eq!(reqs.len(), 3);
        assert_eq!(reqs[0].header(SESSION_HEADER), None);
        for r in &reqs[1..] {
            assert_eq!(r.header(SESSION_HEADER), Some("abc"));
            assert_eq!(r.header(PROTOCOL_VERSION_HEADER), Some("2025-06-18"));
        }
        let note: Value = serde_json::from_slice(&reqs[1].body).unwrap();
        assert_eq!(note["method"], "notifications/initialized");
        assert!(note.get("id").is_none());
        // A refused request is an HTTP status, not a protocol error.
        let refused = Script::new().status(url, 401);
        let mut s = Session::new(url.parse().unwrap());
        assert_eq!(
            block_on(s.call(&refused, "tools/list", json!({}))).unwrap_err(),
            McpError::Status(401)
        );
    }

    #[test]
    fn connect_agrees_on_the_stateless_revision_or_falls_back_to_initialize() {
        use crate::testing::{block_on, Script};
        let url = "https://mcp.example/mcp";
        let discovered = r#"{"jsonrpc":"2.0","id":1,"result":{"supportedVersions":["2026-07-28"],"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"s","version":"2"}}}}"#;
        let script = Script::new()
            .raw(
                url,
                HttpResponse::new(200, discovered)
                    .with_header("content-type", "application/json")
                    .with_header("mcp-session-id", "ignored"),
            )
            .raw(
                url,
                HttpResponse::new(200, r#"{"jsonrpc":"2.0","id":2,"result":{}}"#)
                    .with_header("content-type", "application/json"),
            );
        let mut s = Session::new(url.parse().unwrap());
        let result = block_on(s.connect(&script)).unwrap();
        assert_eq!(server_info(&result), ("s".into(), "2".into()));
        assert_eq!(s.protocol_version(), Some(STATELESS_PROTOCOL_VERSION));
        assert_eq!(s.session_id(), None);
        block_on(s.call(
            &script,
            "tools/call",
            json!({"name": "echo", "arguments": {}}),
        ))
        .unwrap();
        let reqs = script.requests();
        let call = &reqs[1];
        assert_eq!(call.header(PROTOCOL_VERSION_HEADER), Some("2026-07-28"));
        assert_eq!(call.header(METHOD_HEADER), Some("tools/call"));
        assert_eq!(call.header(NAME_HEADER), Some("echo"));
        assert_eq!(call.header(SESSION_HEADER), None);
        let body: Value = serde_json::from_slice(&call.body).unwrap();
        assert_eq!(
            body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
            "2026-07-28"
        );
        assert!(body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"].is_object());

        // A server of an earlier revision refuses `server/discover`.
        let legacy = Script::new()
            .status(url, 400)
            .raw(
                url,
                HttpResponse::new(
                    200,
                    r#"{"jsonrpc":"2.0","id":2,"result":{"protocolVersion":"2025-11-25","serverInfo":{"name":"old","version":"1"}}}"#,
                )
                .with_header("content-type", "application/json")
                .with_header("mcp-session-id", "abc"),
            )
            .raw(url, HttpResponse::new(202, ""));
        let mut s = Session::new(url.parse().unwrap());
        let result = block_on(s.connect(&legacy)).unwrap();
        assert_eq!(server_info(&result).0, "old");
        assert_eq!(s.protocol_version(), Some("2025-11-25"));
        assert_eq!(s.session_id(), Some("abc"));
        // An authorization answer is the caller's, not a revision's.
        let refused = Script::new().status(url, 401);
        let mut s = Session::new(url.parse().unwrap());
        assert_eq!(
            block_on(s.connect(&refused)).unwrap_err(),
            McpError::Status(401)
        );
    }
}
