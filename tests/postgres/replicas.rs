//! Several processes over one PostgreSQL: one refresh per grant, logins across processes, background claims, refresh locks that die, stall or pause, unique assertions.

use super::*;

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
