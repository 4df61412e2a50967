//! Upkeep of a user's object: re-encryption, and the benchmark's calls.

use super::super::hook::OnAuthSuccess;
use super::super::protocol::*;
use super::dispatch::{Answer, Cx};
use super::ProvidersObject;
#[cfg(feature = "bench")]
use crate::store::UserStore;

impl Answer for Reencrypt {
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        _cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError> {
        let Reencrypt {} = self;
        let _writes = o.refresher.lock().await;
        let user_rows = o.local().sql.reseal()?;
        Ok(Reencrypted { user_rows })
    }
}

#[cfg(feature = "bench")]
impl Answer for Seed {
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError> {
        let Seed { owner, providers } = self;
        let store = o.store(cx.role);
        let n = providers.len();
        for p in providers {
            let _ = store
                .put_provider(&owner, p, crate::store::Expect::Nothing)
                .await?;
        }
        Ok(n)
    }
}

#[cfg(feature = "bench")]
impl Answer for Stats {
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        _cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError> {
        let Stats {} = self;
        Ok(CallStats {
            calls: o.calls.get(),
            database_bytes: o.state.storage().sql().database_size() as u64,
        })
    }
}
