//! Each table of the schema beside every statement that reads or writes it,
//! so a change to a table is one place to read. [`super::SCHEMA`] creates
//! the tables from the `CREATE` statements here; the store
//! ([`super::SqlStore`]) and the Durable Object's own bookkeeping run the
//! rest. Older layouts live in [`super::MIGRATIONS`].

/// One grant per (owner, resource key).
pub mod providers {
    /// Creates the table.
    pub const CREATE: &str = "CREATE TABLE IF NOT EXISTS idp_providers (owner TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (owner, key)) WITHOUT ROWID";
    /// One provider.
    pub const GET: &str = "SELECT data FROM idp_providers WHERE owner = ? AND key = ?";
    /// The keys strictly under a key (a range of the primary key).
    pub const KEYS_BETWEEN: &str =
        "SELECT key FROM idp_providers WHERE owner = ? AND key > ? AND key < ?";
    /// Writes a provider.
    pub const PUT: &str =
        "INSERT OR REPLACE INTO idp_providers (owner, key, data, updated_at) VALUES (?, ?, ?, ?)";
    /// One page, by key.
    pub const PAGE: &str =
        "SELECT key, data FROM idp_providers WHERE owner = ? AND key > ? ORDER BY key LIMIT ?";
    /// Removes a provider.
    pub const DELETE: &str = "DELETE FROM idp_providers WHERE owner = ? AND key = ?";
    /// Every owner with a provider (the object's alarm).
    pub const OWNERS: &str = "SELECT DISTINCT owner FROM idp_providers";

    /// The columns of the native SQLite store's refresh queue
    /// ([`crate::store::RefreshQueue`]), added when it opens a database: when
    /// the grant is next due (NULL: never, until new tokens are written; -1:
    /// not known yet), passing failures in a row, and until when a pass holds
    /// its claim. Every write of a row ([`PUT`] replaces it) starts its
    /// schedule over, unknown, and the next pass works it out from the
    /// tokens: the store's statements stay the same with and without the
    /// queue, and a Durable Object, which refreshes from its alarm, has none
    /// of these columns.
    pub const QUEUE_COLUMNS: &[&str] = &[
        "ALTER TABLE idp_providers ADD COLUMN refresh_at INTEGER DEFAULT -1",
        "ALTER TABLE idp_providers ADD COLUMN failures INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE idp_providers ADD COLUMN claimed_until INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX IF NOT EXISTS idp_providers_due ON idp_providers (refresh_at) WHERE refresh_at IS NOT NULL",
    ];
    /// Whether the queue's columns are there.
    pub const HAS_QUEUE: &str =
        "SELECT 1 FROM pragma_table_info('idp_providers') WHERE name = 'refresh_at'";
    /// Rows whose schedule is not known yet.
    pub const UNKNOWN_SCHEDULE: &str =
        "SELECT owner, key, data FROM idp_providers WHERE refresh_at = -1";
    /// Sets a row's schedule (due, owner, key, the data it was worked out
    /// from), unless the row was written since.
    pub const SCHEDULE: &str = "UPDATE idp_providers SET refresh_at = ? WHERE owner = ? AND key = ? AND refresh_at = -1 AND data = ?";
    /// Claims the grants due at ?2 that no pass holds, oldest due first, up
    /// to ?3 of them, until ?1: one statement, so two processes sharing the
    /// file never claim the same grant.
    pub const CLAIM: &str = "UPDATE idp_providers SET claimed_until = ?1 WHERE (owner, key) IN (\
         SELECT owner, key FROM idp_providers WHERE refresh_at >= 0 AND refresh_at <= ?2 AND claimed_until <= ?2 \
         ORDER BY refresh_at LIMIT ?3) RETURNING owner, key, failures, refresh_at";
    /// Due again at the first value after the second's passing failures.
    pub const RETRY: &str = "UPDATE idp_providers SET refresh_at = ?, failures = ?, claimed_until = 0 WHERE owner = ? AND key = ?";
    /// Never due again until new tokens are written.
    pub const STOP: &str =
        "UPDATE idp_providers SET refresh_at = NULL, claimed_until = 0 WHERE owner = ? AND key = ?";
    /// Ends a claim.
    pub const RELEASE: &str =
        "UPDATE idp_providers SET claimed_until = 0 WHERE owner = ? AND key = ?";

    /// The longest of `candidates` keys stored for an owner: one indexed
    /// probe per candidate.
    pub fn longest_of(candidates: usize) -> String {
        let placeholders = vec!["?"; candidates].join(", ");
        format!("SELECT key, data FROM idp_providers WHERE owner = ? AND key IN ({placeholders}) ORDER BY length(key) DESC LIMIT 1")
    }
}

