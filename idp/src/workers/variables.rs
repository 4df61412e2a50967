//! The Worker's variables (`IDP_*`), read into a [`Config`]
//! ([`Config::with_env`]): each one parsed and checked here, and a value
//! that cannot be used kept as one of the [`Config::problems`].

use super::config::Config;
use crate::registration::{Client, PreRegisteredClient};
use serde::Deserialize;
use url::Url;
use worker::Env;

impl Config {
    /// Applies the Worker's variables: `IDP_ALLOW_INSECURE_LOOPBACK` (`true` to
    /// allow), `IDP_DPOP` (see [`Config::dpop`]), `IDP_DPOP_ALWAYS` (see [`Config::dpop_always_for`]), `IDP_DEVICE_ORIGINS` (see [`Config::device_origins`]), `IDP_BASE_URL`, `IDP_TIMEOUT_MS`,
    /// `IDP_MAX_BODY_BYTES`, `IDP_RELAY_MAX_BYTES`, `IDP_CLIENT_METADATA_URL`
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
    pub fn with_env(self, env: &Env) -> Self {
        // As text whether wrangler.toml wrote a string, a number or a boolean.
        let var = |name: &str| json_var(env, name);
        self.with_switches(&var)
            .with_limits(&var)
            .with_clients(env, &var)
    }

    /// The switches: the development allowances, DPoP, device origins.
    fn with_switches(mut self, var: &dyn Fn(&str) -> Option<String>) -> Self {
        let flag = |name: &str, v: String| match v.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" | "" => Ok(false),
            _ => Err(format!("{name} is neither true nor false")),
        };
        if let Some(v) = var("IDP_ALLOW_INSECURE_LOOPBACK") {
            match flag("IDP_ALLOW_INSECURE_LOOPBACK", v) {
                Ok(on) => self.allow_insecure_loopback = on,
                Err(p) => self.problem(p),
            }
        }
        if let Some(v) = var("IDP_ALLOW_PRIVATE_ADDRESSES") {
            match flag("IDP_ALLOW_PRIVATE_ADDRESSES", v) {
                Ok(on) => self.allow_private_addresses = on,
                Err(p) => self.problem(p),
            }
        }
        if let Some(v) = var("IDP_DPOP") {
            match serde_json::from_value(serde_json::Value::String(v.trim().to_ascii_lowercase())) {
                Ok(when) => self.dpop = when,
                Err(_) => {
                    self.problem("IDP_DPOP is none of accepted, advertised, always, never".into())
                }
            }
        }
        if let Some(v) = var("IDP_DEVICE_ORIGINS") {
            match serde_json::from_str::<std::collections::BTreeMap<String, Vec<String>>>(&v) {
                Ok(map) if map.values().flatten().all(|o| url::Url::parse(o).is_ok()) => {
                    self.device_origins.extend(map)
                }
                _ => self.problem(
                    "IDP_DEVICE_ORIGINS is not a JSON object of issuers to lists of origin URLs"
                        .into(),
                ),
            }
        }
        if let Some(v) = var("IDP_DPOP_ALWAYS") {
            for r in v.split([' ', ',', '\n', '\t']).filter(|r| !r.is_empty()) {
                match crate::matching::ResourceKey::parse(r) {
                    Ok(key) => self.dpop_always.push(key.as_str().to_owned()),
                    Err(e) => self.problem(format!("IDP_DPOP_ALWAYS: {e}")),
                }
            }
        }
        self
    }

    /// The base URL, timeouts, body caps and the token cache.
    fn with_limits(mut self, var: &dyn Fn(&str) -> Option<String>) -> Self {
        if let Some(v) = var("IDP_BASE_URL") {
            match public_url("IDP_BASE_URL", &v) {
                Ok(u) => self.base_url = Some(u),
                Err(p) => self.problem(p),
            }
        }
        let positive = |name: &str| -> Option<Result<std::num::NonZeroU64, String>> {
            let v = var(name)?;
            Some(
                v.trim()
                    .parse()
                    .map_err(|_| format!("{name} is not a positive whole number")),
            )
        };
        let small = |n: std::num::NonZeroU64, name: &str| {
            std::num::NonZeroU32::try_from(n).map_err(|_| format!("{name} is too large"))
        };
        match positive("IDP_TIMEOUT_MS").map(|r| r.and_then(|n| small(n, "IDP_TIMEOUT_MS"))) {
            Some(Ok(ms)) => self.timeout_ms = Some(ms),
            Some(Err(p)) => self.problem(p),
            None => {}
        }
        let body = positive("IDP_MAX_BODY_BYTES");
        match body.map(|r| r.and_then(|n| small(n, "IDP_MAX_BODY_BYTES"))) {
            Some(Ok(n)) => self.max_body_bytes = Some(n),
            Some(Err(p)) => self.problem(p),
            None => {}
        }
        match positive("IDP_RELAY_MAX_BYTES") {
            Some(Ok(n)) => self.relay_max_bytes = Some(n),
            Some(Err(p)) => self.problem(p),
            None => {}
        }
        if let Some(v) = var("IDP_TOKEN_CACHE_SECS") {
            match v.trim().parse::<u64>() {
                Ok(secs) => self = self.token_cache(std::time::Duration::from_secs(secs)),
                Err(_) => self.problem("IDP_TOKEN_CACHE_SECS is not a whole number".into()),
            }
        }
        self
    }

    /// The app's clients: pre-registered, the enterprise identity
    /// provider, profiles (secrets by name), the metadata document.
    fn with_clients(mut self, env: &Env, var: &dyn Fn(&str) -> Option<String>) -> Self {
        if let Some(json) = var("IDP_PRE_REGISTERED") {
            match pre_registered_from_json(&json, env) {
                Ok(list) => self.clients.pre_registered.extend(list),
                Err(e) => self.problem(format!("IDP_PRE_REGISTERED: {e}")),
            }
        }
        // `IDP_ENTERPRISE_IDP`: the identity provider of enterprise-managed
        // authorization (its client's secret by name).
        if let Some(json) = var("IDP_ENTERPRISE_IDP") {
            match enterprise_idp_from_json(&json, env) {
                Ok(idp) => self.enterprise_idp = Some(idp),
                Err(e) => self.problem(format!("IDP_ENTERPRISE_IDP: {e}")),
            }
        }
        // `IDP_PROFILES`: a JSON list of profiles (secrets by name).
        if let Some(json) = var("IDP_PROFILES") {
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
