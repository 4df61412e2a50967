//! DPoP (RFC 9449): tokens bound to a key the app holds, so a leaked token
//! is useless without it.
//!
//! Each grant that uses DPoP has its own P-256 key ([`DpopKey`], made from
//! randomness the runtime passes in when the login starts, sealed at rest
//! with the grant's tokens). Every token request and every request that
//! carries the token gets a fresh proof ([`proof`]): a JWS of type
//! `dpop+jwt` with the public key in its header, over the method (`htm`),
//! the URL without query or fragment (`htu`), the time (`iat`), a unique
//! `jti` (16 random bytes the runtime draws for each proof), the token's
//! hash (`ath`) when one is sent, and the server's `nonce` when it asked
//! for one. A server's nonce is kept per origin, for a while ([`Nonces`]),
//! by the runtime that sends the requests (its [`HttpClient`](crate::http::HttpClient)),
//! so only the first request to a server that wants one is refused.
//!
//! Signing needs the `signing` feature; without it no key is made
//! ([`DpopKey::generate`] gives `None`) and tokens stay Bearer tokens.
//!
//! ```
//! # #[cfg(feature = "signing")] {
//! use idp::dpop::{proof, Proof};
//! use idp::secret::DpopKey;
//! let key = DpopKey::generate([7; 32]).unwrap();
//! let url = url::Url::parse("https://as.example.com/token?x=1").unwrap();
//! let jws = proof(&key, &Proof { method: "POST", url: &url, iat: 1_700_000_000, nonce: None, access_token: None }, [3; 16]).unwrap();
//! assert_eq!(jws.split('.').count(), 3);
//! # }
//! ```

use crate::encoding::base64url;
use crate::secret::DpopKey;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use url::Url;

/// The one algorithm idp signs proofs with.
pub const ALGORITHM: &str = "ES256";

/// The request header that carries a proof, and the answer header that
/// carries a server's nonce.
pub const HEADER: &str = "DPoP";
/// The answer header with a server's nonce (RFC 9449 §8, §9).
pub const NONCE_HEADER: &str = "DPoP-Nonce";

/// Whether this build can make proofs (the `signing` feature).
pub const AVAILABLE: bool = cfg!(feature = "signing");

/// Whether a server that lists `algs` (`dpop_signing_alg_values_supported`)
/// takes idp's proofs.
pub fn supported_by(algs: &[String]) -> bool {
    AVAILABLE && algs.iter().any(|a| a == ALGORITHM)
}

/// What one proof is about.
#[derive(Debug, Clone, Copy)]
pub struct Proof<'a> {
    /// The request's method.
    pub method: &'a str,
    /// The request's URL (its query and fragment are left out of `htu`).
    pub url: &'a Url,
    /// Seconds since the epoch.
    pub iat: u64,
    /// The server's nonce, when it gave one.
    pub nonce: Option<&'a str>,
    /// The access token sent with the request, when one is (`ath`).
    pub access_token: Option<&'a str>,
}

impl DpopKey {
    /// A key from 32 random bytes, or `None` when this build cannot sign.
    pub fn generate(random: [u8; 32]) -> Option<Self> {
        imp::generate(random).map(|d| Self::new(base64url(&d)))
    }

    /// The RFC 7638 thumbprint of the public key (the `dpop_jkt` of an
    /// authorization request, the `cnf.jkt` of a bound token).
    pub fn thumbprint(&self) -> Option<String> {
        let jwk = imp::public_jwk(self)?;
        Some(base64url(&Sha256::digest(jwk.as_bytes())))
    }
}

/// A signed proof for `p`, its `jti` the 16 random bytes `jti` (drawn by
/// the runtime for this proof alone: proofs are made by many processes at
/// once, and a server refuses a `jti` it has seen); `None` when the build
/// cannot sign or the stored key does not read.
pub fn proof(key: &DpopKey, p: &Proof<'_>, jti: [u8; 16]) -> Option<String> {
    let mut htu = p.url.clone();
    htu.set_query(None);
    htu.set_fragment(None);
    let mut claims = serde_json::json!({
        "jti": base64url(&jti),
        "htm": p.method.to_ascii_uppercase(),
        "htu": htu.as_str(),
        "iat": p.iat,
    });
    if let Some(n) = p.nonce {
        claims["nonce"] = n.into();
    }
    if let Some(t) = p.access_token {
        claims["ath"] = base64url(&Sha256::digest(t.as_bytes())).into();
    }
    imp::sign(key, &claims)
}

