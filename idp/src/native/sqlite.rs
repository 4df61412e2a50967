//! [`SqliteStore`] (feature `sqlite`): the engine's SQL store on a SQLite
//! file through `rusqlite`.

use crate::error::{Error, Result, StorageCause, StorageError};
use crate::matching::ResourceKey;
use crate::store::seal::{Keyring, Random, Sealing};
use crate::store::sql::tables::providers;
use crate::store::sql::{
    migrate, rows, secs, storage, text, SqlConnection, SqlRun, SqlStore, SqlValue,
};
use crate::store::{Due, RefreshQueue};

/// A SQLite database for [`SqliteStore`]: a `rusqlite` connection behind a
/// mutex, so a section of statements is not interleaved with another
/// writer's.
#[derive(Debug)]
pub struct SqliteConnection(std::sync::Mutex<rusqlite::Connection>);

impl SqlRun for std::sync::MutexGuard<'_, rusqlite::Connection> {
    fn run(
        &self,
        statement: &str,
        args: Vec<SqlValue>,
    ) -> std::result::Result<Vec<Vec<SqlValue>>, String> {
        use rusqlite::types::{Value, ValueRef};
        let args: Vec<Value> = args
            .into_iter()
            .map(|v| match v {
                SqlValue::Null => Value::Null,
                SqlValue::Integer(i) => Value::Integer(i),
                SqlValue::Real(f) => Value::Real(f),
                SqlValue::Text(s) => Value::Text(s),
            })
            .collect();
        let mut stmt = self.prepare_cached(statement).map_err(|e| e.to_string())?;
        let columns = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(args))
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| e.to_string())? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(match row.get_ref(i).map_err(|e| e.to_string())? {
                    ValueRef::Integer(i) => SqlValue::Integer(i),
                    ValueRef::Real(f) => SqlValue::Real(f),
                    ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Null | ValueRef::Blob(_) => SqlValue::Null,
                });
            }
            out.push(values);
        }
        Ok(out)
    }
}

impl SqlConnection for SqliteConnection {
    type Atomic<'a> = std::sync::MutexGuard<'a, rusqlite::Connection>;
    fn atomic(&self) -> Self::Atomic<'_> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The [`Store`](crate::store::Store) on a SQLite file (feature `sqlite`): the statements and
/// migrations the Workers Durable Object runs, through `rusqlite`, and a
/// [`RefreshQueue`] for [`NativeIdp::refresh_due`](crate::native::NativeIdp::refresh_due):
/// each grant's schedule is kept in its row and claimed by one statement.
/// It is one process's store: its compare-and-swap and refresh single
/// flight hold within the process. Replicas share a
/// [`PostgresStore`](crate::native::PostgresStore) (feature `postgres`).
///
/// ```
/// # async fn run() -> idp::Result<()> {
/// use idp::native::{NativeIdp, SqliteStore};
/// // Secrets sealed with AES-256-GCM (the key from your secret store):
/// let keys = idp::store::seal::Keyring::parse("k1:HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4=")?;
/// let store = SqliteStore::open_in_memory()?.with_keys(keys); // or SqliteStore::open("idp.sqlite")?
/// # let settings: idp::flow::Settings = unimplemented!();
/// let idp = NativeIdp::with_store(settings, store);
/// # Ok(()) }
/// ```
pub type SqliteStore = SqlStore<SqliteConnection>;

impl SqlStore<SqliteConnection> {
    /// Opens (or creates) the database at `path` and brings its schema up to
    /// date. Secrets are sealed with the keys given by
    /// [`with_keys`](Self::with_keys); without keys a write of a secret
    /// fails (tokens are not kept on disk in plain text), unless
    /// [`plaintext`](Self::plaintext) says so for local development.
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let conn = rusqlite::Connection::open(path).map_err(|e| {
            Error::Storage(StorageError::with_source(
                StorageCause::Backend,
                format!("could not open SQLite at {}", path.display()),
                e,
            ))
        })?;
        let store = Self::from_connection(conn)?;
        Ok(Self::with_sealing(
            store.into_connection(),
            Sealing::refuse_native(),
        ))
    }

