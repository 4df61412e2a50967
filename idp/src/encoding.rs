//! Encodings shared by the protocol modules.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;

/// base64url without padding (RFC 7636 §3, RFC 4648 §5).
pub(crate) fn base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding; `None` if it is not.
#[cfg(feature = "workers")]
pub(crate) fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Decodes JSON bytes with the text parser (`serde_json::from_str`): every
/// JSON document idp reads goes through that one parser, where
/// `from_slice` would add a second copy of it, and of each type's decoder,
/// to a Worker's script.
pub(crate) fn json_from_bytes<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> serde_json::Result<T> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => Err(serde::de::Error::custom("the body is not UTF-8")),
    }
}

/// `application/x-www-form-urlencoded` body from pairs.
pub(crate) fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish().into_bytes()
}

/// One component of HTTP Basic client credentials, form-urlencoded as RFC 6749
/// §2.3.1 asks.
fn form_component(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The value of an `Authorization: Basic` header for a client id and secret.
pub(crate) fn basic_credentials(id: &str, secret: &str) -> String {
    let joined = format!("{}:{}", form_component(id), form_component(secret));
    format!("Basic {}", STANDARD.encode(joined))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_encoded_first() {
        // "a b:c" -> "a+b%3Ac"; secret "p@ss/w" -> "p%40ss%2Fw"
        let h = basic_credentials("a b:c", "p@ss/w");
        let raw = STANDARD.decode(h.strip_prefix("Basic ").unwrap()).unwrap();
        assert_eq!(String::from_utf8(raw).unwrap(), "a+b%3Ac:p%40ss%2Fw");
    }

    #[test]
    fn form_body() {
        assert_eq!(
            form(&[("a", "1 2"), ("b", "&=")]),
            b"a=1+2&b=%26%3D".to_vec()
        );
    }
}
