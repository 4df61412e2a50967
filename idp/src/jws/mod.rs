//! Compact JWS signing (RFC 7515) with ES256 or RS256, for the client's own
//! assertions: `private_key_jwt` client authentication (RFC 7523 §2.2).
//!
//! A [`SigningKey`] is read from what a deployment keeps in a secret: a PEM
//! private key (PKCS#8 `PRIVATE KEY`, or SEC1 `EC PRIVATE KEY`, or PKCS#1
//! `RSA PRIVATE KEY`) or a private JWK (`kty` `EC` on P-256, or `RSA`). The
//! algorithm follows from the key. Signing is deterministic (ECDSA per
//! RFC 6979, RSASSA-PKCS1-v1_5): it draws no random numbers.
//!
//! ES256 needs the `signing` feature, RS256 `signing-rsa`; without them,
//! [`SigningKey::parse`] explains what the build cannot read.

use crate::error::{Error, Result};
use serde_json::Value;

#[cfg(feature = "signing")]
mod pem;
#[cfg(feature = "signing")]
use {crate::encoding::base64url, serde_json::json};

/// A private key the client signs its assertions with. Its `Debug` names
/// the algorithm only.
pub struct SigningKey {
    #[cfg(feature = "signing")]
    key: imp::Key,
    #[cfg(not(feature = "signing"))]
    _none: std::convert::Infallible,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({}, [redacted])", self.algorithm())
    }
}

impl SigningKey {
    /// Reads a PEM or JWK private key. The error says what the text was
    /// taken for and why it was refused, never quoting it.
    pub fn parse(text: &str) -> Result<Self> {
        #[cfg(feature = "signing")]
        {
            imp::Key::parse(text.trim()).map(|key| Self { key })
        }
        #[cfg(not(feature = "signing"))]
        {
            let _ = text;
            Err(unusable("idp was built without its `signing` feature"))
        }
    }

    /// `ES256` or `RS256`.
    pub fn algorithm(&self) -> &'static str {
        #[cfg(feature = "signing")]
        {
            self.key.algorithm()
        }
        #[cfg(not(feature = "signing"))]
        match self._none {}
    }

    /// Signs `claims` as a compact JWS with header `{"alg", "typ"}`.
    pub fn sign(&self, typ: &str, claims: &Value) -> String {
        #[cfg(feature = "signing")]
        {
            let header = json!({ "alg": self.algorithm(), "typ": typ });
            let input = format!(
                "{}.{}",
                base64url(header.to_string().as_bytes()),
                base64url(claims.to_string().as_bytes())
            );
            let signature = self.key.sign(input.as_bytes());
            format!("{input}.{}", base64url(&signature))
        }
        #[cfg(not(feature = "signing"))]
        {
            let _ = (typ, claims);
            match self._none {}
        }
    }
}

pub(crate) fn unusable(reason: impl Into<String>) -> Error {
    Error::Configuration {
        name: "the client's private key (private_key_jwt)".into(),
        reason: reason.into(),
    }
}

#[cfg(feature = "signing")]
mod imp {
    use super::unusable;
    use crate::error::Result;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use p256::ecdsa::signature::Signer;
    use serde::Deserialize;

    pub(super) enum Key {
        Es256(Box<p256::ecdsa::SigningKey>),
        #[cfg(feature = "signing-rsa")]
        Rs256(Box<rsa::pkcs1v15::SigningKey<sha2::Sha256>>),
    }

    /// The members of a private JWK this module reads.
    #[derive(Deserialize)]
    #[cfg_attr(not(feature = "signing-rsa"), allow(dead_code))]
    struct Jwk {
        kty: String,
        #[serde(default)]
        crv: Option<String>,
        #[serde(default)]
        d: Option<String>,
        #[serde(default)]
        n: Option<String>,
        #[serde(default)]
        e: Option<String>,
        #[serde(default)]
        p: Option<String>,
        #[serde(default)]
        q: Option<String>,
    }

    #[cfg(feature = "signing-rsa")]
    fn number(name: &str, value: Option<&String>) -> Result<rsa::BigUint> {
        let bytes = value
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .ok_or_else(|| unusable(format!("the RSA JWK has no base64url `{name}`")))?;
        Ok(rsa::BigUint::from_bytes_be(&bytes))
    }

    impl Key {
        pub(super) fn parse(text: &str) -> Result<Self> {
            if text.starts_with('{') {
                let jwk: Jwk =
                    serde_json::from_str(text).map_err(|_| unusable("JSON that is not a JWK"))?;
                return Self::from_jwk(&jwk);
            }
            if !text.starts_with("-----BEGIN ") {
                return Err(unusable("neither a PEM private key nor a JWK"));
            }
            match super::pem::read(text) {
                Some(super::pem::Pem::P256(d)) => p256::ecdsa::SigningKey::from_slice(&d)
                    .map(|k| Key::Es256(Box::new(k)))
                    .map_err(|_| unusable("the PEM key's private value is not a P-256 scalar")),
                Some(super::pem::Pem::Other(what)) => Self::rsa_pem(text, what),
                None => Err(unusable("a PEM block that cannot be read")),
            }
        }

