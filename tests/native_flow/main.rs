//! The engine, natively, against a real authorization server (oidc-provider)
//! and a real JWT-checking protected resource, both on loopback.

use idp::authorize::{self, AuthorizationParams, CallbackParams, PendingFlow};
use idp::discovery::{discover_authorization_server, discover_resource};
use idp::error::{CallbackProblem, Error};
use idp::flow::{LoginStart, Settings};
use idp::native::{self, NativeIdp, ReqwestHttp};
use idp::policy::Policy;
use idp::probe::{self, Probe};
use idp::registration::{obtain_client, AuthMethod, ClientConfig, ClientInfo, ClientRequest};
use idp::secret::{FlowState, PkceVerifier};
use idp::store::UserStore;
use idp::token;
use idp_tests::{join_all, Browser, KeyPair, Servers};
use url::Url;

mod accounts;
mod background;
mod device;
mod grants;

/// Never fetched: the browser stops at the redirect to it.
const REDIRECT: &str = "http://127.0.0.1:9/oauth/callback";

fn info() -> ClientInfo {
    ClientInfo {
        name: "idp native test".into(),
        version: "0.1.0".into(),
        uri: None,
    }
}

async fn call(url: &str, authorization: Option<&str>) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(h) = authorization {
        req = req.header("authorization", h);
    }
    let resp = req.send().await.expect("resource reachable");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test(flavor = "current_thread")]