/// How long a server's nonce is used (5 minutes): servers change theirs
/// every few minutes, and a stale one costs one refused request.
pub const NONCE_LIFETIME_SECS: u64 = 300;

/// Origins whose nonce is kept at once; past it, expired nonces go, then
/// the oldest.
const MAX_NONCES: usize = 1024;

/// The nonces servers gave (their `DPoP-Nonce` answer header, RFC 9449 §8
/// and §9), one per origin, each for [`NONCE_LIFETIME_SECS`].
///
/// Held by a runtime beside the client that sends its requests (as a
/// browser keeps cookies), never by the engine: the native runtime keeps
/// one per [`NativeIdp`](crate::native::NativeIdp), a Worker one per
/// isolate. A runtime keeps only the nonces given to requests that carried
/// a proof. The app's users share them: a server that gives one nonce to
/// all learns that their requests come from the same app, which the
/// client id already tells it.
///
/// ```
/// use idp::dpop::Nonces;
/// let nonces = Nonces::default();
/// let token = url::Url::parse("https://as.example.com/token").unwrap();
/// nonces.keep(&token, "n-1", 1_000);
/// let other_path = url::Url::parse("https://as.example.com/par").unwrap();
/// assert_eq!(nonces.get(&other_path, 1_100).as_deref(), Some("n-1"));
/// assert_eq!(nonces.get(&token, 1_000 + idp::dpop::NONCE_LIFETIME_SECS), None);
/// ```
#[derive(Debug, Default)]
pub struct Nonces {
    by_origin: Mutex<HashMap<String, (String, u64)>>,
}

fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

impl Nonces {
    /// The nonce the server at `url`'s origin gave last, unless it is
    /// [`NONCE_LIFETIME_SECS`] old at `now`.
    pub fn get(&self, url: &Url, now: u64) -> Option<String> {
        let map = self.by_origin.lock().unwrap_or_else(|e| e.into_inner());
        let (nonce, at) = map.get(&origin(url))?;
        (now < at.saturating_add(NONCE_LIFETIME_SECS)).then(|| nonce.clone())
    }

    /// Keeps the nonce a server at `url`'s origin gave at `now`, for the
    /// next proofs sent there. Values that are not printable ASCII
    /// (RFC 9449 §8.1) or longer than 512 bytes are ignored.
    pub fn keep(&self, url: &Url, nonce: &str, now: u64) {
        let ok = !nonce.is_empty()
            && nonce.len() <= 512
            && nonce
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b'"');
        if !ok {
            return;
        }
        let mut map = self.by_origin.lock().unwrap_or_else(|e| e.into_inner());
        let origin = origin(url);
        if map.len() >= MAX_NONCES && !map.contains_key(&origin) {
            map.retain(|_, (_, at)| now < at.saturating_add(NONCE_LIFETIME_SECS));
            let oldest = map
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(o, _)| o.clone());
            if let (true, Some(o)) = (map.len() >= MAX_NONCES, oldest) {
                map.remove(&o);
            }
        }
        map.insert(origin, (nonce.to_owned(), now));
    }
}

#[cfg(feature = "signing")]
mod imp {
    use crate::encoding::base64url;
    use crate::secret::DpopKey;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use p256::ecdsa::signature::Signer;
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use sha2::{Digest, Sha256};

    pub(super) fn generate(random: [u8; 32]) -> Option<[u8; 32]> {
        // A scalar out of range (zero, or at least the group order: odds
        // about 2^-32) is hashed until one is in range.
        let mut bytes = random;
        loop {
            if p256::SecretKey::from_slice(&bytes).is_ok() {
                return Some(bytes);
            }
            bytes = Sha256::digest(bytes).into();
        }
    }

    fn secret(key: &DpopKey) -> Option<p256::SecretKey> {
        let d = URL_SAFE_NO_PAD.decode(key.secret()).ok()?;
        p256::SecretKey::from_slice(&d).ok()
    }

