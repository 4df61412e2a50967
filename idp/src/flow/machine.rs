//! Connecting with no browser: as the app itself, or for a person the
//! enterprise signed in. The resource is
//! probed and discovered as for a login; the app's own client at the issuer
//! (pre-registered, configured for the resource) asks the token endpoint for
//! a token with what the app proves itself with ([`AppCredential`]): its
//! client secret (the MCP client credentials extension, RFC 6749 §4.4) or a
//! workload identity token (the MCP workload identity federation extension,
//! RFC 7523's JWT bearer grant). The grant is stored under the workload's
//! owner like any other, and new tokens are asked for the same way when
//! these expire ([`super::refresh_provider`]).

use super::{discover, parse_resource, Engine, Probed};
use crate::client::AuthMethod;
use crate::error::{Error, Result, StorageCause};
use crate::http::HttpClient;

use crate::secret::Assertion;
use crate::store::update::{update_provider, Change};
use crate::store::{Grant, GrantKind, Provider, Store};
use crate::token;
use crate::token::EnterpriseIdp;
use serde::{Deserialize, Serialize};

/// What the app presents at the token endpoint to connect a resource with
/// no browser: as itself, or for a person its enterprise signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    /// The app's own confidential client's secret: the client credentials
    /// grant.
    ClientSecret,
    /// A workload identity token (a JWT the platform the app runs on gave
    /// it, whose audience is the authorization server), presented with the
    /// JWT bearer grant; the app's client at the issuer may be public.
    Workload(Assertion),
    /// The person's ID token from the enterprise's identity provider, where
    /// they signed in to the app: exchanged there for an identity assertion
    /// authorization grant (RFC 8693), which is presented with the JWT
    /// bearer grant. No consent screen; on expiry the exchange is repeated.
    Enterprise {
        /// The identity provider.
        idp: EnterpriseIdp,
        /// The person's ID token.
        id_token: Assertion,
    },
}

impl Credential {
    fn grant_name(&self) -> &'static str {
        match self {
            Credential::ClientSecret => "client credentials grant",
            _ => "JWT bearer grant (urn:ietf:params:oauth:grant-type:jwt-bearer)",
        }
    }

    fn grant_type(&self) -> &'static str {
        match self {
            Credential::ClientSecret => "client_credentials",
            _ => token::JWT_BEARER,
        }
    }

    fn kind(&self, scope: Option<String>) -> GrantKind {
        match self.clone() {
            Credential::ClientSecret => GrantKind::ClientCredentials { scope },
            Credential::Workload(assertion) => GrantKind::JwtBearer {
                scope,
                assertion: Some(assertion),
            },
            Credential::Enterprise { idp, id_token } => GrantKind::Enterprise {
                scope,
                idp: Box::new(idp),
                id_token: Some(id_token),
            },
        }
    }
}

/// Connects `resource_url` for `owner` (a workload, or a person the
/// enterprise signed in) with no browser, with the grant `credential` calls for, asking for `scope` (else the challenge's,
/// else the resource's `scopes_supported`, else none), and stores the
/// grant. A public resource is stored as public.
///
/// Refused before any token request: a resource outside the app's client's
/// `resources` ([`Error::ClientNotAllowedForResource`]), an issuer without
/// a client of the app's ([`Error::NoAppClient`]; for the client credentials
/// grant, a confidential one), and a server whose metadata lists grant types
/// without the one asked for. A token request the server refuses is not
/// tried again, nor with another grant.
pub async fn connect_with<H: HttpClient, S: Store>(
    cx: &Engine<'_, H, S>,
    owner: &str,
    resource_url: &str,
    scope: Option<&str>,
    credential: &Credential,
) -> Result<Provider> {
    let Engine {
        http,
        store,
        settings,
        now,
    } = *cx;
    // The app's own grants use no provider profile: the probe at once.
    let (key, url) = parse_resource(&settings.policy, resource_url)?;
    let challenge = match super::probed(cx, owner, key, &url).await? {
        // As for a login: a public answer never replaces a stored grant.
        Probed::Public(p) => return Ok(*p),
        Probed::Challenged(c) => c,
    };
    let (found, server) = discover(cx, &url, challenge.as_ref()).await?;
    let key = crate::matching::ResourceKey::parse(&found.resource)?;
    let connected = [url.as_str(), found.resource.as_str()];
    let own = app_client(settings, &server, &url, &connected, credential)?;
    let scope = crate::scope::choose_scope(
        scope,
        challenge.as_ref().and_then(|c| c.scope.as_deref()),
        found
            .metadata
            .as_ref()
            .and_then(|m| m.scopes_supported.as_deref()),
    );
    let kind = credential.kind(scope);
    let grant = Grant {
        issuer: server.issuer.clone(),
        client: own.client.clone(),
        token_endpoint: server.token_endpoint.clone(),
        revocation_endpoint: server.revocation_endpoint.clone(),
        tokens: None,
        redirect_uri: None,
        rules: Default::default(),
        profile: None,
        kind,
        unreadable: None,
        refused: None,
    };
    let mut grant = grant;
    if let Some(tokens) = app_tokens(http, &grant, &found.resource, now).await {
        grant.tokens = Some(tokens?);
    }
    let provider = Provider {
        name: Provider::default_name(&key),
        key,
        resource_url: url.to_string(),
        resource: found.resource,
        metadata: serde_json::Value::Null,
        grant: Some(grant),
        created_at: now,
        account: None,
    };
    put(store, owner, provider).await
}

