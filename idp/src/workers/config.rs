//! [`Config`]: how the SDK is set up for a Worker, in code and from the
//! Worker's variables.

use crate::registration::{Client, ClientConfig, ClientInfo, PreRegisteredClient};
use serde::{Deserialize, Serialize};
use url::Url;
use worker::Env;

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
/// assert_eq!(config.prefix.as_str(), "/oauth");
/// ```
///
/// Its invariants are in its field types: the prefix is always normalised
/// ([`RoutePrefix`]) and a timeout is never zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// How the app introduces itself to authorization servers.
    pub client_info: ClientInfo,
    /// Where the middleware's routes live (default `/oauth`).
    pub prefix: RoutePrefix,
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
    /// Let servers and resources on private and loopback addresses be
    /// reached (see [`crate::policy::Policy`] for the risk).
    #[serde(default)]
    pub allow_private_addresses: bool,
    /// The Durable Object binding (default `OAuthProviders`).
    pub binding: String,
    /// Where pages link back to (default `/`).
    pub return_to: String,
    /// How long each outbound request (discovery, registration, token,
    /// revocation, and every [`AuthedFetch`](super::AuthedFetch) hop) may take, body included, in
    /// milliseconds; default [`super::DEFAULT_TIMEOUT_MS`] (10 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<std::num::NonZeroU32>,
    /// The most bytes of a response body the SDK reads for the app (an MCP
    /// server's answers, [`AuthedFetch::get_json`](super::AuthedFetch::get_json),
    /// [`AuthedFetch::read_body`](super::AuthedFetch::read_body)), streamed
    /// and cut there whatever `Content-Length` says; default
    /// [`super::DEFAULT_MAX_BODY_BYTES`] (8 MiB). OAuth answers have their
    /// own cap of [`crate::http::MAX_BODY_BYTES`] (1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<std::num::NonZeroU32>,
    /// Servers without discovery ([`crate::profile`]), from
    /// [`Config::profile`] and `IDP_PROFILES`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<crate::profile::ProviderProfile>,
    /// The opt-in isolate token cache's lifetime in seconds (1 to
    /// [`super::MAX_TOKEN_CACHE_SECS`]); off when `None`
    /// ([`Config::token_cache`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_cache_secs: Option<std::num::NonZeroU32>,
    /// The enterprise's identity provider, for enterprise-managed
    /// authorization ([`Handler::connect_enterprise`](super::Handler::connect_enterprise)),
    /// from `IDP_ENTERPRISE_IDP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enterprise_idp: Option<crate::token::EnterpriseIdp>,
    /// When logins bind their tokens to a key (DPoP; [`Config::dpop`]).
    #[serde(default)]
    pub dpop: crate::settings::DpopUse,
    /// What [`Config::with_env`] and [`Config::resolve_secrets`] could not
    /// use ([`Config::problems`]).
    #[serde(skip)]
    problems: Vec<String>,
}

/// The path the SDK's routes live under: empty (the root) or a leading slash
/// and no trailing slash, whatever it was made from.
///
/// ```
/// use idp::workers::RoutePrefix;
/// assert_eq!(RoutePrefix::new("auth/").as_str(), "/auth");
/// assert_eq!(RoutePrefix::new("/").as_str(), "");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub struct RoutePrefix(String);

impl RoutePrefix {
    /// Normalises `prefix`: trims spaces and slashes, then adds one leading
    /// slash (none for the root).
    pub fn new(prefix: &str) -> Self {
        let p = prefix.trim().trim_matches('/');
        Self(if p.is_empty() {
            String::new()
        } else {
            format!("/{p}")
        })
    }

    /// The prefix.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for RoutePrefix {
    fn from(s: String) -> Self {
        Self::new(&s)
    }
}

impl From<RoutePrefix> for String {
    fn from(p: RoutePrefix) -> Self {
        p.0
    }
}

