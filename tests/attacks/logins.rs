//! Attacks on logins and clients: mix-up, cross-site logins, PKCE, sessions, the app's own clients and registrations.

use super::*;

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
