//! Refresh single-flight, written once for every runtime: a [`Refresher`]
//! serialises refreshes behind a lock the runtime provides
//! ([`RefreshLock`]), so concurrent callers with the same stale token cause
//! one token request and a rotated refresh token is used once; and after an
//! early refresh fails for a passing reason, it keeps handing out the
//! still-valid token for [`EARLY_REFRESH_PAUSE_SECS`] instead of making every
//! call queue behind a failing server.

use super::grant::{refresh_traced, Authorization, RefreshReason};
use crate::error::{Error, Result};
use crate::http::HttpClient;
use crate::matching::ResourceKey;
use crate::store::Store;
use crate::token::{fingerprint, TokenSet};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

/// How long calls use a still-valid token without retrying a failed early
/// refresh: 30 seconds.
pub const EARLY_REFRESH_PAUSE_SECS: u64 = 30;

/// The lock a runtime provides to serialise refreshes: of one grant at a
/// time ([`RefreshLock::lock_grant`], what a refresh holds), and of every
/// grant at once ([`RefreshLock::lock`], for other writes that must not
/// interleave with any refresh). The Workers object, one user's, uses one
/// `tokio::sync::Mutex<()>` for both; [`crate::native::NativeIdp`], many
/// users', locks per grant, so one user's slow server stalls nobody else.
pub trait RefreshLock {
    /// Held while refreshing.
    type Guard<'a>
    where
        Self: 'a;
    /// Waits for every grant's lock.
    fn lock(&self) -> impl Future<Output = Self::Guard<'_>>;
    /// Waits for the lock of `owner`'s grant under `key` (by default, every
    /// grant's).
    fn lock_grant(&self, owner: &str, key: &ResourceKey) -> impl Future<Output = Self::Guard<'_>> {
        let _ = (owner, key);
        self.lock()
    }
}

#[cfg(any(feature = "native", feature = "workers", test))]
impl RefreshLock for tokio::sync::Mutex<()> {
    type Guard<'a> = tokio::sync::MutexGuard<'a, ()>;
    fn lock(&self) -> impl Future<Output = Self::Guard<'_>> {
        tokio::sync::Mutex::lock(self)
    }
}

/// Which token the resource refused.
#[derive(Clone, Copy)]
pub enum Refused<'a> {
    /// The access token itself.
    Token(&'a str),
    /// Its [`fingerprint`] (how the Worker names it to its object without
    /// sending it back).
    Fingerprint(&'a str),
}

impl std::fmt::Debug for Refused<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Token(_) => f.write_str("Token([redacted])"),
            Refused::Fingerprint(p) => f.debug_tuple("Fingerprint").field(p).finish(),
        }
    }
}

impl Refused<'_> {
    fn is(&self, token: &str) -> bool {
        match self {
            Refused::Token(t) => *t == token,
            Refused::Fingerprint(p) => fingerprint(token) == *p,
        }
    }
}

/// What a refresh did to a grant, as [`Refresher::take_events`] reports it
/// (for lifecycle events). Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshEvent {
    /// New tokens were obtained.
    Refreshed,
    /// The token request failed; `transient` when trying later may work.
    Failed {
        /// Trying later may work.
        transient: bool,
        /// What was tried and what came back.
        message: String,
    },
    /// The server said the grant is gone: the tokens were dropped.
    Dead {
        /// The server's answer.
        message: String,
    },
}

/// One [`RefreshEvent`], with whose provider it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRefresh {
    /// The owner.
    pub owner: String,
    /// The provider's key.
    pub key: ResourceKey,
    /// What happened.
    pub event: RefreshEvent,
}

/// Authorizations for one store's providers, refreshed one at a time, with a
/// lock the runtime provides ([`RefreshLock`]): concurrent callers with the
/// same stale token cause one token request, and a rotated refresh token is
/// used once. After an early refresh fails for a passing reason, the
/// still-valid token is handed out for [`EARLY_REFRESH_PAUSE_SECS`] instead
/// of every call queueing behind a failing server.
#[derive(Debug)]
pub struct Refresher<L> {
    lock: L,
    /// (owner, key) → until when early refreshes are paused.
    paused: Mutex<HashMap<(String, ResourceKey), u64>>,
    /// What refreshes did, until the runtime takes it.
    events: Mutex<Vec<RecordedRefresh>>,
}

impl<L: RefreshLock + Default> Default for Refresher<L> {
    fn default() -> Self {
        Self::new(L::default())
    }
}

impl<L: RefreshLock> Refresher<L> {
    /// A refresher that serialises with `lock`.
    pub fn new(lock: L) -> Self {
        Self {
            lock,
            paused: Mutex::new(HashMap::new()),
            events: Mutex::new(Vec::new()),
        }
    }

    /// What the refreshes since the last call did, oldest first.
    pub fn take_events(&self) -> Vec<RecordedRefresh> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// [`super::refresh_provider`], recording what it did to the grant.
    async fn refresh(
        &self,
        http: &impl HttpClient,
        store: &impl Store,
        owner: &str,
        key: &ResourceKey,
        reason: RefreshReason<'_>,
        now: u64,
    ) -> Result<Option<TokenSet>> {
        let result = refresh_traced(http, store, owner, key, reason, now).await;
        let event = match &result {
            Ok((_, true)) => Some(RefreshEvent::Refreshed),
            Ok((_, false)) => None,
            Err(e @ Error::Token { .. }) if e.requires_reauthorization() => {
                Some(RefreshEvent::Dead {
                    message: e.to_string(),
                })
            }
            Err(
                e @ (Error::Token { .. } | Error::Transport { .. } | Error::InvalidResponse { .. }),
            ) => Some(RefreshEvent::Failed {
                transient: e.is_retryable(),
                message: e.to_string(),
            }),
            Err(_) => None,
        };
        let result = result.map(|(tokens, _)| tokens);
        if let Some(event) = event {
            let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
            // Kept for whoever takes them; a runtime that never does keeps
            // the last ones only.
            if events.len() >= 200 {
                events.remove(0);
            }
            events.push(RecordedRefresh {
                owner: owner.to_owned(),
                key: key.clone(),
                event,
            });
        }
        result
    }

