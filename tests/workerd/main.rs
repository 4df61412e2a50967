//! The example app in the real Workers runtime (workerd, through `wrangler
//! dev`), against oidc-provider and a JWT-checking API, all on loopback.

use idp_tests::{
    join_all, provider, state_dir, urlencode, App, AuthServerOptions, Servers, Worker,
};
use serde_json::Value;

mod accounts;
mod deployment;
mod lifecycle;

#[tokio::test(flavor = "current_thread")]
async fn connect_call_match_remove_and_refuse_bad_input() {
    let servers = Servers::start(AuthServerOptions::default());
    let worker = Worker::start(&state_dir("main"));
    let api = format!("{}/api", servers.origin);

    // Without the session cookie, API routes answer 401 JSON.
    let anonymous = reqwest::get(format!("{}/api/providers", worker.origin))
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);

    // Full flow: login -> authorization server -> callback -> success page.
    let alice = App::sign_in(&worker, "alice").await;
    let (status, page) = alice.connect(&api).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Connected"), "{page}");
    let list = alice.providers().await;
    let p = provider(&list, &api).expect("provider listed");
    assert_eq!(p["has_token"], true);
    assert_eq!(p["public"], false);
    assert_eq!(p["name"], "127.0.0.1/api", "named by the hook");
    assert_eq!(p["metadata"]["scope"], "api:read", "hook metadata stored");
    assert!(p["reauthorize_url"]
        .as_str()
        .unwrap()
        .contains("/oauth/login?url="));
    let text = serde_json::to_string(&list).unwrap();
    assert!(
        !text.contains("refresh_token")
            && !text.contains("access_token")
            && !text.contains("client_secret")
    );
    let (status, body) = alice.fetch(&format!("{api}/items")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["authorization"], true);
    assert_eq!(body["aud"], api);
    // oidc-provider offers DPoP: the token is bound to the grant's key, and
    // the call carried a proof the resource server checked.
    let proofs = servers.resource_stats().await["dpop_proofs"].as_u64();
    assert!(proofs.is_some_and(|n| n >= 1), "{proofs:?}");

    // Path matching: a provider for the origin (public) and one for /v1.
    let (status, page) = alice.get(&App::login_path(&servers.origin)).await;
    assert_eq!(status, 200, "origin is public: {page}");
    let (status, page) = alice.connect(&format!("{}/v1", servers.origin)).await;
    assert_eq!(status, 200, "{page}");
    let (status, body) = alice.fetch(&format!("{}/v1/x", servers.origin)).await;
    assert_eq!(
        (status, &body["authorization"]),
        (200, &Value::Bool(true)),
        "/v1/x uses the /v1 token: {body}"
    );
    let (status, body) = alice.fetch(&format!("{}/v2/x", servers.origin)).await;
    assert_eq!(
        (status, &body["authorization"]),
        (200, &Value::Bool(false)),
        "/v2/x uses the public origin: {body}"
    );

    // Second login to the same issuer (another resource, another user): no new client.
    assert_eq!(
        servers.auth_count("POST /reg").await,
        1,
        "one registration for the deployment"
    );
    let bob = App::sign_in(&worker, "bob").await;
    let (status, page) = bob.connect(&api).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        servers.auth_count("POST /reg").await,
        1,
        "bob reuses the registration"
    );
    assert_eq!(
        servers.metadata_fetches().await,
        1,
        "server metadata cached for the deployment: {}",
        servers.auth_stats().await
    );

    // Public resource: stored as public and called without a token.
    let (status, page) = alice
        .get(&App::login_path(&format!("{}/public", servers.origin)))
        .await;
    assert_eq!(status, 200, "{page}");
    let list = alice.providers().await;
    let p = provider(&list, &format!("{}/public", servers.origin)).expect("public provider");
    assert_eq!(
        (p["public"].clone(), p["has_token"].clone()),
        (Value::Bool(true), Value::Bool(false))
    );

    // Listed a page at a time: the same providers, in the same order, each once.
    let all: Vec<Value> = list.iter().map(|p| p["resource_url"].clone()).collect();
    assert!(all.len() >= 3, "{all:?}");
    let (mut paged, mut after) = (Vec::new(), String::new());
    loop {
        let mut path = "/api/providers?limit=2".to_owned();
        if !after.is_empty() {
            path.push_str(&format!("&after={}", urlencode(&after)));
        }
        let (status, page) = alice.json(&path).await;
        assert_eq!(status, 200, "{page}");
        let items = page["providers"].as_array().expect("a page").clone();
        assert!(items.len() <= 2, "{page}");
        paged.extend(items.iter().map(|p| p["resource_url"].clone()));
        match page["next"].as_str() {
            Some(next) => after = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(paged, all, "pages cover the list in order");
    let (status, _) = alice.json("/api/providers?limit=x").await;
    assert_eq!(status, 400);
    let (status, body) = alice
        .fetch(&format!("{}/public/feed", servers.origin))
        .await;
    assert_eq!(
        (status, &body["authorization"]),
        (200, &Value::Bool(false)),
        "{body}"
    );

    // Isolation: bob opening alice's callback fails and changes nothing; alice's still completes.
    let before = bob.providers().await.len();
    let alices_callback = alice.start(&format!("{}/scoped", servers.origin)).await;
    let (status, page) = bob.open(&alices_callback).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("state"), "{page}");
    assert_eq!(bob.providers().await.len(), before);
    let (status, page) = alice.open(&alices_callback).await;
    assert_eq!(status, 200, "{page}");
    // Replayed state.
    let (status, page) = alice.open(&alices_callback).await;
    assert_eq!(status, 400, "replay: {page}");

    // Bad input: clear 4xx pages, nothing stored, and later logins still work.
    let count = alice.providers().await.len();
    let mut cases: Vec<(String, &str)> = vec![
        ("/oauth/callback?code=x".into(), "state"),
        ("/oauth/callback?code=x&state=unknown".into(), "state"),
        (
            App::login_path(&format!("{}/other-resource", servers.origin)),
            "does not cover",
        ),
        (
            App::login_path(&format!("{}/bad-metadata/x", servers.origin)),
            "not JSON",
        ),
        (App::login_path("not a url"), "invalid URL"),
        (App::login_path("ftp://127.0.0.1/file"), "http"),
        ("/oauth/login".into(), "url parameter is missing"),
    ];
    // A callback whose iss names another issuer.
    let good = alice.start(&api).await;
    let wrong_iss = good.replace(
        &urlencode(&servers.issuer),
        &urlencode("http://127.0.0.1:1"),
    );
    assert_ne!(good, wrong_iss);
    cases.push((
        wrong_iss.trim_start_matches(&worker.origin).to_owned(),
        "iss",
    ));
    for (path, expect) in &cases {
        let (status, page) = alice.get(path).await;
        assert!((400..500).contains(&status), "{path}: {status} {page}");
        assert!(
            page.contains(expect),
            "{path}: expected {expect:?} in {page}"
        );
        assert!(
            !page.contains("panicked") && !page.contains("RuntimeError"),
            "{page}"
        );
    }
    assert_eq!(alice.providers().await.len(), count, "nothing stored");

    // A server-side error: the person declines (a fresh browser, so the
    // authorization server asks them to log in).
    let carol = App::sign_in(&worker, "carol").await;
    let declined = carol.start_with_hint(&api, "deny").await;
    let (status, page) = carol.open(&declined).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("access_denied"), "{page}");
    assert!(carol.providers().await.is_empty());
    let (status, page) = alice.connect(&api).await;
    assert_eq!(status, 200, "logins still work: {page}");

    // Removal by a URL of the API (as people use it): the provider serving
    // it is gone, revoked at the server, and the next call must authorize.
    let revocations = servers.auth_count("POST /token/revocation").await;
    let alice_ref = &alice;
    let remove = |url: &str| {
        let path = format!("/api/providers?url={}", urlencode(url));
        async move { alice_ref.send_json(reqwest::Method::DELETE, &path).await }
    };
    let (status, removed) = remove(&format!("{api}/items/7?full=1")).await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(removed["removed"], true, "{removed}");
    assert_eq!(removed["key"], api.as_str(), "{removed}");
    assert_eq!(removed["revoked"], true, "{removed}");
    // A URL no provider serves (alice's public provider at the origin
    // serves the rest of it): 404 not_connected, never a 200 that did
    // nothing.
    let (status, body) = remove("http://127.0.0.1:9/api/items/7").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "not_connected", "{body}");
    assert_eq!(
        servers.auth_count("POST /token/revocation").await,
        revocations + 1
    );
    assert!(provider(&alice.providers().await, &api).is_none());
    let (status, body) = alice.fetch(&format!("{api}/items")).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "authorization_required");
    assert_eq!(body["reason"], "never_connected");
    assert!(body["reauthorize_url"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}/oauth/login?url=", worker.origin)));
}
