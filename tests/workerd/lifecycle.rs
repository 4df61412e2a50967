//! Tokens over time in workerd: refresh under concurrency, restarts, the object's alarm, device logins it polls.

use super::*;

#[tokio::test(flavor = "current_thread")]
async fn expired_tokens_refresh_once_under_concurrency() {
    // Access tokens live 10 s (refreshed in their last 5 s); refresh tokens rotate and a replay revokes the grant.
    let servers = Servers::start(AuthServerOptions {
        access_ttl: Some(10),
        ..Default::default()
    });
    // Refresh at call time only: no background refresh in between.
    let worker = Worker::start_with(&state_dir("expiry"), &[("IDP_BACKGROUND_REFRESH", "off")]);
    let api = format!("{}/api", servers.origin);
    let alice = App::sign_in(&worker, "alice").await;
    let (status, page) = alice.connect(&api).await;
    assert_eq!(status, 200, "{page}");
    let (status, body) = alice.fetch(&format!("{api}/items")).await;
    assert_eq!(status, 200, "{body}");

    // After expiry, a call refreshes transparently.
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    let before = servers.auth_count("POST /token").await;
    let (status, body) = alice.fetch(&format!("{api}/items")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(servers.auth_count("POST /token").await, before + 1);

    // 50 concurrent calls on an expired token: one token request, 50 successes.
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    let before = servers.auth_count("POST /token").await;
    let url = format!("{api}/items");
    let calls = (0..50).map(|_| alice.fetch(&url));
    let results = join_all(calls.collect()).await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(
        ok,
        50,
        "all succeed: {:?}",
        results.iter().find(|(s, _)| *s != 200)
    );
    assert_eq!(
        servers.auth_count("POST /token").await,
        before + 1,
        "exactly one token request"
    );

    // The grant survived (no refresh token was replayed): a later refresh works.
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    let (status, body) = alice.fetch(&url).await;
    assert_eq!(status, 200, "grant still alive: {body}");
}

#[tokio::test(flavor = "current_thread")]
async fn tokens_persist_across_a_restart() {
    let servers = Servers::start(AuthServerOptions::default());
    let dir = state_dir("restart");
    let worker = Worker::start(&dir);
    let api = format!("{}/api", servers.origin);
    let alice = App::sign_in(&worker, "alice").await;
    let (status, page) = alice.connect(&api).await;
    assert_eq!(status, 200, "{page}");
    worker.stop();

    let worker = Worker::start(&dir);
    let alice = App::sign_in(&worker, "alice").await;
    let list = alice.providers().await;
    assert_eq!(
        provider(&list, &api).expect("still connected")["has_token"],
        true
    );
    let (status, body) = alice.fetch(&format!("{api}/items")).await;
    assert_eq!(status, 200, "{body}");
}

/// Polls `f` every 250 ms until it is true or `secs` pass.
async fn wait_until<F, Fut>(secs: u64, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    false
}

/// The object's alarm refreshes a token with no request in flight, so the
/// next call makes no refresh; a server answering 503 three times is retried
/// with backoff and recovers; and the audit log tells the whole story in
/// order: connect, refresh, failed refreshes, refresh, revoked at the server
/// (needs re-authorization), reconnect (recovered), remove (revoked).
#[tokio::test(flavor = "current_thread")]
async fn the_alarm_keeps_tokens_fresh_and_events_tell_the_story() {
    let servers = Servers::start(AuthServerOptions {
        access_ttl: Some(20),
        ..Default::default()
    });
    let worker = Worker::start_with(&state_dir("alarm"), &[("IDP_REFRESH_RETRY_SECS", "1")]);
    let api = format!("{}/api", servers.origin);
    let items = format!("{api}/items");
    let alice = App::sign_in(&worker, "alice").await;
    let (status, page) = alice.connect(&api).await;
    assert_eq!(status, 200, "{page}");
    let after_login = servers.auth_count("POST /token").await;

    // No request from us: the alarm refreshes once the token is inside its
    // margin (half of 20 s).
    let refreshed = wait_until(30, || async {
        servers.auth_count("POST /token").await > after_login
    })
    .await;
    assert!(refreshed, "the alarm refreshed with no request in flight");
    let tokens = servers.auth_count("POST /token").await;
    let (status, body) = alice.fetch(&items).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        servers.auth_count("POST /token").await,
        tokens,
        "the next call makes no refresh"
    );

    // The token endpoint fails three times: retried with backoff, recovered.
    servers.fail_token(3, 503).await;
    let recovered = wait_until(45, || async {
        servers.auth_count("POST /token (failed)").await == 3
            && servers.auth_count("POST /token").await > tokens
    })
    .await;
    assert!(
        recovered,
        "three failures then a refresh: {}",
        servers.auth_stats().await
    );
    let (status, body) = alice.fetch(&items).await;
    assert_eq!(status, 200, "{body}");

    // Revoked at the server: the call needs re-authorization.
    reqwest::Client::new()
        .post(format!("{}/__revoke-grants", servers.issuer))
        .send()
        .await
        .unwrap();
    reqwest::Client::new()
        .post(format!("{}/__revoke-tokens", servers.origin))
        .send()
        .await
        .unwrap();
    let (status, body) = alice.fetch(&items).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "authorization_required", "{body}");
    let (status, page) = alice.connect(&api).await;
    assert_eq!(status, 200, "reconnected: {page}");
    let (status, body) = alice
        .send_json(
            reqwest::Method::DELETE,
            &format!("/api/providers?url={}", urlencode(&api)),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, log) = alice.json("/api/events").await;
    assert_eq!(status, 200, "{log}");
    let mut story: Vec<String> = log
        .as_array()
        .expect("a list")
        .iter()
        .rev()
        .map(|e| {
            assert_eq!(e["user"], "alice", "{e}");
            assert_eq!(e["resource"], api, "{e}");
            let text = e.to_string();
            assert!(!text.contains("eyJ"), "no token in an event: {e}");
            match (e["event"].as_str().unwrap(), &e["transient"]) {
                ("refresh_failed", Value::Bool(true)) => "refresh_failed(transient)".to_owned(),
                (kind, _) => kind.to_owned(),
            }
        })
        .collect();
    story.dedup();
    let expected = [
        "connected",
        "refreshed",
        "refresh_failed(transient)",
        "refreshed",
        "needs_reauthorization",
        "connected",
        "recovered",
        "removed",
        "revoked",
    ];
    let mut rest = story.iter();
    for step in expected {
        assert!(
            rest.any(|s| s == step),
            "{step} missing or out of order in {story:?}"
        );
    }
}

