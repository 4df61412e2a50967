//! `AuthedFetch` and the `#[idp_worker]` example app in workerd, against
//! oidc-provider: refresh after revocation, re-authorization, step-up, and
//! redirects that leave the provider's prefix; then the same scenarios through
//! the native runtime's `AuthedFetch`.

use idp::fetch::Reason;
use idp::flow::{LoginStart, Settings};
use idp::native::NativeIdp;
use idp::policy::Policy;
use idp::registration::{ClientConfig, ClientInfo};
use idp::Error;
use idp_tests::{
    provider, state_dir, urlencode, App, AuthServerOptions, Browser, Process, Servers, Worker,
};
use serde_json::Value;

async fn post(url: &str) -> Value {
    reqwest::Client::new()
        .post(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"))
        .json()
        .await
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "current_thread")]
async fn revocation_reauthorization_step_up_and_redirects() {
    let servers = Servers::start(AuthServerOptions::default());
    let worker = Worker::start(&state_dir("authed-fetch"));
    let api = format!("{}/api", servers.origin);
    let items = format!("{api}/items");
    let alice = App::sign_in(&worker, "alice").await;
    let (status, page) = alice.connect(&api).await;
    assert_eq!(status, 200, "{page}");

    // on_auth_success metadata is stored with the provider.
    let list = alice.providers().await;
    let p = provider(&list, &api).expect("connected");
    assert_eq!(p["metadata"]["public"], false);
    assert!(p["metadata"]["connected_at"].as_u64().is_some(), "{p}");

    // The access token is revoked: the next call refreshes and succeeds.
    let (status, _) = alice.fetch(&items).await;
    assert_eq!(status, 200);
    post(&format!("{}/__revoke-tokens", servers.origin)).await;
    let before = servers.auth_count("POST /token").await;
    let (status, body) = alice.fetch(&items).await;
    assert_eq!(status, 200, "refreshed after revocation: {body}");
    assert_eq!(
        servers.auth_count("POST /token").await,
        before + 1,
        "one refresh"
    );

    // The refresh token is revoked too: authorization_required with a working URL.
    post(&format!("{}/__revoke-grants", servers.issuer)).await;
    post(&format!("{}/__revoke-tokens", servers.origin)).await;
    let (status, body) = alice.fetch(&items).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "authorization_required");
    assert_eq!(body["reason"], "revoked", "{body}");
    let reauthorize = body["reauthorize_url"]
        .as_str()
        .expect("reauthorize_url")
        .to_owned();
    assert!(
        reauthorize.starts_with(&format!("{}/oauth/login?url=", worker.origin)),
        "{reauthorize}"
    );
    let back = alice
        .browser
        .follow_until(&reauthorize, &format!("{}/oauth/callback", worker.origin))
        .await;
    let (status, page) = alice.open(back.as_str()).await;
    assert_eq!(status, 200, "reconnected: {page}");
    let (status, body) = alice.fetch(&items).await;
    assert_eq!(status, 200, "works after reconnecting: {body}");

    // 403 insufficient_scope: a step-up URL asking for the union of scopes.
    let scoped = format!("{}/scoped", servers.origin);
    let (status, page) = alice.connect(&scoped).await;
    assert_eq!(status, 200, "{page}");
    // The same asked with a 401: a step-up too, with no refresh tried.
    let tokens = servers.auth_count("POST /token").await;
    let (status, body) = alice.fetch(&format!("{scoped}/write401")).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["reason"], "insufficient_scope", "{body}");
    assert!(
        body["reauthorize_url"]
            .as_str()
            .unwrap()
            .contains("api%3Awrite"),
        "{body}"
    );
    assert_eq!(
        servers.auth_count("POST /token").await,
        tokens,
        "no refresh for scope"
    );
    let (status, body) = alice.fetch(&format!("{scoped}/write")).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["reason"], "insufficient_scope", "{body}");
    let step_up = url::Url::parse(body["reauthorize_url"].as_str().unwrap()).unwrap();
    let scope: String = step_up
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v.into_owned())
        .expect("a scope in the step-up URL");
    assert_eq!(scope, "api:read api:write");
    let back = alice
        .browser
        .follow_until(
            step_up.as_str(),
            &format!("{}/oauth/callback", worker.origin),
        )
        .await;
    let (status, page) = alice.open(back.as_str()).await;
    assert_eq!(status, 200, "{page}");
    let (status, body) = alice.fetch(&format!("{scoped}/write")).await;
    assert_eq!(status, 200, "stepped up: {body}");
    assert!(
        body["scope"].as_str().unwrap().contains("api:write"),
        "{body}"
    );
    // oidc-provider grants only the scopes a client registered: the client
    // registered once, and its registration was updated (RFC 7592) for the
    // new scope rather than replaced.
    assert_eq!(servers.auth_count("POST /reg").await, 1, "one registration");
    assert!(
        servers.auth_count("PUT /reg/:id").await >= 1,
        "updated for api:write: {}",
        servers.auth_stats().await
    );

    // Redirects: within the prefix the token goes along; to another origin it does not.
    let other = Process::start(
        "other-origin",
        "node",
        &[
            "tests/servers/resource-server.mjs",
            "--issuer",
            &servers.issuer,
        ],
    );
    let other_origin = other.field("origin");
    let inside = format!("{api}/redirect?to={}", urlencode("/api/items"));
    let (status, body) = alice.fetch(&inside).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["authorization"], true,
        "same prefix keeps the token: {body}"
    );
    let outside = format!(
        "{api}/redirect?to={}",
        urlencode(&format!("{other_origin}/echo"))
    );
    let (status, body) = alice.fetch(&outside).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["path"], "/echo");
    assert!(
        body["headers"].get("authorization").is_none(),
        "token leaked: {body}"
    );
    let seen: Value = reqwest::get(format!("{other_origin}/__stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["last_authorization"]["/echo"], false, "{seen}");
    assert_eq!(seen["requests"]["/echo"], 1, "{seen}");

    // A URL with no provider that challenges: the login URL for it.
    let bob = App::sign_in(&worker, "bob").await;
    let (status, body) = bob.fetch(&items).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["reason"], "never_connected");
    assert!(
        body["reauthorize_url"]
            .as_str()
            .unwrap()
            .contains(&urlencode(&items)),
        "{body}"
    );
}

