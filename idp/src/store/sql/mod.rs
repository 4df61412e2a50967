//! [`SqlStore`]: the [`Store`](crate::store::Store) over SQLite, written once for every SQLite a
//! runtime has. The Workers runtime runs it on a Durable Object's storage;
//! [`crate::native::SqliteStore`] (feature `sqlite`) on a file with
//! `rusqlite`. Both run the same statements and the same migrations, so the
//! conformance suite ([`super::conformance`]) run natively checks the SQL the
//! Durable Object runs.
//!
//! A runtime provides [`SqlConnection`]: a way to run statements with `?`
//! placeholders, inside a section no other writer can interleave with
//! ([`SqlConnection::atomic`]). Each row is stored as JSON in a `data`
//! column, keyed by indexed columns; its secret fields are sealed as the
//! store's [`Sealing`] says (see [`super::seal`]).

use super::seal::{RowId, Sealing};
use super::{Expect, FlowTake, Provider, Put, RegistryStore, UserStore};
use crate::authorize::{PendingFlow, FLOW_LIFETIME_SECS};
use crate::discovery::AuthorizationServer;
use crate::error::{Error, Result, StorageCause};
use crate::matching::{candidates, ResourceKey};
use crate::registration::{DocumentIssuer, Registration};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub(crate) mod rows;
mod schema;
pub mod tables;
mod values;

use rows::{row_id, FLOW_SECRETS, PROVIDER_SECRETS, REGISTRATION_SECRETS};
pub(crate) use schema::registry_tables;
pub use schema::{migrate, MIGRATIONS, REGISTRY_SCHEMA, SCHEMA};
pub use values::{decode, json, secs, text, SqlConnection, SqlRun, SqlValue};

/// A database's error, as a storage error saying what was being done.
pub(crate) fn storage(context: &str) -> impl Fn(String) -> Error + '_ {
    move |e| Error::storage(StorageCause::Backend, format!("{context}: {e}"))
}

/// The [`Store`](crate::store::Store) over a [`SqlConnection`]. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct SqlStore<C> {
    conn: C,
    sealing: Sealing,
    keep_alive: Option<u64>,
}

impl<C: SqlConnection> SqlStore<C> {
    /// A store over `conn`, whose schema [`migrate`] has brought up to date,
    /// keeping secrets in plain text.
    pub fn new(conn: C) -> Self {
        Self::with_sealing(conn, Sealing::plaintext())
    }

    /// A store whose secret fields are kept as `sealing` says.
    pub fn with_sealing(conn: C, sealing: Sealing) -> Self {
        Self {
            conn,
            sealing,
            keep_alive: None,
        }
    }

    /// The same store, its secrets kept as `sealing` says.
    pub fn sealed(self, sealing: Sealing) -> Self {
        Self { sealing, ..self }
    }

    /// Schedules each grant's background refresh no later than `every`
    /// after its tokens were issued ([`Provider::refresh_due_with`]), for
    /// servers that expire refresh tokens left idle.
    pub fn with_keep_alive(self, every: std::time::Duration) -> Self {
        Self {
            keep_alive: Some(every.as_secs()),
            ..self
        }
    }

    /// The keep-alive its queue schedules with, in seconds.
    pub fn keep_alive(&self) -> Option<u64> {
        self.keep_alive
    }

    /// The connection back, for a store over it with other settings.
    pub fn into_connection(self) -> C {
        self.conn
    }

    /// How secrets are kept.
    pub fn sealing(&self) -> &Sealing {
        &self.sealing
    }

    fn encode(&self, value: &impl Serialize, id: &RowId, paths: &[&str]) -> Result<SqlValue> {
        rows::encode(&self.sealing, value, id, paths).map(SqlValue::Text)
    }

    fn decode_provider(&self, owner: &str, key: &str, data: &SqlValue) -> Result<Provider> {
        rows::provider(&self.sealing, owner, key, data)
    }

