//! When grants are refreshed with no request in flight, written once for
//! every runtime that does it (the Durable Object's alarm, the native
//! background task): ahead of expiry (or sooner, a keep-alive), and after a
//! passing failure, again after a capped exponential backoff.

use crate::token::TokenSet;

/// The first retry of a failed background refresh waits this long
/// (seconds), doubling each time up to [`RETRY_MAX_SECS`].
pub const RETRY_BASE_SECS: u64 = 30;
/// The longest wait between retries: an hour.
pub const RETRY_MAX_SECS: u64 = 3600;

/// When a grant's token should next be refreshed: its refresh margin, or
/// sooner the keep-alive (`keep_alive` seconds after it was issued, for
/// servers that expire idle refresh tokens). `None` for a token that says
/// neither ([`TokenSet::background_due`], which every store's queue uses).
pub fn due_at(t: &TokenSet, keep_alive: Option<u64>) -> Option<u64> {
    t.background_due(keep_alive)
}

/// How long to wait after the `failures`-th passing failure in a row (from
/// 1): `base`, doubled each time, at most [`RETRY_MAX_SECS`].
pub fn retry_wait(base: u64, failures: u64) -> u64 {
    base.saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(RETRY_MAX_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::AccessToken;
    use crate::token::TokenSet;

    fn tokens(issued: u64, expires: Option<u64>) -> TokenSet {
        TokenSet {
            access_token: AccessToken::new("at"),
            refresh_token: None,
            expires_at: expires,
            scope: None,
            issued_at: Some(issued),
            dpop: None,
        }
    }

    #[test]
    fn the_next_refresh_is_the_margin_or_sooner_the_keep_alive() {
        // One hour tokens: 5 minutes before expiry.
        assert_eq!(due_at(&tokens(0, Some(3600)), None), Some(3300));
        // 20 s tokens: half their life.
        assert_eq!(due_at(&tokens(0, Some(20)), None), Some(10));
        // A keep-alive sooner than expiry wins; later, it does not.
        let day = 86_400;
        assert_eq!(
            due_at(&tokens(0, Some(30 * day)), Some(7 * day)),
            Some(7 * day)
        );
        assert_eq!(due_at(&tokens(0, Some(3600)), Some(7 * day)), Some(3300));
        // Unknown expiry: only the keep-alive schedules a refresh.
        assert_eq!(due_at(&tokens(0, None), None), None);
        assert_eq!(due_at(&tokens(5, None), Some(day)), Some(5 + day));
    }

    #[test]
    fn retries_double_from_the_base_up_to_an_hour() {
        let waits: Vec<u64> = (1..=9).map(|f| retry_wait(30, f)).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(retry_wait(30, 0), 30);
        assert_eq!(retry_wait(u64::MAX, 64), RETRY_MAX_SECS);
    }
}
