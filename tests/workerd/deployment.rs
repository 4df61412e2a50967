//! How the app is deployed in workerd: a split deployment, secrets at rest and their keys, the Worker's variables.

use super::*;

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