    /// The public JWK, members in the order RFC 7638 hashes them.
    pub(super) fn public_jwk(key: &DpopKey) -> Option<String> {
        let point = secret(key)?.public_key().to_encoded_point(false);
        let (x, y) = (base64url(point.x()?), base64url(point.y()?));
        Some(format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#
        ))
    }

    pub(super) fn sign(key: &DpopKey, claims: &serde_json::Value) -> Option<String> {
        let jwk: serde_json::Value = serde_json::from_str(&public_jwk(key)?).ok()?;
        let header = serde_json::json!({ "typ": "dpop+jwt", "alg": super::ALGORITHM, "jwk": jwk });
        let input = format!(
            "{}.{}",
            base64url(header.to_string().as_bytes()),
            base64url(claims.to_string().as_bytes())
        );
        let signer = p256::ecdsa::SigningKey::from(secret(key)?);
        let signature: p256::ecdsa::Signature = signer.sign(input.as_bytes());
        Some(format!("{input}.{}", base64url(&signature.to_bytes())))
    }
}

#[cfg(not(feature = "signing"))]
mod imp {
    use crate::secret::DpopKey;

    pub(super) fn generate(_: [u8; 32]) -> Option<[u8; 32]> {
        None
    }

    pub(super) fn public_jwk(_: &DpopKey) -> Option<String> {
        None
    }

    pub(super) fn sign(_: &DpopKey, _: &serde_json::Value) -> Option<String> {
        None
    }
}

