//! APIs without discovery, connected through a provider profile
//! (`IDP_PROFILES`), in workerd, against a local server that bends its token
//! answers the way GitHub, Slack and others do (`tests/servers/quirks.mjs`):
//! connect, call through `AuthedFetch`, refresh when the API refuses the
//! token, and revoke on removal, for each quirk.

use idp_tests::{provider, state_dir, urlencode, App, Process, Worker};
use serde_json::{json, Value};

async fn post(url: &str, body: Value) -> Value {
    reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"))
        .json()
        .await
        .unwrap_or(Value::Null)
}

async fn log(origin: &str) -> Value {
    reqwest::get(format!("{origin}/__log"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn apis_without_discovery_connect_refresh_and_revoke_through_a_profile() {
    let quirks = Process::start("quirks", "node", &["tests/servers/quirks.mjs"]);
    let origin = quirks.field("origin");
    let api = format!("{origin}/api");
    let profiles = json!([{
        "name": "quirky",
        "resources": [api],
        "issuer": origin,
        "authorization_endpoint": format!("{origin}/oauth/authorize"),
        "token_endpoint": format!("{origin}/oauth/token"),
        "revocation_endpoint": format!("{origin}/oauth/revoke"),
        "client_id": "quirks-app",
        "client_secret_name": "QUIRKS_SECRET",
        "scopes": ["repo", "user"],
        "scope_separator": "comma",
        "authorization_params": [["access_type", "offline"], ["prompt", "consent"]],
        "rules": {"assume_bearer": true},
        // As Slack's Web API says a token is refused (the built-in slack
        // profile's rule); the other formats answer 401.
        "refused": {"status": [200], "field": "/error", "values": ["invalid_auth", "token_expired"]}
    }])
    .to_string();
    let worker = Worker::start_with(
        &state_dir("profiles"),
        &[
            ("IDP_PROFILES", &profiles),
            ("QUIRKS_SECRET", "quirks-secret"),
            ("IDP_BACKGROUND_REFRESH", "off"),
            ("EXAMPLE_PROFILE_ORIGIN", &origin),
        ],
    );

    for (user, quirk) in [
        // GitHub-shaped: form-encoded answers, comma scopes, errors as 200.
        ("gh", json!({"format": "form"})),
        // Google-shaped: standard answers, extra authorization parameters,
        // refresh answers without a new refresh token.
        (
            "go",
            json!({"format": "google", "refresh_without_rt": true}),
        ),
        // Slack-shaped: the user's token under authed_user, "ok": false,
        // refresh answers without a new refresh token, and the API refusing
        // a dead token with HTTP 200 `"error": "token_expired"` (read as a
        // 401 by the profile's rule: the rounds below refresh through it).
        ("sl", json!({"format": "slack", "refresh_without_rt": true})),
        // No token_type, no expires_in, and `resource` refused on refresh.
        (
            "js",
            json!({"format": "json", "expires_in": null, "reject_resource_on_refresh": true}),
        ),
    ] {
        post(&format!("{origin}/__config"), quirk.clone()).await;
        let app = App::sign_in(&worker, user).await;
        let (status, page) = app.connect(&api).await;
        assert_eq!(status, 200, "{quirk}: {page}");
        let scopes = log(&origin).await["scopes"].clone();
        assert_eq!(
            scopes.as_array().unwrap().last().unwrap(),
            "repo user",
            "{quirk}"
        );
        let list = app.providers().await;
        let p = provider(&list, &api).unwrap_or_else(|| panic!("{quirk}: {list:?}"));
        assert_eq!(p["profile"], "quirky", "{quirk}: {p}");
        assert_eq!(p["has_token"], true, "{quirk}: {p}");
        assert_eq!(p["scope"], "repo user", "{quirk}: comma scope read: {p}");

        let items = format!("{api}/items");
        let (status, body) = app.fetch(&items).await;
        assert_eq!(status, 200, "{quirk}: {body}");

        // The API stops accepting the token (401 with no challenge, as
        // GitHub answers): one refresh, and the call succeeds; twice, so a
        // kept (not rotated) refresh token is used again.
        for round in 0..2 {
            let before = log(&origin).await["token_requests"]
                .as_array()
                .unwrap()
                .len();
            post(&format!("{origin}/__expire"), json!({})).await;
            let (status, body) = app.fetch(&items).await;
            assert_eq!(status, 200, "{quirk} round {round}: {body}");
            assert_eq!(
                body["ok"], true,
                "{quirk} round {round}: the API's answer: {body}"
            );
            let requests = log(&origin).await["token_requests"].clone();
            let made = &requests.as_array().unwrap()[before..];
            assert!(
                !made.is_empty() && made.iter().all(|r| r["grant_type"] == "refresh_token"),
                "{quirk} round {round}: {made:?}"
            );
            if quirk["reject_resource_on_refresh"] == true {
                // First refresh: refused with `resource`, retried without;
                // later refreshes send none.
                let expected: Vec<bool> = if round == 0 {
                    vec![true, false]
                } else {
                    vec![false]
                };
                let sent: Vec<bool> = made.iter().map(|r| !r["resource"].is_null()).collect();
                assert_eq!(sent, expected, "{quirk} round {round}: {made:?}");
            } else {
                assert_eq!(
                    made.len(),
                    1,
                    "{quirk} round {round}: one refresh: {made:?}"
                );
            }
        }

        // A code the server refuses, however it says so (GitHub: 200 with
        // `bad_verification_code`; Slack: 200 `ok: false` `invalid_code`;
        // Google: 400 `invalid_grant`), is one answer: the person's failed
        // login (400), the stored grant kept and working.
        let back = app.start(&api).await;
        let mut forged = url::Url::parse(&back).unwrap();
        let pairs: Vec<(String, String)> = forged
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "code" {
                    "forged-code".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        forged.query_pairs_mut().clear().extend_pairs(pairs);
        let (status, page) = app.open(forged.as_str()).await;
        assert_eq!(status, 400, "{quirk}: {page}");
        assert!(
            page.contains("refused the authorization code"),
            "{quirk}: {page}"
        );
        let (status, body) = app.fetch(&items).await;
        assert_eq!(status, 200, "{quirk}: the grant is kept: {body}");

        // Removal by the API URL a person uses revokes at the server; once
        // removed, that URL is not_connected.
        let revoked = log(&origin).await["revoked"].as_u64().unwrap();
        let path = format!("/api/providers?url={}", urlencode(&items));
        let remove = || app.send_json(reqwest::Method::DELETE, &path);
        let (status, body) = remove().await;
        assert_eq!(status, 200, "{quirk}: {body}");
        assert_eq!(body["key"], api.as_str(), "{quirk}: {body}");
        assert_eq!(body["revoked"], true, "{quirk}: {body}");
        assert_eq!(log(&origin).await["revoked"].as_u64().unwrap(), revoked + 1);
        let (status, body) = remove().await;
        assert_eq!(
            (status, &body["error"]),
            (404, &json!("not_connected")),
            "{quirk}: {body}"
        );
    }

    // A profile configured in Rust (the example's `configure`), for a
    // narrower prefix of the same API: the longest prefix wins.
    post(&format!("{origin}/__config"), json!({"format": "form"})).await;
    let rust = format!("{api}/rust");
    let app = App::sign_in(&worker, "rs").await;
    let (status, page) = app.connect(&rust).await;
    assert_eq!(status, 200, "{page}");
    let list = app.providers().await;
    let p = provider(&list, &rust).unwrap_or_else(|| panic!("{list:?}"));
    assert_eq!(p["profile"], "rust-configured", "{p}");
    let (status, body) = app.fetch(&format!("{rust}/x")).await;
    assert_eq!(status, 200, "{body}");

    // A token answer carrying an error (here: a wrong client secret is
    // answered with HTTP 200 and `error`) fails the login with the server's
    // words, and stores nothing.
    post(&format!("{origin}/__config"), json!({"format": "form"})).await;
    let worker2 = Worker::start_with(
        &state_dir("profiles-bad-secret"),
        &[
            ("IDP_PROFILES", &profiles),
            ("QUIRKS_SECRET", "not-the-secret"),
        ],
    );
    let app = App::sign_in(&worker2, "mallory").await;
    let (status, page) = app.connect(&api).await;
    assert_ne!(status, 200, "{page}");
    assert!(page.contains("invalid_client"), "{page}");
    assert!(provider(&app.providers().await, &api).is_none());
}

/// A server that kills the old access token the moment a refresh succeeds
/// (django-oauth-toolkit does): calls already in flight with the old token
/// get a 401 just after the refresh, and retry with the new token, with no
/// second token request and no failure. The refresh here is the app's
/// `POST /api/refresh {"force": true}` (a token it knows is dead).
#[tokio::test(flavor = "current_thread")]
async fn calls_in_flight_across_a_refresh_that_kills_the_old_token_all_succeed() {
    let quirks = Process::start("quirks-revoking", "node", &["tests/servers/quirks.mjs"]);
    let origin = quirks.field("origin");
    let api = format!("{origin}/api");
    let profiles = json!([{
        "name": "revoking",
        "resources": [api],
        "issuer": origin,
        "authorization_endpoint": format!("{origin}/oauth/authorize"),
        "token_endpoint": format!("{origin}/oauth/token"),
        "client_id": "quirks-app",
        "client_secret_name": "QUIRKS_SECRET",
        "scopes": ["repo"],
        "rules": {"assume_bearer": true}
    }])
    .to_string();
    let worker = Worker::start_with(
        &state_dir("profiles-revoking"),
        &[
            ("IDP_PROFILES", &profiles),
            ("QUIRKS_SECRET", "quirks-secret"),
            ("IDP_BACKGROUND_REFRESH", "off"),
        ],
    );
    post(
        &format!("{origin}/__config"),
        json!({"format": "google", "revoke_access_on_refresh": true, "api_delay_ms": 400}),
    )
    .await;
    let app = App::sign_in(&worker, "dot").await;
    let (status, page) = app.connect(&api).await;
    assert_eq!(status, 200, "{page}");
    let token_requests = || async {
        log(&origin).await["token_requests"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = token_requests().await;

    let items = format!("{api}/items");
    let calls: Vec<_> = (0..8).map(|_| app.fetch(&items)).collect();
    let refresh = async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let resp = app
            .browser
            .client()
            .post(format!("{}/api/refresh", worker.origin))
            .json(&json!({"urls": [api], "force": true}))
            .send()
            .await
            .unwrap();
        resp.json::<Value>().await.unwrap()
    };
    let (answers, refreshed) = tokio::join!(idp_tests::join_all(calls), refresh);
    assert_eq!(refreshed[0]["status"], "refreshed", "{refreshed}");
    for (status, body) in &answers {
        assert_eq!((*status, &body["ok"]), (200, &json!(true)), "{body}");
    }
    assert_eq!(
        token_requests().await,
        before + 1,
        "one refresh: the forced one; the callers refused after it used its token"
    );
}
