//! Attacks on the example app in workerd, each played by a hostile server or
//! page (`tests/servers/hostile.mjs`), asserting what the attacker got
//! (nothing) and what the victim kept (everything).

use idp_tests::{
    free_port, join_all, provider, state_dir, urlencode, App, AuthServerOptions, CimdServer,
    Hostile, KeyPair, Servers, Worker,
};
use serde_json::Value;

/// The query parameters of a URL.
fn params(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// RFC 9700 §4.4: the attacker's authorization server bounces the victim to
/// an honest server that sends no `iss`, with the app's client there. The
/// honest server redirects to its own callback URL, which is not the one the
/// victim's flow was sent with, so the code never reaches the attacker.
#[tokio::test(flavor = "current_thread")]
async fn mix_up_through_a_server_without_iss_gets_nothing() {
    let servers = Servers::start(AuthServerOptions {
        no_iss: true,
        ..Default::default()
    });
    let hostile = Hostile::start();
    let worker = Worker::start(&state_dir("mixup"));
    let api = format!("{}/api", servers.origin);

    // The victim has a working grant at the honest server.
    let alice = App::sign_in(&worker, "alice").await;
    let (status, page) = alice.connect(&api).await;
    assert_eq!(status, 200, "{page}");
    let before = alice.providers().await;

    // The attacker, a user of the app too, learns the app's client id and
    // callback URL at the honest server from an authorization request.
    let mallory = App::sign_in(&worker, "mallory").await;
    let resp = mallory
        .browser
        .get(format!("{}{}", worker.origin, App::login_path(&api)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    let honest_auth = resp.headers()["location"].to_str().unwrap().to_owned();
    let honest = params(&honest_auth);
    let endpoint = honest_auth.split('?').next().unwrap().to_owned();
    hostile
        .configure(serde_json::json!({
            "token_mode": "tokens",
            "bounce": {
                "authorization_endpoint": endpoint,
                "client_id": honest["client_id"],
                "redirect_uri": honest["redirect_uri"],
                "resource": api,
                "scope": "api:read",
            }
        }))
        .await;

    // The victim connects the attacker's URL (pasted from somewhere).
    let back = alice.start(&format!("{}/r/mcp", hostile.origin)).await;
    let log = hostile.log().await;
    let sent_to_attacker = params(&format!(
        "http://x/?{}",
        log["authorize"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v.as_str().unwrap())))
            .collect::<Vec<_>>()
            .join("&")
    ));
    assert_ne!(
        sent_to_attacker["redirect_uri"], honest["redirect_uri"],
        "each server has its own callback URL"
    );
    assert!(
        back.starts_with(&honest["redirect_uri"]),
        "the honest server sent the victim to its own callback: {back}"
    );
    assert!(!back.contains("iss="), "a server without RFC 9207: {back}");
    let (status, page) = alice.open(&back).await;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains("another authorization server"),
        "the page says why: {page}"
    );

    // What the attacker got: nothing at its token endpoint.
    let log = hostile.log().await;
    assert_eq!(
        log["token_requests"],
        Value::Array(vec![]),
        "no code or verifier reached the attacker"
    );
    // What the victim kept: the same providers, and the grant still works.
    let after = alice.providers().await;
    assert_eq!(before, after);
    assert!(provider(&after, &format!("{}/r/mcp", hostile.origin)).is_none());
    let (status, body) = alice.fetch(&format!("{api}/items")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["authorization"], true);
}

/// RFC 9700 §4.7: a page on another site links (or auto-submits a form) to
/// the app's login route. Nothing starts: the app answers a confirmation
/// page, and only its own button, carrying a single-use token bound to the
/// user, starts the flow.
#[tokio::test(flavor = "current_thread")]
async fn cross_site_login_starts_nothing_without_the_persons_confirmation() {
    let servers = Servers::start(AuthServerOptions::default());
    let hostile = Hostile::start();
    let worker = Worker::start(&state_dir("csrf"));
    let api = format!("{}/api", servers.origin);
    let target = format!("{}/r/x", hostile.origin);
    let alice = App::sign_in(&worker, "alice").await;
    let bob = App::sign_in(&worker, "bob").await;
    let login = format!("{}{}", worker.origin, App::login_path(&target));
    let confirm_page = |site: Option<&'static str>| {
        let mut req = alice.browser.client().get(&login);
        if let Some(site) = site {
            req = req.header("sec-fetch-site", site);
        }
        req
    };

    // A link or frame from another site, a typed URL, or no header at all.
    for site in [Some("cross-site"), Some("same-site"), Some("none"), None] {
        let resp = confirm_page(site).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{site:?}");
        assert!(resp.headers().get("location").is_none(), "{site:?}");
        assert_eq!(resp.headers()["x-frame-options"], "DENY");
        let page = resp.text().await.unwrap();
        assert!(
            page.contains("to your account?") && page.contains(&target),
            "{site:?}: {page}"
        );
    }
    // An Origin or Referer from another site is not the app either.
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("referer", "https://evil.example/x"),
    ] {
        let resp = alice
            .browser
            .client()
            .get(&login)
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert!(resp.headers().get("location").is_none(), "{name}");
    }

    // A forged confirmation: no token, a made-up token, bob's token.
    let bobs = bob
        .browser
        .client()
        .get(format!("{}{}", worker.origin, App::login_path(&target)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let bobs_token = token_of(&bobs);
    for token in [None, Some("forged".to_owned()), Some(bobs_token)] {
        let mut form = vec![("url", target.clone())];
        if let Some(t) = token.clone() {
            form.push(("token", t));
        }
        let resp = alice
            .browser
            .client()
            .post(format!("{}/oauth/login", worker.origin))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 403, "{token:?}");
        assert!(resp.headers().get("location").is_none());
    }

    // What the attacker got: the app never even fetched its URL.
    let log = hostile.log().await;
    assert_eq!(log["requests"], Value::Array(vec![]), "{log}");
    assert!(alice.providers().await.is_empty());

    // The person confirms on the page: one click starts the flow, and the
    // token cannot be used twice.
    let login = format!("{}{}", worker.origin, App::login_path(&api));
    let page = alice
        .browser
        .client()
        .get(&login)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = token_of(&page);
    let form = [("url", api.clone()), ("token", token)];
    let post = || {
        alice
            .browser
            .client()
            .post(format!("{}/oauth/login", worker.origin))
            .header("sec-fetch-site", "same-origin")
            .form(&form)
            .send()
    };
    let resp = post().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    let to = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with(&servers.issuer), "{to}");
    let back = alice
        .browser
        .follow_until(&to, &format!("{}/oauth/callback", worker.origin))
        .await;
    let (status, page) = alice.open(back.as_str()).await;
    assert_eq!(status, 200, "{page}");
    assert!(provider(&alice.providers().await, &api).is_some());
    assert_eq!(post().await.unwrap().status().as_u16(), 403, "single use");

    // The app's own connect form (same origin) still works in one click.
    let (status, page) = alice.connect(&format!("{}/v1", servers.origin)).await;
    assert_eq!(status, 200, "{page}");
}

/// Alice, signed in to a fresh app, with `{hostile}/r/api` connected through
/// the hostile server configured with `config` (which issues the tokens).
async fn connected_at_hostile(name: &str, config: Value) -> (Hostile, Worker, App, String) {
    connected_at_hostile_with(name, config, &[]).await
}

