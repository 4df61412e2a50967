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
    // Fields drop in this order: the lock, then the entry's clean-up.
    _guard: OwnedMutexGuard<()>,
    _shared: OwnedRwLockReadGuard<()>,
    _entry: Entry,
}

/// A grant's entry in the map, removed when it is dropped last: by the
/// holder that lets go, or by a waiter that goes away before its turn.
#[derive(Debug)]
struct Entry {
    grants: Grants,
    id: (String, ResourceKey),
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut grants = self.grants.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map holds it now: nobody holds it or waits.
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
        // Declared before the wait, so a waiter that goes away drops its
        // claim on the mutex first, then cleans up the entry.
        let entry = Entry {
            grants: self.grants.clone(),
            id,
        };
        let waiting = mutex.lock_owned();
        let guard = waiting.await;
        GrantGuard::One {
            _held: OneGrant {
                _guard: guard,
                _shared: shared,
                _entry: entry,
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

        // A waiter that goes away after the holder let go, before its
        // turn came: nothing is left behind either.
        let a = locks.lock_grant("alice", &key("https://a.example")).await;
        let k = key("https://a.example");
        let mut waiter = Box::pin(locks.lock_grant("alice", &k));
        let first = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::future::Future::poll(waiter.as_mut(), cx).is_pending())
        })
        .await;
        assert!(first, "it waits");
        drop(a);
        drop(waiter);
        assert!(
            locks.grants.lock().unwrap().is_empty(),
            "no lock left behind by a waiter that went away"
        );
    }
}
