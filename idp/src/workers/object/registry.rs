//! The deployment-wide registry: client registrations and authorization server metadata.

use super::super::hook::OnAuthSuccess;
use super::super::protocol::*;
use super::dispatch::{Answer, Cx};
use super::{ProvidersObject, Role};
use crate::store::RegistryStore;

impl Answer for RegistrationGet {
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        _cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError> {
        let RegistrationGet {
            issuer,
            redirect_uri,
        } = self;
        Ok(o.store(Role::Registry)
            .registration(&issuer, &redirect_uri)
            .await?)
    }
}

impl Answer for RegistrationPut {
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        _cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError> {
        let RegistrationPut { registration } = self;
        Ok(o.store(Role::Registry)
            .put_registration(registration)
            .await?)
    }
}

impl Answer for RegistrationRemove {
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        _cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError> {
        let RegistrationRemove {
            issuer,
            redirect_uri,
        } = self;
        Ok(o.store(Role::Registry)
            .remove_registration(&issuer, &redirect_uri)
            .await?)
    }
}

impl Answer for KnownIssuers {
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        _cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError> {
        let KnownIssuers { limit } = self;
        if let Some((l, list)) = o.document.borrow().as_ref() {
            if *l == limit {
                return Ok(list.clone());
            }
        }
        let list = o.store(Role::Registry).sql.known_issuers(limit)?;
        *o.document.borrow_mut() = Some((limit, list.clone()));
        Ok(list)
    }
}

impl Answer for ServerGet {
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        _cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError> {
        let ServerGet { issuer } = self;
        Ok(o.store(Role::Registry).server(&issuer).await?)
    }
}

impl Answer for ServerPut {
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        _cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError> {
        let ServerPut {
            issuer,
            server,
            fetched_at,
        } = self;
        o.document.borrow_mut().take();
        Ok(o.store(Role::Registry)
            .put_server(&issuer, *server, fetched_at)
            .await?)
    }
}

impl Answer for RegistryReencrypt {
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        _cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError> {
        let RegistryReencrypt {} = self;
        Ok(o.store(Role::Registry).sql.reseal()?)
    }
}
