//! [`PostgresStore`] (feature `postgres`): the engine's store on PostgreSQL,
//! for native programs that run as several processes (replicas behind a
//! load balancer) over one database.
//!
//! What the Durable Object gives one user's requests on Workers, the
//! database gives every process here:
//! - rows as the SQLite store keeps them ([`crate::store::sql`]): a JSON
//!   document per row, its secrets sealed with the same AES-256-GCM
//!   [`Sealing`] and the same key rotation ([`PostgresStore::reseal`]);
//! - compare-and-swap provider writes and single-use flows, each in a
//!   transaction that locks its row, so a login started by one process
//!   completes in another, once;
//! - one refresh per grant across processes ([`UserStore::exclusive`]): a
//!   transaction-scoped advisory lock, waited for at most
//!   [`PostgresStore::with_lock_wait`], released when the transaction ends
//!   or its connection drops (a process that dies releases it), and ended
//!   by the server if it is held idle longer than a token request can take;
//! - the grants due for a background refresh, claimed with
//!   `FOR UPDATE SKIP LOCKED` ([`RefreshQueue`]), so two processes never
//!   refresh the same one ([`crate::native::NativeIdp::refresh_due`]).
//!
//! Migrations are versioned, run on [`PostgresStore::connect`] under an
//! advisory lock, so processes that start together migrate once.

use crate::error::{Error, Result, StorageCause, StorageError};
use crate::matching::{candidates, ResourceKey};
use crate::store::seal::{Keyring, Random, Sealing};
use crate::store::sql::rows::{self, row_id, FLOW_SECRETS, PROVIDER_SECRETS, REGISTRATION_SECRETS};
use crate::store::sql::SqlValue;
use crate::store::{Due, Expect, FlowTake, Provider, Put, RefreshQueue, RegistryStore, UserStore};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use std::future::Future;
use std::time::Duration;

mod lock;
mod queue;
mod tables;
mod tls;

use tables::{flows, providers, registrations, sealed, servers};
/// The driver and pool crates, at the versions this store uses: build a
/// [`deadpool_postgres::Pool`] with your TLS connector for
/// [`PostgresStore::from_pool`].
pub use {deadpool_postgres, tokio_postgres};

/// The session setting [`PostgresStore::connect`] gives its connections:
/// each statement planned once. Give it to the connections of a pool of
/// your own ([`PostgresStore::from_pool`]) with
/// `tokio_postgres::Config::options`.
pub const GENERIC_PLANS: &str = "-c plan_cache_mode=force_generic_plan";

/// How long a refresh waits for another process's refresh of the same
/// grant by default: longer than one token request may take (30 s).
pub const LOCK_WAIT: Duration = Duration::from_secs(45);

/// The [`Store`](crate::store::Store) on PostgreSQL (feature `postgres`),
/// shared by any number of processes. See the [module docs](self).
///
/// ```no_run
/// # async fn run() -> idp::Result<()> {
/// use idp::native::{NativeIdp, PostgresStore};
/// let keys = idp::store::seal::Keyring::parse(&std::env::var("IDP_ENCRYPTION_KEYS").unwrap_or_default())?;
/// let store = PostgresStore::connect("postgresql://idp@127.0.0.1:5432/idp").await?.with_keys(keys);
/// # let settings: idp::flow::Settings = unimplemented!();
/// let idp = NativeIdp::with_store(settings, store);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    sealing: Sealing,
    lock_wait: Duration,
    lock_hold: Duration,
    /// The keep-alive of the refresh queue, in seconds.
    keep_alive: Option<u64>,
    /// The refresh locks this process holds: lock → the session holding it.
    holders: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<i64, i32>>>,
}

impl std::fmt::Debug for PostgresStore {
    // The pool's configuration holds the database password: not shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("sealed", &self.sealing.is_sealed())
            .field("lock_wait", &self.lock_wait)
            .field("lock_hold", &self.lock_hold)
            .finish_non_exhaustive()
    }
}

fn backend(context: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| {
        let what = match e.as_db_error() {
            Some(db) => format!(
                "{context}: PostgreSQL said {} ({})",
                db.message(),
                db.code().code()
            ),
            None => format!("{context}: {e}"),
        };
        Error::Storage(StorageError::with_source(StorageCause::Backend, what, e))
    }
}

