//! [`MemoryStore`]: the [`Store`](crate::store::Store) in memory, behind one mutex.

use super::{Due, Expect, FlowTake, Provider, Put, RefreshQueue, RegistryStore, UserStore};
use crate::authorize::PendingFlow;
use crate::discovery::AuthorizationServer;
use crate::error::{Error, Result, StorageCause};
use crate::matching::{candidates, ResourceKey};
use crate::registration::Registration;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

#[derive(Default)]
struct Inner {
    flows: HashMap<String, PendingFlow>,
    registrations: HashMap<(String, String), Registration>,
    servers: HashMap<String, (AuthorizationServer, u64)>,
    providers: HashMap<String, BTreeMap<ResourceKey, Provider>>,
    /// Each grant's place in the background refresh queue, by owner and key.
    schedule: HashMap<(String, ResourceKey), Schedule>,
}

/// When a grant is next due, after how many passing failures, and until
/// when a claim on it holds.
#[derive(Clone, Copy)]
struct Schedule {
    due: Option<u64>,
    failures: u64,
    claimed_until: u64,
}

impl Inner {
    fn schedule(&mut self, owner: &str, key: &ResourceKey) -> Option<&mut Schedule> {
        self.schedule.get_mut(&(owner.to_owned(), key.clone()))
    }
}

