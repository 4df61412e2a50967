//! Secrets at rest: AES-256-GCM over the secret fields of stored rows
//! (access and refresh tokens, client secrets, PKCE verifiers), with the
//! row's identity and the field as associated data, so a ciphertext cannot
//! be moved to another row or field.
//!
//! A [`Keyring`] holds one or more keys with ids; the first encrypts, the
//! others only decrypt, so rotation is: put a new key first, deploy,
//! re-encrypt ([`super::sql::SqlStore::reseal`]), drop the old key. Each
//! sealed value records its key id: `idp-enc:2:{key id}:{base64url(nonce ‖
//! ciphertext)}`, with a random 96-bit nonce. Its associated data is the
//! table, the row's key columns and the field's path, each prefixed with its
//! length, so no two rows or fields share it. Values of format 1 (the same
//! fields joined with `|`, which a `|` inside a key could make ambiguous)
//! are still opened, and re-encrypting rewrites them in format 2.
//!
//! ```
//! use idp::store::seal::Keyring;
//! let keys = Keyring::parse("k2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=, k1:HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4=")?;
//! assert_eq!(keys.current(), "k2");
//! # Ok::<(), idp::Error>(())
//! ```

use crate::error::{Error, Result, StorageCause};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use serde_json::Value;
use std::sync::Arc;

/// What every sealed value starts with (then its format, `1:` or `2:`).
const PREFIX: &str = "idp-enc:";
/// The format written now.
const CURRENT: &str = "idp-enc:2:";
/// The first format: `|`-joined associated data.
const V1: &str = "idp-enc:1:";

/// Which row a sealed value belongs to: its table and key columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowId(Vec<String>);

impl RowId {
    pub(crate) fn new(table: &str, keys: &[&str]) -> Self {
        Self(
            std::iter::once(table)
                .chain(keys.iter().copied())
                .map(str::to_owned)
                .collect(),
        )
    }

    /// The associated data of a field: each part prefixed with its length
    /// (4 bytes, big-endian).
    fn aad(&self, path: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for part in self.0.iter().map(String::as_str).chain([path]) {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }

    /// Format 1's associated data: the parts joined with `|`.
    fn aad_v1(&self, path: &str) -> Vec<u8> {
        let mut s = self.0.join("|");
        s.push('|');
        s.push_str(path);
        s.into_bytes()
    }
}

/// Encryption keys with ids; the first encrypts. `Debug` shows the ids only.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<_> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Keyring").field("ids", &ids).finish()
    }
}

fn bad_keys(reason: impl std::fmt::Display) -> Error {
    Error::storage(
        StorageCause::NoKey,
        format!("IDP_ENCRYPTION_KEYS is not usable: {reason}; it is a list like `k2:<base64 of 32 random bytes>, k1:<...>`, the first key encrypting (make one with `openssl rand -base64 32`)"),
    )
}

impl Keyring {
    /// Reads `id:base64key` entries separated by commas or whitespace. Ids
    /// are 1 to 32 ASCII letters, digits, `-` or `_`, unique; keys are 32
    /// bytes in base64 (standard or URL-safe, padded or not).
    pub fn parse(spec: &str) -> Result<Self> {
        let mut keys: Vec<(String, Aes256Gcm)> = Vec::new();
        for entry in spec.split(|c: char| c == ',' || c.is_whitespace()) {
            if entry.is_empty() {
                continue;
            }
            let (id, key) = entry
                .split_once(':')
                .ok_or_else(|| bad_keys("an entry has no `id:`"))?;
            let id_ok = (1..=32).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !id_ok {
                return Err(bad_keys(format!(
                    "the key id {id:?} is not 1 to 32 letters, digits, - or _"
                )));
            }
            if keys.iter().any(|(k, _)| k == id) {
                return Err(bad_keys(format!("the key id {id:?} appears twice")));
            }
            let trimmed = key.trim_end_matches('=');
            let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(trimmed)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed))
                .map_err(|_| bad_keys(format!("the key {id:?} is not base64")))?;
            let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| {
                bad_keys(format!("the key {id:?} is {} bytes, not 32", bytes.len()))
            })?;
            keys.push((id.to_owned(), cipher));
        }
        if keys.is_empty() {
            return Err(bad_keys("it lists no key"));
        }
        Ok(Self { keys })
    }

    /// The id of the key that encrypts.
    pub fn current(&self) -> &str {
        &self.keys[0].0
    }
}

