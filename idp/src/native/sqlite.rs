//! [`SqliteStore`] (feature `sqlite`): the engine's SQL store on a SQLite
//! file through `rusqlite`.

use crate::error::{Error, Result, StorageCause, StorageError};
use crate::store::sql::{migrate, SqlConnection, SqlRun, SqlStore, SqlValue};

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
/// migrations the Workers Durable Object runs, through `rusqlite`.
///
/// ```
/// # async fn run() -> idp::Result<()> {
/// use idp::native::{NativeIdp, SqliteStore};
/// let store = SqliteStore::open_in_memory()?; // or SqliteStore::open("idp.sqlite")?
/// # let settings: idp::flow::Settings = unimplemented!();
/// let idp = NativeIdp::with_store(settings, store);
/// # Ok(()) }
/// ```
pub type SqliteStore = SqlStore<SqliteConnection>;

impl SqlStore<SqliteConnection> {
    /// Opens (or creates) the database at `path` and brings its schema up to
    /// date.
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let conn = rusqlite::Connection::open(path).map_err(|e| {
            Error::Storage(StorageError::with_source(
                StorageCause::Backend,
                format!("could not open SQLite at {}", path.display()),
                e,
            ))
        })?;
        Self::from_connection(conn)
    }

    /// A database in memory, for tests.
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

    fn from_connection(conn: rusqlite::Connection) -> Result<Self> {
        let conn = SqliteConnection(std::sync::Mutex::new(conn));
        migrate(&SqlConnection::atomic(&conn)).map_err(|e| {
            Error::storage(
                StorageCause::Backend,
                format!("schema migration failed: {e}"),
            )
        })?;
        Ok(Self::new(conn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::NativeIdp;

    #[test]
    fn the_sqlite_store_passes_the_store_contract() {
        let store = SqliteStore::open_in_memory().unwrap();
        crate::testing::block_on(crate::store::conformance::check(&store));
    }

    #[test]
    fn the_schema_migrates_once_and_survives_reopening() {
        let dir = std::env::temp_dir().join(format!("idp-sqlite-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let store = SqliteStore::open(&dir).unwrap();
        let p = crate::store::sql::text("x");
        assert_eq!(p, crate::store::sql::SqlValue::Text("x".into()));
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
        assert_eq!(
            rows,
            vec![vec![
                crate::store::sql::SqlValue::Integer(
                    i64::try_from(crate::store::sql::MIGRATIONS.len()).unwrap()
                ),
                crate::store::sql::SqlValue::Integer(last)
            ]]
        );
        let _ = std::fs::remove_file(&dir);
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