/// Logins in progress, by `state`.
pub mod flows {
    /// Creates the table.
    pub const CREATE: &str = "CREATE TABLE IF NOT EXISTS idp_flows (state TEXT PRIMARY KEY, owner TEXT NOT NULL, data TEXT NOT NULL, created_at INTEGER NOT NULL) WITHOUT ROWID";
    /// Drops flows started before a time.
    pub const EXPIRE: &str = "DELETE FROM idp_flows WHERE created_at < ?";
    /// Writes a flow.
    pub const PUT: &str =
        "INSERT OR REPLACE INTO idp_flows (state, owner, data, created_at) VALUES (?, ?, ?, ?)";
    /// One owner's flow.
    pub const GET: &str = "SELECT data FROM idp_flows WHERE state = ? AND owner = ?";
    /// Spends a flow.
    pub const DELETE: &str = "DELETE FROM idp_flows WHERE state = ?";
}

/// Single-use tokens of the confirmation page.
pub mod confirmations {
    /// Creates the table.
    pub const CREATE: &str = "CREATE TABLE IF NOT EXISTS idp_confirmations (token TEXT PRIMARY KEY, owner TEXT NOT NULL, created_at INTEGER NOT NULL) WITHOUT ROWID";
    /// When an owner's token was made.
    pub const GET: &str = "SELECT created_at FROM idp_confirmations WHERE token = ? AND owner = ?";
    /// Spends a token.
    pub const DELETE: &str = "DELETE FROM idp_confirmations WHERE token = ?";
    /// Drops tokens made before a time.
    pub const EXPIRE: &str = "DELETE FROM idp_confirmations WHERE created_at < ?";
    /// Keeps a token.
    pub const PUT: &str =
        "INSERT INTO idp_confirmations (token, owner, created_at) VALUES (?, ?, ?)";
}

/// MCP sessions by (owner, server URL).
pub mod mcp_sessions {
    /// Creates the table.
    pub const CREATE: &str = "CREATE TABLE IF NOT EXISTS idp_mcp_sessions (owner TEXT NOT NULL, url TEXT NOT NULL, data TEXT NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (owner, url)) WITHOUT ROWID";
    /// One session.
    pub const GET: &str = "SELECT data FROM idp_mcp_sessions WHERE owner = ? AND url = ?";
    /// Keeps a session.
    pub const PUT: &str = "INSERT OR REPLACE INTO idp_mcp_sessions (owner, url, data, updated_at) VALUES (?, ?, ?, ?)";
    /// Forgets a session.
    pub const DELETE: &str = "DELETE FROM idp_mcp_sessions WHERE owner = ? AND url = ?";
}

/// Named values of the object (the registry binding, the timeout, the
/// registry-write allowance).
pub mod meta {
    /// Creates the table.
    pub const CREATE: &str =
        "CREATE TABLE IF NOT EXISTS idp_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID";
    /// Writes a value.
    pub const PUT: &str = "INSERT OR REPLACE INTO idp_meta (name, value) VALUES (?, ?)";
    /// Reads a value.
    pub const GET: &str = "SELECT value FROM idp_meta WHERE name = ?";
}

/// Backing off refreshes that keep failing, by (owner, key).
pub mod refresh_retries {
    /// Creates the table.
    pub const CREATE: &str = "CREATE TABLE IF NOT EXISTS idp_refresh_retries (owner TEXT NOT NULL, key TEXT NOT NULL, failures INTEGER NOT NULL, retry_at INTEGER NOT NULL, PRIMARY KEY (owner, key)) WITHOUT ROWID";
    /// Failures so far and when to try again.
    pub const GET: &str =
        "SELECT failures, retry_at FROM idp_refresh_retries WHERE owner = ? AND key = ?";
    /// Writes them.
    pub const PUT: &str = "INSERT OR REPLACE INTO idp_refresh_retries (owner, key, failures, retry_at) VALUES (?, ?, ?, ?)";
    /// Forgets them after a success.
    pub const DELETE: &str = "DELETE FROM idp_refresh_retries WHERE owner = ? AND key = ?";
}

