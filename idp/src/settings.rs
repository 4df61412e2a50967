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
}

/// When a login binds its tokens to a key of their own (DPoP, RFC 9449;
/// needs the `signing` feature, without which tokens stay Bearer tokens).
/// Provider profiles describe servers without DPoP and never bind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DpopUse {
    /// Where the server lists ES256 in `dpop_signing_alg_values_supported`.
    #[default]
    Advertised,
    /// At every discovered server (one that takes proofs without saying
    /// so); a server that answers a Bearer token still gets its proofs
    /// ignored, and the token is used as Bearer.
    Always,
    /// Never: Bearer tokens only.
    Never,
}

impl DpopUse {
    fn is_default(&self) -> bool {
        *self == Self::Advertised
    }

    /// Whether a login at a server that lists `algs` binds its tokens.
    pub fn wanted(self, algs: Option<&[String]>) -> bool {
        crate::dpop::AVAILABLE
            && match self {
                Self::Advertised => algs.is_some_and(crate::dpop::supported_by),
                Self::Always => true,
                Self::Never => false,
            }
    }
}

impl Settings {
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
    use super::DpopUse;

    /// What `IDP_DPOP` may say, and when each binds.
    #[test]
    fn dpop_use_reads_its_names_and_binds_only_where_asked() {
        let read = |s: &str| serde_json::from_value::<DpopUse>(s.into()).ok();
        assert_eq!(read("advertised"), Some(DpopUse::Advertised));
        assert_eq!(read("always"), Some(DpopUse::Always));
        assert_eq!(read("never"), Some(DpopUse::Never));
        assert_eq!(read("sometimes"), None);
        let es256 = ["ES256".to_owned()];
        let rs256 = ["RS256".to_owned()];
        let signs = crate::dpop::AVAILABLE;
        assert_eq!(DpopUse::Advertised.wanted(Some(&es256)), signs);
        assert!(!DpopUse::Advertised.wanted(Some(&rs256)));
        assert!(!DpopUse::Advertised.wanted(None));
        assert_eq!(DpopUse::Always.wanted(None), signs);
        assert!(!DpopUse::Never.wanted(Some(&es256)));
    }
}
