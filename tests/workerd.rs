//! The example app in the real Workers runtime (workerd, through `wrangler
//! dev`), against oidc-provider and a JWT-checking API, all on loopback.

use idp_tests::{
    join_all, provider, state_dir, urlencode, App, AuthServerOptions, Servers, Worker,
};
use serde_json::Value;

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

#[tokio::test(flavor = "current_thread")]
async fn expired_tokens_refresh_once_under_concurrency() {
    // Access tokens live 10 s (refreshed in their last 5 s); refresh tokens rotate and a replay revokes the grant.
    let servers = Servers::start(AuthServerOptions {
        access_ttl: Some(10),
        ..Default::default()
    });
    // Refresh at call time only: no background refresh in between.
    let worker = Worker::start_with(&state_dir("expiry"), &[("IDP_BACKGROUND_REFRESH", "off")]);
    let api = format!("{}/api", servers.origin);
    let alice = App::sign_in(&worker, "alice").await;
    let (status, page) = alice.connect(&api).await;
    assert_eq!(status, 200, "{page}");
    let (status, body) = alice.fetch(&format!("{api}/items")).await;
    assert_eq!(status, 200, "{body}");

    // After expiry, a call refreshes transparently.
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    let before = servers.auth_count("POST /token").await;
    let (status, body) = alice.fetch(&format!("{api}/items")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(servers.auth_count("POST /token").await, before + 1);

    // 50 concurrent calls on an expired token: one token request, 50 successes.
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    let before = servers.auth_count("POST /token").await;
    let url = format!("{api}/items");
    let calls = (0..50).map(|_| alice.fetch(&url));
    let results = join_all(calls.collect()).await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(
        ok,
        50,
        "all succeed: {:?}",
        results.iter().find(|(s, _)| *s != 200)
    );
    assert_eq!(
        servers.auth_count("POST /token").await,
        before + 1,
        "exactly one token request"
    );

    // The grant survived (no refresh token was replayed): a later refresh works.
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    let (status, body) = alice.fetch(&url).await;
    assert_eq!(status, 200, "grant still alive: {body}");
}

#[tokio::test(flavor = "current_thread")]
async fn tokens_persist_across_a_restart() {
    let servers = Servers::start(AuthServerOptions::default());
    let dir = state_dir("restart");
    let worker = Worker::start(&dir);
    let api = format!("{}/api", servers.origin);
    let alice = App::sign_in(&worker, "alice").await;
    let (status, page) = alice.connect(&api).await;
    assert_eq!(status, 200, "{page}");
    worker.stop();

    let worker = Worker::start(&dir);
    let alice = App::sign_in(&worker, "alice").await;
    let list = alice.providers().await;
    assert_eq!(
        provider(&list, &api).expect("still connected")["has_token"],
        true
    );
    let (status, body) = alice.fetch(&format!("{api}/items")).await;
    assert_eq!(status, 200, "{body}");
}

/// The split deployment: the Worker's script has the routes and no Durable
/// Object class, the objects' script the class and no entry point; a user
/// connects, calls and refreshes through both, and the credentials live in
/// the objects' script's storage.
#[tokio::test(flavor = "current_thread")]
async fn a_split_deployment_serves_from_two_scripts() {
    // Access tokens live 10 s: a refresh happens in the objects' script.
    let servers = Servers::start(AuthServerOptions {
        access_ttl: Some(10),
        ..Default::default()
    });
    let dir = state_dir("split");
    let worker = Worker::start_split(&dir);
    let api = format!("{}/api", servers.origin);

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let glue =
        |d: &str| std::fs::read_to_string(root.join(format!("examples/app/{d}/index.js"))).unwrap();
    let (front, objects) = (glue("build-split-worker"), glue("build-split-objects"));
    assert!(
        !front.contains("oauthproviders_fetch"),
        "no class in the Worker's script"
    );
    assert!(
        objects.contains("oauthproviders_fetch"),
        "the class in the objects' script"
    );
    assert!(
        front.contains("prototype.fetch"),
        "the entry point in the Worker's script"
    );
    assert!(
        !objects.contains("prototype.fetch"),
        "no entry point in the objects' script"
    );

    let alice = App::sign_in(&worker, "alice").await;
    let (status, page) = alice.connect(&api).await;
    assert_eq!(status, 200, "{page}");
    let list = alice.providers().await;
    let p = provider(&list, &api).expect("provider listed");
    assert_eq!(p["has_token"], true);
    assert_eq!(
        p["name"], "127.0.0.1/api",
        "named by the hook, in the objects' script"
    );
    let (status, body) = alice.fetch(&format!("{api}/items")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["authorization"], true);

    // After expiry (refreshed by the object's alarm or at the call).
    let before = servers.auth_count("POST /token").await;
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    let (status, body) = alice.fetch(&format!("{api}/items")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        servers.auth_count("POST /token").await > before,
        "refreshed"
    );

    // The credentials are in the objects' script's storage, sealed.
    let files = object_files(&dir);
    assert!(
        files.iter().any(|(path, _)| path
            .to_string_lossy()
            .contains("idp-example-split-objects-OAuthProviders")),
        "{:?}",
        files.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    assert!(
        files.iter().any(|(_, bytes)| contains(bytes, "idp-enc:2:")),
        "sealed with the objects' script's key"
    );
    // Two objects (alice's and the registry); only the registry has the
    // registry's tables.
    let objects_with = |table: &str| {
        let mut stems: Vec<String> = files
            .iter()
            .filter(|(_, bytes)| contains(bytes, table))
            .map(|(path, _)| {
                let p = path.to_string_lossy();
                p.trim_end_matches("-wal")
                    .trim_end_matches("-shm")
                    .to_owned()
            })
            .collect();
        stems.sort();
        stems.dedup();
        stems.len()
    };
    assert_eq!(objects_with("idp_providers"), 2);
    assert_eq!(
        objects_with("idp_servers"),
        1,
        "registry tables in the registry only"
    );
}

/// A split deployment whose objects' script has no `IDP_ENCRYPTION_KEYS`
/// and is not in local development (the Worker's script is): the objects
/// refuse to keep any secret, the person is told which secret to set, and
/// nothing is stored in plain text.
#[tokio::test(flavor = "current_thread")]
async fn objects_without_a_key_outside_development_store_no_secret() {
    let servers = Servers::start(AuthServerOptions::default());
    let dir = state_dir("split-no-key");
    let worker = Worker::start_split_with("tests/split/objects-without-key.toml", &dir);
    let api = format!("{}/api", servers.origin);
    let alice = App::sign_in(&worker, "alice").await;
    let (status, page) = alice.get(&App::login_path(&api)).await;
    assert_eq!(status, 500, "{page}");
    assert!(
        page.contains("storage failed: in the registry object: no encryption key is configured")
            && page.contains("set IDP_ENCRYPTION_KEYS"),
        "says which secret to set: {page}"
    );
    // The person was not sent to the server with a flow that cannot finish,
    // and a second try is refused the same way.
    let (status, _) = alice.get(&App::login_path(&api)).await;
    assert_eq!(status, 500);
    assert!(alice.providers().await.is_empty());
    for (path, bytes) in object_files(&dir) {
        assert!(
            !contains(&bytes, "client_secret\":\"") && !contains(&bytes, "verifier\":\""),
            "a secret in plain text in {}",
            path.display()
        );
    }
}

/// Every `*.sqlite` file under a Worker's state directory, as bytes.
fn object_files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().contains(".sqlite"))
            {
                out.push((path.clone(), std::fs::read(&path).unwrap_or_default()));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Secrets at rest: after connecting, no token the server issued is in the
/// objects' SQLite files; rotating to a new key keeps every provider usable
/// and `reencrypt` leaves nothing under the old key; a Worker with the wrong
/// key answers "connect again" for that provider, and reconnecting works.
#[tokio::test(flavor = "current_thread")]
async fn secrets_at_rest_are_sealed_rotated_and_a_wrong_key_means_reconnect() {
    const OLD: &str = "dev1:ZGV2ZWxvcG1lbnQtb25seS1rZXktMzItYnl0ZXMhISE=";
    const NEW: &str = "k2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const OTHER: &str = "k9:HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4=";
    let servers = Servers::start(AuthServerOptions::default());
    let dir = state_dir("at-rest");
    let api = format!("{}/api", servers.origin);
    let items = format!("{api}/items");

    let worker = Worker::start(&dir);
    let alice = App::sign_in(&worker, "alice").await;
    let (status, page) = alice.connect(&api).await;
    assert_eq!(status, 200, "{page}");
    let (status, body) = alice.fetch(&items).await;
    assert_eq!(status, 200, "{body}");
    worker.stop();

    let issued: Vec<String> = reqwest::get(format!("{}/__issued", servers.issuer))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        issued.len() >= 2,
        "an access and a refresh token: {issued:?}"
    );
    let files = object_files(&dir);
    assert!(!files.is_empty(), "no SQLite files under {}", dir.display());
    let mut sealed = false;
    for (path, bytes) in &files {
        for token in &issued {
            assert!(
                !contains(bytes, token),
                "a token the server issued is in {} in plain text",
                path.display()
            );
        }
        sealed |= contains(bytes, "idp-enc:2:dev1:");
    }
    assert!(sealed, "sealed values are stored");

    // Rotation: the new key first, the old one still listed.
    let both = format!("{NEW},{OLD}");
    const ADMIN: &str = "the-operators-token-of-32-bytes-or-more";
    let worker = Worker::start_with(
        &dir,
        &[("IDP_ENCRYPTION_KEYS", &both), ("IDP_ADMIN_TOKEN", ADMIN)],
    );
    let alice = App::sign_in(&worker, "alice").await;
    let (status, body) = alice.fetch(&items).await;
    assert_eq!(
        status, 200,
        "readable with the old key listed second: {body}"
    );
    let (status, body) = alice.post_json("/api/reencrypt").await;
    assert_eq!(status, 200, "{body}");
    assert!(body["user_rows"].as_u64().unwrap() >= 1, "{body}");
    let (_, again) = alice.post_json("/api/reencrypt").await;
    assert_eq!(
        again["user_rows"], 0,
        "nothing left under the old key: {again}"
    );
    assert!(
        again.get("registry_rows").is_none(),
        "a user never re-encrypts the registry: {again}"
    );
    // The registry is the operator's: with the admin token only.
    let admin = |token: Option<&'static str>| {
        let mut req =
            reqwest::Client::new().post(format!("{}/admin/reencrypt-registry", worker.origin));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move {
            let resp = req.send().await.unwrap();
            (
                resp.status().as_u16(),
                resp.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    assert_eq!(admin(None).await.0, 401);
    assert_eq!(
        admin(Some("not-the-operators-token-but-long-enough"))
            .await
            .0,
        401
    );
    let (status, body) = admin(Some(ADMIN)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["registry_rows"].as_u64().unwrap() >= 1, "{body}");
    let (_, body) = admin(Some(ADMIN)).await;
    assert_eq!(
        body["registry_rows"], 0,
        "nothing left under the old key: {body}"
    );
    let (status, _) = alice.post_json("/admin/reencrypt-registry").await;
    assert_eq!(status, 404, "not a route for a signed-in user");
    worker.stop();

    // The old key dropped: everything still works.
    let worker = Worker::start_with(&dir, &[("IDP_ENCRYPTION_KEYS", NEW)]);
    let alice = App::sign_in(&worker, "alice").await;
    let (status, body) = alice.fetch(&items).await;
    assert_eq!(
        status, 200,
        "after re-encryption the old key can go: {body}"
    );
    worker.stop();

    // A wrong key: "connect again" for that provider, never garbage sent.
    let worker = Worker::start_with(&dir, &[("IDP_ENCRYPTION_KEYS", OTHER)]);
    let alice = App::sign_in(&worker, "alice").await;
    let before = servers.resource_stats().await;
    let (status, body) = alice.fetch(&items).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "authorization_required", "{body}");
    let after = servers.resource_stats().await;
    assert_eq!(
        before["requests"]["/api/items"], after["requests"]["/api/items"],
        "no request carried an undecryptable token"
    );
    let (status, page) = alice.connect(&api).await;
    assert_eq!(status, 200, "reconnecting works under the new key: {page}");
    let (status, body) = alice.fetch(&items).await;
    assert_eq!(status, 200, "{body}");
}

/// Polls `f` every 250 ms until it is true or `secs` pass.
async fn wait_until<F, Fut>(secs: u64, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    false
}

/// The object's alarm refreshes a token with no request in flight, so the
/// next call makes no refresh; a server answering 503 three times is retried
/// with backoff and recovers; and the audit log tells the whole story in
/// order: connect, refresh, failed refreshes, refresh, revoked at the server
/// (needs re-authorization), reconnect (recovered), remove (revoked).
#[tokio::test(flavor = "current_thread")]
async fn the_alarm_keeps_tokens_fresh_and_events_tell_the_story() {
    let servers = Servers::start(AuthServerOptions {
        access_ttl: Some(20),
        ..Default::default()
    });
    let worker = Worker::start_with(&state_dir("alarm"), &[("IDP_REFRESH_RETRY_SECS", "1")]);
    let api = format!("{}/api", servers.origin);
    let items = format!("{api}/items");
    let alice = App::sign_in(&worker, "alice").await;
    let (status, page) = alice.connect(&api).await;
    assert_eq!(status, 200, "{page}");
    let after_login = servers.auth_count("POST /token").await;

    // No request from us: the alarm refreshes once the token is inside its
    // margin (half of 20 s).
    let refreshed = wait_until(30, || async {
        servers.auth_count("POST /token").await > after_login
    })
    .await;
    assert!(refreshed, "the alarm refreshed with no request in flight");
    let tokens = servers.auth_count("POST /token").await;
    let (status, body) = alice.fetch(&items).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        servers.auth_count("POST /token").await,
        tokens,
        "the next call makes no refresh"
    );

    // The token endpoint fails three times: retried with backoff, recovered.
    servers.fail_token(3, 503).await;
    let recovered = wait_until(45, || async {
        servers.auth_count("POST /token (failed)").await == 3
            && servers.auth_count("POST /token").await > tokens
    })
    .await;
    assert!(
        recovered,
        "three failures then a refresh: {}",
        servers.auth_stats().await
    );
    let (status, body) = alice.fetch(&items).await;
    assert_eq!(status, 200, "{body}");

    // Revoked at the server: the call needs re-authorization.
    reqwest::Client::new()
        .post(format!("{}/__revoke-grants", servers.issuer))
        .send()
        .await
        .unwrap();
    reqwest::Client::new()
        .post(format!("{}/__revoke-tokens", servers.origin))
        .send()
        .await
        .unwrap();
    let (status, body) = alice.fetch(&items).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "authorization_required", "{body}");
    let (status, page) = alice.connect(&api).await;
    assert_eq!(status, 200, "reconnected: {page}");
    let (status, body) = alice
        .send_json(
            reqwest::Method::DELETE,
            &format!("/api/providers?url={}", urlencode(&api)),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, log) = alice.json("/api/events").await;
    assert_eq!(status, 200, "{log}");
    let mut story: Vec<String> = log
        .as_array()
        .expect("a list")
        .iter()
        .rev()
        .map(|e| {
            assert_eq!(e["user"], "alice", "{e}");
            assert_eq!(e["resource"], api, "{e}");
            let text = e.to_string();
            assert!(!text.contains("eyJ"), "no token in an event: {e}");
            match (e["event"].as_str().unwrap(), &e["transient"]) {
                ("refresh_failed", Value::Bool(true)) => "refresh_failed(transient)".to_owned(),
                (kind, _) => kind.to_owned(),
            }
        })
        .collect();
    story.dedup();
    let expected = [
        "connected",
        "refreshed",
        "refresh_failed(transient)",
        "refreshed",
        "needs_reauthorization",
        "connected",
        "recovered",
        "removed",
        "revoked",
    ];
    let mut rest = story.iter();
    for step in expected {
        assert!(
            rest.any(|s| s == step),
            "{step} missing or out of order in {story:?}"
        );
    }
}