async fn walks_every_step_against_oidc_provider() {
    let servers = Servers::start(Default::default());
    let policy = Policy::LOOPBACK_DEV;
    let http = ReqwestHttp::with_policy(policy);
    let api = format!("{}/api/items", servers.origin);
    let api_url = Url::parse(&api).unwrap();
    let redirect = Url::parse(REDIRECT).unwrap();
    let now = native::now();

    // 1. The resource answers 401 with a Bearer challenge naming its metadata.
    let Probe::NeedsAuthorization(Some(challenge)) = probe::probe(&http, &api_url).await.unwrap()
    else {
        panic!("expected a 401 with a Bearer challenge");
    };
    assert_eq!(
        challenge.resource_metadata.as_deref(),
        Some(
            format!(
                "{}/.well-known/oauth-protected-resource/api",
                servers.origin
            )
            .as_str()
        )
    );

    // 2. RFC 9728 metadata names the resource and its issuer.
    let found = discover_resource(&http, &policy, &api_url, Some(&challenge))
        .await
        .unwrap();
    assert_eq!(found.resource, format!("{}/api", servers.origin));
    assert_eq!(
        found.authorization_servers,
        [idp::issuer::Issuer::parse(&servers.issuer).unwrap()]
    );

    // 3. Server metadata, with the issuer checked.
    let server = discover_authorization_server(&http, &policy, &found.authorization_servers)
        .await
        .unwrap();
    assert_eq!(server.issuer, servers.issuer);
    assert!(
        server
            .metadata
            .authorization_response_iss_parameter_supported
    );
    let revocation = server
        .revocation_endpoint
        .clone()
        .expect("revocation endpoint");

    // 4. Dynamic registration as a public client.
    let (client, registration) = obtain_client(
        &http,
        &server,
        &ClientConfig::default(),
        &info(),
        &ClientRequest {
            cached: None,
            redirect_uri: &redirect,
            scope: Some("api:read"),
        },
        now,
    )
    .await
    .unwrap();
    let registration = registration.expect("a new registration");
    assert_eq!(client.auth_method, AuthMethod::None);
    assert_eq!(registration.issuer, servers.issuer);

    // 5. The authorization URL, with PKCE S256, state and resource.
    let entropy = native::entropy().unwrap();
    let scope = idp::scope::choose_scope(
        None,
        challenge.scope.as_deref(),
        found
            .metadata
            .as_ref()
            .and_then(|m| m.scopes_supported.as_deref()),
    );
    assert_eq!(scope.as_deref(), Some("api:read"));
    let flow = PendingFlow {
        state: FlowState::from_random(entropy.state),
        verifier: PkceVerifier::from_random(entropy.verifier),
        resource_url: api.clone(),
        resource: found.resource.clone(),
        issuer: server.issuer.clone(),
        iss_required: true,
        client: client.clone(),
        token_endpoint: server.token_endpoint.clone(),
        revocation_endpoint: Some(revocation.clone()),
        redirect_uri: redirect.clone(),
        scope: scope.clone(),
        owner: "alice".into(),
        created_at: now,
        rules: Default::default(),
        profile: None,
        dpop: None,
        refused: None,
        device: None,
        account: None,
    };
    let authorization_url = authorize::authorization_url(
        &AuthorizationParams {
            authorization_endpoint: &server.authorization_endpoint,
            client: &client,
            redirect_uri: &redirect,
            resource: Some(&flow.resource),
            scope: scope.as_deref(),
        },
        &flow.state,
        &flow.verifier,
    );

    // 6. Login and consent, then the redirect back with code, state and iss.
    let back = Browser::new()
        .follow_until(authorization_url.as_str(), REDIRECT)
        .await;
    let params = CallbackParams::from_query(back.query().unwrap_or_default());
    assert_eq!(params.iss.as_deref(), Some(servers.issuer.as_str()));
    let code = authorize::validate_callback(params, &flow, native::now()).unwrap();

    // 7. Code exchange.
    let tokens = token::exchange_code(&http, &flow.code_grant(), &code, native::now())
        .await
        .unwrap();
    let first_refresh = tokens.refresh_token.clone().expect("a refresh token");
    assert!(tokens.expires_at.unwrap() > now);

    // 8. The resource accepts the token (its audience is the resource).
    let (status, body) = call(&api, Some(&tokens.authorization_header())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sub"], "demo-user");

    // 9. Refresh rotates the refresh token; the new access token works.
    let refreshed = token::refresh(
        &http,
        &server.token_endpoint,
        &client,
        &first_refresh,
        &flow.resource,
        native::now(),
    )
    .await
    .unwrap();
    let second_refresh = refreshed.refresh_token.clone().unwrap();
    assert_ne!(second_refresh.secret(), first_refresh.secret(), "rotation");
    assert_ne!(
        refreshed.access_token.secret(),
        tokens.access_token.secret()
    );
    let (status, body) = call(&api, Some(&refreshed.authorization_header())).await;
    assert_eq!(status, 200, "{body}");

    // 10. Replaying the old refresh token is a typed re-authorization error,
    // and the server revokes the whole grant.
    let replay = token::refresh(
        &http,
        &server.token_endpoint,
        &client,
        &first_refresh,
        &flow.resource,
        native::now(),
    )
    .await
    .unwrap_err();
    assert!(replay.requires_reauthorization(), "{replay}");
    assert!(
        matches!(&replay, Error::Token { oauth: Some(e), .. } if e.error == "invalid_grant"),
        "{replay}"
    );
    let after = token::refresh(
        &http,
        &server.token_endpoint,
        &client,
        &second_refresh,
        &flow.resource,
        native::now(),
    )
    .await
    .unwrap_err();
    assert!(after.requires_reauthorization(), "{after}");
    let text = format!("{replay} {replay:?} {after:?}");
    assert!(!text.contains(first_refresh.secret()) && !text.contains(second_refresh.secret()));
}

fn settings() -> Settings {
    Settings {
        policy: Policy::LOOPBACK_DEV,
        client_info: info(),
        clients: ClientConfig::default(),
        callback_base: Url::parse(REDIRECT).unwrap(),
        profiles: Vec::new(),
        // These tests send the stored header by hand; DPoP has its own test.
        dpop: idp::settings::DpopUse::Never,
        dpop_always: Vec::new(),
        device_origins: Default::default(),
    }
}

async fn connect<S: idp::store::Store>(
    idp: &NativeIdp<S>,
    browser: &Browser,
    owner: &str,
    url: &str,
) -> Url {
    match idp.connect(owner, url, None).await.unwrap() {
        LoginStart::Redirect(to) => browser.follow_until(to.as_str(), REDIRECT).await,
        LoginStart::Public(p) => panic!("{url} was stored as public: {p:?}"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn native_runtime_connects_matches_refreshes_and_removes() {
    let servers = Servers::start(Default::default());
    let idp = NativeIdp::new(settings());
    let browser = Browser::new();
    let origin = &servers.origin;

    // Connect /api for alice; the key is the resource from its metadata.
    let query = connect(&idp, &browser, "alice", &format!("{origin}/api/start")).await;
    let provider = idp.callback("alice", &query).await.unwrap();
    assert_eq!(provider.key.as_str(), format!("{origin}/api"));
    assert_eq!(provider.name, "127.0.0.1");

    // Replaying the same callback fails: flows are single use.
    let replay = idp.callback("alice", &query).await.unwrap_err();
    assert_eq!(replay, Error::Callback(CallbackProblem::UnknownState));

    // Longest-prefix matching at segment boundaries.
    let auth = idp
        .authorization("alice", &format!("{origin}/api/deep/x?q=1"))
        .await
        .unwrap()
        .unwrap();
    let header = auth.header.unwrap();
    let (status, body) = call(&format!("{origin}/api/deep/x"), Some(&header)).await;
    assert_eq!(status, 200, "{body}");
    assert!(idp
        .authorization("alice", &format!("{origin}/apix"))
        .await
        .unwrap()
        .is_none());
    assert!(idp
        .authorization("bob", &format!("{origin}/api/x"))
        .await
        .unwrap()
        .is_none());

    // A second resource on the same issuer reuses the registration.
    assert_eq!(servers.auth_count("POST /reg").await, 1);
    let query = connect(&idp, &browser, "alice", &format!("{origin}/v1")).await;
    idp.callback("alice", &query).await.unwrap();
    assert_eq!(
        servers.auth_count("POST /reg").await,
        1,
        "no second registration"
    );
    assert_eq!(
        servers.metadata_fetches().await,
        1,
        "server metadata is cached"
    );

    // Bob cannot complete Alice's flow; Alice still can.
    let alice_query = connect(&idp, &browser, "alice", &format!("{origin}/scoped")).await;
    let stolen = idp.callback("bob", &alice_query).await.unwrap_err();
    assert_eq!(stolen, Error::Callback(CallbackProblem::UnknownState));
    idp.callback("alice", &alice_query).await.unwrap();

    // A public resource is stored without a token.
    let LoginStart::Public(p) = idp
        .connect("alice", &format!("{origin}/public/feed"), None)
        .await
        .unwrap()
    else {
        panic!("expected public");
    };
    assert!(p.is_public());
    let auth = idp
        .authorization("alice", &format!("{origin}/public/feed/1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(auth.header, None);

    // Concurrent rejections of one token cause one refresh.
    let key = provider.key.clone();
    let failed = header.trim_start_matches("Bearer ").to_owned();
    let before = servers.auth_count("POST /token").await;
    let calls = (0..8)
        .map(|_| idp.refresh_rejected("alice", &key, &failed))
        .collect();
    let results: Vec<String> = join_all(calls)
        .await
        .into_iter()
        .map(|r| {
            let header = r.unwrap().header.unwrap();
            header.trim_start_matches("Bearer ").to_owned()
        })
        .collect();
    assert_eq!(
        servers.auth_count("POST /token").await,
        before + 1,
        "one token request"
    );
    let fresh = results[0].clone();
    assert!(results.iter().all(|t| *t == fresh));
    assert_ne!(fresh, failed);
    let (status, _) = call(&format!("{origin}/api/x"), Some(&format!("Bearer {fresh}"))).await;
    assert_eq!(status, 200);

    // Removal takes a URL under the provider (as a call does), revokes at
    // the server and forgets the provider; nothing left there: not_connected.
    let removal = idp
        .remove("alice", &format!("{origin}/api/deep/x?q=1"))
        .await
        .unwrap();
    assert_eq!(removal.provider.key.as_str(), format!("{origin}/api"));
    assert_eq!(removal.revoked, Ok(true));
    let again = idp.remove("alice", &format!("{origin}/api/deep/x")).await;
    assert!(
        matches!(again, Err(Error::NotConnected { .. })),
        "{again:?}"
    );
    assert_eq!(servers.auth_count("POST /token/revocation").await, 1);
    assert!(idp
        .authorization("alice", &format!("{origin}/api/x"))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "current_thread")]
async fn bad_resources_get_clear_errors() {
    let servers = Servers::start(Default::default());
    let idp = NativeIdp::new(settings());
    let origin = &servers.origin;

    let e = idp
        .connect("alice", &format!("{origin}/bad-metadata/x"), None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ResourceMetadata { .. }), "{e}");
    assert!(e.to_string().contains("not JSON"), "{e}");

    let e = idp
        .connect("alice", &format!("{origin}/other-resource"), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("does not cover"), "{e}");

    for bad in [
        "not a url",
        "ftp://127.0.0.1/x",
        "https://user:pw@127.0.0.1/",
    ] {
        let e = idp.connect("alice", bad, None).await.unwrap_err();
        assert!(matches!(e, Error::InvalidUrl { .. }), "{bad}: {e}");
    }
    let e = idp
        .connect("alice", &format!("{origin}/nothing-here"), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("HTTP 404"), "{e}");

    // With the strict policy, an http resource is refused before any request.
    let strict = NativeIdp::new(Settings {
        policy: Policy::STRICT,
        ..settings()
    });
    let e = strict
        .connect("alice", &format!("{origin}/api"), None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InsecureUrl { .. }), "{e}");

    // A person who declines gets a typed error from the callback.
    let LoginStart::Redirect(to) = idp
        .connect("carol", &format!("{origin}/api"), None)
        .await
        .unwrap()
    else {
        panic!()
    };
    let mut to = to;
    to.query_pairs_mut().append_pair("login_hint", "deny");
    let back = Browser::new().follow_until(to.as_str(), REDIRECT).await;
    let e = idp.callback("carol", &back).await.unwrap_err();
    assert!(
        matches!(&e, Error::AuthorizationDenied(o) if o.error == "access_denied"),
        "{e}"
    );

    assert!(idp.store().providers("carol").await.unwrap().is_empty());
}

/// oidc-provider grants only the scopes a client registered. Connecting a
/// second resource that needs more scope updates the registration where the
/// server takes RFC 7592 updates, and registers again where it does not;
/// both logins succeed with the new scope.
#[tokio::test(flavor = "current_thread")]
async fn a_registration_lacking_a_scope_is_updated_or_replaced() {
    for management in [true, false] {
        let servers = Servers::start(idp_tests::AuthServerOptions {
            no_registration_management: !management,
            ..Default::default()
        });
        let idp = NativeIdp::new(settings());
        let browser = Browser::new();
        let origin = &servers.origin;
        let back = connect(&idp, &browser, "alice", &format!("{origin}/api")).await;
        idp.callback("alice", &back).await.unwrap();
        assert_eq!(servers.auth_count("POST /reg").await, 1);
        let to = match idp
            .connect(
                "alice",
                &format!("{origin}/scoped"),
                Some("api:read api:write"),
            )
            .await
            .unwrap()
        {
            LoginStart::Redirect(to) => to,
            LoginStart::Public(p) => panic!("public: {p:?}"),
        };
        let back = browser.follow_until(to.as_str(), REDIRECT).await;
        let p = idp.callback("alice", &back).await.unwrap();
        let scope = p.tokens().unwrap().scope.clone().unwrap_or_default();
        assert!(
            scope.contains("api:write"),
            "management {management}: {scope}"
        );
        let (posts, puts) = (
            servers.auth_count("POST /reg").await,
            servers.auth_count("PUT /reg/:id").await,
        );
        if management {
            assert_eq!((posts, puts), (1, 1), "updated in place");
        } else {
            // oidc-provider still hands out a management URI, but refuses
            // the update: the client registers again.
            assert_eq!(
                (posts, puts),
                (2, 1),
                "registered again after a refused update"
            );
        }
    }
}