    fn provider_row(db: &impl SqlRun, owner: &str, key: &str) -> Result<Option<SqlValue>> {
        let rows = db
            .run(tables::providers::GET, vec![text(owner), text(key)])
            .map_err(storage("SQL"))?;
        Ok(rows.into_iter().next().and_then(|r| r.into_iter().next()))
    }

    /// The stored servers that accept client ID metadata documents, most
    /// recently fetched first, with whether each promises `iss`.
    pub fn known_issuers(&self, limit: usize) -> Result<Vec<DocumentIssuer>> {
        let db = self.conn.atomic();
        registry_tables(&db)?;
        let rows = db
            .run(
                tables::servers::DOCUMENT_ISSUERS,
                vec![SqlValue::Integer(i64::try_from(limit).unwrap_or(i64::MAX))],
            )
            .map_err(storage("SQL"))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some(DocumentIssuer {
                    issuer: r.first()?.as_text()?.to_owned(),
                    iss: match r.get(1) {
                        Some(SqlValue::Integer(n)) => *n == 1,
                        Some(SqlValue::Real(n)) => *n > 0.5,
                        _ => false,
                    },
                })
            })
            .collect())
    }

    /// Seals again every row whose secrets are in plain text or under an
    /// older key than the current one (rows whose secrets cannot be opened
    /// are left as they are). Returns how many rows were rewritten.
    pub fn reseal(&self) -> Result<usize> {
        let db = self.conn.atomic();
        let mut rewritten = 0;
        for (table, keys, paths) in rows::SEALED_TABLES {
            let exists = db
                .run(tables::sealed::EXISTS, vec![text(table)])
                .map_err(storage("re-encrypting"))?;
            if exists.is_empty() {
                continue;
            }
            let rows = db
                .run(&tables::sealed::every_row(table, keys), vec![])
                .map_err(storage("re-encrypting"))?;
            for row in rows {
                let Some((data, key_values)) = row.split_last() else {
                    continue;
                };
                let ids: Vec<&str> = key_values.iter().filter_map(SqlValue::as_text).collect();
                let id = row_id(table, &ids);
                let Some(sealed) = rows::resealed(&self.sealing, data, &id, paths)? else {
                    continue;
                };
                let mut args = vec![SqlValue::Text(sealed)];
                args.extend(key_values.iter().cloned());
                db.run(&tables::sealed::rewrite(table, keys), args)
                    .map_err(storage("re-encrypting"))?;
                rewritten += 1;
            }
        }
        Ok(rewritten)
    }

    /// The connection, for the runtime's own tables.
    pub fn connection(&self) -> &C {
        &self.conn
    }

    /// Runs one statement.
    pub fn exec(&self, statement: &str, args: Vec<SqlValue>) -> Result<()> {
        self.conn
            .atomic()
            .run(statement, args)
            .map(drop)
            .map_err(storage("SQL"))
    }

    /// The first row's first column, decoded from JSON.
    pub fn first_data<T: DeserializeOwned>(
        &self,
        statement: &str,
        args: Vec<SqlValue>,
    ) -> Result<Option<T>> {
        first_data(&self.conn.atomic(), statement, args)
    }
}

fn first_data<T: DeserializeOwned>(
    db: &impl SqlRun,
    statement: &str,
    args: Vec<SqlValue>,
) -> Result<Option<T>> {
    let rows = db.run(statement, args).map_err(storage("SQL"))?;
    match rows.first().and_then(|r| r.first()) {
        Some(v) => decode(v).map(Some),
        None => Ok(None),
    }
}

impl<C: SqlConnection> SqlStore<C> {
    /// The keys of `owner`'s providers strictly under `key` (a range of the
    /// primary key: `key/` up to `key0`, `0` being the byte after `/`).
    pub fn keys_under(&self, owner: &str, key: &ResourceKey) -> Result<Vec<ResourceKey>> {
        let db = self.conn.atomic();
        let rows = db
            .run(
                tables::providers::KEYS_BETWEEN,
                vec![
                    text(owner),
                    text(&format!("{}/", key.as_str())),
                    text(&format!("{}0", key.as_str())),
                ],
            )
            .map_err(storage("SQL"))?;
        Ok(rows
            .iter()
            .filter_map(|r| ResourceKey::parse(r.first()?.as_text()?).ok())
            .filter(|k| key.covers(k) && k != key)
            .collect())
    }
}

