//! `AuthedFetch` and the `#[idp_worker]` example app in workerd, against
//! oidc-provider: refresh after revocation, re-authorization, step-up, and
//! redirects that leave the provider's prefix.

use idp_tests::{provider, state_dir, urlencode, App, AuthServerOptions, Process, Servers, Worker};
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