/// [`connected_at_hostile`] with Worker variables.
async fn connected_at_hostile_with(
    name: &str,
    config: Value,
    vars: &[(&str, &str)],
) -> (Hostile, Worker, App, String) {
    let hostile = Hostile::start();
    // These tests watch what a call does to the grant: no background
    // refresh in between.
    let mut vars = vars.to_vec();
    vars.push(("IDP_BACKGROUND_REFRESH", "off"));
    let worker = Worker::start_with(&state_dir(name), &vars);
    hostile.configure(config).await;
    let alice = App::sign_in(&worker, "alice").await;
    let resource = format!("{}/r/api", hostile.origin);
    let (status, page) = alice.connect(&resource).await;
    assert_eq!(status, 200, "{page}");
    (hostile, worker, alice, resource)
}

fn token_of(page: &str) -> String {
    let at = page
        .find("name=\"token\" value=\"")
        .unwrap_or_else(|| panic!("no token in {page}"));
    let rest = &page[at + "name=\"token\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// A server that does not promise PKCE S256 is refused before the app
/// registers or sends the person anywhere.
#[tokio::test(flavor = "current_thread")]
async fn a_server_without_pkce_s256_is_refused_before_anything_is_sent() {
    let hostile = Hostile::start();
    let worker = Worker::start(&state_dir("nopkce"));
    hostile
        .configure(serde_json::json!({"no_pkce": true}))
        .await;
    let alice = App::sign_in(&worker, "alice").await;
    let resp = alice
        .browser
        .get(format!(
            "{}{}",
            worker.origin,
            App::login_path(&format!("{}/r/nopkce", hostile.origin))
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let page = resp.text().await.unwrap();
    assert!(page.contains("code_challenge_methods_supported"), "{page}");
    let log = hostile.log().await;
    let requests: Vec<&str> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        !requests
            .iter()
            .any(|r| r.contains("/register") || r.contains("/authorize")),
        "{requests:?}"
    );
    assert!(alice.providers().await.is_empty());
}

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

/// An upstream's HTML relayed by `/api/fetch` never runs as a page of the
/// app's origin.
#[tokio::test(flavor = "current_thread")]
async fn relayed_upstream_html_is_sandboxed() {
    let hostile = Hostile::start();
    let worker = Worker::start(&state_dir("relay"));
    let alice = App::sign_in(&worker, "alice").await;
    let resp = alice
        .browser
        .get(format!(
            "{}/api/fetch?url={}",
            worker.origin,
            urlencode(&format!("{}/r/page", hostile.origin))
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let h = resp.headers();
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("sandbox"),
        "{h:?}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(
        resp.text().await.unwrap().contains("<script>"),
        "relayed as is, inert"
    );
}

/// Authorization servers fetch the client ID metadata document without any
/// session: it is served to anyone, and lists the callback URL of each
/// authorization server the deployment has used that accepts the document
/// and promises RFC 9207 `iss`, and of no other.
#[tokio::test(flavor = "current_thread")]
async fn the_client_metadata_document_is_served_without_a_session() {
    let servers = Servers::start(AuthServerOptions::default());
    let cimd = CimdServer::start(true);
    let worker = Worker::start_with(
        &state_dir("cimd"),
        &[("IDP_CLIENT_METADATA_URL", "{origin}/oauth/client.json")],
    );
    let url = format!("{}/oauth/client.json", worker.origin);
    let doc: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert_eq!(doc["client_id"], url);
    assert_eq!(doc["token_endpoint_auth_method"], "none");
    assert_eq!(
        doc["redirect_uris"],
        serde_json::json!([format!("{}/oauth/callback", worker.origin)])
    );
    // After logins at a server that takes the document and one that does
    // not, the first one's callback URL is listed.
    let alice = App::sign_in(&worker, "alice").await;
    let (status, page) = alice.connect(&format!("{}/api", servers.origin)).await;
    assert_eq!(status, 200, "{page}");
    let (status, page) = alice.connect(&format!("{}/api", cimd.origin)).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(cimd.log().await["authorizations"][0]["client_id"], url);
    let doc: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    let listed = doc["redirect_uris"].to_string();
    for (issuer, expected) in [(&cimd.origin, true), (&servers.issuer, false)] {
        let id = idp::callback::callback_id(issuer);
        assert_eq!(
            listed.contains(&format!("{}/oauth/callback/{id}", worker.origin)),
            expected,
            "{issuer}: {listed}"
        );
    }
}

/// A URL whose path hides `..%2F` or `%2E%2E` leaves the provider's prefix
/// once a server decodes it: it gets no token.
#[tokio::test(flavor = "current_thread")]
async fn encoded_dot_segments_get_no_token() {
    let (hostile, _worker, alice, resource) = connected_at_hostile(
        "dotdot",
        serde_json::json!({"token_mode": "tokens", "public": ["mallory"]}),
    )
    .await;
    let (status, body) = alice.fetch(&format!("{resource}/items")).await;
    assert_eq!(status, 200, "{body}");
    let sent = |log: &Value| log["authorizations"].as_array().map_or(0, Vec::len);
    let before = sent(&hostile.log().await);
    assert_eq!(before, 1);
    for sneaky in [
        format!("{resource}/..%2F..%2Fr%2Fmallory"),
        format!("{resource}/%2E%2E/mallory"),
        format!("{resource}/%2e%2e%5cmallory"),
    ] {
        let _ = alice.fetch(&sneaky).await;
        assert_eq!(sent(&hostile.log().await), before, "{sneaky} got the token");
    }
    // The grant is untouched.
    let (status, body) = alice.fetch(&format!("{resource}/items")).await;
    assert_eq!(status, 200, "{body}");
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

/// Resource metadata that claims a broader resource than the URL, from a
/// URL that is not that resource's own metadata URL (RFC 9728 §3.3), is
/// refused: one path of a shared host cannot claim the whole host.
#[tokio::test(flavor = "current_thread")]
async fn metadata_claiming_a_broader_resource_is_refused() {
    let hostile = Hostile::start();
    let worker = Worker::start(&state_dir("broad"));
    hostile
        .configure(serde_json::json!({"broad_resource": format!("{}/r", hostile.origin)}))
        .await;
    let alice = App::sign_in(&worker, "alice").await;
    let (status, page) = alice
        .get(&App::login_path(&format!("{}/r/broad", hostile.origin)))
        .await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("RFC 9728"), "{page}");
    let log = hostile.log().await;
    let requests = log["requests"].to_string();
    assert!(
        !requests.contains("/register") && !requests.contains("/authorize"),
        "{requests}"
    );
    assert!(alice.providers().await.is_empty());
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

/// Who the user is comes from a signed session cookie: a request that claims
/// to be alice (a header, a plain cookie, an edited or foreign-key session)
/// sees none of her connections.
#[tokio::test(flavor = "current_thread")]
async fn a_claimed_identity_is_not_a_session() {
    let servers = Servers::start(AuthServerOptions::default());
    let worker = Worker::start(&state_dir("session"));
    let api = format!("{}/api", servers.origin);
    let alice = App::sign_in(&worker, "alice").await;
    let (status, page) = alice.connect(&api).await;
    assert_eq!(status, 200, "{page}");

    let signin = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/signin?user=mallory", worker.origin))
        .send()
        .await
        .unwrap();
    let cookie = signin.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain http on loopback: {cookie}"
    );
    let mallorys = cookie.split(';').next().unwrap().to_owned();
    let token = mallorys.trim_start_matches("idp_session=").to_owned();
    let (user, rest) = token.split_once('.').unwrap();
    assert_eq!(user, "bWFsbG9yeQ", "base64url of mallory");
    let edited = format!("idp_session=YWxpY2U.{rest}");
    let foreign = {
        let key = idp::session::SessionKey::new(b"not the app's key, but 32 bytes long").unwrap();
        format!("idp_session={}", key.sign("alice", u64::MAX / 2))
    };
    let claims: Vec<(&str, String)> = vec![
        ("x-user-id", "alice".into()),
        ("cookie", "uid=alice".into()),
        ("cookie", edited),
        ("cookie", foreign),
        ("cookie", "idp_session=YWxpY2U.99999999999.".into()),
    ];
    for (name, value) in claims {
        let resp = reqwest::Client::new()
            .get(format!("{}/api/providers", worker.origin))
            .header(name, &value)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{name}: {value}");
        assert!(!resp.text().await.unwrap().contains(&api));
    }
    // Mallory's own valid session sees only her (empty) list.
    let resp = reqwest::Client::new()
        .get(format!("{}/api/providers", worker.origin))
        .header("cookie", &mallorys)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), serde_json::json!([]));
    // Alice keeps hers.
    assert!(provider(&alice.providers().await, &api).is_some());
}

/// A forwarded request carries the person's request, never their cookies or
/// credentials for the app.
#[tokio::test(flavor = "current_thread")]
async fn forwarding_never_leaks_the_callers_credentials() {
    let hostile = Hostile::start();
    let worker = Worker::start(&state_dir("forward"));
    let alice = App::sign_in(&worker, "alice").await;
    let resp = alice
        .browser
        .client()
        .post(format!(
            "{}/api/forward?url={}",
            worker.origin,
            urlencode(&format!("{}/r/echo", hostile.origin))
        ))
        .header("authorization", "Basic YWxpY2U6cGFzc3dvcmQ=")
        .header("proxy-authorization", "Basic cHJveHk6c2VjcmV0")
        .header("x-request-id", "abc-123")
        .header("x-api-key", "the-callers-own-key")
        .header("x-forwarded-for", "10.0.0.1")
        .header("content-type", "application/json")
        .body(r#"{"hello":"world"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let log = hostile.log().await;
    let echo = &log["echo"];
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["body"], r#"{"hello":"world"}"#);
    assert_eq!(echo["headers"]["x-request-id"], "abc-123");
    for leaked in ["cookie", "authorization", "proxy-authorization"] {
        assert!(echo["headers"].get(leaked).is_none(), "{leaked}: {echo}");
    }
    assert!(!echo.to_string().contains("idp_session"), "{echo}");
    // Only the headers an upstream needs are forwarded (an allowlist).
    for unlisted in ["x-api-key", "x-forwarded-for"] {
        assert!(
            echo["headers"].get(unlisted).is_none(),
            "{unlisted}: {echo}"
        );
    }
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

/// RFC 7592: a server whose registration answer names a management URI on
/// another origin cannot make the victim's Worker send an authenticated
/// update (the client's metadata and a bearer token) there. When a later
/// login needs more scope, the client registers again at the server's own
/// endpoint instead.
#[tokio::test(flavor = "current_thread")]
async fn a_management_uri_on_another_origin_receives_nothing() {
    // The third party the hostile server points at: it logs every request.
    let third_party = Hostile::start();
    let (hostile, _worker, alice, resource) = connected_at_hostile(
        "management",
        serde_json::json!({
            "token_mode": "tokens",
            "scopes": ["read"],
            "management_uri": format!("{}/r/echo/register/attacker-client", third_party.origin),
        }),
    )
    .await;
    // A second resource asks for a scope the cached registration lacks.
    hostile
        .configure(serde_json::json!({"scopes": ["read", "write"]}))
        .await;
    let other = format!("{}/r/other", hostile.origin);
    let (status, page) = alice.connect(&other).await;
    assert_eq!(status, 200, "{page}");

    // What the attacker's chosen third party got: nothing.
    let seen = third_party.log().await;
    assert_eq!(seen["requests"], serde_json::json!([]), "{seen}");
    assert!(seen["echo"].is_null(), "{seen}");
    // The client registered again at the server's own endpoint, for both
    // scopes, and the victim keeps both connections.
    let log = hostile.log().await;
    let registrations = log["registrations"].as_array().cloned().unwrap_or_default();
    assert_eq!(registrations.len(), 2, "{log}");
    assert_eq!(registrations[1]["scope"], "read write", "{log}");
    let list = alice.providers().await;
    for r in [&resource, &other] {
        let p = provider(&list, r).unwrap_or_else(|| panic!("{r} not connected: {list:?}"));
        assert_eq!(p["has_token"], true, "{p}");
    }
}

/// A hostile resource whose RFC 9728 metadata names an authorization server
/// at which the app has its own client (pre-registered for one API): the
/// victim who connects it is not sent to that server with the app's client,
/// so no token of theirs is issued for, stored under or sent to the hostile
/// resource; the app says which client was refused, and the victim's grant
/// at the real API is untouched.
#[tokio::test(flavor = "current_thread")]
async fn a_hostile_resource_does_not_borrow_the_apps_client() {
    let servers = Servers::start(AuthServerOptions::default());
    let api = format!("{}/api", servers.origin);
    let port = free_port();
    let callback = format!("http://127.0.0.1:{port}/oauth/callback/honest");
    let client_id = servers.register_client(&callback).await;
    let pre_registered = serde_json::json!([{
        "issuer": servers.issuer,
        "client_id": client_id,
        "callback_id": "honest",
        "resources": [api],
    }])
    .to_string();
    let worker = Worker::start_on(
        port,
        &state_dir("borrowed-client"),
        &[("IDP_PRE_REGISTERED", &pre_registered)],
    );
    let hostile = Hostile::start();

    // The victim connects the real API with the app's client there.
    let alice = App::sign_in(&worker, "alice").await;
    let (status, page) = alice.connect(&api).await;
    assert_eq!(status, 200, "{page}");
    let before = alice.providers().await;
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(
        servers.auth_count("POST /reg").await,
        1,
        "the app used its pre-registered client (the one registration is the operator's)"
    );
    let authorizations = servers.auth_count("GET /auth").await;
    assert!(authorizations >= 1);

    // The hostile resource names the same server.
    hostile
        .configure(serde_json::json!({ "as_override": servers.issuer }))
        .await;
    let steal = format!("{}/r/steal", hostile.origin);
    let resp = alice
        .browser
        .get(format!("{}{}", worker.origin, App::login_path(&steal)))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    let page = resp.text().await.unwrap();
    assert_eq!(
        location, None,
        "the victim is sent nowhere with the app's client"
    );
    assert_eq!(status, 403, "{page}");
    assert!(page.contains(&servers.issuer), "names the issuer: {page}");
    assert!(page.contains("/r/steal"), "names the resource: {page}");

    // What the attacker got: nothing.
    assert_eq!(
        servers.auth_count("GET /auth").await,
        authorizations,
        "no authorization request reached the server"
    );
    let log = hostile.log().await;
    assert!(log["authorizations"].is_null(), "{log}");
    assert!(
        log["token_requests"].as_array().unwrap().is_empty(),
        "{log}"
    );
    let (status, body) = alice.fetch(&steal).await;
    assert_ne!(status, 200, "{body}");
    assert!(hostile.log().await["authorizations"].is_null());

    // What the victim kept: everything.
    assert_eq!(alice.providers().await, before);
    let (status, body) = alice.fetch(&format!("{api}/items")).await;
    assert_eq!(status, 200, "{body}");
}

/// A hostile resource whose metadata names the server where the app holds
/// its own `private_key_jwt` client: connecting it as the app signs no
/// assertion and sends no token request (403
/// `client_not_allowed_for_resource`), and nothing the attacker is sent
/// carries a token; the app's grant for its own API stays and works.
#[tokio::test(flavor = "current_thread")]
async fn a_hostile_resource_gets_nothing_signed_with_the_apps_key() {
    const OPERATOR: &str = "operator-token-for-the-key-attack-0123456789";
    let servers = Servers::start(AuthServerOptions::default());
    let key = KeyPair::generate("ES256");
    let client_id = servers.register_keyed_machine_client(&key).await;
    let api = format!("{}/api", servers.origin);
    let pre_registered = serde_json::json!([{
        "issuer": servers.issuer,
        "client_id": client_id,
        "client_secret_name": "APP_PRIVATE_KEY",
        "auth_method": "private_key_jwt",
        "resources": [api],
    }])
    .to_string();
    let worker = Worker::start_with(
        &state_dir("borrowed-key"),
        &[
            ("IDP_PRE_REGISTERED", &pre_registered),
            ("APP_PRIVATE_KEY", &key.private_jwk.to_string()),
            ("IDP_ADMIN_TOKEN", OPERATOR),
        ],
    );
    let items = format!("{api}/items");
    let (status, before) =
        idp_tests::as_operator(&worker, OPERATOR, "/admin/app/connect", &items).await;
    assert_eq!(status, 200, "{before}");
    let tokens = servers.auth_count("POST /token").await;

    let hostile = Hostile::start();
    hostile
        .configure(serde_json::json!({ "as_override": servers.issuer }))
        .await;
    let steal = format!("{}/r/steal", hostile.origin);
    let (status, body) =
        idp_tests::as_operator(&worker, OPERATOR, "/admin/app/connect", &steal).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "client_not_allowed_for_resource", "{body}");

    // What the attacker got: nothing, and nothing was signed for it.
    assert_eq!(
        servers.auth_count("POST /token").await,
        tokens,
        "no assertion sent"
    );
    let (status, _) = idp_tests::as_operator(&worker, OPERATOR, "/admin/app/fetch", &steal).await;
    assert_ne!(status, 200);
    let log = hostile.log().await;
    assert!(
        log["token_requests"].as_array().unwrap().is_empty(),
        "{log}"
    );
    let carried = log["hops"].as_array().into_iter().flatten();
    assert!(
        carried.clone().all(|h| h["authorization"].is_null()),
        "{log}"
    );
    assert!(!log.to_string().contains(&client_id), "{log}");

    // What the app kept: its grant, which works.
    let (status, body) =
        idp_tests::as_operator(&worker, OPERATOR, "/admin/app/fetch", &items).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        servers.auth_count("POST /token").await,
        tokens,
        "the same token"
    );
}

/// Follows every redirect from `start` as the person's browser would (the
/// app's cookie only to the app) until a page answers: its URL, status and
/// text.
async fn walk(app: &App, start: &str) -> (String, u16, String) {
    let mut current = url::Url::parse(start).unwrap();
    for _ in 0..20 {
        let resp = app.browser.get(current.clone()).send().await.unwrap();
        let status = resp.status().as_u16();
        match resp.headers().get("location") {
            Some(l) if (300..400).contains(&status) => {
                current = current.join(l.to_str().unwrap()).unwrap();
            }
            _ => return (current.to_string(), status, resp.text().await.unwrap()),
        }
    }
    panic!("more than 20 redirects from {start}");
}

/// RFC 9700 §4.4 through a client ID metadata document, which is the app's
/// client at every server: the attacker's server bounces the victim to an
/// honest server that accepts the document but sends no `iss`, with the
/// app's client id and the attacker's own callback URL. The document lists
/// no callback of a server that neither promises `iss` nor is trusted
/// without it, so the honest server refuses; an attacker that claims `iss`
/// to be listed gets a flow that requires it, and its callback is refused.
/// Neither the honest code nor the PKCE verifier reaches the attacker.
#[tokio::test(flavor = "current_thread")]
async fn mix_up_through_a_metadata_document_gets_nothing() {
    let honest = CimdServer::start(false);
    let worker = Worker::start_with(
        &state_dir("cimd-mixup"),
        &[
            ("IDP_CLIENT_METADATA_URL", "{origin}/oauth/client.json"),
            ("IDP_METADATA_DOCUMENT_WITHOUT_ISS", &honest.origin),
        ],
    );
    let api = format!("{}/api", honest.origin);
    let document = format!("{}/oauth/client.json", worker.origin);
    let callback = format!("{}/oauth/callback", worker.origin);

    // The victim's grant at the honest server, made with the document (the
    // deployment trusts that server without `iss`).
    let alice = App::sign_in(&worker, "alice").await;
    let (status, page) = alice.connect(&api).await;
    assert_eq!(status, 200, "{page}");
    let log = honest.log().await;
    assert_eq!(log["authorizations"][0]["client_id"], document, "{log}");
    assert_eq!(log["tokens"], 1);
    let before = alice.providers().await;

    for claims_iss in [false, true] {
        // A new attacker each time: server metadata is cached per issuer.
        let hostile = Hostile::start();
        hostile
            .configure(serde_json::json!({
                "token_mode": "tokens",
                "cimd": true,
                "claims_iss": claims_iss,
                "bounce": {
                    "authorization_endpoint": format!("{}/authorize", honest.origin),
                    "client_id": document,
                    "redirect_uri": null,
                    "resource": api,
                },
            }))
            .await;
        let target = format!(
            "{}/r/{}",
            hostile.origin,
            if claims_iss { "claims-iss" } else { "mcp" }
        );
        let start = format!("{}{}", worker.origin, App::login_path(&target));
        let (at, status, page) = walk(&alice, &start).await;
        let sent = hostile.log().await["authorize"].clone();
        assert!(
            sent["redirect_uri"]
                .as_str()
                .is_some_and(|r| r.starts_with(&callback)),
            "the attacker learnt its own callback URL: {sent}"
        );
        let doc: Value = reqwest::get(&document).await.unwrap().json().await.unwrap();
        let listed = doc["redirect_uris"].to_string();
        let refusal = honest.log().await["authorizations"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["refused"]
            .clone();
        if claims_iss {
            // Listed, as a server that promised `iss`: the honest server
            // sends the code, and the callback, which requires `iss`, refuses.
            assert_eq!(refusal, Value::Null);
            assert!(at.starts_with(&callback), "{at}");
            assert_eq!(status, 400, "{page}");
            assert!(page.to_lowercase().contains("iss"), "{page}");
        } else {
            // Not listed: the honest server refuses the attacker's callback
            // URL, and the app never presented the document at the attacker.
            assert!(
                !listed.contains(sent["redirect_uri"].as_str().unwrap()),
                "{listed}"
            );
            assert_ne!(sent["client_id"], document.as_str(), "{sent}");
            assert_eq!(status, 400, "{at}: {page}");
            assert!(at.starts_with(&honest.origin), "{at}");
            assert!(
                refusal.as_str().is_some_and(|r| r.contains("redirect_uri")),
                "{refusal}"
            );
        }
        // What the attacker got: nothing at its token endpoint.
        let log = hostile.log().await;
        assert_eq!(
            log["token_requests"],
            Value::Array(vec![]),
            "no code or verifier reached the attacker ({claims_iss})"
        );
        assert_eq!(honest.log().await["tokens"], 1, "no token was issued");
    }

    // What the victim kept: the same providers, and the grant still works.
    let after = alice.providers().await;
    assert_eq!(before, after);
    let (status, body) = alice.fetch(&format!("{api}/items")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["authorization"], true);
}

/// A session cookie as the app's sign-in route sets it: `idp_session=...`.
async fn session_cookie(worker: &Worker, user: &str) -> String {
    let signin = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/signin?user={user}", worker.origin))
        .send()
        .await
        .unwrap();
    let cookie = signin.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

/// Cookie tossing: a page on a sibling origin (or a network attacker on
/// plain http) plants the attacker's own valid session cookie with a
/// narrower path, so the victim's browser sends two session cookies, the
/// attacker's first. Such a request is nobody's: the victim's login starts
/// nothing (in the attacker's account or anywhere), and both accounts stay
/// as they were. Over https the cookie is `__Host-idp_session`, which a
/// sibling origin cannot set at all (unit tests in `workers::session`).
#[tokio::test(flavor = "current_thread")]
async fn a_tossed_session_cookie_signs_nobody_in() {
    let servers = Servers::start(AuthServerOptions::default());
    let worker = Worker::start(&state_dir("cookie-toss"));
    let api = format!("{}/api", servers.origin);
    let alice = App::sign_in(&worker, "alice").await;
    let (status, page) = alice.connect(&api).await;
    assert_eq!(status, 200, "{page}");
    let before = alice.providers().await;
    let authorizations = servers.auth_count("GET /auth").await;

    let victims = session_cookie(&worker, "alice").await;
    let mallorys = session_cookie(&worker, "mallory").await;
    let tossed = format!("{mallorys}; {victims}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client
        .get(format!("{}{}", worker.origin, App::login_path(&api)))
        .header("cookie", &tossed)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers().get("location").is_none(),
        "the login went nowhere: {:?}",
        resp.headers().get("location")
    );
    let resp = client
        .get(format!("{}/api/providers", worker.origin))
        .header("cookie", &tossed)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        401,
        "two session cookies are nobody"
    );

    // What the attacker got: no flow, no grant in their account.
    assert_eq!(servers.auth_count("GET /auth").await, authorizations);
    let resp = client
        .get(format!("{}/api/providers", worker.origin))
        .header("cookie", &mallorys)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap(), serde_json::json!([]));
    // What the victim kept: everything, with one cookie as before.
    assert_eq!(alice.providers().await, before);
    let (status, body) = alice.fetch(&format!("{api}/items")).await;
    assert_eq!(status, 200, "{body}");
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

/// Server-side request forgery: resource metadata that names an
/// authorization server at an address the policy refuses, and an authed
/// call redirected to one, make the app send nothing there, and the error
/// says what was refused without anything from the target. The targets are
/// spellings of 0.0.0.0 on the attacker's own port (a regression would only
/// reach this machine); every private, loopback and metadata range in every
/// spelling is covered by `policy`'s unit tests, the property tests in
/// `idp/tests/properties.rs` and the native client's connect-time check.
#[tokio::test(flavor = "current_thread")]
async fn metadata_and_redirects_to_refused_addresses_reach_nothing() {
    let hostile = Hostile::start();
    let worker = Worker::start(&state_dir("ssrf"));
    let alice = App::sign_in(&worker, "alice").await;
    let port = hostile.origin.rsplit(':').next().unwrap().to_owned();
    let targets = [
        format!("https://0.0.0.0:{port}/ssrf-a"),
        format!("https://0:{port}/ssrf-b"),
        format!("https://[::]:{port}/ssrf-c"),
        format!("https://[::ffff:0.0.0.0]:{port}/ssrf-d"),
    ];
    for (i, target) in targets.iter().enumerate() {
        hostile
            .configure(serde_json::json!({ "as_override": target }))
            .await;
        let resource = format!("{}/r/ssrf{i}", hostile.origin);
        let (status, page) = alice.get(&App::login_path(&resource)).await;
        assert!((400..500).contains(&status), "{target}: {status} {page}");
        assert!(page.contains("refused to contact"), "{target}: {page}");
    }
    hostile
        .configure(serde_json::json!({ "public": ["redir"], "redirect_to": targets[0] }))
        .await;
    let (status, body) = alice.fetch(&format!("{}/r/redir", hostile.origin)).await;
    assert!(status >= 400, "{status}: {body}");
    assert_eq!(body["error"], "blocked_address", "{body}");

    let log = hostile.log().await;
    let reached: Vec<_> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.as_str().unwrap().contains("/ssrf-"))
        .collect();
    assert!(reached.is_empty(), "{reached:?}");
    assert_eq!(alice.providers().await, Vec::<Value>::new());
}

/// A hostile MCP server streams an endless answer: the app reads it through
/// its body cap (`IDP_MAX_BODY_BYTES`, here 1 MiB), stops there and answers
/// an error, and the person's object and the app keep working.
#[tokio::test(flavor = "current_thread")]
async fn an_endless_mcp_answer_is_cut_at_the_body_cap() {
    let (hostile, worker, alice, resource) = connected_at_hostile_with(
        "endless-mcp",
        serde_json::json!({"token_mode": "tokens"}),
        &[("IDP_MAX_BODY_BYTES", "1048576")],
    )
    .await;
    let endless = format!("{}/r/endless", hostile.origin);
    let resp = alice
        .browser
        .client()
        .post(format!(
            "{}/api/mcp?url={}",
            worker.origin,
            urlencode(&endless)
        ))
        .header("sec-fetch-site", "same-origin")
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "invalid_response", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("larger than 1048576 bytes"),
        "{body}"
    );
    assert!(hostile.log().await["endless"].as_u64().unwrap() >= 1);
    // The app and the person's grant are as they were.
    let providers = alice.providers().await;
    assert!(provider(&providers, &resource).is_some());
    let (status, body) = alice.fetch(&format!("{resource}/items")).await;
    assert_eq!(status, 200, "{body}");
}

/// A request made for a user outside any request of theirs (a cron trigger,
/// a queue consumer: `idp::workers::Background`) follows redirects by hand
/// like `AuthedFetch`: a redirect from under the provider's prefix to
/// another path of the same origin carries no token there.
#[tokio::test(flavor = "current_thread")]
async fn a_background_call_keeps_the_token_inside_its_prefix_across_redirects() {
    let (hostile, _worker, alice, resource) = connected_at_hostile(
        "background-redirect",
        serde_json::json!({"token_mode": "tokens"}),
    )
    .await;
    hostile
        .configure(serde_json::json!({
            "public": ["leak"],
            "redirects": {"/r/api/hop": "/r/leak/here"},
        }))
        .await;
    let (status, body) = alice
        .json(&format!(
            "/api/background-fetch?url={}",
            urlencode(&format!("{resource}/hop"))
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let hops = hostile.log().await["hops"].clone();
    let at = |p: &str| {
        hops.as_array()
            .unwrap()
            .iter()
            .find(|h| h["path"] == p)
            .unwrap_or_else(|| panic!("no hop to {p}: {hops}"))["authorization"]
            .clone()
    };
    assert!(
        at("/r/api/hop")
            .as_str()
            .is_some_and(|a| a.starts_with("Bearer attacker-at-")),
        "the token goes under its prefix: {hops}"
    );
    assert_eq!(at("/r/leak/here"), Value::Null, "and nowhere else: {hops}");
}

/// A page on another site links to (or navigates the top window to) the
/// app's credentialed routes: the Worker sends nothing with the person's
/// token, and answers 403 `cross_site`.
#[tokio::test(flavor = "current_thread")]
async fn a_cross_site_navigation_makes_no_credentialed_call() {
    let (hostile, worker, alice, resource) = connected_at_hostile(
        "cross-site-fetch",
        serde_json::json!({"token_mode": "tokens"}),
    )
    .await;
    let before = hostile.log().await["authorizations"]
        .as_array()
        .map_or(0, Vec::len);
    let target = urlencode(&format!("{resource}/items"));
    for (route, site, origin) in [
        ("/api/fetch", Some("cross-site"), None),
        ("/api/fetch", Some("same-site"), None),
        ("/api/forward", Some("cross-site"), None),
        ("/api/fetch", None, Some("https://evil.example")),
    ] {
        let mut req = alice
            .browser
            .client()
            .get(format!("{}{route}?url={target}", worker.origin));
        if let Some(site) = site {
            req = req.header("sec-fetch-site", site);
        }
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 403, "{route} {site:?} {origin:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "cross_site", "{body}");
    }
    let after = hostile.log().await["authorizations"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(before, after, "no request carried the person's token");
    // The app's own pages still can.
    let (status, body) = alice.fetch(&format!("{resource}/items")).await;
    assert_eq!(status, 200, "{body}");
}

/// Every route of the example that acts with the person's credentials or
/// changes what is kept for them (the `Acts` routes of its one table,
/// `Route::of`) refuses a request another site made, before it runs: a
/// page elsewhere that posts to `/api/refresh`, `/api/reencrypt`,
/// `DELETE /api/providers` or any other gets 403 `cross_site`. The
/// attacker's server receives nothing (no token, no refresh, no
/// revocation, no device login); the person's connection, its token and
/// the audit log are exactly as they were.
#[tokio::test(flavor = "current_thread")]
async fn every_route_that_acts_refuses_another_site() {
    let (hostile, worker, alice, resource) = connected_at_hostile(
        "cross-site-acts",
        serde_json::json!({"token_mode": "tokens"}),
    )
    .await;
    let before = (
        hostile.log().await,
        alice.providers().await,
        alice.json("/api/events").await,
    );
    let url = urlencode(&resource);
    let items = urlencode(&format!("{resource}/items"));
    let refresh = serde_json::json!({"urls": [resource], "force": true}).to_string();
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#.to_owned();
    let id_token = jwt(&serde_json::json!({"sub": "alice"}));
    let enterprise = serde_json::json!({ "id_token": id_token }).to_string();
    use reqwest::Method;
    let acting: Vec<(Method, String, Option<String>)> = vec![
        (Method::POST, "/api/refresh".into(), Some(refresh)),
        (Method::POST, "/api/reencrypt".into(), None),
        (Method::DELETE, format!("/api/providers?url={url}"), None),
        (Method::GET, format!("/api/fetch?url={items}"), None),
        (
            Method::GET,
            format!("/api/background-fetch?url={items}"),
            None,
        ),
        (Method::GET, format!("/api/forward?url={items}"), None),
        (Method::POST, format!("/api/forward?url={items}"), None),
        (Method::POST, format!("/api/mcp?url={url}"), Some(ping)),
        (
            Method::POST,
            format!("/api/connect/enterprise?url={url}"),
            Some(enterprise),
        ),
        (Method::POST, format!("/api/device?url={url}"), None),
        (Method::GET, "/api/device?id=any".into(), None),
    ];
    for (method, path, body) in &acting {
        for (site, origin) in [
            (Some("cross-site"), None),
            (Some("same-site"), None),
            (None, Some("https://evil.example")),
        ] {
            let mut req = alice
                .browser
                .client()
                .request(method.clone(), format!("{}{path}", worker.origin))
                .header("content-type", "application/json");
            if let Some(site) = site {
                req = req.header("sec-fetch-site", site);
            }
            if let Some(origin) = origin {
                req = req.header("origin", origin);
            }
            if let Some(body) = body {
                req = req.body(body.clone());
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let answer: Value = resp.json().await.unwrap_or(Value::Null);
            assert_eq!(
                (status, answer["error"].as_str()),
                (403, Some("cross_site")),
                "{method} {path} from {site:?} {origin:?}: {answer}"
            );
        }
    }
    let after = (
        hostile.log().await,
        alice.providers().await,
        alice.json("/api/events").await,
    );
    assert_eq!(before.0, after.0, "the attacker's server received nothing");
    assert_eq!(
        before.1, after.1,
        "the connection and its token are as they were"
    );
    assert_eq!(before.2, after.2, "nothing happened to the person's grants");
    // The app's own pages still can.
    let resp = alice
        .browser
        .client()
        .post(format!("{}/api/refresh", worker.origin))
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/json")
        .body(serde_json::json!({"urls": [resource], "force": true}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let token_requests = |log: &Value| log["token_requests"].as_array().map_or(0, Vec::len);
    assert_eq!(
        token_requests(&hostile.log().await),
        token_requests(&before.0) + 1,
        "a refresh from the app's own page reaches the server"
    );
    let (status, body) = alice.fetch(&format!("{resource}/items")).await;
    assert_eq!(status, 200, "{body}");
}

/// An upstream answers a call with a 401 that copies the app's own
/// `authorization_required` answer, with no challenge, so it is relayed:
/// its body names `https://evil.example/login` as the `reauthorize_url`.
/// The relayed answer is marked the upstream's (`Idp-Relayed: upstream`),
/// which the app's own answer never is, and the app's page offers to
/// authorize only from an unmarked answer, and only through the app's own
/// login route on its origin (the browser test clicks through both). The
/// app's own answer, for a resource never connected, names its login route
/// on its origin, whatever the upstream said.
#[tokio::test(flavor = "current_thread")]
async fn an_upstream_401_cannot_plant_an_authorize_link() {
    let hostile = Hostile::start();
    let worker = Worker::start(&state_dir("planted-401"));
    let alice = App::sign_in(&worker, "alice").await;
    let call = |target: String| {
        alice
            .browser
            .get(format!(
                "{}/api/fetch?url={}",
                worker.origin,
                urlencode(&target)
            ))
            .send()
    };
    let planted = call(format!("{}/r/plant", hostile.origin)).await.unwrap();
    assert_eq!(planted.status().as_u16(), 401);
    assert_eq!(
        planted
            .headers()
            .get("idp-relayed")
            .map(|v| v.to_str().unwrap()),
        Some("upstream"),
        "the upstream's 401 is marked as the upstream's: {:?}",
        planted.headers()
    );
    let body: Value = planted.json().await.unwrap();
    assert_eq!(
        body["reauthorize_url"], "https://evil.example/login",
        "as sent"
    );

    let fresh = format!("{}/r/fresh/items", hostile.origin);
    let own = call(fresh.clone()).await.unwrap();
    assert_eq!(own.status().as_u16(), 401);
    assert!(
        own.headers().get("idp-relayed").is_none(),
        "the app's own answer is not marked: {:?}",
        own.headers()
    );
    let body: Value = own.json().await.unwrap();
    assert_eq!(body["error"], "authorization_required", "{body}");
    let to = url::Url::parse(body["reauthorize_url"].as_str().unwrap()).unwrap();
    assert_eq!(to.origin().ascii_serialization(), worker.origin, "{to}");
    assert_eq!(to.path(), "/oauth/login", "{to}");
    assert_eq!(params(to.as_str())["url"], fresh, "{to}");
    // The page follows only its own login route, from unmarked answers.
    let (_, page) = alice.get("/").await;
    assert!(page.contains("!r.headers.has('idp-relayed')"), "{page}");
    assert!(page.contains("x.origin === location.origin"), "{page}");
}

/// A JWT with `claims`, as an identity provider would sign it (the
/// signature is not checked by the app, and here is none).
fn jwt(claims: &Value) -> String {
    use base64::Engine as _;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
    };
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(&serde_json::json!({"alg": "ES256", "typ": "JWT"})),
        b64(claims)
    )
}

/// Enterprise-managed authorization binds the ID token it accepts to the
/// signed-in person: in alice's session, an ID token whose subject is
/// mallory (or that names nobody, or is no JWT) is refused with 403
/// `id_token_not_yours` before anything is sent: the identity provider
/// gets no token exchange, the resource no probe, and alice's connections
/// are as they were. Her own ID token goes to the identity provider.
#[tokio::test(flavor = "current_thread")]
async fn an_id_token_of_someone_else_connects_nothing() {
    let hostile = Hostile::start();
    hostile
        .configure(serde_json::json!({
            "grant_types": ["urn:ietf:params:oauth:grant-type:jwt-bearer"],
        }))
        .await;
    let h = &hostile.origin;
    let resource = format!("{h}/r/ent");
    let enterprise_idp = serde_json::json!({
        "issuer": h,
        "token_endpoint": format!("{h}/token"),
        "client_id": "app-at-the-idp",
    })
    .to_string();
    let pre_registered = serde_json::json!([{
        "issuer": h,
        "client_id": "app-at-the-server",
        "resources": [resource],
    }])
    .to_string();
    let worker = Worker::start_with(
        &state_dir("enterprise-bound"),
        &[
            ("IDP_ENTERPRISE_IDP", &enterprise_idp),
            ("IDP_PRE_REGISTERED", &pre_registered),
            ("IDP_BACKGROUND_REFRESH", "off"),
        ],
    );
    let alice = App::sign_in(&worker, "alice").await;
    let connect = |id_token: String| {
        alice
            .browser
            .client()
            .post(format!(
                "{}/api/connect/enterprise?url={}",
                worker.origin,
                urlencode(&resource)
            ))
            .header("sec-fetch-site", "same-origin")
            .header("content-type", "application/json")
            .body(serde_json::json!({ "id_token": id_token }).to_string())
            .send()
    };
    let now = 2_000_000_000u64;
    let mallorys = jwt(&serde_json::json!({"iss": h, "sub": "mallory", "exp": now}));
    for token in [
        mallorys,
        jwt(&serde_json::json!({"iss": h, "exp": now})),
        jwt(&serde_json::json!({"iss": h, "sub": "Alice", "exp": now})),
        "not-a-jwt".to_owned(),
    ] {
        let resp = connect(token.clone()).await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert_eq!(status, 403, "{text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["error"], "id_token_not_yours", "{body}");
        assert!(!text.contains(&token), "the token is not echoed: {text}");
    }
    let log = hostile.log().await;
    assert_eq!(
        log["requests"],
        serde_json::json!([]),
        "nothing was sent: {log}"
    );
    assert!(alice.providers().await.is_empty());

    // Her own ID token reaches the identity provider (which refuses it
    // here: nothing more is needed).
    let alices = jwt(&serde_json::json!({"iss": h, "sub": "alice", "exp": now}));
    let resp = connect(alices.clone()).await.unwrap();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_ne!(body["error"], "id_token_not_yours", "{body}");
    let exchanges = hostile.log().await["token_requests"].clone();
    assert!(
        exchanges
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["subject_token"] == alices.as_str()),
        "{exchanges}"
    );
}

/// The example is safe to deploy as it stands: reached on a host that is
/// not loopback (as a deployment is), it signs nobody in while the local
/// development keys of `wrangler.toml` are in place, and says which to
/// replace; with real secrets it still offers no password-less sign-in.
/// Loopback keeps both for local development.
#[tokio::test(flavor = "current_thread")]
async fn the_example_deployed_has_no_development_keys_or_passwordless_sign_in() {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |worker: &Worker, path: &str, host: Option<&str>| {
        let mut req = client.get(format!("{}{path}", worker.origin));
        if let Some(h) = host {
            req = req.header("host", h);
        }
        req.send()
    };
    let dev = Worker::start(&state_dir("deploy-dev"));
    // A valid session made with the development key, as anyone can make it.
    let cookie = session_cookie(&dev, "alice").await;
    // The SDK itself serves nothing off loopback with the development switch
    // on (with it, a missing key would mean tokens in plain text).
    let resp = get(&dev, "/signin?user=mallory", Some("app.example.com"))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 500);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "configuration", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("IDP_ALLOW_INSECURE_LOOPBACK"),
        "{body}"
    );
    let resp = client
        .get(format!("{}/api/providers", dev.origin))
        .header("host", "app.example.com")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 500, "nobody is signed in there");
    // On loopback, local development works as before.
    let resp = get(&dev, "/signin?user=alice", None).await.unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    dev.stop();

    // The switch removed, the development keys still in place: the example
    // names them, and signs nobody in.
    let keys_left = Worker::start_with(
        &state_dir("deploy-keys"),
        &[("IDP_ALLOW_INSECURE_LOOPBACK", "false")],
    );
    let resp = get(&keys_left, "/signin?user=mallory", Some("app.example.com"))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 500);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "development_settings", "{body}");
    for named in ["IDP_SESSION_KEY", "IDP_ENCRYPTION_KEYS"] {
        assert!(body["message"].as_str().unwrap().contains(named), "{body}");
    }
    let resp = client
        .get(format!("{}/api/providers", keys_left.origin))
        .header("host", "app.example.com")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        500,
        "the development key signs nobody in"
    );
    keys_left.stop();

    let deployed = Worker::start_with(
        &state_dir("deploy-real"),
        &[
            (
                "IDP_SESSION_KEY",
                "a-real-secret-of-at-least-32-bytes-for-this-test",
            ),
            (
                "IDP_ENCRYPTION_KEYS",
                "k1:HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4=",
            ),
            ("IDP_ALLOW_INSECURE_LOOPBACK", "false"),
        ],
    );
    let resp = get(&deployed, "/signin?user=mallory", Some("app.example.com"))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404, "no password-less sign-in");
    assert!(resp.headers().get("set-cookie").is_none());
    let resp = client
        .get(format!("{}/api/providers", deployed.origin))
        .header("host", "app.example.com")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        401,
        "a development-key session is nobody"
    );
    // Signed in with the real key, a person on the deployment finds no
    // password-less sign-in either (no switching to another user).
    let real = session_cookie(&deployed, "alice").await;
    let resp = client
        .get(format!("{}/signin?user=mallory", deployed.origin))
        .header("host", "app.example.com")
        .header("cookie", &real)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404, "no password-less sign-in");
    assert!(resp.headers().get("set-cookie").is_none());
    let resp = client
        .get(format!("{}/api/providers", deployed.origin))
        .header("host", "app.example.com")
        .header("cookie", &real)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "alice's session works there");
}

