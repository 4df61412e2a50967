//! [`MemoryStore`]: the [`Store`](crate::store::Store) in memory, behind one mutex.

use super::{Expect, FlowTake, Provider, Put, RegistryStore, UserStore};
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
}

/// An in-memory [`Store`](crate::store::Store): everything is lost when the process ends.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
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
        self.with(|i| i.providers.get_mut(owner).and_then(|m| m.remove(key)))
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
    }

    /// A store that ignores [`Expect`] breaks the contract, and the suite
    /// says so.
    struct Overwrites(MemoryStore);

    impl UserStore for Overwrites {
        async fn put_flow(&self, flow: PendingFlow) -> Result<()> {
            self.0.put_flow(flow).await
        }
        async fn take_flow(&self, s: &str, o: &str, r: &str) -> Result<FlowTake> {
            self.0.take_flow(s, o, r).await
        }
        async fn put_provider(&self, o: &str, p: Provider, _: Expect<'_>) -> Result<Put> {
            let current = self.0.provider(o, &p.key).await?;
            self.0.put_provider(o, p, current.as_ref().into()).await
        }
        async fn provider(&self, o: &str, k: &ResourceKey) -> Result<Option<Provider>> {
            self.0.provider(o, k).await
        }
        async fn provider_for(&self, o: &str, u: &ResourceKey) -> Result<Option<Provider>> {
            self.0.provider_for(o, u).await
        }
        async fn providers(&self, o: &str) -> Result<Vec<Provider>> {
            self.0.providers(o).await
        }
        async fn remove_provider(&self, o: &str, k: &ResourceKey) -> Result<Option<Provider>> {
            self.0.remove_provider(o, k).await
        }
    }

    impl RegistryStore for Overwrites {
        async fn registration(&self, i: &str, r: &str) -> Result<Option<Registration>> {
            self.0.registration(i, r).await
        }
        async fn put_registration(&self, r: Registration) -> Result<()> {
            self.0.put_registration(r).await
        }
        async fn remove_registration(&self, i: &str, r: &str) -> Result<()> {
            self.0.remove_registration(i, r).await
        }
        async fn server(&self, i: &str) -> Result<Option<(AuthorizationServer, u64)>> {
            self.0.server(i).await
        }
        async fn put_server(&self, i: &str, s: AuthorizationServer, at: u64) -> Result<()> {
            self.0.put_server(i, s, at).await
        }
    }

    #[test]
    #[should_panic(expected = "Expect::Nothing over a row conflicts")]
    fn a_store_without_compare_and_swap_fails_the_contract() {
        block_on(conformance::check(&Overwrites(MemoryStore::default())));
    }
}
