//! The native runtime on PostgreSQL, with several real processes: the store
//! contract, one refresh per grant across processes against a server that
//! rotates refresh tokens and detects their reuse (oidc-provider), a login
//! started in one process and completed in another once, background
//! refreshes claimed by one process each, and a refresh lock that a dead
//! process gives back. Each test starts its own PostgreSQL on loopback.

use idp::error::StorageCause;
use idp::flow::LoginStart;
use idp::matching::ResourceKey;
use idp::native::{NativeIdp, PostgresStore};
use idp::store::{conformance, Expect, Put, UserStore};
use idp_tests::postgres::Postgres;
use idp_tests::replica::{
    authorize_together, connect, expire, result, scratch, settings, KEYS, REDIRECT,
};
use idp_tests::{Browser, Process, Servers};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

async fn store(url: &str) -> PostgresStore {
    let keys = idp::store::seal::Keyring::parse(KEYS).unwrap();
    PostgresStore::connect(url).await.unwrap().with_keys(keys)
}

fn now() -> u64 {
    idp::native::now()
}

async fn clear_stats(servers: &Servers) {
    reqwest::Client::new()
        .post(format!("{}/__stats", servers.issuer))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_keeps_the_store_contract_sealed_and_migrates_once() {
    let pg = Postgres::start();
    // In plain text, and sealed.
    // Without keys, secrets are refused unless plain text is asked for.
    let keyless = PostgresStore::connect(&pg.database("keyless"))
        .await
        .unwrap();
    let secret = conformance::provider_with("https://keyless.example/api", "KEYLESS-SECRET-1");
    let e = keyless
        .put_provider("alice", secret, Expect::Nothing)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("plaintext()"), "{e}");
    assert_eq!(pg.sql("keyless", "SELECT COUNT(*) FROM idp_providers"), "0");
    let plain = PostgresStore::connect(&pg.database("plain"))
        .await
        .unwrap()
        .plaintext();
    conformance::check(&plain).await;
    let sealed = store(&pg.database("sealed")).await;
    conformance::check(&sealed).await;
    let queue = store(&pg.database("queue")).await;
    conformance::check_refresh_queue(&queue).await;
    let kept = store(&pg.database("kept"))
        .await
        .with_keep_alive(Duration::from_secs(500));
    conformance::check_keep_alive(&kept, 500).await;
    let mut p = conformance::provider_with("https://secret.example/api", "ACCESS-SECRET-123");
    if let Some(g) = p.grant.as_mut() {
        g.tokens.as_mut().unwrap().refresh_token =
            Some(idp::secret::RefreshToken::new("REFRESH-SECRET-456"));
        g.client.client_secret = Some(idp::secret::ClientSecret::new("CLIENT-SECRET-789"));
    }
    let put = sealed
        .put_provider("carol", p.clone(), Expect::Nothing)
        .await;
    assert_eq!(put.unwrap(), Put::Written);
    let rows = pg.sql("sealed", "SELECT data FROM idp_providers");
    for secret in [
        "ACCESS-SECRET-123",
        "REFRESH-SECRET-456",
        "CLIENT-SECRET-789",
    ] {
        assert!(!rows.contains(secret), "{secret} is in the table");
    }
    assert!(rows.contains("idp-enc:2:k1:"), "{rows}");
    assert_eq!(
        sealed.provider("carol", &p.key).await.unwrap(),
        Some(p.clone())
    );
    // Sealed as the SQLite store seals: the same row opens there.
    let data = pg.sql(
        "sealed",
        &format!(
            "SELECT data FROM idp_providers WHERE owner = 'carol' AND key = '{}'",
            p.key.as_str()
        ),
    );
    let lite = idp::native::SqliteStore::open_in_memory()
        .unwrap()
        .with_keys(idp::store::seal::Keyring::parse(KEYS).unwrap());
    lite.exec(
        "INSERT INTO idp_providers (owner, key, data, updated_at) VALUES ('carol', ?, ?, 0)",
        vec![
            idp::store::sql::text(p.key.as_str()),
            idp::store::sql::text(&data),
        ],
    )
    .unwrap();
    assert_eq!(
        lite.provider("carol", &p.key).await.unwrap(),
        Some(p.clone())
    );

    // Rotation: a new key first, the old one still listed; re-encryption
    // leaves nothing under the old one.
    const K2: &str = "k2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let rotated = PostgresStore::connect(&pg.url("sealed"))
        .await
        .unwrap()
        .with_keys(idp::store::seal::Keyring::parse(&format!("{K2},{KEYS}")).unwrap());
    assert!(rotated.reseal().await.unwrap() >= 1);
    assert_eq!(
        rotated.reseal().await.unwrap(),
        0,
        "nothing left under the old key"
    );
    let only_new = PostgresStore::connect(&pg.url("sealed"))
        .await
        .unwrap()
        .with_keys(idp::store::seal::Keyring::parse(K2).unwrap());
    assert_eq!(
        only_new.provider("carol", &p.key).await.unwrap(),
        Some(p.clone())
    );
    // A wrong key reads as "connect again" for that grant, and no panic.
    let wrong = store(&pg.url("sealed")).await;
    let got = wrong.provider("carol", &p.key).await.unwrap().unwrap();
    assert!(got.grant.unwrap().unreadable.unwrap().contains("\"k2\""));

    // Eight processes' worth of stores starting at once on a new database
    // migrate it once.
    let url = pg.database("fresh");
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                PostgresStore::connect(&url)
                    .await
                    .map(|s| s.pool().status().size)
            })
        })
        .collect();
    for s in starts {
        s.await.unwrap().unwrap();
    }
    assert_eq!(
        pg.sql("fresh", "SELECT count(*), max(version) FROM idp_schema"),
        "1|1"
    );

    // Errors say what was tried and what came back, without the password.
    let e = PostgresStore::connect(&format!(
        "postgresql://idp:hunter2@127.0.0.1:{}/missing",
        pg.port
    ))
    .await
    .unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(text.contains("missing"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!format!("{sealed:?}").contains("idp@"), "{sealed:?}");
}

