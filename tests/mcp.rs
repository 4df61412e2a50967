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

/// An MCP server that takes Bearer tokens only (the MCP TypeScript SDK's
/// `requireBearerAuth`) behind oidc-provider, which offers DPoP, connected
/// through the example in workerd with its defaults: the grant is a Bearer
/// grant, and a plain call, an MCP tool call, a forced refresh and the calls
/// after it all answer 200; no request went out as DPoP. The resource that
/// says it takes DPoP keeps getting bound tokens from the same deployment
/// (`workerd::connect_call_match_remove_and_refuse_bad_input`).
#[tokio::test(flavor = "current_thread")]
async fn a_bearer_only_mcp_server_behind_a_dpop_server_works_in_workerd() {
    let servers = Servers::start(AuthServerOptions::default());
    let sdk = idp_tests::BearerMcp::start(&servers.issuer);
    let worker = Worker::start(&state_dir("bearer-only"));
    let server = format!("{}/mcp", sdk.origin);
    let alice = App::sign_in(&worker, "alice").await;
    let (status, page) = alice.connect(&server).await;
    assert_eq!(status, 200, "{page}");
    assert!(provider(&alice.providers().await, &server).is_some());
    let refused = sdk.stats().await["statuses"]["401"].clone();

    let whoami = format!("{server}/whoami");
    let (status, body) = alice.fetch(&whoami).await;
    assert_eq!((status, &body["sub"]), (200, &json!("demo-user")), "{body}");
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "whoami", "arguments": {}}});
    let (status, _, body) = mcp(&alice, &server, None, call.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["content"][0]["text"], "demo-user", "{body}");

    let before = servers.auth_count("POST /token").await;
    let refreshed = alice
        .browser
        .client()
        .post(format!("{}/api/refresh", worker.origin))
        .json(&json!({"urls": [server], "force": true}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(refreshed[0]["status"], "refreshed", "{refreshed}");
    assert_eq!(servers.auth_count("POST /token").await, before + 1);
    let (status, body) = alice.fetch(&whoami).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = mcp(&alice, &server, None, call).await;
    assert_eq!(status, 200, "{body}");

    let stats = sdk.stats().await;
    assert_eq!(stats["schemes"]["DPoP"], Value::Null, "{stats}");
    assert_eq!(
        stats["statuses"]["401"], refused,
        "none after connecting: {stats}"
    );
    worker.stop();
}
