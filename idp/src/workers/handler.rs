//! The Worker side: configuration, the OAuth middleware and the handler API.

use super::fetch::AuthedFetch;
use super::object::{call_object, user_object_name};
use super::pages;
use super::protocol::{
    fingerprint, AuthorizationReply, Call, CallbackReply, LoginReply, ProviderView, RefreshOutcome,
    RemoteError, RemoveOutcome, WireSettings,
};
use crate::registration::{Client, ClientConfig, ClientInfo, PreRegisteredClient};
use crate::store::Provider;
use serde::{Deserialize, Serialize};
use url::Url;
use worker::{Env, Method, Request, Response};

/// The Durable Object binding name used unless configured otherwise.
pub const DEFAULT_BINDING: &str = "OAuthProviders";

/// How the SDK is set up for a Worker.
///
/// ```
/// use idp::workers::Config;
///
/// let config = Config::new("My app", "1.0.0")
///     .prefix("/oauth")
///     .allow_insecure_loopback(false);
/// assert_eq!(config.prefix, "/oauth");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// How the app introduces itself to authorization servers.
    pub client_info: ClientInfo,
    /// Where the middleware's routes live (default `/oauth`).
    pub prefix: String,
    /// The public base URL; defaults to each request's origin.
    pub base_url: Option<Url>,
    /// Pre-registered clients and the client ID metadata document URL.
    pub clients: ClientConfig,
    /// Accept `http://` loopback authorization servers and resources
    /// (local development only).
    pub allow_insecure_loopback: bool,
    /// Accept resource metadata that claims a broader resource than the URL
    /// connected without RFC 9728 §3.3's exact match (see
    /// [`crate::policy::Policy::allow_broader_resource`] for the risk).
    #[serde(default)]
    pub allow_broader_resource: bool,
    /// The Durable Object binding (default `OAuthProviders`).
    pub binding: String,
    /// Where pages link back to (default `/`).
    pub return_to: String,
    /// How long each outbound request (discovery, registration, token,
    /// revocation, and every [`AuthedFetch`] hop) may take, body included, in
    /// milliseconds; default [`super::DEFAULT_TIMEOUT_MS`] (10 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
}