/// One user varies `scope` to make the app register again and again at a
/// server (and to fill the deployment-wide registry): after the hourly
/// allowance of registry writes, logins are refused with 429
/// `rate_limited`, and the server sees no more registrations. Another user
/// is not affected.
#[tokio::test(flavor = "current_thread")]
async fn one_user_cannot_make_unbounded_registrations() {
    let hostile = Hostile::start();
    let worker = Worker::start(&state_dir("registry-cap"));
    let mallory = App::sign_in(&worker, "mallory").await;
    let resource = format!("{}/r/api", hostile.origin);
    let mut refused = None;
    for i in 0..40 {
        let path = format!("{}&scope=s{i}", App::login_path(&resource));
        let resp = mallory
            .browser
            .get(format!("{}{path}", worker.origin))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        if status != 302 {
            refused = Some((i, status, resp.text().await.unwrap()));
            break;
        }
    }
    let (at, status, page) = refused.expect("the allowance ran out");
    assert_eq!(status, 429, "{page}");
    assert!(page.contains("30"), "{page}");
    assert!(at <= 30, "refused at login {at}");
    let registrations = hostile.log().await["registrations"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(registrations <= 30, "{registrations} registrations");
    // Another user still connects.
    let alice = App::sign_in(&worker, "alice").await;
    let resp = alice
        .browser
        .get(format!("{}{}", worker.origin, App::login_path(&resource)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 302);
}

/// RFC 8628 has no redirect to bind a device login to its server: a hostile
/// resource's own authorization server names an honest provider's device
/// and token endpoints (oidc-provider's) and hands out a public client id
/// valid there. Through the example in workerd the device login is refused
/// before anything reaches the honest server (no code asked for, no poll,
/// nothing for the person to see), and nothing is stored. The victim keeps
/// everything: the grant connected before works, and a device login at the
/// honest server itself goes on, naming its issuer beside the code.
#[tokio::test(flavor = "current_thread")]
async fn a_hostile_server_cannot_front_an_honest_device_flow() {
    let servers = Servers::start(AuthServerOptions::default());
    let hostile = Hostile::start();
    let public_client = servers.register_client("http://127.0.0.1:9/cb").await;
    hostile
        .configure(serde_json::json!({
            "front": {
                "device_authorization_endpoint": format!("{}/device/auth", servers.issuer),
                "token_endpoint": format!("{}/token", servers.issuer),
            },
            "client_id": public_client,
        }))
        .await;
    let worker = Worker::start(&state_dir("device-front"));
    let api = format!("{}/api", servers.origin);
    let alice = App::sign_in(&worker, "alice").await;
    let (status, page) = alice.connect(&api).await;
    assert_eq!(status, 200, "{page}");

    let evil = format!("{}/r/tv", hostile.origin);
    let (status, body) = alice
        .post_json(&format!("/api/device?url={}", urlencode(&evil)))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("device_login")),
        "{body}"
    );
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(&hostile.origin), "{body}");
    assert!(body.get("user_code").is_none() && body.get("verification_uri").is_none());
    assert_eq!(servers.auth_count("POST /device/auth").await, 0);
    assert!(provider(&alice.providers().await, &evil).is_none());

    let (status, body) = alice.fetch(&format!("{api}/items")).await;
    assert_eq!(status, 200, "the victim's grant works: {body}");
    let (status, login) = alice
        .post_json(&format!(
            "/api/device?url={}",
            urlencode(&format!("{}/v1", servers.origin))
        ))
        .await;
    assert_eq!(status, 200, "{login}");
    assert_eq!(login["issuer"], servers.issuer, "{login}");
    assert_eq!(servers.auth_count("POST /device/auth").await, 1);
    worker.stop();
}

