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

/// The app as itself, natively: the client credentials grant with a machine
/// client registered in advance at oidc-provider; the token works at the
/// API, and once refused, concurrent callers share one new grant.
#[tokio::test(flavor = "current_thread")]
async fn the_app_connects_as_itself_natively() {
    use idp::registration::{Client, PreRegisteredClient};
    let servers = Servers::start(Default::default());
    let (client_id, secret) = servers.register_machine_client().await;
    let origin = &servers.origin;
    let api = format!("{origin}/api");
    let mut settings = settings();
    settings.clients.pre_registered = vec![PreRegisteredClient::new(
        servers.issuer.clone(),
        Client::confidential(
            client_id,
            idp::secret::ClientSecret::new(secret),
            AuthMethod::ClientSecretBasic,
        ),
        &[&api],
    )];
    let idp = NativeIdp::new(settings);
    let before = servers.auth_count("POST /token").await;
    let provider = idp
        .connect_as_app("app:sync", &format!("{api}/items"), None)
        .await
        .unwrap();
    assert_eq!(provider.key.as_str(), api);
    assert_eq!(servers.auth_count("POST /token").await, before + 1);
    assert_eq!(
        servers.auth_count("GET /auth").await,
        0,
        "no person involved"
    );
    let auth = idp
        .authorization("app:sync", &format!("{api}/items"))
        .await
        .unwrap()
        .unwrap();
    let header = auth.header.unwrap();
    let (status, body) = call(&format!("{api}/items"), Some(&header)).await;
    assert_eq!((status, body["aud"].clone()), (200, serde_json::json!(api)));

    let failed = header.trim_start_matches("Bearer ").to_owned();
    let calls = (0..4)
        .map(|_| idp.refresh_rejected("app:sync", &provider.key, &failed))
        .collect();
    let fresh: Vec<String> = join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap().header.unwrap())
        .collect();
    assert_eq!(
        servers.auth_count("POST /token").await,
        before + 2,
        "one new grant"
    );
    assert!(fresh.iter().all(|h| *h == fresh[0] && *h != header));
    assert!(
        idp.authorization("alice", &api).await.unwrap().is_none(),
        "not anyone else's"
    );
}

/// The native runtime with one pre-registered `private_key_jwt` client
/// at the test server, holding `key` (PEM or JWK), for `api`.
fn keyed_app(servers: &Servers, client_id: String, key: String, api: &str) -> NativeIdp {
    use idp::registration::{Client, PreRegisteredClient};
    let mut settings = settings();
    settings.clients.pre_registered = vec![PreRegisteredClient::new(
        servers.issuer.clone(),
        Client::confidential(
            client_id,
            idp::secret::ClientSecret::new(key),
            AuthMethod::PrivateKeyJwt,
        ),
        &[api],
    )];
    NativeIdp::new(settings)
}

/// A person's grant through a pre-registered `private_key_jwt` client:
/// removing it revokes it, the client authenticating at the revocation
/// endpoint with an assertion as at the token endpoint, and the refresh
/// token is dead at the server afterwards.
#[tokio::test(flavor = "current_thread")]
async fn removing_a_grant_of_a_keyed_client_revokes_it_natively() {
    let servers = Servers::start(Default::default());
    let api = format!("{}/api", servers.origin);
    let key = KeyPair::generate("ES256");
    let redirect = settings().redirect_uri_for(&servers.issuer);
    let client_id = servers.register_keyed_client(&key, redirect.as_str()).await;
    let idp = keyed_app(&servers, client_id, key.private_pem.clone(), &api);
    let query = connect(&idp, &Browser::new(), "alice", &format!("{api}/start")).await;
    let provider = idp.callback("alice", &query).await.unwrap();
    let grant = provider.grant.clone().unwrap();
    assert_eq!(grant.client.auth_method, AuthMethod::PrivateKeyJwt);
    let refresh_token = grant
        .tokens
        .as_ref()
        .unwrap()
        .refresh_token
        .clone()
        .unwrap();

    let revocations = servers.auth_count("POST /token/revocation").await;
    let removal = idp.remove("alice", &api).await.unwrap();
    assert_eq!(
        removal.revoked,
        Ok(true),
        "authenticated at the revocation endpoint"
    );
    assert_eq!(
        servers.auth_count("POST /token/revocation").await,
        revocations + 1
    );

    // The refresh token is dead at the server, even for its own client.
    let client = grant
        .client
        .asserted(&servers.issuer, native::now(), [7; 16])
        .unwrap();
    let http = ReqwestHttp::with_policy(Policy::LOOPBACK_DEV);
    let dead = token::refresh(
        &http,
        &grant.token_endpoint,
        &client,
        &refresh_token,
        &api,
        native::now(),
    )
    .await
    .unwrap_err();
    assert!(dead.requires_reauthorization(), "{dead}");
}

