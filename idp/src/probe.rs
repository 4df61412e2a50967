//! Is a resource public, or does it need authorization?
//!
//! A request without credentials asks. `HEAD` first (`GET` where `HEAD` is
//! not allowed). Servers that only answer the requests their protocol sends
//! get two more tries: an MCP client's first message, a `POST` of a JSON-RPC
//! `initialize` (whose 401 carries the challenge and its `scope`; a 2xx means
//! a public MCP server), then RFC 9728 resource metadata at the well-known
//! locations (path-inserted, then root), as the MCP authorization spec tells
//! clients to look. No probe ever carries credentials.

use crate::challenge::BearerChallenge;
use crate::error::{Error, Result};
use crate::http::{HttpClient, HttpRequest, HttpResponse, Method};
use url::Url;

/// What a request without credentials told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// 2xx without credentials: no token needed.
    Public,
    /// 401: authorization needed; the Bearer challenge, when one was sent.
    NeedsAuthorization(Option<BearerChallenge>),
}

/// A HEAD request without credentials.
pub fn probe_request(url: &Url) -> HttpRequest {
    HttpRequest {
        method: Method::Head,
        url: url.clone(),
        headers: Vec::new(),
        body: Vec::new(),
    }
}

/// Classifies a probe response. Anything but 2xx or 401 is an error saying what
/// came back; so is a 401 whose `WWW-Authenticate` is malformed.
pub fn classify(url: &Url, resp: &HttpResponse) -> Result<Probe> {
    match resp.status {
        200..=299 => Ok(Probe::Public),
        401 => Ok(Probe::NeedsAuthorization(BearerChallenge::from_headers(
            resp.header_values("www-authenticate"),
        )?)),
        status => Err(Error::UnexpectedStatus {
            url: url.clone(),
            status,
            expected:
                "2xx (public) or 401 (authorization required) to a request without credentials",
        }),
    }
}

/// The MCP protocol version the `initialize` probe announces.
pub const MCP_PROTOCOL_VERSION: &str = crate::mcp::LEGACY_PROTOCOL_VERSION;

/// A `POST` of an MCP `server/discover` message without credentials, as a
/// client of revision 2026-07-28 opens (version header, `_meta`,
/// `Mcp-Method`).
pub fn discover_request(url: &Url) -> HttpRequest {
    crate::mcp::Session::new(url.clone())
        .request(crate::mcp::DISCOVER, serde_json::json!({}))
        .1
}

/// A `POST` of an MCP `initialize` message without credentials, as a client
/// of the earlier revisions opens.
pub fn initialize_request(url: &Url) -> HttpRequest {
    crate::mcp::Session::new(url.clone())
        .request("initialize", crate::mcp::initialize_params())
        .1
}

/// Whether a status means "not this way, try another": a 4xx other than 401.
fn try_another(status: u16) -> bool {
    (400..500).contains(&status) && status != 401
}

/// Probes `url` without credentials: `HEAD` (then `GET` on 405 or 501), then,
/// when those answer a 4xx other than 401, an MCP `initialize` `POST`, then
/// RFC 9728 resource metadata at the well-known locations. The error, when
/// nothing answers, lists each attempt and its answer.
pub async fn probe(http: &impl HttpClient, url: &Url) -> Result<Probe> {
    let send = |req: HttpRequest| async {
        http.send(req).await.map_err(|e| Error::Transport {
            url: url.clone(),
            message: e.message,
        })
    };
    let mut tried = Vec::new();
    let mut resp = send(probe_request(url)).await?;
    if matches!(resp.status, 405 | 501) {
        tried.push(format!("HEAD -> HTTP {}", resp.status));
        let mut get = probe_request(url);
        get.method = Method::Get;
        resp = send(get).await?;
        tried.push(format!("GET -> HTTP {}", resp.status));
    } else {
        tried.push(format!("HEAD -> HTTP {}", resp.status));
    }
    if !try_another(resp.status) {
        return classify(url, &resp);
    }
    let mut resp = send(discover_request(url)).await?;
    tried.push(format!(
        "POST (MCP server/discover) -> HTTP {}",
        resp.status
    ));
    if crate::mcp::refused_version_but_supports_stateless(&resp) {
        // The version refused, yet listed as supported: once more.
        resp = send(discover_request(url)).await?;
        tried.push(format!(
            "POST (MCP server/discover, again) -> HTTP {}",
            resp.status
        ));
    }
    if try_another(resp.status) {
        resp = send(initialize_request(url)).await?;
        tried.push(format!("POST (MCP initialize) -> HTTP {}", resp.status));
    }
    let initialized = resp.is_success();
    if !initialized && !try_another(resp.status) {
        return classify(url, &resp);
    }
    // An MCP server may let `initialize` through and protect everything
    // else: one that publishes resource metadata is protected.
    if has_resource_metadata(http, url, &mut tried).await? {
        return Ok(Probe::NeedsAuthorization(None));
    }
    if initialized {
        return Ok(Probe::Public);
    }
    Err(Error::NotAResource {
        url: url.clone(),
        attempts: tried,
    })
}

