//! Which URLs the engine will talk to.

use crate::error::{Error, Result};
use url::{Host, Url};

/// Transport rules for authorization servers and metadata.
///
/// Every authorization server URL (issuer, endpoints, metadata locations) must be
/// https. With `allow_insecure_loopback`, `http` is also accepted for loopback
/// hosts (`localhost`, `127.0.0.0/8`, `::1`): for local development and tests
/// only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Policy {
    /// Accept `http://` for loopback hosts.
    pub allow_insecure_loopback: bool,
    /// Accept protected resource metadata whose `resource` is broader than
    /// the URL being connected (a parent path or the origin) even when the
    /// document was not fetched from that broader resource's own metadata
    /// URL, as RFC 9728 §3.3 requires. Off by default: on a host shared by
    /// several parties, one path could otherwise claim the whole host and
    /// receive (or replace) the grants of every other path on it.
    pub allow_broader_resource: bool,
}

impl Policy {
    /// The production policy: https only.
    pub const STRICT: Policy = Policy {
        allow_insecure_loopback: false,
        allow_broader_resource: false,
    };

    /// Accepts http on loopback hosts too (development and tests).
    pub const LOOPBACK_DEV: Policy = Policy {
        allow_insecure_loopback: true,
        allow_broader_resource: false,
    };

    /// Checks one URL.
    pub fn check(&self, url: &Url) -> Result<()> {
        match url.scheme() {
            "https" if url.host().is_some() => Ok(()),
            "http" if self.allow_insecure_loopback && is_loopback(url) => Ok(()),
            "http" | "https" => Err(Error::InsecureUrl {
                url: url.to_string(),
            }),
            other => Err(Error::InvalidUrl {
                input: url.to_string(),
                reason: format!("scheme {other:?} is not http(s)"),
            }),
        }
    }

    /// Parses a URL string and checks it.
    pub fn parse(&self, input: &str) -> Result<Url> {
        let url = Url::parse(input).map_err(|e| Error::InvalidUrl {
            input: input.to_owned(),
            reason: e.to_string(),
        })?;
        self.check(&url)?;
        Ok(url)
    }
}

/// Whether the URL's host is a loopback name or address.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(a)) => a.is_loopback(),
        Some(Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_only_unless_loopback_allowed() {
        let strict = Policy::STRICT;
        let dev = Policy::LOOPBACK_DEV;
        assert!(strict.parse("https://as.example/x").is_ok());
        assert!(strict.parse("http://127.0.0.1:9000").is_err());
        assert!(dev.parse("http://127.0.0.1:9000").is_ok());
        assert!(dev.parse("http://127.9.9.9").is_ok());
        assert!(dev.parse("http://[::1]:1").is_ok());
        assert!(dev.parse("http://localhost:1").is_ok());
        assert!(dev.parse("http://as.example").is_err());
        assert!(dev.parse("http://10.0.0.1").is_err());
        assert!(dev.parse("http://localhost.evil.com").is_err());
        assert!(dev.parse("ftp://127.0.0.1").is_err());
        assert!(dev.parse("nonsense").is_err());
    }
}
