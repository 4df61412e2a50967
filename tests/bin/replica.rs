//! One replica of a native app on a shared PostgreSQL store, for the
//! cross-process tests (`tests/postgres/`): it connects, prints a ready
//! line, waits until the test creates its `--go` file (so every replica
//! starts at once), does one thing, and writes what came of it as JSON to
//! its `--out` file. It never prints a token, only fingerprints.
//!
//! ```text
//! idp-replica authorize  --db URL --go FILE --out FILE --owner O --url U --callers N
//! idp-replica callback   --db URL --go FILE --out FILE --owner O --url CALLBACK
//! idp-replica background --db URL --go FILE --out FILE
//! idp-replica hold       --db URL --out FILE --owner O --url KEY [--hold-ms N]
//! idp-replica machine    --db URL --go FILE --out FILE --owner O --url U
//!                        --issuer I --client-id C --key-file PEM
//! ```

use idp::matching::ResourceKey;
use idp::native::{NativeIdp, PostgresStore};
use idp::store::UserStore;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

fn write(out: &str, value: Value) {
    let tmp = format!("{out}.tmp");
    std::fs::write(&tmp, value.to_string()).expect("write the result");
    std::fs::rename(&tmp, out).expect("publish the result");
}

async fn go(file: &str) {
    while !std::path::Path::new(file).exists() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let command = args.next().expect("a command");
    let mut opts = HashMap::new();
    while let (Some(k), Some(v)) = (args.next(), args.next()) {
        opts.insert(k.trim_start_matches("--").to_owned(), v);
    }
    let opt = |k: &str| {
        opts.get(k)
            .cloned()
            .unwrap_or_else(|| panic!("--{k} is required"))
    };
    let keys = idp::store::seal::Keyring::parse(idp_tests::replica::KEYS).expect("test keys");
    let store = PostgresStore::connect(&opt("db"))
        .await
        .expect("connect to PostgreSQL")
        .with_keys(keys)
        .with_lock_wait(Duration::from_secs(20))
        .and_then(|s| {
            s.with_lock_hold(Duration::from_millis(
                opts.get("hold-ms")
                    .and_then(|h| h.parse().ok())
                    .unwrap_or(45_000),
            ))
        })
        .expect("lock settings");
    let mut settings = idp_tests::replica::settings();
    if let Some(client_id) = opts.get("client-id") {
        // The app as itself, with a key of its own (`private_key_jwt`).
        let key = std::fs::read_to_string(opt("key-file")).expect("the key file");
        settings.clients.pre_registered = vec![idp::registration::PreRegisteredClient::new(
            opt("issuer"),
            idp::registration::Client::confidential(
                client_id.clone(),
                idp::secret::ClientSecret::new(key),
                idp::registration::AuthMethod::PrivateKeyJwt,
            ),
            &[opt("url").as_str()],
        )];
    }
    let idp = std::sync::Arc::new(NativeIdp::with_store(settings, store));
    println!("{}", json!({ "ready": true, "pid": std::process::id() }));
    let out = opt("out");
    match command.as_str() {
        "authorize" => {
            go(&opt("go")).await;
            let callers: usize = opt("callers").parse().expect("a number");
            let tasks: Vec<_> = (0..callers)
                .map(|_| {
                    let (idp, owner, url) = (idp.clone(), opt("owner"), opt("url"));
                    tokio::spawn(async move { idp.authorization(&owner, &url).await })
                })
                .collect();
            let mut ok = 0;
            let mut errors = Vec::new();
            let mut seen = std::collections::BTreeSet::new();
            for t in tasks {
                match t.await.expect("the task ran") {
                    Ok(Some(auth)) => {
                        ok += 1;
                        seen.insert(idp::token::fingerprint(&auth.header.unwrap_or_default()));
                    }
                    Ok(None) => errors.push("no provider".to_owned()),
                    Err(e) => errors.push(e.to_string()),
                }
            }
            write(&out, json!({ "ok": ok, "errors": errors, "headers": seen }));
        }
        "callback" => {
            go(&opt("go")).await;
            let at = url::Url::parse(&opt("url")).expect("a callback URL");
            let result = match idp.callback(&opt("owner"), &at).await {
                Ok(p) => json!({ "connected": p.key.as_str() }),
                Err(e) => json!({ "error": e.kind(), "message": e.to_string() }),
            };
            write(&out, result);
        }
        "background" => {
            go(&opt("go")).await;
            let result = match idp.refresh_due(100).await {
                Ok(pass) => json!({
                    "claimed": pass.claimed.iter().map(|d| format!("{} {}", d.owner, d.key)).collect::<Vec<_>>(),
                    "events": pass.events.iter().map(|e| format!("{} {} {:?}", e.owner, e.key, e.event)).collect::<Vec<_>>(),
                }),
                Err(e) => json!({ "error": e.to_string() }),
            };
            write(&out, result);
        }
        "machine" => {
            go(&opt("go")).await;
            let result = match idp
                .connect_as_app(opt("owner").as_str(), &opt("url"), None)
                .await
            {
                Ok(p) => json!({ "connected": p.key.as_str() }),
                Err(e) => json!({ "error": e.kind(), "message": e.to_string() }),
            };
            write(&out, result);
        }
        "hold" => {
            // Takes the grant's refresh lock and never lets go: the test
            // kills this process while it holds it.
            let key = ResourceKey::parse(&opt("url")).expect("a key");
            let (store, owner) = (idp.store(), opt("owner"));
            let held = store.exclusive(&owner, &key, async {
                write(&out, json!({ "held": true }));
                std::future::pending::<()>().await
            });
            held.await.expect("the lock");
        }
        other => panic!("unknown command {other}"),
    }
}
