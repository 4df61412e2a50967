//! Provider profiles: APIs that publish no discovery metadata and offer no
//! dynamic registration (GitHub, Google, Slack, Microsoft Graph, Linear, ...)
//! are connected from a profile instead: its endpoints, its client, its
//! scopes and the rules its token answers follow.
//!
//! A profile is matched by resource URL prefix, longest first, with the same
//! rules as stored providers: a URL under one of its `resources` is connected
//! with it, skipping the probe and discovery. A profile is also matched by
//! issuer: when discovery finds a server with the profile's `issuer` (one
//! that publishes metadata but offers no registration), the profile's client,
//! scopes, parameters and token rules are used with the discovered endpoints
//! (a profile with no `resources` is matched that way only). Everything else the discovery
//! path does stays: PKCE S256, a pending flow kept server-side, its own
//! callback URL (`{prefix}/callback/{profile name}`), single-flight refresh,
//! sealing at rest.
//!
//! ```
//! use idp::profile::{builtin, ProviderProfile};
//! let github = builtin::github("Iv1.abc", "GITHUB_CLIENT_SECRET");
//! assert_eq!(github.name, "github");
//! let profiles = vec![github];
//! let url = url::Url::parse("https://api.github.com/user/repos").unwrap();
//! let (p, key) = idp::profile::find(&profiles, &url).unwrap();
//! assert_eq!((p.name.as_str(), key.as_str()), ("github", "https://api.github.com"));
//! ```

pub mod builtin;

use crate::error::{Error, Result};
use crate::matching::{candidates, ResourceKey};
use crate::registration::{AuthMethod, Client};
use crate::secret::ClientSecret;
use crate::token::TokenRules;
use serde::{Deserialize, Serialize};
use url::Url;

/// How a server separates scopes in the authorization request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeSeparator {
    /// `a b` (RFC 6749).
    #[default]
    Space,
    /// `a,b` (Slack, Linear).
    Comma,
}

impl ScopeSeparator {
    pub(crate) fn join(self, scopes: &[String]) -> String {
        scopes.join(match self {
            ScopeSeparator::Space => " ",
            ScopeSeparator::Comma => ",",
        })
    }
}

/// A server without discovery, described.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderProfile {
    /// Its name: 1 to 40 ASCII letters, digits, `-` or `_`; also the id in
    /// its callback URL.
    pub name: String,
    /// The resource URL prefixes it serves (longest match wins). Its client
    /// is used for these and nothing else, unless `any_resource` is set.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Also use this profile's client for any other resource whose RFC 9728
    /// metadata names its `issuer` (with the discovered endpoints). Only for
    /// a server that binds every token to the `resource` it was asked for
    /// (RFC 8707 audience-restricted tokens): at a server that ignores
    /// `resource`, any resource naming it would get the person's token for
    /// the provider's own APIs. Without it, such a resource is refused with
    /// [`Error::ClientNotAllowedForResource`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub any_resource: bool,
    /// The issuer recorded with its grants (there is no metadata to say).
    pub issuer: String,
    /// The authorization endpoint.
    pub authorization_endpoint: Url,
    /// The token endpoint.
    pub token_endpoint: Url,
    /// An RFC 7009 revocation endpoint, if the server has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<Url>,
    /// An RFC 8628 device authorization endpoint, for logins with no
    /// browser callback ([`crate::flow::start_device_login`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization_endpoint: Option<Url>,
    /// The client registered there.
    pub client_id: String,
    /// The name of the secret (a Workers secret) holding the client secret;
    /// never the secret itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_name: Option<String>,
    /// How the client authenticates (default `client_secret_post` with a
    /// secret, `none` without).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<AuthMethod>,
    /// The scopes asked for at every connection (those that get a refresh
    /// token among them).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// How scopes are separated in the authorization request.
    #[serde(default)]
    pub scope_separator: ScopeSeparator,
    /// The authorization request parameter carrying the scopes (default
    /// `scope`; Slack's user scopes go in `user_scope`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_param: Option<String>,
    /// Extra authorization request parameters (for example
    /// `access_type=offline` and `prompt=consent` at Google).
    #[serde(default)]
    pub authorization_params: Vec<(String, String)>,
    /// What its token answers are like, and where `resource` goes.
    #[serde(default)]
    pub rules: TokenRules,
    /// How the API says "this token is refused" when it does not answer
    /// 401 (Slack: HTTP 200 `"error": "invalid_auth"`); such an answer is
    /// read as a 401 by authed calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<crate::token::Refusal>,
    /// The resolved client secret: filled by the runtime from
    /// `client_secret_name`, never read from configuration.
    #[serde(
        default,
        rename = "resolved_client_secret",
        skip_serializing_if = "Option::is_none"
    )]
    client_secret: Option<ClientSecret>,
}