/// Variables that cannot be used stop the Worker from running with part of
/// its configuration dropped: every request is answered 500
/// `configuration`, which names no value, and the Worker's log names each
/// variable and why, never quoting what it held.
#[tokio::test(flavor = "current_thread")]
async fn unusable_variables_are_refused_loudly_and_never_quoted() {
    let worker = Worker::start_expecting(
        &state_dir("bad-config"),
        &[
            ("IDP_TIMEOUT_MS", "soon"),
            ("IDP_ALLOW_INSECURE_LOOPBACK", "maybe"),
            (
                "IDP_PROFILES",
                r#"[{"name": "acme", "resources": "hunter2-not-a-list"}]"#,
            ),
        ],
        ("/api/providers", 500),
    );
    let client = reqwest::Client::new();
    for path in [
        "/signin?user=alice",
        "/api/providers",
        "/oauth/login?url=http%3A%2F%2F127.0.0.1%3A1%2Fapi",
    ] {
        let resp = client
            .get(format!("{}{path}", worker.origin))
            .send()
            .await
            .expect("reachable");
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        assert_eq!(status, 500, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: {body}"));
        assert_eq!(v["error"], "configuration", "{body}");
        assert!(
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("3 problems, listed in the Worker's log")),
            "{body}"
        );
        for value in ["hunter2", "soon", "maybe"] {
            assert!(!body.contains(value), "{body}");
        }
    }
    // wrangler writes the Worker's console output a moment later.
    let read_log = || std::fs::read_to_string(&worker.log).unwrap_or_default();
    let mut log = read_log();
    for _ in 0..50 {
        if log.contains("idp: configuration: IDP_PROFILES") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        log = read_log();
    }
    assert!(
        log.contains("IDP_TIMEOUT_MS is not a positive whole number"),
        "{log}"
    );
    assert!(
        log.contains("IDP_ALLOW_INSECURE_LOOPBACK is neither true nor false"),
        "{log}"
    );
    assert!(
        log.contains(
            "IDP_PROFILES: not a valid list of profiles: a value has the wrong type or form"
        ),
        "{log}"
    );
    assert!(!log.contains("hunter2"), "the log quotes a value: {log}");
}

