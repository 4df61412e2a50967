//! [`SqlStore`]: the engine's [`Store`] over the object's SQLite, forwarding
//! registrations and server metadata to the registry object.

use super::super::client::call_registry;
use super::super::http::now;
use super::super::protocol::{
    RegistrationGet, RegistrationPut, RegistrationRemove, RegistryOp, ServerGet, ServerPut,
};
use crate::authorize::PendingFlow;
use crate::discovery::AuthorizationServer;
use crate::error::{Error, Result};
use crate::matching::{candidates, ResourceKey};
use crate::registration::Registration;
use crate::store::{FlowTake, Provider, Store};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use worker::{Env, SqlStorage, SqlStorageValue};

/// How long a confirmation page's token can be used: 10 minutes.
pub(super) const CONFIRMATION_LIFETIME_SECS: u64 = 600;

pub(super) fn storage_err(e: impl std::fmt::Display) -> Error {
    Error::Storage(e.to_string())
}

pub(super) fn secs(t: u64) -> SqlStorageValue {
    SqlStorageValue::from(i64::try_from(t).unwrap_or(i64::MAX))
}

pub(super) fn text(s: &str) -> SqlStorageValue {
    SqlStorageValue::from(s.to_owned())
}

#[derive(Deserialize)]
struct DataRow {
    data: String,
}

#[derive(Deserialize)]
struct ServerRow {
    data: String,
    fetched_at: i64,
}

/// A [`Store`] over the object's SQLite. Registrations and server metadata go
/// to the registry object when `registry` names the binding; locally otherwise
/// (that is, in the registry itself).
pub(super) struct SqlStore<'a> {
    pub(super) sql: SqlStorage,
    pub(super) env: &'a Env,
    pub(super) registry: Option<&'a str>,
}

impl SqlStore<'_> {
    pub(super) fn rows<T: DeserializeOwned>(
        &self,
        query: &str,
        args: Vec<SqlStorageValue>,
    ) -> Result<Vec<T>> {
        self.sql
            .exec(query, args)
            .and_then(|c| c.to_array::<T>())
            .map_err(storage_err)
    }

    pub(super) fn exec(&self, query: &str, args: Vec<SqlStorageValue>) -> Result<()> {
        self.sql.exec(query, args).map(|_| ()).map_err(storage_err)
    }

    pub(super) fn first_data<T: DeserializeOwned>(
        &self,
        query: &str,
        args: Vec<SqlStorageValue>,
    ) -> Result<Option<T>> {
        match self.rows::<DataRow>(query, args)?.into_iter().next() {
            Some(row) => serde_json::from_str(&row.data)
                .map(Some)
                .map_err(storage_err),
            None => Ok(None),
        }
    }

    async fn registry_call<O: RegistryOp>(&self, binding: &str, op: O) -> Result<O::Reply> {
        call_registry(self.env, binding, op)
            .await
            .map_err(|e| Error::Storage(format!("registry: {e}")))
    }
}

pub(super) fn json(value: &impl Serialize) -> Result<SqlStorageValue> {
    serde_json::to_string(value)
        .map(SqlStorageValue::from)
        .map_err(storage_err)
}

impl SqlStore<'_> {
    /// Spends a confirmation token: it must exist for `owner` and be younger
    /// than 10 minutes; it is deleted either way.
    pub(super) fn spend_confirmation(&self, token: &str, owner: &str) -> Result<()> {
        #[derive(Deserialize)]
        struct Row {
            created_at: i64,
        }
        let rows: Vec<Row> = self.rows(
            "SELECT created_at FROM idp_confirmations WHERE token = ? AND owner = ?",
            vec![text(token), text(owner)],
        )?;
        self.exec(
            "DELETE FROM idp_confirmations WHERE token = ?",
            vec![text(token)],
        )?;
        let fresh = rows.first().is_some_and(|r| {
            u64::try_from(r.created_at)
                .is_ok_and(|t| now() < t.saturating_add(CONFIRMATION_LIFETIME_SECS))
        });
        if fresh {
            Ok(())
        } else {
            Err(Error::Confirmation)
        }
    }
}