/// Fills a buffer with random bytes (the runtime's source).
pub type Random = fn(&mut [u8]) -> std::result::Result<(), String>;

/// How a store keeps secret fields: sealed with a [`Keyring`], or in plain
/// text (allowed for development, or refused).
#[derive(Clone, Debug)]
pub struct Sealing(Mode);

#[derive(Clone, Debug)]
enum Mode {
    Plaintext,
    /// Refused, with what to do about it.
    Refuse(&'static str),
    Keys(Arc<Keyring>, Random),
}

/// How a Worker gets a key.
const WORKERS_KEY_HINT: &str = "set IDP_ENCRYPTION_KEYS (`wrangler secret put IDP_ENCRYPTION_KEYS`, value `k1:` followed by the output of `openssl rand -base64 32`)";

/// How a native program gets a key.
const NATIVE_KEY_HINT: &str = "give the store keys (`with_keys(Keyring::parse(\"k1:...\")?)`, a key from `openssl rand -base64 32`), or for local development only say so with `plaintext()`";

impl Default for Sealing {
    fn default() -> Self {
        Self::plaintext()
    }
}

/// What a row's secret fields need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seal {
    /// Sealed with the current key (or nothing to seal).
    Current,
    /// Plain text or an older key: seal again on the next write.
    Stale,
}

impl Sealing {
    /// Secrets in plain text (tests, local development).
    pub fn plaintext() -> Self {
        Self(Mode::Plaintext)
    }

    /// Secrets sealed with `keyring`, nonces from `random`.
    pub fn keyring(keyring: Keyring, random: Random) -> Self {
        Self(Mode::Keys(Arc::new(keyring), random))
    }

    /// No key and no plain text: a write of a secret fails, saying how to
    /// configure a key (a Worker deployment that is not local development).
    pub fn refuse() -> Self {
        Self(Mode::Refuse(WORKERS_KEY_HINT))
    }

    /// The same for a native store on disk or in a database: a write of a
    /// secret fails, saying how to give the store keys.
    pub fn refuse_native() -> Self {
        Self(Mode::Refuse(NATIVE_KEY_HINT))
    }

    /// Whether secrets are sealed.
    pub fn is_sealed(&self) -> bool {
        self.keys().is_some()
    }

    fn keys(&self) -> Option<&Keyring> {
        match &self.0 {
            Mode::Keys(k, _) => Some(k),
            _ => None,
        }
    }