/// Logins with no browser (RFC 8628) the object polls from its alarm, by
/// id (the flow's state): when to poll next, and once it has ended, what
/// came of it (`{"connected": key}` or `{"failed": report}`), kept an hour
/// for the app to read.
pub mod device_logins {
    /// Creates the table.
    pub const CREATE: &str = "CREATE TABLE IF NOT EXISTS idp_device_logins (id TEXT PRIMARY KEY, owner TEXT NOT NULL, poll_at INTEGER NOT NULL, outcome TEXT) WITHOUT ROWID";
    /// Starts or reschedules one.
    pub const PUT: &str = "INSERT OR REPLACE INTO idp_device_logins (id, owner, poll_at, outcome) VALUES (?, ?, ?, ?)";
    /// One user's login: when to poll, and its outcome.
    pub const GET: &str =
        "SELECT poll_at, outcome FROM idp_device_logins WHERE id = ? AND owner = ?";
    /// The logins due at a time, still waiting.
    pub const DUE: &str =
        "SELECT id, owner FROM idp_device_logins WHERE outcome IS NULL AND poll_at <= ?";
    /// The next poll of any waiting login.
    pub const NEXT: &str = "SELECT MIN(poll_at) FROM idp_device_logins WHERE outcome IS NULL";
    /// How many logins one user has waiting.
    pub const WAITING: &str =
        "SELECT COUNT(*) FROM idp_device_logins WHERE outcome IS NULL AND owner = ?";
    /// Drops outcomes older than a time.
    pub const EXPIRE: &str =
        "DELETE FROM idp_device_logins WHERE outcome IS NOT NULL AND poll_at < ?";
}

/// The audit log.
pub mod events {
    /// Creates the table.
    pub const CREATE: &str = "CREATE TABLE IF NOT EXISTS idp_events (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, data TEXT NOT NULL)";
    /// Appends an event.
    pub const PUT: &str = "INSERT INTO idp_events (owner, data) VALUES (?, ?)";
    /// Keeps an owner's newest events only (owner, owner, how many).
    pub const TRIM: &str = "DELETE FROM idp_events WHERE owner = ? AND id NOT IN (SELECT id FROM idp_events WHERE owner = ? ORDER BY id DESC LIMIT ?)";
    /// An owner's newest events.
    pub const NEWEST: &str = "SELECT data FROM idp_events WHERE owner = ? ORDER BY id DESC LIMIT ?";
}

/// Client registrations by (issuer, redirect URI): the registry's.
pub mod registrations {
    /// Creates the table (on first use: [`super::super::REGISTRY_SCHEMA`]).
    pub const CREATE: &str = "CREATE TABLE IF NOT EXISTS idp_registrations (issuer TEXT NOT NULL, redirect_uri TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (issuer, redirect_uri)) WITHOUT ROWID";
    /// One registration.
    pub const GET: &str =
        "SELECT data FROM idp_registrations WHERE issuer = ? AND redirect_uri = ?";
    /// Writes one.
    pub const PUT: &str =
        "INSERT OR REPLACE INTO idp_registrations (issuer, redirect_uri, data) VALUES (?, ?, ?)";
    /// Forgets one.
    pub const DELETE: &str = "DELETE FROM idp_registrations WHERE issuer = ? AND redirect_uri = ?";
}

/// Authorization server metadata by issuer: the registry's.
pub mod servers {
    /// Creates the table (on first use: [`super::super::REGISTRY_SCHEMA`]).
    pub const CREATE: &str = "CREATE TABLE IF NOT EXISTS idp_servers (issuer TEXT PRIMARY KEY, data TEXT NOT NULL, fetched_at INTEGER NOT NULL) WITHOUT ROWID";
    /// One server and when it was fetched.
    pub const GET: &str = "SELECT data, fetched_at FROM idp_servers WHERE issuer = ?";
    /// Writes one.
    pub const PUT: &str =
        "INSERT OR REPLACE INTO idp_servers (issuer, data, fetched_at) VALUES (?, ?, ?)";
    /// The servers that accept client ID metadata documents, newest first,
    /// with whether each promises `iss`.
    pub const DOCUMENT_ISSUERS: &str = "SELECT issuer, json_extract(data, '$.metadata.authorization_response_iss_parameter_supported') FROM idp_servers \
         WHERE json_extract(data, '$.metadata.client_id_metadata_document_supported') = 1 ORDER BY fetched_at DESC LIMIT ?";
}

/// Re-sealing the tables above whose rows hold secrets, by name and key
/// columns.
pub mod sealed {
    /// Whether a table exists yet (the registry's are made on first use).
    pub const EXISTS: &str = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?";

    /// Every row of `table`: its key columns, then `data`.
    pub fn every_row(table: &str, keys: &[&str]) -> String {
        format!("SELECT {}, data FROM {table}", keys.join(", "))
    }

    /// Rewrites one row's `data` (the new data, then the key values).
    pub fn rewrite(table: &str, keys: &[&str]) -> String {
        let filter: Vec<String> = keys.iter().map(|k| format!("{k} = ?")).collect();
        format!("UPDATE {table} SET data = ? WHERE {}", filter.join(" AND "))
    }
}
