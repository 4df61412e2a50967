//! Who the app is at an authorization server: a pre-registered client, a client
//! ID metadata document, or an RFC 7591 dynamic registration (cached and reused).

use crate::discovery::{read_json, AuthorizationServer};
use crate::error::{Error, OAuthError, Result};
use crate::http::{HttpClient, HttpRequest, HttpResponse};
use crate::secret::ClientSecret;
use serde::{Deserialize, Serialize};
use url::Url;

pub use crate::client::{AuthMethod, Client};

mod dynamic;
pub use dynamic::{parse_registration, registration_request};
use dynamic::{request_json, send_registration};

/// The app as it introduces itself to authorization servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// `client_name`.
    pub name: String,
    /// `software_version`.
    pub version: String,
    /// `client_uri`, a page about the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

/// A client configured in advance for one issuer (for servers without dynamic
/// registration, GitHub and Google style).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreRegisteredClient {
    /// The issuer this client belongs to.
    pub issuer: String,
    /// The client.
    pub client: Client,
    /// A readable callback id (`github`), so the redirect URI to register at
    /// the provider is `{base}{prefix}/callback/github`; by default the
    /// issuer's derived id ([`crate::callback::callback_id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_id: Option<String>,
    /// The resource URL prefixes this client is for (longest-prefix rules,
    /// as for providers). A resource outside them whose metadata names this
    /// issuer is refused ([`Error::ClientNotAllowedForResource`]): the app's
    /// client is never lent to a resource the app did not name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Use this client for any resource whose metadata names the issuer.
    /// Only for a server that binds every token to the `resource` it was
    /// asked for (RFC 8707 audience-restricted tokens), so a token got for
    /// one resource is refused everywhere else; at a server that ignores
    /// `resource` (most social and enterprise providers), any resource could
    /// get the person's token for the provider's own APIs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub any_resource: bool,
}

impl PreRegisteredClient {
    /// A client for `issuer`, used for the resources under `resources`.
    pub fn new(issuer: impl Into<String>, client: Client, resources: &[&str]) -> Self {
        Self {
            issuer: issuer.into(),
            client,
            callback_id: None,
            resources: resources.iter().map(|r| (*r).to_owned()).collect(),
            any_resource: false,
        }
    }

    /// Checks the callback id and the resources: each a URL, and at least
    /// one unless [`PreRegisteredClient::any_resource`] (a client for no
    /// resource would never be used).
    pub fn check(&self) -> std::result::Result<(), String> {
        if let Some(id) = &self.callback_id {
            crate::callback::check_id(id).map_err(|e| format!("callback_id: {e}"))?;
        }
        for r in &self.resources {
            crate::matching::ResourceKey::parse(r).map_err(|e| format!("resources: {e}"))?;
        }
        if self.resources.is_empty() && !self.any_resource {
            return Err("names no resources, so it would never be used: list the API prefixes it is for in `resources` (or set `any_resource` for a server that binds every token to the resource it was asked for)".into());
        }
        Ok(())
    }

    /// Whether this client may be used to connect every one of `urls` (the
    /// URL being connected and the resource its metadata names).
    pub fn allows(&self, urls: &[&str]) -> bool {
        client_allows(&self.resources, self.any_resource, urls)
    }
}

/// Whether a client the app owns, configured for `resources` (or for any
/// resource), may be used for every one of `urls`.
pub(crate) fn client_allows(resources: &[String], any_resource: bool, urls: &[&str]) -> bool {
    any_resource
        || urls
            .iter()
            .all(|u| crate::matching::prefixes_cover(resources, u))
}