/// The app's own client at `server` for a grant of `credential` to the
/// resource at `url` (also known as `connected`): pre-registered there,
/// allowed for the resource, confidential for the client credentials
/// grant, at a server that offers the grant.
fn app_client<'s>(
    settings: &'s crate::settings::Settings,
    server: &crate::discovery::AuthorizationServer,
    url: &url::Url,
    connected: &[&str],
    credential: &Credential,
) -> Result<&'s crate::registration::PreRegisteredClient> {
    let no_client = || Error::NoAppClient {
        issuer: server.issuer.clone(),
        resource: url.to_string(),
    };
    let own = settings
        .clients
        .pre_registered_for(&server.issuer)
        .ok_or_else(no_client)?;
    if !own.allows(connected) {
        return Err(Error::ClientNotAllowedForResource {
            resource: url.to_string(),
            issuer: server.issuer.clone(),
        });
    }
    // A secret or a private key (`private_key_jwt`).
    let confidential =
        own.client.auth_method != AuthMethod::None && own.client.client_secret.is_some();
    if *credential == Credential::ClientSecret && !confidential {
        return Err(no_client());
    }
    let grant_type = credential.grant_type();
    if let Some(grants) = &server.metadata.grant_types_supported {
        if !grants.iter().any(|g| g == grant_type) {
            return Err(Error::InvalidResponse {
                url: server.token_endpoint.clone(),
                reason: format!(
                    "{} does not offer the {} (grant_types_supported: {grants:?})",
                    server.issuer,
                    credential.grant_name()
                ),
            });
        }
    }
    Ok(own)
}

/// New tokens for an app's grant, asked for as the first were (no refresh
/// token, no person); `None` for a person's grant.
pub(super) async fn app_tokens(
    http: &impl HttpClient,
    grant: &Grant,
    resource: &str,
    now: u64,
) -> Option<Result<crate::token::TokenSet>> {
    if grant.kind.is_authorization_code() {
        return None;
    }
    let client = match grant.client.ready(&grant.issuer, now, http) {
        Ok(client) => client,
        Err(e) => return Some(Err(e)),
    };
    let (endpoint, client) = (&grant.token_endpoint, &client);
    Some(match &grant.kind {
        GrantKind::AuthorizationCode => return None,
        GrantKind::ClientCredentials { scope } => {
            let scope = scope.as_deref();
            token::client_credentials(http, endpoint, client, Some(resource), scope, now).await
        }
        GrantKind::Enterprise {
            scope,
            idp,
            id_token,
        } => {
            let Some(id_token) = id_token else {
                return Some(Err(Error::NoRefreshToken {
                    resource: resource.to_owned(),
                }));
            };
            let scope = scope.as_deref();
            let ask = token::assertion::IdJagRequest {
                id_token,
                audience: &grant.issuer,
                resource,
                scope,
            };
            match idp.id_jag(http, &ask, now).await {
                Ok(jag) => {
                    let resource = Some(resource);
                    token::jwt_bearer(http, endpoint, client, &jag, resource, scope, now).await
                }
                Err(e) => Err(e),
            }
        }
        GrantKind::JwtBearer { scope, assertion } => {
            let Some(assertion) = assertion else {
                return Some(Err(Error::NoRefreshToken {
                    resource: resource.to_owned(),
                }));
            };
            let scope = scope.as_deref();
            token::jwt_bearer(
                http,
                endpoint,
                client,
                assertion,
                Some(resource),
                scope,
                now,
            )
            .await
        }
    })
}