impl Config {
    /// A configuration with defaults for everything but the client info.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Config {
            client_info: ClientInfo {
                name: name.into(),
                version: version.into(),
                uri: None,
            },
            prefix: "/oauth".into(),
            base_url: None,
            clients: ClientConfig::default(),
            allow_insecure_loopback: false,
            allow_broader_resource: false,
            binding: DEFAULT_BINDING.into(),
            return_to: "/".into(),
            timeout_ms: None,
        }
    }

    /// Sets the route prefix (leading slash, no trailing slash).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = normalize_prefix(&prefix.into());
        self
    }

    /// Sets the public base URL.
    pub fn base_url(mut self, url: Url) -> Self {
        self.base_url = Some(url);
        self
    }

    /// Adds a pre-registered client for an issuer.
    pub fn pre_registered(mut self, issuer: impl Into<String>, client: Client) -> Self {
        self.clients.pre_registered.push(PreRegisteredClient {
            issuer: issuer.into(),
            client,
            callback_id: None,
        });
        self
    }

    /// Adds a pre-registered client whose callback URL uses a readable id:
    /// `{base}{prefix}/callback/{callback_id}` (for example `github`). An id
    /// that is not 1 to 40 ASCII letters, digits, `-` or `_` is an error.
    pub fn pre_registered_with_callback(
        mut self,
        issuer: impl Into<String>,
        client: Client,
        callback_id: &str,
    ) -> Result<Self, crate::Error> {
        crate::callback::check_id(callback_id)?;
        self.clients.pre_registered.push(PreRegisteredClient {
            issuer: issuer.into(),
            client,
            callback_id: Some(callback_id.to_owned()),
        });
        Ok(self)
    }

    /// Uses a client ID metadata document at `url`, the client id at servers
    /// that accept such documents (served by this Worker, to anyone, when the
    /// URL is on it).
    pub fn metadata_document_url(mut self, url: Url) -> Self {
        self.clients.metadata_document_url = Some(url);
        self
    }

    /// Accepts resource metadata that claims a broader resource than the URL
    /// connected, without RFC 9728 §3.3's exact match. Only for hosts where
    /// every path belongs to one party: otherwise one path can claim the
    /// whole host and receive tokens meant for the others.
    pub fn allow_broader_resource(mut self, allow: bool) -> Self {
        self.allow_broader_resource = allow;
        self
    }

    /// Trusts that `issuer` supports PKCE S256 although its metadata does not
    /// list it in `code_challenge_methods_supported` (such servers are
    /// otherwise refused).
    pub fn assume_pkce(mut self, issuer: impl Into<String>) -> Self {
        self.clients.assume_pkce.push(issuer.into());
        self
    }

    /// Allows `http://` on loopback hosts (development only).
    pub fn allow_insecure_loopback(mut self, allow: bool) -> Self {
        self.allow_insecure_loopback = allow;
        self
    }

    /// Sets the timeout of every outbound request, body included (default
    /// 10 s; at least 1 ms).
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        let ms = u32::try_from(timeout.as_millis())
            .unwrap_or(u32::MAX)
            .max(1);
        self.timeout_ms = Some(ms);
        self
    }

    /// Sets the Durable Object binding name.
    pub fn binding(mut self, binding: impl Into<String>) -> Self {
        self.binding = binding.into();
        self
    }

    /// Applies the Worker's variables: `IDP_ALLOW_INSECURE_LOOPBACK` (`true` to
    /// allow), `IDP_BASE_URL`, `IDP_TIMEOUT_MS`, `IDP_CLIENT_METADATA_URL`
    /// (see [`Config::metadata_document_url`]) and `IDP_PRE_REGISTERED`, a
    /// JSON list of clients configured in advance:
    /// `[{"issuer": "https://as.example", "client_id": "...",
    /// "client_secret_name": "AS_EXAMPLE_SECRET", "auth_method":
    /// "client_secret_basic", "callback_id": "as-example"}]`, where the
    /// secret is named (a Workers secret), never written inline; only
    /// `issuer` and `client_id` are required. A bad list is reported in the
    /// log and ignored.
    pub fn with_env(mut self, env: &Env) -> Self {
        if let Ok(v) = env.var("IDP_ALLOW_INSECURE_LOOPBACK") {
            self.allow_insecure_loopback = v.to_string().trim().eq_ignore_ascii_case("true");
        }
        if let Some(u) = env
            .var("IDP_BASE_URL")
            .ok()
            .and_then(|v| Url::parse(&v.to_string()).ok())
        {
            self.base_url = Some(u);
        }
        if let Some(ms) = env
            .var("IDP_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.to_string().trim().parse::<u32>().ok())
            .filter(|ms| *ms > 0)
        {
            self.timeout_ms = Some(ms);
        }
        // A string, or (from wrangler.toml or `--var`) already JSON.
        let pre_registered = env
            .var("IDP_PRE_REGISTERED")
            .map(|v| v.to_string())
            .or_else(|_| {
                env.object_var::<serde_json::Value>("IDP_PRE_REGISTERED")
                    .map(|v| v.to_string())
            });
        if let Ok(json) = pre_registered {
            match pre_registered_from_json(&json, env) {
                Ok(list) => self.clients.pre_registered.extend(list),
                Err(e) => worker::console_error!("idp: IDP_PRE_REGISTERED ignored: {e}"),
            }
        }
        if let Some(u) = env
            .var("IDP_CLIENT_METADATA_URL")
            .ok()
            .and_then(|v| Url::parse(&v.to_string()).ok())
        {
            self.clients.metadata_document_url = Some(u);
        }
        self
    }
}

