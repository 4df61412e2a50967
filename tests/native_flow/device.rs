//! Device logins natively (RFC 8628): connecting from another device, a hostile server fronting an honest one, logins that never end.

use super::*;

/// RFC 8628 against oidc-provider's device flow, as a person on another
/// device answers it: the app gets a user code and the server's
/// verification page; polls say "pending" until the person confirms on
/// oidc-provider's own pages (xsrf-protected forms, then login and
/// consent); the waiting task then stores the grant, and an authed call
/// works. A second person presses Abort: their wait ends with
/// `access_denied` and nothing is stored.
#[tokio::test(flavor = "current_thread")]
async fn a_person_connects_from_another_device_natively() {
    use idp::flow::{DevicePoll, DeviceStart};
    let servers = Servers::start(Default::default());
    let idp = std::sync::Arc::new(NativeIdp::new(settings()));
    let api = format!("{}/api", servers.origin);
    let start = |owner: &'static str| {
        let idp = idp.clone();
        let api = api.clone();
        async move {
            match idp
                .start_device_login(owner, &format!("{api}/start"), None)
                .await
            {
                Ok(DeviceStart::Waiting(login)) => *login,
                other => panic!("{other:?}"),
            }
        }
    };
    let alice = start("alice").await;
    let bob = start("bob").await;
    assert_eq!(alice.resource, api);
    assert_eq!(
        alice.verification_uri.as_str(),
        format!("{}/device", servers.issuer)
    );
    assert!(!alice.user_code.is_empty() && alice.user_code != bob.user_code);
    let complete =
        |l: &idp::flow::DeviceLogin| l.verification_uri_complete.clone().unwrap().to_string();
    assert!(
        complete(&alice).contains(&alice.user_code.replace('-', ""))
            || complete(&alice).contains(&alice.user_code)
    );

    // Nobody has answered yet: the server says pending.
    tokio::time::sleep(std::time::Duration::from_secs(alice.interval)).await;
    let poll = idp.poll_device_login("alice", &alice.id).await.unwrap();
    assert!(matches!(poll, DevicePoll::Waiting { .. }), "{poll:?}");
    assert_eq!(servers.auth_count("POST /token").await, 1);
    assert!(idp.authorization("alice", &api).await.unwrap().is_none());

    let wait = |owner: &'static str, login: idp::flow::DeviceLogin| {
        let idp = idp.clone();
        tokio::spawn(async move { idp.wait_device_login(owner, &login).await })
    };
    let alice_waits = wait("alice", alice.clone());
    let bob_waits = wait("bob", bob.clone());
    let person = Browser::new();
    let done = person.enter_device_code(&complete(&alice), true).await;
    assert!(done.contains("Sign-in Success"), "{done:.600}");
    let declined = Browser::new()
        .enter_device_code(&complete(&bob), false)
        .await;
    assert!(declined.contains("interrupted"), "{declined:.600}");

    let provider = alice_waits.await.unwrap().unwrap();
    assert_eq!(provider.key.as_str(), api);
    let resp = idp
        .fetch("alice")
        .get(&format!("{api}/items"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let e = bob_waits.await.unwrap().unwrap_err();
    assert_eq!(e.kind(), idp::error::ErrorKind::AuthorizationDenied, "{e}");
    assert!(idp.authorization("bob", &api).await.unwrap().is_none());
    // Both logins are spent.
    for (owner, login) in [("alice", &alice), ("bob", &bob)] {
        let e = idp.poll_device_login(owner, &login.id).await.unwrap_err();
        assert_eq!(e.kind(), idp::error::ErrorKind::DeviceLogin, "{e}");
    }
}

/// The attack of a hostile resource whose own authorization server fronts
/// an honest device-flow provider (oidc-provider): its metadata names the
/// honest server's device and token endpoints, and its registration hands
/// out a public client id valid there. The device login is refused before
/// anything is sent to the honest server: no code is asked for, no poll
/// sent, the person is shown nothing, nothing is stored. The victim keeps
/// everything: the grant connected before works, and device logins at the
/// honest server itself go on, showing its issuer.
#[tokio::test(flavor = "current_thread")]
async fn a_hostile_server_cannot_front_an_honest_device_flow_natively() {
    use idp::flow::DeviceStart;
    let servers = Servers::start(Default::default());
    let hostile = idp_tests::Hostile::start();
    let honest = serde_json::json!({
        "device_authorization_endpoint": format!("{}/device/auth", servers.issuer),
        "token_endpoint": format!("{}/token", servers.issuer),
    });
    let public_client = servers.register_client("http://127.0.0.1:9/cb").await;
    hostile
        .configure(serde_json::json!({ "front": honest, "client_id": public_client }))
        .await;
    let idp = NativeIdp::new(settings());
    let api = format!("{}/api", servers.origin);
    let browser = Browser::new();
    let query = connect(&idp, &browser, "alice", &format!("{api}/start")).await;
    idp.callback("alice", &query).await.unwrap();
    let before = servers.auth_stats().await;

    let evil = format!("{}/r/tv", hostile.origin);
    let e = idp
        .start_device_login("alice", &evil, None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), idp::error::ErrorKind::DeviceLogin, "{e}");
    let text = e.to_string();
    assert!(
        text.contains(&hostile.origin) && text.contains(&format!("{}/device/auth", servers.issuer)),
        "names the issuer and the foreign endpoint: {text}"
    );
    let after = servers.auth_stats().await;
    for path in ["POST /device/auth", "POST /token"] {
        assert_eq!(
            after[path], before[path],
            "nothing sent to the honest server: {path}"
        );
    }
    assert!(idp.authorization("alice", &evil).await.unwrap().is_none());

    // The victim keeps everything.
    let items = format!("{api}/items");
    assert_eq!(idp.fetch("alice").get(&items).await.unwrap().status(), 200);
    let Ok(DeviceStart::Waiting(login)) = idp
        .start_device_login("alice", &format!("{}/v1", servers.origin), None)
        .await
    else {
        panic!("a device login at the honest server");
    };
    assert_eq!(login.issuer, servers.issuer);
}