        #[cfg(feature = "signing-rsa")]
        fn rsa_pem(text: &str, _: &str) -> Result<Self> {
            use rsa::pkcs1::DecodeRsaPrivateKey;
            use rsa::pkcs8::DecodePrivateKey;
            let rsa = rsa::RsaPrivateKey::from_pkcs8_pem(text)
                .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(text))
                .map_err(|_| {
                    unusable("a PEM key that is neither an EC P-256 nor an RSA private key")
                })?;
            Self::rsa(rsa)
        }

        #[cfg(not(feature = "signing-rsa"))]
        fn rsa_pem(_: &str, what: &str) -> Result<Self> {
            Err(unusable(format!(
                "{what}: only EC P-256 keys are read (RSA keys need the `signing-rsa` feature)"
            )))
        }

        fn from_jwk(jwk: &Jwk) -> Result<Self> {
            match (jwk.kty.as_str(), jwk.crv.as_deref()) {
                ("EC", Some("P-256")) => {
                    let d = jwk
                        .d
                        .as_deref()
                        .and_then(|d| URL_SAFE_NO_PAD.decode(d).ok())
                        .ok_or_else(|| unusable("the EC JWK has no private `d`"))?;
                    p256::ecdsa::SigningKey::from_slice(&d)
                        .map(|k| Key::Es256(Box::new(k)))
                        .map_err(|_| unusable("the EC JWK's `d` is not a P-256 scalar"))
                }
                ("EC", crv) => Err(unusable(format!(
                    "EC keys on curve {} are not supported (P-256 only)",
                    crv.unwrap_or("(none)")
                ))),
                #[cfg(feature = "signing-rsa")]
                ("RSA", _) => {
                    let primes = vec![number("p", jwk.p.as_ref())?, number("q", jwk.q.as_ref())?];
                    let key = rsa::RsaPrivateKey::from_components(
                        number("n", jwk.n.as_ref())?,
                        number("e", jwk.e.as_ref())?,
                        number("d", jwk.d.as_ref())?,
                        primes,
                    )
                    .map_err(|_| unusable("the RSA JWK's numbers do not form a key"))?;
                    Self::rsa(key)
                }
                #[cfg(not(feature = "signing-rsa"))]
                ("RSA", _) => Err(unusable("RSA keys need the `signing-rsa` feature")),
                (kty, _) => Err(unusable(format!(
                    "JWK key type {kty} is not supported (EC or RSA)"
                ))),
            }
        }

        #[cfg(feature = "signing-rsa")]
        fn rsa(key: rsa::RsaPrivateKey) -> Result<Self> {
            use rsa::traits::PublicKeyParts;
            if key.size() < 256 {
                return Err(unusable("RSA keys must have at least 2048 bits"));
            }
            key.validate()
                .map_err(|_| unusable("the RSA key does not validate"))?;
            Ok(Key::Rs256(Box::new(rsa::pkcs1v15::SigningKey::new(key))))
        }

        pub(super) fn algorithm(&self) -> &'static str {
            match self {
                Key::Es256(_) => "ES256",
                #[cfg(feature = "signing-rsa")]
                Key::Rs256(_) => "RS256",
            }
        }

        pub(super) fn sign(&self, input: &[u8]) -> Vec<u8> {
            match self {
                // JWS wants the raw r || s form (RFC 7518 §3.4), not DER.
                Key::Es256(k) => {
                    let s: p256::ecdsa::Signature = k.sign(input);
                    s.to_bytes().to_vec()
                }
                #[cfg(feature = "signing-rsa")]
                Key::Rs256(k) => {
                    use rsa::signature::SignatureEncoding;
                    k.sign(input).to_vec()
                }
            }
        }
    }
}