/// How the app gets a client identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientConfig {
    /// Clients configured per issuer; these win over everything else.
    #[serde(default)]
    pub pre_registered: Vec<PreRegisteredClient>,
    /// The https URL where the app serves its client ID metadata document
    /// (rendered by [`client_metadata_document`]); the URL is the client id
    /// at every server that accepts such documents. The document lists the
    /// callback URL of each authorization server the deployment has used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_document_url: Option<Url>,
    /// Issuers at which the metadata document may be used although they do
    /// not send RFC 9207 `iss` (`"*"` for every such server). Without `iss`,
    /// a server that accepts the document cannot be told apart in the
    /// callback: the document is one client at every server, so an
    /// attacker's server that bounces the person to an honest one makes the
    /// honest server send its code to the attacker's callback URL (RFC 9700
    /// §4.4 mix-up). By default the document is used only at servers that
    /// promise `iss` (and the callback then requires it), and only their
    /// callback URLs are listed in it; list a server here only when you
    /// trust every server you allow with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metadata_document_without_iss: Vec<String>,
    /// Issuers known to support PKCE S256 although their metadata does not
    /// say so (without it, such servers are refused).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assume_pkce: Vec<String>,
}

impl ClientConfig {
    /// The pre-registered client for an issuer, if any.
    pub fn pre_registered_for(&self, issuer: &str) -> Option<&PreRegisteredClient> {
        self.pre_registered
            .iter()
            .find(|p| same_url(&p.issuer, issuer))
    }

    /// Checks that PKCE S256 can be relied on at `server`: its metadata lists
    /// S256 (a list without it was already refused by discovery), or the
    /// issuer is listed in [`ClientConfig::assume_pkce`].
    pub fn check_pkce(&self, server: &AuthorizationServer) -> Result<()> {
        let listed = server
            .metadata
            .code_challenge_methods_supported
            .as_ref()
            .is_some_and(|m| m.iter().any(|m| m == crate::pkce::S256));
        if listed || self.assume_pkce.iter().any(|i| same_url(i, &server.issuer)) {
            Ok(())
        } else {
            Err(Error::PkceUnsupported {
                issuer: server.issuer.clone(),
            })
        }
    }

    /// Whether the metadata document may be used at a server: it accepts
    /// such documents, and it promises RFC 9207 `iss` or is listed in
    /// [`ClientConfig::metadata_document_without_iss`].
    pub fn metadata_document_usable(&self, server: &AuthorizationServer) -> bool {
        self.metadata_document_url.is_some()
            && server.metadata.client_id_metadata_document_supported
            && self.metadata_document_lists(&DocumentIssuer {
                issuer: server.issuer.clone(),
                iss: server
                    .metadata
                    .authorization_response_iss_parameter_supported,
            })
    }

    /// Whether the metadata document lists the callback URL of a server
    /// that accepts it: one that promises `iss` (whose callbacks require
    /// it), or one trusted without it.
    pub fn metadata_document_lists(&self, server: &DocumentIssuer) -> bool {
        server.iss
            || self
                .metadata_document_without_iss
                .iter()
                .any(|i| i == "*" || same_url(i, &server.issuer))
    }

    /// The callback id of an issuer: the configured readable one, else the
    /// derived one.
    pub fn callback_id(&self, issuer: &str) -> String {
        self.pre_registered_for(issuer)
            .and_then(|p| p.callback_id.clone())
            .unwrap_or_else(|| crate::callback::callback_id(issuer))
    }
}

/// A server that accepts client ID metadata documents, as the registry
/// knows it: what decides whether the document lists its callback URL
/// ([`ClientConfig::metadata_document_lists`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentIssuer {
    /// The issuer.
    pub issuer: String,
    /// Whether it promises RFC 9207 `iss` in its callbacks.
    pub iss: bool,
}

/// A dynamic registration, cacheable per (issuer, redirect URI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The issuer that registered the client.
    pub issuer: String,
    /// The redirect URI registered.
    pub redirect_uri: String,
    /// The client.
    pub client: Client,
    /// When the secret expires (seconds since the epoch); `None` for never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_expires_at: Option<u64>,
    /// The scopes the client registered with (RFC 7591 `scope`), when it
    /// did: servers that grant only registered scopes need a new
    /// registration for more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Where and how to update it (RFC 7592), when the server said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management: Option<Management>,
}

