//! The object's SQLite schema: additive, versioned migrations.

use serde::Deserialize;
use worker::{SqlStorage, SqlStorageValue};

/// Additive, versioned schema migrations, applied in order on object start.
pub(super) const MIGRATIONS: &[(i64, &[&str])] = &[
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

#[derive(Deserialize)]
struct VersionRow {
    version: Option<i64>,
}

pub(super) fn migrate(sql: &SqlStorage) -> worker::Result<i64> {
    sql.exec(
        "CREATE TABLE IF NOT EXISTS idp_schema (version INTEGER NOT NULL)",
        None,
    )?;
    let current = sql
        .exec("SELECT MAX(version) AS version FROM idp_schema", None)?
        .to_array::<VersionRow>()?
        .first()
        .and_then(|r| r.version)
        .unwrap_or(0);
    let mut version = current;
    for (v, statements) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        for statement in *statements {
            sql.exec(statement, None)?;
        }
        sql.exec(
            "INSERT INTO idp_schema (version) VALUES (?)",
            vec![SqlStorageValue::from(*v)],
        )?;
        version = *v;
    }
    Ok(version)
}