/// RFC 8628 in a Worker: the user's object gets a code from oidc-provider's
/// device flow and polls from its alarm, with no request in flight, while
/// the person confirms on another device (oidc-provider's own pages); the
/// provider is then connected, named and in the audit log, and an authed
/// call works. Bob declines: his login ends `authorization_denied`, and
/// nothing is stored for him. Nobody else can read a login's state.
#[tokio::test(flavor = "current_thread")]
async fn a_person_connects_from_another_device_through_the_objects_alarm() {
    let servers = Servers::start(Default::default());
    let worker = Worker::start(&state_dir("device"));
    let api = format!("{}/api", servers.origin);
    let alice = App::sign_in(&worker, "alice").await;
    let bob = App::sign_in(&worker, "bob").await;
    // A page on another site cannot make alice's session start one (and
    // show a code of its choosing): nothing reaches the server.
    let hostile = alice
        .browser
        .client()
        .post(format!(
            "{}/api/device?url={}",
            alice.origin,
            urlencode(&api)
        ))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(hostile.status().as_u16(), 403);
    assert_eq!(servers.auth_count("POST /device/auth").await, 0);
    let (a, b) = (
        device_start(&alice, &api).await,
        device_start(&bob, &api).await,
    );
    assert_eq!(a["resource"], api, "{a}");
    assert_eq!(servers.auth_count("POST /device/auth").await, 2);
    let (status, waiting) = device_status(&alice, &a).await;
    assert_eq!(status, 200, "{waiting}");
    assert!(
        waiting["waiting"]["poll_at"].as_u64().is_some(),
        "{waiting}"
    );
    let (status, theirs) = device_status(&bob, &a).await;
    assert_eq!(
        (status, theirs["error"].as_str()),
        (400, Some("device_login")),
        "{theirs}"
    );

    let complete = |l: &Value| l["verification_uri_complete"].as_str().unwrap().to_owned();
    let done = idp_tests::Browser::new()
        .enter_device_code(&complete(&a), true)
        .await;
    assert!(done.contains("Sign-in Success"), "{done:.600}");
    let declined = idp_tests::Browser::new()
        .enter_device_code(&complete(&b), false)
        .await;
    assert!(declined.contains("interrupted"), "{declined:.600}");

    // No request from us: the alarm polls and stores the grant.
    let connected = wait_until(30, || async {
        provider(&alice.providers().await, &api).is_some()
    })
    .await;
    assert!(
        connected,
        "the alarm connected alice: {}",
        servers.auth_stats().await
    );
    let (status, body) = alice.fetch(&format!("{api}/items")).await;
    assert_eq!(status, 200, "{body}");
    let (status, now) = device_status(&alice, &a).await;
    assert_eq!(status, 200, "{now}");
    assert_eq!(now["connected"]["provider"]["resource_url"], api, "{now}");
    let (_, log) = alice.json("/api/events").await;
    assert_eq!(log[0]["event"], "connected", "{log}");

    let ended = wait_until(30, || async {
        device_status(&bob, &b).await.1["error"] == "authorization_denied"
    })
    .await;
    assert!(
        ended,
        "bob's login ended declined: {}",
        device_status(&bob, &b).await.1
    );
    assert!(provider(&bob.providers().await, &api).is_none());
}

async fn device_start(app: &App, api: &str) -> Value {
    let path = format!("/api/device?url={}", urlencode(api));
    let (status, login) = app.post_json(&path).await;
    assert_eq!(status, 200, "{login}");
    login
}

async fn device_status(app: &App, login: &Value) -> (u16, Value) {
    let id = login["id"].as_str().expect("a device login id");
    app.json(&format!("/api/device?id={}", urlencode(id))).await
}