impl std::fmt::Debug for ProviderProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderProfile")
            .field("name", &self.name)
            .field("resources", &self.resources)
            .field("any_resource", &self.any_resource)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret_name", &self.client_secret_name)
            .field("secret_resolved", &self.client_secret.is_some())
            .finish_non_exhaustive()
    }
}

impl ProviderProfile {
    /// A profile with the required parts; set the rest with the fields.
    pub fn new(
        name: impl Into<String>,
        resources: &[&str],
        issuer: impl Into<String>,
        authorization_endpoint: Url,
        token_endpoint: Url,
        client_id: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            resources: resources.iter().map(|r| (*r).to_owned()).collect(),
            any_resource: false,
            issuer: issuer.into(),
            authorization_endpoint,
            token_endpoint,
            revocation_endpoint: None,
            device_authorization_endpoint: None,
            client_id: client_id.into(),
            client_secret_name: None,
            auth_method: None,
            scopes: Vec::new(),
            scope_separator: ScopeSeparator::Space,
            scope_param: None,
            authorization_params: Vec::new(),
            rules: TokenRules::default(),
            refused: None,
            client_secret: None,
        }
    }

    /// Reads profiles from JSON (the `IDP_PROFILES` variable): a list of
    /// objects with this type's fields. An unknown field or a bad value is an
    /// error that names it.
    pub fn list_from_json(json: &str) -> Result<Vec<Self>> {
        let config = |reason: String| Error::Configuration {
            name: "IDP_PROFILES".into(),
            reason,
        };
        let list: Vec<Self> = serde_json::from_str(json).map_err(|e| {
            config(format!(
                "not a valid list of profiles: {}",
                crate::error::json_reason(&e)
            ))
        })?;
        for p in &list {
            if p.client_secret.is_some() {
                return Err(config(format!(
                    "profile {:?}: secrets are named with client_secret_name, never written inline",
                    p.name
                )));
            }
            p.check()
                .map_err(|e| config(format!("profile {:?}: {e}", p.name)))?;
        }
        Ok(list)
    }

    /// Checks the name and the resource prefixes.
    pub fn check(&self) -> Result<()> {
        crate::callback::check_id(&self.name).map_err(|e| Error::Configuration {
            name: format!("profile {:?}", self.name),
            reason: format!("name: {e}"),
        })?;
        for r in &self.resources {
            ResourceKey::parse(r)?;
        }
        if self.resources.is_empty() && !self.any_resource {
            return Err(Error::Configuration {
                name: format!("profile {:?}", self.name),
                reason: "names no resources, so its client would serve nothing: list the API prefixes it is for in `resources` (or set `any_resource` for a server that binds every token to the resource it was asked for)".into(),
            });
        }
        Ok(())
    }

    /// Sets the client secret (resolved from `client_secret_name` by the
    /// runtime, or given directly natively).
    pub fn with_client_secret(mut self, secret: ClientSecret) -> Self {
        self.client_secret = Some(secret);
        self
    }

    /// Whether a secret is named but not yet resolved.
    pub fn needs_secret(&self) -> bool {
        self.client_secret_name.is_some() && self.client_secret.is_none()
    }

    /// The client to use.
    pub fn client(&self) -> Result<Client> {
        match (&self.client_secret, &self.client_secret_name) {
            (Some(secret), _) => Ok(Client::confidential(
                self.client_id.clone(),
                secret.clone(),
                self.auth_method.unwrap_or(AuthMethod::ClientSecretPost),
            )),
            (None, Some(name)) => Err(Error::NoClient {
                issuer: format!(
                    "{} (profile {:?}: the secret {name:?} is not set)",
                    self.issuer, self.name
                ),
            }),
            (None, None) => Ok(Client::public(self.client_id.clone())),
        }
    }
}

