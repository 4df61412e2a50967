//! The schema: what a new database starts with, the registry's tables made
//! on first use, and the migrations that bring older databases to it.

use super::storage;
use super::tables;
use super::values::{SqlRun, SqlValue};
use crate::error::Result;

/// The schema a new database starts with: the latest version's tables, each
/// one B-tree (`WITHOUT ROWID` on its primary key, so no separate index), and
/// no `AUTOINCREMENT` table; the registry's tables ([`REGISTRY_SCHEMA`])
/// come with their first use. An empty database is 10 pages (41 KB), 12 with
/// the registry's tables, instead of the 21 the migrations below leave.
pub const SCHEMA: (i64, &[&str]) = (
    7,
    &[
        tables::providers::CREATE,
        tables::flows::CREATE,
        tables::confirmations::CREATE,
        tables::mcp_sessions::CREATE,
        tables::meta::CREATE,
        tables::refresh_retries::CREATE,
        tables::events::CREATE,
        tables::device_logins::CREATE,
    ],
);

/// The tables of client registrations and server metadata, created by the
/// first statement that uses them (from version 6 on): in a Worker only the
/// registry object does, so a user's object does not carry them empty.
pub const REGISTRY_SCHEMA: &[&str] = &[tables::registrations::CREATE, tables::servers::CREATE];

pub(crate) fn registry_tables(db: &impl SqlRun) -> Result<()> {
    for statement in REGISTRY_SCHEMA {
        db.run(statement, vec![]).map_err(storage("SQL"))?;
    }
    Ok(())
}

/// The schema's history, as versioned migrations applied in order to a
/// database written by an earlier version (a new one starts at [`SCHEMA`];
/// the last version here is always [`SCHEMA`]'s).
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
    (
        4,
        &[
            "CREATE TABLE IF NOT EXISTS idp_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS idp_refresh_retries (owner TEXT NOT NULL, key TEXT NOT NULL, failures INTEGER NOT NULL, retry_at INTEGER NOT NULL, PRIMARY KEY (owner, key))",
            "CREATE TABLE IF NOT EXISTS idp_events (id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL, data TEXT NOT NULL)",
        ],
    ),
    // Databases created from version 5 on start at SCHEMA, whose tables are
    // one B-tree each. Older ones keep their tables: the same columns and
    // keys, with a separate index for each key, which every statement uses
    // alike. Rebuilding them would need a transaction the Durable Object's
    // SQL API does not give its callers, so a failure half-way could lose
    // rows; keeping them cannot.
    (5, &[]),
    // From version 6 a new database creates the registry's tables when it
    // first uses them (REGISTRY_SCHEMA); older ones keep theirs.
    (6, &[]),
    // Logins with no browser, polled by the Durable Object's alarm.
    (7, &[tables::device_logins::CREATE]),
];

/// Creates [`SCHEMA`] in a new database, or applies the [`MIGRATIONS`] an
/// older one has not had; the schema version afterwards.
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
    if current == 0 {
        for statement in SCHEMA.1 {
            db.run(statement, vec![])?;
        }
        db.run(
            "INSERT INTO idp_schema (version) VALUES (?)",
            vec![SqlValue::Integer(SCHEMA.0)],
        )?;
        return Ok(SCHEMA.0);
    }
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