/// Never fetched: the browser stops at the redirect to it.
const NATIVE_CALLBACK: &str = "http://127.0.0.1:9/oauth/callback";

async fn native_connect(idp: &NativeIdp, browser: &Browser, url: &str, scope: Option<&str>) {
    match idp.connect("alice", url, scope).await.unwrap() {
        LoginStart::Redirect(to) => {
            let back = browser.follow_until(to.as_str(), NATIVE_CALLBACK).await;
            idp.callback("alice", &back).await.unwrap();
        }
        LoginStart::Public(p) => panic!("{url} was stored as public: {p:?}"),
    }
}

async fn native_get(idp: &NativeIdp, url: &str) -> idp::Result<(u16, Value)> {
    let resp = idp.fetch("alice").get(url).await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

/// The same scenarios through `idp::native::AuthedFetch` (reqwest), driven by
/// the same engine request policy.
#[tokio::test(flavor = "current_thread")]
async fn native_authed_fetch_passes_the_same_scenarios() {
    let servers = Servers::start(AuthServerOptions::default());
    let idp = NativeIdp::new(Settings {
        policy: Policy::LOOPBACK_DEV,
        client_info: ClientInfo {
            name: "idp native fetch test".into(),
            version: "0.1.0".into(),
            uri: None,
        },
        clients: ClientConfig::default(),
        callback_base: url::Url::parse(NATIVE_CALLBACK).unwrap(),
        profiles: Vec::new(),
        dpop: Default::default(),
        dpop_always: Vec::new(),
        device_origins: Default::default(),
    });
    let browser = Browser::new();
    let api = format!("{}/api", servers.origin);
    let items = format!("{api}/items");
    native_connect(&idp, &browser, &api, None).await;

    // Revoked access token: one refresh, then success.
    let (status, _) = native_get(&idp, &items).await.unwrap();
    assert_eq!(status, 200);
    post(&format!("{}/__revoke-tokens", servers.origin)).await;
    let before = servers.auth_count("POST /token").await;
    let (status, body) = native_get(&idp, &items).await.unwrap();
    assert_eq!(status, 200, "refreshed after revocation: {body}");
    assert_eq!(servers.auth_count("POST /token").await, before + 1);

    // Dead grant: AuthorizationRequired(revoked); connecting again works.
    post(&format!("{}/__revoke-grants", servers.issuer)).await;
    post(&format!("{}/__revoke-tokens", servers.origin)).await;
    let Err(Error::AuthorizationRequired(r)) = native_get(&idp, &items).await else {
        panic!("expected authorization required");
    };
    assert_eq!(
        (r.resource.as_str(), r.reason),
        (api.as_str(), Reason::Revoked)
    );
    native_connect(&idp, &browser, &r.resource, r.scope.as_deref()).await;
    let (status, body) = native_get(&idp, &items).await.unwrap();
    assert_eq!(status, 200, "works after reconnecting: {body}");

    // Step-up, by 401 (no refresh tried) and by 403, for the union of scopes.
    let scoped = format!("{}/scoped", servers.origin);
    native_connect(&idp, &browser, &scoped, None).await;
    let tokens = servers.auth_count("POST /token").await;
    let Err(Error::AuthorizationRequired(r)) =
        native_get(&idp, &format!("{scoped}/write401")).await
    else {
        panic!("expected a step-up");
    };
    assert_eq!(r.reason, Reason::InsufficientScope);
    assert_eq!(
        servers.auth_count("POST /token").await,
        tokens,
        "no refresh for scope"
    );
    let Err(Error::AuthorizationRequired(r)) = native_get(&idp, &format!("{scoped}/write")).await
    else {
        panic!("expected a step-up");
    };
    assert_eq!(r.reason, Reason::InsufficientScope);
    assert_eq!(r.scope.as_deref(), Some("api:read api:write"));
    native_connect(&idp, &browser, &r.resource, r.scope.as_deref()).await;
    let (status, body) = native_get(&idp, &format!("{scoped}/write")).await.unwrap();
    assert_eq!(status, 200, "stepped up: {body}");

    // Redirects: the token stays inside the prefix, and off other origins.
    let other = Process::start(
        "other-origin-native",
        "node",
        &[
            "tests/servers/resource-server.mjs",
            "--issuer",
            &servers.issuer,
        ],
    );
    let other_origin = other.field("origin");
    let inside = format!("{api}/redirect?to={}", urlencode("/api/items"));
    let (status, body) = native_get(&idp, &inside).await.unwrap();
    assert_eq!(
        (status, &body["authorization"]),
        (200, &Value::Bool(true)),
        "{body}"
    );
    let outside = format!(
        "{api}/redirect?to={}",
        urlencode(&format!("{other_origin}/echo"))
    );
    let (status, body) = native_get(&idp, &outside).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body["headers"].get("authorization").is_none(),
        "token leaked: {body}"
    );
    let seen: Value = reqwest::get(format!("{other_origin}/__stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["requests"]["/echo"], 1, "{seen}");
    assert_eq!(seen["last_authorization"]["/echo"], false, "{seen}");

    // A caller's own credentials follow a redirect only on its origin.
    let req = reqwest::Client::new()
        .get(&outside)
        .header("cookie", "session=victim")
        .header("authorization", "Bearer caller-secret")
        .build()
        .unwrap();
    let resp = idp.fetch("alice").send(req).await.unwrap();
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["headers"].get("cookie").is_none(),
        "cookie leaked: {body}"
    );
    assert!(body["headers"].get("authorization").is_none(), "{body}");

    // Nothing connected and the resource challenges: never connected.
    let Err(Error::AuthorizationRequired(r)) = idp.fetch("bob").get(&items).await else {
        panic!("expected authorization required");
    };
    assert_eq!(
        (r.resource.as_str(), r.reason),
        (items.as_str(), Reason::NeverConnected)
    );
}

/// The opt-in isolate token cache (`IDP_TOKEN_CACHE_SECS`): a token the API
/// refuses is dropped and refreshed as without it, and a removal through
/// this isolate leaves nothing cached.
#[tokio::test(flavor = "current_thread")]
async fn the_isolate_token_cache_drops_refused_and_removed_credentials() {
    let servers = Servers::start(AuthServerOptions::default());
    let worker = Worker::start_with(&state_dir("token-cache"), &[("IDP_TOKEN_CACHE_SECS", "30")]);
    let api = format!("{}/api", servers.origin);
    let items = format!("{api}/items");
    let alice = App::sign_in(&worker, "alice").await;
    let (status, page) = alice.connect(&api).await;
    assert_eq!(status, 200, "{page}");
    for _ in 0..3 {
        let (status, body) = alice.fetch(&items).await;
        assert_eq!(status, 200, "{body}");
    }
    // The API redirects to another origin: the cached token stays home.
    let other = Process::start(
        "other-origin-cache",
        "node",
        &[
            "tests/servers/resource-server.mjs",
            "--issuer",
            &servers.issuer,
        ],
    );
    let other_origin = other.field("origin");
    let outside = format!(
        "{api}/redirect?to={}",
        urlencode(&format!("{other_origin}/echo"))
    );
    let (status, body) = alice.fetch(&outside).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["headers"].get("authorization").is_none(),
        "token leaked: {body}"
    );
    // Revoked at the API: the cached token is refused, dropped, refreshed.
    post(&format!("{}/__revoke-tokens", servers.origin)).await;
    let before = servers.auth_count("POST /token").await;
    let (status, body) = alice.fetch(&items).await;
    assert_eq!(status, 200, "refreshed past the cache: {body}");
    assert_eq!(servers.auth_count("POST /token").await, before + 1);
    let (status, body) = alice.fetch(&items).await;
    assert_eq!(status, 200, "the new token is used: {body}");
    assert_eq!(servers.auth_count("POST /token").await, before + 1);
    // Removed through this isolate: the next call is not authorized from
    // the cache.
    let (status, body) = alice
        .send_json(
            reqwest::Method::DELETE,
            &format!("/api/providers?url={}", urlencode(&api)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = alice.fetch(&items).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["reason"], "never_connected", "{body}");
}
