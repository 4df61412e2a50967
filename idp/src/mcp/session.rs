//! [`Session`]: one conversation with an MCP server, over the engine's
//! [`HttpClient`].

use super::*;

/// One client's conversation with one MCP server: ids, the session the
/// server assigned and the protocol version agreed. It builds requests and
/// reads answers; it sends nothing itself.
///
/// ```
/// use idp::http::HttpResponse;
/// use idp::mcp::Session;
///
/// let mut s = Session::new("https://mcp.example/mcp".parse().unwrap());
/// let (id, req) = s.request("tools/list", serde_json::json!({}));
/// assert_eq!(req.header("accept"), Some("application/json, text/event-stream"));
/// let answer = HttpResponse::new(200, format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"tools":[]}}}}"#))
///     .with_header("content-type", "application/json")
///     .with_header("mcp-session-id", "s1");
/// assert_eq!(s.read(Some(id), &answer).unwrap().unwrap()["tools"], serde_json::json!([]));
/// assert_eq!(s.session_id(), Some("s1"));
/// ```
#[derive(Debug, Clone)]
pub struct Session {
    url: Url,
    session_id: Option<String>,
    protocol_version: Option<String>,
    next_id: u64,
    discover_id: Option<u64>,
    list_id: Option<u64>,
    tool_headers: BTreeMap<String, Vec<HeaderParam>>,
}

impl Session {
    /// A new conversation with the server at `url`.
    pub fn new(url: Url) -> Self {
        Self {
            url,
            session_id: None,
            protocol_version: None,
            next_id: 1,
            discover_id: None,
            list_id: None,
            tool_headers: BTreeMap::new(),
        }
    }

    /// Numbers requests from `id` on (1 by default). A client made anew for
    /// each of a program's requests (as on Workers) starts from the clock,
    /// so a request sent again, as a multi-round-trip retry is, never
    /// repeats the id of the one before it.
    pub fn starting_at(mut self, id: u64) -> Self {
        self.next_id = id.max(1);
        self
    }

    /// The mirrored parameters of the tools listed so far (to keep with the
    /// session: a `tools/call` sends them as headers).
    pub fn tool_headers(&self) -> &BTreeMap<String, Vec<HeaderParam>> {
        &self.tool_headers
    }

    /// Knows these tools' mirrored parameters, as listed earlier.
    pub fn with_tool_headers(mut self, known: BTreeMap<String, Vec<HeaderParam>>) -> Self {
        self.tool_headers = known;
        self
    }

    /// Continues a session the server assigned earlier.
    pub fn with_session_id(mut self, id: impl Into<String>) -> Self {
        self.session_id = Some(id.into());
        self
    }

    /// Sends `Mcp-Protocol-Version` from now on.
    pub fn with_protocol_version(mut self, version: impl Into<String>) -> Self {
        self.protocol_version = Some(version.into());
        self
    }

    /// The session the server assigned, if any.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// The server's URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The protocol version agreed, if known.
    pub fn protocol_version(&self) -> Option<&str> {
        self.protocol_version.as_deref()
    }

    /// Forgets the session (the server ended it): the next request must be
    /// an `initialize`.
    pub fn end(&mut self) {
        self.session_id = None;
    }

    /// Whether the agreed revision is a stateless one (no session, `_meta`
    /// on every request).
    pub fn is_stateless(&self) -> bool {
        self.protocol_version.as_deref().is_some_and(is_stateless)
    }