    /// Takes the lock, for other writes that must not interleave with a
    /// refresh (finishing a login, naming a provider).
    pub fn lock(&self) -> impl Future<Output = L::Guard<'_>> {
        self.lock.lock()
    }

    fn paused(&self, owner: &str, key: &ResourceKey, now: u64) -> bool {
        let map = self.paused.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(owner.to_owned(), key.clone()))
            .is_some_and(|until| now < *until)
    }

    fn set_pause(&self, owner: &str, key: &ResourceKey, until: Option<u64>) {
        let mut map = self.paused.lock().unwrap_or_else(|p| p.into_inner());
        let k = (owner.to_owned(), key.clone());
        match until {
            Some(u) => map.insert(k, u),
            None => map.remove(&k),
        };
    }

    /// What to send to `url` for `owner`: the longest-prefix provider's
    /// header (refreshed first when it expires within
    /// [`crate::token::REFRESH_MARGIN_SECS`]), no header for a public
    /// provider, `Ok(None)` when no provider matches.
    ///
    /// An early refresh that fails for a passing reason (not a dead grant)
    /// hands out the still-valid token, and so do the calls of the next
    /// [`EARLY_REFRESH_PAUSE_SECS`]; the error is returned only once the
    /// token has expired.
    pub async fn authorization(
        &self,
        http: &impl HttpClient,
        store: &impl Store,
        owner: &str,
        url: &str,
        now: u64,
    ) -> Result<Option<Authorization>> {
        let key = ResourceKey::parse(url)?;
        let Some(p) = store
            .provider_for(owner, &key)
            .await?
            .filter(|p| p.key.covers_request(url))
        else {
            return Ok(None);
        };
        let tokens = match p.tokens() {
            None if p.is_public() => None,
            Some(t) if !t.needs_refresh(now) => Some(t.clone()),
            Some(t) if t.still_valid(now) && self.paused(owner, &p.key, now) => Some(t.clone()),
            seen => {
                let _one_at_a_time = self.lock.lock_grant(owner, &p.key).await;
                let reason = match seen {
                    // Whoever waited finds the token replaced and uses it.
                    Some(t) => RefreshReason::Rejected(t.access_token.secret()),
                    None => RefreshReason::Expiring,
                };
                let refresh = self.refresh(http, store, owner, &p.key, reason, now);
                match (
                    store
                        .exclusive(owner, &p.key, refresh)
                        .await
                        .and_then(|r| r),
                    seen,
                ) {
                    (Ok(t), _) => {
                        self.set_pause(owner, &p.key, None);
                        t
                    }
                    (Err(e), Some(t)) if !e.requires_reauthorization() && t.still_valid(now) => {
                        self.set_pause(
                            owner,
                            &p.key,
                            Some(now.saturating_add(EARLY_REFRESH_PAUSE_SECS)),
                        );
                        Some(t.clone())
                    }
                    (Err(e), _) => return Err(e),
                }
            }
        };
        let auth = Authorization::of(p.key.clone(), tokens.as_ref());
        Ok(Some(auth.with_grant(p.grant.as_ref())))
    }

    /// The resource refused `refused`: refresh `owner`'s provider under `key`
    /// unless someone already replaced that token (then the stored one is
    /// handed out). Concurrent callers with the same refused token share one
    /// token request.
    pub async fn rejected(
        &self,
        http: &impl HttpClient,
        store: &impl Store,
        owner: &str,
        key: &ResourceKey,
        refused: Refused<'_>,
        now: u64,
    ) -> Result<Authorization> {
        let _one_at_a_time = self.lock.lock_grant(owner, key).await;
        let refresh = async {
            let current = store
                .provider(owner, key)
                .await?
                .ok_or_else(|| Error::NotConnected {
                    url: key.to_string(),
                })?;
            let stored = current.tokens().map(|t| t.access_token.secret().to_owned());
            let reason = match &stored {
                Some(t) if refused.is(t) => RefreshReason::Rejected(t),
                _ => RefreshReason::Expiring,
            };
            let tokens = self.refresh(http, store, owner, key, reason, now).await?;
            Ok::<_, Error>((current, tokens))
        };
        let (current, tokens) = store.exclusive(owner, key, refresh).await??;
        self.set_pause(owner, key, None);
        let auth = Authorization::of(key.clone(), tokens.as_ref());
        Ok(auth.with_grant(current.grant.as_ref()))
    }

    /// Refreshes `owner`'s provider under `key` if its token expires within
    /// the refresh margin; the tokens it holds afterwards.
    pub async fn refresh_expiring(
        &self,
        http: &impl HttpClient,
        store: &impl Store,
        owner: &str,
        key: &ResourceKey,
        now: u64,
    ) -> Result<Option<TokenSet>> {
        let _one_at_a_time = self.lock.lock_grant(owner, key).await;
        let refresh = self.refresh(http, store, owner, key, RefreshReason::Expiring, now);
        store.exclusive(owner, key, refresh).await?
    }
}
