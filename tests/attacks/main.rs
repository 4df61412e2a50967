//! Attacks on the example app in workerd, each played by a hostile server or
//! page (`tests/servers/hostile.mjs`), asserting what the attacker got
//! (nothing) and what the victim kept (everything).

use idp_tests::{
    free_port, join_all, provider, state_dir, urlencode, App, AuthServerOptions, CimdServer,
    Hostile, KeyPair, Servers, Worker,
};
use serde_json::Value;

mod calls;
mod device;
mod grants;
mod logins;

/// The query parameters of a URL.
fn params(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
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