/// The app as itself with `private_key_jwt` (RFC 7523 client assertions),
/// natively, against oidc-provider: an ES256 key as PEM and an RS256 key as
/// a JWK, each registered with its public key only. The token works at the
/// API; a key the server does not know gets no token, and says so.
#[tokio::test(flavor = "current_thread")]
async fn the_app_authenticates_with_its_private_key_natively() {
    let servers = Servers::start(Default::default());
    let api = format!("{}/api", servers.origin);
    let es256 = KeyPair::generate("ES256");
    let rs256 = KeyPair::generate("RS256");
    for (key, secret) in [
        (&es256, es256.private_pem.clone()),
        (&rs256, rs256.private_jwk.to_string()),
    ] {
        let client_id = servers.register_keyed_machine_client(key).await;
        let idp = keyed_app(&servers, client_id, secret, &api);
        let before = servers.auth_count("POST /token").await;
        idp.connect_as_app("app:sync", &api, None)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", key.alg));
        assert_eq!(servers.auth_count("POST /token").await, before + 1);
        let header = idp
            .authorization("app:sync", &format!("{api}/items"))
            .await
            .unwrap()
            .unwrap()
            .header
            .unwrap();
        let (status, body) = call(&format!("{api}/items"), Some(&header)).await;
        assert_eq!(
            (status, body["aud"].clone()),
            (200, serde_json::json!(api)),
            "{}",
            key.alg
        );
    }

    // The RS256 client signing with the ES256 key: refused by the server,
    // and the error says who refused what, without the key.
    let client_id = servers.register_keyed_machine_client(&rs256).await;
    let idp = keyed_app(&servers, client_id, es256.private_pem.clone(), &api);
    let e = idp
        .connect_as_app("app:other", &api, None)
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("invalid_client"), "{text}");
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    assert!(idp
        .authorization("app:other", &api)
        .await
        .unwrap()
        .is_none());
}

