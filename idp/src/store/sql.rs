//! [`SqlStore`]: the [`Store`] over SQLite, written once for every SQLite a
//! runtime has. The Workers runtime runs it on a Durable Object's storage;
//! [`crate::native::SqliteStore`] (feature `sqlite`) on a file with
//! `rusqlite`. Both run the same statements and the same migrations, so the
//! conformance suite ([`super::conformance`]) run natively checks the SQL the
//! Durable Object runs.
//!
//! A runtime provides [`SqlConnection`]: a way to run statements with `?`
//! placeholders, inside a section no other writer can interleave with
//! ([`SqlConnection::atomic`]). Each row is stored as JSON in a `data`
//! column, keyed by indexed columns.

use super::{Expect, FlowTake, Provider, Put, Store};
use crate::authorize::{PendingFlow, FLOW_LIFETIME_SECS};
use crate::discovery::AuthorizationServer;
use crate::error::{Error, Result, StorageCause, StorageError};
use crate::matching::{candidates, ResourceKey};
use crate::registration::Registration;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A value bound to a `?` placeholder or read from a column.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// NULL.
    Null,
    /// An integer.
    Integer(i64),
    /// A float (JavaScript SQLite drivers may answer integers as floats).
    Real(f64),
    /// Text.
    Text(String),
}

impl SqlValue {
    /// The text, if it is text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            SqlValue::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if it is one (or a float with no fraction).
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            SqlValue::Integer(i) => Some(*i),
            #[allow(clippy::cast_possible_truncation)]
            SqlValue::Real(f) if f.fract() == 0.0 => Some(*f as i64),
            _ => None,
        }
    }
}

/// Seconds since the epoch as an SQL integer.
pub fn secs(t: u64) -> SqlValue {
    SqlValue::Integer(i64::try_from(t).unwrap_or(i64::MAX))
}

/// Text as an SQL value.
pub fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.to_owned())
}

/// Runs statements on one SQLite database.
pub trait SqlRun {
    /// Runs one statement with `?` placeholders; the rows it returns, each
    /// as its column values in order. The error says what the database said.
    fn run(&self, statement: &str, args: Vec<SqlValue>) -> Result<Vec<Vec<SqlValue>>, String>;
}

/// A SQLite database as a runtime holds it.
pub trait SqlConnection {
    /// Statements run through this are not interleaved with other writers'.
    type Atomic<'a>: SqlRun
    where
        Self: 'a;
    /// Enters a section no other writer can interleave with (a lock, or
    /// nothing where the runtime is single-threaded and the section has no
    /// `.await`).
    fn atomic(&self) -> Self::Atomic<'_>;
}

/// The schema, as additive, versioned migrations applied in order.
pub const MIGRATIONS: &[(i64, &[&str])] = &[
    (
        1,
        &[
            "CREATE TABLE IF NOT EXISTS idp_providers (owner TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (owner, key))",
            "CREATE TABLE IF NOT EXISTS idp_flows (state TEXT PRIMARY KEY, owner TEXT NOT NULL, data TEXT NOT NULL, created_at INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS idp_registrations (issuer TEXT NOT NULL, redirect_uri TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (issuer, redirect_uri))",
            "CREATE TABLE IF NOT EXISTS idp_servers (issuer TEXT PRIMARY KEY, data TEXT NOT NULL, fetched_at INTEGER NOT NULL)",
        ],
    ),
    (
        2,
        &["CREATE TABLE IF NOT EXISTS idp_confirmations (token TEXT PRIMARY KEY, owner TEXT NOT NULL, created_at INTEGER NOT NULL)"],
    ),
    (
        3,
        &["CREATE TABLE IF NOT EXISTS idp_mcp_sessions (owner TEXT NOT NULL, url TEXT NOT NULL, data TEXT NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (owner, url))"],
    ),
];

/// Applies the migrations not yet applied; the schema version afterwards.
pub fn migrate(db: &impl SqlRun) -> Result<i64, String> {
    db.run(
        "CREATE TABLE IF NOT EXISTS idp_schema (version INTEGER NOT NULL)",
        vec![],
    )?;
    let current = db
        .run("SELECT MAX(version) FROM idp_schema", vec![])?
        .first()
        .and_then(|r| r.first())
        .and_then(SqlValue::as_integer)
        .unwrap_or(0);
    let mut version = current;
    for (v, statements) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        for statement in *statements {
            db.run(statement, vec![])?;
        }
        db.run(
            "INSERT INTO idp_schema (version) VALUES (?)",
            vec![SqlValue::Integer(*v)],
        )?;
        version = *v;
    }
    Ok(version)
}

fn storage(context: &str) -> impl Fn(String) -> Error + '_ {
    move |e| Error::storage(StorageCause::Backend, format!("{context}: {e}"))
}

/// Encodes a row's `data`.
pub fn json(value: &impl Serialize) -> Result<SqlValue> {
    serde_json::to_string(value)
        .map(SqlValue::Text)
        .map_err(|e| {
            StorageError::with_source(StorageCause::Corrupt, "could not encode a row", e).into()
        })
}

/// Decodes a row's `data`.
pub fn decode<T: DeserializeOwned>(value: &SqlValue) -> Result<T> {
    let text = value
        .as_text()
        .ok_or_else(|| Error::storage(StorageCause::Corrupt, "a data column is not text"))?;
    serde_json::from_str(text).map_err(|e| {
        StorageError::with_source(StorageCause::Corrupt, "a stored row is unreadable", e).into()
    })
}