/// One entry of `IDP_PRE_REGISTERED`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreRegisteredVar {
    issuer: String,
    client_id: String,
    #[serde(default)]
    client_secret_name: Option<String>,
    #[serde(default)]
    auth_method: Option<crate::registration::AuthMethod>,
    #[serde(default)]
    callback_id: Option<String>,
}

fn pre_registered_from_json(json: &str, env: &Env) -> Result<Vec<PreRegisteredClient>, String> {
    let entries: Vec<PreRegisteredVar> =
        serde_json::from_str(json).map_err(|e| format!("not a valid list: {e}"))?;
    entries
        .into_iter()
        .map(|e| {
            if let Some(id) = &e.callback_id {
                crate::callback::check_id(id).map_err(|err| format!("callback_id: {err}"))?;
            }
            let secret = match &e.client_secret_name {
                Some(name) => Some(
                    env.secret(name)
                        .or_else(|_| env.var(name))
                        .map_err(|_| format!("client_secret_name: no secret named {name:?}"))?
                        .to_string(),
                ),
                None => None,
            };
            let client = match secret {
                Some(secret) => Client::confidential(
                    e.client_id,
                    crate::secret::ClientSecret::new(secret),
                    e.auth_method
                        .unwrap_or(crate::registration::AuthMethod::ClientSecretBasic),
                ),
                None => Client::public(e.client_id),
            };
            Ok(PreRegisteredClient {
                issuer: e.issuer,
                client,
                callback_id: e.callback_id,
            })
        })
        .collect()
}

fn normalize_prefix(p: &str) -> String {
    let p = p.trim().trim_matches('/');
    if p.is_empty() {
        String::new()
    } else {
        format!("/{p}")
    }
}

/// Why the person must (re-)authorize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// No provider is connected for the URL.
    NeverConnected,
    /// The token expired and cannot be refreshed.
    Expired,
    /// The server refused the token or the refresh token.
    Revoked,
    /// The token lacks a scope the resource requires.
    InsufficientScope,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reason::NeverConnected => "never connected",
            Reason::Expired => "the token expired and cannot be refreshed",
            Reason::Revoked => "the server no longer accepts the token",
            Reason::InsufficientScope => "the token lacks a required scope",
        })
    }
}

/// The person must (re-)authorize: where to send them, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequired {
    /// The resource (or URL) that needs authorization.
    pub resource: String,
    /// Opening this URL connects the resource again (with the union of scopes
    /// for step-up).
    pub reauthorize_url: String,
    /// Why.
    pub reason: Reason,
}

/// Errors of the Workers layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No signed-in user: the handler needs a user id.
    #[error("no user: the handler needs the id of the signed-in user")]
    NoUser,
    /// The engine refused something in the Worker.
    #[error(transparent)]
    Engine(#[from] crate::Error),
    /// The user's Durable Object answered with an error.
    #[error("{0}")]
    Remote(RemoteError),
    /// The Workers runtime failed.
    #[error("Workers runtime: {0}")]
    Runtime(String),
    /// The person must (re-)authorize.
    #[error("authorization required for {} ({})", .0.resource, .0.reason)]
    AuthorizationRequired(AuthorizationRequired),
    /// A request could not be replayed for the one retry.
    #[error("{0}")]
    NotReplayable(String),
    /// A typed response was not what was expected.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// Its status.
        status: u16,
    },
}

impl From<worker::Error> for Error {
    fn from(e: worker::Error) -> Self {
        Error::Runtime(e.to_string())
    }
}

impl From<RemoteError> for Error {
    fn from(e: RemoteError) -> Self {
        Error::Remote(e)
    }
}

impl Error {
    /// The HTTP status an app would answer with.
    pub fn status(&self) -> u16 {
        match self {
            Error::NoUser | Error::AuthorizationRequired(_) => 401,
            Error::Engine(e) => RemoteError::from(e).status,
            Error::Remote(e) => e.status,
            Error::Runtime(_) => 500,
            Error::NotReplayable(_) => 400,
            Error::Status { .. } => 502,
        }
    }