/// DPoP against oidc-provider, which offers it: the tokens are bound to the
/// grant's own key; the resource takes them only with a proof made with
/// that key; a copy of the token without the key gets nothing, sent as
/// Bearer, as DPoP without a proof or with another key's proof; the victim
/// keeps using the grant, and its refresh proves the key too.
#[tokio::test(flavor = "current_thread")]
async fn tokens_are_bound_to_the_grants_key_natively() {
    use idp::dpop::{proof, Proof};
    let servers = Servers::start(Default::default());
    // The default: the resource says it takes DPoP (its challenge and its
    // metadata), and the server offers it.
    let mut bound = settings();
    bound.dpop = Default::default();
    let idp = NativeIdp::new(bound);
    let browser = Browser::new();
    let api = format!("{}/api", servers.origin);
    let query = connect(&idp, &browser, "alice", &format!("{api}/start")).await;
    let provider = idp.callback("alice", &query).await.unwrap();
    let auth = idp.authorization("alice", &api).await.unwrap().unwrap();
    let header = auth.header.clone().unwrap();
    let key = auth.dpop.clone().expect("the grant has a key");
    let token = header.strip_prefix("DPoP ").expect("the DPoP scheme");
    // The token names the key: cnf.jkt is its thumbprint.
    let claims = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims).unwrap(),
    )
    .unwrap();
    assert_eq!(claims["cnf"]["jkt"].as_str(), key.thumbprint().as_deref());

    // Through AuthedFetch: a proof per request, taken.
    let items = format!("{api}/items");
    let resp = idp.fetch("alice").get(&items).await.unwrap();
    assert_eq!(resp.status(), 200);
    let proofs = |s: serde_json::Value| s["dpop_proofs"].as_u64().unwrap();
    assert_eq!(proofs(servers.resource_stats().await), 1);

    // The attacker holds the token, not the key.
    let other = idp::secret::DpopKey::generate([5; 32]).unwrap();
    let url = Url::parse(&items).unwrap();
    let p = Proof {
        method: "GET",
        url: &url,
        iat: native::now(),
        nonce: None,
        access_token: Some(token),
    };
    let forged = proof(&other, &p, [0xa7; 16]).unwrap();
    for (authorization, dpop) in [
        (format!("Bearer {token}"), None),
        (header.clone(), None),
        (header.clone(), Some(forged)),
    ] {
        let mut req = reqwest::Client::new()
            .get(&items)
            .header("authorization", &authorization);
        if let Some(d) = &dpop {
            req = req.header("dpop", d);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(
            resp.status(),
            401,
            "{} {}",
            &authorization[..6],
            dpop.is_some()
        );
    }
    assert_eq!(proofs(servers.resource_stats().await), 1, "none of those");

    // The victim keeps everything: the grant works, and a refresh (which
    // proves the key at the token endpoint) gives a new bound token.
    assert_eq!(idp.fetch("alice").get(&items).await.unwrap().status(), 200);
    let fresh = idp
        .refresh_rejected("alice", &provider.key, token)
        .await
        .unwrap();
    let fresh_header = fresh.header.unwrap();
    assert!(fresh_header.starts_with("DPoP ") && fresh_header != header);
    assert_eq!(fresh.dpop.as_ref(), Some(&key), "the same key");
    assert_eq!(idp.fetch("alice").get(&items).await.unwrap().status(), 200);
    assert_eq!(proofs(servers.resource_stats().await), 3);
}

/// A resource that takes Bearer tokens only (the MCP TypeScript SDK's
/// `requireBearerAuth`) behind oidc-provider, which offers DPoP: by default
/// its grant is a Bearer grant, and the connect, a plain call, an MCP tool
/// call and a refresh all answer 200, no request ever going out as DPoP.
/// Beside it, with the same settings and the same authorization server, the
/// resource that says it takes DPoP gets bound tokens.
#[tokio::test(flavor = "current_thread")]
async fn a_bearer_only_resource_gets_bearer_tokens_from_a_dpop_server_natively() {
    let servers = Servers::start(Default::default());
    let sdk = idp_tests::BearerMcp::start(&servers.issuer);
    let mut defaults = settings();
    defaults.dpop = Default::default();
    let idp = NativeIdp::new(defaults);
    let browser = Browser::new();
    let mcp = format!("{}/mcp", sdk.origin);

    let query = connect(&idp, &browser, "alice", &mcp).await;
    let provider = idp.callback("alice", &query).await.unwrap();
    assert_eq!(provider.key.as_str(), mcp);
    let auth = idp.authorization("alice", &mcp).await.unwrap().unwrap();
    assert!(auth.dpop.is_none(), "not bound");
    let refused = sdk.stats().await["statuses"]["401"].clone();
    let header = auth.header.clone().unwrap();
    let token = header.strip_prefix("Bearer ").expect("the Bearer scheme");

    let whoami = format!("{mcp}/whoami");
    let resp = idp.fetch("alice").get(&whoami).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["sub"],
        "demo-user"
    );
    let fetch = idp.fetch("alice");
    let mut session = idp::mcp::Session::new(Url::parse(&mcp).unwrap());
    session.connect(&fetch).await.unwrap();
    let called = session
        .call(
            &fetch,
            "tools/call",
            serde_json::json!({ "name": "whoami", "arguments": {} }),
        )
        .await
        .unwrap();
    assert_eq!(called["content"][0]["text"], "demo-user", "{called}");

    let fresh = idp
        .refresh_rejected("alice", &provider.key, token)
        .await
        .unwrap();
    let fresh_header = fresh.header.unwrap();
    assert!(fresh_header.starts_with("Bearer ") && fresh_header != header);
    assert_eq!(idp.fetch("alice").get(&whoami).await.unwrap().status(), 200);

    let stats = sdk.stats().await;
    assert_eq!(stats["schemes"]["DPoP"], serde_json::Value::Null, "{stats}");
    assert_eq!(
        stats["statuses"]["401"], refused,
        "none after connecting: {stats}"
    );

    // The resource that says it takes DPoP: bound, from the same server.
    let api = format!("{}/api", servers.origin);
    let query = connect(&idp, &browser, "alice", &format!("{api}/start")).await;
    idp.callback("alice", &query).await.unwrap();
    let bound = idp.authorization("alice", &api).await.unwrap().unwrap();
    assert!(bound.dpop.is_some(), "bound");
    assert!(bound.header.unwrap().starts_with("DPoP "));
    let items = format!("{api}/items");
    assert_eq!(idp.fetch("alice").get(&items).await.unwrap().status(), 200);
    assert_eq!(servers.resource_stats().await["dpop_proofs"], 1);
}

