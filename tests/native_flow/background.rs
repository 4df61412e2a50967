//! Refreshes with no request in flight natively: the background pass over each store, the keep-alive, one user's hanging server.

use super::*;

/// One process, many users: alice's authorization server hangs (25 s on
/// every token request) during her refresh and during her next login's
/// code exchange; meanwhile bob's callback, refresh and authed call at
/// another server complete in normal time (refreshes lock per grant, and a
/// login holds no lock across its requests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_hanging_server_stalls_nobody_else_natively() {
    use std::time::{Duration, Instant};
    let servers = Servers::start(Default::default());
    let hostile = idp_tests::Hostile::start();
    hostile
        .configure(serde_json::json!({ "token_mode": "tokens", "expires_in": 3600 }))
        .await;
    let idp = std::sync::Arc::new(NativeIdp::new(settings()));
    let browser = Browser::new();
    let slow = format!("{}/r/slow", hostile.origin);
    let query = connect(&*idp, &browser, "alice", &slow).await;
    let alice = idp.callback("alice", &query).await.unwrap();
    let api = format!("{}/api", servers.origin);
    let query = connect(&*idp, &browser, "bob", &format!("{api}/start")).await;
    let bob = idp.callback("bob", &query).await.unwrap();

    // Alice's server now hangs: her refresh and her next login wait on it.
    hostile
        .configure(serde_json::json!({ "token_mode": "slow", "slow_ms": 25000 }))
        .await;
    let refresh = {
        let idp = idp.clone();
        let key = alice.key.clone();
        tokio::spawn(async move { idp.refresh_rejected("alice", &key, "attacker-at-1").await })
    };
    let query = connect(&*idp, &browser, "alice", &slow).await;
    let login = {
        let idp = idp.clone();
        tokio::spawn(async move { idp.callback("alice", &query).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !refresh.is_finished() && !login.is_finished(),
        "alice's server hangs"
    );

    // Bob: a login's callback, a refresh and an authed call, each at once.
    let bounded = Duration::from_secs(5);
    let started = Instant::now();
    let query = connect(
        &*idp,
        &browser,
        "bob",
        &format!("{}/v1/start", servers.origin),
    )
    .await;
    idp.callback("bob", &query).await.unwrap();
    assert!(
        started.elapsed() < bounded,
        "bob's callback: {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let stale = bob.tokens().unwrap().access_token.secret().to_owned();
    idp.refresh_rejected("bob", &bob.key, &stale).await.unwrap();
    assert!(
        started.elapsed() < bounded,
        "bob's refresh: {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let resp = idp.fetch("bob").get(&format!("{api}/items")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        started.elapsed() < bounded,
        "bob's call: {:?}",
        started.elapsed()
    );
    assert!(
        !refresh.is_finished(),
        "alice's refresh still waits on her server"
    );
    refresh.abort();
    login.abort();
}

/// One process over the in-memory store: a background pass refreshes the
/// due grant once (one token request), a passing failure waits for its
/// backoff, and a dead grant leaves the schedule.
#[tokio::test(flavor = "current_thread")]
async fn a_single_process_refreshes_in_the_background_in_memory() {
    refreshes_in_the_background(idp::store::memory::MemoryStore::default()).await;
}

/// The same over a SQLite file, its secrets sealed.
#[tokio::test(flavor = "current_thread")]
async fn a_single_process_refreshes_in_the_background_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("idp-background-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let keys = idp::store::seal::Keyring::parse(idp_tests::replica::KEYS).unwrap();
    let store = idp::native::SqliteStore::open(&dir)
        .unwrap()
        .with_keys(keys);
    refreshes_in_the_background(store).await;
    let _ = std::fs::remove_file(&dir);
}

/// A queue with a keep-alive (for servers that expire refresh tokens left
/// idle): a grant whose token is still fresh is refreshed once the
/// keep-alive has passed, once, and is then due again only a keep-alive
/// later; without a keep-alive the same grant is not due.
#[tokio::test(flavor = "current_thread")]
async fn the_keep_alive_refreshes_fresh_grants_natively() {
    use idp::flow::RefreshEvent;
    use idp::store::memory::MemoryStore;
    use idp_tests::replica::{connect, settings};
    let servers = Servers::start(Default::default());
    let kept = MemoryStore::default().with_keep_alive(std::time::Duration::from_secs(1));
    let idp = NativeIdp::with_store(settings(), kept);
    let plain = NativeIdp::with_store(settings(), MemoryStore::default());
    let api = format!("{}/api", servers.origin);
    connect(&idp, "alice", &api).await;
    connect(&plain, "alice", &api).await;
    let header = || async {
        let auth = idp.authorization("alice", &api).await.unwrap().unwrap();
        auth.header.unwrap()
    };
    let first = header().await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let before = servers.auth_count("POST /token").await;
    let pass = idp.refresh_due(100).await.unwrap();
    assert_eq!(pass.claimed.len(), 1, "due at the keep-alive");
    assert!(
        matches!(pass.events[..], [ref e] if e.event == RefreshEvent::Refreshed),
        "{:?}",
        pass.events
    );
    assert_eq!(servers.auth_count("POST /token").await, before + 1);
    assert_ne!(header().await, first, "a new token");
    assert!(
        idp.refresh_due(100).await.unwrap().claimed.is_empty(),
        "not due again until the next keep-alive"
    );
    assert!(
        plain.refresh_due(100).await.unwrap().claimed.is_empty(),
        "without a keep-alive a fresh grant is not due"
    );
}

async fn refreshes_in_the_background<S>(store: S)
where
    S: idp::store::Store + idp::store::RefreshQueue,
{
    use idp::flow::{RecordedRefresh, RefreshEvent};
    use idp::store::{Expect, Put};
    use idp_tests::replica::{connect, expire, settings};
    let servers = Servers::start(Default::default());
    let idp = NativeIdp::with_store(settings(), store);
    let api = connect(&idp, "alice", &format!("{}/api", servers.origin)).await;
    let v1 = connect(&idp, "alice", &format!("{}/v1", servers.origin)).await;
    assert!(
        idp.refresh_due(100).await.unwrap().claimed.is_empty(),
        "nothing due yet"
    );
    let before = servers.auth_count("POST /token").await;

    expire(idp.store(), "alice", &api).await;
    let pass = idp.refresh_due(100).await.unwrap();
    assert_eq!(pass.claimed.len(), 1, "{:?}", pass.claimed);
    assert!(
        matches!(
            pass.events[..],
            [RecordedRefresh {
                event: RefreshEvent::Refreshed,
                ..
            }]
        ),
        "{:?}",
        pass.events
    );
    let after = servers.auth_count("POST /token").await;
    assert_eq!(after - before, 1, "one token request");
    assert!(
        idp.refresh_due(100).await.unwrap().claimed.is_empty(),
        "not due again"
    );

    // A passing failure (503): tried again after its backoff, not at once.
    expire(idp.store(), "alice", &api).await;
    servers.fail_token(1, 503).await;
    let pass = idp.refresh_due(100).await.unwrap();
    assert!(
        matches!(
            pass.events[..],
            [RecordedRefresh {
                event: RefreshEvent::Failed {
                    transient: true,
                    ..
                },
                ..
            }]
        ),
        "{:?}",
        pass.events
    );
    assert!(
        idp.refresh_due(100).await.unwrap().claimed.is_empty(),
        "waits for the backoff"
    );

    // A dead grant (the server does not know its refresh token): stopped.
    let stored = idp.store().provider("alice", &v1).await.unwrap().unwrap();
    let mut dead = stored.clone();
    let t = dead.grant.as_mut().unwrap().tokens.as_mut().unwrap();
    t.refresh_token = Some(idp::secret::RefreshToken::new("forgotten"));
    t.expires_at = Some(native::now() - 10);
    let put = idp
        .store()
        .put_provider("alice", dead, Expect::Exactly(&stored));
    assert_eq!(put.await.unwrap(), Put::Written);
    let pass = idp.refresh_due(100).await.unwrap();
    assert!(
        matches!(
            pass.events[..],
            [RecordedRefresh {
                event: RefreshEvent::Dead { .. },
                ..
            }]
        ),
        "{:?}",
        pass.events
    );
    assert!(
        idp.refresh_due(100).await.unwrap().claimed.is_empty(),
        "a dead grant stays stopped"
    );
}
