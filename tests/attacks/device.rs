//! Attacks on device logins (RFC 8628): a hostile server fronting an honest provider, logins that never end.

use super::*;

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