/// A grant stored bound (`IDP_DPOP=advertised`, the default before) at a
/// resource that takes Bearer tokens only: its refusal asks the person to
/// connect again, without a refresh that would bring another bound token;
/// connecting again with the default gets a Bearer token that works.
#[tokio::test(flavor = "current_thread")]
async fn a_bound_grant_refused_by_a_bearer_only_resource_asks_to_connect_again() {
    let servers = Servers::start(Default::default());
    let sdk = idp_tests::BearerMcp::start(&servers.issuer);
    let file = std::env::temp_dir().join(format!("idp-bound-refused-{}", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let store = || {
        let keys = idp::store::seal::Keyring::parse(idp_tests::replica::KEYS).unwrap();
        idp::native::SqliteStore::open(&file)
            .unwrap()
            .with_keys(keys)
    };
    let mut advertised = settings();
    advertised.dpop = idp::settings::DpopUse::Advertised;
    let old = NativeIdp::with_store(advertised, store());
    let browser = Browser::new();
    let mcp = format!("{}/mcp", sdk.origin);
    let query = connect(&old, &browser, "alice", &mcp).await;
    old.callback("alice", &query).await.unwrap();
    let auth = old.authorization("alice", &mcp).await.unwrap().unwrap();
    assert!(auth.dpop.is_some(), "bound, as before");

    let tokens = servers.auth_count("POST /token").await;
    let whoami = format!("{mcp}/whoami");
    for _ in 0..3 {
        match old.fetch("alice").get(&whoami).await {
            Err(Error::AuthorizationRequired(r)) => {
                assert_eq!(r.reason, idp::error::Reason::BoundTokenRefused);
                assert_eq!(r.resource, mcp);
            }
            other => panic!("expected a re-authorization, got {other:?}"),
        }
    }
    assert_eq!(
        servers.auth_count("POST /token").await,
        tokens,
        "no refresh: it would bring another bound token"
    );

    drop(old);

    // The same store under the new default: the grant was kept until the
    // person connects again, and then it is a Bearer grant.
    let mut defaults = settings();
    defaults.dpop = Default::default();
    let idp = NativeIdp::with_store(defaults, store());
    let kept = idp.authorization("alice", &mcp).await.unwrap().unwrap();
    assert!(
        kept.dpop.is_some(),
        "nothing was lost before the person came back"
    );
    let query = connect(&idp, &browser, "alice", &mcp).await;
    idp.callback("alice", &query).await.unwrap();
    let now = idp.authorization("alice", &mcp).await.unwrap().unwrap();
    assert!(now.dpop.is_none(), "unbound");
    assert_eq!(idp.fetch("alice").get(&whoami).await.unwrap().status(), 200);
    drop(idp);
    let _ = std::fs::remove_file(&file);
}

/// A server built on the MCP Python SDK's authorization server (FastMCP):
/// its metadata offers `client_secret_basic` and `client_secret_post` (not
/// `none`), so idp registers a confidential client and authenticates with
/// HTTP Basic; its token endpoint reads `client_id` from the form body
/// before anything else, which idp sends alongside (RFC 6749 §3.2.1). The
/// code exchange, an MCP call with the token and a refresh all work.
#[tokio::test(flavor = "current_thread")]
async fn a_fastmcp_server_takes_a_confidential_client_natively() {
    let fastmcp = idp_tests::Process::start(
        "fastmcp",
        &idp_tests::python(),
        &["tests/servers/fastmcp_server.py"],
    );
    let server = format!("{}/mcp", fastmcp.field("origin"));
    let idp = NativeIdp::new(settings());
    let browser = Browser::new();
    let query = connect(&idp, &browser, "alice", &server).await;
    let provider = idp.callback("alice", &query).await.unwrap();
    let grant = provider.grant.as_ref().expect("a grant");
    assert_eq!(grant.client.auth_method, AuthMethod::ClientSecretBasic);
    assert!(
        grant.client.client_secret.is_some(),
        "a confidential client"
    );

    let initialize = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "idp test", "version": "0"}}
    });
    let fetch = idp.fetch("alice");
    let call = || {
        let mut req = reqwest::Request::new(reqwest::Method::POST, server.parse().unwrap());
        let h = req.headers_mut();
        h.insert("content-type", "application/json".parse().unwrap());
        h.insert(
            "accept",
            "application/json, text/event-stream".parse().unwrap(),
        );
        *req.body_mut() = Some(initialize.to_string().into());
        fetch.send(req)
    };
    let resp = call().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("FastMCP test server"));

    // A refresh authenticates the same way, and the new token works.
    let auth = idp.authorization("alice", &server).await.unwrap().unwrap();
    let old = auth.header.unwrap();
    let fresh = idp
        .refresh_rejected("alice", &provider.key, old.trim_start_matches("Bearer "))
        .await
        .unwrap();
    assert_ne!(fresh.header.as_deref(), Some(old.as_str()));
    assert_eq!(call().await.unwrap().status(), 200);
}

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

