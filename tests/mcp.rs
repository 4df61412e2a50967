//! An MCP server as a first-class resource, in workerd: connected through
//! the app (named and described from its `serverInfo` and tools), then
//! called through `POST /api/mcp` (`idp::workers::McpClient` over
//! `AuthedFetch`): session header, JSON and event-stream answers, JSON-RPC
//! errors, and a refresh when the server stops accepting the token.

use idp_tests::{provider, state_dir, urlencode, App, AuthServerOptions, Servers, Worker};
use serde_json::{json, Value};

async fn mcp(
    app: &App,
    server: &str,
    session: Option<&str>,
    message: Value,
) -> (u16, Option<String>, Value) {
    let mut req = app
        .browser
        .client()
        .post(format!("{}/api/mcp?url={}", app.origin, urlencode(server)))
        .json(&message);
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = resp.text().await.unwrap();
    (
        status,
        sid,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "current_thread")]
async fn an_mcp_server_is_connected_described_and_called() {
    let servers = Servers::start(AuthServerOptions::default());
    let worker = Worker::start(&state_dir("mcp"));
    let server = format!("{}/mcp", servers.origin);
    let alice = App::sign_in(&worker, "alice").await;

    // Before connecting: the user must authorize, with the URL to do it.
    let (status, _, body) = mcp(
        &alice,
        &server,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "authorization_required");

    let (status, page) = alice.connect(&server).await;
    assert_eq!(status, 200, "{page}");
    let list = alice.providers().await;
    let p = provider(&list, &server).expect("listed");
    assert_eq!(p["name"], "Demo MCP", "{p}");
    assert_eq!(p["metadata"]["mcp"]["server"]["version"], "1.2.3");
    assert_eq!(p["metadata"]["mcp"]["tools"], json!(["echo", "whoami"]));

    let (status, sid, body) = mcp(
        &alice,
        &server,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], 1);
    assert_eq!(body["result"]["serverInfo"]["name"], "Demo MCP");
    let sid = sid.expect("a session id");
    let (status, _, _) = mcp(
        &alice,
        &server,
        Some(&sid),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(status, 202);
    let (status, _, body) = mcp(
        &alice,
        &server,
        Some(&sid),
        json!({"jsonrpc": "2.0", "id": "t", "method": "tools/list"}),
    )
    .await;
    assert_eq!((status, body["id"].clone()), (200, json!("t")), "{body}");
    assert_eq!(body["result"]["tools"][0]["name"], "echo");
    // An event-stream answer, with a notification before the response.
    let (status, _, body) = mcp(
        &alice,
        &server,
        Some(&sid),
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hi"}}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["content"][0]["text"], "hi");
    // A JSON-RPC error comes back as one.
    let (status, _, body) = mcp(
        &alice,
        &server,
        Some(&sid),
        json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "nope"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["error"]["code"], -32602);
    assert_eq!(body["id"], 8);

    // Without a session header, the relay continues the session it kept for
    // this user and server.
    let (status, kept, body) = mcp(
        &alice,
        &server,
        None,
        json!({"jsonrpc": "2.0", "id": 10, "method": "tools/list"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(kept.as_deref(), Some(sid.as_str()));
    assert_eq!(body["result"]["tools"][1]["name"], "whoami");
    // Bob has no session with it.
    let bob = App::sign_in(&worker, "bob").await;
    let (status, page) = bob.connect(&server).await;
    assert_eq!(status, 200, "{page}");
    let (status, _, body) = mcp(
        &bob,
        &server,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await;
    // The server's own JSON-RPC error (its HTTP 400) reaches Bob as such
    // (MCP 2026-07-28 reads JSON-RPC errors in 4xx answers): no result,
    // nothing of Alice's session.
    assert_eq!(status, 200, "{body}");
    assert!(body.get("result").is_none(), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Mcp-Session-Id"),
        "{body}"
    );

    // The server stops accepting the token: one refresh, and the call goes on.
    let before = servers.auth_count("POST /token").await;
    reqwest::Client::new()
        .post(format!("{}/__revoke-tokens", servers.origin))
        .send()
        .await
        .unwrap();
    let (status, _, body) = mcp(
        &alice,
        &server,
        Some(&sid),
        json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "whoami"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["content"][0]["text"], "demo-user");
    assert_eq!(servers.auth_count("POST /token").await, before + 1);
}

/// A server of revision 2026-07-28 (stateless: no `initialize`, no session,
/// the version and the client's description on every request): connected
/// and described through `server/discover`, then called through the relay
/// with no session, each request carrying what the revision asks (the
/// server refuses any request without it).
#[tokio::test(flavor = "current_thread")]
async fn a_stateless_mcp_server_is_discovered_and_called_without_a_session() {
    let servers = Servers::start(AuthServerOptions::default());
    let worker = Worker::start(&state_dir("mcp-2026"));
    let server = format!("{}/v2026/mcp", servers.origin);
    let alice = App::sign_in(&worker, "alice").await;

    let (status, page) = alice.connect(&server).await;
    assert_eq!(status, 200, "{page}");
    let list = alice.providers().await;
    // Kept under the resource its metadata names.
    let p = provider(&list, &format!("{}/v2026", servers.origin)).expect("listed");
    assert_eq!(p["name"], "Demo MCP 2026", "{p}");
    assert_eq!(
        p["metadata"]["mcp"]["protocol_version"], "2026-07-28",
        "{p}"
    );
    assert_eq!(p["metadata"]["mcp"]["tools"], json!(["echo", "whoami"]));

    let (status, sid, body) = mcp(
        &alice,
        &server,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["supportedVersions"], json!(["2026-07-28"]));
    assert_eq!(sid, None, "no session in this revision");
    // No session header, yet the relay keeps the revision agreed.
    let (status, _, body) = mcp(
        &alice,
        &server,
        None,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["content"][0]["text"], "demo-user");
    let (status, _, body) = mcp(
        &alice,
        &server,
        None,
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hi"}}}),
    )
    .await;
    assert_eq!(
        (status, body["result"]["content"][0]["text"].clone()),
        (200, json!("hi")),
        "{body}"
    );
    let (status, _, body) = mcp(
        &alice,
        &server,
        None,
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "nope"}}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (200, json!(-32602)),
        "{body}"
    );
}