/// An RFC 7592 registration management endpoint and its access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Management {
    /// `registration_client_uri`.
    pub uri: Url,
    /// `registration_access_token`.
    pub access_token: crate::secret::RegistrationAccessToken,
}

impl Registration {
    /// Whether this registration can be used at `now` for the issuer and
    /// redirect URI (its secret, if any, valid for at least another minute).
    pub fn usable_for(&self, issuer: &str, redirect_uri: &str, now: u64) -> bool {
        self.issuer == issuer
            && self.redirect_uri == redirect_uri
            && self
                .secret_expires_at
                .is_none_or(|t| t > now.saturating_add(60))
    }

    /// Whether it was registered for every scope of `scope` (a registration
    /// that named no scopes is taken to allow any).
    pub fn covers_scope(&self, scope: Option<&str>) -> bool {
        match &self.scope {
            None => true,
            Some(registered) => crate::scope::scopes_cover(Some(registered), scope),
        }
    }
}

/// RFC 7591 / OpenID Connect `application_type`: `native` for a loopback
/// `http` redirect URI (servers refuse loopback redirects for web clients),
/// `web` otherwise.
pub fn application_type(redirect_uri: &Url) -> &'static str {
    if redirect_uri.scheme() == "http" && crate::policy::is_loopback(redirect_uri) {
        "native"
    } else {
        "web"
    }
}

/// Where a client identity came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientSource {
    /// Configured in advance.
    PreRegistered,
    /// A client ID metadata document URL.
    MetadataDocument,
    /// A cached dynamic registration.
    CachedRegistration,
}

/// What to do for a client identity at a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientPlan {
    /// Use this client.
    Ready(Client, ClientSource),
    /// Send this registration request and pass its response to
    /// [`parse_registration`].
    Register(HttpRequest),
    /// Send this RFC 7592 update of a cached registration (for more scopes)
    /// and pass its response to [`parse_registration`]; the cached
    /// registration's management endpoint is kept when the answer has none.
    Update(HttpRequest, Box<Management>),
}

