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

mod replicas;
mod server_example;

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