/// An in-memory [`Store`](crate::store::Store): everything is lost when the process ends.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    keep_alive: Option<u64>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// Schedules each grant's background refresh no later than `every`
    /// after its tokens were issued, for servers that expire refresh
    /// tokens left idle (as `IDP_REFRESH_KEEPALIVE_DAYS` on Workers).
    pub fn with_keep_alive(self, every: std::time::Duration) -> Self {
        Self {
            keep_alive: Some(every.as_secs()),
            ..self
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> Result<T> {
        let mut guard = self
            .inner
            .lock()
            .map_err(|_| Error::storage(StorageCause::Backend, "memory store lock poisoned"))?;
        Ok(f(&mut guard))
    }
}

impl UserStore for MemoryStore {
    async fn put_flow(&self, flow: PendingFlow) -> Result<()> {
        self.with(|i| {
            // Flows that have expired by the new one's start are dropped, as
            // the SQL store does: they could never be finished.
            i.flows.retain(|_, f| !f.expired(flow.created_at));
            i.flows.insert(flow.state.secret().to_owned(), flow);
        })
    }

    async fn take_flow(&self, state: &str, owner: &str, redirect_uri: &str) -> Result<FlowTake> {
        self.with(|i| {
            let Some(f) = i.flows.get(state).filter(|f| f.owner == owner) else {
                return FlowTake::Missing;
            };
            if f.redirect_uri.as_str() != redirect_uri {
                return FlowTake::OtherCallback;
            }
            i.flows
                .remove(state)
                .map_or(FlowTake::Missing, |f| FlowTake::Taken(Box::new(f)))
        })
    }

    async fn put_provider(&self, owner: &str, p: Provider, expected: Expect<'_>) -> Result<Put> {
        let keep_alive = self.keep_alive;
        self.with(|i| {
            let rows = i.providers.entry(owner.to_owned()).or_default();
            let current = rows.get(&p.key);
            let as_expected = match expected {
                Expect::Nothing => current.is_none(),
                Expect::Exactly(e) => current == Some(e),
            };
            if !as_expected {
                return Put::Conflict(current.cloned().map(Box::new));
            }
            // New tokens: the schedule starts over.
            let due = Schedule {
                due: p.refresh_due_with(keep_alive),
                failures: 0,
                claimed_until: 0,
            };
            i.schedule.insert((owner.to_owned(), p.key.clone()), due);
            rows.insert(p.key.clone(), p);
            Put::Written
        })
    }

    async fn provider(&self, owner: &str, key: &ResourceKey) -> Result<Option<Provider>> {
        self.with(|i| i.providers.get(owner).and_then(|m| m.get(key)).cloned())
    }

    async fn provider_for(&self, owner: &str, url: &ResourceKey) -> Result<Option<Provider>> {
        self.with(|i| {
            let m = i.providers.get(owner)?;
            candidates(url).iter().find_map(|k| m.get(k)).cloned()
        })
    }

    async fn providers(&self, owner: &str) -> Result<Vec<Provider>> {
        self.with(|i| {
            i.providers
                .get(owner)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default()
        })
    }

    async fn remove_provider(&self, owner: &str, key: &ResourceKey) -> Result<Option<Provider>> {
        self.with(|i| {
            i.schedule.remove(&(owner.to_owned(), key.clone()));
            i.providers.get_mut(owner).and_then(|m| m.remove(key))
        })
    }
}

/// One process's queue: claims keep two background tasks of the process
/// from refreshing the same grant at once.
impl RefreshQueue for MemoryStore {
    async fn claim_due(&self, now: u64, limit: usize, lease: u64) -> Result<Vec<Due>> {
        self.with(|i| {
            let mut due: Vec<_> = i
                .schedule
                .iter_mut()
                .filter(|(_, s)| s.due.is_some_and(|d| d <= now) && s.claimed_until <= now)
                .collect();
            due.sort_by_key(|(_, s)| s.due);
            due.into_iter()
                .take(limit)
                .map(|((owner, key), s)| {
                    s.claimed_until = now.saturating_add(lease);
                    Due {
                        owner: owner.clone(),
                        key: key.clone(),
                        failures: s.failures,
                    }
                })
                .collect()
        })
    }

    async fn retry_at(&self, owner: &str, key: &ResourceKey, failures: u64, at: u64) -> Result<()> {
        self.with(|i| {
            if let Some(s) = i.schedule(owner, key) {
                *s = Schedule {
                    due: Some(at),
                    failures,
                    claimed_until: 0,
                };
            }
        })
    }

    async fn release(&self, owner: &str, key: &ResourceKey) -> Result<()> {
        self.with(|i| {
            if let Some(s) = i.schedule(owner, key) {
                s.claimed_until = 0;
            }
        })
    }

    async fn stop(&self, owner: &str, key: &ResourceKey) -> Result<()> {
        self.with(|i| {
            if let Some(s) = i.schedule(owner, key) {
                s.due = None;
                s.claimed_until = 0;
            }
        })
    }
}

impl RegistryStore for MemoryStore {
    async fn registration(&self, issuer: &str, redirect_uri: &str) -> Result<Option<Registration>> {
        self.with(|i| {
            i.registrations
                .get(&(issuer.to_owned(), redirect_uri.to_owned()))
                .cloned()
        })
    }

    async fn put_registration(&self, r: Registration) -> Result<()> {
        self.with(|i| {
            i.registrations
                .insert((r.issuer.clone(), r.redirect_uri.clone()), r);
        })
    }

    async fn remove_registration(&self, issuer: &str, redirect_uri: &str) -> Result<()> {
        self.with(|i| {
            i.registrations
                .remove(&(issuer.to_owned(), redirect_uri.to_owned()));
        })
    }

    async fn server(&self, issuer: &str) -> Result<Option<(AuthorizationServer, u64)>> {
        self.with(|i| i.servers.get(issuer).cloned())
    }

    async fn put_server(
        &self,
        issuer: &str,
        server: AuthorizationServer,
        fetched_at: u64,
    ) -> Result<()> {
        self.with(|i| {
            i.servers.insert(issuer.to_owned(), (server, fetched_at));
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance;
    use crate::testing::block_on;

    #[test]
    fn passes_the_store_contract() {
        block_on(conformance::check(&MemoryStore::default()));
        block_on(conformance::check_refresh_queue(&MemoryStore::default()));
        let kept = MemoryStore::default().with_keep_alive(std::time::Duration::from_secs(500));
        block_on(conformance::check_keep_alive(&kept, 500));
    }

    /// A store that ignores [`Expect`], and forgets its claims as soon as
    /// it makes them: each breaks a contract, and its suite says so.
    fn overwrites() -> crate::testing::Bent {
        crate::testing::Bent {
            before_put: Some(Box::new(|_, _, _| true)),
            forget_claims: true,
            ..Default::default()
        }
    }

    #[test]
    #[should_panic(expected = "Expect::Nothing over a row conflicts")]
    fn a_store_without_compare_and_swap_fails_the_contract() {
        block_on(conformance::check(&overwrites()));
    }

    #[test]
    #[should_panic(expected = "only the grant nobody holds")]
    fn a_queue_that_forgets_its_claims_fails_the_contract() {
        block_on(conformance::check_refresh_queue(&overwrites()));
    }
}
