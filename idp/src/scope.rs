//! Scope lists (RFC 6749 §3.3), one type for all of them ([`Scope`]): which
//! scope a login asks for, the union of what is held and what a resource
//! requires (step-up), whether what is held already covers it, all capped
//! so a hostile resource or server cannot make the app build an unbounded
//! one.

/// The most scope values a request carries, and the longest scope string:
/// a hostile resource or server cannot make the app build an unbounded one.
pub const MAX_SCOPES: usize = 64;
/// See [`MAX_SCOPES`].
pub const MAX_SCOPE_LEN: usize = 2048;

/// A scope list: distinct values in first-seen order, capped at
/// [`MAX_SCOPES`] values and [`MAX_SCOPE_LEN`] bytes (space-joined), so a
/// hostile resource or server cannot make the app build an unbounded one.
/// The one way scopes are parsed, merged and compared.
///
/// ```
/// use idp::scope::Scope;
/// let held = Scope::parse("read write");
/// let wanted = Scope::parse_list("write,admin");
/// assert!(!held.covers(&wanted));
/// assert_eq!(held.union(&wanted).to_param().as_deref(), Some("read write admin"));
/// assert!(held.union(&wanted).covers(&wanted));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope(Vec<String>);

impl Scope {
    /// Values as given, keeping first-seen order, dropping empty ones and
    /// repeats, stopping at the caps.
    pub fn from_values<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut out: Vec<String> = Vec::new();
        let mut len = 0;
        for s in values.into_iter().filter(|s| !s.is_empty()) {
            if out.iter().any(|have| have == s) {
                continue;
            }
            let sep = usize::from(!out.is_empty());
            if out.len() == MAX_SCOPES || len + s.len() + sep > MAX_SCOPE_LEN {
                break;
            }
            len += s.len() + sep;
            out.push(s.to_owned());
        }
        Self(out)
    }

    /// A `scope` parameter as RFC 6749 §3.3 writes it: values separated by
    /// spaces.
    pub fn parse(s: &str) -> Self {
        Self::from_values(s.split_whitespace())
    }

    /// A list an app or person wrote: values separated by spaces or commas
    /// (as Slack and Linear write them).
    pub fn parse_list(s: &str) -> Self {
        Self::from_values(s.split(|c: char| c.is_whitespace() || c == ','))
    }

    /// The values.
    pub fn values(&self) -> &[String] {
        &self.0
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// These values, then those of `other` not among them (with the caps).
    pub fn union(&self, other: &Scope) -> Scope {
        Self::from_values(self.0.iter().chain(&other.0).map(String::as_str))
    }

    /// Whether every value of `required`, which is not empty, is here.
    pub fn covers(&self, required: &Scope) -> bool {
        !required.is_empty() && required.0.iter().all(|r| self.0.contains(r))
    }

    /// The values joined with `separator`.
    pub fn join(&self, separator: &str) -> String {
        self.0.join(separator)
    }

    /// The `scope` parameter: space-separated, `None` when empty.
    pub fn to_param(&self) -> Option<String> {
        (!self.is_empty()).then(|| self.join(" "))
    }
}

/// Chooses the scope to request: explicit > the challenge's `scope` > the
/// resource metadata's `scopes_supported` > none. Capped by [`MAX_SCOPES`]
/// and [`MAX_SCOPE_LEN`].
pub fn choose_scope(
    explicit: Option<&str>,
    challenge: Option<&str>,
    scopes_supported: Option<&[String]>,
) -> Option<String> {
    let non_empty = |s: &&str| !s.trim().is_empty();
    match explicit.filter(non_empty).or(challenge.filter(non_empty)) {
        Some(s) => Scope::parse(s).to_param(),
        None => Scope::from_values(scopes_supported?.iter().flat_map(|s| s.split_whitespace()))
            .to_param(),
    }
}

/// Unions two space-separated scope lists, keeping first-seen order (for
/// step-up: what is held plus what is required), with the same caps.
pub fn union_scopes(held: Option<&str>, required: Option<&str>) -> Option<String> {
    let parse = |s: Option<&str>| Scope::parse(s.unwrap_or_default());
    parse(held).union(&parse(required)).to_param()
}

/// Whether every scope in `required` is already in `held`, both known and
/// `required` not empty: then a step-up would ask for nothing new.
pub fn scopes_cover(held: Option<&str>, required: Option<&str>) -> bool {
    match (held, required) {
        (Some(held), Some(required)) => Scope::parse(held).covers(&Scope::parse(required)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_precedence() {
        let sup = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            choose_scope(Some("x  y"), Some("c"), Some(&sup)).as_deref(),
            Some("x y")
        );
        assert_eq!(
            choose_scope(None, Some("c"), Some(&sup)).as_deref(),
            Some("c")
        );
        assert_eq!(
            choose_scope(Some(" "), None, Some(&sup)).as_deref(),
            Some("a b")
        );
        assert_eq!(choose_scope(None, None, Some(&[])), None);
        assert_eq!(choose_scope(None, None, None), None);
        assert_eq!(
            union_scopes(Some("a b"), Some("b c")).as_deref(),
            Some("a b c")
        );
        assert_eq!(union_scopes(None, None), None);
        assert!(scopes_cover(Some("a b"), Some("b")));
        assert!(!scopes_cover(Some("a"), Some("a b")));
        assert!(!scopes_cover(None, Some("a")));
        assert!(!scopes_cover(Some("a"), Some(" ")));
        let many: Vec<String> = (0..500).map(|i| format!("scope-{i}")).collect();
        let capped = choose_scope(None, None, Some(&many)).unwrap();
        assert_eq!(capped.split(' ').count(), MAX_SCOPES);
        let long = "x".repeat(MAX_SCOPE_LEN - 3);
        let capped = choose_scope(Some(&format!("a b {long} c")), None, None).unwrap();
        assert!(capped.len() <= MAX_SCOPE_LEN, "{}", capped.len());
        assert_eq!(capped, "a b");
    }

    #[test]
    fn one_scope_type_parses_merges_and_compares() {
        assert_eq!(Scope::parse_list("a,b c,,a").values(), ["a", "b", "c"]);
        assert_eq!(
            Scope::parse("a,b c").values(),
            ["a,b", "c"],
            "RFC 6749 keeps commas"
        );
        let held = Scope::parse("a b");
        assert!(held.covers(&Scope::parse("b")));
        assert!(
            !held.covers(&Scope::parse("")),
            "nothing required is no step-up"
        );
        assert!(!held.covers(&Scope::parse("c")));
        assert_eq!(held.union(&Scope::parse("b c")).join(","), "a,b,c");
        assert_eq!(Scope::default().to_param(), None);
        let many: Vec<String> = (0..100).map(|i| format!("s{i}")).collect();
        let capped = Scope::from_values(many.iter().map(String::as_str));
        assert_eq!(capped.values().len(), MAX_SCOPES);
        assert_eq!(held.union(&capped).values().len(), MAX_SCOPES);
    }
}