    /// A database in memory, for tests (secrets in plain text: nothing is
    /// kept at rest).
    pub fn open_in_memory() -> Result<Self> {
        let conn = rusqlite::Connection::open_in_memory().map_err(|e| {
            Error::Storage(StorageError::with_source(
                StorageCause::Backend,
                "could not open SQLite in memory",
                e,
            ))
        })?;
        Self::from_connection(conn)
    }

    /// Seals secrets at rest with `keys` (the first encrypts; see
    /// [`crate::store::seal`]).
    pub fn with_keys(self, keys: Keyring) -> Self {
        let random: Random = |buf| getrandom::fill(buf).map_err(|e| e.to_string());
        self.sealed(Sealing::keyring(keys, random))
    }

    /// Keeps secrets in plain text on disk: for local development only, said
    /// explicitly (without keys, [`open`](Self::open) refuses to store them).
    pub fn plaintext(self) -> Self {
        self.sealed(Sealing::plaintext())
    }

    fn from_connection(conn: rusqlite::Connection) -> Result<Self> {
        let conn = SqliteConnection(std::sync::Mutex::new(conn));
        let failed = |e: String| {
            Error::storage(
                StorageCause::Backend,
                format!("schema migration failed: {e}"),
            )
        };
        {
            let db = SqlConnection::atomic(&conn);
            migrate(&db).map_err(failed)?;
            queue_columns(&db).map_err(failed)?;
        }
        Ok(Self::new(conn))
    }
}

/// Adds the refresh queue's columns to a database that has none yet, in one
/// transaction (a second program opening the file meanwhile, such as the
/// `sqlite3` shell, cannot see them half added).
fn queue_columns(
    db: &std::sync::MutexGuard<'_, rusqlite::Connection>,
) -> std::result::Result<(), String> {
    let missing = || db.run(providers::HAS_QUEUE, vec![]).map(|r| r.is_empty());
    // Checked before taking the write lock, so a database that has them
    // opens without writing.
    if !missing()? {
        return Ok(());
    }
    let run = |statement: &str| db.execute_batch(statement).map_err(|e| e.to_string());
    run("BEGIN IMMEDIATE")?;
    let added = (|| {
        if missing()? {
            providers::QUEUE_COLUMNS.iter().try_for_each(|st| run(st))?;
        }
        Ok(())
    })();
    run(if added.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
    added
}

fn claim(row: &[SqlValue]) -> Option<(i64, Due)> {
    match row {
        [SqlValue::Text(owner), SqlValue::Text(key), failures, due] => Some((
            due.as_integer()?,
            Due {
                owner: owner.clone(),
                key: ResourceKey::parse(key).ok()?,
                failures: failures
                    .as_integer()
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0),
            },
        )),
        _ => None,
    }
}

impl SqlStore<SqliteConnection> {
    /// Schedules rows written before the queue existed, from their tokens
    /// (a row that cannot be read is never due, until new tokens are
    /// written).
    fn schedule_unknown(&self, db: &impl SqlRun) -> Result<()> {
        let rows = db
            .run(providers::UNKNOWN_SCHEDULE, vec![])
            .map_err(storage("reading unscheduled grants"))?;
        for row in rows {
            let [SqlValue::Text(owner), SqlValue::Text(key), data] = row.as_slice() else {
                continue;
            };
            let due = rows::provider(self.sealing(), owner, key, data)
                .ok()
                .and_then(|p| p.refresh_due_with(self.keep_alive()));
            db.run(
                providers::SCHEDULE,
                vec![
                    due.map_or(SqlValue::Null, secs),
                    text(owner),
                    text(key),
                    data.clone(),
                ],
            )
            .map_err(storage("scheduling a grant"))?;
        }
        Ok(())
    }

    fn schedule(
        &self,
        statement: &str,
        mut args: Vec<SqlValue>,
        owner: &str,
        key: &ResourceKey,
    ) -> Result<()> {
        args.extend([text(owner), text(key.as_str())]);
        self.connection()
            .atomic()
            .run(statement, args)
            .map(drop)
            .map_err(storage("updating a grant's schedule"))
    }
}

