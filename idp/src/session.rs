//! Signed sessions: who the signed-in person is, in a cookie they cannot
//! forge.
//!
//! A session token is `{user id, base64url}.{expiry, seconds since the
//! epoch}.{HMAC-SHA256 over both, base64url}` under a key the app keeps
//! secret (a Workers secret). [`SessionKey::verify`] checks the MAC in
//! constant time and the expiry against the clock passed in. The user id is
//! readable by whoever holds the cookie; it is not encrypted.
//!
//! ```
//! use idp::session::SessionKey;
//!
//! let key = SessionKey::new(b"a secret of at least 32 bytes, random!!").unwrap();
//! let token = key.sign("alice", 1_000 + 3600);
//! assert_eq!(key.verify(&token, 1_000).as_deref(), Some("alice"));
//! assert_eq!(key.verify(&token, 1_000 + 3600), None, "expired");
//! let other = SessionKey::new(b"another secret of 32 bytes or more..").unwrap();
//! assert_eq!(other.verify(&token, 1_000), None, "another key");
//! ```

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The shortest key accepted: 32 bytes.
pub const MIN_KEY_LEN: usize = 32;

/// A key that signs and checks session tokens. `Debug` never shows it.
#[derive(Clone)]
pub struct SessionKey {
    key: Vec<u8>,
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey([redacted])")
    }
}

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a session key must be at least {MIN_KEY_LEN} bytes (got {0}); generate one with `openssl rand -base64 48`")]
pub struct KeyTooShort(pub usize);

impl SessionKey {
    /// A key from secret bytes (at least [`MIN_KEY_LEN`]).
    pub fn new(secret: &[u8]) -> Result<Self, KeyTooShort> {
        if secret.len() < MIN_KEY_LEN {
            return Err(KeyTooShort(secret.len()));
        }
        Ok(Self {
            key: secret.to_vec(),
        })
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC accepts any key length")
    }

    /// A token naming `user_id` until `expires_at` (seconds since the epoch).
    pub fn sign(&self, user_id: &str, expires_at: u64) -> String {
        let payload = format!("{}.{expires_at}", URL_SAFE_NO_PAD.encode(user_id));
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{payload}.{tag}")
    }

    /// The user id in `token` if this key signed it and it has not expired
    /// at `now`. Malformed tokens are `None`, never a panic.
    pub fn verify(&self, token: &str, now: u64) -> Option<String> {
        let (payload, tag) = token.trim().rsplit_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&tag).ok()?;
        let (user, expires_at) = payload.split_once('.')?;
        let expires_at: u64 = expires_at.parse().ok()?;
        if now >= expires_at {
            return None;
        }
        String::from_utf8(URL_SAFE_NO_PAD.decode(user).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SessionKey {
        SessionKey::new(&[7; 32]).unwrap()
    }

    #[test]
    fn tampering_is_refused() {
        let k = key();
        let t = k.sign("alice", 100);
        assert_eq!(k.verify(&t, 50).as_deref(), Some("alice"));
        let bob = t.replacen(
            &URL_SAFE_NO_PAD.encode("alice"),
            &URL_SAFE_NO_PAD.encode("bob"),
            1,
        );
        assert_eq!(k.verify(&bob, 50), None);
        let later = t.replacen(".100.", ".999999.", 1);
        assert_eq!(k.verify(&later, 50), None);
        for junk in [
            "",
            ".",
            "..",
            "a.b.c",
            "alice",
            "YWxpY2U.100.",
            "YWxpY2U.x.AAAA",
            &".".repeat(1000),
        ] {
            assert_eq!(k.verify(junk, 50), None, "{junk:?}");
        }
    }

    #[test]
    fn short_keys_are_refused_and_keys_never_print() {
        assert_eq!(SessionKey::new(&[1; 31]).unwrap_err(), KeyTooShort(31));
        assert_eq!(format!("{:?}", key()), "SessionKey([redacted])");
    }

    #[test]
    fn user_ids_with_dots_round_trip() {
        let k = key();
        let t = k.sign("a.b@c.d", 100);
        assert_eq!(k.verify(&t, 1).as_deref(), Some("a.b@c.d"));
    }
}