    /// A JSON response: `{"error": "authorization_required", "reauthorize_url",
    /// "reason", "resource"}` for [`Error::AuthorizationRequired`], else
    /// `{"error": code, "message"}`.
    pub fn to_response(&self) -> worker::Result<Response> {
        let body = match self {
            Error::AuthorizationRequired(a) => serde_json::json!({
                "error": "authorization_required",
                "resource": a.resource,
                "reauthorize_url": a.reauthorize_url,
                "reason": a.reason,
            }),
            Error::NoUser => serde_json::json!({"error": "no_user", "message": self.to_string()}),
            Error::Remote(e) => serde_json::json!({"error": e.code, "message": e.message}),
            _ => serde_json::json!({"error": "error", "message": self.to_string()}),
        };
        Ok(Response::from_json(&body)?.with_status(self.status()))
    }
}

/// The user's `OAuthProviders` object, reached over its internal protocol.
#[derive(Debug, Clone)]
pub struct ProvidersStub {
    env: Env,
    binding: String,
    owner: String,
    timeout_ms: Option<u32>,
}

impl ProvidersStub {
    /// The stub for `user_id`'s object under `binding`.
    pub fn new(env: &Env, binding: &str, user_id: &str) -> Result<Self, Error> {
        if user_id.trim().is_empty() {
            return Err(Error::NoUser);
        }
        Ok(Self {
            env: env.clone(),
            binding: binding.to_owned(),
            owner: user_id.to_owned(),
            timeout_ms: None,
        })
    }

    pub(crate) async fn call<T: serde::de::DeserializeOwned>(
        &self,
        call: Call,
    ) -> Result<T, Error> {
        Ok(call_object(
            &self.env,
            &self.binding,
            &user_object_name(&self.owner),
            self.timeout_ms,
            call,
        )
        .await?)
    }

    /// The `Authorization` for a URL from the longest-prefix provider
    /// (refreshed when within 5 minutes of expiry). `None` when no provider
    /// matches.
    pub(crate) async fn authorization(
        &self,
        url: &str,
    ) -> Result<Option<AuthorizationReply>, Error> {
        self.call(Call::Authorization {
            owner: self.owner.clone(),
            url: url.to_owned(),
        })
        .await
    }

    /// Reports that the resource rejected `access_token`; concurrent reports of
    /// the same token cause one refresh. Returns the header to retry with.
    pub(crate) async fn rejected(
        &self,
        key: &str,
        access_token: &str,
    ) -> Result<AuthorizationReply, Error> {
        self.call(Call::Rejected {
            owner: self.owner.clone(),
            key: key.to_owned(),
            fingerprint: fingerprint(access_token),
        })
        .await
    }

    /// The provider that serves `url` (longest matching prefix), if any.
    pub async fn find_provider(&self, url: &str) -> Result<Option<ProviderView>, Error> {
        self.call(Call::Find {
            owner: self.owner.clone(),
            url: url.to_owned(),
        })
        .await
    }

    /// How many internal calls the user's object has answered since it started
    /// (for benchmarks).
    #[doc(hidden)]
    pub async fn stats(&self) -> Result<serde_json::Value, Error> {
        self.call(Call::Stats).await
    }

    /// Stores providers directly, bypassing the flow (for seeding benchmarks
    /// and tests).
    #[doc(hidden)]
    pub async fn seed(&self, providers: Vec<Provider>) -> Result<usize, Error> {
        self.call(Call::Seed {
            owner: self.owner.clone(),
            providers,
        })
        .await
    }
}

/// One request's view of the SDK: the signed-in user, the configuration and
/// the user's object.
#[derive(Debug, Clone)]
pub struct Handler {
    config: Config,
    base: Url,
    stub: ProvidersStub,
}

