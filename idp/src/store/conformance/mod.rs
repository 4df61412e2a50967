//! The test every [`Store`] must pass: run [`check`] on a fresh, empty store.
//! It runs in this crate against [`super::memory::MemoryStore`] and, natively,
//! against [`super::sql::SqlStore`] on SQLite (the statements the Durable
//! Object runs); a third store (Postgres, Redis, ...) passes the same.
//!
//! ```
//! # fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     let mut f = std::pin::pin!(f);
//! #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
//! #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
//! # }
//! use idp::store::{conformance, memory::MemoryStore};
//! block_on(conformance::check(&MemoryStore::default()));
//! ```
//!
//! A failure panics with the rule that was broken. A store that also keeps
//! the background refresh queue passes [`check_refresh_queue`] too, and a
//! queue with a keep-alive [`check_keep_alive`].

use super::{Expect, FlowTake, Grant, Provider, Put, RegistryStore, Store, UserStore};
use crate::authorize::PendingFlow;
use crate::discovery::AuthorizationServer;
use crate::matching::ResourceKey;
use crate::registration::{Client, Registration};
use crate::secret::{AccessToken, FlowState, PkceVerifier, RefreshToken};
use crate::token::TokenSet;
use url::Url;

mod queue;
pub use queue::{check_keep_alive, check_refresh_queue};

fn url(s: &str) -> Url {
    Url::parse(s).expect("a valid test URL")
}

fn key(s: &str) -> ResourceKey {
    ResourceKey::parse(s).expect("a valid test key")
}

pub(crate) fn flow(state: &str, owner: &str, redirect: &str) -> PendingFlow {
    PendingFlow {
        state: FlowState::new(state),
        verifier: PkceVerifier::new("v".repeat(43)),
        resource_url: "https://api.example/v1".into(),
        resource: "https://api.example/v1".into(),
        issuer: "https://as.example".into(),
        iss_required: true,
        client: Client::public("c1"),
        token_endpoint: url("https://as.example/token"),
        revocation_endpoint: None,
        redirect_uri: url(redirect),
        scope: Some("read".into()),
        owner: owner.into(),
        created_at: 1_000,
        rules: Default::default(),
        profile: None,
        dpop: None,
        refused: None,
        device: None,
        account: None,
    }
}

/// A provider under `key` with a confidential-looking grant holding
/// `access_token`, for tests of a store.
pub fn provider_with(key: &str, access_token: &str) -> Provider {
    provider(key, access_token)
}

pub(crate) fn provider(k: &str, access: &str) -> Provider {
    Provider {
        key: key(k),
        resource_url: k.into(),
        resource: k.into(),
        name: "api".into(),
        metadata: serde_json::json!({"team": "a"}),
        grant: Some(Grant {
            issuer: "https://as.example".into(),
            client: Client::public("c1"),
            token_endpoint: url("https://as.example/token"),
            revocation_endpoint: None,
            tokens: Some(TokenSet {
                access_token: AccessToken::new(access),
                refresh_token: Some(RefreshToken::new("rt")),
                expires_at: Some(5_000),
                scope: Some("read".into()),
                issued_at: Some(1_000),
                dpop: None,
            }),
            redirect_uri: Some(url("https://app.example/cb/x")),
            rules: Default::default(),
            profile: None,
            kind: Default::default(),
            unreadable: None,
            refused: None,
        }),
        created_at: 1_000,
        account: None,
    }
}

pub(crate) fn server() -> AuthorizationServer {
    let doc = serde_json::json!({
        "issuer": "https://as.example",
        "authorization_endpoint": "https://as.example/authorize",
        "token_endpoint": "https://as.example/token",
        "code_challenge_methods_supported": ["S256"],
    });
    AuthorizationServer {
        issuer: "https://as.example".into(),
        authorization_endpoint: url("https://as.example/authorize"),
        token_endpoint: url("https://as.example/token"),
        registration_endpoint: None,
        revocation_endpoint: None,
        metadata: serde_json::from_value(doc).expect("valid metadata"),
    }
}

fn token(p: &Option<Provider>) -> Option<&str> {
    p.as_ref()
        .and_then(|p| p.tokens())
        .map(|t| t.access_token.secret())
}

/// Checks every rule of the [`Store`] contract on `store`, which must start
/// empty. Panics with the broken rule.
pub async fn check<S: Store>(store: &S) {
    check_user(store).await;
    check_registry(store).await;
}

/// The contract of a [`UserStore`]: flows taken once, by their owner, at
/// their redirect URI, expired ones purged; providers written by
/// compare-and-swap, matched by the longest prefix, paged and removed.
pub async fn check_user<S: UserStore>(store: &S) {
    flows(store).await;
    providers(store).await;
    app_grants(store).await;
}

