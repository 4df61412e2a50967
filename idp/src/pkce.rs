//! PKCE with S256 only (RFC 7636).

use crate::encoding::base64url;
use crate::secret::PkceVerifier;
use sha2::{Digest, Sha256};

impl PkceVerifier {
    /// A verifier from 32 random bytes: 43 characters of base64url (RFC 7636 §4.1).
    pub fn from_random(bytes: [u8; 32]) -> Self {
        PkceVerifier::new(base64url(&bytes))
    }

    /// The S256 challenge: `BASE64URL(SHA256(verifier))`.
    pub fn s256_challenge(&self) -> String {
        base64url(&Sha256::digest(self.secret().as_bytes()))
    }
}

/// The only challenge method this crate sends.
pub const S256: &str = "S256";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        let octets = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212,
            37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
        ];
        let v = PkceVerifier::from_random(octets);
        assert_eq!(v.secret(), "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            v.s256_challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn verifier_length_and_alphabet() {
        let v = PkceVerifier::from_random([255; 32]);
        assert_eq!(v.secret().len(), 43);
        assert!(v
            .secret()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }
}
