//! Attacks on stored grants: answers that would drop or replace them, slow and endless token endpoints, the isolate cache.

use super::*;

/// A token endpoint that answers an HTML page (or garbage) says nothing about
/// the grant: the tokens are kept, a still-valid token keeps working during
/// an early refresh that fails, and the next good answer refreshes.
#[tokio::test(flavor = "current_thread")]
async fn an_html_token_answer_keeps_the_grant_and_the_valid_token_is_used() {
    let (hostile, _worker, alice, resource) = connected_at_hostile(
        "html-token",
        // Tokens live 20 s: refreshed in their last 10 s, used while more
        // than 2 s remain; wide windows, so a loaded machine cannot miss them.
        serde_json::json!({"token_mode": "tokens", "expires_in": 20}),
    )
    .await;
    hostile
        .configure(serde_json::json!({"token_mode": "html"}))
        .await;

    // Inside the refresh margin, still valid: the refresh fails, the call works.
    tokio::time::sleep(std::time::Duration::from_millis(13_000)).await;
    let (status, body) = alice.fetch(&format!("{resource}/items")).await;
    assert_eq!(status, 200, "the still-valid token is used: {body}");
    let log = hostile.log().await;
    assert_eq!(log["token_requests"].as_array().unwrap().len(), 2, "{log}");
    assert_eq!(
        log["authorizations"].as_array().unwrap().last().unwrap(),
        "Bearer attacker-at-1"
    );
    // The next calls use the valid token without asking the failing server
    // again (for 30 s), so they do not queue behind it.
    let (status, body) = alice.fetch(&format!("{resource}/items")).await;
    assert_eq!(status, 200, "{body}");
    let log = hostile.log().await;
    assert_eq!(log["token_requests"].as_array().unwrap().len(), 2, "{log}");

    // Expired: the call fails with a passing error, not a re-authorization.
    tokio::time::sleep(std::time::Duration::from_millis(8_500)).await;
    let (status, body) = alice.fetch(&format!("{resource}/items")).await;
    assert_ne!(body["error"], "authorization_required", "{body}");
    assert!(status >= 500, "{status} {body}");
    let p = provider(&alice.providers().await, &resource)
        .cloned()
        .unwrap();
    assert_eq!(p["has_token"], true, "the grant is kept: {p}");

    // The server recovers: the kept refresh token works.
    hostile
        .configure(serde_json::json!({"token_mode": "tokens"}))
        .await;
    let (status, body) = alice.fetch(&format!("{resource}/items")).await;
    assert_eq!(status, 200, "{body}");
    let log = hostile.log().await;
    let last = log["token_requests"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["grant_type"], "refresh_token");
    assert_eq!(last["refresh_token"], "attacker-rt");
}

/// A removal while a refresh is in flight stays a removal: the refresh that
/// finishes later cannot bring the provider back with live tokens.
#[tokio::test(flavor = "current_thread")]
async fn a_removal_during_a_slow_refresh_is_not_undone() {
    let (hostile, worker, alice, resource) = connected_at_hostile(
        "race",
        // Refreshed in the last 10 s of 20: a wide window.
        serde_json::json!({"token_mode": "tokens", "expires_in": 20}),
    )
    .await;
    hostile
        .configure(serde_json::json!({"token_mode": "slow_tokens", "slow_ms": 2500}))
        .await;
    // Inside the refresh margin: the next call refreshes, slowly.
    tokio::time::sleep(std::time::Duration::from_millis(13_000)).await;
    let items = format!("{resource}/items");
    let call = alice.fetch(&items);
    let remove = async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        alice
            .browser
            .client()
            .delete(format!(
                "{}/api/providers?url={}",
                worker.origin,
                urlencode(&resource)
            ))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let (_, removed) = tokio::join!(call, remove);
    assert_eq!(removed["removed"], true, "{removed}");
    assert!(
        provider(&alice.providers().await, &resource).is_none(),
        "the removed provider came back"
    );
    let log = hostile.log().await;
    assert_eq!(
        log["revocations"], 1,
        "the surviving grant was revoked: {log}"
    );
    let (status, body) = alice.fetch(&format!("{resource}/items")).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "authorization_required");
}