/// One process, many users: alice's authorization server hangs (25 s on
/// every token request) during her refresh and during her next login's
/// code exchange; meanwhile bob's callback, refresh and authed call at
/// another server complete in normal time (refreshes lock per grant, and a
/// login holds no lock across its requests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_hanging_server_stalls_nobody_else_natively() {
    use std::time::{Duration, Instant};
    let servers = Servers::start(Default::default());
    let hostile = idp_tests::Hostile::start();
    hostile
        .configure(serde_json::json!({ "token_mode": "tokens", "expires_in": 3600 }))
        .await;
    let idp = std::sync::Arc::new(NativeIdp::new(settings()));
    let browser = Browser::new();
    let slow = format!("{}/r/slow", hostile.origin);
    let query = connect(&*idp, &browser, "alice", &slow).await;
    let alice = idp.callback("alice", &query).await.unwrap();
    let api = format!("{}/api", servers.origin);
    let query = connect(&*idp, &browser, "bob", &format!("{api}/start")).await;
    let bob = idp.callback("bob", &query).await.unwrap();

    // Alice's server now hangs: her refresh and her next login wait on it.
    hostile
        .configure(serde_json::json!({ "token_mode": "slow", "slow_ms": 25000 }))
        .await;
    let refresh = {
        let idp = idp.clone();
        let key = alice.key.clone();
        tokio::spawn(async move { idp.refresh_rejected("alice", &key, "attacker-at-1").await })
    };
    let query = connect(&*idp, &browser, "alice", &slow).await;
    let login = {
        let idp = idp.clone();
        tokio::spawn(async move { idp.callback("alice", &query).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !refresh.is_finished() && !login.is_finished(),
        "alice's server hangs"
    );

    // Bob: a login's callback, a refresh and an authed call, each at once.
    let bounded = Duration::from_secs(5);
    let started = Instant::now();
    let query = connect(
        &*idp,
        &browser,
        "bob",
        &format!("{}/v1/start", servers.origin),
    )
    .await;
    idp.callback("bob", &query).await.unwrap();
    assert!(
        started.elapsed() < bounded,
        "bob's callback: {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let stale = bob.tokens().unwrap().access_token.secret().to_owned();
    idp.refresh_rejected("bob", &bob.key, &stale).await.unwrap();
    assert!(
        started.elapsed() < bounded,
        "bob's refresh: {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let resp = idp.fetch("bob").get(&format!("{api}/items")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        started.elapsed() < bounded,
        "bob's call: {:?}",
        started.elapsed()
    );
    assert!(
        !refresh.is_finished(),
        "alice's refresh still waits on her server"
    );
    refresh.abort();
    login.abort();
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

/// Connects `url` for `owner` (a user, or a user's account) as the person
/// `person` at oidc-provider, in a browser of their own.
async fn connect_as(
    idp: &NativeIdp,
    owner: &idp::flow::accounts::Owner,
    url: &str,
    person: &str,
) -> idp::store::Provider {
    let LoginStart::Redirect(mut to) = idp.connect(owner, url, None).await.unwrap() else {
        panic!("{url} is public");
    };
    to.query_pairs_mut().append_pair("login_hint", person);
    let back = Browser::new().follow_until(to.as_str(), REDIRECT).await;
    idp.callback(owner, &back).await.unwrap()
}

/// Two accounts of one person at one API, for an API served by a provider
/// profile and for one found by discovery: each call goes to the account
/// asked for (the API answers whose token it got), a call naming no account
/// uses the first connected, connecting an account again replaces it, and
/// removing one keeps the other.
#[tokio::test(flavor = "current_thread")]
async fn two_accounts_at_one_api_are_kept_apart_natively() {
    use idp::flow::accounts::Owner;
    let servers = Servers::start(Default::default());
    let (origin, issuer) = (&servers.origin, &servers.issuer);
    let mut settings = settings();
    // The profile-served API: oidc-provider's endpoints stated by hand, and
    // a client registered in advance for the profile's callback.
    let client = servers.register_client(&format!("{REDIRECT}/demo")).await;
    let v1 = format!("{origin}/v1");
    let mut profile = idp::profile::ProviderProfile::new(
        "demo",
        &[&v1],
        issuer.as_str(),
        Url::parse(&format!("{issuer}/auth")).unwrap(),
        Url::parse(&format!("{issuer}/token")).unwrap(),
        client,
    );
    profile.scopes = vec!["api:read".into()];
    settings.profiles = vec![profile];
    let idp = NativeIdp::new(settings);
    // The discovered API, at a server of its own (at the profile's, its
    // metadata would name the profile's issuer, whose client serves only
    // the profile's resources).
    let discovered = Servers::start(Default::default());
    let api = format!("{}/api", discovered.origin);
    let work = Owner::account("alice", "work").unwrap();
    let home = Owner::account("alice", "home").unwrap();

    for (base, start) in [(&v1, format!("{v1}/start")), (&api, format!("{api}/start"))] {
        let first = connect_as(&idp, &work, &start, "work-person").await;
        assert_eq!(first.account.as_deref(), Some("work"));
        let second = connect_as(&idp, &home, &start, "home-person").await;
        assert_eq!(second.account.as_deref(), Some("home"));
        let items = format!("{base}/items");
        assert_eq!(
            sub_of(idp.fetch("alice").account("work"), &items).await,
            "work-person"
        );
        assert_eq!(
            sub_of(idp.fetch("alice").account("home"), &items).await,
            "home-person"
        );
        assert_eq!(
            sub_of(idp.fetch("alice"), &items).await,
            "work-person",
            "the first is the default"
        );
        // The same account again: replaced, not duplicated.
        connect_as(&idp, &home, &start, "home-person").await;
        let key = idp::matching::ResourceKey::parse(base).unwrap();
        let mut rows = Vec::new();
        for owner in ["alice", home.as_str()] {
            let list = idp.store().providers(owner).await.unwrap();
            rows.push(list.iter().filter(|p| p.key == key).count());
        }
        assert_eq!(rows, [1, 1]);
        // Removing home keeps work.
        idp.remove(&home, &items).await.unwrap();
        let e = idp
            .fetch("alice")
            .account("home")
            .get(&items)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::AuthorizationRequired(_)), "{e}");
        assert_eq!(
            sub_of(idp.fetch("alice").account("work"), &items).await,
            "work-person"
        );
        assert_eq!(sub_of(idp.fetch("alice"), &items).await, "work-person");
    }
    // A label that could name another user's account is refused.
    let e = idp
        .fetch("alice")
        .account("a\u{1f}b")
        .get(&api)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), idp::error::ErrorKind::InvalidAccount, "{e}");
    // A user id that names alice's work account (another user of the app
    // who picked it as their id) is nobody: refused before anything is read
    // or sent, on every way in; alice's account keeps its grant.
    let forged = format!("alice{}work", idp::flow::accounts::SEPARATOR);
    let items = format!("{api}/items");
    let before = discovered.resource_stats().await["requests"].clone();
    let e = idp.fetch(forged.as_str()).get(&items).await.unwrap_err();
    assert_eq!(e.kind(), idp::error::ErrorKind::InvalidAccount, "{e}");
    assert!(idp.authorization(&forged, &api).await.is_err());
    assert!(idp.remove(&forged, &api).await.is_err());
    assert!(idp.connect(forged.as_str(), &api, None).await.is_err());
    assert_eq!(
        discovered.resource_stats().await["requests"],
        before,
        "nothing sent"
    );
    assert!(
        idp.authorization(&work, &api).await.unwrap().is_some(),
        "alice kept it"
    );
}