/// The profile serving `url` (longest resource prefix first) and that
/// prefix as the provider's key.
pub fn find<'a>(
    profiles: &'a [ProviderProfile],
    url: &Url,
) -> Option<(&'a ProviderProfile, ResourceKey)> {
    let key = ResourceKey::from_url(url).ok()?;
    candidates(&key).into_iter().find_map(|candidate| {
        profiles.iter().find_map(|p| {
            p.resources
                .iter()
                .filter_map(|r| ResourceKey::parse(r).ok())
                .find(|r| *r == candidate)
                .map(|r| (p, r))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    #[test]
    fn profiles_from_json_name_the_bad_field_and_never_take_a_secret_inline() {
        let good = r#"[{"name": "acme", "resources": ["https://api.acme.example"], "issuer": "https://acme.example",
            "authorization_endpoint": "https://acme.example/authorize", "token_endpoint": "https://acme.example/token",
            "client_id": "c", "client_secret_name": "ACME_SECRET", "scope_separator": "comma",
            "rules": {"assume_bearer": true, "resource": "not_on_refresh"}}]"#;
        let list = ProviderProfile::list_from_json(good).unwrap();
        assert_eq!(
            list[0].rules.resource,
            crate::token::ResourceParam::NotOnRefresh
        );
        for (json, says) in [
            (
                good.replace("\"client_id\"", "\"client_idd\""),
                "client_idd",
            ),
            (
                good.replace("\"comma\"", "\"semicolon\""),
                "unknown variant at line 3 column 97, expected `space` or `comma`",
            ),
            (
                good.replace(
                    "ACME_SECRET\"",
                    "ACME_SECRET\", \"resolved_client_secret\": \"s3cr3t\"",
                ),
                "never written inline",
            ),
            (good.replace("\"acme\"", "\"a b\""), "name"),
            (
                good.replace("[\"https://api.acme.example\"]", "[\"not a url\"]"),
                "not a url",
            ),
        ] {
            let e = ProviderProfile::list_from_json(&json)
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{says}: {e}");
            assert!(!e.contains("s3cr3t"), "{e}");
        }
    }

    /// An API at `api` whose RFC 9728 metadata names `https://as.example`,
    /// a server that publishes metadata and offers no registration.
    fn naming_as_example(api: &str) -> crate::testing::Script {
        let origin = Url::parse(api).unwrap().origin().ascii_serialization();
        let path = Url::parse(api).unwrap().path().to_owned();
        let prm = format!("{origin}/.well-known/oauth-protected-resource{path}");
        crate::testing::Script::new()
            .raw(
                api,
                crate::http::HttpResponse::new(401, "").with_header(
                    "www-authenticate",
                    &format!(r#"Bearer resource_metadata="{prm}""#),
                ),
            )
            .json(
                &prm,
                200,
                serde_json::json!({"resource": api, "authorization_servers": ["https://as.example"]}),
            )
            .json(
                "https://as.example/.well-known/oauth-authorization-server",
                200,
                serde_json::json!({"issuer": "https://as.example", "authorization_endpoint": "https://as.example/authorize",
                    "token_endpoint": "https://as.example/token", "code_challenge_methods_supported": ["S256"]}),
            )
    }

    fn login(
        script: &crate::testing::Script,
        settings: &Settings,
        api: &str,
    ) -> Result<crate::flow::LoginStart> {
        let store = crate::store::memory::MemoryStore::default();
        crate::testing::start_login(script, &store, settings, api, None, 1000)
    }

    fn issuer_profile(any_resource: bool) -> ProviderProfile {
        let mut known = ProviderProfile::new(
            "as-example",
            &["https://api.example/v1"],
            "https://as.example",
            Url::parse("https://unused.example/a").unwrap(),
            Url::parse("https://unused.example/t").unwrap(),
            "configured-client",
        );
        known.any_resource = any_resource;
        known.authorization_params = vec![("prompt".into(), "consent".into())];
        known
    }

    /// A profile matched by issuer (`any_resource`): discovery runs, the
    /// profile's client is used instead of registering (the server offers
    /// none).
    #[test]
    fn a_discovered_server_named_by_a_profile_uses_its_client() {
        let api = "https://other.example/v1";
        let script = naming_as_example(api);
        let settings = Settings {
            profiles: vec![issuer_profile(true)],
            ..crate::testing::settings()
        };
        let start = login(&script, &settings, api).unwrap();
        let crate::flow::LoginStart::Redirect(to) = start else {
            panic!("{start:?}")
        };
        let q: std::collections::HashMap<_, _> = to.query_pairs().into_owned().collect();
        assert!(
            to.as_str().starts_with("https://as.example/authorize?"),
            "{to}"
        );
        assert_eq!(q["client_id"], "configured-client");
        assert_eq!(q["prompt"], "consent");
        assert_eq!(q["resource"], api);
        assert!(script
            .requests()
            .iter()
            .all(|r| !r.url.as_str().contains("register")));
    }

    /// A resource outside a profile's prefixes that names its issuer does
    /// not borrow the profile's client, and no authorization URL is made.
    #[test]
    fn a_resource_naming_a_profiles_issuer_does_not_borrow_its_client() {
        let api = "https://hostile.example/mcp";
        let settings = Settings {
            profiles: vec![issuer_profile(false)],
            ..crate::testing::settings()
        };
        let e = login(&naming_as_example(api), &settings, api).unwrap_err();
        assert!(
            matches!(&e, Error::ClientNotAllowedForResource { resource, issuer }
                if resource == api && issuer == "https://as.example"),
            "{e:?}"
        );
        assert_eq!(
            e.kind(),
            crate::error::ErrorKind::ClientNotAllowedForResource
        );
        assert!(e.to_string().contains(api), "{e}");
    }

    /// The same for a pre-registered client: used under its `resources`
    /// (and with `any_resource` anywhere), refused elsewhere.
    #[test]
    fn a_pre_registered_client_serves_only_its_resources() {
        let pre = |any_resource| {
            let mut c = crate::registration::PreRegisteredClient::new(
                "https://as.example",
                Client::public("app-at-as"),
                &["https://api.example/v1"],
            );
            c.any_resource = any_resource;
            c
        };
        let settings = |any_resource| {
            let mut s = crate::testing::settings();
            s.clients.pre_registered = vec![pre(any_resource)];
            s
        };
        let client_id = |start: crate::flow::LoginStart| match start {
            crate::flow::LoginStart::Redirect(to) => to
                .query_pairs()
                .find(|(k, _)| k == "client_id")
                .map(|(_, v)| v.into_owned()),
            other => panic!("{other:?}"),
        };
        let own = "https://api.example/v1/items";
        assert_eq!(
            client_id(login(&naming_as_example(own), &settings(false), own).unwrap()).as_deref(),
            Some("app-at-as")
        );
        for hostile in ["https://hostile.example/mcp", "https://api.example/v10"] {
            let e = login(&naming_as_example(hostile), &settings(false), hostile).unwrap_err();
            assert!(
                matches!(e, Error::ClientNotAllowedForResource { .. }),
                "{hostile}: {e:?}"
            );
        }
        let anywhere = "https://hostile.example/mcp";
        assert_eq!(
            client_id(login(&naming_as_example(anywhere), &settings(true), anywhere).unwrap())
                .as_deref(),
            Some("app-at-as")
        );
    }

    #[test]
    fn a_client_for_no_resource_is_a_configuration_problem() {
        let mut p = issuer_profile(false);
        p.resources.clear();
        assert!(p.check().unwrap_err().to_string().contains("any_resource"));
        p.any_resource = true;
        p.check().unwrap();
        let mut c = crate::registration::PreRegisteredClient::new(
            "https://as.example",
            Client::public("x"),
            &[],
        );
        assert!(c.check().unwrap_err().contains("resources"));
        c.resources = vec!["not a url".into()];
        assert!(c.check().is_err());
        c.resources = vec!["https://api.example".into()];
        c.check().unwrap();
    }

    #[test]
    fn the_longest_resource_prefix_wins_at_segment_boundaries() {
        let url = |s: &str| Url::parse(s).unwrap();
        let mut narrow = builtin::github("a", "S");
        narrow.name = "narrow".into();
        narrow.resources = vec!["https://api.github.com/repos".into()];
        let profiles = vec![builtin::github("a", "S"), narrow];
        let name = |u: &str| find(&profiles, &url(u)).map(|(p, _)| p.name.clone());
        assert_eq!(
            name("https://api.github.com/repos/x").as_deref(),
            Some("narrow")
        );
        assert_eq!(
            name("https://api.github.com/reposx").as_deref(),
            Some("github")
        );
        assert_eq!(name("https://api.github.com").as_deref(), Some("github"));
        assert_eq!(name("https://github.com/x"), None);
    }

    #[test]
    fn a_profile_login_asks_its_scopes_and_parameters_with_pkce_and_no_probe() {
        let mut slack = builtin::slack("cid", "S").with_client_secret(ClientSecret::new("sec"));
        slack.authorization_params = vec![("team".into(), "T1".into())];
        let settings = Settings {
            profiles: vec![slack],
            ..crate::testing::settings()
        };
        let script = crate::testing::Script::new();
        let store = crate::store::memory::MemoryStore::default();
        let start = crate::testing::start_login(
            &script,
            &store,
            &settings,
            "https://slack.com/api/users.info",
            Some("chat:write"),
            1000,
        )
        .unwrap();
        assert!(script.requests().is_empty(), "no probe, no discovery");
        let crate::flow::LoginStart::Redirect(to) = start else {
            panic!()
        };
        let q: std::collections::HashMap<_, _> = to.query_pairs().into_owned().collect();
        assert_eq!(to.path(), "/oauth/v2/authorize");
        assert_eq!(q["user_scope"], "users:read,chat:write");
        assert!(
            !q.contains_key("scope") && !q.contains_key("resource"),
            "{q:?}"
        );
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["team"], "T1");
        assert_eq!(
            q["redirect_uri"],
            "https://app.example/oauth/callback/slack"
        );
    }
}
