//! The object's [`Store`]: the engine's [`SqlStore`] on the Durable Object's
//! SQLite, forwarding registrations and server metadata to the registry
//! object.

use super::super::client::call_registry;
use super::super::http::now;
use super::super::protocol::{
    RegistrationGet, RegistrationPut, RegistrationRemove, RegistryOp, ServerGet, ServerPut,
};
use crate::authorize::PendingFlow;
use crate::discovery::AuthorizationServer;
use crate::error::{Error, Result, StorageCause};
use crate::matching::ResourceKey;
use crate::registration::Registration;
use crate::store::sql::tables;
use crate::store::sql::{secs, text, SqlConnection, SqlRun, SqlStore, SqlValue};
use crate::store::{Expect, FlowTake, Provider, Put, RegistryStore, UserStore};
use worker::{Env, SqlStorage, SqlStorageValue};

/// How many writes one user's logins may make to the deployment-wide
/// registry in an hour (server metadata, client registrations): one user
/// cannot fill the client ID metadata document with servers of their own,
/// or make the app register again and again at an honest server by varying
/// `scope`.
pub const REGISTRY_WRITES_PER_HOUR: u32 = 30;

/// How long a confirmation page's token can be used: 10 minutes.
pub(super) const CONFIRMATION_LIFETIME_SECS: u64 = 600;

impl SqlRun for &SqlStorage {
    fn run(&self, statement: &str, args: Vec<SqlValue>) -> Result<Vec<Vec<SqlValue>>, String> {
        let args = args
            .into_iter()
            .map(|v| match v {
                SqlValue::Null => SqlStorageValue::Null,
                SqlValue::Integer(i) => SqlStorageValue::from(i),
                SqlValue::Real(f) => SqlStorageValue::Float(f),
                SqlValue::Text(s) => SqlStorageValue::from(s),
            })
            .collect::<Vec<_>>();
        let cursor = self.exec(statement, args).map_err(|e| e.to_string())?;
        cursor
            .raw()
            .map(|row| {
                row.map_err(|e| e.to_string()).map(|values| {
                    values
                        .into_iter()
                        .map(|v| match v {
                            SqlStorageValue::Integer(i) => SqlValue::Integer(i),
                            SqlStorageValue::Float(f) => SqlValue::Real(f),
                            SqlStorageValue::String(s) => SqlValue::Text(s),
                            SqlStorageValue::Boolean(b) => SqlValue::Integer(i64::from(b)),
                            _ => SqlValue::Null,
                        })
                        .collect()
                })
            })
            .collect()
    }
}

/// The object runs one event at a time, and a section with no `.await` is
/// not interleaved with anything: statements need no lock.
impl SqlConnection for SqlStorage {
    type Atomic<'a> = &'a SqlStorage;
    fn atomic(&self) -> &SqlStorage {
        self
    }
}

/// Which role an object plays: a user's, whose registrations and server
/// metadata live in the registry object, or the deployment's registry, which
/// keeps them itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role<'a> {
    /// A user's object; `registry` is the registry object's binding.
    User {
        /// The binding.
        registry: &'a str,
    },
    /// The registry object (also what an object that serves only its own
    /// tables is).
    Registry,
}

impl<'a> Role<'a> {
    /// The role an internal call names: a user's object when it carries
    /// the registry's binding.
    pub(crate) fn of(registry: Option<&'a str>) -> Self {
        registry.map_or(Role::Registry, |registry| Role::User { registry })
    }
}

/// A [`Store`] over the object's SQLite, as its [`Role`] says: a user's
/// object forwards registrations and server metadata to the registry object.
pub(super) struct ObjectStore<'a> {
    pub(super) sql: SqlStore<SqlStorage>,
    pub(super) env: &'a Env,
    pub(super) role: Role<'a>,
}