impl<C: SqlConnection> UserStore for SqlStore<C> {
    async fn put_flow(&self, flow: PendingFlow) -> Result<()> {
        let data = self.encode(
            &flow,
            &row_id("idp_flows", &[flow.state.secret()]),
            FLOW_SECRETS,
        )?;
        let db = self.conn.atomic();
        // Expired flows are dropped whenever a new one is stored.
        let expired_before = flow.created_at.saturating_sub(FLOW_LIFETIME_SECS);
        db.run(tables::flows::EXPIRE, vec![secs(expired_before)])
            .and_then(|_| {
                db.run(
                    tables::flows::PUT,
                    vec![
                        text(flow.state.secret()),
                        text(&flow.owner),
                        data,
                        secs(flow.created_at),
                    ],
                )
            })
            .map(drop)
            .map_err(storage("storing a flow"))
    }

    async fn take_flow(&self, state: &str, owner: &str, redirect_uri: &str) -> Result<FlowTake> {
        let db = self.conn.atomic();
        let rows = db
            .run(tables::flows::GET, vec![text(state), text(owner)])
            .map_err(storage("SQL"))?;
        let Some(data) = rows.first().and_then(|r| r.first()) else {
            return Ok(FlowTake::Missing);
        };
        let flow = rows::flow(&self.sealing, state, data)?;
        if flow.redirect_uri.as_str() != redirect_uri {
            return Ok(FlowTake::OtherCallback);
        }
        db.run(tables::flows::DELETE, vec![text(state)])
            .map_err(storage("taking a flow"))?;
        Ok(FlowTake::Taken(Box::new(flow)))
    }

    async fn put_provider(
        &self,
        owner: &str,
        provider: Provider,
        expected: Expect<'_>,
    ) -> Result<Put> {
        let key = provider.key.as_str();
        let data = self.encode(
            &provider,
            &row_id("idp_providers", &[owner, key]),
            PROVIDER_SECRETS,
        )?;
        let db = self.conn.atomic();
        // Compared decoded, not as text: rows written by an older version
        // may serialise differently, and sealing uses fresh nonces.
        let current = match Self::provider_row(&db, owner, key)? {
            Some(row) => Some(self.decode_provider(owner, key, &row)?),
            None => None,
        };
        let as_expected = match expected {
            Expect::Nothing => current.is_none(),
            Expect::Exactly(e) => current.as_ref() == Some(e),
        };
        if !as_expected {
            return Ok(Put::Conflict(current.map(Box::new)));
        }
        db.run(
            tables::providers::PUT,
            vec![text(owner), text(key), data, secs(provider.created_at)],
        )
        .map_err(storage("storing a provider"))?;
        Ok(Put::Written)
    }

    async fn provider(&self, owner: &str, key: &ResourceKey) -> Result<Option<Provider>> {
        let row = Self::provider_row(&self.conn.atomic(), owner, key.as_str())?;
        row.map(|data| self.decode_provider(owner, key.as_str(), &data))
            .transpose()
    }

    async fn provider_for(&self, owner: &str, url: &ResourceKey) -> Result<Option<Provider>> {
        // One indexed probe per path segment, longest first.
        let keys = candidates(url);
        let mut args = vec![text(owner)];
        args.extend(keys.iter().map(|k| text(k.as_str())));
        let rows = self
            .conn
            .atomic()
            .run(&tables::providers::longest_of(keys.len()), args)
            .map_err(storage("SQL"))?;
        match rows.first().map(Vec::as_slice) {
            Some([SqlValue::Text(key), data]) => self.decode_provider(owner, key, data).map(Some),
            _ => Ok(None),
        }
    }