/// 4 processes × 50 callers on an expired token: one token request, every
/// caller gets the new token, and the grant lives on at a server that
/// revokes it when a rotated refresh token is used twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_refresh_an_expired_grant_once() {
    let pg = Postgres::start();
    let servers = Servers::start(Default::default());
    let db = pg.database("single");
    let idp = NativeIdp::with_store(settings(), store(&db).await);
    let api = format!("{}/api", servers.origin);
    let key = connect(&idp, "alice", &api).await;
    let first = idp.store().provider("alice", &key).await.unwrap().unwrap();
    let old = first.tokens().unwrap().access_token.secret().to_owned();
    expire(idp.store(), "alice", &key).await;
    clear_stats(&servers).await;

    let results = authorize_together(&db, "alice", &format!("{api}/items"), 4, 50).await;
    let mut headers = std::collections::BTreeSet::new();
    for r in &results {
        assert_eq!(r["ok"], 50, "every caller succeeds: {r}");
        for h in r["headers"].as_array().unwrap() {
            headers.insert(h.as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        servers.auth_count("POST /token").await,
        1,
        "one token request for 200 callers"
    );
    let now_stored = idp.store().provider("alice", &key).await.unwrap().unwrap();
    let new = now_stored
        .tokens()
        .unwrap()
        .access_token
        .secret()
        .to_owned();
    assert_ne!(new, old);
    let expected: std::collections::BTreeSet<String> =
        [idp::token::fingerprint(&format!("Bearer {new}"))].into();
    assert_eq!(
        headers, expected,
        "every caller used the token the winner stored"
    );

    // The grant survived rotation with reuse detection: another refresh
    // with the stored refresh token works, and the API takes the token.
    expire(idp.store(), "alice", &key).await;
    let auth = idp
        .authorization("alice", &format!("{api}/items"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(servers.auth_count("POST /token").await, 2);
    let status = reqwest::Client::new()
        .get(format!("{api}/items"))
        .header("authorization", auth.header.unwrap())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

/// A login started by one process completes in another; two callbacks with
/// the same state in two processes give one grant and one refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_started_in_one_process_completes_in_another_once() {
    let pg = Postgres::start();
    let servers = Servers::start(Default::default());
    let db = pg.database("flows");
    let idp = NativeIdp::with_store(settings(), store(&db).await);
    let api = format!("{}/api", servers.origin);
    let LoginStart::Redirect(to) = idp.connect("alice", &api, None).await.unwrap() else {
        panic!("protected");
    };
    let back = Browser::new().follow_until(to.as_str(), REDIRECT).await;

    let dir = scratch("flows");
    let go = dir.join("go");
    let replicas: Vec<(Process, PathBuf)> = (0..2)
        .map(|i| {
            let out = dir.join(format!("out-{i}"));
            let p = idp_tests::replica::start(
                &format!("callback-{i}"),
                &[
                    "callback",
                    "--db",
                    &db,
                    "--go",
                    go.to_str().unwrap(),
                    "--out",
                    out.to_str().unwrap(),
                    "--owner",
                    "alice",
                    "--url",
                    back.as_str(),
                ],
            );
            (p, out)
        })
        .collect();
    std::fs::write(&go, "").unwrap();
    let mut outcomes = Vec::new();
    for (_, out) in &replicas {
        outcomes.push(result(out).await);
    }
    let connected: Vec<_> = outcomes
        .iter()
        .filter(|r| r["connected"].is_string())
        .collect();
    let refused: Vec<_> = outcomes.iter().filter(|r| r["error"].is_string()).collect();
    assert_eq!((connected.len(), refused.len()), (1, 1), "{outcomes:?}");
    assert!(
        refused[0]["message"].as_str().unwrap().contains("state"),
        "{outcomes:?}"
    );
    assert_eq!(
        servers.auth_count("POST /token").await,
        1,
        "the code was exchanged once"
    );
    assert_eq!(idp.store().providers("alice").await.unwrap().len(), 1);
    assert_eq!(
        pg.sql("flows", "SELECT count(*) FROM idp_flows"),
        "0",
        "the flow is spent"
    );
    // And the process that started it uses the grant the other stored.
    let auth = idp
        .authorization("alice", &format!("{api}/x"))
        .await
        .unwrap();
    assert!(auth.unwrap().header.is_some());
}

/// Two processes run a background pass at once over four due grants: each
/// grant is claimed and refreshed by one of them. Then a passing failure is
/// retried later, and a dead grant is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_refreshes_are_claimed_by_one_process_each() {
    let pg = Postgres::start();
    let servers = Servers::start(Default::default());
    let db = pg.database("background");
    let idp = NativeIdp::with_store(settings(), store(&db).await);
    let mut grants = Vec::new();
    for owner in ["alice", "bob"] {
        for path in ["api", "v1"] {
            let key = connect(&idp, owner, &format!("{}/{path}", servers.origin)).await;
            grants.push((owner, key));
        }
    }
    // Nothing is due yet: tokens last an hour.
    assert!(idp.refresh_due(100).await.unwrap().claimed.is_empty());
    for (owner, key) in &grants {
        expire(idp.store(), owner, key).await;
    }
    clear_stats(&servers).await;

    let dir = scratch("background");
    let go = dir.join("go");
    let replicas: Vec<(Process, PathBuf)> = (0..2)
        .map(|i| {
            let out = dir.join(format!("out-{i}"));
            let p = idp_tests::replica::start(
                &format!("background-{i}"),
                &[
                    "background",
                    "--db",
                    &db,
                    "--go",
                    go.to_str().unwrap(),
                    "--out",
                    out.to_str().unwrap(),
                ],
            );
            (p, out)
        })
        .collect();
    std::fs::write(&go, "").unwrap();
    let mut claimed = Vec::new();
    let mut events = Vec::new();
    for (_, out) in &replicas {
        let r = result(out).await;
        claimed.extend(
            r["claimed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_owned()),
        );
        events.extend(
            r["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_owned()),
        );
    }
    claimed.sort();
    let mut expected: Vec<String> = grants.iter().map(|(o, k)| format!("{o} {k}")).collect();
    expected.sort();
    assert_eq!(claimed, expected, "each grant claimed once");
    assert_eq!(events.len(), 4, "{events:?}");
    assert!(
        events.iter().all(|e| e.ends_with("Refreshed")),
        "{events:?}"
    );
    assert_eq!(servers.auth_count("POST /token").await, 4);
    assert!(
        idp.refresh_due(100).await.unwrap().claimed.is_empty(),
        "nothing left due"
    );

    // A passing failure: retried after the backoff, not at once.
    let (owner, key) = &grants[0];
    expire(idp.store(), owner, key).await;
    servers.fail_token(1, 503).await;
    let pass = idp.refresh_due(100).await.unwrap();
    assert_eq!(pass.claimed.len(), 1);
    assert!(
        matches!(
            pass.events[..],
            [idp::flow::RecordedRefresh {
                event: idp::flow::RefreshEvent::Failed {
                    transient: true,
                    ..
                },
                ..
            }]
        ),
        "{:?}",
        pass.events
    );
    let row = pg.sql("background", &format!("SELECT failures, refresh_at - {} FROM idp_providers WHERE owner = '{owner}' AND key = '{key}'", now()));
    let (failures, wait) = row.split_once('|').unwrap();
    assert_eq!(failures, "1");
    assert!(
        (25..=31).contains(&wait.parse::<i64>().unwrap()),
        "retried in 30 s: {row}"
    );
    assert!(
        idp.refresh_due(100).await.unwrap().claimed.is_empty(),
        "not before then"
    );

    // A dead grant (the server no longer knows its refresh token): dropped
    // and never due again.
    let (owner, key) = &grants[1];
    let before = idp.store().provider(owner, key).await.unwrap().unwrap();
    let mut after = before.clone();
    let t = after.grant.as_mut().unwrap().tokens.as_mut().unwrap();
    t.refresh_token = Some(idp::secret::RefreshToken::new("forgotten"));
    t.expires_at = Some(now() - 10);
    assert_eq!(
        idp.store()
            .put_provider(owner, after, Expect::Exactly(&before))
            .await
            .unwrap(),
        Put::Written
    );
    let pass = idp.refresh_due(100).await.unwrap();
    assert!(
        matches!(
            pass.events[..],
            [idp::flow::RecordedRefresh {
                event: idp::flow::RefreshEvent::Dead { .. },
                ..
            }]
        ),
        "{:?}",
        pass.events
    );
    let row = pg.sql("background", &format!("SELECT refresh_at IS NULL FROM idp_providers WHERE owner = '{owner}' AND key = '{key}'"));
    assert_eq!(row, "t", "a dead grant is not scheduled");

    // A grant whose secrets this process cannot open (sealed under a key it
    // does not have): it needs the person again, so its schedule stops
    // instead of being claimed on every pass.
    const OTHER: &str = "k9:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let other = PostgresStore::connect(&db)
        .await
        .unwrap()
        .with_keys(idp::store::seal::Keyring::parse(OTHER).unwrap());
    let mut sealed = conformance::provider_with("https://elsewhere.example/api", "AT");
    if let Some(t) = sealed.grant.as_mut().and_then(|g| g.tokens.as_mut()) {
        t.refresh_token = Some(idp::secret::RefreshToken::new("RT"));
        t.expires_at = Some(now() - 10);
    }
    let put = other.put_provider("carol", sealed.clone(), Expect::Nothing);
    assert_eq!(put.await.unwrap(), Put::Written);
    let pass = idp.refresh_due(100).await.unwrap();
    assert_eq!(pass.claimed.len(), 1, "{:?}", pass.claimed);
    let pass = idp.refresh_due(100).await.unwrap();
    assert!(pass.claimed.is_empty(), "claimed again: {:?}", pass.claimed);
    let row = pg.sql(
        "background",
        "SELECT refresh_at IS NULL FROM idp_providers WHERE owner = 'carol'",
    );
    assert_eq!(row, "t");
}

/// A process holding a grant's refresh lock keeps others waiting a bounded
/// time; when it dies, the lock is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_process_gives_back_the_refresh_lock() {
    let pg = Postgres::start();
    let db = pg.database("lock");
    let dir = scratch("lock");
    let out = dir.join("out");
    let key = ResourceKey::parse("https://api.example/v1").unwrap();
    let holder = idp_tests::replica::start(
        "holder",
        &[
            "hold",
            "--db",
            &db,
            "--out",
            out.to_str().unwrap(),
            "--owner",
            "alice",
            "--url",
            key.as_str(),
        ],
    );
    assert_eq!(result(&out).await["held"], true);
    let here = store(&db)
        .await
        .with_lock_wait(Duration::from_millis(500))
        .unwrap();
    let started = Instant::now();
    let e = here.exclusive("alice", &key, async {}).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "a bounded wait");
    assert!(
        matches!(&e, idp::Error::Storage(s) if s.cause == StorageCause::Unavailable),
        "{e}"
    );
    assert!(e.to_string().contains("another process"), "{e}");
    // Another grant is not held up.
    let other = ResourceKey::parse("https://api.example/v2").unwrap();
    here.exclusive("alice", &other, async {}).await.unwrap();

    drop(holder); // killed: its connection drops, and the lock with it
    let free = store(&db)
        .await
        .with_lock_wait(Duration::from_secs(10))
        .unwrap();
    let started = Instant::now();
    free.exclusive("alice", &key, async {}).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
}

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

/// A process stuck while holding a grant's refresh lock (alive, its
/// connection open, nothing happening: a hung token endpoint) loses it once
/// its hold time passes; the grant is free for the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_process_cannot_keep_the_refresh_lock() {
    let pg = Postgres::start();
    let db = pg.database("stuck");
    let dir = scratch("stuck");
    let out = dir.join("out");
    let key = ResourceKey::parse("https://api.example/v1").unwrap();
    let holder = idp_tests::replica::start(
        "stuck",
        &[
            "hold",
            "--db",
            &db,
            "--out",
            out.to_str().unwrap(),
            "--owner",
            "alice",
            "--url",
            key.as_str(),
            "--hold-ms",
            "1500",
        ],
    );
    assert_eq!(result(&out).await["held"], true);
    let here = store(&db)
        .await
        .with_lock_wait(Duration::from_secs(20))
        .unwrap();
    let started = Instant::now();
    here.exclusive("alice", &key, async {}).await.unwrap();
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
    assert!(
        Path::new(&format!("/proc/{}", holder.pid())).exists(),
        "the holder is still running: the database took the lock back"
    );
}

/// A process paused while it holds a grant's refresh lock (its connection
/// idle past the hold time) loses the lock; another process then refreshes
/// and rotates the refresh token. When the paused one resumes, the token it
/// read is no longer the stored one, and the check made right before
/// sending says so: it sends nothing, and the other's rotation stands.
/// Lock settings under a millisecond (PostgreSQL's "no timeout") are
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_process_does_not_send_a_rotated_refresh_token() {
    use idp::secret::RefreshToken;
    let pg = Postgres::start();
    let db = pg.database("paused");
    assert!(store(&db)
        .await
        .with_lock_wait(Duration::from_micros(500))
        .is_err());
    assert!(store(&db).await.with_lock_hold(Duration::ZERO).is_err());
    let paused = store(&db)
        .await
        .with_lock_hold(Duration::from_millis(300))
        .unwrap();
    let other = store(&db)
        .await
        .with_lock_wait(Duration::from_secs(10))
        .unwrap();
    let mut row = conformance::provider_with("https://api.example/v1", "AT-1");
    let tokens = row.grant.as_mut().and_then(|g| g.tokens.as_mut()).unwrap();
    tokens.refresh_token = Some(RefreshToken::new("RT-1"));
    let key = row.key.clone();
    assert_eq!(
        paused
            .put_provider("alice", row, Expect::Nothing)
            .await
            .unwrap(),
        Put::Written
    );

    let read = RefreshToken::new("RT-1");
    // Before it pauses, the check passes: it holds the lock, the token is
    // the stored one.
    let fresh = paused
        .exclusive("alice", &key, paused.still_current("alice", &key, &read))
        .await
        .unwrap();
    assert!(fresh.is_ok(), "{fresh:?}");
    let resumed = paused.exclusive("alice", &key, async {
        // Paused past the hold time with the lock: the database ends it.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        paused.still_current("alice", &key, &read).await
    });
    let rotate = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        other
            .exclusive("alice", &key, async {
                // Holds the lock, not yet written, while the paused one
                // resumes: the stored token is still the one it read, and
                // only its lost lock tells it not to send.
                tokio::time::sleep(Duration::from_millis(2500)).await;
                let now = other.provider("alice", &key).await.unwrap().unwrap();
                let mut next = now.clone();
                let t = next.grant.as_mut().and_then(|g| g.tokens.as_mut()).unwrap();
                t.refresh_token = Some(RefreshToken::new("RT-2"));
                other
                    .put_provider("alice", next, Expect::Exactly(&now))
                    .await
                    .unwrap()
            })
            .await
            .unwrap()
    };
    let (resumed, rotated) = tokio::join!(resumed, rotate);
    assert_eq!(rotated, Put::Written, "the other process got the lock");
    let e = resumed.unwrap().unwrap_err();
    assert_eq!(e.kind(), idp::error::ErrorKind::Storage, "{e}");
    assert!(e.to_string().contains("lost the refresh lock"), "{e}");
    assert!(e.to_string().contains("nothing was sent"), "{e}");
    assert!(!e.to_string().contains("RT-"), "no token in the error: {e}");
    let kept = other.provider("alice", &key).await.unwrap().unwrap();
    let kept = kept.tokens().unwrap().refresh_token.as_ref().unwrap();
    assert_eq!(kept.secret(), "RT-2", "the rotation stands");
    // Once rotated, the token read before is refused even outside a lock,
    // and the current one passes.
    let stale = paused
        .still_current("alice", &key, &read)
        .await
        .unwrap_err();
    assert!(
        stale.to_string().contains("no longer the one stored"),
        "{stale}"
    );
    paused
        .still_current("alice", &key, &RefreshToken::new("RT-2"))
        .await
        .unwrap();
}