/// A grant the app holds as itself comes back with its kind and scope, so
/// it is asked for again rather than refreshed.
async fn app_grants<S: UserStore>(store: &S) {
    let api = "https://machine.example/v1";
    let mut p = provider(api, "at-app");
    if let Some(g) = p.grant.as_mut() {
        g.kind = crate::store::GrantKind::ClientCredentials {
            scope: Some("read".into()),
        };
        g.redirect_uri = None;
        if let Some(t) = g.tokens.as_mut() {
            t.refresh_token = None;
        }
    }
    assert_eq!(
        store
            .put_provider("app:jobs", p.clone(), Expect::Nothing)
            .await
            .expect("put"),
        Put::Written
    );
    let back = store
        .provider("app:jobs", &key(api))
        .await
        .expect("provider")
        .expect("stored");
    assert_eq!(back, p, "an app grant comes back whole, with its kind");
    assert!(
        store
            .provider("alice", &key(api))
            .await
            .expect("provider")
            .is_none(),
        "and only for its owner"
    );
}

/// The contract of a [`RegistryStore`]: registrations per (issuer,
/// redirect URI) kept whole and forgotten on demand, server metadata with
/// when it was fetched.
pub async fn check_registry<S: RegistryStore>(store: &S) {
    registrations_and_servers(store).await;
}

async fn flows<S: UserStore>(store: &S) {
    let cb = "https://app.example/cb/a";
    store
        .put_flow(flow("s1", "alice", cb))
        .await
        .expect("put_flow");
    let take = store.take_flow("s1", "bob", cb).await.expect("take_flow");
    assert!(
        matches!(take, FlowTake::Missing),
        "another owner's flow is Missing"
    );
    let take = store
        .take_flow("s1", "alice", "https://app.example/cb/b")
        .await
        .expect("take_flow");
    assert!(
        matches!(take, FlowTake::OtherCallback),
        "a flow taken at another redirect URI is OtherCallback"
    );
    match store.take_flow("s1", "alice", cb).await.expect("take_flow") {
        FlowTake::Taken(f) => {
            assert_eq!(f.owner, "alice");
            assert_eq!(
                f.verifier.secret(),
                "v".repeat(43),
                "the flow comes back whole"
            );
            assert_eq!(f.scope.as_deref(), Some("read"));
        }
        other => panic!(
            "the owner's flow at its redirect URI is Taken after failed attempts, got {other:?}"
        ),
    }
    let again = store.take_flow("s1", "alice", cb).await.expect("take_flow");
    assert!(matches!(again, FlowTake::Missing), "a flow is taken once");
    assert!(matches!(
        store
            .take_flow("nope", "alice", cb)
            .await
            .expect("take_flow"),
        FlowTake::Missing
    ));
    // A flow that expired before another one started is gone: pending flows
    // do not pile up.
    store
        .put_flow(flow("old", "alice", cb))
        .await
        .expect("put_flow");
    let mut later = flow("new", "alice", cb);
    later.created_at += crate::authorize::FLOW_LIFETIME_SECS + 1;
    store.put_flow(later).await.expect("put_flow");
    assert!(
        matches!(
            store
                .take_flow("old", "alice", cb)
                .await
                .expect("take_flow"),
            FlowTake::Missing
        ),
        "an expired flow is purged when a later one is stored"
    );
    assert!(matches!(
        store
            .take_flow("new", "alice", cb)
            .await
            .expect("take_flow"),
        FlowTake::Taken(_)
    ));
}

async fn registrations_and_servers<S: RegistryStore>(store: &S) {
    let reg = Registration {
        issuer: "https://as.example".into(),
        redirect_uri: "https://app.example/cb/a".into(),
        client: Client::public("c1"),
        secret_expires_at: None,
        scope: Some("read".into()),
        management: Some(crate::registration::Management {
            uri: url("https://as.example/register/c1"),
            access_token: crate::secret::RegistrationAccessToken::new("rat-1"),
        }),
    };
    store
        .put_registration(reg.clone())
        .await
        .expect("put_registration");
    let got = store
        .registration("https://as.example", "https://app.example/cb/a")
        .await
        .expect("registration");
    assert_eq!(got, Some(reg.clone()), "a registration comes back");
    let other = store
        .registration("https://as.example", "https://app.example/cb/b")
        .await
        .expect("registration");
    assert_eq!(other, None, "registrations are per (issuer, redirect URI)");
    store
        .remove_registration("https://as.example", "https://app.example/cb/a")
        .await
        .expect("remove_registration");
    assert_eq!(
        store
            .registration("https://as.example", "https://app.example/cb/a")
            .await
            .expect("registration"),
        None,
        "a removed registration is gone"
    );

    store
        .put_server("https://as.example", server(), 1_234)
        .await
        .expect("put_server");
    let (got, at) = store
        .server("https://as.example")
        .await
        .expect("server")
        .expect("a cached server");
    assert_eq!(
        (got, at),
        (server(), 1_234),
        "server metadata comes back with its time"
    );
    store
        .put_server("https://as.example", server(), 2_000)
        .await
        .expect("put_server");
    let (_, at) = store.server("https://as.example").await.unwrap().unwrap();
    assert_eq!(at, 2_000, "put_server replaces");
    assert_eq!(
        store.server("https://other.example").await.expect("server"),
        None
    );
}

async fn providers<S: UserStore>(store: &S) {
    let second = compare_and_swap(store).await;
    owners_are_separate(store).await;
    longest_prefix_and_pages(store).await;
    removal(store, second).await;
}