    fn post(&self, message: &Value, version: Option<&str>) -> HttpRequest {
        let mut req = HttpRequest::post_json(self.url.clone(), message);
        req.headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case("accept"));
        req.headers.push(("accept".into(), MCP_ACCEPT.into()));
        let stateless = version.is_some_and(is_stateless);
        if let (Some(s), false) = (&self.session_id, stateless) {
            req.headers.push((SESSION_HEADER.into(), s.clone()));
        }
        if let Some(v) = version {
            req.headers
                .push((PROTOCOL_VERSION_HEADER.into(), v.to_owned()));
        }
        if message.get("method").and_then(Value::as_str) == Some("tools/call") {
            let params = &message["params"];
            let tool = params
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if let Some(known) = self.tool_headers.get(tool) {
                let arguments = params.get("arguments").unwrap_or(&Value::Null);
                req.headers.extend(headers::param_headers(known, arguments));
            }
        }
        if stateless {
            if let Some(method) = message.get("method").and_then(Value::as_str) {
                req.headers.push((METHOD_HEADER.into(), method.to_owned()));
                if let Some(name) = name_of(method, &message["params"]) {
                    req.headers.push((NAME_HEADER.into(), name.to_owned()));
                }
            }
        }
        req
    }

    fn message(
        &self,
        id: Option<u64>,
        method: &str,
        params: Option<Value>,
        version: Option<&str>,
    ) -> HttpRequest {
        let mut message = json!({"jsonrpc": "2.0", "method": method});
        if let Some(id) = id {
            message["id"] = json!(id);
        }
        let params = match version.filter(|v| is_stateless(v)) {
            Some(v) => Some(with_request_meta(params.unwrap_or_else(|| json!({})), v)),
            None => params,
        };
        if let Some(p) = params {
            message["params"] = p;
        }
        self.post(&message, version)
    }

    /// A request: its id and the HTTP request that carries it (for a
    /// stateless revision, with `_meta`, `Mcp-Method` and `Mcp-Name`). A
    /// `server/discover` is always sent for [`STATELESS_PROTOCOL_VERSION`];
    /// its result, read with [`Session::read`], agrees on that revision.
    pub fn request(&mut self, method: &str, params: Value) -> (u64, HttpRequest) {
        let id = self.next_id;
        self.next_id += 1;
        if method == "tools/list" {
            self.list_id = Some(id);
        }
        let version = if method == DISCOVER {
            self.discover_id = Some(id);
            Some(STATELESS_PROTOCOL_VERSION.to_owned())
        } else {
            self.protocol_version.clone()
        };
        (
            id,
            self.message(Some(id), method, Some(params), version.as_deref()),
        )
    }

    /// A notification.
    pub fn notification(&self, method: &str, params: Option<Value>) -> HttpRequest {
        self.message(None, method, params, self.protocol_version.as_deref())
    }

    /// Reads the answer to the request with `id` (`None` for a
    /// notification): keeps the session the server assigns, notes the
    /// protocol version an `initialize` result agrees on, and returns the
    /// `result`.
    pub fn read(
        &mut self,
        id: Option<u64>,
        resp: &HttpResponse,
    ) -> Result<Option<Value>, McpError> {
        if let (Some(s), false) = (resp.header(SESSION_HEADER), self.is_stateless()) {
            self.session_id = Some(s.to_owned());
        }
        if !resp.is_success() {
            // A JSON-RPC error in a 4xx or 5xx says more than its status;
            // authorization answers stay statuses.
            let rpc = crate::encoding::json_from_bytes::<Value>(&resp.body)
                .ok()
                .filter(|v| v.get("error").is_some() && !matches!(resp.status, 401 | 403))
                .and_then(|v| result_of(v).err());
            return Err(rpc.map_or(McpError::Status(resp.status), McpError::Rpc));
        }
        let Some(id) = id else {
            return Ok(None);
        };
        let reply = response_for(resp.header("content-type"), &resp.body, &json!(id))
            .map_err(|e| McpError::Protocol(e.to_string()))?
            .ok_or_else(|| McpError::Protocol(format!("the answer held no response to id {id}")))?;
        let mut result = result_of(reply)?;
        if self.list_id == Some(id) {
            // Tools with broken header annotations are not offered.
            self.tool_headers.extend(usable_tools(&mut result));
        }
        if self.discover_id == Some(id) {
            self.protocol_version = Some(STATELESS_PROTOCOL_VERSION.to_owned());
            self.session_id = None;
        }
        if let Some(v) = result.get("protocolVersion").and_then(Value::as_str) {
            if result.get("serverInfo").is_some() {
                self.protocol_version = Some(v.to_owned());
            }
        }
        Ok(Some(result))
    }

    /// Sends a request through `http` and returns its `result`.
    pub async fn call(
        &mut self,
        http: &impl HttpClient,
        method: &str,
        params: Value,
    ) -> Result<Value, McpError> {
        let (id, req) = self.request(method, params);
        let resp = http
            .send(req)
            .await
            .map_err(|e| McpError::Transport(e.message))?;
        Ok(self.read(Some(id), &resp)?.unwrap_or(Value::Null))
    }

    /// Sends a notification through `http`.
    pub async fn notify(
        &mut self,
        http: &impl HttpClient,
        method: &str,
        params: Option<Value>,
    ) -> Result<(), McpError> {
        let resp = http
            .send(self.notification(method, params))
            .await
            .map_err(|e| McpError::Transport(e.message))?;
        self.read(None, &resp).map(|_| ())
    }

    /// Agrees on a revision: `server/discover` for the stateless one, and
    /// for a server of an earlier revision `initialize`; returns that
    /// result (with `serverInfo`, in `_meta` for `server/discover`).
    pub async fn connect(&mut self, http: &impl HttpClient) -> Result<Value, McpError> {
        let mut retried = false;
        let (id, resp) = loop {
            let (id, req) = self.request(DISCOVER, json!({}));
            let resp = http
                .send(req)
                .await
                .map_err(|e| McpError::Transport(e.message))?;
            // Refused with the stateless revision listed as supported: once
            // more, as it was.
            if retried || !refused_version_but_supports_stateless(&resp) {
                break (id, resp);
            }
            retried = true;
        };
        match read_discover(id, &resp)? {
            Discovered::Stateless(version, result) => {
                self.protocol_version = Some(version);
                self.session_id = None;
                Ok(result)
            }
            Discovered::Legacy => {
                self.discover_id = None;
                self.initialize(http).await
            }
        }
    }

    /// `initialize` then `notifications/initialized`: the `initialize`
    /// result (`serverInfo`, `protocolVersion`, `capabilities`).
    pub async fn initialize(&mut self, http: &impl HttpClient) -> Result<Value, McpError> {
        let result = self.call(http, "initialize", initialize_params()).await?;
        self.notify(http, "notifications/initialized", None).await?;
        Ok(result)
    }
}