impl std::fmt::Display for RoutePrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
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
            prefix: RoutePrefix::new("/oauth"),
            base_url: None,
            clients: ClientConfig::default(),
            allow_insecure_loopback: false,
            allow_broader_resource: false,
            allow_private_addresses: false,
            binding: DEFAULT_BINDING.into(),
            return_to: "/".into(),
            timeout_ms: None,
            max_body_bytes: None,
            profiles: Vec::new(),
            token_cache_secs: None,
            enterprise_idp: None,
            dpop: Default::default(),
            problems: Vec::new(),
        }
    }

    /// What the Worker's variables and secrets held that could not be used,
    /// one line each, naming the variable and why (never quoting a value):
    /// an unparseable `IDP_BASE_URL`, `IDP_TIMEOUT_MS`,
    /// `IDP_TOKEN_CACHE_SECS` or `IDP_CLIENT_METADATA_URL`, an
    /// `IDP_ALLOW_INSECURE_LOOPBACK` neither true nor false, a bad
    /// `IDP_PRE_REGISTERED` or `IDP_PROFILES` list, a profile's missing
    /// secret. While any is left, the generated Worker answers every request
    /// with a `configuration` error (500) that counts them and writes each to
    /// its log, and [`Handler::new`](super::Handler::new) refuses the
    /// configuration, rather than run with part of it silently dropped.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// An error when there are [`Config::problems`]: it counts them and
    /// points at the Worker's log (where the generated Worker writes each),
    /// so a visitor learns nothing about the configuration.
    pub fn check(&self) -> Result<(), crate::Error> {
        match self.problems.len() {
            0 => Ok(()),
            n => Err(crate::Error::Configuration {
                name: "the Worker's configuration".into(),
                reason: format!(
                    "{n} problem{}, listed in the Worker's log",
                    if n == 1 { "" } else { "s" }
                ),
            }),
        }
    }

    /// Keeps the user's object's answers in this Worker isolate for `ttl`
    /// (at most 60 s; zero turns it off), so repeated calls skip the Durable
    /// Object round trip. Off by default. The bound: another isolate may use
    /// a removed or replaced credential for up to `ttl`; in this isolate an
    /// entry is dropped on any 401 from its resource, on removal, and when
    /// its token enters its refresh window. `IDP_TOKEN_CACHE_SECS` sets it
    /// from the Worker's variables.
    pub fn token_cache(mut self, ttl: std::time::Duration) -> Self {
        let secs = u32::try_from(ttl.as_secs())
            .unwrap_or(u32::MAX)
            .min(super::MAX_TOKEN_CACHE_SECS);
        self.token_cache_secs = std::num::NonZeroU32::new(secs);
        self
    }

    /// Reads the client secrets that profiles name from the Worker's
    /// secrets (a missing one is one of the [`Config::problems`]).
    pub fn resolve_secrets(mut self, env: &Env) -> Self {
        let mut missing = Vec::new();
        self.profiles = std::mem::take(&mut self.profiles)
            .into_iter()
            .map(|p| match p.client_secret_name.clone() {
                Some(name) if p.needs_secret() => {
                    match env.secret(&name).or_else(|_| env.var(&name)) {
                        Ok(secret) => p.with_client_secret(crate::secret::ClientSecret::new(
                            secret.to_string(),
                        )),
                        Err(_) => {
                            missing.push(format!(
                                "profile {:?}: no secret named {name:?} (wrangler secret put {name})",
                                p.name
                            ));
                            p
                        }
                    }
                }
                _ => p,
            })
            .collect();
        for m in missing {
            self.problem(m);
        }
        self
    }

    /// [`Config::check`], writing each problem to the log first.
    pub(crate) fn refuse_problems(&self) -> Result<(), crate::Error> {
        self.check().inspect_err(|_| {
            for p in &self.problems {
                worker::console_error!("idp: configuration: {p}");
            }
        })
    }

    /// Refuses to serve a request that reached the Worker on a host that is
    /// not loopback while `allow_insecure_loopback` is on: that setting is
    /// for local development, and with it a missing `IDP_ENCRYPTION_KEYS`
    /// means tokens in plain text. A deployment that left it on answers
    /// every request with this `configuration` error instead.
    pub fn refuse_development_off_loopback(&self, request_url: &Url) -> Result<(), crate::Error> {
        if !self.allow_insecure_loopback || crate::policy::is_loopback(request_url) {
            return Ok(());
        }
        worker::console_error!(
            "idp: configuration: IDP_ALLOW_INSECURE_LOOPBACK is on, but a request reached the Worker on a host that is not loopback"
        );
        Err(crate::Error::Configuration {
            name: "IDP_ALLOW_INSECURE_LOOPBACK".into(),
            reason: "it is for local development only, and this request came to a host that is not loopback: remove it from the deployment (and set IDP_ENCRYPTION_KEYS)".into(),
        })
    }

    fn problem(&mut self, line: String) {
        if !self.problems.contains(&line) {
            self.problems.push(line);
        }
    }

    /// Connects URLs under `profile`'s resources with it: no discovery, its
    /// endpoints, client and token rules ([`crate::profile`],
    /// [`crate::profile::builtin`]). Its secret is read from the Worker's
    /// secret named by `client_secret_name` when the configuration meets
    /// the environment ([`Config::with_env`]).
    ///
    /// ```
    /// use idp::profile::builtin;
    /// use idp::workers::Config;
    ///
    /// let config = Config::new("My app", "1.0.0")
    ///     .profile(builtin::github("Iv1.0123456789abcdef", "GITHUB_CLIENT_SECRET"))
    ///     .profile(builtin::microsoft("common", "00000000-0000-0000-0000-000000000000", "ENTRA_SECRET"));
    /// assert_eq!(config.profiles.len(), 2);
    /// ```
    pub fn profile(mut self, profile: crate::profile::ProviderProfile) -> Self {
        if let Err(e) = profile.check() {
            self.problem(e.to_string());
        }
        self.profiles.retain(|p| p.name != profile.name);
        self.profiles.push(profile);
        self
    }

    /// Sets the route prefix (leading slash, no trailing slash).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = RoutePrefix::new(&prefix.into());
        self
    }

    /// Sets the public base URL.
    pub fn base_url(mut self, url: Url) -> Self {
        self.base_url = Some(url);
        self
    }

    /// Adds a client registered in advance at an authorization server, for
    /// the resources it names ([`PreRegisteredClient::new`]; its
    /// `callback_id` gives a readable callback URL,
    /// `{base}{prefix}/callback/{callback_id}`). A client that names no
    /// resources (and not `any_resource`), a resource that is not a URL or a
    /// bad callback id is one of the [`Config::problems`].
    ///
    /// ```
    /// use idp::registration::{Client, PreRegisteredClient};
    /// let mut acme = PreRegisteredClient::new(
    ///     "https://login.acme.example",
    ///     Client::public("idp-app"),
    ///     &["https://api.acme.example"],
    /// );
    /// acme.callback_id = Some("acme".into());
    /// let config = idp::workers::Config::new("my-app", "1.0").pre_registered(acme);
    /// assert!(config.problems().is_empty());
    /// ```
    pub fn pre_registered(mut self, client: PreRegisteredClient) -> Self {
        if let Err(reason) = client.check() {
            self.problem(format!(
                "the pre-registered client for {}: {reason}",
                client.issuer
            ));
        }
        self.clients.pre_registered.push(client);
        self
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

    /// The engine's settings for this configuration, with callbacks under
    /// `callback_base`.
    pub(crate) fn settings(&self, callback_base: url::Url) -> crate::settings::Settings {
        crate::settings::Settings {
            policy: self.policy(),
            client_info: self.client_info.clone(),
            clients: self.clients.clone(),
            callback_base,
            profiles: self.profiles.clone(),
            dpop: self.dpop,
        }
    }

    /// The address policy every request the SDK sends is held to.
    pub fn policy(&self) -> crate::policy::Policy {
        crate::policy::Policy {
            allow_insecure_loopback: self.allow_insecure_loopback,
            allow_broader_resource: self.allow_broader_resource,
            allow_private_addresses: self.allow_private_addresses,
        }
    }

    /// Lets the SDK reach private and loopback addresses (a deployment that
    /// needs a private API). Every resource and server a person connects can
    /// then make the SDK send requests into that network; link-local (cloud
    /// metadata), multicast and reserved addresses stay refused.
    /// `IDP_ALLOW_PRIVATE_ADDRESSES=true` sets it from the Worker's
    /// variables.
    pub fn allow_private_addresses(mut self, allow: bool) -> Self {
        self.allow_private_addresses = allow;
        self
    }

    /// When logins bind their tokens to a key of their own (DPoP, RFC 9449;
    /// needs idp's `signing` feature): where the server offers it (the
    /// default), always, or never. `IDP_DPOP` (`advertised`, `always`,
    /// `never`) sets it from the Worker's variables.
    pub fn dpop(mut self, when: crate::settings::DpopUse) -> Self {
        self.dpop = when;
        self
    }

    /// Uses the client ID metadata document at a server that accepts it but
    /// does not send RFC 9207 `iss` (`"*"` for every such server); see
    /// [`ClientConfig::metadata_document_without_iss`](crate::registration::ClientConfig::metadata_document_without_iss)
    /// for the mix-up risk this takes.
    pub fn metadata_document_without_iss(mut self, issuer: impl Into<String>) -> Self {
        self.clients
            .metadata_document_without_iss
            .push(issuer.into());
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
        let ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        self.timeout_ms = Some(std::num::NonZeroU32::new(ms).unwrap_or(std::num::NonZeroU32::MIN));
        self
    }

    /// Sets the most bytes of a response body the SDK reads for the app
    /// (see [`Config::max_body_bytes`](Config#structfield.max_body_bytes);
    /// at least 1). `IDP_MAX_BODY_BYTES` sets it from the Worker's variables.
    pub fn max_body_bytes(mut self, bytes: u32) -> Self {
        self.max_body_bytes =
            Some(std::num::NonZeroU32::new(bytes).unwrap_or(std::num::NonZeroU32::MIN));
        self
    }

    /// Sets the Durable Object binding name.
    pub fn binding(mut self, binding: impl Into<String>) -> Self {
        self.binding = binding.into();
        self
    }

    /// Applies the Worker's variables: `IDP_ALLOW_INSECURE_LOOPBACK` (`true` to
    /// allow), `IDP_DPOP` (see [`Config::dpop`]), `IDP_BASE_URL`, `IDP_TIMEOUT_MS`, `IDP_CLIENT_METADATA_URL`
    /// (see [`Config::metadata_document_url`]),
    /// `IDP_METADATA_DOCUMENT_WITHOUT_ISS` (issuers, comma-separated, or
    /// `*`: see [`ClientConfig::metadata_document_without_iss`](crate::registration::ClientConfig::metadata_document_without_iss))
    /// and `IDP_PRE_REGISTERED`, a
    /// JSON list of clients configured in advance:
    /// `[{"issuer": "https://as.example", "client_id": "...",
    /// "client_secret_name": "AS_EXAMPLE_SECRET", "auth_method":
    /// "client_secret_basic", "callback_id": "as-example", "resources":
    /// ["https://api.example"]}]`, where the secret is named (a Workers
    /// secret), never written inline; `issuer`, `client_id` and `resources`
    /// (or `"any_resource": true`, see [`PreRegisteredClient::any_resource`])
    /// are required. A value that cannot be used is
    /// one of the [`Config::problems`].
    pub fn with_env(mut self, env: &Env) -> Self {
        // As text whether wrangler.toml wrote a string, a number or a boolean.
        let var = |name: &str| json_var(env, name);
        if let Some(v) = var("IDP_ALLOW_INSECURE_LOOPBACK") {
            match v.trim().to_ascii_lowercase().as_str() {
                "true" => self.allow_insecure_loopback = true,
                "false" | "" => self.allow_insecure_loopback = false,
                _ => self.problem("IDP_ALLOW_INSECURE_LOOPBACK is neither true nor false".into()),
            }
        }
        if let Some(v) = var("IDP_ALLOW_PRIVATE_ADDRESSES") {
            match v.trim().to_ascii_lowercase().as_str() {
                "true" => self.allow_private_addresses = true,
                "false" | "" => self.allow_private_addresses = false,
                _ => self.problem("IDP_ALLOW_PRIVATE_ADDRESSES is neither true nor false".into()),
            }
        }
        if let Some(v) = var("IDP_DPOP") {
            match serde_json::from_value(serde_json::Value::String(v.trim().to_ascii_lowercase())) {
                Ok(when) => self.dpop = when,
                Err(_) => self.problem("IDP_DPOP is none of advertised, always, never".into()),
            }
        }
        if let Some(v) = var("IDP_BASE_URL") {
            match public_url("IDP_BASE_URL", &v) {
                Ok(u) => self.base_url = Some(u),
                Err(p) => self.problem(p),
            }
        }
        if let Some(v) = var("IDP_TIMEOUT_MS") {
            match v.trim().parse::<std::num::NonZeroU32>() {
                Ok(ms) => self.timeout_ms = Some(ms),
                Err(_) => self.problem("IDP_TIMEOUT_MS is not a positive whole number".into()),
            }
        }
        if let Some(v) = var("IDP_MAX_BODY_BYTES") {
            match v.trim().parse::<std::num::NonZeroU32>() {
                Ok(n) => self.max_body_bytes = Some(n),
                Err(_) => self.problem("IDP_MAX_BODY_BYTES is not a positive whole number".into()),
            }
        }
        if let Some(v) = var("IDP_TOKEN_CACHE_SECS") {
            match v.trim().parse::<u64>() {
                Ok(secs) => self = self.token_cache(std::time::Duration::from_secs(secs)),
                Err(_) => self.problem("IDP_TOKEN_CACHE_SECS is not a whole number".into()),
            }
        }
        if let Some(json) = json_var(env, "IDP_PRE_REGISTERED") {
            match pre_registered_from_json(&json, env) {
                Ok(list) => self.clients.pre_registered.extend(list),
                Err(e) => self.problem(format!("IDP_PRE_REGISTERED: {e}")),
            }
        }
        // `IDP_ENTERPRISE_IDP`: the identity provider of enterprise-managed
        // authorization (its client's secret by name).
        if let Some(json) = json_var(env, "IDP_ENTERPRISE_IDP") {
            match enterprise_idp_from_json(&json, env) {
                Ok(idp) => self.enterprise_idp = Some(idp),
                Err(e) => self.problem(format!("IDP_ENTERPRISE_IDP: {e}")),
            }
        }
        // `IDP_PROFILES`: a JSON list of profiles (secrets by name).
        if let Some(json) = json_var(env, "IDP_PROFILES") {
            match crate::profile::ProviderProfile::list_from_json(&json) {
                Ok(list) => {
                    for p in list {
                        self = self.profile(p);
                    }
                }
                Err(crate::Error::Configuration { reason, .. }) => {
                    self.problem(format!("IDP_PROFILES: {reason}"))
                }
                Err(e) => self.problem(format!("IDP_PROFILES: {e}")),
            }
        }
        self = self.resolve_secrets(env);
        if let Some(v) = var("IDP_METADATA_DOCUMENT_WITHOUT_ISS") {
            self.clients.metadata_document_without_iss = v
                .split(',')
                .map(str::trim)
                .filter(|i| !i.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = var("IDP_CLIENT_METADATA_URL") {
            match public_url("IDP_CLIENT_METADATA_URL", &v) {
                Ok(u) => self.clients.metadata_document_url = Some(u),
                Err(p) => self.problem(p),
            }
        }
        self
    }
}

/// A URL the app is reached at: https, or http on a loopback host (local
/// development); anything else is a configuration problem, named.
fn public_url(name: &str, value: &str) -> Result<Url, String> {
    let url = Url::parse(value.trim()).map_err(|e| format!("{name} is not a URL ({e})"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if crate::policy::is_loopback(&url) => Ok(url),
        _ => Err(format!(
            "{name} must be https (plain http only on a loopback host, for local development)"
        )),
    }
}

/// A variable as text: a string (a secret, `--var`) as it is; a number,
/// boolean, list or object from `wrangler.toml` as JSON. Read without
/// `Env::object_var`, whose decoder (serde-wasm-bindgen) would be a second
/// one in the bundle.
fn json_var(env: &Env, name: &str) -> Option<String> {
    let v = js_sys::Reflect::get(env, &wasm_bindgen::JsValue::from_str(name)).ok()?;
    if v.is_undefined() || v.is_null() {
        return None;
    }
    v.as_string()
        .or_else(|| js_sys::JSON::stringify(&v).ok()?.as_string())
}

/// A client as configured: public without a secret name, else confidential
/// with the named secret (`client_secret_basic` unless said otherwise).
fn client_from(
    client_id: String,
    secret_name: Option<&str>,
    auth_method: Option<crate::registration::AuthMethod>,
    env: &Env,
) -> Result<Client, String> {
    let Some(name) = secret_name else {
        return Ok(Client::public(client_id));
    };
    let secret = env
        .secret(name)
        .or_else(|_| env.var(name))
        .map_err(|_| format!("client_secret_name: no secret named {name:?}"))?
        .to_string();
    if auth_method == Some(crate::registration::AuthMethod::PrivateKeyJwt) {
        // Read once here, so a bad key is a configuration error at start.
        crate::jws::SigningKey::parse(&secret)
            .map_err(|e| format!("client_secret_name {name:?}: {e}"))?;
    }
    Ok(Client::confidential(
        client_id,
        crate::secret::ClientSecret::new(secret),
        auth_method.unwrap_or(crate::registration::AuthMethod::ClientSecretBasic),
    ))
}

/// `IDP_ENTERPRISE_IDP`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnterpriseIdpVar {
    issuer: String,
    token_endpoint: Url,
    client_id: String,
    #[serde(default)]
    client_secret_name: Option<String>,
    #[serde(default)]
    auth_method: Option<crate::registration::AuthMethod>,
}

fn enterprise_idp_from_json(json: &str, env: &Env) -> Result<crate::token::EnterpriseIdp, String> {
    let e: EnterpriseIdpVar = serde_json::from_str(json)
        .map_err(|e| format!("not a valid entry: {}", crate::error::json_reason(&e)))?;
    Ok(crate::token::EnterpriseIdp {
        issuer: e.issuer,
        token_endpoint: e.token_endpoint,
        client: client_from(
            e.client_id,
            e.client_secret_name.as_deref(),
            e.auth_method,
            env,
        )?,
    })
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
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    any_resource: bool,
}

fn pre_registered_from_json(json: &str, env: &Env) -> Result<Vec<PreRegisteredClient>, String> {
    let entries: Vec<PreRegisteredVar> = serde_json::from_str(json)
        .map_err(|e| format!("not a valid list: {}", crate::error::json_reason(&e)))?;
    entries
        .into_iter()
        .map(|e| {
            let client = client_from(
                e.client_id,
                e.client_secret_name.as_deref(),
                e.auth_method,
                env,
            )?;
            let entry = PreRegisteredClient {
                issuer: e.issuer,
                client,
                callback_id: e.callback_id,
                resources: e.resources,
                any_resource: e.any_resource,
            };
            entry
                .check()
                .map_err(|reason| format!("the client for {}: {reason}", entry.issuer))?;
            Ok(entry)
        })
        .collect()
}

/// The app's public base URL for a request: the configured one, or the
/// request's origin.
pub(crate) fn base_for(config: &Config, request_url: &Url) -> Result<Url, String> {
    match &config.base_url {
        Some(b) => Ok(b.clone()),
        None => Url::parse(&request_url.origin().ascii_serialization())
            .map_err(|e| format!("request URL has no origin: {e}")),
    }
}

/// `{base}{prefix}{path}`: the URL of one of the SDK's routes.
pub(crate) fn route_url(base: &Url, prefix: &RoutePrefix, path: &str) -> String {
    format!(
        "{}{}{}",
        base.as_str().trim_end_matches('/'),
        prefix.as_str(),
        path
    )
}

#[cfg(test)]
mod tests {
    use super::public_url;

    #[test]
    fn the_apps_own_urls_are_https_off_loopback() {
        for ok in [
            "https://app.example",
            "http://127.0.0.1:8787",
            "http://localhost:8787/oauth/client.json",
        ] {
            assert!(public_url("IDP_BASE_URL", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://app.example",
            "http://10.0.0.1",
            "ftp://app.example",
            "nonsense",
        ] {
            let e = public_url("IDP_BASE_URL", bad).unwrap_err();
            assert!(e.starts_with("IDP_BASE_URL"), "{bad}: {e}");
        }
    }
}
