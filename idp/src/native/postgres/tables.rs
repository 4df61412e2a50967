//! The PostgreSQL schema: each table beside every statement on it, and the
//! versioned migrations that create them. The same tables, columns and row
//! encoding as the SQLite store ([`crate::store::sql::tables`]), in
//! PostgreSQL's dialect (`$n` placeholders, `ON CONFLICT`, `FOR UPDATE`),
//! plus what several processes sharing one database need: when each grant
//! is next due for a background refresh, and which process claimed it.

/// Keys are compared byte by byte (`COLLATE "C"`), as in SQLite, whatever the
/// database's locale: pages and the range of keys under a key rely on it.
pub(super) mod providers {
    /// One provider.
    pub const GET: &str = "SELECT data FROM idp_providers WHERE owner = $1 AND key = $2";
    /// One provider, locked until the transaction ends (compare-and-swap).
    pub const LOCK: &str =
        "SELECT data FROM idp_providers WHERE owner = $1 AND key = $2 FOR UPDATE";
    /// A new provider, unless one was written meanwhile (0 rows then).
    pub const INSERT: &str = "INSERT INTO idp_providers (owner, key, data, updated_at, refresh_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (owner, key) DO NOTHING";
    /// Replaces a provider (locked with [`LOCK`]); its schedule starts over.
    pub const UPDATE: &str = "UPDATE idp_providers SET data = $3, updated_at = $4, refresh_at = $5, failures = 0, claimed_until = 0 WHERE owner = $1 AND key = $2";
    /// The longest of the candidate keys (a text array) stored for an owner.
    pub const LONGEST: &str = "SELECT key, data FROM idp_providers WHERE owner = $1 AND key = ANY($2) ORDER BY length(key) DESC LIMIT 1";
    /// One page, by key.
    pub const PAGE: &str =
        "SELECT key, data FROM idp_providers WHERE owner = $1 AND key > $2 ORDER BY key LIMIT $3";
    /// Removes a provider, returning it.
    pub const DELETE: &str =
        "DELETE FROM idp_providers WHERE owner = $1 AND key = $2 RETURNING data";
    /// Claims the grants due at $1 that nobody holds, oldest due first, up to
    /// $2 of them, until $3; rows another transaction is claiming are
    /// skipped, so two processes never claim the same grant.
    pub const CLAIM: &str = "UPDATE idp_providers SET claimed_until = $3 WHERE (owner, key) IN (\
         SELECT owner, key FROM idp_providers WHERE refresh_at <= $1 AND claimed_until <= $1 \
         ORDER BY refresh_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING owner, key, failures";
    /// Due again at $3 after $4 passing failures in a row.
    pub const RETRY: &str = "UPDATE idp_providers SET refresh_at = $3, failures = $4, claimed_until = 0 WHERE owner = $1 AND key = $2";
    /// Never due again until new tokens are written.
    pub const STOP: &str = "UPDATE idp_providers SET refresh_at = NULL, claimed_until = 0 WHERE owner = $1 AND key = $2";
    /// Ends a claim.
    pub const RELEASE: &str =
        "UPDATE idp_providers SET claimed_until = 0 WHERE owner = $1 AND key = $2";
}

/// Logins in progress, by `state`.
pub(super) mod flows {
    /// Drops flows started before a time.
    pub const EXPIRE: &str = "DELETE FROM idp_flows WHERE created_at < $1";
    /// Writes a flow.
    pub const PUT: &str = "INSERT INTO idp_flows (state, owner, data, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (state) DO UPDATE SET owner = EXCLUDED.owner, data = EXCLUDED.data, created_at = EXCLUDED.created_at";
    /// One owner's flow, locked until the transaction ends: a second
    /// callback with the same state waits, then finds it gone.
    pub const LOCK: &str = "SELECT data FROM idp_flows WHERE state = $1 AND owner = $2 FOR UPDATE";
    /// Spends a flow.
    pub const DELETE: &str = "DELETE FROM idp_flows WHERE state = $1";
}

/// Client registrations by (issuer, redirect URI).
pub(super) mod registrations {
    /// One registration.
    pub const GET: &str =
        "SELECT data FROM idp_registrations WHERE issuer = $1 AND redirect_uri = $2";
    /// Writes one.
    pub const PUT: &str =
        "INSERT INTO idp_registrations (issuer, redirect_uri, data) VALUES ($1, $2, $3) \
         ON CONFLICT (issuer, redirect_uri) DO UPDATE SET data = EXCLUDED.data";
    /// Forgets one.
    pub const DELETE: &str =
        "DELETE FROM idp_registrations WHERE issuer = $1 AND redirect_uri = $2";
}

