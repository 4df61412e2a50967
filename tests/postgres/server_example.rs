//! The axum example (`examples/native-server`) over PostgreSQL: two replicas sharing users, and its own rules.

use super::*;

/// The axum example (`examples/native-server`) as two replicas over one
/// database behind one public origin: sign in, a login started on one and
/// completed on the other, an authed call and an MCP call as the user,
/// listing, and removal seen by both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_of_the_native_server_example_share_users() {
    let binary = idp_tests::repo_root().join("target/debug/idp-native-server");
    assert!(
        binary.exists(),
        "{} is missing: `cargo build -p idp-native-server` (scripts/test does)",
        binary.display()
    );
    let pg = Postgres::start();
    let servers = Servers::start(Default::default());
    let db = pg.database("example");
    let ports = [idp_tests::free_port(), idp_tests::free_port()];
    let public = format!("http://127.0.0.1:{}", ports[0]);
    let start = |i: usize| {
        let vars = [
            format!("DATABASE_URL={db}"),
            format!("PORT={}", ports[i]),
            format!("PUBLIC_ORIGIN={public}"),
            format!("IDP_ENCRYPTION_KEYS={KEYS}"),
            "SESSION_SECRET=an example secret of at least 32 bytes".to_owned(),
            "IDP_ALLOW_LOOPBACK=1".to_owned(),
        ];
        let mut args: Vec<&str> = vars.iter().map(String::as_str).collect();
        args.push(binary.to_str().unwrap());
        Process::start(&format!("native-server-{i}"), "env", &args)
    };
    let replicas = [start(0), start(1)];
    let origin = |i: usize| replicas[i].field("origin");
    let browser = Browser::new();
    let status = |r: reqwest::Response| r.status().as_u16();
    let signin = browser
        .get(format!("{}/signin?user=alice", origin(0)))
        .send()
        .await
        .unwrap();
    assert_eq!(status(signin), 303);

    // Connect the API and the MCP server: each login starts on replica 0
    // and its callback reaches replica 1.
    let api = format!("{}/api", servers.origin);
    let mcp = format!("{}/mcp", servers.origin);
    for resource in [&api, &mcp] {
        let start = format!(
            "{}/oauth/login?url={}",
            origin(0),
            idp_tests::urlencode(resource)
        );
        let mut back = browser
            .follow_until(&start, &format!("{public}/oauth/callback"))
            .await;
        back.set_port(Some(ports[1])).unwrap();
        let done = browser.get(back).send().await.unwrap();
        assert_eq!(
            status(done),
            303,
            "the callback completes on the other replica"
        );
    }
    let json = |r: reqwest::Response| async move { r.json::<Value>().await.unwrap() };
    let list = json(
        browser
            .get(format!("{}/api/providers", origin(0)))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let keys: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, [api.as_str(), mcp.as_str()], "{list}");

    // An authed call and an MCP call as alice, on either replica.
    let called = json(
        browser
            .get(format!(
                "{}/api/call?url={}/items",
                origin(1),
                idp_tests::urlencode(&api)
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(called["status"], 200, "{called}");
    let tools = browser
        .client()
        .post(format!(
            "{}/api/mcp?url={}",
            origin(0),
            idp_tests::urlencode(&mcp)
        ))
        .send()
        .await
        .unwrap();
    let tools = json(tools).await;
    assert!(
        tools["tools"].as_array().is_some_and(|t| !t.is_empty()),
        "{tools}"
    );

    // Removal on one replica is seen by the other; the call then says where
    // to connect.
    let removed = browser
        .client()
        .delete(format!(
            "{}/api/providers?url={}",
            origin(1),
            idp_tests::urlencode(&api)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(json(removed).await["removed"], api.as_str());
    let again = browser
        .get(format!(
            "{}/api/call?url={}/items",
            origin(0),
            idp_tests::urlencode(&api)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(status(again), 401);
    let again = browser
        .get(format!(
            "{}/api/call?url={}/items",
            origin(0),
            idp_tests::urlencode(&api)
        ))
        .send()
        .await
        .unwrap();
    let body = json(again).await;
    let items = format!("{api}/items");
    assert_eq!(
        body["reauthorize_url"],
        format!("/oauth/login?url={}", idp_tests::urlencode(&items)),
        "{body}"
    );
    // A page on another site cannot start a login.
    let forged = browser
        .client()
        .get(format!(
            "{}/oauth/login?url={}",
            origin(0),
            idp_tests::urlencode(&api)
        ))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(status(forged), 403);
}

/// Starts the native server example (`target/debug/idp-native-server`) on
/// `port` over `db`, reached at `public`.
fn native_server(name: &str, db: &str, port: u16, public: &str) -> Process {
    let binary = idp_tests::repo_root().join("target/debug/idp-native-server");
    assert!(
        binary.exists(),
        "{} is missing: `cargo build -p idp-native-server` (scripts/test does)",
        binary.display()
    );
    let vars = [
        format!("DATABASE_URL={db}"),
        format!("PORT={port}"),
        format!("PUBLIC_ORIGIN={public}"),
        format!("IDP_ENCRYPTION_KEYS={KEYS}"),
        "SESSION_SECRET=an example secret of at least 32 bytes".to_owned(),
        "IDP_ALLOW_LOOPBACK=1".to_owned(),
    ];
    let mut args: Vec<&str> = vars.iter().map(String::as_str).collect();
    args.push(binary.to_str().unwrap());
    Process::start(name, "env", &args)
}

/// The native server example keeps its own rules. Its password-less
/// `/signin?user=` answers only on loopback: reached under another host
/// name, through a proxy, or deployed behind a public origin, it signs
/// nobody in. And a page on another site cannot make its routes that act
/// with the person's credentials or change their connections (`/api/call`,
/// `/api/mcp`, login, removal) act: 403 `cross_site`, the API and the MCP
/// server receive nothing, and the person's connections are as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_native_server_example_signs_in_only_on_loopback_and_refuses_other_sites() {
    let pg = Postgres::start();
    let servers = Servers::start(Default::default());
    let db = pg.database("rules");
    let port = idp_tests::free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let _server = native_server("native-server-rules", &db, port, &origin);
    let deployed_port = idp_tests::free_port();
    let _deployed = native_server(
        "native-server-deployed",
        &db,
        deployed_port,
        "https://app.example.com",
    );
    let status = |r: &reqwest::Response| r.status().as_u16();

    // Mallory tries the demo sign-in where it is not local development.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signin = format!("{origin}/signin?user=alice");
    for (url, header) in [
        (signin.clone(), Some(("host", "app.example.com"))),
        (signin.clone(), Some(("host", "app.example.com@127.0.0.1"))),
        (
            signin.clone(),
            Some(("x-forwarded-host", "app.example.com")),
        ),
        (signin.clone(), Some(("forwarded", "host=app.example.com"))),
        (
            format!("http://127.0.0.1:{deployed_port}/signin?user=alice"),
            None,
        ),
    ] {
        let mut req = client.get(&url);
        if let Some((name, value)) = header {
            req = req.header(name, value);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(status(&resp), 404, "{url} {header:?}");
        assert!(
            resp.headers().get("set-cookie").is_none(),
            "{url} {header:?}: no session"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "not_found", "{body}");
    }

    // Alice, in local development, signs in and connects the API and the
    // MCP server.
    let browser = Browser::new();
    let resp = browser.get(&signin).send().await.unwrap();
    assert_eq!(status(&resp), 303, "loopback keeps the demo sign-in");
    let api = format!("{}/api", servers.origin);
    let mcp = format!("{}/mcp", servers.origin);
    for resource in [&api, &mcp] {
        let start = format!(
            "{origin}/oauth/login?url={}",
            idp_tests::urlencode(resource)
        );
        let back = browser
            .follow_until(&start, &format!("{origin}/oauth/callback"))
            .await;
        let done = browser.get(back).send().await.unwrap();
        assert_eq!(status(&done), 303);
    }
    let listed = || async {
        let resp = browser
            .get(format!("{origin}/api/providers"))
            .send()
            .await
            .unwrap();
        resp.json::<Value>().await.unwrap()
    };
    let before = listed().await;
    assert_eq!(before.as_array().map(Vec::len), Some(2), "{before}");
    reqwest::Client::new()
        .post(format!("{}/__stats", servers.origin))
        .send()
        .await
        .unwrap();

    // A page on another site links, posts and fetches.
    let items = idp_tests::urlencode(&format!("{api}/items"));
    let attacks = [
        (reqwest::Method::GET, format!("/api/call?url={items}")),
        (
            reqwest::Method::POST,
            format!("/api/mcp?url={}", idp_tests::urlencode(&mcp)),
        ),
        (
            reqwest::Method::DELETE,
            format!("/api/providers?url={}", idp_tests::urlencode(&api)),
        ),
        (
            reqwest::Method::GET,
            format!("/oauth/login?url={}", idp_tests::urlencode(&api)),
        ),
    ];
    for (method, path) in &attacks {
        for (name, value) in [
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-site", "same-site"),
            ("origin", "https://evil.example"),
        ] {
            let resp = browser
                .client()
                .request(method.clone(), format!("{origin}{path}"))
                .header(name, value)
                .send()
                .await
                .unwrap();
            assert_eq!(status(&resp), 403, "{method} {path} {name}: {value}");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"], "cross_site", "{body}");
        }
    }
    let seen = servers.resource_stats().await;
    assert_eq!(
        seen["requests"],
        serde_json::json!({}),
        "the API and the MCP server received nothing: {seen}"
    );
    assert_eq!(listed().await, before, "the connections are as they were");

    // The app's own pages still call both.
    let resp = browser
        .client()
        .get(format!("{origin}/api/call?url={items}"))
        .header("sec-fetch-site", "same-origin")
        .header("origin", &origin)
        .send()
        .await
        .unwrap();
    let called: Value = resp.json().await.unwrap();
    assert_eq!(called["status"], 200, "{called}");
    let resp = browser
        .client()
        .post(format!(
            "{origin}/api/mcp?url={}",
            idp_tests::urlencode(&mcp)
        ))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    let tools: Value = resp.json().await.unwrap();
    assert!(
        tools["tools"].as_array().is_some_and(|t| !t.is_empty()),
        "{tools}"
    );
}
