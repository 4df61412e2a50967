//! [`Config`]: how the SDK is set up for a Worker, in code and from the
//! Worker's variables.

use crate::registration::{ClientConfig, ClientInfo, PreRegisteredClient};
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
    /// The most bytes of an upstream body [`relay`](super::relay()) passes on
    /// to the app's caller (the example's `/api/fetch`, `/api/forward`,
    /// `/api/background-fetch`): an answer that declares more is refused
    /// ([`Error::TooLargeToRelay`](super::Error::TooLargeToRelay)), one that
    /// runs past it is cut there (its stream ends with an error) and the
    /// upstream request is cancelled; default
    /// [`super::DEFAULT_RELAY_MAX_BYTES`] (16 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_max_bytes: Option<std::num::NonZeroU64>,
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
    /// Resources whose tokens are bound whatever they say
    /// ([`Config::dpop_always_for`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dpop_always: Vec<String>,
    /// Origins besides its own where a discovered authorization server may
    /// run its device flow ([`Config::device_origins`]).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub device_origins: std::collections::BTreeMap<String, Vec<String>>,
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
            relay_max_bytes: None,
            profiles: Vec::new(),
            token_cache_secs: None,
            enterprise_idp: None,
            dpop: Default::default(),
            dpop_always: Vec::new(),
            device_origins: Default::default(),
            problems: Vec::new(),
        }
    }

    /// What the Worker's variables and secrets held that could not be used,
    /// one line each, naming the variable and why (never quoting a value):
    /// an unparseable `IDP_BASE_URL`, `IDP_TIMEOUT_MS`, `IDP_MAX_BODY_BYTES`,
    /// `IDP_RELAY_MAX_BYTES`, `IDP_TOKEN_CACHE_SECS` or `IDP_CLIENT_METADATA_URL`, an
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

    pub(super) fn problem(&mut self, line: String) {
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
            dpop_always: self.dpop_always.clone(),
            device_origins: self.device_origins.clone(),
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
    /// needs idp's `signing` feature): where the resource says it takes
    /// bound tokens and its authorization server offers them (the
    /// default), wherever the server offers them, always, or never.
    /// `IDP_DPOP` (`accepted`, `advertised`, `always`, `never`) sets it
    /// from the Worker's variables.
    pub fn dpop(mut self, when: crate::settings::DpopUse) -> Self {
        self.dpop = when;
        self
    }

    /// Binds the tokens of `resource` (a URL prefix) whatever it says, as
    /// [`DpopUse::Always`](crate::settings::DpopUse::Always) does for every
    /// resource: for one that takes proofs without saying so.
    /// `IDP_DPOP_ALWAYS` (resource URLs separated by spaces or commas) adds
    /// them from the Worker's variables.
    pub fn dpop_always_for(mut self, resource: impl Into<String>) -> Self {
        self.dpop_always.push(resource.into());
        self
    }

    /// Lets the discovered authorization server `issuer` run its device
    /// flow (RFC 8628) on `origins` besides its own: its device
    /// authorization endpoint, the token endpoint the app polls and the
    /// page the person is sent to. Only for a provider that splits them
    /// (Google's, for one); without it a device login whose endpoints are
    /// on another origin than the issuer's is refused, since a hostile
    /// server could otherwise run an honest provider's device flow.
    /// `IDP_DEVICE_ORIGINS` (a JSON object, issuer to a list of origins)
    /// sets them from the Worker's variables.
    pub fn device_origins(mut self, issuer: impl Into<String>, origins: &[&str]) -> Self {
        let list = self.device_origins.entry(issuer.into()).or_default();
        list.extend(origins.iter().map(|o| (*o).to_owned()));
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

    /// Sets the most bytes of an upstream body [`relay`](super::relay())
    /// passes on (see [`Config::relay_max_bytes`](Config#structfield.relay_max_bytes);
    /// at least 1). `IDP_RELAY_MAX_BYTES` sets it from the Worker's variables.
    pub fn relay_max_bytes(mut self, bytes: u64) -> Self {
        self.relay_max_bytes =
            Some(std::num::NonZeroU64::new(bytes).unwrap_or(std::num::NonZeroU64::MIN));
        self
    }

    /// Sets the Durable Object binding name.
    pub fn binding(mut self, binding: impl Into<String>) -> Self {
        self.binding = binding.into();
        self
    }
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
