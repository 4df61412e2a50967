//! The opt-in isolate token cache ([`Config::token_cache`]): answers of the
//! user's object kept in this Worker isolate, so a hot path skips the
//! Durable Object round trip.
//!
//! The bound, plainly: another isolate may keep using a removed or replaced
//! credential for up to the cache's lifetime (at most 60 s). An entry is
//! dropped on any 401 from its resource, on removal through this isolate,
//! and when its token enters its refresh window, so this isolate never
//! sends a token its object would have refreshed.
//!
//! [`Config::token_cache`]: super::Config::token_cache

use crate::flow::Authorization;
use crate::matching::ResourceKey;
use crate::token::REFRESH_MARGIN_SECS;
use std::cell::RefCell;
use std::collections::HashMap;

/// The longest a cached answer is used: 60 seconds.
pub const MAX_TOKEN_CACHE_SECS: u32 = 60;

/// Entries kept per isolate before the cache starts afresh.
const MAX_ENTRIES: usize = 10_000;

struct Entry {
    auth: Authorization,
    until: u64,
}

thread_local! {
    /// user → their cached answers, by provider key.
    static CACHE: RefCell<HashMap<String, Vec<Entry>>> = RefCell::new(HashMap::new());
}

/// The cached answer for `url`, if fresh: one whose provider is the
/// longest of the user's provider prefixes covering `url` (an answer for
/// `https://h` is not used under another provider at `https://h/team`,
/// cached or not: [`Authorization::serves`]).
pub(crate) fn lookup(user: &str, url: &str, now: u64) -> Option<Authorization> {
    CACHE.with(|c| {
        let c = c.borrow();
        c.get(user)?
            .iter()
            .filter(|e| e.until > now && e.auth.serves(url))
            .max_by_key(|e| e.auth.key.as_str().len())
            .map(|e| e.auth.clone())
    })
}

/// Keeps `auth` for `ttl` seconds, or until its token enters its refresh
/// window if sooner.
pub(crate) fn put(user: &str, auth: &Authorization, ttl: u32, now: u64) {
    let mut until = now.saturating_add(u64::from(ttl.min(MAX_TOKEN_CACHE_SECS)));
    if let Some(exp) = auth.expires_at {
        until = until.min(exp.saturating_sub(REFRESH_MARGIN_SECS));
    }
    if until <= now {
        return;
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.values().map(Vec::len).sum::<usize>() >= MAX_ENTRIES {
            c.clear();
        }
        let list = c.entry(user.to_owned()).or_default();
        list.retain(|e| e.auth.key != auth.key && e.until > now);
        list.push(Entry {
            auth: auth.clone(),
            until,
        });
    });
}

/// Drops `user`'s entries under `key` (a 401 from it, or its removal).
pub(crate) fn forget(user: &str, key: &ResourceKey) {
    CACHE.with(|c| {
        if let Some(list) = c.borrow_mut().get_mut(user) {
            list.retain(|e| !key.covers(&e.auth.key) && e.auth.key != *key);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(key: &str, expires_at: Option<u64>) -> Authorization {
        Authorization {
            key: ResourceKey::parse(key).unwrap(),
            header: Some("Bearer t".into()),
            scope: None,
            expires_at,
            narrower: Vec::new(),
            dpop: None,
            refused: None,
        }
    }

    /// With providers at `https://h` and `https://h/team`, an answer for
    /// `https://h` is never used under `https://h/team`, whether or not the
    /// narrower provider's answer is cached.
    #[test]
    fn an_answer_is_used_only_where_its_provider_is_the_longest_prefix() {
        let mut root = auth("https://h.example", None);
        root.narrower = vec![ResourceKey::parse("https://h.example/team").unwrap()];
        put("n", &root, 30, 1000);
        let got = |url: &str| lookup("n", url, 1001).map(|a| a.key.to_string());
        assert_eq!(
            got("https://h.example/x").as_deref(),
            Some("https://h.example")
        );
        assert_eq!(got("https://h.example/team/x"), None);
        assert_eq!(got("https://h.example/team"), None);
        assert_eq!(
            got("https://h.example/teams").as_deref(),
            Some("https://h.example")
        );
        put("n", &auth("https://h.example/team", None), 30, 1000);
        assert_eq!(
            got("https://h.example/team/x").as_deref(),
            Some("https://h.example/team")
        );
    }

    #[test]
    fn answers_the_longest_fresh_key_and_forgets_on_demand() {
        put("u", &auth("https://a.example/v1", None), 30, 1000);
        put("u", &auth("https://a.example/v1/deep", None), 30, 1000);
        let got = |url: &str, now| lookup("u", url, now).map(|a| a.key.to_string());
        assert_eq!(
            got("https://a.example/v1/deep/x", 1001).as_deref(),
            Some("https://a.example/v1/deep")
        );
        assert_eq!(
            got("https://a.example/v1/x", 1001).as_deref(),
            Some("https://a.example/v1")
        );
        assert_eq!(
            lookup("other", "https://a.example/v1/x", 1001),
            None,
            "per user"
        );
        assert_eq!(
            got("https://a.example/v1/x", 1030),
            None,
            "expired after ttl"
        );
        forget("u", &ResourceKey::parse("https://a.example/v1").unwrap());
        assert_eq!(
            got("https://a.example/v1/deep/x", 1001),
            None,
            "removal drops keys under it"
        );
    }

    #[test]
    fn never_outlives_the_refresh_window_or_sixty_seconds() {
        // Expires at 1400: refreshed from 1100 on, so not kept at 1100.
        put("w", &auth("https://b.example", Some(1400)), 60, 1100);
        assert_eq!(lookup("w", "https://b.example/x", 1100), None);
        // Expires at 1320: kept until 1020, inside the 60 s.
        put("w", &auth("https://b.example", Some(1320)), 60, 1000);
        assert!(lookup("w", "https://b.example/x", 1019).is_some());
        assert_eq!(lookup("w", "https://b.example/x", 1020), None);
        // No expiry: at most 60 s whatever is asked.
        put("w", &auth("https://c.example", None), 600, 1000);
        assert!(lookup("w", "https://c.example/x", 1059).is_some());
        assert_eq!(
            lookup("w", "https://c.example/x", 1060),
            None,
            "capped at 60 s"
        );
    }
}
