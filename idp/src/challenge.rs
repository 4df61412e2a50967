//! `WWW-Authenticate` parsing (RFC 9110 §11.6.1, RFC 6750 §3, RFC 9728 §5.1).
//!
//! ```
//! use idp::challenge::{parse, BearerChallenge};
//!
//! let challenges = parse([
//!     r#"Basic realm="x", Bearer realm="api", scope="read write", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource""#,
//! ])?;
//! let bearer = BearerChallenge::find(&challenges).unwrap();
//! assert_eq!(bearer.scope.as_deref(), Some("read write"));
//! assert_eq!(bearer.realm.as_deref(), Some("api"));
//! # Ok::<(), idp::challenge::ChallengeError>(())
//! ```

use serde::{Deserialize, Serialize};

/// One challenge: a scheme with either a token68 or parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme as sent (compare with [`Challenge::is`]).
    pub scheme: String,
    /// The token68 form, when the challenge used it.
    pub token68: Option<String>,
    /// Parameters with names in lower case and values unquoted.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// Whether the scheme is `scheme`, ignoring case.
    pub fn is(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }

    /// A parameter's value by case-insensitive name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A malformed `WWW-Authenticate` value: where and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {at}")]
pub struct ChallengeError {
    /// Byte offset in the header value.
    pub at: usize,
    /// What was wrong.
    pub what: &'static str,
}

/// The parameters of a Bearer challenge that matter to a client; a DPoP
/// challenge (RFC 9449 §7.1) carries the same ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BearerChallenge {
    /// RFC 9728 `resource_metadata` URL.
    pub resource_metadata: Option<String>,
    /// Space-separated scopes the resource asks for.
    pub scope: Option<String>,
    /// `invalid_token`, `insufficient_scope`, `invalid_request`, ...
    pub error: Option<String>,
    /// Human-readable detail.
    pub error_description: Option<String>,
    /// Protection space.
    pub realm: Option<String>,
    /// Whether the resource challenged with the `DPoP` scheme too (or
    /// only): it takes DPoP-bound tokens (RFC 9449 §7.1), with the
    /// algorithms of that challenge's `algs` (an empty list when it names
    /// none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_algs: Option<Vec<String>>,
}

impl BearerChallenge {
    /// The first Bearer challenge among `challenges`, else the first DPoP
    /// one (a resource that takes DPoP tokens only).
    pub fn find(challenges: &[Challenge]) -> Option<Self> {
        Self::find_preferring(challenges, "Bearer")
    }

    /// The first challenge in `scheme` (`Bearer` or `DPoP`), else the first
    /// in the other: what a resource says to a client holding a token of
    /// that kind.
    pub fn find_preferring(challenges: &[Challenge], scheme: &str) -> Option<Self> {
        let other = if scheme.eq_ignore_ascii_case("dpop") {
            "Bearer"
        } else {
            "DPoP"
        };
        let c = challenges
            .iter()
            .find(|c| c.is(scheme))
            .or_else(|| challenges.iter().find(|c| c.is(other)))?;
        let get = |n: &str| c.param(n).map(str::to_owned);
        let dpop_algs = challenges.iter().find(|c| c.is("DPoP")).map(|d| {
            d.param("algs")
                .unwrap_or_default()
                .split_ascii_whitespace()
                .map(str::to_owned)
                .collect()
        });
        Some(Self {
            resource_metadata: get("resource_metadata"),
            scope: get("scope"),
            error: get("error"),
            error_description: get("error_description"),
            realm: get("realm"),
            dpop_algs,
        })
    }

    /// Parses header values and returns the Bearer challenge, if any.
    pub fn from_headers<'a>(
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<Option<Self>, ChallengeError> {
        Ok(Self::find(&parse(values)?))
    }
}

