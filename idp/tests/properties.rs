//! Property tests: the parsers never panic on any input, what they are given
//! well-formed comes back intact, and a token is only ever attached under its
//! provider's prefix, whatever a URL hides in percent-encoded separators.

use idp::authorize::CallbackParams;
use idp::challenge::{self, BearerChallenge};
use idp::matching::{longest_match, ResourceKey};
use proptest::prelude::*;

/// Path segments that matter for matching: letters, dots, and encoded
/// separators and dots in either case.
fn segment() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            "a", "b", "v1", ".", "..", "%2F", "%2f", "%2E", "%2e", "%5C", "%5c", "%2E%2E", "x",
        ]),
        1..4,
    )
    .prop_map(|parts| parts.concat())
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 0..5)
        .prop_map(|s| s.iter().map(|p| format!("/{p}")).collect::<String>())
}

/// The key of a URL after one full percent-decoding of its path, `\` read
/// as `/`, and dot segments resolved: what a lenient server may route on.
fn fully_decoded(url: &str) -> Option<ResourceKey> {
    let parsed = url::Url::parse(url).ok()?;
    let decoded: String = percent_decode(parsed.path()).replace('\\', "/");
    let mut again = parsed.clone();
    again.set_path(&decoded);
    ResourceKey::parse(again.as_str()).ok()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

proptest! {
    #[test]
    fn challenge_parser_never_panics(values in prop::collection::vec(".{0,200}", 0..4)) {
        let _ = challenge::parse(values.iter().map(String::as_str));
        let _ = BearerChallenge::from_headers(values.iter().map(String::as_str));
    }

    #[test]
    fn challenge_parameters_round_trip(
        metadata in "[ -~]{0,80}",
        scope in "[a-z:]{1,12}( [a-z:]{1,12}){0,3}",
    ) {
        let quoted = metadata.replace('\\', "\\\\").replace('"', "\\\"");
        let header = format!("Bearer realm=\"x\", scope=\"{scope}\", resource_metadata=\"{quoted}\"");
        let c = BearerChallenge::from_headers([header.as_str()]).unwrap().unwrap();
        prop_assert_eq!(c.resource_metadata.as_deref(), Some(metadata.as_str()));
        prop_assert_eq!(c.scope.as_deref(), Some(scope.as_str()));
    }

    #[test]
    fn callback_parser_never_panics_and_round_trips(
        junk in ".{0,200}",
        code in ".{1,40}",
        state in ".{1,40}",
        iss in ".{1,40}",
    ) {
        let _ = CallbackParams::from_query(&junk);
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("code", &code)
            .append_pair("state", &state)
            .append_pair("iss", &iss)
            .append_pair("code", "second-is-ignored")
            .finish();
        let p = CallbackParams::from_query(&query);
        prop_assert_eq!(p.code.as_ref().map(|c| c.secret().to_owned()), Some(code));
        prop_assert_eq!(p.state, Some(state));
        prop_assert_eq!(p.iss, Some(iss));
    }

    #[test]
    fn resource_keys_never_panic(input in ".{0,200}") {
        if let Ok(k) = ResourceKey::parse(&input) {
            // A key parses back to itself.
            prop_assert_eq!(ResourceKey::parse(k.as_str()).unwrap(), k.clone());
            let _ = k.covers_request(&input);
        }
    }

    #[test]
    fn a_token_is_only_attached_under_its_prefix(prefix in path(), rest in path()) {
        let Ok(key) = ResourceKey::parse(&format!("https://api.example{prefix}")) else {
            return Ok(());
        };
        let url = format!("https://api.example{prefix}{rest}");
        if key.covers_request(&url) {
            let plain = ResourceKey::parse(&url).unwrap();
            prop_assert!(key.covers(&plain), "{} attached to {}", key, url);
            if let (Some(own), Some(decoded)) = (fully_decoded(key.as_str()), fully_decoded(&url)) {
                prop_assert!(own.covers(&decoded), "{} attached to {} ({} under {} decoded)", key, url, decoded, own);
            }
        }
    }

    #[test]
    fn the_longest_match_covers_the_url_and_none_longer_does(
        stored in prop::collection::vec(path(), 0..6),
        rest in path(),
    ) {
        let stored: Vec<ResourceKey> = stored
            .iter()
            .filter_map(|p| ResourceKey::parse(&format!("https://api.example{p}")).ok())
            .collect();
        let Ok(url) = ResourceKey::parse(&format!("https://api.example{rest}")) else {
            return Ok(());
        };
        match longest_match(&url, &stored) {
            Some(hit) => {
                prop_assert!(hit.covers(&url));
                prop_assert!(stored.iter().all(|k| !k.covers(&url) || k.as_str().len() <= hit.as_str().len()));
            }
            None => prop_assert!(stored.iter().all(|k| !k.covers(&url))),
        }
    }
}

/// Every spelling the `url` crate accepts for an IPv4 address: dotted,
/// one decimal number, hex, octal octets, and IPv4-mapped IPv6.
fn spellings(a: std::net::Ipv4Addr) -> Vec<String> {
    let n = u32::from(a);
    let [b0, b1, b2, b3] = a.octets();
    vec![
        a.to_string(),
        n.to_string(),
        format!("0x{n:x}"),
        format!("0{b0:o}.0{b1:o}.0{b2:o}.0{b3:o}"),
        format!("[::ffff:{a}]"),
        format!("[::ffff:{:x}:{:x}]", n >> 16, n & 0xffff),
    ]
}

fn in_range(base: [u8; 4], prefix: u32) -> impl Strategy<Value = std::net::Ipv4Addr> {
    any::<u32>().prop_map(move |r| {
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        std::net::Ipv4Addr::from((u32::from_be_bytes(base) & mask) | (r & !mask))
    })
}

/// The private, loopback, link-local and other special IPv4 ranges.
fn special_v4() -> impl Strategy<Value = std::net::Ipv4Addr> {
    prop_oneof![
        in_range([0, 0, 0, 0], 8),
        in_range([10, 0, 0, 0], 8),
        in_range([100, 64, 0, 0], 10),
        in_range([127, 0, 0, 0], 8),
        in_range([169, 254, 0, 0], 16),
        in_range([172, 16, 0, 0], 12),
        in_range([192, 168, 0, 0], 16),
        in_range([198, 18, 0, 0], 15),
        in_range([224, 0, 0, 0], 4),
        in_range([240, 0, 0, 0], 4),
    ]
}

proptest! {
    /// No address of a private or special range is contacted under the
    /// strict policy, in any spelling, and none but loopback in development.
    #[test]
    fn special_addresses_are_refused_in_every_spelling(a in special_v4()) {
        for host in spellings(a) {
            let url = format!("https://{host}/x");
            prop_assert!(idp::policy::Policy::STRICT.parse(&url).is_err(), "{url}");
            if !a.is_loopback() {
                prop_assert!(idp::policy::Policy::LOOPBACK_DEV.parse(&url).is_err(), "{url}");
            }
        }
    }

    /// Special IPv6 ranges: unique-local, link-local, multicast, and
    /// addresses that embed a special IPv4 one.
    #[test]
    fn special_v6_addresses_are_refused(
        first in prop_oneof![0xfc00u16..=0xfdff, 0xfe80u16..=0xfebf, 0xff00u16..=0xffff],
        rest in any::<[u16; 7]>(),
        v4 in special_v4(),
    ) {
        let mut s = [first, 0, 0, 0, 0, 0, 0, 0];
        s[1..].copy_from_slice(&rest);
        let a = std::net::Ipv6Addr::from(s);
        prop_assert!(idp::policy::Policy::STRICT.parse(&format!("https://[{a}]/")).is_err(), "{a}");
        let n = u32::from(v4);
        for embedded in [
            format!("[64:ff9b::{:x}:{:x}]", n >> 16, n & 0xffff),
            format!("[2002:{:x}:{:x}::1]", n >> 16, n & 0xffff),
        ] {
            let url = format!("https://{embedded}/");
            prop_assert!(idp::policy::Policy::STRICT.parse(&url).is_err(), "{url}");
        }
    }

    /// Public addresses pass, in every spelling.
    #[test]
    fn public_addresses_pass(a in any::<u32>().prop_map(std::net::Ipv4Addr::from)) {
        prop_assume!(idp::policy::reach_v4(a) == idp::policy::Reach::Public);
        let [b0, b1, ..] = a.octets();
        // Outside every special range by construction of the check above;
        // spot-check it against the standard library's own view.
        prop_assert!(!a.is_private() && !a.is_loopback() && !a.is_link_local() && !a.is_multicast() && b0 != 0);
        prop_assert!(!(b0 == 100 && (64..128).contains(&b1)));
        for host in spellings(a) {
            let url = format!("https://{host}/x");
            prop_assert!(idp::policy::Policy::STRICT.parse(&url).is_ok(), "{url}");
        }
    }
}
