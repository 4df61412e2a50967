//! What a runtime hands the engine besides I/O: the deployment's
//! [`Settings`] (built once, serialisable, so the Workers runtime can send
//! them to a user's object) and fresh randomness for each authorization
//! request ([`Entropy`]). The engine draws no random numbers and reads no
//! configuration of its own.

use crate::policy::Policy;
use crate::registration::{ClientConfig, ClientInfo};
use url::Url;

/// Deployment-wide settings of the flow (serialisable: the Workers runtime
/// sends them to the user's object with each login).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    /// Which URLs may be used.
    pub policy: Policy,
    /// How the app introduces itself.
    pub client_info: ClientInfo,
    /// Pre-registered clients and the client ID metadata document URL.
    pub clients: ClientConfig,
    /// Where callbacks arrive (`{base}{prefix}/callback`); each authorization
    /// server gets its own redirect URI under it (see [`crate::callback`]).
    pub callback_base: Url,
    /// Servers without discovery, by resource prefix ([`crate::profile`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<crate::profile::ProviderProfile>,
    /// When a grant's tokens are bound to a key of its own (DPoP).
    #[serde(default, skip_serializing_if = "DpopUse::is_default")]
    pub dpop: DpopUse,
    /// Resources (URL prefixes) whose tokens are bound whatever they say
    /// ([`DpopUse::Always`] for them alone): a resource that takes proofs
    /// without saying so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dpop_always: Vec<String>,
    /// Origins besides its own where a discovered authorization server (by
    /// issuer) may have its device authorization endpoint, the token
    /// endpoint a device login polls and the page the person is sent to:
    /// for a provider that splits them (Google's device flow lives on
    /// `https://oauth2.googleapis.com` and `https://www.google.com`).
    /// Without an entry, a device login at a discovered server uses only
    /// the issuer's own origin ([`crate::flow::start_device_login`]).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub device_origins: std::collections::BTreeMap<String, Vec<String>>,
}

/// When a login binds its tokens to a key of their own (DPoP, RFC 9449;
/// needs the `signing` feature, without which tokens stay Bearer tokens).
/// Binding needs the authorization server to list ES256 in
/// `dpop_signing_alg_values_supported` (except with [`DpopUse::Always`]),
/// and by default also the resource to say it takes bound tokens: a
/// resource that takes Bearer tokens only refuses a bound token on every
/// call, whatever its authorization server offers. Provider profiles
/// describe servers without DPoP and never bind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DpopUse {
    /// Where the resource says it takes DPoP-bound tokens (a `DPoP`
    /// challenge in its `WWW-Authenticate`, RFC 9449 §7.1, or
    /// `dpop_signing_alg_values_supported` or
    /// `dpop_bound_access_tokens_required` in its metadata, RFC 9728 §2)
    /// and the authorization server lists ES256.
    #[default]
    Accepted,
    /// Wherever the authorization server lists ES256, whatever the
    /// resource says (a resource that takes Bearer tokens only then
    /// refuses every call).
    Advertised,
    /// At every discovered server (one that takes proofs without saying
    /// so); a server that answers a Bearer token still gets its proofs
    /// ignored, and the token is used as Bearer.
    Always,
    /// Never: Bearer tokens only.
    Never,
}

/// What a protected resource said about DPoP before a login: in its
/// challenge and in its metadata. Read by [`DpopUse::wanted`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResourceDpop<'a> {
    /// The `algs` of a `DPoP` challenge, when the resource sent one (an
    /// empty list when it named none).
    pub challenge: Option<&'a [String]>,
    /// `dpop_signing_alg_values_supported` of its metadata.
    pub metadata: Option<&'a [String]>,
    /// `dpop_bound_access_tokens_required` of its metadata.
    pub required: bool,
}

impl ResourceDpop<'_> {
    /// Whether the resource said it takes proofs idp signs: a `DPoP`
    /// challenge (naming ES256, or no algorithm), its metadata listing
    /// ES256, or its metadata requiring bound tokens.
    pub fn accepts(&self) -> bool {
        let names = |algs: &[String]| algs.iter().any(|a| a == crate::dpop::ALGORITHM);
        self.challenge.is_some_and(|a| a.is_empty() || names(a))
            || self.metadata.is_some_and(names)
            || self.required
    }
}

impl DpopUse {
    fn is_default(&self) -> bool {
        *self == Self::Accepted
    }

    /// Whether a login at an authorization server that lists `algs`, for a
    /// resource that said `resource`, binds its tokens.
    pub fn wanted(self, algs: Option<&[String]>, resource: ResourceDpop<'_>) -> bool {
        let offered = algs.is_some_and(crate::dpop::supported_by);
        crate::dpop::AVAILABLE
            && match self {
                Self::Accepted => offered && resource.accepts(),
                Self::Advertised => offered,
                Self::Always => true,
                Self::Never => false,
            }
    }
}

impl Settings {
    /// When a login for `resource` binds its tokens: [`DpopUse::Always`]
    /// under a prefix of [`Settings::dpop_always`], else [`Settings::dpop`].
    pub fn dpop_for(&self, resource: &str) -> DpopUse {
        if crate::matching::prefixes_cover(&self.dpop_always, resource) {
            DpopUse::Always
        } else {
            self.dpop
        }
    }

