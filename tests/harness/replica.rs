//! What the native tests, the benchmark and the replicas they start
//! (`tests/bin/replica.rs`) agree on.

use idp::flow::{LoginStart, Settings};
use idp::matching::ResourceKey;
use idp::native::NativeIdp;
use idp::store::{Expect, Put, Store};

/// The callback URL of the replicas' settings (never fetched).
pub const REDIRECT: &str = "http://127.0.0.1:9/oauth/callback";
/// The sealing keys of every replica (a test key).
pub const KEYS: &str = "k1:HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4=";

/// The settings every replica runs with: servers on loopback, Bearer
/// tokens (so a header can be compared across processes).
pub fn settings() -> Settings {
    Settings {
        policy: idp::policy::Policy::LOOPBACK_DEV,
        client_info: idp::registration::ClientInfo {
            name: "idp replica".into(),
            version: "0.1.0".into(),
            uri: None,
        },
        clients: Default::default(),
        callback_base: url::Url::parse(REDIRECT).expect("static URL"),
        profiles: Vec::new(),
        dpop: idp::settings::DpopUse::Never,
        dpop_always: Vec::new(),
        device_origins: Default::default(),
    }
}

/// Connects `owner` to `url` through oidc-provider's pages.
pub async fn connect<S: Store>(idp: &NativeIdp<S>, owner: &str, url: &str) -> ResourceKey {
    let LoginStart::Redirect(to) = idp.connect(owner, url, None).await.expect("login starts")
    else {
        panic!("{url} is protected");
    };
    let back = crate::Browser::new()
        .follow_until(to.as_str(), REDIRECT)
        .await;
    idp.callback(owner, &back).await.expect("callback").key
}

/// Makes a stored grant's access token expired, as if time had passed.
pub async fn expire<S: Store>(store: &S, owner: &str, key: &ResourceKey) {
    let before = store.provider(owner, key).await.unwrap().expect("stored");
    let mut after = before.clone();
    let tokens = after.grant.as_mut().unwrap().tokens.as_mut().unwrap();
    tokens.expires_at = Some(idp::native::now() - 10);
    let put = store.put_provider(owner, after, Expect::Exactly(&before));
    assert_eq!(put.await.unwrap(), Put::Written);
}

/// The replica binary next to the running one's profile (debug or
/// release), built by `scripts/test` and `scripts/bench`.
pub fn binary() -> std::path::PathBuf {
    let root = crate::repo_root().join("target");
    let built = ["release", "debug"]
        .iter()
        .map(|p| root.join(p).join("idp-replica"))
        .filter(|p| p.exists())
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    built.unwrap_or_else(|| {
        panic!(
            "no idp-replica under {}: `cargo build -p idp-tests --bin idp-replica`",
            root.display()
        )
    })
}

/// Starts a replica; it is connected when this returns.
pub fn start(name: &str, args: &[&str]) -> crate::Process {
    crate::Process::start(name, binary().to_str().expect("UTF-8 path"), args)
}

/// Waits for a replica's result file.
pub async fn result(path: &std::path::Path) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(path) {
            return serde_json::from_str(&text).expect("a JSON result");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no result at {}", path.display());
}

/// A scratch directory for the replicas' go and result files.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("idp-replicas-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// `processes` replicas that each run `callers` concurrent authorized
/// calls to `url` as `owner` at once: their results.
pub async fn authorize_together(
    db: &str,
    owner: &str,
    url: &str,
    processes: usize,
    callers: usize,
) -> Vec<serde_json::Value> {
    let dir = scratch("authorize");
    let go = dir.join("go");
    let callers = callers.to_string();
    let replicas: Vec<_> = (0..processes)
        .map(|i| {
            let out = dir.join(format!("out-{i}"));
            let args = [
                "authorize",
                "--db",
                db,
                "--go",
                go.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--owner",
                owner,
                "--url",
                url,
                "--callers",
                &callers,
            ];
            (start(&format!("replica-{i}"), &args), out)
        })
        .collect();
    std::fs::write(&go, "").expect("go");
    let mut results = Vec::new();
    for (_, out) in &replicas {
        results.push(result(out).await);
    }
    let _ = std::fs::remove_dir_all(&dir);
    results
}