/// Whether RFC 9728 metadata is served at one of the well-known locations
/// for `url`; each miss is noted in `tried`.
async fn has_resource_metadata(
    http: &impl HttpClient,
    url: &Url,
    tried: &mut Vec<String>,
) -> Result<bool> {
    let key = crate::matching::ResourceKey::from_url(url)?;
    for meta in crate::discovery::resource_metadata_urls(&key, None) {
        match http.send(HttpRequest::get_json(meta.clone())).await {
            Ok(r) if r.is_success() => {
                match crate::discovery::read_json::<crate::discovery::ProtectedResourceMetadata>(&r)
                {
                    Ok(_) => return Ok(true),
                    Err(reason) => {
                        tried.push(format!("GET {meta} -> not resource metadata: {reason}"))
                    }
                }
            }
            Ok(r) => tried.push(format!("GET {meta} -> HTTP {}", r.status)),
            Err(e) => tried.push(format!("GET {meta} -> network error: {}", e.message)),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, Script};

    #[test]
    fn classification() {
        let url = Url::parse("https://api.example/x").unwrap();
        assert_eq!(
            classify(&url, &HttpResponse::new(204, "")).unwrap(),
            Probe::Public
        );
        let r = HttpResponse::new(401, "").with_header("WWW-Authenticate", r#"Bearer scope="a""#);
        assert_eq!(
            classify(&url, &r).unwrap(),
            Probe::NeedsAuthorization(Some(BearerChallenge {
                scope: Some("a".into()),
                ..Default::default()
            }))
        );
        assert_eq!(
            classify(&url, &HttpResponse::new(401, "")).unwrap(),
            Probe::NeedsAuthorization(None)
        );
        let bad = HttpResponse::new(401, "").with_header("www-authenticate", r#"Bearer realm="x"#);
        assert!(matches!(classify(&url, &bad), Err(Error::Challenge(_))));
        let e = classify(&url, &HttpResponse::new(404, "")).unwrap_err();
        assert!(e.to_string().contains("HTTP 404"), "{e}");
    }

    #[test]
    fn falls_back_to_get() {
        let script = Script::new()
            .status("https://api.example/x", 405)
            .status("https://api.example/x", 200);
        let url = Url::parse("https://api.example/x").unwrap();
        assert_eq!(block_on(probe(&script, &url)).unwrap(), Probe::Public);
        let methods: Vec<Method> = script.requests().iter().map(|r| r.method).collect();
        assert_eq!(methods, [Method::Head, Method::Get]);
        assert!(script
            .requests()
            .iter()
            .all(|r| r.header("authorization").is_none()));
    }

    #[test]
    fn an_mcp_server_that_only_answers_post_is_probed_with_discover() {
        let url = Url::parse("https://mcp.example/mcp").unwrap();
        let challenge = r#"Bearer resource_metadata="https://mcp.example/.well-known/oauth-protected-resource/mcp", scope="files:read""#;
        let script = Script::new().status("https://mcp.example/mcp", 404).raw(
            "https://mcp.example/mcp",
            HttpResponse::new(401, "").with_header("www-authenticate", challenge),
        );
        let Probe::NeedsAuthorization(Some(c)) = block_on(probe(&script, &url)).unwrap() else {
            panic!("expected a challenge");
        };
        assert_eq!(c.scope.as_deref(), Some("files:read"));
        let reqs = script.requests();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[1].method, Method::Post);
        assert_eq!(
            reqs[1].header("accept"),
            Some("application/json, text/event-stream")
        );
        let body: serde_json::Value = serde_json::from_slice(&reqs[1].body).unwrap();
        assert_eq!(body["method"], "server/discover");
        assert_eq!(reqs[1].header("mcp-protocol-version"), Some("2026-07-28"));
        assert_eq!(reqs[1].header("mcp-method"), Some("server/discover"));
        assert_eq!(
            body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
            "2026-07-28"
        );
        assert!(reqs.iter().all(|r| r.header("authorization").is_none()));
    }

    #[test]
    fn a_refused_version_listed_as_supported_is_asked_again_not_downgraded() {
        let url = Url::parse("https://mcp.example/mcp").unwrap();
        let refused = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32022,"message":"Unsupported protocol version","data":{"supported":["2026-07-28"]}}}"#;
        let ok = r#"{"jsonrpc":"2.0","id":1,"result":{"supportedVersions":["2026-07-28"]}}"#;
        let script = Script::new()
            .status("https://mcp.example/mcp", 405)
            .status("https://mcp.example/mcp", 405)
            .raw("https://mcp.example/mcp", HttpResponse::new(400, refused))
            .raw(
                "https://mcp.example/mcp",
                HttpResponse::new(200, ok).with_header("content-type", "application/json"),
            )
            .status(
                "https://mcp.example/.well-known/oauth-protected-resource/mcp",
                404,
            )
            .status(
                "https://mcp.example/.well-known/oauth-protected-resource",
                404,
            );
        assert_eq!(block_on(probe(&script, &url)).unwrap(), Probe::Public);
        let methods: Vec<String> = script
            .requests()
            .iter()
            .filter(|r| r.method == Method::Post)
            .map(|r| {
                assert_eq!(r.header("mcp-protocol-version"), Some("2026-07-28"));
                let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                body["method"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(methods, ["server/discover", "server/discover"]);
    }

    #[test]
    fn a_server_of_an_earlier_revision_is_probed_with_initialize() {
        let url = Url::parse("https://mcp.example/mcp").unwrap();
        let challenge = r#"Bearer scope="files:read""#;
        let script = Script::new()
            .status("https://mcp.example/mcp", 404)
            .status("https://mcp.example/mcp", 400)
            .raw(
                "https://mcp.example/mcp",
                HttpResponse::new(401, "").with_header("www-authenticate", challenge),
            );
        let Probe::NeedsAuthorization(Some(c)) = block_on(probe(&script, &url)).unwrap() else {
            panic!("expected a challenge");
        };
        assert_eq!(c.scope.as_deref(), Some("files:read"));
        let reqs = script.requests();
        let body: serde_json::Value = serde_json::from_slice(&reqs[2].body).unwrap();
        assert_eq!(body["method"], "initialize");
        assert_eq!(body["params"]["protocolVersion"], "2025-11-25");
        assert_eq!(reqs[2].header("mcp-protocol-version"), None);
    }

    #[test]
    fn a_public_mcp_server_and_well_known_metadata() {
        let url = Url::parse("https://mcp.example/mcp").unwrap();
        let public = Script::new()
            .status("https://mcp.example/mcp", 405)
            .status("https://mcp.example/mcp", 405)
            .status("https://mcp.example/mcp", 200)
            .status(
                "https://mcp.example/.well-known/oauth-protected-resource/mcp",
                404,
            )
            .status(
                "https://mcp.example/.well-known/oauth-protected-resource",
                404,
            );
        assert_eq!(block_on(probe(&public, &url)).unwrap(), Probe::Public);

        // `initialize` let through, the rest protected: metadata says so.
        let guarded = Script::new()
            .status("https://mcp.example/mcp", 404)
            .status("https://mcp.example/mcp", 200)
            .json(
                "https://mcp.example/.well-known/oauth-protected-resource/mcp",
                200,
                serde_json::json!({"resource": "https://mcp.example/mcp", "authorization_servers": ["https://as.example"]}),
            );
        assert_eq!(
            block_on(probe(&guarded, &url)).unwrap(),
            Probe::NeedsAuthorization(None)
        );

        let metadata = Script::new()
            .status("https://mcp.example/mcp", 404)
            .status(
                "https://mcp.example/.well-known/oauth-protected-resource/mcp",
                404,
            )
            .json(
                "https://mcp.example/.well-known/oauth-protected-resource",
                200,
                serde_json::json!({"resource": "https://mcp.example/", "authorization_servers": ["https://as.example"]}),
            );
        assert_eq!(
            block_on(probe(&metadata, &url)).unwrap(),
            Probe::NeedsAuthorization(None)
        );

        let nothing = Script::new()
            .status("https://mcp.example/mcp", 404)
            .status(
                "https://mcp.example/.well-known/oauth-protected-resource/mcp",
                404,
            )
            .status(
                "https://mcp.example/.well-known/oauth-protected-resource",
                404,
            );
        let e = block_on(probe(&nothing, &url)).unwrap_err();
        let m = e.to_string();
        for part in [
            "HEAD -> HTTP 404",
            "POST (MCP initialize) -> HTTP 404",
            "oauth-protected-resource/mcp -> HTTP 404",
        ] {
            assert!(m.contains(part), "{m}");
        }
        // A server error is not a reason to try other ways: it is reported.
        let down = Script::new().status("https://mcp.example/mcp", 503);
        assert!(block_on(probe(&down, &url)).unwrap_err().is_retryable());
    }
}