fn unavailable(e: deadpool_postgres::PoolError) -> Error {
    // The causes its own text leaves out (a TLS handshake's says which
    // check of the certificate failed); the error itself follows.
    let shown = e.to_string();
    let mut deeper = Vec::new();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !shown.contains(&text) && !deeper.contains(&text) {
            deeper.push(text);
        }
        cause = c.source();
    }
    let what = match deeper.is_empty() {
        true => "could not get a PostgreSQL connection".to_owned(),
        false => format!(
            "could not get a PostgreSQL connection ({})",
            deeper.join(": ")
        ),
    };
    Error::Storage(StorageError::with_source(
        StorageCause::Unavailable,
        what,
        e,
    ))
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn uint(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// When a provider is next due for a background refresh.
fn due_of(p: &Provider, keep_alive: Option<u64>) -> Option<i64> {
    p.refresh_due_with(keep_alive).map(int)
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgresql://` URL or
    /// `key=value` string, as libpq takes), and brings its schema up to
    /// date. With `sslmode=require`, `verify-ca` or `verify-full` it
    /// connects over TLS only, checking the server's certificate and host
    /// name against the roots in the PEM file `sslrootcert` names, or the
    /// Web PKI's without one; with `disable`, `prefer` or no `sslmode`, in plain text (for
    /// a database on the same machine or network). For other TLS settings,
    /// build the pool with your connector and use
    /// [`PostgresStore::from_pool`].
    pub async fn connect(url: &str) -> Result<Self> {
        let (url, wish) = tls::split(url)?;
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            Error::Storage(StorageError::with_source(
                StorageCause::Backend,
                "the PostgreSQL connection string is not valid",
                e,
            ))
        })?;
        // Every statement here is a key lookup whose best plan does not
        // depend on the values: planned once per connection, instead of on
        // every call (a text array's generic plan is costed above its
        // custom plans, so the lookup by URL would be planned each time:
        // half its time on loopback).
        let options = match config.get_options() {
            Some(o) => format!("{o} {GENERIC_PLANS}"),
            None => GENERIC_PLANS.to_owned(),
        };
        config.options(&options);
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls::connector(config.get_ssl_mode(), &wish)? {
            Some(tls) => Manager::from_config(config, tls, manager_config),
            None => Manager::from_config(config, tokio_postgres::NoTls, manager_config),
        };
        // The most recently used connection first: under light load one
        // warm backend answers, instead of every idle one in turn.
        let pool = Pool::builder(manager)
            .max_size(16)
            .queue_mode(deadpool_postgres::QueueMode::Lifo)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| Error::storage(StorageCause::Backend, format!("PostgreSQL pool: {e}")))?;
        Self::from_pool(pool).await
    }

    /// A store over your own pool (TLS, sizes, timeouts), whose schema this
    /// brings up to date. Give its connections [`GENERIC_PLANS`] for the
    /// fastest lookups.
    pub async fn from_pool(pool: Pool) -> Result<Self> {
        let store = Self {
            pool,
            sealing: Sealing::refuse_native(),
            lock_wait: LOCK_WAIT,
            lock_hold: LOCK_WAIT,
            holders: Default::default(),
            keep_alive: None,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Seals secrets at rest with `keys` (the first encrypts; see
    /// [`crate::store::seal`]), exactly as [`crate::native::SqliteStore`]
    /// does. Without keys a write of a secret fails (tokens are not kept in
    /// the database in plain text), unless [`plaintext`](Self::plaintext)
    /// says so.
    pub fn with_keys(self, keys: Keyring) -> Self {
        let random: Random = |buf| getrandom::fill(buf).map_err(|e| e.to_string());
        Self {
            sealing: Sealing::keyring(keys, random),
            ..self
        }
    }

    /// Schedules each grant's background refresh no later than `every`
    /// after its tokens were issued, for servers that expire refresh
    /// tokens left idle (as `IDP_REFRESH_KEEPALIVE_DAYS` on Workers).
    pub fn with_keep_alive(self, every: Duration) -> Self {
        Self {
            keep_alive: Some(every.as_secs()),
            ..self
        }
    }

    /// Keeps secrets in plain text in the database: for local development
    /// only, said explicitly.
    pub fn plaintext(self) -> Self {
        Self {
            sealing: Sealing::plaintext(),
            ..self
        }
    }

    /// How long a refresh waits for another process's refresh of the same
    /// grant ([`LOCK_WAIT`] by default); then it fails with
    /// [`StorageCause::Unavailable`]. At least a millisecond: PostgreSQL
    /// reads a `lock_timeout` of 0 as "wait forever", so less is refused.
    pub fn with_lock_wait(self, wait: Duration) -> Result<Self> {
        Ok(Self {
            lock_wait: lock::at_least_a_millisecond("the lock wait", wait)?,
            ..self
        })
    }

    /// How long a refresh may hold its grant's lock with nothing happening
    /// on its connection ([`LOCK_WAIT`] by default, longer than the 30 s a
    /// token request may take): then the database ends its session, and the
    /// lock with it, so a process stuck in a refresh cannot keep a grant
    /// from every other. A process that lost its lock that way does not send
    /// the refresh token it read if another process has rotated it since
    /// ([`UserStore::still_current`]). At least a millisecond, as
    /// PostgreSQL reads 0 as "never".
    pub fn with_lock_hold(self, hold: Duration) -> Result<Self> {
        Ok(Self {
            lock_hold: lock::at_least_a_millisecond("the lock hold", hold)?,
            ..self
        })
    }

    /// The connection pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    fn holders(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<i64, i32>> {
        self.holders.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn client(&self) -> Result<Object> {
        self.pool.get().await.map_err(unavailable)
    }

    /// Applies the migrations the database has not had, under an advisory
    /// lock; the schema version afterwards.
    async fn migrate(&self) -> Result<i64> {
        let fail = backend("migrating the schema");
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(&fail)?;
        tx.execute(tables::schema::LOCK, &[&tables::MIGRATION_LOCK])
            .await
            .map_err(&fail)?;
        tx.batch_execute(tables::schema::CREATE)
            .await
            .map_err(&fail)?;
        let row = tx
            .query_one(tables::schema::VERSION, &[])
            .await
            .map_err(&fail)?;
        let current: i64 = row.get(0);
        let mut version = current;
        for (v, statements) in tables::MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            for statement in *statements {
                tx.batch_execute(statement).await.map_err(&fail)?;
            }
            tx.execute(tables::schema::PUT, &[v]).await.map_err(&fail)?;
            version = *v;
        }
        tx.commit().await.map_err(&fail)?;
        Ok(version)
    }

    /// The schema version of the database.
    pub async fn schema_version(&self) -> Result<i64> {
        let c = self.client().await?;
        let row = c
            .query_one(tables::schema::VERSION, &[])
            .await
            .map_err(backend("reading the schema version"))?;
        Ok(row.get(0))
    }

    /// Seals again every row whose secrets are in plain text or under an
    /// older key than the current one (rows whose secrets cannot be opened
    /// are left as they are), one table per transaction. Returns how many
    /// rows were rewritten.
    pub async fn reseal(&self) -> Result<usize> {
        let fail = backend("re-encrypting");
        let mut rewritten = 0;
        let mut c = self.client().await?;
        for (table, keys, paths) in rows::SEALED_TABLES {
            let tx = c.transaction().await.map_err(&fail)?;
            let found = tx
                .query(&sealed::every_row(table, keys), &[])
                .await
                .map_err(&fail)?;
            let rewrite = sealed::rewrite(table, keys);
            for row in found {
                let ids: Vec<String> = (0..keys.len()).map(|i| row.get(i)).collect();
                let data = SqlValue::Text(row.get(keys.len()));
                let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                let id = row_id(table, &id_refs);
                let Some(sealed) = rows::resealed(&self.sealing, &data, &id, paths)? else {
                    continue;
                };
                let mut args: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&sealed];
                args.extend(
                    ids.iter()
                        .map(|s| s as &(dyn tokio_postgres::types::ToSql + Sync)),
                );
                tx.execute(&rewrite, &args).await.map_err(&fail)?;
                rewritten += 1;
            }
            tx.commit().await.map_err(&fail)?;
        }
        Ok(rewritten)
    }

    fn provider_of(&self, owner: &str, key: &str, data: String) -> Result<Provider> {
        rows::provider(&self.sealing, owner, key, &SqlValue::Text(data))
    }

    async fn one(
        &self,
        statement: &str,
        args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<tokio_postgres::Row>> {
        let c = self.client().await?;
        let st = c
            .prepare_cached(statement)
            .await
            .map_err(backend("preparing a statement"))?;
        c.query_opt(&st, args).await.map_err(backend("reading"))
    }

    async fn run(
        &self,
        statement: &str,
        args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64> {
        let c = self.client().await?;
        let st = c
            .prepare_cached(statement)
            .await
            .map_err(backend("preparing a statement"))?;
        c.execute(&st, args).await.map_err(backend("writing"))
    }
}

impl UserStore for PostgresStore {
    async fn put_flow(&self, flow: crate::authorize::PendingFlow) -> Result<()> {
        let id = row_id("idp_flows", &[flow.state.secret()]);
        let data = rows::encode(&self.sealing, &flow, &id, FLOW_SECRETS)?;
        // Expired flows are dropped whenever a new one is stored.
        let expired_before = flow
            .created_at
            .saturating_sub(crate::authorize::FLOW_LIFETIME_SECS);
        self.run(flows::EXPIRE, &[&int(expired_before)]).await?;
        self.run(
            flows::PUT,
            &[
                &flow.state.secret(),
                &flow.owner,
                &data,
                &int(flow.created_at),
            ],
        )
        .await
        .map(drop)
    }

    async fn take_flow(&self, state: &str, owner: &str, redirect_uri: &str) -> Result<FlowTake> {
        let fail = backend("taking a flow");
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(&fail)?;
        let Some(row) = tx
            .query_opt(flows::LOCK, &[&state, &owner])
            .await
            .map_err(&fail)?
        else {
            return Ok(FlowTake::Missing);
        };
        let flow = rows::flow(&self.sealing, state, &SqlValue::Text(row.get(0)))?;
        if flow.redirect_uri.as_str() != redirect_uri {
            return Ok(FlowTake::OtherCallback);
        }
        // Locked above, so this process spends it; counted all the same.
        if tx.execute(flows::DELETE, &[&state]).await.map_err(&fail)? == 0 {
            return Ok(FlowTake::Missing);
        }
        tx.commit().await.map_err(&fail)?;
        Ok(FlowTake::Taken(Box::new(flow)))
    }

    async fn put_provider(
        &self,
        owner: &str,
        provider: Provider,
        expected: Expect<'_>,
    ) -> Result<Put> {
        let fail = backend("storing a provider");
        let key = provider.key.as_str();
        let id = row_id("idp_providers", &[owner, key]);
        let data = rows::encode(&self.sealing, &provider, &id, PROVIDER_SECRETS)?;
        let due = due_of(&provider, self.keep_alive);
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(&fail)?;
        let current = match tx
            .query_opt(providers::LOCK, &[&owner, &key])
            .await
            .map_err(&fail)?
        {
            Some(row) => Some(self.provider_of(owner, key, row.get(0))?),
            None => None,
        };
        // Compared decoded, not as text: sealing uses fresh nonces.
        let as_expected = match expected {
            Expect::Nothing => current.is_none(),
            Expect::Exactly(e) => current.as_ref() == Some(e),
        };
        if !as_expected {
            return Ok(Put::Conflict(current.map(Box::new)));
        }
        let args: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
            [&owner, &key, &data, &int(provider.created_at), &due];
        if current.is_some() {
            tx.execute(providers::UPDATE, &args).await.map_err(&fail)?;
        } else if tx.execute(providers::INSERT, &args).await.map_err(&fail)? == 0 {
            // Another process wrote it between our read and our insert.
            let now = tx
                .query_opt(providers::GET, &[&owner, &key])
                .await
                .map_err(&fail)?;
            let now = now
                .map(|r| self.provider_of(owner, key, r.get(0)))
                .transpose()?;
            return Ok(Put::Conflict(now.map(Box::new)));
        }
        tx.commit().await.map_err(&fail)?;
        Ok(Put::Written)
    }

    async fn provider(&self, owner: &str, key: &ResourceKey) -> Result<Option<Provider>> {
        let row = self.one(providers::GET, &[&owner, &key.as_str()]).await?;
        row.map(|r| self.provider_of(owner, key.as_str(), r.get(0)))
            .transpose()
    }

    async fn provider_for(&self, owner: &str, url: &ResourceKey) -> Result<Option<Provider>> {
        let keys: Vec<String> = candidates(url)
            .iter()
            .map(|k| k.as_str().to_owned())
            .collect();
        let row = self.one(providers::LONGEST, &[&owner, &keys]).await?;
        row.map(|r| self.provider_of(owner, r.get::<_, &str>(0), r.get(1)))
            .transpose()
    }

    async fn providers(&self, owner: &str) -> Result<Vec<Provider>> {
        self.providers_page(owner, None, usize::MAX).await
    }

    async fn providers_page(
        &self,
        owner: &str,
        after: Option<&ResourceKey>,
        limit: usize,
    ) -> Result<Vec<Provider>> {
        let after = after.map(ResourceKey::as_str).unwrap_or("");
        let c = self.client().await?;
        let st = c
            .prepare_cached(providers::PAGE)
            .await
            .map_err(backend("preparing a statement"))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let found = c
            .query(&st, &[&owner, &after, &limit])
            .await
            .map_err(backend("listing providers"))?;
        found
            .into_iter()
            .map(|r| self.provider_of(owner, r.get::<_, &str>(0), r.get(1)))
            .collect()
    }

    async fn remove_provider(&self, owner: &str, key: &ResourceKey) -> Result<Option<Provider>> {
        let c = self.client().await?;
        let row = c
            .query_opt(providers::DELETE, &[&owner, &key.as_str()])
            .await
            .map_err(backend("removing a provider"))?;
        row.map(|r| self.provider_of(owner, key.as_str(), r.get(0)))
            .transpose()
    }
    fn exclusive<T>(
        &self,
        owner: &str,
        key: &ResourceKey,
        refresh: impl Future<Output = T>,
    ) -> impl Future<Output = Result<T>> {
        lock::exclusive(self, lock::grant_lock(owner, key), refresh)
    }

    async fn still_current(
        &self,
        owner: &str,
        key: &ResourceKey,
        refresh_token: &crate::secret::RefreshToken,
    ) -> Result<()> {
        lock::still_current(self, owner, key, refresh_token).await
    }
}
