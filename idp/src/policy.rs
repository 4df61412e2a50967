//! Which URLs the engine will talk to: one policy for every URL the SDK
//! fetches on someone else's word (resource metadata, authorization
//! servers, their endpoints, redirects of an authed call, the relays of an
//! app), in both runtimes.

use crate::error::{Error, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

/// Transport and address rules for every URL the SDK fetches.
///
/// - https only; with `allow_insecure_loopback`, `http` is also accepted for
///   loopback hosts (`localhost`, `127.0.0.0/8`, `::1`): for local
///   development and tests only.
/// - No private, loopback (outside development), link-local, unique-local,
///   carrier-grade NAT, multicast, reserved or cloud metadata address,
///   however it is spelt (decimal, octal and hex IPv4, IPv4-mapped and
///   -embedding IPv6: the `url` crate reads them all as the address they
///   name). The native runtime also checks the addresses a name resolves to
///   when it connects ([`Policy::allows_ip`]); on Workers, `fetch` reaches
///   only the public Internet.
/// - `allow_private_addresses` lets a deployment that does need a private
///   API reach private and loopback addresses: every server and resource
///   can then make the SDK send requests into that network. Link-local
///   (cloud metadata), multicast and reserved addresses stay refused.
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
    /// Accept private and loopback addresses (see the type's docs for the
    /// risk). Off by default.
    #[serde(default)]
    pub allow_private_addresses: bool,
}

/// What an address is, as far as the policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// A public address.
    Public,
    /// Loopback (`127.0.0.0/8`, `::1`, `localhost`).
    Loopback,
    /// A private network: RFC 1918, carrier-grade NAT, unique-local,
    /// documentation and benchmarking ranges.
    Private,
    /// Never to be contacted: unspecified, link-local (where cloud metadata
    /// services answer), multicast, broadcast, reserved.
    Never,
}

impl Reach {
    fn describe(self) -> &'static str {
        match self {
            Reach::Public => "public",
            Reach::Loopback => "a loopback address",
            Reach::Private => "a private address",
            Reach::Never => "a link-local, unspecified, multicast or reserved address",
        }
    }
}

/// What an IPv4 address is.
pub fn reach_v4(a: Ipv4Addr) -> Reach {
    let [b0, b1, b2, _] = a.octets();
    match (b0, b1, b2) {
        (0, _, _) => Reach::Never,
        (127, _, _) => Reach::Loopback,
        (169, 254, _) => Reach::Never,
        (224..=255, _, _) => Reach::Never,
        (10, _, _) | (192, 168, _) => Reach::Private,
        (172, 16..=31, _) => Reach::Private,
        (100, 64..=127, _) => Reach::Private,
        (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Reach::Private,
        (198, 18..=19, _) => Reach::Private,
        _ => Reach::Public,
    }
}

/// What an IPv6 address is; one that carries an IPv4 address (mapped,
/// compatible, NAT64, 6to4) is what that IPv4 address is.
pub fn reach_v6(a: Ipv6Addr) -> Reach {
    let s = a.segments();
    if a.is_unspecified() {
        return Reach::Never;
    }
    if a.is_loopback() {
        return Reach::Loopback;
    }
    // The AWS instance metadata service's IPv6 address.
    if s == [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254] {
        return Reach::Never;
    }
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible).
        [0, 0, 0, 0, 0, 0xffff, hi, lo] | [0, 0, 0, 0, 0, 0, hi, lo] => {
            return reach_v4(v4(hi, lo))
        }
        // 64:ff9b::a.b.c.d (NAT64).
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => return reach_v4(v4(hi, lo)),
        // 2002:aabb:ccdd::/48 (6to4).
        [0x2002, hi, lo, ..] => return reach_v4(v4(hi, lo)),
        _ => {}
    }
    match s[0] {
        0xfe80..=0xfebf => Reach::Never,
        0xff00..=0xffff => Reach::Never,
        0xfc00..=0xfdff | 0xfec0..=0xfeff => Reach::Private,
        0x2001 if s[1] == 0x0db8 => Reach::Private,
        0x0000..=0x1fff => Reach::Never,
        _ => Reach::Public,
    }
}

/// What an address is.
pub fn reach_ip(ip: IpAddr) -> Reach {
    match ip {
        IpAddr::V4(a) => reach_v4(a),
        IpAddr::V6(a) => reach_v6(a),
    }
}

