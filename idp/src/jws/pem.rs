//! The P-256 private key in a PEM file: PKCS#8 (`PRIVATE KEY`, RFC 5208 /
//! RFC 5958) or SEC1 (`EC PRIVATE KEY`, RFC 5915), read with a DER reader
//! of the few shapes these two take. The general ASN.1 stack (`der`,
//! `pkcs8`, `sec1`, `pem-rfc7468`, `base64ct`) is about 14 KB of a Worker's
//! gzipped script for this one read of the deployment's own key. Every
//! read is bounds-checked: bad input is an error, never a panic.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use zeroize::Zeroizing;

/// id-ecPublicKey (1.2.840.10045.2.1), DER-encoded contents.
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// prime256v1 / secp256r1 (1.2.840.10045.3.1.7), DER-encoded contents.
const PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
/// `[0]`, constructed: ECPrivateKey's parameters.
const PARAMETERS: u8 = 0xa0;

/// What a PEM private key turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Pem {
    /// A P-256 private scalar (big-endian).
    P256(Zeroizing<Vec<u8>>),
    /// A well-formed PEM block of another kind of key (RSA, another curve,
    /// an encrypted key): `why` names it, for the error.
    Other(&'static str),
}

/// Reads a PEM private key; `None` when the text is not a PEM block this
/// reader understands at all.
pub(super) fn read(text: &str) -> Option<Pem> {
    let (label, der) = block(text)?;
    match label {
        "PRIVATE KEY" => {
            Some(pkcs8(&der).unwrap_or(Pem::Other("a PKCS#8 PEM key that is not EC P-256")))
        }
        "EC PRIVATE KEY" => {
            Some(sec1(&der).unwrap_or(Pem::Other("an EC PEM key that is not on P-256")))
        }
        "ENCRYPTED PRIVATE KEY" => Some(Pem::Other(
            "an encrypted PEM key (store it unencrypted, as a secret)",
        )),
        _ => Some(Pem::Other(
            "a PEM block that is not an EC P-256 private key",
        )),
    }
}

/// The label and decoded body of the first PEM block.
fn block(text: &str) -> Option<(&str, Zeroizing<Vec<u8>>)> {
    let rest = text.trim().strip_prefix("-----BEGIN ")?;
    let (label, rest) = rest.split_once("-----")?;
    let end = format!("-----END {label}-----");
    let (body, _) = rest.split_once(end.as_str())?;
    let body: Zeroizing<String> =
        Zeroizing::new(body.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    let der = Zeroizing::new(STANDARD.decode(body.as_bytes()).ok()?);
    Some((label, der))
}

/// One DER element: its tag and contents, and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81 => {
            let (&n, rest) = rest.split_first()?;
            (usize::from(n), rest)
        }
        0x82 => {
            let (n, rest) = rest.split_at_checked(2)?;
            (usize::from(u16::from_be_bytes([n[0], n[1]])), rest)
        }
        // Indefinite lengths are not DER; longer ones are not a key.
        _ => return None,
    };
    let (contents, rest) = rest.split_at_checked(len)?;
    Some((tag, contents, rest))
}

/// The contents of an element with `tag`, and what follows it.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match element(input)? {
        (t, contents, rest) if t == tag => Some((contents, rest)),
        _ => None,
    }
}

/// PrivateKeyInfo: version, AlgorithmIdentifier (id-ecPublicKey with
/// prime256v1), and the ECPrivateKey in an OCTET STRING.
fn pkcs8(der: &[u8]) -> Option<Pem> {
    let (info, _) = expect(der, SEQUENCE)?;
    let (version, rest) = expect(info, INTEGER)?;
    if version != [0] && version != [1] {
        return None;
    }
    let (algorithm, rest) = expect(rest, SEQUENCE)?;
    let (kind, params) = expect(algorithm, OID)?;
    let (curve, _) = expect(params, OID)?;
    if kind != EC_PUBLIC_KEY || curve != PRIME256V1 {
        return None;
    }
    let (key, _) = expect(rest, OCTET_STRING)?;
    sec1(key)
}

/// ECPrivateKey: version 1, the private key, and optionally the curve
/// (which must be prime256v1) and the public key.
fn sec1(der: &[u8]) -> Option<Pem> {
    let (key, _) = expect(der, SEQUENCE)?;
    let (version, rest) = expect(key, INTEGER)?;
    if version != [1] {
        return None;
    }
    let (scalar, rest) = expect(rest, OCTET_STRING)?;
    if let Some((PARAMETERS, params, _)) = element(rest) {
        let (curve, _) = expect(params, OID)?;
        if curve != PRIME256V1 {
            return None;
        }
    }
    (1..=32)
        .contains(&scalar.len())
        .then(|| Pem::P256(Zeroizing::new(scalar.to_vec())))
}

#[cfg(test)]
mod tests {
    use super::{read, Pem};
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    fn pem(label: &str, der: &[u8]) -> String {
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            STANDARD.encode(der)
        )
    }

    #[test]
    fn reads_what_an_independent_encoder_wrote() {
        use p256::pkcs8::EncodePrivateKey;
        let key = p256::SecretKey::from_slice(&[9u8; 32]).unwrap();
        let pkcs8 = key.to_pkcs8_pem(Default::default()).unwrap();
        let sec1 = key.to_sec1_pem(Default::default()).unwrap();
        for text in [pkcs8.as_str(), sec1.as_str()] {
            match read(text) {
                Some(Pem::P256(d)) => assert_eq!(d.as_slice(), [9u8; 32]),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn other_keys_are_named_not_read() {
        // PKCS#8 on P-384 (secp384r1, 1.3.132.0.34).
        let p384 = [
            0x30, 0x1a, 0x02, 0x01, 0x00, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d,
            0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22, 0x04, 0x03, 0x30, 0x01, 0x00,
        ];
        assert_eq!(
            read(&pem("PRIVATE KEY", &p384)),
            Some(Pem::Other("a PKCS#8 PEM key that is not EC P-256"))
        );
        assert!(
            matches!(read(&pem("ENCRYPTED PRIVATE KEY", &[0x30, 0])), Some(Pem::Other(w)) if w.contains("encrypted"))
        );
        assert!(matches!(
            read(&pem("RSA PRIVATE KEY", &[0x30, 0])),
            Some(Pem::Other(_))
        ));
        assert_eq!(read("not pem"), None);
        assert_eq!(read("-----BEGIN PRIVATE KEY-----\nAAAA"), None);
        assert_eq!(
            read(&pem("PRIVATE KEY", &[])),
            Some(Pem::Other("a PKCS#8 PEM key that is not EC P-256"))
        );
    }

    #[test]
    fn truncated_and_mangled_keys_are_refused_without_panicking() {
        use p256::pkcs8::EncodePrivateKey;
        let key = p256::SecretKey::from_slice(&[5u8; 32]).unwrap();
        for der in [
            key.to_pkcs8_der().unwrap().as_bytes().to_vec(),
            key.to_sec1_der().unwrap().to_vec(),
        ] {
            for cut in 0..der.len() {
                let r = read(&pem("PRIVATE KEY", &der[..cut]));
                assert!(matches!(r, Some(Pem::Other(_))), "{cut}: {r:?}");
            }
            for at in 0..der.len() {
                for bits in [0x01, 0x80, 0xff] {
                    let mut bad = der.clone();
                    bad[at] ^= bits;
                    let _ = read(&pem("PRIVATE KEY", &bad));
                    let _ = read(&pem("EC PRIVATE KEY", &bad));
                }
            }
        }
    }
}