/// A server whose device logins never end (`authorization_pending`
/// forever, codes living 10^15 seconds, an interval of 1 second): a user
/// has at most 5 waiting, a sixth is refused before anything is asked, and
/// the object's alarm polls each no more than every 5 seconds (and for 30
/// minutes at most: `flow::device` tests the end with a clock of its own).
#[tokio::test(flavor = "current_thread")]
async fn endless_device_logins_are_bounded() {
    let hostile = Hostile::start();
    hostile
        .configure(serde_json::json!({
            "front": { "device_authorization_endpoint": format!("{}/device", hostile.origin) },
            "token_mode": "pending",
            "device_expires_in": 1_000_000_000_000_000u64,
            "device_interval": 1,
        }))
        .await;
    let worker = Worker::start(&state_dir("device-endless"));
    let alice = App::sign_in(&worker, "alice").await;
    let start = |n: usize| {
        let path = format!(
            "/api/device?url={}",
            urlencode(&format!("{}/r/tv{n}", hostile.origin))
        );
        let alice = &alice;
        async move { alice.post_json(&path).await }
    };
    let started = std::time::Instant::now();
    // Seven started at once: five wait, two are refused before asking.
    let answers = join_all((0..7).map(start).collect()).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut refused = 0;
    for (status, login) in &answers {
        if *status != 200 {
            assert_eq!(
                (*status, login["error"].as_str()),
                (400, Some("device_login")),
                "{login}"
            );
            refused += 1;
            continue;
        }
        assert_eq!(login["interval"], 5, "{login}");
        assert!(
            login["expires_at"].as_u64().unwrap() <= now + 1800,
            "{login}"
        );
    }
    assert_eq!(refused, 2, "{answers:?}");
    assert_eq!(
        hostile.log().await["device_requests"],
        5,
        "the refused asked for nothing"
    );

    tokio::time::sleep(std::time::Duration::from_secs(12)).await;
    let polls = hostile.log().await["token_requests"]
        .as_array()
        .unwrap()
        .len();
    let secs = started.elapsed().as_secs() as usize;
    assert!(polls >= 5, "the alarm polls: {polls}");
    assert!(polls <= 5 * (secs / 5 + 1), "{polls} polls in {secs} s");
    // Another user is not counted against alice.
    let bob = App::sign_in(&worker, "bob").await;
    let path = format!(
        "/api/device?url={}",
        urlencode(&format!("{}/r/tv", hostile.origin))
    );
    assert_eq!(bob.post_json(&path).await.0, 200);
    worker.stop();
}