/// Stores `provider` for `owner` over the row as it is now, keeping the
/// name and metadata of the one it replaces ([`update_provider`]).
async fn put(store: &impl Store, owner: &str, provider: Provider) -> Result<Provider> {
    let key = provider.key.clone();
    let decide = |now: Option<&Provider>| {
        let mut next = provider.clone();
        if let Some(p) = now {
            next.name.clone_from(&p.name);
            next.metadata.clone_from(&p.metadata);
        }
        Change::Write(Box::new(next))
    };
    let stored = update_provider(store, owner, &key, "it was stored", decide).await?;
    // A decision that always writes leaves the row it wrote.
    stored.ok_or_else(|| Error::storage(StorageCause::Conflict, format!("{key} was not stored")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Client;
    use crate::flow::{refresh_provider, RefreshReason};
    use crate::http::HttpResponse;
    use crate::matching::ResourceKey;
    use crate::registration::PreRegisteredClient;
    use crate::secret::ClientSecret;
    use crate::store::memory::MemoryStore;
    use crate::store::UserStore;
    use crate::testing::{block_on, settings, Script};
    use serde_json::json;

    const API: &str = "https://api.example/v1";

    fn server(script: Script, grants: serde_json::Value) -> Script {
        script
            .raw(
                API,
                HttpResponse::new(401, "").with_header(
                    "www-authenticate",
                    r#"Bearer resource_metadata="https://api.example/.well-known/oauth-protected-resource/v1", scope="read""#,
                ),
            )
            .json(
                "https://api.example/.well-known/oauth-protected-resource/v1",
                200,
                json!({"resource": API, "authorization_servers": ["https://as.example"]}),
            )
            .json(
                "https://as.example/.well-known/oauth-authorization-server",
                200,
                json!({
                    "issuer": "https://as.example",
                    "authorization_endpoint": "https://as.example/authorize",
                    "token_endpoint": "https://as.example/token",
                    "grant_types_supported": grants,
                }),
            )
    }

    fn token(access: &str) -> serde_json::Value {
        json!({"access_token": access, "token_type": "Bearer", "expires_in": 600, "scope": "read"})
    }

    fn app_settings(resources: &[&str]) -> crate::settings::Settings {
        let mut s = settings();
        let client = Client::confidential(
            "app",
            ClientSecret::new("s3cret"),
            crate::client::AuthMethod::ClientSecretBasic,
        );
        s.clients.pre_registered = vec![PreRegisteredClient::new(
            "https://as.example",
            client,
            resources,
        )];
        s
    }

    #[test]
    fn the_app_connects_as_itself_and_asks_again_when_rejected() {
        let script = server(Script::new(), json!(["client_credentials"]))
            .json("https://as.example/token", 200, token("t1"))
            .json("https://as.example/token", 200, token("t2"));
        let store = MemoryStore::default();
        let settings = app_settings(&[API]);
        let cx = Engine {
            http: &script,
            store: &store,
            settings: &settings,
            now: 1_000,
        };
        let p = block_on(connect_with(
            &cx,
            "app:jobs",
            API,
            None,
            &Credential::ClientSecret,
        ))
        .unwrap();
        assert_eq!(p.tokens().unwrap().access_token.secret(), "t1");
        let grant = p.grant.as_ref().unwrap();
        assert_eq!(
            grant.kind,
            GrantKind::ClientCredentials {
                scope: Some("read".into())
            }
        );
        let reqs = script.requests();
        let token_req = reqs.last().unwrap();
        let body = String::from_utf8(token_req.body.clone()).unwrap();
        assert!(body.contains("grant_type=client_credentials"), "{body}");
        assert!(
            body.contains("resource=https%3A%2F%2Fapi.example%2Fv1"),
            "{body}"
        );
        assert!(body.contains("scope=read"), "{body}");
        assert!(
            !body.contains("s3cret"),
            "the secret goes in the Basic header"
        );
        assert!(token_req
            .header("authorization")
            .unwrap()
            .starts_with("Basic "));

        // Rejected by the resource: the grant is asked for again (no refresh
        // token, no person), and stored.
        let key = ResourceKey::parse(API).unwrap();
        let new = block_on(refresh_provider(
            &script,
            &store,
            "app:jobs",
            &key,
            RefreshReason::Rejected("t1"),
            1_100,
        ))
        .unwrap()
        .unwrap();
        assert_eq!(new.access_token.secret(), "t2");
        let kept = block_on(store.provider("app:jobs", &key)).unwrap().unwrap();
        assert_eq!(kept.tokens().unwrap().access_token.secret(), "t2");
        assert_eq!(script.requests().len(), reqs.len() + 1);
    }

    #[test]
    fn a_workload_connects_with_its_identity_token_and_presents_it_again() {
        let script = server(Script::new(), json!([token::JWT_BEARER]))
            .json("https://as.example/token", 200, token("w1"))
            .json("https://as.example/token", 200, token("w2"))
            .json(
                "https://as.example/token",
                400,
                json!({"error": "invalid_grant", "error_description": "expired"}),
            );
        let store = MemoryStore::default();
        let mut settings = settings();
        settings.clients.pre_registered = vec![PreRegisteredClient::new(
            "https://as.example",
            Client::public("workload-client"),
            &[API],
        )];
        let cx = Engine {
            http: &script,
            store: &store,
            settings: &settings,
            now: 1_000,
        };
        let jwt = Credential::Workload(Assertion::new("eyJ.workload.jwt"));
        let p = block_on(connect_with(&cx, "app:jobs", API, None, &jwt)).unwrap();
        assert_eq!(p.tokens().unwrap().access_token.secret(), "w1");
        let body = |i: usize| String::from_utf8(script.requests()[i].body.clone()).unwrap();
        let first = script.requests().len() - 1;
        for part in [
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer",
            "assertion=eyJ.workload.jwt",
            "client_id=workload-client",
            "resource=https%3A%2F%2Fapi.example%2Fv1",
            "scope=read",
        ] {
            assert!(body(first).contains(part), "{part} in {}", body(first));
        }
        assert!(format!("{p:?}").contains("Assertion([redacted])"));
        assert!(!format!("{p:?}").contains("workload.jwt"));

        // Refused by the resource: the same token is presented again.
        let key = ResourceKey::parse(API).unwrap();
        let rejected = |token| {
            block_on(refresh_provider(
                &script,
                &store,
                "app:jobs",
                &key,
                RefreshReason::Rejected(token),
                1_100,
            ))
        };
        let new = rejected("w1").unwrap().unwrap();
        assert_eq!(new.access_token.secret(), "w2");
        assert!(body(first + 1).contains("assertion=eyJ.workload.jwt"));
        // Once the server no longer takes it, the workload connects again
        // (asked once, with no other grant tried).
        let e = rejected("w2").unwrap_err();
        assert!(e.report().reauthorization().is_some(), "{e}");
        assert_eq!(script.requests().len(), first + 3);

        // A server without the grant is not asked.
        let script = server(Script::new(), json!(["client_credentials"]));
        let store = MemoryStore::default();
        let cx = Engine {
            http: &script,
            store: &store,
            settings: &settings,
            now: 1_000,
        };
        let e = block_on(connect_with(&cx, "app:other", API, None, &jwt)).unwrap_err();
        assert!(e.to_string().contains("jwt-bearer"), "{e}");
        // And the client credentials grant needs a confidential client.
        let e = block_on(connect_with(
            &cx,
            "app:other",
            API,
            None,
            &Credential::ClientSecret,
        ))
        .unwrap_err();
        assert!(matches!(e, Error::NoAppClient { .. }), "{e}");
    }

    #[test]
    fn an_enterprise_user_connects_with_an_id_jag_and_the_exchange_is_repeated() {
        const IDP_TOKEN: &str = "https://idp.example/token";
        let jag = |n: &str| {
            json!({
                "access_token": n,
                "issued_token_type": token::assertion::ID_JAG_TYPE,
                "token_type": "N_A",
            })
        };
        let script = server(Script::new(), json!([token::JWT_BEARER]))
            .json(IDP_TOKEN, 200, jag("jag-1"))
            .json(IDP_TOKEN, 200, jag("jag-2"))
            .json(IDP_TOKEN, 400, json!({"error": "invalid_grant"}))
            .json("https://as.example/token", 200, token("e1"))
            .json("https://as.example/token", 200, token("e2"));
        let store = MemoryStore::default();
        let settings = app_settings(&[API]);
        let cx = Engine {
            http: &script,
            store: &store,
            settings: &settings,
            now: 1_000,
        };
        let idp = EnterpriseIdp {
            issuer: "https://idp.example".into(),
            token_endpoint: url::Url::parse(IDP_TOKEN).unwrap(),
            client: Client::public("app-at-idp"),
        };
        let credential = Credential::Enterprise {
            idp,
            id_token: Assertion::new("eyJ.person.id-token"),
        };
        let p = block_on(connect_with(&cx, "alice", API, None, &credential)).unwrap();
        assert_eq!(p.tokens().unwrap().access_token.secret(), "e1");
        let reqs = script.requests();
        let body = |r: &crate::http::HttpRequest| String::from_utf8(r.body.clone()).unwrap();
        let exchange = &reqs[reqs.len() - 2];
        assert_eq!(exchange.url.as_str(), IDP_TOKEN);
        for part in [
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange",
            "requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aid-jag",
            "subject_token=eyJ.person.id-token",
            "subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aid_token",
            "audience=https%3A%2F%2Fas.example",
            "resource=https%3A%2F%2Fapi.example%2Fv1",
            "client_id=app-at-idp",
        ] {
            assert!(
                body(exchange).contains(part),
                "{part} in {}",
                body(exchange)
            );
        }
        let bearer = reqs.last().unwrap();
        assert!(body(bearer).contains("assertion=jag-1"), "{}", body(bearer));
        assert!(bearer
            .header("authorization")
            .unwrap()
            .starts_with("Basic "));
        assert!(!format!("{p:?}").contains("person.id-token"));

        // Refused by the resource: the exchange is repeated, no browser.
        let key = ResourceKey::parse(API).unwrap();
        let rejected = |token| {
            block_on(refresh_provider(
                &script,
                &store,
                "alice",
                &key,
                RefreshReason::Rejected(token),
                1_100,
            ))
        };
        let new = rejected("e1").unwrap().unwrap();
        assert_eq!(new.access_token.secret(), "e2");
        assert!(body(script.requests().last().unwrap()).contains("assertion=jag-2"));
        // The provider no longer takes the ID token: the person signs in to
        // the app again; nothing is sent to the authorization server.
        let before = script.requests().len();
        let e = rejected("e2").unwrap_err();
        assert!(e.report().reauthorization().is_some(), "{e}");
        assert_eq!(script.requests().len(), before + 1);
        assert_eq!(script.requests().last().unwrap().url.as_str(), IDP_TOKEN);
    }

    #[test]
    fn refused_before_any_token_request() {
        // A resource outside the app's client's resources.
        let script = server(Script::new(), json!(["client_credentials"]));
        let store = MemoryStore::default();
        let settings = app_settings(&["https://api.example/other"]);
        let cx = Engine {
            http: &script,
            store: &store,
            settings: &settings,
            now: 1_000,
        };
        let e = block_on(connect_with(
            &cx,
            "app:jobs",
            API,
            None,
            &Credential::ClientSecret,
        ))
        .unwrap_err();
        assert!(
            matches!(e, Error::ClientNotAllowedForResource { .. }),
            "{e}"
        );
        // No client of the app's at the issuer.
        let script = server(Script::new(), json!(["client_credentials"]));
        let plain = crate::testing::settings();
        let cx = Engine {
            http: &script,
            store: &store,
            settings: &plain,
            now: 1_000,
        };
        let e = block_on(connect_with(
            &cx,
            "app:jobs",
            API,
            None,
            &Credential::ClientSecret,
        ))
        .unwrap_err();
        assert!(matches!(e, Error::NoAppClient { .. }), "{e}");
        // A server that does not offer the grant.
        let script = server(Script::new(), json!(["authorization_code"]));
        let store = MemoryStore::default();
        let settings = app_settings(&[API]);
        let cx = Engine {
            http: &script,
            store: &store,
            settings: &settings,
            now: 1_000,
        };
        let e = block_on(connect_with(
            &cx,
            "app:jobs",
            API,
            None,
            &Credential::ClientSecret,
        ))
        .unwrap_err();
        assert!(e.to_string().contains("client credentials"), "{e}");
        assert!(script
            .requests()
            .iter()
            .all(|r| r.url.as_str() != "https://as.example/token"));
        assert!(
            block_on(store.provider("app:jobs", &ResourceKey::parse(API).unwrap()))
                .unwrap()
                .is_none()
        );
    }
}
