//! [`McpClient`]: calling an MCP server over Streamable HTTP as the signed-in
//! user, through [`AuthedFetch`] (so every token rule applies: refresh and
//! retry on 401, step-up and re-authorization as typed errors), with the
//! engine's [`crate::mcp::Session`] building the messages and reading the
//! answers.

use super::error::Error as WorkersError;
use super::fetch::{AuthedFetch, OutgoingRequest};
use crate::http::{HttpClient, HttpRequest, HttpResponse};
use crate::mcp::Session;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::cell::RefCell;

/// What went wrong talking to an MCP server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// The request could not be made as the user: among others
    /// [`WorkersError::AuthorizationRequired`], with the URL that
    /// (re-)authorizes.
    #[error(transparent)]
    Request(#[from] WorkersError),
    /// The server's answer: an HTTP status, a JSON-RPC error
    /// ([`crate::mcp::McpError::Rpc`]), or not JSON-RPC.
    #[error(transparent)]
    Mcp(#[from] crate::mcp::McpError),
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

impl ServerInfo {
    fn of(init: &Value) -> Self {
        let (name, version) = crate::mcp::server_info(init);
        ServerInfo {
            name,
            version,
            protocol_version: init["protocolVersion"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        }
    }
}

/// An MCP client for one server, as the signed-in user.
///
/// ```no_run
/// # async fn run(cx: idp::workers::AppContext<'_>) -> Result<(), idp::workers::McpError> {
/// use idp::workers::McpClient;
///
/// let mcp = McpClient::new(cx.fetch, "https://mcp.example.com/mcp")?;
/// let server = mcp.connect().await?;
/// let tools = mcp.list_tools().await?;
/// let result = mcp.call_tool(&tools[0].name, serde_json::json!({})).await?;
/// # let _ = (server, result); Ok(()) }
/// ```
#[derive(Debug)]
pub struct McpClient<'a> {
    fetch: AuthedFetch<'a>,
    session: RefCell<Session>,
}

impl<'a> McpClient<'a> {
    /// A client for the server at `url` (its Streamable HTTP endpoint).
    pub fn new(fetch: AuthedFetch<'a>, url: &str) -> Result<Self, McpError> {
        let url = url::Url::parse(url).map_err(|e| {
            WorkersError::Engine(crate::Error::InvalidUrl {
                input: url.to_owned(),
                reason: e.to_string(),
            })
        })?;
        Ok(Self {
            fetch,
            // Ids from the clock (milliseconds): one client per request of
            // the Worker never sends a retry under the id of the request
            // before it.
            session: RefCell::new(Session::new(url).starting_at(js_sys::Date::now() as u64)),
        })
    }

    /// Continues a session the server assigned earlier (`Mcp-Session-Id`).
    pub fn with_session(self, session_id: impl Into<String>) -> Self {
        self.session
            .replace_with(|s| s.clone().with_session_id(session_id));
        self
    }

    /// Sends `Mcp-Protocol-Version` (as after an `initialize` made
    /// elsewhere).
    pub fn with_protocol_version(self, version: impl Into<String>) -> Self {
        self.session
            .replace_with(|s| s.clone().with_protocol_version(version));
        self
    }

    /// Knows these tools' mirrored parameters (`x-mcp-header`), as listed
    /// earlier, so a `tools/call` sends them as `Mcp-Param-*` headers.
    pub fn with_tool_headers(
        self,
        known: std::collections::BTreeMap<String, Vec<crate::mcp::HeaderParam>>,
    ) -> Self {
        self.session
            .replace_with(|s| s.clone().with_tool_headers(known));
        self
    }

    /// The mirrored parameters of the tools listed so far.
    pub fn tool_headers(&self) -> std::collections::BTreeMap<String, Vec<crate::mcp::HeaderParam>> {
        self.session.borrow().tool_headers().clone()
    }

    /// The session the server assigned, if any.
    pub fn session_id(&self) -> Option<String> {
        self.session.borrow().session_id().map(str::to_owned)
    }

    /// The protocol version agreed, if known.
    pub fn protocol_version(&self) -> Option<String> {
        self.session.borrow().protocol_version().map(str::to_owned)
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        self.server_url().into()
    }

    pub(crate) fn server_url(&self) -> url::Url {
        self.session.borrow().url().clone()
    }

    /// Agrees on a revision with the server: `server/discover` (revision
    /// 2026-07-28, no session), else `initialize` for a server of an
    /// earlier revision; returns what the server says of itself.
    pub async fn connect(&self) -> Result<ServerInfo, McpError> {
        let mut answer = self.request(crate::mcp::DISCOVER, json!({})).await;
        if let Err(McpError::Mcp(crate::mcp::McpError::Rpc(e))) = &answer {
            // The version refused, yet listed as supported: once more.
            if crate::mcp::supports_stateless_after_all(e) {
                answer = self.request(crate::mcp::DISCOVER, json!({})).await;
            }
        }
        match answer {
            Ok(result) => {
                let mut info = ServerInfo::of(&result);
                info.protocol_version = self.protocol_version().unwrap_or_default();
                Ok(info)
            }
            // Authorization and transport failures are the caller's, as
            // for any request; any other error means an earlier revision.
            Err(e @ McpError::Request(_))
            | Err(e @ McpError::Mcp(crate::mcp::McpError::Status(401 | 403)))
            | Err(e @ McpError::Mcp(crate::mcp::McpError::Transport(_))) => Err(e),
            Err(McpError::Mcp(_)) => self.initialize().await,
        }
    }

    /// `initialize`, then `notifications/initialized` (revisions before
    /// 2026-07-28; [`McpClient::connect`] chooses).
    pub async fn initialize(&self) -> Result<ServerInfo, McpError> {
        let init = self
            .request("initialize", crate::mcp::initialize_params())
            .await?;
        self.notify("notifications/initialized", None).await?;
        Ok(ServerInfo::of(&init))
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
                .map_err(|e| crate::mcp::McpError::Protocol(format!("tools/list: {e}")))?;
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

    /// `tools/call` for a tool that may ask for input first (revision
    /// 2026-07-28's multi-round-trip requests): each request the server
    /// asks (`inputRequests`, by key) goes to `answer`, whose results are
    /// sent back with the server's `requestState` as received, in a new
    /// request, at most [`MAX_INPUT_ROUNDS`] times; the complete result.
    pub async fn call_tool_answering(
        &self,
        name: &str,
        arguments: Value,
        mut answer: impl FnMut(&str, &Value) -> Value,
    ) -> Result<Value, McpError> {
        let first = json!({ "name": name, "arguments": arguments });
        let mut result = self.request("tools/call", first.clone()).await?;
        for _ in 0..MAX_INPUT_ROUNDS {
            let Some(asked) = crate::mcp::InputRequired::of(&result) else {
                return Ok(result);
            };
            let answers = asked
                .input_requests
                .iter()
                .map(|(key, request)| (key.clone(), answer(key, request)))
                .collect();
            result = self
                .request("tools/call", asked.retry_params(first.clone(), answers))
                .await?;
        }
        Err(McpError::Mcp(crate::mcp::McpError::Protocol(format!(
            "tools/call {name}: still asking for input after {MAX_INPUT_ROUNDS} rounds"
        ))))
    }

    /// Sends one JSON-RPC request and returns its `result`. A 404 to a
    /// request in a session means the server ended it (MCP Streamable HTTP):
    /// the session is forgotten, so the next request must be `initialize`.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, McpError> {
        let (id, req) = self.session.borrow_mut().request(method, params);
        let resp = self.send(req).await?;
        let mut session = self.session.borrow_mut();
        if resp.status == 404 && session.session_id().is_some() {
            session.end();
        }
        Ok(session.read(Some(id), &resp)?.unwrap_or(Value::Null))
    }

    /// Sends one JSON-RPC notification.
    pub async fn notify(&self, method: &str, params: Option<Value>) -> Result<(), McpError> {
        let req = self.session.borrow().notification(method, params);
        let resp = self.send(req).await?;
        self.session.borrow_mut().read(None, &resp)?;
        Ok(())
    }

    /// Sends an engine request through [`AuthedFetch`] and reads the answer
    /// back into an engine response.
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, McpError> {
        let mut out =
            OutgoingRequest::new(worker::Method::Post, req.url.to_string()).body(req.body);
        for (n, v) in &req.headers {
            out = out.header(n, v);
        }
        let mut resp = self.fetch.send(out).await?;
        let status = resp.status_code();
        let headers: Vec<(String, String)> = resp.headers().entries().collect();
        let body = self.fetch.read_body(&mut resp, req.url.as_str()).await?;
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

/// For an MCP server just connected: its `serverInfo` name as the provider's
/// name, and `{"mcp": {"server": {name, version}, "protocol_version",
/// "tools": [names]}}` as its metadata. Call it from your
/// [`OnAuthSuccess::on_auth_success`](super::OnAuthSuccess::on_auth_success)
/// (it runs in the user's object, with the new token, on
/// [`Connected::connected_url`](super::Connected::connected_url)); an error
/// means the resource did not answer as an MCP server.
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
    // The engine's client, with the new token (and its proof) on each
    // request; a bound token's request is sent once more with the nonce a
    // 401 asked for (RFC 9449 §9).
    let http = &http;
    let authed = |req: HttpRequest| async move {
        let mut first = req.clone();
        first
            .headers
            .extend(c.token_headers(req.method.as_str(), &req.url));
        let resp = http.send(first).await?;
        match resp.header(crate::dpop::NONCE_HEADER) {
            Some(nonce) if resp.status == 401 && c.dpop.is_some() => {
                super::http::nonces().keep(&req.url, nonce, super::http::now());
                let mut again = req;
                again
                    .headers
                    .extend(c.token_headers(again.method.as_str(), &again.url));
                http.send(again).await
            }
            _ => Ok(resp),
        }
    };
    let mut session = Session::new(url);
    let init = session.connect(&authed).await.map_err(|e| e.to_string())?;
    let mut server = ServerInfo::of(&init);
    server.protocol_version = session.protocol_version().unwrap_or_default().to_owned();
    if server.name.is_empty() {
        return Err("no serverInfo.name in the initialize answer".into());
    }
    let tools: Vec<String> = session
        .call(&authed, "tools/list", json!({}))
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
        .unwrap_or_default();
    Ok(super::ProviderInfo {
        account: None,
        name: server.name.clone(),
        metadata: json!({
            "mcp": {
                "server": {"name": server.name, "version": server.version},
                "protocol_version": server.protocol_version,
                "tools": tools,
            }
        }),
    })
}

/// The most rounds of input [`McpClient::call_tool_answering`] answers.
pub const MAX_INPUT_ROUNDS: usize = 8;