    fn seal_str(keyring: &Keyring, random: Random, aad: &[u8], plain: &str) -> Result<String> {
        let (id, cipher) = &keyring.keys[0];
        let mut nonce = [0u8; 12];
        random(&mut nonce).map_err(Error::NoRandomness)?;
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad,
                },
            )
            .map_err(|_| Error::storage(StorageCause::Backend, "encryption failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!(
            "{CURRENT}{id}:{}",
            crate::encoding::base64url(&out)
        ))
    }

    fn open_str(
        &self,
        row: &RowId,
        path: &str,
        sealed: &str,
    ) -> std::result::Result<String, String> {
        let (aad, rest) = if let Some(rest) = sealed.strip_prefix(CURRENT) {
            (row.aad(path), rest)
        } else if let Some(rest) = sealed.strip_prefix(V1) {
            (row.aad_v1(path), rest)
        } else {
            return Err("a sealed value has an unknown format".into());
        };
        let (id, data) = rest.split_once(':').ok_or("a sealed value is malformed")?;
        let keyring = self.keys().ok_or_else(|| {
            format!("it was encrypted with key {id:?} and IDP_ENCRYPTION_KEYS is not set")
        })?;
        let (_, cipher) = keyring.keys.iter().find(|(k, _)| k == id).ok_or_else(|| {
            format!("it was encrypted with key {id:?}, which IDP_ENCRYPTION_KEYS does not list")
        })?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(data)
            .map_err(|_| "a sealed value is malformed".to_owned())?;
        if bytes.len() < 12 {
            return Err("a sealed value is malformed".into());
        }
        let (nonce, ct) = bytes.split_at(12);
        let plain = cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| format!("key {id:?} does not open it (a different key under the same id, or a value moved from another row)"))?;
        String::from_utf8(plain).map_err(|_| "a sealed value is malformed".into())
    }

    /// Seals the fields of `doc` at `paths` (JSON pointers) that hold a
    /// value, with the row and the path as associated data.
    pub(crate) fn seal(&self, doc: &mut Value, row: &RowId, paths: &[&str]) -> Result<()> {
        for path in paths {
            let Some(v) = doc.pointer_mut(path).filter(|v| !v.is_null()) else {
                continue;
            };
            let (keyring, random) = match &self.0 {
                Mode::Keys(k, r) => (k, *r),
                Mode::Plaintext => continue,
                Mode::Refuse(hint) => {
                    return Err(Error::storage(
                        StorageCause::NoKey,
                        format!("no encryption key is configured, and secrets are not stored in plain text outside local development: {hint}"),
                    ));
                }
            };
            let plain = serde_json::to_string(v).map_err(|e| {
                Error::Storage(crate::error::StorageError::with_source(
                    StorageCause::Corrupt,
                    "could not encode a secret",
                    e,
                ))
            })?;
            *v = Value::String(Self::seal_str(keyring, random, &row.aad(path), &plain)?);
        }
        Ok(())
    }

    /// Opens the sealed fields of `doc` at `paths`. A field that cannot be
    /// opened becomes null; the first reason is returned.
    pub(crate) fn open(&self, doc: &mut Value, row: &RowId, paths: &[&str]) -> Option<String> {
        let mut failure = None;
        for path in paths {
            let Some(v) = doc.pointer_mut(path) else {
                continue;
            };
            let Some(sealed) = v.as_str().filter(|s| s.starts_with(PREFIX)) else {
                continue;
            };
            match self.open_str(row, path, sealed).and_then(|plain| {
                serde_json::from_str(&plain).map_err(|_| "a sealed value is malformed".into())
            }) {
                Ok(value) => *v = value,
                Err(reason) => {
                    *v = Value::Null;
                    failure.get_or_insert(reason);
                }
            }
        }
        failure
    }

    /// Whether the fields at `paths` are sealed with the current key.
    pub(crate) fn status(&self, doc: &Value, paths: &[&str]) -> Seal {
        let current = self.keys().map(|k| format!("{CURRENT}{}:", k.current()));
        for path in paths {
            let Some(v) = doc.pointer(path).filter(|v| !v.is_null()) else {
                continue;
            };
            let sealed_now = match (&current, v.as_str()) {
                (Some(c), Some(s)) => s.starts_with(c.as_str()),
                (None, Some(s)) => !s.starts_with(PREFIX),
                (None, None) => true,
                (Some(_), None) => false,
            };
            if !sealed_now {
                return Seal::Stale;
            }
        }
        Seal::Current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "k1:HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4=";
    const K2: &str = "k2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

    fn counter(buf: &mut [u8]) -> std::result::Result<(), String> {
        use std::sync::atomic::{AtomicU8, Ordering};
        static N: AtomicU8 = AtomicU8::new(0);
        buf.fill(N.fetch_add(1, Ordering::Relaxed));
        Ok(())
    }

    fn sealing(spec: &str) -> Sealing {
        Sealing::keyring(Keyring::parse(spec).unwrap(), counter)
    }

    fn doc() -> Value {
        serde_json::json!({"key": "k", "grant": {"tokens": {"access_token": "AT-SECRET"}, "client": {"client_id": "c"}}})
    }

    const PATHS: &[&str] = &["/grant/tokens", "/grant/client/client_secret"];

    #[test]
    fn seals_only_present_secrets_and_opens_them_back() {
        let s = sealing(K1);
        let mut d = doc();
        s.seal(&mut d, &RowId::new("row", &[]), PATHS).unwrap();
        let text = d.to_string();
        assert!(!text.contains("AT-SECRET"), "{text}");
        assert!(text.contains("idp-enc:2:k1:"));
        assert!(d.pointer("/grant/client/client_secret").is_none());
        assert_eq!(s.status(&d, PATHS), Seal::Current);
        assert_eq!(s.open(&mut d, &RowId::new("row", &[]), PATHS), None);
        assert_eq!(d, doc());
    }

    #[test]
    fn a_value_moved_to_another_row_or_an_unknown_key_does_not_open() {
        let s = sealing(K1);
        let mut d = doc();
        s.seal(&mut d, &RowId::new("row-a", &[]), PATHS).unwrap();
        let mut moved = d.clone();
        let why = s
            .open(&mut moved, &RowId::new("row-b", &[]), PATHS)
            .unwrap();
        assert!(why.contains("another row"), "{why}");
        assert!(moved.pointer("/grant/tokens").unwrap().is_null());
        let mut other = d.clone();
        let why = sealing(K2)
            .open(&mut other, &RowId::new("row-a", &[]), PATHS)
            .unwrap();
        assert!(why.contains("does not list"), "{why}");
        let mut none = d.clone();
        let why = Sealing::plaintext()
            .open(&mut none, &RowId::new("row-a", &[]), PATHS)
            .unwrap();
        assert!(why.contains("not set"), "{why}");
    }

    #[test]
    fn rotation_reads_old_keys_and_marks_them_stale() {
        let mut d = doc();
        sealing(K1)
            .seal(&mut d, &RowId::new("row", &[]), PATHS)
            .unwrap();
        let both = sealing(&format!("{K2}, {K1}"));
        assert_eq!(both.status(&d, PATHS), Seal::Stale);
        assert_eq!(both.open(&mut d, &RowId::new("row", &[]), PATHS), None);
        both.seal(&mut d, &RowId::new("row", &[]), PATHS).unwrap();
        assert!(d.to_string().contains("idp-enc:2:k2:"));
        assert_eq!(both.status(&d, PATHS), Seal::Current);
        // Plain text under a keyring is stale too.
        assert_eq!(both.status(&doc(), PATHS), Seal::Stale);
    }

    #[test]
    fn refusing_plaintext_says_how_to_set_a_key() {
        let e = Sealing::refuse()
            .seal(&mut doc(), &RowId::new("row", &[]), PATHS)
            .unwrap_err();
        assert!(e.to_string().contains("IDP_ENCRYPTION_KEYS"), "{e}");
        // Nothing secret to store: nothing refused.
        let mut public = serde_json::json!({"key": "k", "grant": null});
        Sealing::refuse()
            .seal(&mut public, &RowId::new("row", &[]), PATHS)
            .unwrap();
    }

    #[test]
    fn bad_key_lists_are_refused_with_the_reason() {
        for (spec, says) in [
            ("", "no key"),
            ("k1", "no `id:`"),
            ("k1:c2hvcnQ=", "not 32"),
            ("k 1:x", "no `id:`"),
            ("k1:!!!", "not base64"),
            (&format!("{K1},{K1}"), "twice"),
        ] {
            let e = Keyring::parse(spec).unwrap_err().to_string();
            assert!(e.contains(says), "{spec}: {e}");
            assert!(!e.contains("HyAhIiMk"), "no key material in errors: {e}");
        }
        let k = Keyring::parse(&format!("{K2},{K1}")).unwrap();
        assert_eq!(format!("{k:?}"), r#"Keyring { ids: ["k2", "k1"] }"#);
    }

    /// A `|` inside a key no longer makes two rows share associated data:
    /// a value sealed for (`a|b`, `c`) does not open as (`a`, `b|c`).
    #[test]
    fn associated_data_is_unambiguous() {
        let s = sealing(K1);
        let mut d = serde_json::json!({"grant": {"tokens": {"access_token": "at"}}});
        s.seal(&mut d, &RowId::new("t", &["a|b", "c"]), PATHS)
            .unwrap();
        let mut moved = d.clone();
        assert!(s
            .open(&mut moved, &RowId::new("t", &["a", "b|c"]), PATHS)
            .is_some());
        assert!(d["grant"]["tokens"]
            .as_str()
            .unwrap()
            .starts_with("idp-enc:2:k1:"));
        assert_eq!(s.open(&mut d, &RowId::new("t", &["a|b", "c"]), PATHS), None);
        assert_eq!(d["grant"]["tokens"]["access_token"], "at");
    }

    /// Values of format 1 still open, and count as stale so re-encrypting
    /// rewrites them.
    #[test]
    fn format_1_values_open_and_are_stale() {
        let s = sealing(K1);
        let row = RowId::new("t", &["a"]);
        let Mode::Keys(keyring, random) = &s.0 else {
            unreachable!()
        };
        let old = Sealing::seal_str(
            keyring,
            *random,
            &row.aad_v1("/grant/tokens"),
            r#"{"access_token":"at"}"#,
        )
        .unwrap()
        .replacen(CURRENT, V1, 1);
        let mut d = serde_json::json!({"grant": {"tokens": old}});
        assert_eq!(s.status(&d, PATHS), Seal::Stale);
        assert_eq!(s.open(&mut d, &row, PATHS), None);
        assert_eq!(d["grant"]["tokens"]["access_token"], "at");
    }
}