/// The [`Store`] over a [`SqlConnection`]. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct SqlStore<C> {
    conn: C,
}

impl<C: SqlConnection> SqlStore<C> {
    /// A store over `conn`, whose schema [`migrate`] has brought up to date.
    pub fn new(conn: C) -> Self {
        Self { conn }
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

const PROVIDER: &str = "SELECT data FROM idp_providers WHERE owner = ? AND key = ?";

impl<C: SqlConnection> Store for SqlStore<C> {
    async fn put_flow(&self, flow: PendingFlow) -> Result<()> {
        let db = self.conn.atomic();
        // Expired flows are dropped whenever a new one is stored.
        let expired_before = flow.created_at.saturating_sub(FLOW_LIFETIME_SECS);
        db.run(
            "DELETE FROM idp_flows WHERE created_at < ?",
            vec![secs(expired_before)],
        )
        .and_then(|_| {
            db.run(
                "INSERT OR REPLACE INTO idp_flows (state, owner, data, created_at) VALUES (?, ?, ?, ?)",
                vec![
                    text(flow.state.secret()),
                    text(&flow.owner),
                    json(&flow).map_err(|e| e.to_string())?,
                    secs(flow.created_at),
                ],
            )
        })
        .map(drop)
        .map_err(storage("storing a flow"))
    }

    async fn take_flow(&self, state: &str, owner: &str, redirect_uri: &str) -> Result<FlowTake> {
        let db = self.conn.atomic();
        let flow: Option<PendingFlow> = first_data(
            &db,
            "SELECT data FROM idp_flows WHERE state = ? AND owner = ?",
            vec![text(state), text(owner)],
        )?;
        Ok(match flow {
            None => FlowTake::Missing,
            Some(f) if f.redirect_uri.as_str() != redirect_uri => FlowTake::OtherCallback,
            Some(f) => {
                db.run("DELETE FROM idp_flows WHERE state = ?", vec![text(state)])
                    .map_err(storage("taking a flow"))?;
                FlowTake::Taken(Box::new(f))
            }
        })
    }

    async fn registration(&self, issuer: &str, redirect_uri: &str) -> Result<Option<Registration>> {
        self.first_data(
            "SELECT data FROM idp_registrations WHERE issuer = ? AND redirect_uri = ?",
            vec![text(issuer), text(redirect_uri)],
        )
    }

    async fn put_registration(&self, registration: Registration) -> Result<()> {
        self.exec(
            "INSERT OR REPLACE INTO idp_registrations (issuer, redirect_uri, data) VALUES (?, ?, ?)",
            vec![
                text(&registration.issuer),
                text(&registration.redirect_uri),
                json(&registration)?,
            ],
        )
    }

    async fn remove_registration(&self, issuer: &str, redirect_uri: &str) -> Result<()> {
        self.exec(
            "DELETE FROM idp_registrations WHERE issuer = ? AND redirect_uri = ?",
            vec![text(issuer), text(redirect_uri)],
        )
    }

    async fn server(&self, issuer: &str) -> Result<Option<(AuthorizationServer, u64)>> {
        let rows = self
            .conn
            .atomic()
            .run(
                "SELECT data, fetched_at FROM idp_servers WHERE issuer = ?",
                vec![text(issuer)],
            )
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
        self.exec(
            "INSERT OR REPLACE INTO idp_servers (issuer, data, fetched_at) VALUES (?, ?, ?)",
            vec![text(issuer), json(&server)?, secs(fetched_at)],
        )
    }

    async fn put_provider(
        &self,
        owner: &str,
        provider: Provider,
        expected: Expect<'_>,
    ) -> Result<Put> {
        let db = self.conn.atomic();
        let key = provider.key.as_str();
        // Compared decoded, not as text: rows written by an older version
        // may serialise differently.
        let current: Option<Provider> = first_data(&db, PROVIDER, vec![text(owner), text(key)])?;
        let as_expected = match expected {
            Expect::Nothing => current.is_none(),
            Expect::Exactly(e) => current.as_ref() == Some(e),
        };
        if !as_expected {
            return Ok(Put::Conflict(current.map(Box::new)));
        }
        db.run(
            "INSERT OR REPLACE INTO idp_providers (owner, key, data, updated_at) VALUES (?, ?, ?, ?)",
            vec![text(owner), text(key), json(&provider)?, secs(provider.created_at)],
        )
        .map_err(storage("storing a provider"))?;
        Ok(Put::Written)
    }

    async fn provider(&self, owner: &str, key: &ResourceKey) -> Result<Option<Provider>> {
        self.first_data(PROVIDER, vec![text(owner), text(key.as_str())])
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
        self.conn
            .atomic()
            .run(
                "SELECT data FROM idp_providers WHERE owner = ? ORDER BY key",
                vec![text(owner)],
            )
            .map_err(storage("SQL"))?
            .iter()
            .filter_map(|r| r.first())
            .map(decode)
            .collect()
    }

    async fn remove_provider(&self, owner: &str, key: &ResourceKey) -> Result<Option<Provider>> {
        let db = self.conn.atomic();
        let p: Option<Provider> = first_data(&db, PROVIDER, vec![text(owner), text(key.as_str())])?;
        if p.is_some() {
            db.run(
                "DELETE FROM idp_providers WHERE owner = ? AND key = ?",
                vec![text(owner), text(key.as_str())],
            )
            .map_err(storage("removing a provider"))?;
        }
        Ok(p)
    }
}
