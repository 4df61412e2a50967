//! [`McpClient`]: calling an MCP server over Streamable HTTP as the signed-in
//! user, through [`AuthedFetch`] (so every token rule applies: refresh and
//! retry on 401, step-up and re-authorization as typed errors).

use super::fetch::{AuthedFetch, OutgoingRequest};
use super::handler::Error as WorkersError;
use crate::mcp::{response_for, MCP_ACCEPT, PROTOCOL_VERSION_HEADER, SESSION_HEADER};
use crate::probe::MCP_PROTOCOL_VERSION;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use worker::Method;

/// What went wrong talking to an MCP server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// The request could not be made as the user: among others
    /// [`WorkersError::AuthorizationRequired`], with the URL that
    /// (re-)authorizes.
    #[error(transparent)]
    Request(#[from] WorkersError),
    /// The server answered this HTTP status.
    #[error("the MCP server answered HTTP {status}")]
    Status {
        /// The status.
        status: u16,
    },
    /// The server answered with a JSON-RPC error.
    #[error("the MCP server answered error {code}: {message}")]
    Rpc {
        /// The JSON-RPC error code.
        code: i64,
        /// Its message.
        message: String,
        /// Its data, if any.
        data: Option<Value>,
    },
    /// The answer was not the JSON-RPC response expected.
    #[error("{0}")]
    Protocol(String),
}

/// A tool an MCP server offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Its name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema of its arguments.
    #[serde(default, rename = "inputSchema")]
    pub input_schema: Value,
}

/// What the server said about itself in `initialize`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// `serverInfo.name`.
    pub name: String,
    /// `serverInfo.version`.
    #[serde(default)]
    pub version: String,
    /// The protocol version agreed on.
    #[serde(default)]
    pub protocol_version: String,
}

/// An MCP client for one server, as the signed-in user.
///
/// ```no_run
/// # async fn run(cx: idp::workers::AppContext<'_>) -> Result<(), idp::workers::McpError> {
/// use idp::workers::McpClient;
///
/// let mcp = McpClient::new(cx.fetch, "https://mcp.example.com/mcp");
/// let server = mcp.initialize().await?;
/// let tools = mcp.list_tools().await?;
/// let result = mcp.call_tool(&tools[0].name, serde_json::json!({})).await?;
/// # let _ = (server, result); Ok(()) }
/// ```
#[derive(Debug)]
pub struct McpClient<'a> {
    fetch: AuthedFetch<'a>,
    url: String,
    session: RefCell<Option<String>>,
    protocol: RefCell<Option<String>>,
    next_id: Cell<u64>,
}

impl<'a> McpClient<'a> {
    /// A client for the server at `url` (its Streamable HTTP endpoint).
    pub fn new(fetch: AuthedFetch<'a>, url: impl Into<String>) -> Self {
        Self {
            fetch,
            url: url.into(),
            session: RefCell::new(None),
            protocol: RefCell::new(None),
            next_id: Cell::new(1),
        }
    }

    /// Continues a session the server assigned earlier (`Mcp-Session-Id`).
    pub fn with_session(self, session_id: impl Into<String>) -> Self {
        *self.session.borrow_mut() = Some(session_id.into());
        self
    }

    /// Sends `Mcp-Protocol-Version` (as after an `initialize` made
    /// elsewhere).
    pub fn with_protocol_version(self, version: impl Into<String>) -> Self {
        *self.protocol.borrow_mut() = Some(version.into());
        self
    }

    /// The session the server assigned, if any.
    pub fn session_id(&self) -> Option<String> {
        self.session.borrow().clone()
    }

    /// `initialize`, then `notifications/initialized`.
    pub async fn initialize(&self) -> Result<ServerInfo, McpError> {
        let result = self
            .request(
                "initialize",
                json!({
                    "protocolVersion": MCP_PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "idp", "version": env!("CARGO_PKG_VERSION")},
                }),
            )
            .await?;
        let info = ServerInfo {
            name: result["serverInfo"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            version: result["serverInfo"]["version"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            protocol_version: result["protocolVersion"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        };
        if !info.protocol_version.is_empty() {
            *self.protocol.borrow_mut() = Some(info.protocol_version.clone());
        }
        self.notify("notifications/initialized", None).await?;
        Ok(info)
    }

    /// `tools/list`, following `nextCursor` (at most 20 pages).
    pub async fn list_tools(&self) -> Result<Vec<Tool>, McpError> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..20 {
            let params = match &cursor {
                Some(c) => json!({ "cursor": c }),
                None => json!({}),
            };
            let result = self.request("tools/list", params).await?;
            let page: Vec<Tool> = serde_json::from_value(result["tools"].clone())
                .map_err(|e| McpError::Protocol(format!("tools/list: {e}")))?;
            tools.extend(page);
            match result["nextCursor"].as_str() {
                Some(c) if !c.is_empty() => cursor = Some(c.to_owned()),
                _ => break,
            }
        }
        Ok(tools)
    }

    /// `tools/call`: the tool's result (`content`, `isError`, ...).
    pub async fn call_tool(&self, name: &str, arguments: Value) -> Result<Value, McpError> {
        self.request(
            "tools/call",
            json!({ "name": name, "arguments": arguments }),
        )
        .await
    }

    /// Sends one JSON-RPC request and returns its `result`.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, McpError> {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let reply = self.send(&message).await?;
        let reply = reply.ok_or_else(|| {
            McpError::Protocol(format!("{method}: the answer held no response to id {id}"))
        })?;
        if let Some(e) = reply.get("error") {
            return Err(McpError::Rpc {
                code: e["code"].as_i64().unwrap_or_default(),
                message: e["message"].as_str().unwrap_or_default().to_owned(),
                data: e.get("data").cloned(),
            });
        }
        Ok(reply.get("result").cloned().unwrap_or(Value::Null))
    }

