//! An authorization server's issuer identifier, kept exactly as given.
//!
//! RFC 8414 §3.3 asks the metadata's `issuer` to be *identical* to the
//! identifier its well-known URL was built from, and RFC 9207 §2.4 compares
//! an authorization response's `iss` by simple string comparison. Parsing
//! both as URLs first would normalize them (`https://as` and `https://as/`,
//! case, default ports, percent-encoding) and accept what the servers did
//! not send; so an [`Issuer`] keeps its text and compares that, and keeps
//! the parsed URL only to build addresses from.
//!
//! ```
//! use idp::issuer::Issuer;
//!
//! let issuer = Issuer::parse("https://as.example").unwrap();
//! assert!(issuer.is("https://as.example"));
//! assert!(!issuer.is("https://as.example/"));
//! assert_eq!(issuer.url().as_str(), "https://as.example/");
//! ```

use url::Url;

/// An issuer identifier: its text as given and that text parsed.
#[derive(Debug, Clone)]
pub struct Issuer {
    text: String,
    url: Url,
}

impl Issuer {
    /// An issuer from its text; the text must be an absolute URL.
    pub fn parse(text: &str) -> Result<Self, url::ParseError> {
        Ok(Self {
            url: Url::parse(text)?,
            text: text.to_owned(),
        })
    }

    /// The identifier as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The identifier parsed, to build the server's addresses from.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Whether `other` is this issuer: the same text, byte for byte.
    pub fn is(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq for Issuer {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Issuer {}

impl std::fmt::Display for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for Issuer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Issuer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Issuer::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::Issuer;

    #[test]
    fn compared_as_given_never_normalized() {
        let i = Issuer::parse("https://as.example/tenant").unwrap();
        for variant in [
            "https://as.example/tenant/",
            "HTTPS://as.example/tenant",
            "https://AS.example/tenant",
            "https://as.example:443/tenant",
            "https://as.example/%74enant",
        ] {
            assert!(!i.is(variant), "{variant}");
            assert_ne!(i, Issuer::parse(variant).unwrap(), "{variant}");
        }
        assert!(i.is("https://as.example/tenant"));
        assert!(Issuer::parse("not a url").is_err());
        let back: Issuer = serde_json::from_str(&serde_json::to_string(&i).unwrap()).unwrap();
        assert_eq!(back, i);
    }
}