/// What a URL's host is: by address for an IP literal; `localhost` and
/// names under `.localhost` are loopback, cloud metadata names are never to
/// be contacted; other names are public here (the native runtime checks
/// what they resolve to).
pub fn reach_host(host: &Host<&str>) -> Reach {
    match host {
        Host::Ipv4(a) => reach_v4(*a),
        Host::Ipv6(a) => reach_v6(*a),
        Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if d == "localhost" || d.ends_with(".localhost") {
                Reach::Loopback
            } else if d == "metadata.google.internal" || d == "metadata" {
                Reach::Never
            } else {
                Reach::Public
            }
        }
    }
}

impl Policy {
    /// The production policy: https only, public addresses only.
    pub const STRICT: Policy = Policy {
        allow_insecure_loopback: false,
        allow_broader_resource: false,
        allow_private_addresses: false,
    };

    /// Accepts http on loopback hosts too (development and tests).
    pub const LOOPBACK_DEV: Policy = Policy {
        allow_insecure_loopback: true,
        allow_broader_resource: false,
        allow_private_addresses: false,
    };

    /// Whether an address may be contacted.
    pub fn allows(&self, reach: Reach) -> bool {
        match reach {
            Reach::Public => true,
            Reach::Loopback => self.allow_insecure_loopback || self.allow_private_addresses,
            Reach::Private => self.allow_private_addresses,
            Reach::Never => false,
        }
    }

    /// Whether a resolved address may be contacted (the native runtime asks
    /// this of every address a name resolves to, when it connects).
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.allows(reach_ip(ip))
    }

    /// Checks one URL: its scheme, then its host's address.
    pub fn check(&self, url: &Url) -> Result<()> {
        match url.scheme() {
            "https" if url.host().is_some() => {}
            "http" if self.allow_insecure_loopback && is_loopback(url) => {}
            "http" | "https" => {
                return Err(Error::InsecureUrl {
                    url: url.to_string(),
                })
            }
            other => {
                return Err(Error::InvalidUrl {
                    input: url.to_string(),
                    reason: format!("scheme {other:?} is not http(s)"),
                })
            }
        }
        let reach = url.host().map_or(Reach::Never, |h| reach_host(&h));
        if self.allows(reach) {
            Ok(())
        } else {
            Err(Error::BlockedAddress {
                url: crate::matching::redact_userinfo(url),
                reason: reach.describe(),
            })
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
    url.host()
        .is_some_and(|h| reach_host(&h) == Reach::Loopback)
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

    #[test]
    fn private_and_special_addresses_are_refused_in_every_spelling() {
        let strict = Policy::STRICT;
        let dev = Policy::LOOPBACK_DEV;
        let private = Policy {
            allow_private_addresses: true,
            ..Policy::STRICT
        };
        for url in [
            "https://10.0.0.1/",
            "https://167772161/",
            "https://0x0a000001/",
            "https://012.0.0.1/",
            "https://10.1/",
            "https://172.16.5.4/",
            "https://192.168.1.1/",
            "https://100.64.0.1/",
            "https://[fd00::1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://[::ffff:a00:1]/",
            "https://[64:ff9b::a00:1]/",
            "https://[2002:a00:1::]/",
        ] {
            assert!(
                matches!(strict.parse(url), Err(Error::BlockedAddress { .. })),
                "{url}"
            );
            assert!(dev.parse(url).is_err(), "{url}");
            assert!(private.parse(url).is_ok(), "{url}: allowed when private is");
        }
        for url in [
            "https://169.254.169.254/latest/meta-data/",
            "https://2852039166/",
            "https://0xa9fea9fe/",
            "https://[::ffff:169.254.169.254]/",
            "https://[fe80::1]/",
            "https://[fd00:ec2::254]/",
            "https://0.0.0.0/",
            "https://0/",
            "https://[::]/",
            "https://224.0.0.1/",
            "https://255.255.255.255/",
            "https://metadata.google.internal/",
        ] {
            let never = strict.parse(url).is_err()
                && dev.parse(url).is_err()
                && private.parse(url).is_err();
            assert!(never, "{url}");
        }
        for url in [
            "https://127.0.0.1/",
            "https://2130706433/",
            "https://0x7f.1/",
            "https://[::ffff:127.0.0.1]/",
            "https://app.localhost/",
        ] {
            assert!(strict.parse(url).is_err(), "{url}");
            assert!(dev.parse(url).is_ok(), "{url}: loopback in development");
        }
        for url in [
            "https://8.8.8.8/",
            "https://[2606:4700::1111]/",
            "https://api.example.com/",
            "https://172.32.0.1/",
            "https://100.128.0.1/",
        ] {
            assert!(strict.parse(url).is_ok(), "{url}");
        }
    }
}
