//! The native runtime's refresh lock ([`GrantLocks`]): one refresh per
//! grant at a time, and grants of different owners or resources in
//! parallel, so one user's hanging token endpoint stalls only that grant.

use crate::flow::RefreshLock;
use crate::matching::ResourceKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedMutexGuard, OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

type Grants = Arc<Mutex<HashMap<(String, ResourceKey), Arc<tokio::sync::Mutex<()>>>>>;

/// A lock per grant (owner and resource key), made when first asked for and
/// dropped when nobody holds or waits for it; [`RefreshLock::lock`] holds
/// every grant's at once.
#[derive(Debug, Default)]
pub struct GrantLocks {
    /// Every grant lock holds it shared; the whole-store lock exclusively.
    all: Arc<RwLock<()>>,
    grants: Grants,
}

/// What [`GrantLocks`] hands out: the whole store's lock, or one grant's.
#[derive(Debug)]
pub enum GrantGuard {
    /// Every grant.
    All {
        /// Held until dropped.
        _held: OwnedRwLockWriteGuard<()>,
    },
    /// One grant.
    One {
        /// Held until dropped.
        _held: OneGrant,
    },
}

/// One grant's lock, held; its entry goes when the last holder or waiter
/// lets go.
#[derive(Debug)]
pub struct OneGrant {
    guard: Option<OwnedMutexGuard<()>>,
    _shared: OwnedRwLockReadGuard<()>,
    grants: Grants,
    id: (String, ResourceKey),
}

impl Drop for OneGrant {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut grants = self.grants.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map holds it now: nobody waits.
        if grants
            .get(&self.id)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            grants.remove(&self.id);
        }
    }
}

impl RefreshLock for GrantLocks {
    type Guard<'a> = GrantGuard;

    async fn lock(&self) -> GrantGuard {
        GrantGuard::All {
            _held: self.all.clone().write_owned().await,
        }
    }

    async fn lock_grant(&self, owner: &str, key: &ResourceKey) -> GrantGuard {
        let shared = self.all.clone().read_owned().await;
        let id = (owner.to_owned(), key.clone());
        let mutex = {
            let mut grants = self.grants.lock().unwrap_or_else(|p| p.into_inner());
            grants.entry(id.clone()).or_default().clone()
        };
        GrantGuard::One {
            _held: OneGrant {
                guard: Some(mutex.lock_owned().await),
                _shared: shared,
                grants: self.grants.clone(),
                id,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(k: &str) -> ResourceKey {
        ResourceKey::parse(k).unwrap()
    }

    /// Two grants lock apart; the same grant waits; the whole store waits
    /// for every grant; nothing is left behind.
    #[test]
    fn grants_lock_apart_and_the_store_locks_them_all() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(grants_lock_apart());
    }

    async fn grants_lock_apart() {
        let locks = Arc::new(GrantLocks::default());
        let a = locks.lock_grant("alice", &key("https://a.example")).await;
        let b = tokio::time::timeout(
            Duration::from_millis(100),
            locks.lock_grant("bob", &key("https://a.example")),
        )
        .await;
        assert!(b.is_ok(), "another user's grant is not held up");
        drop(b);
        let again = tokio::time::timeout(
            Duration::from_millis(100),
            locks.lock_grant("alice", &key("https://a.example")),
        )
        .await;
        assert!(again.is_err(), "the same grant waits");
        let all = tokio::time::timeout(Duration::from_millis(100), locks.lock()).await;
        assert!(all.is_err(), "the whole store waits for every grant");
        drop(a);
        let all = tokio::time::timeout(Duration::from_millis(100), locks.lock()).await;
        assert!(all.is_ok());
        drop(all);
        assert!(
            locks.grants.lock().unwrap().is_empty(),
            "no lock left behind"
        );
    }
}
