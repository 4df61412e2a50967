//! Several accounts of one user at an API and an MCP server in workerd.

use super::*;

/// Starts connecting `resource` as the signed-in user's `account` through
/// the example app, and lets `person` sign in at oidc-provider in a browser
/// of their own; the app's browser then opens the callback.
async fn connect_account(app: &App, resource: &str, account: Option<&str>, person: &str) {
    let mut path = App::login_path(resource);
    if let Some(a) = account {
        path.push_str(&format!("&account={a}"));
    }
    let resp = app
        .browser
        .get(format!("{}{path}", app.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 302, "{path}");
    let mut to = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    to.query_pairs_mut().append_pair("login_hint", person);
    let back = idp_tests::Browser::new()
        .follow_until(to.as_str(), &format!("{}/oauth/callback", app.origin))
        .await;
    let (status, page) = app.open(back.as_str()).await;
    assert_eq!(status, 200, "{page}");
}

/// Two accounts of one person at one API and at one MCP server, through the
/// example app as a person uses it: `/oauth/login?url=&account=home` adds
/// the second beside the first; `?account=` on a call picks it (the API and
/// the MCP tool `whoami` answer whose token they got), no account means the
/// first, which the app's hook named after its token's subject; the list
/// names each account; connecting an account again
/// replaces it; removing one keeps the other, and its re-authorization URL
/// connects that account again.
#[tokio::test(flavor = "current_thread")]
async fn a_second_account_at_an_api_and_an_mcp_server() {
    let servers = Servers::start(Default::default());
    let worker = Worker::start(&state_dir("accounts"));
    let alice = App::sign_in(&worker, "alice").await;
    let api = format!("{}/api", servers.origin);
    let mcp = format!("{}/mcp", servers.origin);
    for resource in [&api, &mcp] {
        connect_account(&alice, resource, None, "work-person").await;
        connect_account(&alice, resource, Some("home"), "home-person").await;
    }
    let items = format!("{api}/items");
    let sub = |account: &'static str| {
        let path = format!("/api/fetch?url={}{account}", urlencode(&items));
        let alice = &alice;
        async move {
            let (status, body) = alice.json(&path).await;
            (
                status,
                body["sub"].as_str().unwrap_or_default().to_owned(),
                body,
            )
        }
    };
    assert_eq!(sub("").await.1, "work-person");
    let (s, who, b) = sub("&account=home").await;
    assert_eq!(who, "home-person", "{s} {b}");
    let whoami = |account: &'static str| {
        let url = format!("{}/api/mcp?url={}{account}", alice.origin, urlencode(&mcp));
        let client = alice.browser.client().clone();
        async move {
            // The session begins with `initialize`; the app keeps it per
            // account and server.
            let init = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"}}});
            let resp = client
                .post(&url)
                .header("sec-fetch-site", "same-origin")
                .json(&init)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200, "initialize");
            let call = serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": "whoami", "arguments": {}}});
            let resp = client
                .post(&url)
                .header("sec-fetch-site", "same-origin")
                .json(&call)
                .send()
                .await
                .unwrap();
            let body: Value = resp.json().await.unwrap();
            body["result"]["content"][0]["text"]
                .as_str()
                .map_or_else(|| body.to_string(), str::to_owned)
        }
    };
    assert_eq!(whoami("").await, "work-person");
    assert_eq!(whoami("&account=home").await, "home-person");

    // The first connections were named by the app's hook after their
    // token's subject (the person named none); that name finds them.
    assert_eq!(sub("&account=work-person").await.1, "work-person");
    assert_eq!(whoami("&account=work-person").await, "work-person");
    let list = alice.providers().await;
    assert_eq!(list.len(), 4, "{list:?}");
    for resource in [&api, &mcp] {
        let accounts: Vec<&Value> = list
            .iter()
            .filter(|p| p["resource_url"] == **resource)
            .map(|p| &p["account"])
            .collect();
        assert_eq!(
            accounts,
            [&Value::from("work-person"), &Value::from("home")],
            "{list:?}"
        );
    }
    // The same account again: replaced, not duplicated.
    connect_account(&alice, &api, Some("home"), "home-person").await;
    assert_eq!(alice.providers().await.len(), 4);

    let (status, body) = alice
        .send_json(
            reqwest::Method::DELETE,
            &format!("/api/providers?url={}&account=home", urlencode(&items)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = sub("&account=home").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("authorization_required")),
        "{body}"
    );
    let again = body["reauthorize_url"].as_str().unwrap();
    assert!(again.contains("account=home"), "{again}");
    assert_eq!(sub("").await.1, "work-person", "the other account is kept");
    assert_eq!(
        whoami("&account=home").await,
        "home-person",
        "and the other API's"
    );
    let (_, log) = alice.json("/api/events").await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "removed" && e["account"] == "home"),
        "{log}"
    );
}
