//! Which stored provider serves a URL: normalisation and longest path-prefix
//! matching at segment boundaries.
//!
//! A provider is stored under the [`ResourceKey`] of its resource URL. To serve a
//! request, look up the URL's [`candidates`] in order and take the first stored
//! one: that is the longest matching prefix. The lookup costs one probe per path
//! segment, whatever the number of providers.
//!
//! ```
//! use idp::matching::{ResourceKey, longest_match};
//!
//! let stored = [
//!     ResourceKey::parse("https://api.example.com")?,
//!     ResourceKey::parse("https://api.example.com/v1/")?,
//! ];
//! let hit = |u: &str| longest_match(&ResourceKey::parse(u).unwrap(), &stored).map(|k| k.as_str().to_owned());
//! assert_eq!(hit("https://api.example.com/v1/users/123").as_deref(), Some("https://api.example.com/v1"));
//! assert_eq!(hit("https://api.example.com/v2/posts").as_deref(), Some("https://api.example.com"));
//! assert_eq!(hit("https://api.example.com/v10").as_deref(), Some("https://api.example.com"));
//! assert_eq!(hit("http://api.example.com/v1"), None);
//! # Ok::<(), idp::Error>(())
//! ```

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use url::Url;

/// A normalised resource URL: `scheme://host[:port][/path]`, scheme and host in
/// lower case, default port dropped, no query, fragment, user info or trailing
/// slash. Two URLs that name the same resource have equal keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ResourceKey(String);

impl From<ResourceKey> for String {
    fn from(k: ResourceKey) -> String {
        k.0
    }
}

/// Deserialised keys are normalised and checked like parsed ones.
impl TryFrom<String> for ResourceKey {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        ResourceKey::parse(&s)
    }
}

impl ResourceKey {
    /// Normalises a URL string. Only `http` and `https` URLs with a host are
    /// accepted, and none carrying user info.
    pub fn parse(input: &str) -> Result<Self> {
        let url = Url::parse(input.trim()).map_err(|e| Error::InvalidUrl {
            input: input.to_owned(),
            reason: e.to_string(),
        })?;
        Self::from_url(&url)
    }