/// A server whose device logins never end: natively too, a user has at
/// most 5 waiting, a sixth is refused before anything is asked, codes live
/// 30 minutes at most and are polled every 5 seconds at most; another user
/// is not counted against alice.
#[tokio::test(flavor = "current_thread")]
async fn endless_device_logins_are_bounded_natively() {
    use idp::flow::DeviceStart;
    let hostile = idp_tests::Hostile::start();
    hostile
        .configure(serde_json::json!({
            "front": { "device_authorization_endpoint": format!("{}/device", hostile.origin) },
            "token_mode": "pending",
            "device_expires_in": 1_000_000_000_000_000u64,
            "device_interval": 1,
        }))
        .await;
    let idp = NativeIdp::new(settings());
    // Seven started at once: five wait, two are refused before asking.
    let urls: Vec<String> = (0..7)
        .map(|n| format!("{}/r/tv{n}", hostile.origin))
        .collect();
    let starts = urls
        .iter()
        .map(|url| idp.start_device_login("alice", url, None))
        .collect();
    let mut refused = 0;
    for start in join_all(starts).await {
        match start {
            Ok(DeviceStart::Waiting(login)) => {
                assert_eq!(login.interval, 5);
                assert!(login.expires_at <= native::now() + 1800);
            }
            Err(e) => {
                assert_eq!(e.kind(), idp::error::ErrorKind::DeviceLogin, "{e}");
                refused += 1;
            }
            Ok(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(refused, 2);
    assert_eq!(
        hostile.log().await["device_requests"],
        5,
        "the refused asked for nothing"
    );
    let url = &urls[6];
    assert!(matches!(
        idp.start_device_login("bob", url, None).await,
        Ok(DeviceStart::Waiting(_))
    ));
}