/// The parameters of a login, from the query or the confirmation form.
struct LoginQuery {
    url: Option<String>,
    scope: Option<String>,
    token: Option<String>,
}

impl Handler {
    /// A handler for `user_id` (required: an empty id is [`Error::NoUser`]).
    /// The base URL is the configured one or `request_url`'s origin.
    pub fn new(
        env: &Env,
        config: &Config,
        user_id: &str,
        request_url: &Url,
    ) -> Result<Self, Error> {
        let base = match &config.base_url {
            Some(b) => b.clone(),
            None => Url::parse(&request_url.origin().ascii_serialization())
                .map_err(|e| Error::Runtime(format!("request URL has no origin: {e}")))?,
        };
        let mut stub = ProvidersStub::new(env, &config.binding, user_id)?;
        stub.timeout_ms = config.timeout_ms;
        let mut config = config.clone();
        // The field is public: normalise whatever was put there.
        config.prefix = normalize_prefix(&config.prefix);
        Ok(Handler { config, base, stub })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The user's object.
    pub fn stub(&self) -> &ProvidersStub {
        &self.stub
    }

    /// A client that authorizes requests for this user.
    pub fn fetcher(&self) -> AuthedFetch<'_> {
        AuthedFetch::new(self)
    }

    fn route(&self, path: &str) -> String {
        format!(
            "{}{}{}",
            self.base.as_str().trim_end_matches('/'),
            self.config.prefix,
            path
        )
    }

    /// Where callbacks arrive: `{base}{prefix}/callback`. Each authorization
    /// server gets its own redirect URI under it ([`Handler::callback_url`]).
    pub fn callback_base(&self) -> Url {
        Url::parse(&self.route("/callback")).expect("base URL and prefix form a URL")
    }

    /// The redirect URI used with `issuer`: `{base}{prefix}/callback/{id}`,
    /// where `id` is the pre-registered client's `callback_id` or the
    /// issuer's derived id ([`crate::callback`]). Register this URL at
    /// providers whose client you configure in advance.
    pub fn callback_url(&self, issuer: &str) -> Url {
        crate::callback::redirect_uri(
            &self.callback_base(),
            &self.config.clients.callback_id(issuer),
        )
    }

    /// The callback URL of every pre-registered client, as (issuer, URL): the
    /// list to register at those providers.
    pub fn callback_urls(&self) -> Vec<(String, Url)> {
        self.config
            .clients
            .pre_registered
            .iter()
            .map(|p| (p.issuer.clone(), self.callback_url(&p.issuer)))
            .collect()
    }

    /// The URL that connects (or re-connects) `resource`, optionally asking for `scope`.
    pub fn login_url(&self, resource: &str, scope: Option<&str>) -> String {
        let mut u = Url::parse(&self.route("/login")).expect("base URL and prefix form a URL");
        u.query_pairs_mut().append_pair("url", resource);
        if let Some(s) = scope {
            u.query_pairs_mut().append_pair("scope", s);
        }
        u.into()
    }

    fn settings(&self) -> WireSettings {
        WireSettings {
            allow_insecure_loopback: self.config.allow_insecure_loopback,
            allow_broader_resource: self.config.allow_broader_resource,
            client_info: self.config.client_info.clone(),
            clients: self.config.clients.clone(),
            callback_base: self.callback_base(),
        }
    }

    /// Answers the SDK's own routes (`{prefix}/login`, `{prefix}/callback/..`,
    /// and the client ID metadata documents when configured here); `None` for
    /// every other request.
    pub async fn middleware(&self, req: &Request) -> worker::Result<Option<Response>> {
        if let Some(resp) = client_metadata_response(&self.config, &self.stub.env, req).await? {
            return Ok(Some(resp));
        }
        let url = req.url()?;
        let Some(rest) = url.path().strip_prefix(self.config.prefix.as_str()) else {
            return Ok(None);
        };
        let is_callback = rest == "/callback" || rest.starts_with("/callback/");
        match (req.method(), rest) {
            (Method::Get, "/login") => self.login(req, &url).await.map(Some),
            (Method::Post, "/login") => self.confirmed_login(req).await.map(Some),
            (Method::Get, _) if is_callback => self.callback(&url, rest).await.map(Some),
            _ => Ok(None),
        }
    }

