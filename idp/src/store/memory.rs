//! [`MemoryStore`]: the [`Store`] in memory, behind one mutex.

use super::{FlowTake, Provider, Store};
use crate::authorize::PendingFlow;
use crate::discovery::AuthorizationServer;
use crate::error::{Error, Result};
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

/// An in-memory [`Store`]: everything is lost when the process ends.
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
            .map_err(|_| Error::Storage("memory store lock poisoned".into()))?;
        Ok(f(&mut guard))
    }
}

impl Store for MemoryStore {
    async fn put_flow(&self, flow: PendingFlow) -> Result<()> {
        self.with(|i| {
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

    async fn put_provider(&self, owner: &str, p: Provider) -> Result<()> {
        self.with(|i| {
            i.providers
                .entry(owner.to_owned())
                .or_default()
                .insert(p.key.clone(), p);
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