/// Whose token the API got: its answer names the token's subject.
async fn sub_of(fetch: idp::native::AuthedFetch<'_>, url: &str) -> String {
    let resp = fetch.get(url).await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    let body: serde_json::Value = resp.json().await.unwrap();
    body["sub"].as_str().unwrap().to_owned()
}

/// One process over the in-memory store: a background pass refreshes the
/// due grant once (one token request), a passing failure waits for its
/// backoff, and a dead grant leaves the schedule.
#[tokio::test(flavor = "current_thread")]
async fn a_single_process_refreshes_in_the_background_in_memory() {
    refreshes_in_the_background(idp::store::memory::MemoryStore::default()).await;
}

/// The same over a SQLite file, its secrets sealed.
#[tokio::test(flavor = "current_thread")]
async fn a_single_process_refreshes_in_the_background_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("idp-background-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let keys = idp::store::seal::Keyring::parse(idp_tests::replica::KEYS).unwrap();
    let store = idp::native::SqliteStore::open(&dir)
        .unwrap()
        .with_keys(keys);
    refreshes_in_the_background(store).await;
    let _ = std::fs::remove_file(&dir);
}

/// A queue with a keep-alive (for servers that expire refresh tokens left
/// idle): a grant whose token is still fresh is refreshed once the
/// keep-alive has passed, once, and is then due again only a keep-alive
/// later; without a keep-alive the same grant is not due.
#[tokio::test(flavor = "current_thread")]
async fn the_keep_alive_refreshes_fresh_grants_natively() {
    use idp::flow::RefreshEvent;
    use idp::store::memory::MemoryStore;
    use idp_tests::replica::{connect, settings};
    let servers = Servers::start(Default::default());
    let kept = MemoryStore::default().with_keep_alive(std::time::Duration::from_secs(1));
    let idp = NativeIdp::with_store(settings(), kept);
    let plain = NativeIdp::with_store(settings(), MemoryStore::default());
    let api = format!("{}/api", servers.origin);
    connect(&idp, "alice", &api).await;
    connect(&plain, "alice", &api).await;
    let header = || async {
        let auth = idp.authorization("alice", &api).await.unwrap().unwrap();
        auth.header.unwrap()
    };
    let first = header().await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let before = servers.auth_count("POST /token").await;
    let pass = idp.refresh_due(100).await.unwrap();
    assert_eq!(pass.claimed.len(), 1, "due at the keep-alive");
    assert!(
        matches!(pass.events[..], [ref e] if e.event == RefreshEvent::Refreshed),
        "{:?}",
        pass.events
    );
    assert_eq!(servers.auth_count("POST /token").await, before + 1);
    assert_ne!(header().await, first, "a new token");
    assert!(
        idp.refresh_due(100).await.unwrap().claimed.is_empty(),
        "not due again until the next keep-alive"
    );
    assert!(
        plain.refresh_due(100).await.unwrap().claimed.is_empty(),
        "without a keep-alive a fresh grant is not due"
    );
}