    /// An SDK page: never cached, never framed (its buttons cannot be
    /// clicked through another site's page).
    fn page(&self, html: String, status: u16) -> worker::Result<Response> {
        let mut resp = Response::from_html(html)?.with_status(status);
        let headers = resp.headers_mut();
        headers.set("cache-control", "no-store")?;
        headers.set("x-frame-options", "DENY")?;
        headers.set(
            "content-security-policy",
            "frame-ancestors 'none'; default-src 'none'; style-src 'unsafe-inline'",
        )?;
        headers.set("referrer-policy", "no-referrer")?;
        Ok(resp)
    }

    fn connected(
        &self,
        provider: &ProviderView,
        hook_error: Option<&str>,
    ) -> worker::Result<Response> {
        let html = pages::connected(
            &provider.name,
            &provider.resource_url,
            hook_error,
            &self.config.return_to,
        );
        self.page(html, 200)
    }

    fn failure(&self, message: &str, status: u16) -> worker::Result<Response> {
        self.page(pages::failed(message, &self.config.return_to), status)
    }

    /// `GET {prefix}/login?url=&scope=`: starts at once when the request
    /// comes from the app's own pages; from anywhere else (another site, a
    /// typed or bookmarked URL, a client that says nothing) it only answers a
    /// confirmation page, whose button posts back with a single-use token.
    async fn login(&self, req: &Request, url: &Url) -> worker::Result<Response> {
        let q = login_query(url.query_pairs());
        let Some(resource) = q.url.clone() else {
            return self.missing_url();
        };
        if self.same_origin(req) {
            return self.start_login(q, None).await;
        }
        let token = match self
            .stub
            .call::<String>(Call::ConfirmationToken {
                owner: self.stub.owner.clone(),
            })
            .await
        {
            Ok(t) => t,
            Err(e) => return self.failure(&e.to_string(), e.status()),
        };
        let html = pages::confirm(
            &resource,
            q.scope.as_deref(),
            &format!("{}/login", self.config.prefix),
            &token,
            &self.config.return_to,
        );
        self.page(html, 200)
    }

    /// `POST {prefix}/login` from the confirmation page: `url`, `scope` and
    /// the page's `token` as a form.
    async fn confirmed_login(&self, req: &Request) -> worker::Result<Response> {
        let body = req.clone()?.text().await.unwrap_or_default();
        let q = login_query(url::form_urlencoded::parse(body.as_bytes()));
        let Some(token) = q.token.clone() else {
            return self.failure(&crate::Error::Confirmation.to_string(), 403);
        };
        if q.url.is_none() {
            return self.missing_url();
        }
        self.start_login(q, Some(token)).await
    }

    fn missing_url(&self) -> worker::Result<Response> {
        self.failure(
            "The url parameter is missing: say which resource to connect.",
            400,
        )
    }

    /// Whether the browser says the request comes from this app's origin:
    /// `Sec-Fetch-Site: same-origin`, or without that header an `Origin` or
    /// else `Referer` on the app's origin. No header at all is not same-origin.
    fn same_origin(&self, req: &Request) -> bool {
        let header = |name: &str| req.headers().get(name).ok().flatten();
        if let Some(site) = header("sec-fetch-site") {
            return site.trim().eq_ignore_ascii_case("same-origin");
        }
        let ours = self.base.origin();
        let on_ours = |v: String| Url::parse(&v).is_ok_and(|u| u.origin() == ours);
        if let Some(origin) = header("origin") {
            return on_ours(origin);
        }
        header("referer").is_some_and(on_ours)
    }