/// RFC 8628 in a Worker: the user's object gets a code from oidc-provider's
/// device flow and polls from its alarm, with no request in flight, while
/// the person confirms on another device (oidc-provider's own pages); the
/// provider is then connected, named and in the audit log, and an authed
/// call works. Bob declines: his login ends `authorization_denied`, and
/// nothing is stored for him. Nobody else can read a login's state.
#[tokio::test(flavor = "current_thread")]
async fn a_person_connects_from_another_device_through_the_objects_alarm() {
    let servers = Servers::start(Default::default());
    let worker = Worker::start(&state_dir("device"));
    let api = format!("{}/api", servers.origin);
    let alice = App::sign_in(&worker, "alice").await;
    let bob = App::sign_in(&worker, "bob").await;
    // A page on another site cannot make alice's session start one (and
    // show a code of its choosing): nothing reaches the server.
    let hostile = alice
        .browser
        .client()
        .post(format!(
            "{}/api/device?url={}",
            alice.origin,
            urlencode(&api)
        ))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(hostile.status().as_u16(), 403);
    assert_eq!(servers.auth_count("POST /device/auth").await, 0);
    let (a, b) = (
        device_start(&alice, &api).await,
        device_start(&bob, &api).await,
    );
    assert_eq!(a["resource"], api, "{a}");
    assert_eq!(servers.auth_count("POST /device/auth").await, 2);
    let (status, waiting) = device_status(&alice, &a).await;
    assert_eq!(status, 200, "{waiting}");
    assert!(
        waiting["waiting"]["poll_at"].as_u64().is_some(),
        "{waiting}"
    );
    let (status, theirs) = device_status(&bob, &a).await;
    assert_eq!(
        (status, theirs["error"].as_str()),
        (400, Some("device_login")),
        "{theirs}"
    );

    let complete = |l: &Value| l["verification_uri_complete"].as_str().unwrap().to_owned();
    let done = idp_tests::Browser::new()
        .enter_device_code(&complete(&a), true)
        .await;
    assert!(done.contains("Sign-in Success"), "{done:.600}");
    let declined = idp_tests::Browser::new()
        .enter_device_code(&complete(&b), false)
        .await;
    assert!(declined.contains("interrupted"), "{declined:.600}");

    // No request from us: the alarm polls and stores the grant.
    let connected = wait_until(30, || async {
        provider(&alice.providers().await, &api).is_some()
    })
    .await;
    assert!(
        connected,
        "the alarm connected alice: {}",
        servers.auth_stats().await
    );
    let (status, body) = alice.fetch(&format!("{api}/items")).await;
    assert_eq!(status, 200, "{body}");
    let (status, now) = device_status(&alice, &a).await;
    assert_eq!(status, 200, "{now}");
    assert_eq!(now["connected"]["provider"]["resource_url"], api, "{now}");
    let (_, log) = alice.json("/api/events").await;
    assert_eq!(log[0]["event"], "connected", "{log}");

    let ended = wait_until(30, || async {
        device_status(&bob, &b).await.1["error"] == "authorization_denied"
    })
    .await;
    assert!(
        ended,
        "bob's login ended declined: {}",
        device_status(&bob, &b).await.1
    );
    assert!(provider(&bob.providers().await, &api).is_none());
}

async fn device_start(app: &App, api: &str) -> Value {
    let path = format!("/api/device?url={}", urlencode(api));
    let (status, login) = app.post_json(&path).await;
    assert_eq!(status, 200, "{login}");
    login
}

async fn device_status(app: &App, login: &Value) -> (u16, Value) {
    let id = login["id"].as_str().expect("a device login id");
    app.json(&format!("/api/device?id={}", urlencode(id))).await
}

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