/// Two processes connect the app as itself (`private_key_jwt`, the same
/// key, the same server, the same resource) in the same second, for two
/// owners: each assertion's `jti` is the process's own randomness, so
/// oidc-provider, which refuses a `jti` it has seen, gives both a token.
/// With a `jti` drawn from the key, issuer, second and a count that starts
/// at zero in every process, the second was refused as a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_never_send_the_same_assertion_jti() {
    let pg = Postgres::start();
    let servers = Servers::start(Default::default());
    let db = pg.database("jti");
    let api = format!("{}/api", servers.origin);
    let key = idp_tests::KeyPair::generate("ES256");
    let client_id = servers.register_keyed_machine_client(&key).await;
    let dir = scratch("jti");
    let key_file = dir.join("key.pem");
    std::fs::write(&key_file, &key.private_pem).unwrap();
    let go = dir.join("go");
    let replicas: Vec<(Process, PathBuf)> = (0..2)
        .map(|i| {
            let out = dir.join(format!("out-{i}"));
            let owner = format!("app:replica-{i}");
            let p = idp_tests::replica::start(
                &format!("jti-{i}"),
                &[
                    "machine",
                    "--db",
                    &db,
                    "--go",
                    go.to_str().unwrap(),
                    "--out",
                    out.to_str().unwrap(),
                    "--owner",
                    &owner,
                    "--url",
                    &api,
                    "--issuer",
                    &servers.issuer,
                    "--client-id",
                    &client_id,
                    "--key-file",
                    key_file.to_str().unwrap(),
                ],
            );
            (p, out)
        })
        .collect();
    // Both go just after a second begins, so both sign in the same second.
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    std::thread::sleep(Duration::from_nanos(
        1_000_000_000 - u64::from(since.subsec_nanos()) + 50_000_000,
    ));
    std::fs::write(&go, "").unwrap();
    for (_, out) in &replicas {
        let r = result(out).await;
        assert_eq!(r["connected"], Value::from(api.as_str()), "{r}");
    }
    let idp = NativeIdp::with_store(settings(), store(&db).await);
    for i in 0..2 {
        let owner = format!("app:replica-{i}");
        let auth = idp.authorization(owner.as_str(), &api).await.unwrap();
        assert!(auth.and_then(|a| a.header).is_some(), "{owner} has a token");
    }
}

