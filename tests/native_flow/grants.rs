//! The app's own grants and keys natively: client credentials, private_key_jwt, revocation, DPoP-bound and Bearer tokens, a confidential client at FastMCP.

use super::*;

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