#[cfg(all(test, feature = "signing"))]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use p256::ecdsa::signature::Verifier;
    use serde_json::Value;

    fn part(jws: &str, i: usize) -> Value {
        let b = URL_SAFE_NO_PAD
            .decode(jws.split('.').nth(i).unwrap())
            .unwrap();
        serde_json::from_slice(&b).unwrap()
    }

    fn verifies(jws: &str) -> bool {
        let header = part(jws, 0);
        let jwk = &header["jwk"];
        let coord = |n: &str| URL_SAFE_NO_PAD.decode(jwk[n].as_str().unwrap()).unwrap();
        let point = p256::EncodedPoint::from_affine_coordinates(
            coord("x").as_slice().into(),
            coord("y").as_slice().into(),
            false,
        );
        let key = p256::ecdsa::VerifyingKey::from_encoded_point(&point).unwrap();
        let (input, sig) = jws.rsplit_once('.').unwrap();
        let sig =
            p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
        key.verify(input.as_bytes(), &sig).is_ok()
    }

    #[test]
    fn a_proof_is_signed_by_the_key_in_its_header_over_what_rfc_9449_asks() {
        let key = DpopKey::generate([1; 32]).unwrap();
        let url = Url::parse("https://rs.example.com/mcp?q=1#f").unwrap();
        let p = Proof {
            method: "post",
            url: &url,
            iat: 1_700_000_000,
            nonce: Some("n-1"),
            access_token: Some("at-SECRET"),
        };
        let jws = proof(&key, &p, [4; 16]).unwrap();
        assert!(verifies(&jws));
        let header = part(&jws, 0);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["jwk"]["kty"], "EC");
        assert!(header["jwk"].get("d").is_none(), "no private part");
        let claims = part(&jws, 1);
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], "https://rs.example.com/mcp");
        assert_eq!(claims["iat"], 1_700_000_000);
        assert_eq!(claims["nonce"], "n-1");
        assert_eq!(
            claims["ath"],
            base64url(&Sha256::digest(b"at-SECRET")).as_str()
        );
        assert!(!jws.contains(key.secret()));
        assert_eq!(claims["jti"], base64url(&[4; 16]).as_str());
        // The jti is the randomness given, and nothing else: no state in
        // the engine makes two proofs differ.
        let again = proof(&key, &p, [5; 16]).unwrap();
        assert_eq!(part(&again, 1)["jti"], base64url(&[5; 16]).as_str());
        // No token, no nonce: no ath, no nonce.
        let bare = Proof {
            nonce: None,
            access_token: None,
            ..p
        };
        let claims = part(&proof(&key, &bare, [6; 16]).unwrap(), 1);
        assert!(claims.get("ath").is_none() && claims.get("nonce").is_none());
    }

    #[test]
    fn keys_come_from_the_randomness_given_and_their_thumbprint_is_rfc_7638() {
        let a = DpopKey::generate([2; 32]).unwrap();
        assert_eq!(a, DpopKey::generate([2; 32]).unwrap());
        assert_ne!(a, DpopKey::generate([3; 32]).unwrap());
        // Out of range (zero, above the order): still a usable key.
        for bytes in [[0; 32], [0xff; 32]] {
            let k = DpopKey::generate(bytes).unwrap();
            assert!(k.thumbprint().is_some());
        }
        let jwk = imp::public_jwk(&a).unwrap();
        let parsed: Value = serde_json::from_str(&jwk).unwrap();
        let keys: Vec<_> = parsed.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["crv", "kty", "x", "y"]);
        assert_eq!(
            a.thumbprint().unwrap(),
            base64url(&Sha256::digest(jwk.as_bytes()))
        );
        assert_eq!(format!("{a:?}"), "DpopKey([redacted])");
        assert_eq!(
            proof(
                &DpopKey::new("not a key"),
                &Proof {
                    method: "GET",
                    url: &Url::parse("https://x.example").unwrap(),
                    iat: 0,
                    nonce: None,
                    access_token: None,
                },
                [0; 16]
            ),
            None
        );
    }

    #[test]
    fn nonces_are_kept_per_origin_for_a_while() {
        let nonces = Nonces::default();
        let a = Url::parse("https://nonce-a.example:8443/token").unwrap();
        let a2 = Url::parse("https://nonce-a.example:8443/other?x").unwrap();
        let b = Url::parse("https://nonce-b.example/token").unwrap();
        nonces.keep(&a, "abc", 10);
        assert_eq!(nonces.get(&a2, 10).as_deref(), Some("abc"));
        assert_eq!(nonces.get(&b, 10), None);
        assert_eq!(
            Nonces::default().get(&a, 10),
            None,
            "one memory per runtime"
        );
        nonces.keep(&a, "bad nonce", 11);
        nonces.keep(&a, "", 11);
        nonces.keep(&a, &"n".repeat(513), 11);
        assert_eq!(
            nonces.get(&a, 11).as_deref(),
            Some("abc"),
            "unusable values are ignored"
        );
        nonces.keep(&a, "def", 20);
        assert_eq!(nonces.get(&a, 20).as_deref(), Some("def"));
        let last = 20 + NONCE_LIFETIME_SECS - 1;
        assert_eq!(nonces.get(&a, last).as_deref(), Some("def"));
        assert_eq!(nonces.get(&a, last + 1), None, "expired");
        // Full: the expired go first, the fresh stay.
        nonces.keep(&b, "fresh", 1_000);
        for i in 0..MAX_NONCES - 2 {
            let u = Url::parse(&format!("https://n{i}.example")).unwrap();
            nonces.keep(&u, "old", 0);
        }
        let len = || nonces.by_origin.lock().unwrap().len();
        assert_eq!(len(), MAX_NONCES);
        let c = Url::parse("https://nonce-c.example").unwrap();
        nonces.keep(&c, "new", 1_001);
        assert_eq!(len(), 2, "{:?}", nonces.by_origin.lock().unwrap().keys());
        assert_eq!(nonces.get(&b, 1_001).as_deref(), Some("fresh"));
        assert_eq!(nonces.get(&c, 1_001).as_deref(), Some("new"));
        // Full of fresh ones (a server with many names): only the oldest
        // goes, never all.
        for i in 0..MAX_NONCES {
            let u = Url::parse(&format!("https://flood{i}.example")).unwrap();
            nonces.keep(&u, "flood", 1_002);
        }
        assert_eq!(len(), MAX_NONCES);
        assert_eq!(nonces.get(&b, 1_002), None, "the oldest went");
        let last = Url::parse(&format!("https://flood{}.example", MAX_NONCES - 1)).unwrap();
        assert_eq!(nonces.get(&last, 1_002).as_deref(), Some("flood"));
        assert!(supported_by(&["RS256".into(), "ES256".into()]));
        assert!(!supported_by(&["RS256".into()]));
    }
}