    async fn start_login(
        &self,
        q: LoginQuery,
        confirmation: Option<String>,
    ) -> worker::Result<Response> {
        let Some(resource) = q.url else {
            return self.missing_url();
        };
        let call = Call::Login {
            owner: self.stub.owner.clone(),
            url: resource,
            scope: q.scope,
            settings: Box::new(self.settings()),
            confirmation,
        };
        match self.stub.call::<LoginReply>(call).await {
            Ok(LoginReply::Redirect { url }) => {
                // Built by hand: `Response::redirect` has immutable headers.
                let mut resp = Response::empty()?.with_status(302);
                resp.headers_mut().set("location", &url)?;
                resp.headers_mut().set("cache-control", "no-store")?;
                Ok(resp)
            }
            Ok(LoginReply::Public {
                provider,
                hook_error,
            }) => self.connected(&provider, hook_error.as_deref()),
            Err(e) => self.failure(&e.to_string(), e.status()),
        }
    }

    async fn callback(&self, url: &Url, path: &str) -> worker::Result<Response> {
        let Ok(callback_uri) = Url::parse(&self.route(path)) else {
            return self.failure("This callback URL is not valid.", 400);
        };
        let call = Call::Callback {
            owner: self.stub.owner.clone(),
            callback_uri,
            query: url.query().unwrap_or_default().to_owned(),
        };
        match self.stub.call::<CallbackReply>(call).await {
            Ok(CallbackReply {
                provider,
                hook_error,
            }) => self.connected(&provider, hook_error.as_deref()),
            Err(e) => self.failure(&e.to_string(), e.status()),
        }
    }

    /// The `Authorization` header value for `url`: the longest-prefix
    /// provider's token (refreshed first when within 5 minutes of expiry);
    /// `None` for a public provider or when none matches.
    pub async fn authorization_for(&self, url: &str) -> Result<Option<String>, Error> {
        Ok(self.stub.authorization(url).await?.and_then(|a| a.header))
    }

    /// An MCP client for the server at `url`, as this user, continuing the
    /// session kept for (user, server) by [`Handler::keep_mcp_session`].
    pub async fn mcp(&self, url: &str) -> Result<super::McpClient<'_>, super::McpError> {
        let mut client = super::McpClient::new(self.fetcher(), url)?;
        let kept: Option<super::protocol::McpSessionState> = self
            .stub
            .call(Call::McpSessionGet {
                owner: self.stub.owner.clone(),
                url: client.url(),
            })
            .await?;
        if let Some(state) = kept {
            client = client.with_session(state.id);
            if let Some(v) = state.protocol_version {
                client = client.with_protocol_version(v);
            }
        }
        Ok(client)
    }

    /// Keeps `client`'s session for (user, server), or forgets it when the
    /// client has none, so the next [`Handler::mcp`] continues it.
    pub async fn keep_mcp_session(&self, client: &super::McpClient<'_>) -> Result<(), Error> {
        let session = client
            .session_id()
            .map(|id| super::protocol::McpSessionState {
                id,
                protocol_version: client.protocol_version(),
            });
        self.stub
            .call::<()>(Call::McpSessionPut {
                owner: self.stub.owner.clone(),
                url: client.url(),
                session,
            })
            .await
    }

    /// The user's providers, with re-authorize URLs; never tokens or secrets.
    pub async fn providers(&self) -> Result<Vec<ProviderView>, Error> {
        let mut list: Vec<ProviderView> = self
            .stub
            .call(Call::Providers {
                owner: self.stub.owner.clone(),
            })
            .await?;
        for p in &mut list {
            p.reauthorize_url = self.login_url(&p.resource_url, None);
        }
        Ok(list)
    }

    /// Refreshes the providers serving `urls` whose tokens expire within 5 minutes.
    pub async fn refresh(&self, urls: &[String]) -> Result<Vec<RefreshOutcome>, Error> {
        self.stub
            .call(Call::RefreshExpiring {
                owner: self.stub.owner.clone(),
                urls: urls.to_vec(),
            })
            .await
    }

    /// Removes the provider stored for `url` (exactly), revoking its token at the
    /// server when it has a revocation endpoint.
    pub async fn remove(&self, url: &str) -> Result<RemoveOutcome, Error> {
        self.stub
            .call(Call::Remove {
                owner: self.stub.owner.clone(),
                url: url.to_owned(),
            })
            .await
    }
}

