//! Background refresh without a Worker: what the Durable Object's alarm does
//! on Workers (refresh ahead of expiry, back off after a passing failure,
//! stop on a dead grant, report each as a lifecycle event), as a pass any
//! process may run over a store several share ([`RefreshQueue`]): each due
//! grant is claimed by one process, so two never refresh the same one.

use super::{now, NativeIdp};
use crate::error::Result;
use crate::flow::schedule::{retry_wait, RETRY_BASE_SECS};
use crate::flow::RecordedRefresh;
use crate::store::{Due, RefreshQueue, Store};
use std::time::Duration;

/// How long a claim lasts: longer than a refresh can take, after which a
/// grant claimed by a process that died is due for another.
pub const CLAIM_LEASE_SECS: u64 = 120;

/// What one pass of [`NativeIdp::refresh_due`] did.
#[derive(Debug, Default)]
pub struct RefreshPass {
    /// The grants this process claimed and refreshed (or tried to).
    pub claimed: Vec<Due>,
    /// The lifecycle events of the refreshes made since the last take,
    /// calls' included.
    pub events: Vec<RecordedRefresh>,
}

impl<S: Store + RefreshQueue> NativeIdp<S> {
    /// One pass: claims up to `limit` grants due now, refreshes each (through
    /// the same single-flight as calls, so a call refreshing the same grant
    /// meanwhile causes no second token request), schedules a retry after a
    /// passing failure (30 s, doubling up to an hour), and leaves a grant
    /// that needs the person (dead, or sealed under a key this process does
    /// not have) unscheduled until they connect again. Returns what it
    /// claimed and the lifecycle events ([`crate::flow::RefreshEvent`]:
    /// refreshed, failed, dead).
    pub async fn refresh_due(&self, limit: usize) -> Result<RefreshPass> {
        let at = now();
        let claimed = self.store.claim_due(at, limit, CLAIM_LEASE_SECS).await?;
        for due in &claimed {
            let done = self.refresh_claimed(&due.owner, &due.key, at).await;
            // As the object's alarm: a grant that needs the person stops its
            // schedule; any other failure is tried again after the backoff.
            match done {
                Ok(_) => self.store.release(&due.owner, &due.key).await?,
                Err(e) if e.requires_reauthorization() => {
                    self.store.stop(&due.owner, &due.key).await?;
                }
                Err(_) => {
                    let failures = due.failures.saturating_add(1);
                    let next = at.saturating_add(retry_wait(RETRY_BASE_SECS, failures));
                    self.store
                        .retry_at(&due.owner, &due.key, failures, next)
                        .await?;
                }
            }
        }
        Ok(RefreshPass {
            claimed,
            events: self.refresher.take_events(),
        })
    }

    /// Refreshes a grant the queue says is due at `at`: near expiry, as any
    /// refresh; still fresh, it is the queue's keep-alive (as the object's
    /// alarm), and the token is refreshed all the same.
    async fn refresh_claimed(
        &self,
        owner: &str,
        key: &crate::matching::ResourceKey,
        at: u64,
    ) -> Result<()> {
        let (http, store) = (&self.http, &self.store);
        let stored = store.provider(owner, key).await?;
        let fresh = stored
            .as_ref()
            .and_then(|p| p.tokens())
            .filter(|t| !t.needs_refresh(at));
        match fresh {
            Some(t) => {
                let token = crate::flow::Refused::Token(t.access_token.secret());
                let refresher = &self.refresher;
                refresher
                    .rejected(http, store, owner, key, token, at)
                    .await?;
            }
            None => {
                let refresher = &self.refresher;
                refresher
                    .refresh_expiring(http, store, owner, key, at)
                    .await?;
            }
        }
        Ok(())
    }

    /// Runs [`NativeIdp::refresh_due`] every `every` (100 grants a pass, as
    /// many passes as there are due grants), handing each event to
    /// `on_event`; a pass that fails (the database unreachable) is reported
    /// to `on_error` and tried again at the next tick. Run it in a task of
    /// its own on every replica, or on some: claims keep them apart.
    ///
    /// ```no_run
    /// # #[cfg(feature = "postgres")]
    /// # async fn f(idp: std::sync::Arc<idp::native::NativeIdp<idp::native::PostgresStore>>) {
    /// let task = tokio::spawn(async move {
    ///     idp.run_background_refresh(
    ///         std::time::Duration::from_secs(30),
    ///         |e| println!("{} {}: {:?}", e.owner, e.key, e.event),
    ///         |err| eprintln!("background refresh: {err}"),
    ///     )
    ///     .await
    /// });
    /// # }
    /// ```
    pub async fn run_background_refresh(
        &self,
        every: Duration,
        mut on_event: impl FnMut(RecordedRefresh),
        mut on_error: impl FnMut(crate::Error),
    ) {
        const PASS: usize = 100;
        loop {
            loop {
                match self.refresh_due(PASS).await {
                    Ok(pass) => {
                        let full = pass.claimed.len() >= PASS;
                        pass.events.into_iter().for_each(&mut on_event);
                        if !full {
                            break;
                        }
                    }
                    Err(e) => {
                        on_error(e);
                        break;
                    }
                }
            }
            tokio::time::sleep(every).await;
        }
    }
}