#[cfg(all(test, feature = "signing"))]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use p256::ecdsa::signature::Verifier;

    fn parts(jws: &str) -> (String, Value, Vec<u8>) {
        let mut it = jws.rsplitn(2, '.');
        let sig = URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap();
        let input = it.next().unwrap().to_owned();
        let payload = input.split('.').nth(1).unwrap();
        let claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        (input, claims, sig)
    }

    fn ec_key() -> p256::SecretKey {
        p256::SecretKey::from_slice(&[7u8; 32]).unwrap()
    }

    fn verify_es256(jws: &str, key: &p256::SecretKey) -> Value {
        let (input, claims, sig) = parts(jws);
        let sig = p256::ecdsa::Signature::from_slice(&sig).expect("raw r || s");
        p256::ecdsa::VerifyingKey::from(key.public_key())
            .verify(input.as_bytes(), &sig)
            .expect("the signature verifies");
        claims
    }

    #[test]
    fn es256_from_pem_and_from_jwk_sign_what_the_public_key_verifies() {
        use p256::pkcs8::EncodePrivateKey;
        let key = ec_key();
        let pem = key.to_pkcs8_pem(Default::default()).unwrap();
        let sec1 = key.to_sec1_pem(Default::default()).unwrap();
        let jwk = json!({"kty": "EC", "crv": "P-256", "d": URL_SAFE_NO_PAD.encode(key.to_bytes())});
        for text in [pem.to_string(), sec1.to_string(), jwk.to_string()] {
            let signer = SigningKey::parse(&text).unwrap();
            assert_eq!(signer.algorithm(), "ES256");
            let jws = signer.sign("JWT", &json!({"sub": "c"}));
            let header: Value = serde_json::from_slice(
                &URL_SAFE_NO_PAD
                    .decode(jws.split('.').next().unwrap())
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(header, json!({"alg": "ES256", "typ": "JWT"}));
            assert_eq!(verify_es256(&jws, &key), json!({"sub": "c"}));
            assert_eq!(format!("{signer:?}"), "SigningKey(ES256, [redacted])");
        }
    }

    #[test]
    fn unusable_keys_are_refused_without_quoting_them() {
        let cases = [
            ("not a key at all", "neither a PEM private key nor a JWK"),
            (r#"{"kty":"oct","k":"c2VjcmV0LXZhbHVl"}"#, "key type oct"),
            (
                r#"{"kty":"EC","crv":"P-384","d":"c2VjcmV0LXZhbHVl"}"#,
                "P-384",
            ),
            (r#"{"kty":"EC","crv":"P-256"}"#, "no private `d`"),
            (
                "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXZhbHVl\n-----END PRIVATE KEY-----",
                "PEM",
            ),
        ];
        for (text, says) in cases {
            let e = SigningKey::parse(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
            assert!(!e.contains("c2VjcmV0LXZhbHVl"), "{e}");
        }
    }

    /// A test-only generator (SHA-256 in counter mode from a fixed seed).
    #[cfg(feature = "signing-rsa")]
    struct TestRng(u64);

    #[cfg(feature = "signing-rsa")]
    impl rsa::rand_core::RngCore for TestRng {
        fn next_u32(&mut self) -> u32 {
            self.next_u64() as u32
        }
        fn next_u64(&mut self) -> u64 {
            let mut b = [0; 8];
            self.fill_bytes(&mut b);
            u64::from_le_bytes(b)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            use sha2::Digest;
            for chunk in dest.chunks_mut(32) {
                self.0 += 1;
                let block = sha2::Sha256::digest(self.0.to_le_bytes());
                chunk.copy_from_slice(&block[..chunk.len()]);
            }
        }
        fn try_fill_bytes(
            &mut self,
            dest: &mut [u8],
        ) -> std::result::Result<(), rsa::rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    #[cfg(feature = "signing-rsa")]
    impl rsa::rand_core::CryptoRng for TestRng {}

    #[cfg(feature = "signing-rsa")]
    #[test]
    fn rs256_from_pem_and_from_jwk_sign_what_the_public_key_verifies() {
        use rsa::pkcs8::EncodePrivateKey;
        use rsa::signature::Verifier as _;
        use rsa::traits::{PrivateKeyParts, PublicKeyParts};
        let key = rsa::RsaPrivateKey::new(&mut TestRng(0), 2048).unwrap();
        let b64 = |n: &rsa::BigUint| URL_SAFE_NO_PAD.encode(n.to_bytes_be());
        let jwk = json!({
            "kty": "RSA", "n": b64(key.n()), "e": b64(key.e()), "d": b64(key.d()),
            "p": b64(&key.primes()[0]), "q": b64(&key.primes()[1]),
        });
        let pem = key.to_pkcs8_pem(Default::default()).unwrap();
        let public = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key.to_public_key());
        for text in [pem.to_string(), jwk.to_string()] {
            let signer = SigningKey::parse(&text).unwrap();
            assert_eq!(signer.algorithm(), "RS256");
            let (input, claims, sig) = parts(&signer.sign("JWT", &json!({"sub": "c"})));
            let sig = rsa::pkcs1v15::Signature::try_from(sig.as_slice()).unwrap();
            public
                .verify(input.as_bytes(), &sig)
                .expect("the signature verifies");
            assert_eq!(claims, json!({"sub": "c"}));
        }
        let small = rsa::RsaPrivateKey::new(&mut TestRng(1 << 40), 1024).unwrap();
        let e = SigningKey::parse(&small.to_pkcs8_pem(Default::default()).unwrap()).unwrap_err();
        assert!(e.to_string().contains("2048"), "{e}");
    }
}
