//! One callback URL per authorization server (RFC 9700 §4.4.2, mix-up defence).
//!
//! Every issuer gets its own redirect URI, `{callback base}/{id}`, where `id` is
//! a short, stable name of the issuer: a readable one configured with a
//! pre-registered client (`github`), or the first 128 bits of SHA-256 of the
//! issuer identifier in base64url. A pending flow records the redirect URI it
//! was sent with, and a callback that arrives on any other URI is refused
//! before the code goes anywhere. So an attacker's server that bounces the
//! person to an honest server (which may send no `iss`) cannot make the app
//! send the honest server's code to the attacker's token endpoint: the honest
//! server only redirects to its own callback URL, which is not the flow's.
//!
//! ```
//! use idp::callback::{callback_id, redirect_uri};
//! use url::Url;
//!
//! let base = Url::parse("https://app.example/oauth/callback").unwrap();
//! let id = callback_id("https://as.example");
//! assert_eq!(id.len(), 22);
//! assert_eq!(id, callback_id("https://as.example"), "stable");
//! assert_ne!(id, callback_id("https://evil.example"));
//! assert_eq!(
//!     redirect_uri(&base, &id).as_str(),
//!     format!("https://app.example/oauth/callback/{id}")
//! );
//! ```

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use url::Url;

/// The longest readable callback id a configuration may set.
pub const MAX_ID_LEN: usize = 40;

/// The derived callback id of an issuer: base64url of the first 16 bytes of
/// SHA-256 over the issuer URL in its parsed form, so `https://as.example`
/// and `https://as.example/` name one server (22 characters). 128 bits: an
/// attacker who could make its own issuer's id equal an honest server's
/// would share that server's callback URL, the mix-up defence.
pub fn callback_id(issuer: &str) -> String {
    let normal = Url::parse(issuer).map_or_else(|_| issuer.to_owned(), String::from);
    let digest = Sha256::digest(normal.as_bytes());
    crate::encoding::base64url(&digest[..16])
}

/// Checks a readable id from configuration: 1 to [`MAX_ID_LEN`] characters
/// of ASCII letters, digits, `-` and `_`.
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidUrl {
            input: id.to_owned(),
            reason: format!("a callback id is 1 to {MAX_ID_LEN} ASCII letters, digits, '-' or '_'"),
        })
    }
}

/// `{base}/{id}`: the redirect URI for one authorization server.
pub fn redirect_uri(base: &Url, id: &str) -> Url {
    let mut url = base.clone();
    let path = format!("{}/{id}", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_query(None);
    url.set_fragment(None);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_url_safe_and_distinct() {
        let a = callback_id("https://as.example");
        assert_eq!(a, callback_id("https://as.example/"), "one server");
        assert_ne!(a, callback_id("https://as.example/tenant"));
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        check_id(&a).unwrap();
    }

    #[test]
    fn readable_ids_are_checked() {
        check_id("github").unwrap();
        check_id("entra_common-2").unwrap();
        for bad in ["", "a/b", "..", "a b", "é", &"x".repeat(MAX_ID_LEN + 1)] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn redirect_uri_drops_query_and_trailing_slash() {
        let base = Url::parse("https://app.example/oauth/callback/?x=1#f").unwrap();
        assert_eq!(
            redirect_uri(&base, "id1").as_str(),
            "https://app.example/oauth/callback/id1"
        );
    }
}