fn same_url(a: &str, b: &str) -> bool {
    match (Url::parse(a), Url::parse(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Chooses the client identity: a pre-registered client for the issuer; else the
/// metadata document URL when the server accepts those; else a usable cached
/// registration; else a registration request. [`Error::NoClient`] when the server
/// offers none of these.
///
/// `scope` is what the client will ask for: a cached registration that did
/// not register all of it is not reused, and a new registration names the
/// union of both.
pub fn choose_client(
    server: &AuthorizationServer,
    config: &ClientConfig,
    info: &ClientInfo,
    cached: Option<&Registration>,
    redirect_uri: &Url,
    scope: Option<&str>,
    now: u64,
) -> Result<ClientPlan> {
    if let Some(p) = config.pre_registered_for(&server.issuer) {
        return Ok(ClientPlan::Ready(
            p.client.clone(),
            ClientSource::PreRegistered,
        ));
    }
    // A metadata document names redirect URIs and the code grant only.
    let device = crate::client::is_device_redirect(redirect_uri);
    if let Some(url) = config.metadata_document_url.as_ref().filter(|_| !device) {
        if config.metadata_document_usable(server) {
            return Ok(ClientPlan::Ready(
                Client::public(url.as_str()),
                ClientSource::MetadataDocument,
            ));
        }
    }
    let usable = cached.filter(|r| r.usable_for(&server.issuer, redirect_uri.as_str(), now));
    if let Some(r) = usable.filter(|r| r.covers_scope(scope)) {
        return Ok(ClientPlan::Ready(
            r.client.clone(),
            ClientSource::CachedRegistration,
        ));
    }
    // Register (again) for the scopes held so far and the new ones: by
    // updating the registration where the server offers RFC 7592.
    let scope = crate::scope::union_scopes(usable.and_then(|r| r.scope.as_deref()), scope);
    if let Some((r, m)) = usable.and_then(|r| r.management.as_ref().map(|m| (r, m))) {
        let mut req = registration_request(
            &m.uri,
            info,
            redirect_uri,
            r.client.auth_method,
            scope.as_deref(),
        );
        req.method = crate::http::Method::Put;
        let mut body = request_json(&req.body);
        body["client_id"] = r.client.client_id.clone().into();
        if let Some(secret) = &r.client.client_secret {
            body["client_secret"] = secret.secret().into();
        }
        req.body = body.to_string().into_bytes();
        req.headers.push((
            "authorization".into(),
            format!("Bearer {}", m.access_token.secret()),
        ));
        return Ok(ClientPlan::Update(req, Box::new(m.clone())));
    }
    match &server.registration_endpoint {
        Some(endpoint) => Ok(ClientPlan::Register(registration_request(
            endpoint,
            info,
            redirect_uri,
            preferred_auth_method(server),
            scope.as_deref(),
        ))),
        None => Err(Error::NoClient {
            issuer: server.issuer.clone(),
        }),
    }
}

/// `none` when the server allows it (or does not say), else the first secret
/// method it supports.
fn preferred_auth_method(server: &AuthorizationServer) -> AuthMethod {
    match &server.metadata.token_endpoint_auth_methods_supported {
        None => AuthMethod::None,
        Some(list) => [
            AuthMethod::None,
            AuthMethod::ClientSecretBasic,
            AuthMethod::ClientSecretPost,
        ]
        .into_iter()
        .find(|m| list.iter().any(|s| s == m.as_str()))
        .unwrap_or(AuthMethod::None),
    }
}

/// What a client is wanted for: the redirect URI and scope it will be used
/// with, and the registration cached for them, if any.
#[derive(Debug, Clone, Copy)]
pub struct ClientRequest<'a> {
    /// The cached registration at this server for `redirect_uri`.
    pub cached: Option<&'a Registration>,
    /// The redirect URI the flow will use.
    pub redirect_uri: &'a Url,
    /// The scope it will ask for.
    pub scope: Option<&'a str>,
}

/// Gets a client for a server: [`choose_client`], then registers when needed.
/// Returns the client and, when it registered, the new registration to cache.
pub async fn obtain_client(
    http: &impl HttpClient,
    server: &AuthorizationServer,
    config: &ClientConfig,
    info: &ClientInfo,
    request: &ClientRequest<'_>,
    now: u64,
) -> Result<(Client, Option<Registration>)> {
    let ClientRequest {
        cached,
        redirect_uri,
        scope,
    } = *request;
    match choose_client(server, config, info, cached, redirect_uri, scope, now)? {
        ClientPlan::Ready(client, _) => Ok((client, None)),
        ClientPlan::Register(req) => {
            let reg = send_registration(http, req, &server.issuer, redirect_uri).await?;
            Ok((reg.client.clone(), Some(reg)))
        }
        ClientPlan::Update(req, management) => {
            let scope = request_json(&req.body)["scope"].as_str().map(str::to_owned);
            match send_registration(http, req, &server.issuer, redirect_uri).await {
                Ok(mut reg) => {
                    reg.management.get_or_insert(*management);
                    Ok((reg.client.clone(), Some(reg)))
                }
                // Some servers hand out a management URI but take no
                // updates: register again instead.
                Err(Error::Registration { .. } | Error::InvalidResponse { .. }) => {
                    let endpoint =
                        server
                            .registration_endpoint
                            .as_ref()
                            .ok_or_else(|| Error::NoClient {
                                issuer: server.issuer.clone(),
                            })?;
                    let req = registration_request(
                        endpoint,
                        info,
                        redirect_uri,
                        preferred_auth_method(server),
                        scope.as_deref(),
                    );
                    let reg = send_registration(http, req, &server.issuer, redirect_uri).await?;
                    Ok((reg.client.clone(), Some(reg)))
                }
                Err(e) => Err(e),
            }
        }
    }
}

/// The client ID metadata document to serve at `client_id` (the URL itself is
/// the client id).
pub fn client_metadata_document(
    client_id: &Url,
    info: &ClientInfo,
    redirect_uris: &[Url],
) -> serde_json::Value {
    let mut doc = serde_json::json!({
        "client_id": client_id.as_str(),
        "client_name": info.name,
        "software_version": info.version,
        "redirect_uris": redirect_uris.iter().map(Url::as_str).collect::<Vec<_>>(),
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    if let Some(uri) = &info.uri {
        doc["client_uri"] = uri.as_str().into();
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::ServerMetadata;

    fn server(extra: serde_json::Value) -> AuthorizationServer {
        let mut doc = serde_json::json!({
            "issuer": "https://as.example",
            "authorization_endpoint": "https://as.example/authorize",
            "token_endpoint": "https://as.example/token",
            "registration_endpoint": "https://as.example/register",
        });
        for (k, v) in extra.as_object().unwrap() {
            doc[k] = v.clone();
        }
        let meta: ServerMetadata = serde_json::from_value(doc).unwrap();
        crate::discovery::check_server_metadata(
            meta,
            &crate::issuer::Issuer::parse("https://as.example").unwrap(),
            &Default::default(),
        )
        .unwrap()
    }

    fn info() -> ClientInfo {
        ClientInfo {
            name: "Demo".into(),
            version: "1.2.3".into(),
            uri: None,
        }
    }

    fn redirect() -> Url {
        Url::parse("https://app.example/oauth/callback").unwrap()
    }

    #[test]
    fn registration_request_body() {
        let s = server(serde_json::json!({}));
        let ClientPlan::Register(req) =
            choose_client(&s, &Default::default(), &info(), None, &redirect(), None, 0).unwrap()
        else {
            panic!("expected a registration")
        };
        assert_eq!(req.url.as_str(), "https://as.example/register");
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            body["redirect_uris"][0],
            "https://app.example/oauth/callback"
        );
        assert_eq!(
            body["grant_types"],
            serde_json::json!(["authorization_code", "refresh_token"])
        );
        assert_eq!(body["response_types"], serde_json::json!(["code"]));
        assert_eq!(body["token_endpoint_auth_method"], "none");
        assert_eq!(body["client_name"], "Demo");
        assert_eq!(body["software_version"], "1.2.3");
    }

    #[test]
    fn auth_method_preference() {
        let s = server(
            serde_json::json!({"token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"]}),
        );
        let ClientPlan::Register(req) =
            choose_client(&s, &Default::default(), &info(), None, &redirect(), None, 0).unwrap()
        else {
            panic!()
        };
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["token_endpoint_auth_method"], "client_secret_basic");
    }

    #[test]
    fn honours_what_the_server_returns() {
        let ep = Url::parse("https://as.example/register").unwrap();
        let resp = HttpResponse::new(
            201,
            r#"{"client_id":"c1","client_secret":"s3cr3t","client_secret_expires_at":2000,"token_endpoint_auth_method":"client_secret_post"}"#,
        );
        let r = parse_registration(&ep, &resp, "https://as.example", &redirect(), None).unwrap();
        assert_eq!(r.client.auth_method, AuthMethod::ClientSecretPost);
        assert_eq!(r.client.client_secret.as_ref().unwrap().secret(), "s3cr3t");
        assert_eq!(r.secret_expires_at, Some(2000));
        assert!(r.usable_for("https://as.example", redirect().as_str(), 1000));
        assert!(!r.usable_for("https://as.example", redirect().as_str(), 1990));
        assert!(!r.usable_for("https://other.example", redirect().as_str(), 0));
        assert!(!r.usable_for("https://as.example", "https://app.example/other", 0));
        assert!(!format!("{r:?}").contains("s3cr3t"));

        let resp = HttpResponse::new(
            201,
            r#"{"client_id":"c2","client_secret":"x","client_secret_expires_at":0}"#,
        );
        let r = parse_registration(&ep, &resp, "https://as.example", &redirect(), None).unwrap();
        assert_eq!(r.client.auth_method, AuthMethod::ClientSecretBasic);
        assert_eq!(r.secret_expires_at, None);
    }

    #[test]
    fn registration_errors() {
        let ep = Url::parse("https://as.example/register").unwrap();
        let e = parse_registration(
            &ep,
            &HttpResponse::new(
                400,
                r#"{"error":"invalid_redirect_uri","error_description":"nope"}"#,
            ),
            "https://as.example",
            &redirect(),
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "client registration at https://as.example/register failed: HTTP 400, invalid_redirect_uri (nope)"
        );
        for body in [
            "not json",
            "{}",
            r#"{"client_id":""}"#,
            r#"{"client_id":"a","token_endpoint_auth_method":"private_key_jwt"}"#,
            r#"{"client_id":"a","token_endpoint_auth_method":"client_secret_basic"}"#,
        ] {
            assert!(
                parse_registration(
                    &ep,
                    &HttpResponse::new(201, body),
                    "https://as.example",
                    &redirect(),
                    None,
                )
                .is_err(),
                "{body}"
            );
        }
    }

    /// A client for the device flow registers the device grant and no
    /// redirect URI, and is never a client ID metadata document (which
    /// names redirect URIs and the code grant only).
    #[test]
    fn a_device_client_registers_the_device_grant_without_redirects() {
        let ep = Url::parse("https://as.example/register").unwrap();
        let device = crate::client::device_redirect();
        let req = registration_request(&ep, &info(), &device, AuthMethod::None, Some("read"));
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            body["grant_types"],
            serde_json::json!([crate::client::DEVICE_CODE_GRANT, "refresh_token"])
        );
        assert!(body.get("redirect_uris").is_none(), "{body}");
        assert_eq!(body["response_types"], serde_json::json!([]));
        assert_eq!(body["application_type"], "native");
        let server = server(serde_json::json!({
            "client_id_metadata_document_supported": true,
            "authorization_response_iss_parameter_supported": true,
        }));
        let config = ClientConfig {
            metadata_document_url: Some(Url::parse("https://app.example/client.json").unwrap()),
            ..Default::default()
        };
        let browser = choose_client(&server, &config, &info(), None, &redirect(), None, 0);
        assert!(
            matches!(
                browser,
                Ok(ClientPlan::Ready(_, ClientSource::MetadataDocument))
            ),
            "{browser:?}"
        );
        let plan = choose_client(&server, &config, &info(), None, &device, None, 0).unwrap();
        assert!(matches!(plan, ClientPlan::Register(_)), "{plan:?}");
    }

    /// A server that grants only registered scopes gets them at
    /// registration; a cached registration lacking a scope is replaced by
    /// one for the union; the application type follows the redirect URI.
    #[test]
    fn registration_carries_scopes_and_the_application_type() {
        let ep = Url::parse("https://as.example/register").unwrap();
        let loopback = Url::parse("http://127.0.0.1:8787/oauth/callback/x").unwrap();
        let body = |r: &HttpRequest| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap();
        let req = registration_request(&ep, &info(), &loopback, AuthMethod::None, Some("read"));
        assert_eq!(body(&req)["application_type"], "native");
        assert_eq!(body(&req)["scope"], "read");
        let req = registration_request(&ep, &info(), &redirect(), AuthMethod::None, None);
        assert_eq!(body(&req)["application_type"], "web");
        assert!(body(&req).get("scope").is_none());

        let s = server(serde_json::json!({}));
        let cached = Registration {
            issuer: "https://as.example".into(),
            redirect_uri: redirect().to_string(),
            client: Client::public("c1"),
            secret_expires_at: None,
            scope: Some("read".into()),
            management: None,
        };
        let plan = |scope| {
            choose_client(
                &s,
                &Default::default(),
                &info(),
                Some(&cached),
                &redirect(),
                scope,
                0,
            )
            .unwrap()
        };
        assert!(matches!(plan(Some("read")), ClientPlan::Ready(..)));
        let ClientPlan::Register(req) = plan(Some("write")) else {
            panic!("a registration without `write` is not reused")
        };
        assert_eq!(body(&req)["scope"], "read write");
        // With RFC 7592 management, the registration is updated instead.
        let managed = Registration {
            management: Some(Management {
                uri: Url::parse("https://as.example/register/c1").unwrap(),
                access_token: crate::secret::RegistrationAccessToken::new("rat-1"),
            }),
            ..cached.clone()
        };
        let update = choose_client(
            &s,
            &Default::default(),
            &info(),
            Some(&managed),
            &redirect(),
            Some("write"),
            0,
        );
        let ClientPlan::Update(req, _) = update.unwrap() else {
            panic!("an update")
        };
        assert_eq!(req.method, crate::http::Method::Put);
        assert_eq!(req.url.as_str(), "https://as.example/register/c1");
        assert_eq!(body(&req)["client_id"], "c1");
        assert_eq!(body(&req)["scope"], "read write");
        assert!(req
            .headers
            .iter()
            .any(|(n, v)| n == "authorization" && v == "Bearer rat-1"));
        assert!(
            !format!("{managed:?}").contains("rat-1"),
            "redacted in Debug"
        );
        // A registration that named no scope is taken to allow any.
        let open = Registration {
            scope: None,
            ..cached.clone()
        };
        let reused = choose_client(
            &s,
            &Default::default(),
            &info(),
            Some(&open),
            &redirect(),
            Some("write"),
            0,
        );
        assert!(matches!(reused.unwrap(), ClientPlan::Ready(..)));
        // What the server answers it registered is recorded, else what was asked.
        let resp = HttpResponse::new(201, r#"{"client_id":"n","scope":"read write admin"}"#);
        let r = parse_registration(
            &ep,
            &resp,
            "https://as.example",
            &redirect(),
            Some("read write"),
        )
        .unwrap();
        assert_eq!(r.scope.as_deref(), Some("read write admin"));
        let resp = HttpResponse::new(201, r#"{"client_id":"n"}"#);
        let r = parse_registration(&ep, &resp, "https://as.example", &redirect(), Some("read"))
            .unwrap();
        assert_eq!(r.scope.as_deref(), Some("read"));
        assert_eq!(r.management, None);
        let resp = HttpResponse::new(
            201,
            r#"{"client_id":"n","registration_client_uri":"https://as.example/register/n","registration_access_token":"rat-2"}"#,
        );
        let r = parse_registration(&ep, &resp, "https://as.example", &redirect(), None).unwrap();
        assert_eq!(
            r.management.unwrap().uri.as_str(),
            "https://as.example/register/n"
        );
        // A management URI on another origin is not used.
        let resp = HttpResponse::new(
            201,
            r#"{"client_id":"n","registration_client_uri":"https://collector.example/n","registration_access_token":"rat-2"}"#,
        );
        let r = parse_registration(&ep, &resp, "https://as.example", &redirect(), None).unwrap();
        assert_eq!(r.management, None);
    }

    #[test]
    fn choice_order() {
        let cimd = Url::parse("https://app.example/client.json").unwrap();
        let pre = PreRegisteredClient {
            issuer: "https://as.example/".into(),
            client: Client::confidential(
                "gh",
                ClientSecret::new("x"),
                AuthMethod::ClientSecretPost,
            ),
            callback_id: None,
            resources: vec!["https://api.example".into()],
            any_resource: false,
        };
        let cached = Registration {
            issuer: "https://as.example".into(),
            redirect_uri: redirect().to_string(),
            client: Client::public("cached"),
            secret_expires_at: None,
            scope: None,
            management: None,
        };
        let s = server(
            serde_json::json!({"client_id_metadata_document_supported": true,
            "authorization_response_iss_parameter_supported": true}),
        );
        let all = ClientConfig {
            pre_registered: vec![pre],
            metadata_document_url: Some(cimd.clone()),
            ..Default::default()
        };
        let plan = |cfg: &ClientConfig, s: &AuthorizationServer, c: Option<&Registration>| {
            choose_client(s, cfg, &info(), c, &redirect(), None, 0).unwrap()
        };
        assert!(
            matches!(plan(&all, &s, Some(&cached)), ClientPlan::Ready(c, ClientSource::PreRegistered) if c.client_id == "gh")
        );
        let no_pre = ClientConfig {
            pre_registered: vec![],
            ..all.clone()
        };
        assert!(
            matches!(plan(&no_pre, &s, Some(&cached)), ClientPlan::Ready(c, ClientSource::MetadataDocument)
                if c.client_id == cimd.as_str())
        );
        let plain = server(serde_json::json!({}));
        assert!(
            matches!(plan(&no_pre, &plain, Some(&cached)), ClientPlan::Ready(c, ClientSource::CachedRegistration) if c.client_id == "cached")
        );
        assert!(matches!(
            plan(&no_pre, &plain, None),
            ClientPlan::Register(_)
        ));

        let mut closed = server(serde_json::json!({}));
        closed.registration_endpoint = None;
        let e = choose_client(
            &closed,
            &Default::default(),
            &info(),
            None,
            &redirect(),
            None,
            0,
        )
        .unwrap_err();
        assert!(matches!(e, Error::NoClient { .. }));
    }

    /// RFC 9700 §4.4 with one client at every server: the document is used
    /// only where the callback can be told apart by `iss`, or where the
    /// deployment trusts the server without it.
    #[test]
    fn the_metadata_document_is_used_only_where_iss_binds_the_callback() {
        let cimd = Url::parse("https://app.example/client.json").unwrap();
        let without_iss =
            server(serde_json::json!({"client_id_metadata_document_supported": true}));
        let with_iss = server(
            serde_json::json!({"client_id_metadata_document_supported": true,
            "authorization_response_iss_parameter_supported": true}),
        );
        let config = ClientConfig {
            metadata_document_url: Some(cimd),
            ..Default::default()
        };
        assert!(config.metadata_document_usable(&with_iss));
        assert!(!config.metadata_document_usable(&without_iss));
        let plan =
            choose_client(&without_iss, &config, &info(), None, &redirect(), None, 0).unwrap();
        assert!(matches!(plan, ClientPlan::Register(_)), "{plan:?}");
        let listed = |iss| DocumentIssuer {
            issuer: "https://as.example".into(),
            iss,
        };
        assert!(config.metadata_document_lists(&listed(true)));
        assert!(!config.metadata_document_lists(&listed(false)));

        for trusted in ["https://as.example/", "*"] {
            let config = ClientConfig {
                metadata_document_without_iss: vec![trusted.into()],
                ..config.clone()
            };
            assert!(config.metadata_document_usable(&without_iss), "{trusted}");
            assert!(config.metadata_document_lists(&listed(false)), "{trusted}");
        }
        let elsewhere = ClientConfig {
            metadata_document_without_iss: vec!["https://other.example".into()],
            ..config.clone()
        };
        assert!(!elsewhere.metadata_document_usable(&without_iss));
        let none = ClientConfig {
            metadata_document_url: None,
            ..config
        };
        assert!(!none.metadata_document_usable(&with_iss));
    }

    #[test]
    fn metadata_document() {
        let id = Url::parse("https://app.example/client.json").unwrap();
        let doc = client_metadata_document(&id, &info(), &[redirect()]);
        assert_eq!(doc["client_id"], "https://app.example/client.json");
        assert_eq!(
            doc["redirect_uris"][0],
            "https://app.example/oauth/callback"
        );
        assert_eq!(doc["token_endpoint_auth_method"], "none");
    }
}