async fn refreshes_in_the_background<S>(store: S)
where
    S: idp::store::Store + idp::store::RefreshQueue,
{
    use idp::flow::{RecordedRefresh, RefreshEvent};
    use idp::store::{Expect, Put};
    use idp_tests::replica::{connect, expire, settings};
    let servers = Servers::start(Default::default());
    let idp = NativeIdp::with_store(settings(), store);
    let api = connect(&idp, "alice", &format!("{}/api", servers.origin)).await;
    let v1 = connect(&idp, "alice", &format!("{}/v1", servers.origin)).await;
    assert!(
        idp.refresh_due(100).await.unwrap().claimed.is_empty(),
        "nothing due yet"
    );
    let before = servers.auth_count("POST /token").await;

    expire(idp.store(), "alice", &api).await;
    let pass = idp.refresh_due(100).await.unwrap();
    assert_eq!(pass.claimed.len(), 1, "{:?}", pass.claimed);
    assert!(
        matches!(
            pass.events[..],
            [RecordedRefresh {
                event: RefreshEvent::Refreshed,
                ..
            }]
        ),
        "{:?}",
        pass.events
    );
    let after = servers.auth_count("POST /token").await;
    assert_eq!(after - before, 1, "one token request");
    assert!(
        idp.refresh_due(100).await.unwrap().claimed.is_empty(),
        "not due again"
    );

    // A passing failure (503): tried again after its backoff, not at once.
    expire(idp.store(), "alice", &api).await;
    servers.fail_token(1, 503).await;
    let pass = idp.refresh_due(100).await.unwrap();
    assert!(
        matches!(
            pass.events[..],
            [RecordedRefresh {
                event: RefreshEvent::Failed {
                    transient: true,
                    ..
                },
                ..
            }]
        ),
        "{:?}",
        pass.events
    );
    assert!(
        idp.refresh_due(100).await.unwrap().claimed.is_empty(),
        "waits for the backoff"
    );

    // A dead grant (the server does not know its refresh token): stopped.
    let stored = idp.store().provider("alice", &v1).await.unwrap().unwrap();
    let mut dead = stored.clone();
    let t = dead.grant.as_mut().unwrap().tokens.as_mut().unwrap();
    t.refresh_token = Some(idp::secret::RefreshToken::new("forgotten"));
    t.expires_at = Some(native::now() - 10);
    let put = idp
        .store()
        .put_provider("alice", dead, Expect::Exactly(&stored));
    assert_eq!(put.await.unwrap(), Put::Written);
    let pass = idp.refresh_due(100).await.unwrap();
    assert!(
        matches!(
            pass.events[..],
            [RecordedRefresh {
                event: RefreshEvent::Dead { .. },
                ..
            }]
        ),
        "{:?}",
        pass.events
    );
    assert!(
        idp.refresh_due(100).await.unwrap().claimed.is_empty(),
        "a dead grant stays stopped"
    );
}