impl Store for SqlStore<'_> {
    async fn put_flow(&self, flow: PendingFlow) -> Result<()> {
        // Expired flows are dropped whenever a new one is stored.
        self.exec(
            "DELETE FROM idp_flows WHERE created_at < ?",
            vec![secs(
                now().saturating_sub(crate::authorize::FLOW_LIFETIME_SECS),
            )],
        )?;
        self.exec(
            "INSERT OR REPLACE INTO idp_flows (state, owner, data, created_at) VALUES (?, ?, ?, ?)",
            vec![
                text(flow.state.secret()),
                text(&flow.owner),
                json(&flow)?,
                secs(flow.created_at),
            ],
        )
    }

    async fn take_flow(&self, state: &str, owner: &str, redirect_uri: &str) -> Result<FlowTake> {
        let flow: Option<PendingFlow> = self.first_data(
            "SELECT data FROM idp_flows WHERE state = ? AND owner = ?",
            vec![text(state), text(owner)],
        )?;
        Ok(match flow {
            None => FlowTake::Missing,
            Some(f) if f.redirect_uri.as_str() != redirect_uri => FlowTake::OtherCallback,
            Some(f) => {
                self.exec("DELETE FROM idp_flows WHERE state = ?", vec![text(state)])?;
                FlowTake::Taken(Box::new(f))
            }
        })
    }

    async fn registration(&self, issuer: &str, redirect_uri: &str) -> Result<Option<Registration>> {
        if let Some(b) = self.registry {
            return self
                .registry_call(
                    b,
                    RegistrationGet {
                        issuer: issuer.into(),
                        redirect_uri: redirect_uri.into(),
                    },
                )
                .await;
        }
        self.first_data(
            "SELECT data FROM idp_registrations WHERE issuer = ? AND redirect_uri = ?",
            vec![text(issuer), text(redirect_uri)],
        )
    }

    async fn put_registration(&self, registration: Registration) -> Result<()> {
        if let Some(b) = self.registry {
            return self
                .registry_call(b, RegistrationPut { registration })
                .await;
        }
        self.exec(
            "INSERT OR REPLACE INTO idp_registrations (issuer, redirect_uri, data) VALUES (?, ?, ?)",
            vec![text(&registration.issuer), text(&registration.redirect_uri), json(&registration)?],
        )
    }

    async fn remove_registration(&self, issuer: &str, redirect_uri: &str) -> Result<()> {
        if let Some(b) = self.registry {
            return self
                .registry_call(
                    b,
                    RegistrationRemove {
                        issuer: issuer.into(),
                        redirect_uri: redirect_uri.into(),
                    },
                )
                .await;
        }
        self.exec(
            "DELETE FROM idp_registrations WHERE issuer = ? AND redirect_uri = ?",
            vec![text(issuer), text(redirect_uri)],
        )
    }

    async fn server(&self, issuer: &str) -> Result<Option<(AuthorizationServer, u64)>> {
        if let Some(b) = self.registry {
            return self
                .registry_call(
                    b,
                    ServerGet {
                        issuer: issuer.into(),
                    },
                )
                .await;
        }
        let rows: Vec<ServerRow> = self.rows(
            "SELECT data, fetched_at FROM idp_servers WHERE issuer = ?",
            vec![text(issuer)],
        )?;
        match rows.into_iter().next() {
            Some(r) => {
                let server = serde_json::from_str(&r.data).map_err(storage_err)?;
                Ok(Some((server, u64::try_from(r.fetched_at).unwrap_or(0))))
            }
            None => Ok(None),
        }
    }

    async fn put_server(
        &self,
        issuer: &str,
        server: AuthorizationServer,
        fetched_at: u64,
    ) -> Result<()> {
        if let Some(b) = self.registry {
            return self
                .registry_call(
                    b,
                    ServerPut {
                        issuer: issuer.into(),
                        server: Box::new(server),
                        fetched_at,
                    },
                )
                .await;
        }
        self.exec(
            "INSERT OR REPLACE INTO idp_servers (issuer, data, fetched_at) VALUES (?, ?, ?)",
            vec![text(issuer), json(&server)?, secs(fetched_at)],
        )
    }

    async fn put_provider(&self, owner: &str, provider: Provider) -> Result<()> {
        self.exec(
            "INSERT OR REPLACE INTO idp_providers (owner, key, data, updated_at) VALUES (?, ?, ?, ?)",
            vec![text(owner), text(provider.key.as_str()), json(&provider)?, secs(now())],
        )
    }

    async fn provider(&self, owner: &str, key: &ResourceKey) -> Result<Option<Provider>> {
        self.first_data(
            "SELECT data FROM idp_providers WHERE owner = ? AND key = ?",
            vec![text(owner), text(key.as_str())],
        )
    }

    async fn provider_for(&self, owner: &str, url: &ResourceKey) -> Result<Option<Provider>> {
        // One indexed probe per path segment, longest first.
        let keys = candidates(url);
        let placeholders = vec!["?"; keys.len()].join(", ");
        let mut args = vec![text(owner)];
        args.extend(keys.iter().map(|k| text(k.as_str())));
        self.first_data(
            &format!(
                "SELECT data FROM idp_providers WHERE owner = ? AND key IN ({placeholders}) ORDER BY length(key) DESC LIMIT 1"
            ),
            args,
        )
    }

    async fn providers(&self, owner: &str) -> Result<Vec<Provider>> {
        self.rows::<DataRow>(
            "SELECT data FROM idp_providers WHERE owner = ? ORDER BY key",
            vec![text(owner)],
        )?
        .into_iter()
        .map(|r| serde_json::from_str(&r.data).map_err(storage_err))
        .collect()
    }

    async fn remove_provider(&self, owner: &str, key: &ResourceKey) -> Result<Option<Provider>> {
        let p = self.provider(owner, key).await?;
        if p.is_some() {
            self.exec(
                "DELETE FROM idp_providers WHERE owner = ? AND key = ?",
                vec![text(owner), text(key.as_str())],
            )?;
        }
        Ok(p)
    }
}