impl ObjectStore<'_> {
    async fn registry_call<O: RegistryOp>(&self, binding: &str, op: O) -> Result<O::Reply> {
        call_registry(self.env, binding, op).await.map_err(|e| {
            // The registry's own report already says "storage failed".
            let reason = e
                .message
                .strip_prefix("storage failed: ")
                .unwrap_or(&e.message);
            Error::storage(
                StorageCause::Unavailable,
                format!("in the registry object: {reason}"),
            )
        })
    }

    /// Runs a statement and returns its rows.
    pub(super) fn rows(&self, statement: &str, args: Vec<SqlValue>) -> Result<Vec<Vec<SqlValue>>> {
        self.sql
            .connection()
            .atomic()
            .run(statement, args)
            .map_err(|e| Error::storage(StorageCause::Backend, format!("SQL: {e}")))
    }

    /// Spends a confirmation token: it must exist for `owner` and be younger
    /// than 10 minutes; it is deleted either way.
    /// Counts one write to the registry against this user's hourly
    /// allowance ([`REGISTRY_WRITES_PER_HOUR`], kept in `idp_meta`), or
    /// refuses it.
    fn count_registry_write(&self, what: &str) -> Result<()> {
        let now = now();
        let window = now - now % 3600;
        let rows = self.rows(tables::meta::GET, vec![text("registry_writes")])?;
        let (start, count) = rows
            .first()
            .and_then(|r| r.first()?.as_text().map(str::to_owned))
            .and_then(|v| {
                let (a, b) = v.split_once(' ')?;
                Some((a.parse::<u64>().ok()?, b.parse::<u32>().ok()?))
            })
            .unwrap_or((window, 0));
        let count = if start == window { count } else { 0 };
        if count >= REGISTRY_WRITES_PER_HOUR {
            return Err(Error::RateLimited {
                what: format!("this user's logins made too many {what} and other registry writes"),
                limit: REGISTRY_WRITES_PER_HOUR,
                retry_after_secs: window + 3600 - now,
            });
        }
        self.rows(
            tables::meta::PUT,
            vec![
                text("registry_writes"),
                text(&format!("{window} {}", count + 1)),
            ],
        )?;
        Ok(())
    }

    pub(super) fn spend_confirmation(&self, token: &str, owner: &str) -> Result<()> {
        let rows = self.rows(tables::confirmations::GET, vec![text(token), text(owner)])?;
        self.sql
            .exec(tables::confirmations::DELETE, vec![text(token)])?;
        let fresh = rows
            .first()
            .and_then(|r| r.first())
            .and_then(SqlValue::as_integer)
            .and_then(|t| u64::try_from(t).ok())
            .is_some_and(|t| now() < t.saturating_add(CONFIRMATION_LIFETIME_SECS));
        if fresh {
            Ok(())
        } else {
            Err(Error::Confirmation)
        }
    }

    /// Keeps a confirmation token for `owner`, dropping expired ones.
    pub(super) fn put_confirmation(&self, token: &str, owner: &str) -> Result<()> {
        self.sql.exec(
            tables::confirmations::EXPIRE,
            vec![secs(now().saturating_sub(CONFIRMATION_LIFETIME_SECS))],
        )?;
        self.sql.exec(
            tables::confirmations::PUT,
            vec![text(token), text(owner), secs(now())],
        )
    }
}

impl UserStore for ObjectStore<'_> {
    async fn put_flow(&self, flow: PendingFlow) -> Result<()> {
        self.sql.put_flow(flow).await
    }

    async fn take_flow(&self, state: &str, owner: &str, redirect_uri: &str) -> Result<FlowTake> {
        self.sql.take_flow(state, owner, redirect_uri).await
    }

    async fn put_provider(
        &self,
        owner: &str,
        provider: Provider,
        expected: Expect<'_>,
    ) -> Result<Put> {
        self.sql.put_provider(owner, provider, expected).await
    }

    async fn provider(&self, owner: &str, key: &ResourceKey) -> Result<Option<Provider>> {
        self.sql.provider(owner, key).await
    }

    async fn provider_for(&self, owner: &str, url: &ResourceKey) -> Result<Option<Provider>> {
        self.sql.provider_for(owner, url).await
    }

    async fn providers(&self, owner: &str) -> Result<Vec<Provider>> {
        self.sql.providers(owner).await
    }

    async fn providers_page(
        &self,
        owner: &str,
        after: Option<&ResourceKey>,
        limit: usize,
    ) -> Result<Vec<Provider>> {
        self.sql.providers_page(owner, after, limit).await
    }

    async fn remove_provider(&self, owner: &str, key: &ResourceKey) -> Result<Option<Provider>> {
        self.sql.remove_provider(owner, key).await
    }
}

impl RegistryStore for ObjectStore<'_> {
    async fn registration(&self, issuer: &str, redirect_uri: &str) -> Result<Option<Registration>> {
        match self.role {
            Role::User { registry: b } => {
                let (issuer, redirect_uri) = (issuer.into(), redirect_uri.into());
                self.registry_call(
                    b,
                    RegistrationGet {
                        issuer,
                        redirect_uri,
                    },
                )
                .await
            }
            Role::Registry => self.sql.registration(issuer, redirect_uri).await,
        }
    }

    async fn put_registration(&self, registration: Registration) -> Result<()> {
        match self.role {
            Role::User { registry: b } => {
                self.count_registry_write("client registrations")?;
                self.registry_call(b, RegistrationPut { registration })
                    .await
            }
            Role::Registry => self.sql.put_registration(registration).await,
        }
    }

    async fn remove_registration(&self, issuer: &str, redirect_uri: &str) -> Result<()> {
        match self.role {
            Role::User { registry: b } => {
                let (issuer, redirect_uri) = (issuer.into(), redirect_uri.into());
                self.registry_call(
                    b,
                    RegistrationRemove {
                        issuer,
                        redirect_uri,
                    },
                )
                .await
            }
            Role::Registry => self.sql.remove_registration(issuer, redirect_uri).await,
        }
    }

    async fn server(&self, issuer: &str) -> Result<Option<(AuthorizationServer, u64)>> {
        match self.role {
            Role::User { registry: b } => {
                let issuer = issuer.into();
                self.registry_call(b, ServerGet { issuer }).await
            }
            Role::Registry => self.sql.server(issuer).await,
        }
    }

    async fn put_server(
        &self,
        issuer: &str,
        server: AuthorizationServer,
        fetched_at: u64,
    ) -> Result<()> {
        match self.role {
            Role::User { registry: b } => {
                self.count_registry_write("new authorization server metadata")?;
                let (issuer, server) = (issuer.into(), Box::new(server));
                self.registry_call(
                    b,
                    ServerPut {
                        issuer,
                        server,
                        fetched_at,
                    },
                )
                .await
            }
            Role::Registry => self.sql.put_server(issuer, server, fetched_at).await,
        }
    }
}