    /// Normalises a parsed URL (see [`ResourceKey::parse`]).
    pub fn from_url(url: &Url) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidUrl {
            input: redact_userinfo(url),
            reason: reason.to_owned(),
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(
                "only http and https URLs can be protected resources",
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| invalid("the URL has no host"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("the URL must not carry user info"));
        }
        // `Url` already lower-cases scheme and host, drops the default port and
        // resolves dot segments.
        let mut key = format!("{}://{}", url.scheme(), host);
        if let Some(port) = url.port() {
            key.push(':');
            key.push_str(&port.to_string());
        }
        key.push_str(url.path().trim_end_matches('/'));
        Ok(Self(key))
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as a URL (path without trailing slash; the origin for a root key).
    pub fn to_url(&self) -> Url {
        // A key is built from a valid URL and stays one.
        Url::parse(&self.0).expect("a resource key is a valid URL")
    }

    /// The origin part: `scheme://host[:port]`.
    pub fn origin(&self) -> &str {
        let after_scheme = self.0.find("://").map_or(0, |i| i + 3);
        match self.0[after_scheme..].find('/') {
            Some(i) => &self.0[..after_scheme + i],
            None => &self.0,
        }
    }

    /// Whether `self` is `other` or a path-segment prefix of it.
    pub fn covers(&self, other: &ResourceKey) -> bool {
        other.0 == self.0
            || (other.0.starts_with(&self.0) && other.0.as_bytes().get(self.0.len()) == Some(&b'/'))
    }

    /// Whether a request to `url` may carry this key's token: `url` is under
    /// the key, and stays under it when a server decodes the separators and
    /// dots hidden in both paths (`%2F`, `%5C`, `%2E`). So
    /// `https://api.example/v1/..%2Fadmin` gets no `/v1` token.
    ///
    /// ```
    /// use idp::matching::ResourceKey;
    /// let key = ResourceKey::parse("https://api.example/v1")?;
    /// assert!(key.covers_request("https://api.example/v1/items%2Fx"));
    /// assert!(!key.covers_request("https://api.example/v1/..%2Fadmin"));
    /// assert!(!key.covers_request("https://api.example/v1/%2E%2E/admin"));
    /// assert!(!key.covers_request("https://api.example/v2"));
    /// # Ok::<(), idp::Error>(())
    /// ```
    pub fn covers_request(&self, url: &str) -> bool {
        let Ok(key) = ResourceKey::parse(url) else {
            return false;
        };
        if !self.covers(&key) {
            return false;
        }
        let own = match decoded_separators(self.as_str()) {
            None => self.clone(),
            Some(Ok(k)) => k,
            Some(Err(_)) => return false,
        };
        match decoded_separators(url) {
            None => true,
            Some(Ok(decoded)) => own.covers(&decoded),
            Some(Err(_)) => false,
        }
    }
}

/// Whether one of `prefixes` (resource URL prefixes, as configured for a
/// client or profile) covers `url` by [`ResourceKey::covers_request`]. A
/// prefix that is not a URL covers nothing.
///
/// ```
/// use idp::matching::prefixes_cover;
/// let prefixes = vec!["https://api.example/v1".to_owned()];
/// assert!(prefixes_cover(&prefixes, "https://api.example/v1/items"));
/// assert!(!prefixes_cover(&prefixes, "https://api.example/v10"));
/// assert!(!prefixes_cover(&prefixes, "https://evil.example/v1"));
/// ```
pub fn prefixes_cover(prefixes: &[String], url: &str) -> bool {
    prefixes
        .iter()
        .filter_map(|p| ResourceKey::parse(p).ok())
        .any(|p| p.covers_request(url))
}

/// The key of `url` once `%2F`, `%5C` and `%2E` in its path are decoded (as
/// some servers and proxies do); `None` when its path has none of them.
pub fn decoded_separators(url: &str) -> Option<Result<ResourceKey>> {
    let parsed = Url::parse(url.trim()).ok()?;
    let path = parsed.path();
    let lower = path.to_ascii_lowercase();
    if !["%2f", "%5c", "%2e"].iter().any(|s| lower.contains(s)) {
        return None;
    }
    let mut decoded = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(i) = rest.find('%') {
        decoded.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3).map(str::to_ascii_lowercase);
        match code.as_deref() {
            Some("2f") | Some("5c") => decoded.push('/'),
            Some("2e") => decoded.push('.'),
            _ => {
                decoded.push('%');
                rest = &rest[i + 1..];
                continue;
            }
        }
        rest = &rest[i + 3..];
    }
    decoded.push_str(rest);
    let mut again = parsed.clone();
    again.set_path(&decoded);
    // Re-parse so dot segments are resolved.
    Some(ResourceKey::parse(again.as_str()))
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Every prefix of `key` at path-segment boundaries, longest first, ending with
/// the origin. `https://h/a/b` gives `https://h/a/b`, `https://h/a`, `https://h`.
pub fn candidates(key: &ResourceKey) -> Vec<ResourceKey> {
    let origin_len = key.origin().len();
    let mut out = vec![key.clone()];
    let mut s = key.as_str();
    while s.len() > origin_len {
        let cut = s[origin_len..]
            .rfind('/')
            .map_or(origin_len, |i| origin_len + i);
        s = &s[..cut];
        out.push(ResourceKey(s.to_owned()));
    }
    out
}

/// The longest stored key covering `key`, scanning a list. Stores with an index
/// should look up [`candidates`] instead.
pub fn longest_match<'a>(key: &ResourceKey, stored: &'a [ResourceKey]) -> Option<&'a ResourceKey> {
    stored
        .iter()
        .filter(|s| s.covers(key))
        .max_by_key(|s| s.as_str().len())
}