/// Authorization server metadata by issuer.
pub(super) mod servers {
    /// One server and when it was fetched.
    pub const GET: &str = "SELECT data, fetched_at FROM idp_servers WHERE issuer = $1";
    /// Writes one.
    pub const PUT: &str = "INSERT INTO idp_servers (issuer, data, fetched_at) VALUES ($1, $2, $3) \
         ON CONFLICT (issuer) DO UPDATE SET data = EXCLUDED.data, fetched_at = EXCLUDED.fetched_at";
}

/// Re-sealing: every row of a table (its key columns, then `data`), locked,
/// and the rewrite of one.
pub(super) mod sealed {
    /// Every row of `table`, locked until the transaction ends.
    pub fn every_row(table: &str, keys: &[&str]) -> String {
        format!("SELECT {}, data FROM {table} FOR UPDATE", keys.join(", "))
    }

    /// Rewrites one row's `data` ($1, then the key values).
    pub fn rewrite(table: &str, keys: &[&str]) -> String {
        let filter: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{k} = ${}", i + 2))
            .collect();
        format!(
            "UPDATE {table} SET data = $1 WHERE {}",
            filter.join(" AND ")
        )
    }
}

/// The lock every migration runs under (an advisory lock held until its
/// transaction ends), so processes that start together migrate once.
pub(super) const MIGRATION_LOCK: i64 = 0x6964_705f_7363_6865; // "idp_sche"

/// The schema's history: versioned migrations, applied in order, each in
/// the transaction that records its version.
pub(super) const MIGRATIONS: &[(i64, &[&str])] = &[(
    1,
    &[
        "CREATE TABLE idp_providers (owner TEXT NOT NULL, key TEXT COLLATE \"C\" NOT NULL, data TEXT NOT NULL, updated_at BIGINT NOT NULL, \
         refresh_at BIGINT, failures BIGINT NOT NULL DEFAULT 0, claimed_until BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (owner, key))",
        "CREATE INDEX idp_providers_due ON idp_providers (refresh_at) WHERE refresh_at IS NOT NULL",
        "CREATE TABLE idp_flows (state TEXT PRIMARY KEY, owner TEXT NOT NULL, data TEXT NOT NULL, created_at BIGINT NOT NULL)",
        "CREATE INDEX idp_flows_created ON idp_flows (created_at)",
        "CREATE TABLE idp_registrations (issuer TEXT NOT NULL, redirect_uri TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (issuer, redirect_uri))",
        "CREATE TABLE idp_servers (issuer TEXT PRIMARY KEY, data TEXT NOT NULL, fetched_at BIGINT NOT NULL)",
    ],
)];

/// The schema's version table.
pub(super) mod schema {
    /// Creates it.
    pub const CREATE: &str = "CREATE TABLE IF NOT EXISTS idp_schema (version BIGINT NOT NULL)";
    /// The version reached.
    pub const VERSION: &str = "SELECT COALESCE(MAX(version), 0) FROM idp_schema";
    /// Records a version.
    pub const PUT: &str = "INSERT INTO idp_schema (version) VALUES ($1)";
    /// Takes [`super::MIGRATION_LOCK`] until the transaction ends.
    pub const LOCK: &str = "SELECT pg_advisory_xact_lock($1)";
}

/// A grant's refresh lock: a transaction that waits at most `lock_timeout`
/// for it and is ended by the server once idle longer than a refresh takes.
pub(super) mod lock {
    /// Opens the transaction (milliseconds).
    pub fn begin(wait_ms: u128, hold_ms: u128) -> String {
        format!("BEGIN; SET LOCAL lock_timeout = {wait_ms}; SET LOCAL idle_in_transaction_session_timeout = {hold_ms}")
    }
    /// Takes the lock until the transaction ends.
    pub const TAKE: &str = "SELECT pg_advisory_xact_lock($1)";
    /// Ends the transaction, and the lock.
    pub const COMMIT: &str = "COMMIT";
    /// The session holding the lock (on its own connection).
    pub const PID: &str = "SELECT pg_backend_pid()";
    /// Whether session `$1` still holds the bigint advisory lock whose
    /// high and low 32 bits are `$2` and `$3` (from any connection).
    pub const STILL_HELD: &str = "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND pid = $1 AND classid::bigint = $2 AND objid::bigint = $3";
}
