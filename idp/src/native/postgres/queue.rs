//! The deployment-wide rows ([`RegistryStore`]) and the background
//! refresh queue ([`RefreshQueue`]) of [`PostgresStore`].

use super::*;

impl RegistryStore for PostgresStore {
    async fn registration(
        &self,
        issuer: &str,
        redirect_uri: &str,
    ) -> Result<Option<crate::registration::Registration>> {
        match self
            .one(registrations::GET, &[&issuer, &redirect_uri])
            .await?
        {
            Some(r) => rows::registration(
                &self.sealing,
                issuer,
                redirect_uri,
                &SqlValue::Text(r.get(0)),
            ),
            None => Ok(None),
        }
    }

    async fn put_registration(
        &self,
        registration: crate::registration::Registration,
    ) -> Result<()> {
        let (issuer, redirect_uri) = (&registration.issuer, &registration.redirect_uri);
        let id = row_id("idp_registrations", &[issuer, redirect_uri]);
        let data = rows::encode(&self.sealing, &registration, &id, REGISTRATION_SECRETS)?;
        self.run(registrations::PUT, &[issuer, redirect_uri, &data])
            .await
            .map(drop)
    }

    async fn remove_registration(&self, issuer: &str, redirect_uri: &str) -> Result<()> {
        self.run(registrations::DELETE, &[&issuer, &redirect_uri])
            .await
            .map(drop)
    }

    async fn server(
        &self,
        issuer: &str,
    ) -> Result<Option<(crate::discovery::AuthorizationServer, u64)>> {
        let Some(r) = self.one(servers::GET, &[&issuer]).await? else {
            return Ok(None);
        };
        let server = crate::store::sql::decode(&SqlValue::Text(r.get(0)))?;
        Ok(Some((server, uint(r.get(1)))))
    }

    async fn put_server(
        &self,
        issuer: &str,
        server: crate::discovery::AuthorizationServer,
        fetched_at: u64,
    ) -> Result<()> {
        let data = match crate::store::sql::json(&server)? {
            SqlValue::Text(t) => t,
            _ => unreachable!("json() encodes text"),
        };
        self.run(servers::PUT, &[&issuer, &data, &int(fetched_at)])
            .await
            .map(drop)
    }
}

impl RefreshQueue for PostgresStore {
    async fn claim_due(&self, now: u64, limit: usize, lease: u64) -> Result<Vec<Due>> {
        let c = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let until = int(now.saturating_add(lease));
        let found = c
            .query(providers::CLAIM, &[&int(now), &limit, &until])
            .await
            .map_err(backend("claiming due refreshes"))?;
        Ok(found
            .iter()
            .filter_map(|r| {
                Some(Due {
                    owner: r.get(0),
                    key: ResourceKey::parse(r.get::<_, &str>(1)).ok()?,
                    failures: uint(r.get(2)),
                })
            })
            .collect())
    }

    async fn retry_at(&self, owner: &str, key: &ResourceKey, failures: u64, at: u64) -> Result<()> {
        self.run(
            providers::RETRY,
            &[&owner, &key.as_str(), &int(at), &int(failures)],
        )
        .await
        .map(drop)
    }

    async fn stop(&self, owner: &str, key: &ResourceKey) -> Result<()> {
        self.run(providers::STOP, &[&owner, &key.as_str()])
            .await
            .map(drop)
    }

    async fn release(&self, owner: &str, key: &ResourceKey) -> Result<()> {
        self.run(providers::RELEASE, &[&owner, &key.as_str()])
            .await
            .map(drop)
    }
}