pub(crate) fn redact_userinfo(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ResourceKey {
        ResourceKey::parse(s).unwrap()
    }

    #[test]
    fn normalisation() {
        for (input, want) in [
            ("HTTPS://API.Example.COM", "https://api.example.com"),
            ("https://api.example.com/", "https://api.example.com"),
            (
                "https://api.example.com:443/v1/",
                "https://api.example.com/v1",
            ),
            ("http://api.example.com:80/v1", "http://api.example.com/v1"),
            (
                "https://api.example.com:8443/v1",
                "https://api.example.com:8443/v1",
            ),
            (
                "https://api.example.com/v1?x=1#frag",
                "https://api.example.com/v1",
            ),
            (
                "https://api.example.com/a/../v1/./x",
                "https://api.example.com/v1/x",
            ),
            ("https://api.example.com/V1", "https://api.example.com/V1"),
            ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        ] {
            assert_eq!(key(input).as_str(), want, "{input}");
        }
    }

    #[test]
    fn deserialising_checks_the_key() {
        let k: ResourceKey = serde_json::from_str("\"HTTPS://H.example/v1/\"").unwrap();
        assert_eq!(k.as_str(), "https://h.example/v1");
        assert_eq!(
            serde_json::to_string(&k).unwrap(),
            "\"https://h.example/v1\""
        );
        assert!(serde_json::from_str::<ResourceKey>("\"ftp://x\"").is_err());
    }

    #[test]
    fn refused_urls() {
        for bad in [
            "ftp://example.com/x",
            "not a url",
            "/relative",
            "https://user:pw@example.com/",
            "mailto:a@b.c",
            "",
        ] {
            let e = ResourceKey::parse(bad).unwrap_err();
            assert!(!e.to_string().contains("pw@"), "{e}");
        }
    }

    #[test]
    fn candidates_longest_first() {
        let c: Vec<String> = candidates(&key("https://h.example/v1/users/123"))
            .into_iter()
            .map(|k| k.0)
            .collect();
        assert_eq!(
            c,
            [
                "https://h.example/v1/users/123",
                "https://h.example/v1/users",
                "https://h.example/v1",
                "https://h.example"
            ]
        );
        assert_eq!(candidates(&key("https://h.example")).len(), 1);
    }

    #[test]
    fn seed_examples() {
        let stored = [
            key("https://api.example.com"),
            key("https://api.example.com/v1"),
        ];
        let m = |u: &str| longest_match(&key(u), &stored).map(|k| k.as_str().to_owned());
        assert_eq!(
            m("https://api.example.com/v1/users/123").unwrap(),
            "https://api.example.com/v1"
        );
        assert_eq!(
            m("https://api.example.com/v1").unwrap(),
            "https://api.example.com/v1"
        );
        assert_eq!(
            m("https://api.example.com/v1/").unwrap(),
            "https://api.example.com/v1"
        );
        assert_eq!(
            m("https://api.example.com/v2/posts").unwrap(),
            "https://api.example.com"
        );
        assert_eq!(
            m("https://api.example.com/v10").unwrap(),
            "https://api.example.com"
        );
        assert_eq!(m("http://api.example.com/v1"), None);
        assert_eq!(m("https://api.example.com:444/v1"), None);
        assert_eq!(m("https://other.example.com/v1"), None);
        assert_eq!(m("https://api.example.com.evil.com/v1"), None);
    }

    #[test]
    fn covers_respects_segments() {
        assert!(key("https://h/v1").covers(&key("https://h/v1/x")));
        assert!(!key("https://h/v1").covers(&key("https://h/v10")));
        assert!(key("https://h").covers(&key("https://h/anything")));
        assert!(!key("https://h").covers(&key("https://h2/")));
        assert!(!key("https://h").covers(&key("https://h:8443/")));
    }

    #[test]
    fn candidates_agree_with_scan() {
        let stored: Vec<ResourceKey> = [
            "https://h",
            "https://h/a",
            "https://h/a/b/c",
            "https://h/ab",
        ]
        .iter()
        .map(|s| key(s))
        .collect();
        for u in [
            "https://h/a/b/c/d",
            "https://h/a/b",
            "https://h/ab/c",
            "https://h/abc",
            "https://h",
        ] {
            let k = key(u);
            let by_index = candidates(&k).into_iter().find(|c| stored.contains(c));
            assert_eq!(by_index.as_ref(), longest_match(&k, &stored), "{u}");
        }
    }
}