/// PostgreSQL over TLS when the connection string asks (`sslmode`), against
/// a server with a certificate from an authority of the test's own: with
/// the authority's root (`sslrootcert`) the store connects and every
/// connection it opens is encrypted; a server nobody vouches for, one whose
/// certificate names another host (an impostor with a certificate from the
/// same authority) and a server without TLS get no connection, so nothing
/// (password, query, token) is sent to them; without `sslmode` the store
/// connects as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_connects_over_tls_when_asked_and_checks_the_server() {
    use idp_tests::postgres::TestCa;
    let ca = TestCa::new("pg");
    let pg = Postgres::start_tls(&ca.issue("db", "IP:127.0.0.1"));
    let db = pg.database("tls");
    let root = ca.root.display();
    for (i, mode) in ["require", "verify-full"].into_iter().enumerate() {
        let app = format!("idp-tls-{i}");
        let url = format!("{db}?sslmode={mode}&sslrootcert={root}&application_name={app}");
        let s = store(&url).await;
        let row = conformance::provider_with(&format!("https://api.example/v{i}"), "AT-SECRET");
        let put = s
            .put_provider("alice", row.clone(), Expect::Nothing)
            .await
            .unwrap();
        assert_eq!(put, Put::Written);
        assert_eq!(
            s.provider("alice", &row.key).await.unwrap().unwrap().key,
            row.key
        );
        let encrypted = pg.sql(
            "tls",
            &format!(
                "SELECT count(*), bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = '{app}'"
            ),
        );
        let (count, all) = encrypted.split_once('|').unwrap();
        assert!(count.parse::<u32>().unwrap() >= 1, "{encrypted}");
        assert_eq!(all, "t", "{mode}: every connection is encrypted");
    }

    let refused = |url: String| async move {
        let e = PostgresStore::connect(&url).await.unwrap_err();
        let text = e.to_string();
        assert!(
            !text.contains("pw-SECRET"),
            "no password in the error: {text}"
        );
        text
    };
    let with_password = db.replace("idp@", "idp:pw-SECRET@");
    // Nobody vouches for the server's certificate.
    let text = refused(format!("{with_password}?sslmode=require")).await;
    assert!(text.contains("UnknownIssuer"), "{text}");
    // The certificate is the authority's, for another host.
    let as_localhost = with_password.replace("127.0.0.1", "localhost");
    let text = refused(format!(
        "{as_localhost}?sslmode=verify-full&sslrootcert={root}"
    ))
    .await;
    assert!(text.contains("not valid for name \"localhost\""), "{text}");
    // A server without TLS.
    let plain = Postgres::start();
    let text = refused(format!(
        "{}?sslmode=require&sslrootcert={root}",
        plain.database("plain")
    ))
    .await;
    assert!(text.contains("server does not support TLS"), "{text}");
    // TLS asked, then turned off by a second sslmode: refused, not plain.
    let text = refused(format!(
        "{db}?sslmode=verify-full&sslrootcert={root}&sslmode=disable"
    ))
    .await;
    assert!(text.contains("sslmode more than once"), "{text}");
    // A root file that is not one.
    let text = refused(format!("{db}?sslmode=require&sslrootcert=/nonexistent.pem")).await;
    assert!(text.contains("/nonexistent.pem"), "{text}");
    // Not asked: plain, as before.
    let app = "idp-plain";
    let s = store(&format!("{db}?application_name={app}")).await;
    assert!(s
        .provider(
            "alice",
            &ResourceKey::parse("https://api.example/v1").unwrap()
        )
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        pg.sql(
            "tls",
            &format!("SELECT bool_or(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = '{app}'"),
        ),
        "f"
    );
}