/// Compare-and-swap writes: a conflict writes nothing and returns the row.
async fn compare_and_swap<S: UserStore>(store: &S) -> Provider {
    let api = "https://api.example/v1";
    let first = provider(api, "at-1");

    assert_eq!(
        store
            .put_provider("alice", first.clone(), Expect::Nothing)
            .await
            .expect("put"),
        Put::Written
    );
    let conflict = store
        .put_provider("alice", provider(api, "at-x"), Expect::Nothing)
        .await
        .expect("put");
    assert_eq!(
        conflict,
        Put::Conflict(Some(Box::new(first.clone()))),
        "Expect::Nothing over a row conflicts and returns it"
    );
    let second = provider(api, "at-2");
    assert_eq!(
        store
            .put_provider("alice", second.clone(), Expect::Exactly(&first))
            .await
            .expect("put"),
        Put::Written,
        "compare-and-swap on the row read"
    );
    // A writer that read `first` before `second` was written must not win.
    let stale = store
        .put_provider("alice", provider(api, "at-stale"), Expect::Exactly(&first))
        .await
        .expect("put");
    assert_eq!(stale, Put::Conflict(Some(Box::new(second.clone()))));
    let stored = store.provider("alice", &key(api)).await.expect("provider");
    assert_eq!(
        token(&stored),
        Some("at-2"),
        "a conflicting write writes nothing"
    );
    assert_eq!(stored, Some(second.clone()), "a provider comes back whole");
    second
}

async fn owners_are_separate<S: UserStore>(store: &S) {
    let api = "https://api.example/v1";
    // Owners are separate.
    assert_eq!(
        store.provider("bob", &key(api)).await.expect("provider"),
        None
    );
    assert_eq!(
        store
            .provider_for("bob", &key("https://api.example/v1/x"))
            .await
            .expect("provider_for"),
        None
    );
    assert!(store.providers("bob").await.expect("providers").is_empty());
}

async fn longest_prefix_and_pages<S: UserStore>(store: &S) {
    let (api, deep) = ("https://api.example/v1", "https://api.example/v1/admin");
    // Longest prefix at segment boundaries.
    let admin = provider(deep, "at-admin");
    assert_eq!(
        store
            .put_provider("alice", admin.clone(), Expect::Nothing)
            .await
            .unwrap(),
        Put::Written
    );
    let at = |u: &'static str| serving(store, u);
    assert_eq!(
        at("https://api.example/v1/items/7").await.as_deref(),
        Some(api)
    );
    assert_eq!(
        at("https://api.example/v1/admin/users").await.as_deref(),
        Some(deep)
    );
    assert_eq!(
        at("https://api.example/v1/administrator").await.as_deref(),
        Some(api)
    );
    assert_eq!(at("https://api.example/v1").await.as_deref(), Some(api));
    assert_eq!(
        at("https://api.example/v10").await,
        None,
        "not a segment boundary"
    );
    assert_eq!(at("https://api.example/").await, None);
    assert_eq!(at("https://other.example/v1/x").await, None);

    let list = store.providers("alice").await.expect("providers");
    let keys: Vec<_> = list.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, [api, deep], "providers are listed by key");
    let page = |after: Option<ResourceKey>, limit| {
        let after = after.clone();
        async move {
            let list = store
                .providers_page("alice", after.as_ref(), limit)
                .await
                .expect("providers_page");
            list.into_iter().map(|p| p.key).collect::<Vec<_>>()
        }
    };
    let first_page = page(None, 1).await;
    assert_eq!(
        first_page.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        [api]
    );
    let next = page(first_page.last().cloned(), 10).await;
    assert_eq!(
        next.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        [deep],
        "the next page starts after the last key"
    );
    assert!(page(next.last().cloned(), 10).await.is_empty());
}

/// The key of alice's provider that serves `url`, if any.
async fn serving<S: UserStore>(store: &S, url: &str) -> Option<String> {
    let p = store
        .provider_for("alice", &key(url))
        .await
        .expect("provider_for");
    p.map(|p| p.key.as_str().to_owned())
}

async fn removal<S: UserStore>(store: &S, second: Provider) {
    let api = "https://api.example/v1";
    let at = |u: &'static str| serving(store, u);
    // Removal returns the row, forgets it, and a writer that read it before
    // cannot bring it back.
    let removed = store
        .remove_provider("alice", &key(api))
        .await
        .expect("remove");
    assert_eq!(removed, Some(second.clone()));
    assert_eq!(store.provider("alice", &key(api)).await.unwrap(), None);
    assert_eq!(
        store
            .remove_provider("alice", &key(api))
            .await
            .expect("remove"),
        None
    );
    let resurrect = store
        .put_provider("alice", provider(api, "at-3"), Expect::Exactly(&second))
        .await
        .unwrap();
    assert_eq!(
        resurrect,
        Put::Conflict(None),
        "a removed row is not written back"
    );
    assert_eq!(store.provider("alice", &key(api)).await.unwrap(), None);
    assert_eq!(at("https://api.example/v1/items").await, None);
}
