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