    /// Sends one JSON-RPC notification.
    pub async fn notify(&self, method: &str, params: Option<Value>) -> Result<(), McpError> {
        let mut message = json!({"jsonrpc": "2.0", "method": method});
        if let Some(p) = params {
            message["params"] = p;
        }
        self.send(&message).await.map(|_| ())
    }

    async fn send(&self, message: &Value) -> Result<Option<Value>, McpError> {
        let body = serde_json::to_vec(message).map_err(|e| McpError::Protocol(e.to_string()))?;
        let mut req = OutgoingRequest::new(Method::Post, self.url.clone())
            .header("content-type", "application/json")
            .header("accept", MCP_ACCEPT)
            .body(body);
        if let Some(s) = self.session.borrow().as_deref() {
            req = req.header(SESSION_HEADER, s);
        }
        if let Some(v) = self.protocol.borrow().as_deref() {
            req = req.header(PROTOCOL_VERSION_HEADER, v);
        }
        let mut resp = self.fetch.send(req).await?;
        let status = resp.status_code();
        if let Some(s) = resp.headers().get(SESSION_HEADER).ok().flatten() {
            *self.session.borrow_mut() = Some(s);
        }
        if !(200..300).contains(&status) {
            return Err(McpError::Status { status });
        }
        let Some(id) = message.get("id") else {
            return Ok(None);
        };
        let content_type = resp.headers().get("content-type").ok().flatten();
        let bytes = resp.bytes().await.map_err(WorkersError::from)?;
        response_for(content_type.as_deref(), &bytes, id)
            .map_err(|e| McpError::Protocol(e.to_string()))
    }
}

/// One JSON-RPC message to an MCP server with a bearer token (no
/// `AuthedFetch` in the object): the `result` of a request, `Null` for a
/// notification.
async fn mcp_post(
    http: &super::WorkerHttp,
    url: &url::Url,
    token: Option<&str>,
    session: &mut Option<String>,
    message: Value,
) -> Result<Value, String> {
    use crate::http::{HttpClient, HttpRequest};
    let mut req = HttpRequest::post_json(url.clone(), &message);
    req.headers
        .retain(|(n, _)| !n.eq_ignore_ascii_case("accept"));
    req.headers.push(("accept".into(), MCP_ACCEPT.into()));
    if let Some(t) = token {
        req.headers
            .push(("authorization".into(), format!("Bearer {t}")));
    }
    if let Some(s) = session.as_ref() {
        req.headers.push((SESSION_HEADER.into(), s.clone()));
    }
    let resp = http.send(req).await.map_err(|e| e.message)?;
    if let Some(s) = resp.header(SESSION_HEADER) {
        *session = Some(s.to_owned());
    }
    if !resp.is_success() {
        return Err(format!("HTTP {}", resp.status));
    }
    match message.get("id") {
        None => Ok(Value::Null),
        Some(id) => response_for(resp.header("content-type"), &resp.body, id)
            .map_err(|e| e.to_string())?
            .and_then(|r| r.get("result").cloned())
            .ok_or_else(|| "no result".to_owned()),
    }
}

/// For an MCP server just connected: its `serverInfo` name as the provider's
/// name, and `{"mcp": {"server": {name, version}, "protocol_version",
/// "tools": [names]}}` as its metadata. Call it from your
/// [`OnAuthSuccess::on_auth_success`](super::OnAuthSuccess::on_auth_success)
/// (it runs in the user's object, with the new token); an error means the
/// resource did not answer as an MCP server.
///
/// ```
/// use idp::workers::{mcp_provider_info, Connected, OnAuthSuccess, ProviderInfo};
///
/// struct App;
///
/// impl OnAuthSuccess for App {
///     async fn on_auth_success(&self, c: Connected<'_>) -> Result<ProviderInfo, String> {
///         match mcp_provider_info(&c).await {
///             Ok(info) => Ok(info),
///             Err(_) => Ok(ProviderInfo::default_for(c.resource_url)),
///         }
///     }
/// }
/// ```
pub async fn mcp_provider_info(c: &super::Connected<'_>) -> Result<super::ProviderInfo, String> {
    let url = url::Url::parse(c.connected_url).map_err(|e| e.to_string())?;
    let http = super::WorkerHttp::default();
    let token = c.access_token.map(|t| t.secret());
    let mut session: Option<String> = None;
    let init = mcp_post(
        &http,
        &url,
        token,
        &mut session,
        json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": MCP_PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "idp", "version": env!("CARGO_PKG_VERSION")},
            },
        }),
    )
    .await?;
    let name = init["serverInfo"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or("no serverInfo.name in the initialize answer")?
        .to_owned();
    mcp_post(
        &http,
        &url,
        token,
        &mut session,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await?;
    let tools = mcp_post(
        &http,
        &url,
        token,
        &mut session,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}),
    )
    .await
    .map(|r| {
        r["tools"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    })
    .unwrap_or_else(|_| Vec::<String>::new());
    Ok(super::ProviderInfo {
        name: name.clone(),
        metadata: json!({
            "mcp": {
                "server": {"name": name, "version": init["serverInfo"]["version"]},
                "protocol_version": init["protocolVersion"],
                "tools": tools,
            }
        }),
    })
}
