//! The app connects an API as itself (the client credentials grant), with
//! no person and no browser, against a real authorization server
//! (oidc-provider, a machine client registered in advance), in workerd:
//! through the example's operator routes, tokens for the API's audience,
//! asked for again when the API refuses them, kept apart from every user.

use idp_tests::{state_dir, urlencode, App, AuthServerOptions, Servers, Worker};
use serde_json::{json, Value};

const OPERATOR: &str = "operator-token-for-the-machine-test-0123456789";

async fn as_operator(worker: &Worker, path: &str, target: &str) -> (u16, Value) {
    idp_tests::as_operator(worker, OPERATOR, path, target).await
}

#[tokio::test(flavor = "current_thread")]
async fn the_app_connects_an_api_as_itself_and_asks_again_when_refused() {
    let servers = Servers::start(AuthServerOptions::default());
    let (client_id, secret) = servers.register_machine_client().await;
    let api = format!("{}/api", servers.origin);
    let pre_registered = json!([{
        "issuer": servers.issuer,
        "client_id": client_id,
        "client_secret_name": "MACHINE_SECRET",
        "auth_method": "client_secret_basic",
        "resources": [api],
    }])
    .to_string();
    let worker = Worker::start_with(
        &state_dir("machine"),
        &[
            ("IDP_PRE_REGISTERED", &pre_registered),
            ("MACHINE_SECRET", &secret),
            ("IDP_ADMIN_TOKEN", OPERATOR),
        ],
    );

    // Connected as the app: one token request, no authorization request.
    let authorizations = servers.auth_count("GET /auth").await;
    let tokens = servers.auth_count("POST /token").await;
    let (status, provider) =
        as_operator(&worker, "/admin/app/connect", &format!("{api}/items")).await;
    assert_eq!(status, 200, "{provider}");
    assert_eq!(provider["has_token"], true, "{provider}");
    assert_eq!(provider["resource_url"], api, "{provider}");
    assert!(
        !provider.to_string().contains(&secret),
        "no secret in the answer"
    );
    assert_eq!(servers.auth_count("POST /token").await, tokens + 1);
    assert_eq!(servers.auth_count("GET /auth").await, authorizations);

    // Calls carry the app's token, for the API's audience.
    let (status, body) = as_operator(&worker, "/admin/app/fetch", &format!("{api}/items")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["authorization"].clone(), body["aud"].clone()),
        (json!(true), json!(api))
    );

    // The API stops accepting the token: the grant is asked for again (no
    // refresh token, no person), once, and the call goes on.
    reqwest::Client::new()
        .post(format!("{}/__revoke-tokens", servers.origin))
        .send()
        .await
        .unwrap();
    let (status, body) = as_operator(&worker, "/admin/app/fetch", &format!("{api}/items")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(servers.auth_count("POST /token").await, tokens + 2);

    // A resource outside the client's resources: refused before any token
    // request.
    let (status, body) = as_operator(
        &worker,
        "/admin/app/connect",
        &format!("{}/v1/x", servers.origin),
    )
    .await;
    assert_eq!(
        (status, body["error"].clone()),
        (403, json!("client_not_allowed_for_resource")),
        "{body}"
    );
    assert_eq!(servers.auth_count("POST /token").await, tokens + 2);

    // Nobody else reaches the app's routes or its credentials: not without
    // the operator's token, not a signed-in user.
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/admin/app/fetch?url={}",
            worker.origin,
            urlencode(&api)
        ))
        .header(
            "authorization",
            "Bearer not-the-operator-token-0123456789abcdef",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let alice = App::sign_in(&worker, "alice").await;
    let resp = alice
        .browser
        .client()
        .post(format!(
            "{}/admin/app/fetch?url={}",
            worker.origin,
            urlencode(&api)
        ))
        .header("authorization", format!("Bearer {OPERATOR}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        404,
        "a session does not reach the operator's routes"
    );
    assert!(
        alice.providers().await.is_empty(),
        "the app's grant is not alice's"
    );
}