    /// The issuer at which the app holds `client_id` as its own client (a
    /// pre-registered client's, a provider profile's), if it does.
    pub fn holder_of(&self, client_id: &str) -> Option<&str> {
        let pre = self.clients.pre_registered.iter();
        pre.filter(|p| p.client.client_id == client_id)
            .map(|p| p.issuer.as_str())
            .chain(
                self.profiles
                    .iter()
                    .filter(|p| p.client_id == client_id)
                    .map(|p| p.issuer.as_str()),
            )
            .next()
    }

    /// Whether `url` may serve a device login at the discovered server
    /// `issuer`: on the issuer's origin, or on one the operator allowed for
    /// it ([`Settings::device_origins`]).
    pub fn device_origin_allowed(&self, issuer: &str, url: &Url) -> bool {
        let origin = url.origin();
        Url::parse(issuer).is_ok_and(|i| i.origin() == origin)
            || self.device_origins.get(issuer).is_some_and(|allowed| {
                allowed
                    .iter()
                    .filter_map(|a| Url::parse(a).ok())
                    .any(|a| a.origin() == origin)
            })
    }

    /// The redirect URI used with `issuer`: `{callback_base}/{callback id}`.
    pub fn redirect_uri_for(&self, issuer: &str) -> Url {
        crate::callback::redirect_uri(&self.callback_base, &self.clients.callback_id(issuer))
    }
}

/// Fresh random bytes for one authorization request.
#[derive(Clone, Copy)]
pub struct Entropy {
    /// For the PKCE verifier.
    pub verifier: [u8; 32],
    /// For the state.
    pub state: [u8; 32],
    /// For the grant's DPoP key, when the server takes proofs
    /// ([`crate::dpop`]).
    pub dpop: [u8; 32],
}

impl std::fmt::Debug for Entropy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Entropy([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::{DpopUse, ResourceDpop};

    /// What `IDP_DPOP` may say, and when each binds.
    #[test]
    fn dpop_use_reads_its_names_and_binds_only_where_asked() {
        let read = |s: &str| serde_json::from_value::<DpopUse>(s.into()).ok();
        assert_eq!(read("accepted"), Some(DpopUse::Accepted));
        assert_eq!(DpopUse::default(), DpopUse::Accepted);
        assert_eq!(read("advertised"), Some(DpopUse::Advertised));
        assert_eq!(read("always"), Some(DpopUse::Always));
        assert_eq!(read("never"), Some(DpopUse::Never));
        assert_eq!(read("sometimes"), None);
        let es256 = ["ES256".to_owned()];
        let rs256 = ["RS256".to_owned()];
        let signs = crate::dpop::AVAILABLE;
        let silent = ResourceDpop::default();
        let challenged = ResourceDpop {
            challenge: Some(&[]),
            ..silent
        };
        assert_eq!(DpopUse::Advertised.wanted(Some(&es256), silent), signs);
        assert!(!DpopUse::Advertised.wanted(Some(&rs256), challenged));
        assert!(!DpopUse::Advertised.wanted(None, challenged));
        assert_eq!(DpopUse::Always.wanted(None, silent), signs);
        assert!(!DpopUse::Never.wanted(Some(&es256), challenged));
        // The default: only where the resource said it takes bound tokens.
        assert!(!DpopUse::Accepted.wanted(Some(&es256), silent));
        assert_eq!(DpopUse::Accepted.wanted(Some(&es256), challenged), signs);
        assert!(!DpopUse::Accepted.wanted(None, challenged));
        assert!(!DpopUse::Accepted.wanted(Some(&rs256), challenged));
    }

    /// The operator's own list binds its resources whatever they say.
    #[test]
    fn listed_resources_are_bound_always() {
        let mut s = crate::testing::settings();
        s.dpop_always = vec!["https://mcp.example/v1".into()];
        assert_eq!(s.dpop_for("https://mcp.example/v1/mcp"), DpopUse::Always);
        assert_eq!(s.dpop_for("https://mcp.example/v10"), DpopUse::Accepted);
        assert_eq!(s.dpop_for("https://other.example/v1"), DpopUse::Accepted);
    }

    /// Each way a resource says it takes bound tokens, and the ways it
    /// does not.
    #[test]
    fn a_resource_takes_bound_tokens_where_it_says_so() {
        let es256 = ["ES256".to_owned()];
        let ps256 = ["PS256".to_owned()];
        let says = |challenge, metadata, required| {
            ResourceDpop {
                challenge,
                metadata,
                required,
            }
            .accepts()
        };
        assert!(!says(None, None, false));
        assert!(says(Some(&[]), None, false));
        assert!(says(Some(&es256), None, false));
        assert!(!says(Some(&ps256), None, false));
        assert!(says(None, Some(&es256), false));
        assert!(!says(None, Some(&ps256), false));
        assert!(!says(None, Some(&[]), false));
        assert!(says(None, None, true));
    }
}