    async fn providers(&self, owner: &str) -> Result<Vec<Provider>> {
        // Every key sorts after the empty one.
        self.providers_page(owner, None, usize::MAX).await
    }

    async fn providers_page(
        &self,
        owner: &str,
        after: Option<&ResourceKey>,
        limit: usize,
    ) -> Result<Vec<Provider>> {
        let after = after.map(ResourceKey::as_str).unwrap_or("");
        self.conn
            .atomic()
            .run(
                tables::providers::PAGE,
                vec![
                    text(owner),
                    text(after),
                    SqlValue::Integer(i64::try_from(limit).unwrap_or(i64::MAX)),
                ],
            )
            .map_err(storage("SQL"))?
            .iter()
            .filter_map(|r| match r.as_slice() {
                [SqlValue::Text(key), data] => Some(self.decode_provider(owner, key, data)),
                _ => None,
            })
            .collect()
    }

    async fn remove_provider(&self, owner: &str, key: &ResourceKey) -> Result<Option<Provider>> {
        let db = self.conn.atomic();
        let Some(row) = Self::provider_row(&db, owner, key.as_str())? else {
            return Ok(None);
        };
        let p = self.decode_provider(owner, key.as_str(), &row)?;
        db.run(
            tables::providers::DELETE,
            vec![text(owner), text(key.as_str())],
        )
        .map_err(storage("removing a provider"))?;
        Ok(Some(p))
    }
}

impl<C: SqlConnection> RegistryStore for SqlStore<C> {
    async fn registration(&self, issuer: &str, redirect_uri: &str) -> Result<Option<Registration>> {
        let db = self.conn.atomic();
        registry_tables(&db)?;
        let rows = db
            .run(
                tables::registrations::GET,
                vec![text(issuer), text(redirect_uri)],
            )
            .map_err(storage("SQL"))?;
        let Some(data) = rows.first().and_then(|r| r.first()) else {
            return Ok(None);
        };
        rows::registration(&self.sealing, issuer, redirect_uri, data)
    }

    async fn put_registration(&self, registration: Registration) -> Result<()> {
        let id = row_id(
            "idp_registrations",
            &[&registration.issuer, &registration.redirect_uri],
        );
        let data = self.encode(&registration, &id, REGISTRATION_SECRETS)?;
        let db = self.conn.atomic();
        registry_tables(&db)?;
        db.run(
            tables::registrations::PUT,
            vec![
                text(&registration.issuer),
                text(&registration.redirect_uri),
                data,
            ],
        )
        .map(drop)
        .map_err(storage("SQL"))
    }

    async fn remove_registration(&self, issuer: &str, redirect_uri: &str) -> Result<()> {
        let db = self.conn.atomic();
        registry_tables(&db)?;
        db.run(
            tables::registrations::DELETE,
            vec![text(issuer), text(redirect_uri)],
        )
        .map(drop)
        .map_err(storage("SQL"))
    }

    async fn server(&self, issuer: &str) -> Result<Option<(AuthorizationServer, u64)>> {
        let db = self.conn.atomic();
        registry_tables(&db)?;
        let rows = db
            .run(tables::servers::GET, vec![text(issuer)])
            .map_err(storage("SQL"))?;
        match rows.first().map(Vec::as_slice) {
            Some([data, fetched_at]) => Ok(Some((
                decode(data)?,
                fetched_at
                    .as_integer()
                    .and_then(|t| u64::try_from(t).ok())
                    .unwrap_or(0),
            ))),
            _ => Ok(None),
        }
    }

    async fn put_server(
        &self,
        issuer: &str,
        server: AuthorizationServer,
        fetched_at: u64,
    ) -> Result<()> {
        let data = json(&server)?;
        let db = self.conn.atomic();
        registry_tables(&db)?;
        db.run(
            tables::servers::PUT,
            vec![text(issuer), data, secs(fetched_at)],
        )
        .map(drop)
        .map_err(storage("SQL"))
    }
}