impl RefreshQueue for SqlStore<SqliteConnection> {
    async fn claim_due(&self, now: u64, limit: usize, lease: u64) -> Result<Vec<Due>> {
        let db = self.connection().atomic();
        self.schedule_unknown(&db)?;
        let limit = SqlValue::Integer(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows = db
            .run(
                providers::CLAIM,
                vec![secs(now.saturating_add(lease)), secs(now), limit],
            )
            .map_err(storage("claiming due refreshes"))?;
        let mut due: Vec<(i64, Due)> = rows.iter().filter_map(|r| claim(r)).collect();
        due.sort_by_key(|(at, _)| *at);
        Ok(due.into_iter().map(|(_, d)| d).collect())
    }

    async fn retry_at(&self, owner: &str, key: &ResourceKey, failures: u64, at: u64) -> Result<()> {
        self.schedule(providers::RETRY, vec![secs(at), secs(failures)], owner, key)
    }

    async fn release(&self, owner: &str, key: &ResourceKey) -> Result<()> {
        self.schedule(providers::RELEASE, vec![], owner, key)
    }

    async fn stop(&self, owner: &str, key: &ResourceKey) -> Result<()> {
        self.schedule(providers::STOP, vec![], owner, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::NativeIdp;

    const K1: &str = "k1:HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4=";
    const K2: &str = "k2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    /// A fresh file under the temporary directory.
    fn scratch(name: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("idp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        path
    }

    /// The rows `statement` answers on `store`'s database.
    fn query(store: &SqliteStore, statement: &str) -> Vec<Vec<SqlValue>> {
        SqlRun::run(
            &SqlConnection::atomic(store.connection()),
            statement,
            vec![],
        )
        .unwrap()
    }

    /// The store on `path`, sealed with `keys`.
    fn sealed(path: &std::path::Path, keys: &str) -> SqliteStore {
        SqliteStore::open(path)
            .unwrap()
            .with_keys(Keyring::parse(keys).unwrap())
    }

    /// A file without keys keeps no secret: the write fails and says how to
    /// give keys, and nothing of the token reaches the disk; plain text only
    /// when asked for.
    #[test]
    fn a_file_without_keys_refuses_secrets_unless_told_plain_text() {
        use crate::store::UserStore;
        let path = std::env::temp_dir().join(format!("idp-keyless-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let store = SqliteStore::open(&path).unwrap();
        let secret =
            crate::store::conformance::provider_with("https://api.example/v1", "KEYLESS-AT-1");
        let put = store.put_provider("alice", secret.clone(), crate::store::Expect::Nothing);
        let e = crate::testing::block_on(put).unwrap_err();
        assert!(
            e.to_string().contains("with_keys") && e.to_string().contains("plaintext()"),
            "{e}"
        );
        drop(store);
        let bytes = std::fs::read(&path).unwrap_or_default();
        assert!(
            !bytes.windows(12).any(|w| w == b"KEYLESS-AT-1"),
            "nothing on disk"
        );
        let plain = SqliteStore::open(&path).unwrap().plaintext();
        let put = plain.put_provider("alice", secret, crate::store::Expect::Nothing);
        assert_eq!(
            crate::testing::block_on(put).unwrap(),
            crate::store::Put::Written
        );
        drop(plain);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn the_sqlite_store_passes_the_store_contract() {
        let store = SqliteStore::open_in_memory().unwrap();
        crate::testing::block_on(crate::store::conformance::check(&store));
    }

    #[test]
    fn the_sqlite_store_is_a_refresh_queue() {
        let store = SqliteStore::open_in_memory().unwrap();
        crate::testing::block_on(crate::store::conformance::check_refresh_queue(&store));
        // Keys set after the keep-alive keep it.
        let keys = Keyring::parse("k1:HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4=").unwrap();
        let kept = SqliteStore::open_in_memory()
            .unwrap()
            .with_keep_alive(std::time::Duration::from_secs(500))
            .with_keys(keys);
        crate::testing::block_on(crate::store::conformance::check_keep_alive(&kept, 500));
    }

    /// Rows written before the queue (a database of the previous version)
    /// are scheduled from their tokens at the first pass, sealed ones
    /// included; a row no key opens is never due.
    #[test]
    fn grants_written_before_the_queue_are_scheduled_from_their_tokens() {
        use crate::store::{conformance, Expect, UserStore};
        let path = scratch("queue");
        let a = conformance::provider("https://a.example/api", "A");
        let due = a.refresh_due().expect("refreshable");
        let put = |store: &SqliteStore, owner: &str, p: &crate::store::Provider| {
            let put = store.put_provider(owner, p.clone(), Expect::Nothing);
            assert_eq!(
                crate::testing::block_on(put).unwrap(),
                crate::store::Put::Written
            );
        };
        // Written by the previous version: the schema, without the queue.
        let before_queue = |keys: &str| {
            let conn = rusqlite::Connection::open(&path).unwrap();
            migrate(&std::sync::Mutex::new(conn).lock().unwrap()).unwrap();
            let conn = rusqlite::Connection::open(&path).unwrap();
            SqlStore::new(SqliteConnection(std::sync::Mutex::new(conn)))
                .with_keys(Keyring::parse(keys).unwrap())
        };
        let old = before_queue(K1);
        put(&old, "alice", &a);
        put(&before_queue(K2), "bob", &a);
        let has_queue = query(&old, providers::HAS_QUEUE);
        assert!(has_queue.is_empty(), "the old layout");
        drop(old);

        let store = sealed(&path, K1);
        let claim = |now| crate::testing::block_on(store.claim_due(now, 10, 60)).unwrap();
        assert!(claim(due - 1).is_empty(), "not before its tokens say");
        let got = claim(due);
        assert_eq!(
            got.iter().map(|d| d.owner.as_str()).collect::<Vec<_>>(),
            ["alice"],
            "bob's row, sealed under another key, is never due"
        );
        let schedule = query(
            &store,
            "SELECT owner, refresh_at FROM idp_providers ORDER BY owner",
        );
        assert_eq!(
            schedule,
            vec![
                vec![text("alice"), secs(due)],
                vec![text("bob"), SqlValue::Null]
            ]
        );
        drop(store);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn the_schema_migrates_once_and_survives_reopening() {
        let dir = std::env::temp_dir().join(format!("idp-sqlite-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        // Sealed: no test leaves a secret in plain text on disk.
        let keys = Keyring::parse("k1:HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4=").unwrap();
        let store = SqliteStore::open(&dir).unwrap().with_keys(keys);
        crate::testing::block_on(crate::store::conformance::check(&store));
        drop(store);
        let again = SqliteStore::open(&dir).unwrap();
        let rows = crate::store::sql::SqlRun::run(
            &crate::store::sql::SqlConnection::atomic(again.connection()),
            "SELECT COUNT(*), MAX(version) FROM idp_schema",
            vec![],
        )
        .unwrap();
        let last = crate::store::sql::MIGRATIONS.last().unwrap().0;
        assert_eq!(last, crate::store::sql::SCHEMA.0);
        assert_eq!(
            rows,
            vec![vec![
                crate::store::sql::SqlValue::Integer(1),
                crate::store::sql::SqlValue::Integer(last)
            ]],
            "a new database starts at the schema's version, and opening it again changes nothing"
        );
        let _ = std::fs::remove_file(&dir);
    }

    /// Secrets sealed from the first write: the file holds none of them, a
    /// wrong key reads as "connect again" for that provider only, and
    /// rotation re-seals every row under the new key.
    #[test]
    fn secrets_at_rest_are_sealed_rotated_and_refused_with_a_wrong_key() {
        use crate::store::{conformance, Expect, UserStore};
        let path = scratch("sealed");
        let open = |keys: &str| sealed(&path, keys);
        let store = open(K1);
        crate::testing::block_on(conformance::check(&store));
        let mut p = conformance::provider_with("https://secret.example/api", "ACCESS-SECRET-123");
        if let Some(g) = p.grant.as_mut() {
            g.tokens.as_mut().unwrap().refresh_token =
                Some(crate::secret::RefreshToken::new("REFRESH-SECRET-456"));
            g.client.client_secret = Some(crate::secret::ClientSecret::new("CLIENT-SECRET-789"));
            g.tokens.as_mut().unwrap().dpop = Some(crate::secret::DpopKey::new("DPOP-SECRET-333"));
        }
        // A login waiting for its callback keeps its DPoP key sealed.
        let mut f = conformance::flow("st-sealed", "carol", "https://app.example/cb/x");
        f.dpop = Some(crate::secret::DpopKey::new("DPOPFLOW-SECRET-444"));
        crate::testing::block_on(store.put_flow(f)).unwrap();
        // A workload's grant keeps its identity token sealed too.
        let mut w = conformance::provider_with("https://workload.example/api", "ACCESS-SECRET-321");
        if let Some(g) = w.grant.as_mut() {
            g.kind = crate::store::GrantKind::JwtBearer {
                scope: None,
                assertion: Some(crate::secret::Assertion::new("WORKLOAD-SECRET-000")),
            };
        }
        let put = store.put_provider("app:jobs", w.clone(), Expect::Nothing);
        assert_eq!(
            crate::testing::block_on(put).unwrap(),
            crate::store::Put::Written
        );
        // And an enterprise user's grant its ID token and the identity
        // provider's client secret.
        let mut e =
            conformance::provider_with("https://enterprise.example/api", "ACCESS-SECRET-654");
        if let Some(g) = e.grant.as_mut() {
            g.kind = crate::store::GrantKind::Enterprise {
                scope: None,
                idp: Box::new(crate::token::EnterpriseIdp {
                    issuer: "https://idp.example".into(),
                    token_endpoint: url::Url::parse("https://idp.example/token").unwrap(),
                    client: crate::client::Client::confidential(
                        "app",
                        crate::secret::ClientSecret::new("IDPCLIENT-SECRET-222"),
                        crate::client::AuthMethod::ClientSecretBasic,
                    ),
                }),
                id_token: Some(crate::secret::Assertion::new("IDTOKEN-SECRET-111")),
            };
        }
        let put = store.put_provider("carol", e.clone(), Expect::Nothing);
        assert_eq!(
            crate::testing::block_on(put).unwrap(),
            crate::store::Put::Written
        );
        let put = store.put_provider("carol", p.clone(), Expect::Nothing);
        assert_eq!(
            crate::testing::block_on(put).unwrap(),
            crate::store::Put::Written
        );
        drop(store);
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for secret in [
            "ACCESS-SECRET-123",
            "REFRESH-SECRET-456",
            "CLIENT-SECRET-789",
            "WORKLOAD-SECRET-000",
            "ACCESS-SECRET-321",
            "IDTOKEN-SECRET-111",
            "IDPCLIENT-SECRET-222",
            "DPOP-SECRET-333",
            "DPOPFLOW-SECRET-444",
        ] {
            assert!(!text.contains(secret), "{secret} is in the file");
        }
        assert!(text.contains("idp-enc:2:k1:"));

        // Another key only: that provider reads as unreadable, nothing panics.
        let wrong = open(K2);
        let got = crate::testing::block_on(wrong.provider("carol", &p.key))
            .unwrap()
            .unwrap();
        let g = got.grant.unwrap();
        assert!(g.tokens.is_none() && g.client.client_secret.is_none());
        assert!(g.unreadable.unwrap().contains("\"k1\""));
        let got = crate::testing::block_on(wrong.provider("app:jobs", &w.key))
            .unwrap()
            .unwrap();
        let g = got.grant.unwrap();
        let unread = crate::store::GrantKind::JwtBearer {
            scope: None,
            assertion: None,
        };
        assert_eq!(g.kind, unread, "the token reads as absent");
        drop(wrong);

        // Rotation: the new key first, the old one still listed.
        let both = open(&format!("{K2},{K1}"));
        let got = crate::testing::block_on(both.provider("carol", &p.key))
            .unwrap()
            .unwrap();
        assert_eq!(got, p, "readable under the rotated list");
        assert!(both.reseal().unwrap() >= 1);
        assert_eq!(both.reseal().unwrap(), 0, "nothing left under the old key");
        drop(both);
        let only_new = open(K2);
        let got = crate::testing::block_on(only_new.provider("carol", &p.key))
            .unwrap()
            .unwrap();
        assert_eq!(got, p, "after re-encryption the old key can go");
        let got = crate::testing::block_on(only_new.provider("app:jobs", &w.key))
            .unwrap()
            .unwrap();
        assert_eq!(got, w, "the workload's token too");
        let got = crate::testing::block_on(only_new.provider("carol", &e.key))
            .unwrap()
            .unwrap();
        assert_eq!(got, e, "and the enterprise grant's secrets");
        let _ = std::fs::remove_file(&path);
    }

    /// An object written by the previous version (schema 3, secrets in
    /// plain text) upgrades itself: the migration adds its tables, the
    /// provider stays readable, and re-encryption seals it.
    #[test]
    fn a_database_of_the_previous_schema_upgrades_in_place() {
        use crate::store::sql::{SqlValue, MIGRATIONS};
        use crate::store::UserStore;
        let path = std::env::temp_dir().join(format!("idp-upgrade-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let p = crate::store::conformance::provider_with("https://old.example/api", "OLD-AT");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute("CREATE TABLE idp_schema (version INTEGER NOT NULL)", [])
                .unwrap();
            for (v, statements) in MIGRATIONS.iter().filter(|(v, _)| *v <= 3) {
                for st in *statements {
                    conn.execute(st, []).unwrap();
                }
                conn.execute("INSERT INTO idp_schema (version) VALUES (?1)", [v])
                    .unwrap();
            }
            // As version 3 wrote it: plain JSON, no sealing, no new fields.
            let mut doc = serde_json::to_value(&p).unwrap();
            doc["grant"].as_object_mut().unwrap().remove("rules");
            conn.execute(
                "INSERT INTO idp_providers (owner, key, data, updated_at) VALUES ('carol', ?1, ?2, 0)",
                [p.key.as_str(), &doc.to_string()],
            )
            .unwrap();
        }
        let keys = Keyring::parse("k1:HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4=").unwrap();
        let store = SqliteStore::open(&path).unwrap().with_keys(keys);
        let version = query(&store, "SELECT MAX(version) FROM idp_schema");
        assert_eq!(
            version,
            vec![vec![SqlValue::Integer(MIGRATIONS.last().unwrap().0)]]
        );
        let got = crate::testing::block_on(store.provider("carol", &p.key)).unwrap();
        assert_eq!(
            got.as_ref(),
            Some(&p),
            "the old row reads as it was written"
        );
        assert_eq!(store.reseal().unwrap(), 1, "and is sealed on re-encryption");
        drop(store);
        let bytes = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(String::from_utf8_lossy(&bytes).contains("idp-enc:2:k1:"));
    }

    /// A new database is the compact schema: 9 pages (one B-tree per table,
    /// no registry tables until the registry is used); one built by every
    /// migration since version 1 has the same tables, columns and keys once
    /// the registry's are made (in 20 pages).
    #[test]
    fn a_new_database_is_compact_and_matches_the_migrated_one() {
        use crate::store::sql::MIGRATIONS;
        let migrated = rusqlite::Connection::open_in_memory().unwrap();
        migrated
            .execute("CREATE TABLE idp_schema (version INTEGER NOT NULL)", [])
            .unwrap();
        for (v, statements) in MIGRATIONS {
            for st in *statements {
                migrated.execute(st, []).unwrap();
            }
            migrated
                .execute("INSERT INTO idp_schema (version) VALUES (?1)", [v])
                .unwrap();
        }
        let fresh = {
            let conn = std::sync::Mutex::new(rusqlite::Connection::open_in_memory().unwrap());
            migrate(&conn.lock().unwrap()).unwrap();
            conn.into_inner().unwrap()
        };
        let pages = |c: &rusqlite::Connection| -> i64 {
            c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap()
        };
        assert_eq!(pages(&fresh), 10);
        for st in crate::store::sql::REGISTRY_SCHEMA {
            fresh.execute(st, []).unwrap();
        }
        assert_eq!(pages(&fresh), 12);
        // 11 tables, 9 key indexes and the schema page.
        assert_eq!(pages(&migrated), 21);
        let shape = |c: &rusqlite::Connection| -> Vec<(String, String)> {
            let mut tables = c
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'idp_%' ORDER BY name")
                .unwrap();
            let names: Vec<String> = tables
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            names
                .into_iter()
                .map(|t| {
                    let mut cols = c
                        .prepare(&format!(
                            "SELECT name, type, \"notnull\", pk FROM pragma_table_info('{t}')"
                        ))
                        .unwrap();
                    let cols: Vec<String> = cols
                        .query_map([], |r| {
                            // A key is NOT NULL in a WITHOUT ROWID table
                            // (a rowid table's lone text key allows NULL,
                            // which no statement ever writes).
                            let pk = r.get::<_, i64>(3)?;
                            let not_null = pk > 0 || r.get::<_, i64>(2)? == 1;
                            Ok(format!(
                                "{} {} not_null={not_null} pk={pk}",
                                r.get::<_, String>(0)?,
                                r.get::<_, String>(1)?,
                            ))
                        })
                        .unwrap()
                        .map(Result::unwrap)
                        .collect();
                    (t, cols.join(", "))
                })
                .collect()
        };
        assert_eq!(shape(&fresh), shape(&migrated));
    }

    /// The registry's tables appear when the registry is first used; before
    /// that every statement about them still answers (empty, nothing to
    /// re-encrypt).
    #[test]
    fn registry_tables_are_made_on_first_use() {
        use crate::store::RegistryStore;
        let store = SqliteStore::open_in_memory().unwrap();
        let tables = |s: &SqliteStore| -> i64 {
            s.connection()
                .atomic()
                .run(
                    "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('idp_servers', 'idp_registrations')",
                    vec![],
                )
                .unwrap()[0][0]
                .as_integer()
                .unwrap()
        };
        assert_eq!(tables(&store), 0);
        assert_eq!(store.reseal().unwrap(), 0);
        assert_eq!(tables(&store), 0, "re-encrypting does not make them");
        assert!(store.known_issuers(10).unwrap().is_empty());
        assert_eq!(tables(&store), 2);
        let server = crate::store::conformance::server();
        crate::testing::block_on(store.put_server(&server.issuer, server.clone(), 7)).unwrap();
        assert_eq!(tables(&store), 2);
        assert!(
            store.known_issuers(10).unwrap().is_empty(),
            "a server that takes no metadata document is not listed"
        );
        let mut cimd = server.clone();
        cimd.issuer = "https://cimd.example".into();
        cimd.metadata.client_id_metadata_document_supported = true;
        let mut with_iss = cimd.clone();
        with_iss.issuer = "https://iss.example".into();
        with_iss
            .metadata
            .authorization_response_iss_parameter_supported = true;
        for (s, at) in [(&cimd, 8), (&with_iss, 9)] {
            crate::testing::block_on(store.put_server(&s.issuer, s.clone(), at)).unwrap();
        }
        let listed = |issuer: &str, iss| crate::registration::DocumentIssuer {
            issuer: issuer.into(),
            iss,
        };
        assert_eq!(
            store.known_issuers(10).unwrap(),
            vec![
                listed("https://iss.example", true),
                listed("https://cimd.example", false)
            ],
            "most recent first, with whether each promises iss"
        );
        assert_eq!(store.known_issuers(1).unwrap().len(), 1);
    }

    #[test]
    fn native_futures_are_send() {
        fn send<T: Send>(_: T) {}
        let idp = NativeIdp::new(crate::testing::settings());
        send(idp.authorization("alice", "https://api.example/v1"));
        send(idp.fetch("alice").get("https://api.example/v1"));
        let idp = NativeIdp::with_store(
            crate::testing::settings(),
            SqliteStore::open_in_memory().unwrap(),
        );
        send(idp.authorization("alice", "https://api.example/v1"));
    }
}
