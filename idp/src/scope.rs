//! Scope lists (RFC 6749 §3.3): which scope a login asks for, the union of
//! what is held and what a resource requires (step-up), whether what is
//! held already covers it, all capped so a hostile resource or server
//! cannot make the app build an unbounded one.

/// The most scope values a request carries, and the longest scope string:
/// a hostile resource or server cannot make the app build an unbounded one.
pub const MAX_SCOPES: usize = 64;
/// See [`MAX_SCOPES`].
pub const MAX_SCOPE_LEN: usize = 2048;

/// Joins scope values, keeping first-seen order, dropping repeats and
/// stopping at [`MAX_SCOPES`] values or [`MAX_SCOPE_LEN`] bytes.
fn join_scopes<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    let mut len = 0;
    for s in values {
        if out.contains(&s) {
            continue;
        }
        if out.len() == MAX_SCOPES || len + s.len() + usize::from(!out.is_empty()) > MAX_SCOPE_LEN {
            break;
        }
        len += s.len() + usize::from(!out.is_empty());
        out.push(s);
    }
    (!out.is_empty()).then(|| out.join(" "))
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
        Some(s) => join_scopes(s.split_whitespace()),
        None => join_scopes(scopes_supported?.iter().flat_map(|s| s.split_whitespace())),
    }
}

/// Unions two space-separated scope lists, keeping first-seen order (for
/// step-up: what is held plus what is required), with the same caps.
pub fn union_scopes(held: Option<&str>, required: Option<&str>) -> Option<String> {
    join_scopes(
        held.into_iter()
            .chain(required)
            .flat_map(str::split_whitespace),
    )
}

/// Whether every scope in `required` is already in `held`, both known and
/// `required` not empty: then a step-up would ask for nothing new.
pub fn scopes_cover(held: Option<&str>, required: Option<&str>) -> bool {
    match (held, required) {
        (Some(held), Some(required)) => {
            let held: Vec<&str> = held.split_whitespace().collect();
            let mut required = required.split_whitespace().peekable();
            required.peek().is_some() && required.all(|s| held.contains(&s))
        }
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
}