/// Parses every challenge in one or more `WWW-Authenticate` header values.
///
/// Scheme and parameter names are case-insensitive (names are returned in lower
/// case), values may be tokens or quoted strings with `\` escapes, commas may sit
/// inside quotes, and a challenge may carry a token68 instead of parameters. A
/// parameter named twice in one challenge is an error, as RFC 9110 requires.
pub fn parse<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Challenge>, ChallengeError> {
    let mut out = Vec::new();
    for v in values {
        Parser {
            s: v.as_bytes(),
            i: 0,
        }
        .run(&mut out)?;
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

/// The most parameters one challenge may carry: the duplicate check stays
/// bounded, so parsing is linear in the header's length however many
/// parameters a server sends.
pub const MAX_PARAMS: usize = 64;

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn err(&self, what: &'static str) -> ChallengeError {
        ChallengeError { at: self.i, what }
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// Skips whitespace and list separators; returns whether a comma was seen.
    fn skip_separators(&mut self) -> bool {
        let mut comma = false;
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'\t' => {}
                b',' => comma = true,
                _ => break,
            }
            self.i += 1;
        }
        comma
    }

    fn token(&mut self) -> &str {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        // tchars are ASCII, so this slice is valid UTF-8.
        std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default()
    }

    fn run(mut self, out: &mut Vec<Challenge>) -> Result<(), ChallengeError> {
        self.skip_separators();
        while self.peek().is_some() {
            let scheme = self.token().to_owned();
            if scheme.is_empty() {
                return Err(self.err("expected an authentication scheme"));
            }
            let mut challenge = Challenge {
                scheme,
                token68: None,
                params: Vec::new(),
            };
            let had_space = matches!(self.peek(), Some(b' ' | b'\t'));
            self.skip_ws();
            match self.peek() {
                None => {}
                Some(b',') => {}
                Some(_) if !had_space => return Err(self.err("expected a space after the scheme")),
                Some(_) if self.try_token68(&mut challenge) => {}
                Some(_) => self.params(&mut challenge)?,
            }
            out.push(challenge);
            self.skip_separators();
        }
        Ok(())
    }

    /// A token68 is `1*tchar68 *"="` followed by the end or a comma.
    fn try_token68(&mut self, c: &mut Challenge) -> bool {
        let start = self.i;
        let mut j = self.i;
        while self.s.get(j).copied().is_some_and(is_token68_char) {
            j += 1;
        }
        if j == start {
            return false;
        }
        while self.s.get(j) == Some(&b'=') {
            j += 1;
        }
        let mut k = j;
        while matches!(self.s.get(k), Some(b' ' | b'\t')) {
            k += 1;
        }
        if !matches!(self.s.get(k), None | Some(b',')) {
            return false;
        }
        c.token68 = Some(String::from_utf8_lossy(&self.s[start..j]).into_owned());
        self.i = k;
        true
    }

    /// `auth-param *( OWS "," OWS auth-param )`, stopping before the next challenge.
    fn params(&mut self, c: &mut Challenge) -> Result<(), ChallengeError> {
        loop {
            let name_at = self.i;
            let name = self.token().to_ascii_lowercase();
            if name.is_empty() {
                return Err(self.err("expected a parameter name"));
            }
            self.skip_ws();
            if self.peek() != Some(b'=') {
                return Err(self.err("expected '=' after a parameter name"));
            }
            self.i += 1;
            self.skip_ws();
            let value = if self.peek() == Some(b'"') {
                self.quoted()?
            } else {
                let v = self.token().to_owned();
                if v.is_empty() {
                    return Err(self.err("expected a token or quoted string"));
                }
                v
            };
            if c.params.len() == MAX_PARAMS {
                return Err(ChallengeError {
                    at: name_at,
                    what: "more than 64 parameters in one challenge",
                });
            }
            if c.params.iter().any(|(n, _)| *n == name) {
                return Err(ChallengeError {
                    at: name_at,
                    what: "parameter given twice in one challenge",
                });
            }
            c.params.push((name, value));

            self.skip_ws();
            match self.peek() {
                None => return Ok(()),
                Some(b',') => {}
                Some(_) => return Err(self.err("expected ',' between parameters")),
            }
            // After a comma: another parameter (`name =`) or the next challenge.
            let before = self.i;
            self.skip_separators();
            if self.peek().is_none() {
                return Ok(());
            }
            let probe = self.i;
            let _ = self.token();
            self.skip_ws();
            let is_param = self.peek() == Some(b'=') && self.i > probe;
            if is_param {
                self.i = probe;
            } else {
                self.i = before;
                return Ok(());
            }
        }
    }

    fn quoted(&mut self) -> Result<String, ChallengeError> {
        let open = self.i;
        self.i += 1;
        let mut v = Vec::new();
        loop {
            match self.peek() {
                None => {
                    return Err(ChallengeError {
                        at: open,
                        what: "unterminated quoted string",
                    })
                }
                Some(b'"') => {
                    self.i += 1;
                    break;
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(b) if b != b'\r' && b != b'\n' => {
                            v.push(b);
                            self.i += 1;
                        }
                        _ => return Err(self.err("dangling escape in quoted string")),
                    }
                }
                Some(b'\r' | b'\n' | 0) => {
                    return Err(self.err("control character in quoted string"))
                }
                Some(b) => {
                    v.push(b);
                    self.i += 1;
                }
            }
        }
        String::from_utf8(v).map_err(|_| ChallengeError {
            at: open,
            what: "quoted string is not UTF-8",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(h: &str) -> Vec<Challenge> {
        parse([h]).unwrap_or_else(|e| panic!("{h:?}: {e}"))
    }

    #[test]
    fn bearer_with_resource_metadata() {
        let c = one(
            r#"Bearer resource_metadata="https://r.example/.well-known/oauth-protected-resource/api""#,
        );
        let b = BearerChallenge::find(&c).unwrap();
        assert_eq!(
            b.resource_metadata.as_deref(),
            Some("https://r.example/.well-known/oauth-protected-resource/api")
        );
    }

    #[test]
    fn several_challenges_in_one_header() {
        let c = one(
            r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple", Bearer error="invalid_token", scope="a b""#,
        );
        assert_eq!(c.len(), 3);
        assert!(c[0].is("newauth"));
        assert_eq!(c[0].param("TITLE"), Some(r#"Login to "apps""#));
        assert_eq!(c[0].param("type"), Some("1"));
        assert!(c[1].is("basic"));
        assert_eq!(c[1].param("realm"), Some("simple"));
        let b = BearerChallenge::find(&c).unwrap();
        assert_eq!(b.error.as_deref(), Some("invalid_token"));
        assert_eq!(b.scope.as_deref(), Some("a b"));
    }

    #[test]
    fn across_headers_and_case_insensitive() {
        let c = parse(["Basic realm=x", r#"BEARER Realm="api", Scope="read""#]).unwrap();
        assert_eq!(c.len(), 2);
        let b = BearerChallenge::find(&c).unwrap();
        assert_eq!(b.realm.as_deref(), Some("api"));
        assert_eq!(b.scope.as_deref(), Some("read"));
    }

    #[test]
    fn commas_inside_quotes() {
        let c = one(r#"Bearer error_description="a, b, c=d", realm="x""#);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].param("error_description"), Some("a, b, c=d"));
        assert_eq!(c[0].param("realm"), Some("x"));
    }

    #[test]
    fn token68_and_bare_schemes() {
        let c = one("Negotiate abc+/def==, Bearer, Basic realm=\"r\"");
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].token68.as_deref(), Some("abc+/def=="));
        assert!(c[1].is("bearer") && c[1].params.is_empty());
        assert_eq!(c[2].param("realm"), Some("r"));
        let c = one("Bearer");
        assert_eq!(c.len(), 1);
        assert_eq!(BearerChallenge::find(&c), Some(BearerChallenge::default()));
    }

    #[test]
    fn whitespace_around_equals_and_extra_commas() {
        let c = one(r#" , Bearer realm = "a" ,, scope=b , "#);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].param("realm"), Some("a"));
        assert_eq!(c[0].param("scope"), Some("b"));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in [
            r#"Bearer realm="unterminated"#,
            r#"Bearer realm="x" scope="y""#,
            r#"Bearer scope="a", realm="#,
            r#"Bearer realm=x, realm=y"#,
            r#"Bearer ="x""#,
            "=",
            "Bearer realm=\"a\\",
            "Bearer realm=\"a\nb\"",
            "Bearer@ x",
            "\"quoted\"",
        ] {
            assert!(parse([bad]).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn hostile_input_never_panics() {
        // Every prefix of tricky headers, and arbitrary bytes.
        let samples = [
            r#"Bearer realm="a\"b", scope="c,d", error=invalid_token, Basic abc=="#,
            "Négociation ü=\"é\", Bearer",
        ];
        for s in samples {
            for end in 0..=s.len() {
                if let Some(p) = s.get(..end) {
                    let _ = parse([p]);
                }
            }
        }
        let mut x: u32 = 1;
        for _ in 0..2000 {
            let mut bytes = Vec::new();
            for _ in 0..24 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                bytes.push(b" ,=\"\\aB9;\t"[(x % 10) as usize]);
            }
            let s = String::from_utf8(bytes).unwrap();
            let _ = parse([s.as_str()]);
        }
    }

    /// Thousands of parameters are refused after the 64th, instead of each
    /// being compared with every earlier one; 64 are fine.
    #[test]
    fn thousands_of_parameters_are_cut_off() {
        let many: Vec<String> = (0..5000).map(|i| format!("p{i}=v")).collect();
        let e = parse([format!("Bearer {}", many.join(", ")).as_str()]).unwrap_err();
        assert!(e.to_string().contains("64 parameters"), "{e}");
        let ok = parse([format!("Bearer {}", many[..MAX_PARAMS].join(", ")).as_str()]).unwrap();
        assert_eq!(ok[0].params.len(), MAX_PARAMS);
    }

    #[test]
    fn a_dpop_challenge_counts_and_is_preferred_by_a_dpop_token() {
        let c = one(
            r#"DPoP algs="ES256", error="use_dpop_nonce", resource_metadata="https://r.example/m""#,
        );
        let b = BearerChallenge::find(&c).unwrap();
        assert_eq!(b.error.as_deref(), Some("use_dpop_nonce"));
        assert_eq!(b.resource_metadata.as_deref(), Some("https://r.example/m"));
        let both = one(r#"Bearer error="invalid_token", DPoP error="use_dpop_nonce""#);
        let bearer = BearerChallenge::find(&both).unwrap();
        assert_eq!(bearer.error.as_deref(), Some("invalid_token"));
        let dpop = BearerChallenge::find_preferring(&both, "DPoP").unwrap();
        assert_eq!(dpop.error.as_deref(), Some("use_dpop_nonce"));
    }

    /// Whether the resource takes DPoP-bound tokens is read from its
    /// challenges, whichever one is kept.
    #[test]
    fn a_dpop_challenge_says_the_resource_takes_bound_tokens() {
        let algs = |v: &str| BearerChallenge::find(&one(v)).unwrap().dpop_algs;
        assert_eq!(algs(r#"Bearer realm="api""#), None);
        assert_eq!(algs(r#"Bearer realm="api", DPoP"#), Some(vec![]));
        assert_eq!(
            algs(r#"Bearer realm="api", DPoP algs="ES256 PS256""#),
            Some(vec!["ES256".to_owned(), "PS256".to_owned()])
        );
        assert_eq!(algs(r#"DPoP algs="ES256""#), Some(vec!["ES256".to_owned()]));
    }

    #[test]
    fn no_bearer() {
        let c = one(r#"Basic realm="x""#);
        assert_eq!(BearerChallenge::find(&c), None);
        assert_eq!(parse([""]).unwrap(), vec![]);
    }
}
