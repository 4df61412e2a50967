//! One refresh per grant across processes: a transaction-scoped advisory
//! lock per grant, held on a connection of its own while the refresh runs.

use super::tables::lock as statements;
use super::{backend, PostgresStore};
use crate::error::{Error, Result, StorageCause};
use crate::matching::ResourceKey;
use crate::store::UserStore;
use deadpool_postgres::Object;
use std::future::Future;
use std::time::Duration;

/// The advisory lock of one grant: the first 8 bytes of a SHA-256 of its
/// owner and key (a collision only makes two grants wait for each other).
pub(super) fn grant_lock(owner: &str, key: &ResourceKey) -> i64 {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"idp-refresh\0");
    h.update(owner.as_bytes());
    h.update(b"\0");
    h.update(key.as_str().as_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    i64::from_be_bytes(first)
}

/// A connection holding a grant's advisory lock in an open transaction. If
/// it is dropped before [`Held::release`] (the refresh was cancelled), the
/// connection leaves the pool and closes, which ends the transaction and
/// the lock on the server.
struct Held(Option<Object>);

impl Held {
    async fn release(mut self) {
        if let Some(c) = self.0.as_ref() {
            if c.batch_execute(statements::COMMIT).await.is_ok() {
                self.0.take();
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            drop(Object::take(c));
        }
    }
}

/// Runs `refresh` holding advisory lock `lock`, waiting for it at most the
/// store's lock wait. The server ends the lock's session if it sits idle in
/// its transaction longer than a refresh can take (a process stuck after
/// taking it), and a process that dies closes it.
pub(super) async fn exclusive<T>(
    store: &PostgresStore,
    lock: i64,
    refresh: impl Future<Output = T>,
) -> Result<T> {
    let fail = backend("locking a grant for its refresh");
    let held = Held(Some(store.client().await?));
    let c = held.0.as_ref().expect("just set");
    let wait = store.lock_wait.as_millis();
    let hold = store.lock_hold.as_millis();
    c.batch_execute(&statements::begin(wait, hold))
        .await
        .map_err(&fail)?;
    match c.execute(statements::TAKE, &[&lock]).await {
        Ok(_) => {}
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
            return Err(Error::storage(
                StorageCause::Unavailable,
                format!("another process has been refreshing this grant for over {wait} ms; nothing was sent, try again"),
            ));
        }
        Err(e) => return Err(fail(e)),
    }
    // Which session holds it, so a check before sending can ask the
    // database whether it still does (it ends an idle one).
    let pid: Option<i32> = c
        .query_one(statements::PID, &[])
        .await
        .ok()
        .and_then(|r| r.try_get(0).ok());
    if let Some(pid) = pid {
        store.holders().insert(lock, pid);
    }
    let out = refresh.await;
    store.holders().remove(&lock);
    held.release().await;
    Ok(out)
}

/// Whether this process still holds advisory lock `lock` (taken by
/// [`exclusive`]): `None` when it took none here, else what the database
/// says of the session that took it (ended by the server when it sat idle
/// past its hold time, as when the process was paused).
pub(super) async fn still_held(store: &PostgresStore, lock: i64) -> Result<Option<bool>> {
    let Some(pid) = store.holders().get(&lock).copied() else {
        return Ok(None);
    };
    let (high, low) = ((lock >> 32) & 0xffff_ffff, lock & 0xffff_ffff);
    let c = store.client().await?;
    let rows = c
        .query(statements::STILL_HELD, &[&pid, &high, &low])
        .await
        .map_err(backend("checking a grant's refresh lock"))?;
    Ok(Some(!rows.is_empty()))
}

/// [`UserStore::still_current`] on PostgreSQL: refused when this process's
/// session no longer holds the grant's lock (the database ended it while
/// the process was paused), or when the stored refresh token is no longer
/// `refresh_token` (another process rotated it).
pub(super) async fn still_current(
    store: &PostgresStore,
    owner: &str,
    key: &ResourceKey,
    refresh_token: &crate::secret::RefreshToken,
) -> Result<()> {
    if still_held(store, grant_lock(owner, key)).await? == Some(false) {
        return Err(Error::storage(
            StorageCause::Conflict,
            format!(
                "this process lost the refresh lock of {key} (its session sat idle past the lock hold, as when the process is paused), so another process may be refreshing it; nothing was sent"
            ),
        ));
    }
    let stored = store.provider(owner, key).await?;
    let same = stored
        .as_ref()
        .and_then(|p| p.tokens()?.refresh_token.as_ref())
        .is_some_and(|t| t.secret() == refresh_token.secret());
    if same {
        return Ok(());
    }
    Err(Error::storage(
        StorageCause::Conflict,
        format!(
            "the refresh token of {key} is no longer the one stored (another process refreshed the grant while this one waited); nothing was sent"
        ),
    ))
}

/// `d`, refused under a millisecond: PostgreSQL's timeouts are whole
/// milliseconds, and 0 means none.
pub(super) fn at_least_a_millisecond(what: &str, d: Duration) -> Result<Duration> {
    if d.as_millis() == 0 {
        return Err(Error::Configuration {
            name: format!("PostgresStore: {what}"),
            reason: format!(
                "{d:?} is under a millisecond, which PostgreSQL reads as no timeout at all"
            ),
        });
    }
    Ok(d)
}