/// A token endpoint that sends an endless body, or never answers, costs the
/// app one bounded request: the body is cut at 1 MiB, the wait at the
/// configured timeout, the
/// user's object is free again, and the grant is kept for when the server
/// recovers.
#[tokio::test(flavor = "current_thread")]
async fn endless_and_hung_token_answers_are_cut_and_the_grant_kept() {
    // A 3 s timeout (the default is 10 s): `IDP_TIMEOUT_MS`.
    let (hostile, _worker, alice, resource) = connected_at_hostile_with(
        "slow",
        serde_json::json!({"token_mode": "tokens", "expires_in": 6}),
        &[("IDP_TIMEOUT_MS", "3000")],
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(6500)).await;
    let items = format!("{resource}/items");

    hostile
        .configure(serde_json::json!({"token_mode": "huge"}))
        .await;
    let (status, body) = alice.fetch(&items).await;
    assert!(status >= 500, "{status} {body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("larger than"),
        "{body}"
    );

    hostile
        .configure(serde_json::json!({"token_mode": "slow", "slow_ms": 60000}))
        .await;
    let started = std::time::Instant::now();
    let (status, body) = alice.fetch(&items).await;
    let waited = started.elapsed();
    assert!(status >= 500, "{status} {body}");
    assert!(
        waited >= std::time::Duration::from_millis(2900)
            && waited < std::time::Duration::from_secs(8),
        "the hung token request was cut at its 3 s timeout ({waited:?}): {body}"
    );
    let p = provider(&alice.providers().await, &resource)
        .cloned()
        .unwrap();
    assert_eq!(p["has_token"], true, "the grant is kept: {p}");

    hostile
        .configure(serde_json::json!({"token_mode": "tokens"}))
        .await;
    let (status, body) = alice.fetch(&items).await;
    assert_eq!(
        status, 200,
        "the lock was released and the grant works: {body}"
    );
}

/// A login that replaces a grant from another server revokes the old grant
/// (RFC 7009) so its tokens do not stay live with nobody holding them.
#[tokio::test(flavor = "current_thread")]
async fn a_grant_replaced_by_another_servers_is_revoked() {
    let servers = Servers::start(AuthServerOptions::default());
    let (hostile, _worker, alice, resource) =
        connected_at_hostile("replace", serde_json::json!({"token_mode": "tokens"})).await;
    // The resource now names the honest server; connecting again replaces
    // the grant.
    hostile
        .configure(serde_json::json!({"as_override": servers.issuer, "scopes": ["api:read"]}))
        .await;
    let (status, page) = alice.connect(&resource).await;
    assert_eq!(status, 200, "{page}");
    let log = hostile.log().await;
    assert_eq!(log["revocations"], 1, "{log}");
    assert_eq!(log["revoked"]["token"], "attacker-rt");
    assert_eq!(log["revoked"]["token_type_hint"], "refresh_token");
    let p = provider(&alice.providers().await, &resource)
        .cloned()
        .unwrap();
    assert_eq!(p["has_token"], true, "{p}");
}

/// A resource that answers without credentials at login time (it turned
/// public, or pretends to) never replaces the grant stored under its URL.
#[tokio::test(flavor = "current_thread")]
async fn a_url_that_turned_public_keeps_the_grant() {
    let (hostile, _worker, alice, resource) =
        connected_at_hostile("turned-public", serde_json::json!({"token_mode": "tokens"})).await;
    hostile
        .configure(serde_json::json!({"public": ["api"]}))
        .await;
    let (status, page) = alice.get(&App::login_path(&resource)).await;
    assert_eq!(status, 200, "{page}");
    let p = provider(&alice.providers().await, &resource)
        .cloned()
        .unwrap();
    assert_eq!(p["public"], false, "{p}");
    assert_eq!(p["has_token"], true, "the grant is kept: {p}");
    hostile.configure(serde_json::json!({"public": []})).await;
    let (status, body) = alice.fetch(&format!("{resource}/items")).await;
    assert_eq!(status, 200, "the kept token still works: {body}");
    assert_eq!(
        hostile.log().await["authorizations"]
            .as_array()
            .unwrap()
            .last()
            .unwrap(),
        "Bearer attacker-at-1"
    );
}

/// The isolate token cache keeps longest-prefix matching: with providers at
/// `/r/api` (a token) and `/r/api/team` (another, public provider), the
/// cached answer for `/r/api` is never used under `/r/api/team`, so that
/// provider's URLs never receive the broader provider's token.
#[tokio::test(flavor = "current_thread")]
async fn the_token_cache_never_answers_for_a_narrower_provider() {
    let (hostile, _worker, alice, resource) = connected_at_hostile_with(
        "cache-prefix",
        serde_json::json!({"token_mode": "tokens"}),
        &[("IDP_TOKEN_CACHE_SECS", "60")],
    )
    .await;
    let team = format!("{resource}/team");
    hostile
        .configure(serde_json::json!({"public_paths": ["/r/api/team"]}))
        .await;
    let (status, page) = alice.get(&App::login_path(&team)).await;
    assert_eq!(status, 200, "a public URL is connected at once: {page}");
    let providers = alice.providers().await;
    assert_eq!(provider(&providers, &team).unwrap()["public"], true);

    // The broader provider's answer is cached by this call...
    let (status, body) = alice.fetch(&format!("{resource}/items")).await;
    assert_eq!(status, 200, "{body}");
    // ...and not used for the narrower provider's URLs.
    for _ in 0..3 {
        let (status, body) = alice.fetch(&format!("{team}/members")).await;
        assert_eq!(status, 200, "{body}");
    }
    let seen = hostile.log().await["public_seen"].clone();
    let seen = seen.as_array().expect("the public provider was called");
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|s| s["authorization"].is_null()),
        "no token under the narrower provider: {seen:?}"
    );
    // The broader provider still gets its token.
    let (status, _) = alice.fetch(&format!("{resource}/items")).await;
    assert_eq!(status, 200);
}
