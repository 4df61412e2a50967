//! Attacks on authed calls and the example's routes: where tokens and credentials go, relayed answers, addresses, other sites.

use super::*;

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