/// How many authorization servers' callback URLs the client ID metadata
/// document lists (the most recently used).
const MAX_DOCUMENT_ISSUERS: usize = 100;

/// Serves the client ID metadata document at the configured URL when `req`
/// asks for it on this Worker. Its client id is that URL at every server; its
/// `redirect_uris` are the callback URL of each authorization server the
/// deployment has used (kept by the registry object; the server fetching the
/// document was used before it did) and the base callback URL. Authorization
/// servers fetch it without a session, so this runs before the user is known
/// (the `#[idp_worker]` entry point calls it first).
pub async fn client_metadata_response(
    config: &Config,
    env: &Env,
    req: &Request,
) -> worker::Result<Option<Response>> {
    let Some(doc_url) = &config.clients.metadata_document_url else {
        return Ok(None);
    };
    let url = req.url()?;
    if req.method() != Method::Get
        || doc_url.origin() != url.origin()
        || doc_url.path() != url.path()
    {
        return Ok(None);
    }
    let base = match &config.base_url {
        Some(b) => b.clone(),
        None => Url::parse(&url.origin().ascii_serialization())
            .map_err(|e| worker::Error::RustError(e.to_string()))?,
    };
    let callback_base = Url::parse(&format!(
        "{}{}/callback",
        base.as_str().trim_end_matches('/'),
        normalize_prefix(&config.prefix)
    ))
    .map_err(|e| worker::Error::RustError(e.to_string()))?;
    let issuers: Vec<String> = call_object(
        env,
        &config.binding,
        super::object::REGISTRY_NAME,
        None,
        Call::KnownIssuers {
            limit: MAX_DOCUMENT_ISSUERS,
        },
    )
    .await
    .map_err(|e| worker::Error::RustError(e.to_string()))?;
    let mut redirect_uris = vec![callback_base.clone()];
    for issuer in issuers
        .iter()
        .chain(config.clients.pre_registered.iter().map(|p| &p.issuer))
    {
        let uri =
            crate::callback::redirect_uri(&callback_base, &config.clients.callback_id(issuer));
        if !redirect_uris.contains(&uri) {
            redirect_uris.push(uri);
        }
    }
    let doc =
        crate::registration::client_metadata_document(doc_url, &config.client_info, &redirect_uris);
    let mut resp = Response::from_json(&doc)?;
    resp.headers_mut().set("cache-control", "no-cache")?;
    Ok(Some(resp))
}

fn login_query<'a>(
    pairs: impl Iterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
) -> LoginQuery {
    let mut q = LoginQuery {
        url: None,
        scope: None,
        token: None,
    };
    for (k, v) in pairs {
        let v = Some(v.into_owned()).filter(|v| !v.trim().is_empty());
        match k.as_ref() {
            "url" if q.url.is_none() => q.url = v,
            "scope" if q.scope.is_none() => q.scope = v,
            "token" if q.token.is_none() => q.token = v,
            _ => {}
        }
    }
    q
}

/// The `Authorization` header value for `url` for `user_id`, without a
/// handler (binding `OAuthProviders`). `None` for a public provider or when
/// none matches.
pub async fn authorization_for(
    env: &Env,
    user_id: &str,
    url: &str,
) -> Result<Option<String>, Error> {
    let stub = ProvidersStub::new(env, DEFAULT_BINDING, user_id)?;
    Ok(stub.authorization(url).await?.and_then(|a| a.header))
}
