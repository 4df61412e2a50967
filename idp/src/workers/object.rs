//! The `OAuthProviders` Durable Object: one per user, owning that user's
//! providers, pending flows and tokens in SQLite; one more, the registry,
//! holding the deployment's client registrations and server metadata.

use super::hook::{Connected, OnAuthSuccess, ProviderInfo};
use super::http::{entropy, now, random_bytes, WorkerHttp};
use super::protocol::{
    fingerprint, AuthorizationReply, Call, CallbackReply, Envelope, LoginReply, McpSessionState,
    ProviderView, RefreshOutcome, RemoteError, RemoveOutcome, Reply, INTERNAL_URL,
};
use crate::authorize::PendingFlow;
use crate::discovery::AuthorizationServer;
use crate::error::{Error, Result};
use crate::flow::{self, LoginStart, RefreshReason};
use crate::matching::{candidates, ResourceKey};
use crate::registration::Registration;
use crate::store::{FlowTake, Provider, Store};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use worker::{Env, Request, Response, SqlStorage, SqlStorageValue, State};

/// The name of the object that holds deployment-wide registrations.
pub(crate) const REGISTRY_NAME: &str = "idp:v1:registry";

/// The name of a user's object: a versioned prefix and the user id.
pub(crate) fn user_object_name(user_id: &str) -> String {
    format!("idp:v1:user:{user_id}")
}

/// Additive, versioned schema migrations, applied in order on object start.
const MIGRATIONS: &[(i64, &[&str])] = &[
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

/// How long a confirmation page's token can be used: 10 minutes.
const CONFIRMATION_LIFETIME_SECS: u64 = 600;

#[derive(Deserialize)]
struct VersionRow {
    version: Option<i64>,
}

fn migrate(sql: &SqlStorage) -> worker::Result<i64> {
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

fn storage_err(e: impl std::fmt::Display) -> Error {
    Error::Storage(e.to_string())
}

fn secs(t: u64) -> SqlStorageValue {
    SqlStorageValue::from(i64::try_from(t).unwrap_or(i64::MAX))
}

fn text(s: &str) -> SqlStorageValue {
    SqlStorageValue::from(s.to_owned())
}

#[derive(Deserialize)]
struct DataRow {
    data: String,
}

#[derive(Deserialize)]
struct ServerRow {
    data: String,
    fetched_at: i64,
}

/// A [`Store`] over the object's SQLite. Registrations and server metadata go
/// to the registry object when `registry` names the binding; locally otherwise
/// (that is, in the registry itself).
struct SqlStore<'a> {
    sql: SqlStorage,
    env: &'a Env,
    registry: Option<&'a str>,
}

impl SqlStore<'_> {
    fn rows<T: DeserializeOwned>(&self, query: &str, args: Vec<SqlStorageValue>) -> Result<Vec<T>> {
        self.sql
            .exec(query, args)
            .and_then(|c| c.to_array::<T>())
            .map_err(storage_err)
    }

    fn exec(&self, query: &str, args: Vec<SqlStorageValue>) -> Result<()> {
        self.sql.exec(query, args).map(|_| ()).map_err(storage_err)
    }

    fn first_data<T: DeserializeOwned>(
        &self,
        query: &str,
        args: Vec<SqlStorageValue>,
    ) -> Result<Option<T>> {
        match self.rows::<DataRow>(query, args)?.into_iter().next() {
            Some(row) => serde_json::from_str(&row.data)
                .map(Some)
                .map_err(storage_err),
            None => Ok(None),
        }
    }

    async fn registry_call<T: DeserializeOwned>(&self, binding: &str, call: Call) -> Result<T> {
        call_object(self.env, binding, REGISTRY_NAME, None, call)
            .await
            .map_err(|e| Error::Storage(format!("registry: {e}")))
    }
}

fn json(value: &impl Serialize) -> Result<SqlStorageValue> {
    serde_json::to_string(value)
        .map(SqlStorageValue::from)
        .map_err(storage_err)
}

impl SqlStore<'_> {
    /// Spends a confirmation token: it must exist for `owner` and be younger
    /// than 10 minutes; it is deleted either way.
    fn spend_confirmation(&self, token: &str, owner: &str) -> Result<()> {
        #[derive(Deserialize)]
        struct Row {
            created_at: i64,
        }
        let rows: Vec<Row> = self.rows(
            "SELECT created_at FROM idp_confirmations WHERE token = ? AND owner = ?",
            vec![text(token), text(owner)],
        )?;
        self.exec(
            "DELETE FROM idp_confirmations WHERE token = ?",
            vec![text(token)],
        )?;
        let fresh = rows.first().is_some_and(|r| {
            u64::try_from(r.created_at)
                .is_ok_and(|t| now() < t.saturating_add(CONFIRMATION_LIFETIME_SECS))
        });
        if fresh {
            Ok(())
        } else {
            Err(Error::Confirmation)
        }
    }
}

impl Store for SqlStore<'_> {
    async fn put_flow(&self, flow: PendingFlow) -> Result<()> {
        // Expired flows are dropped whenever a new one is stored.
        self.exec(
            "DELETE FROM idp_flows WHERE created_at < ?",
            vec![secs(
                now().saturating_sub(crate::authorize::FLOW_LIFETIME_SECS),
            )],
        )?;
        self.exec(
            "INSERT OR REPLACE INTO idp_flows (state, owner, data, created_at) VALUES (?, ?, ?, ?)",
            vec![
                text(flow.state.secret()),
                text(&flow.owner),
                json(&flow)?,
                secs(flow.created_at),
            ],
        )
    }

    async fn take_flow(&self, state: &str, owner: &str, redirect_uri: &str) -> Result<FlowTake> {
        let flow: Option<PendingFlow> = self.first_data(
            "SELECT data FROM idp_flows WHERE state = ? AND owner = ?",
            vec![text(state), text(owner)],
        )?;
        Ok(match flow {
            None => FlowTake::Missing,
            Some(f) if f.redirect_uri.as_str() != redirect_uri => FlowTake::OtherCallback,
            Some(f) => {
                self.exec("DELETE FROM idp_flows WHERE state = ?", vec![text(state)])?;
                FlowTake::Taken(Box::new(f))
            }
        })
    }

    async fn registration(&self, issuer: &str, redirect_uri: &str) -> Result<Option<Registration>> {
        if let Some(b) = self.registry {
            return self
                .registry_call(
                    b,
                    Call::RegistrationGet {
                        issuer: issuer.into(),
                        redirect_uri: redirect_uri.into(),
                    },
                )
                .await;
        }
        self.first_data(
            "SELECT data FROM idp_registrations WHERE issuer = ? AND redirect_uri = ?",
            vec![text(issuer), text(redirect_uri)],
        )
    }

    async fn put_registration(&self, registration: Registration) -> Result<()> {
        if let Some(b) = self.registry {
            return self
                .registry_call(b, Call::RegistrationPut { registration })
                .await;
        }
        self.exec(
            "INSERT OR REPLACE INTO idp_registrations (issuer, redirect_uri, data) VALUES (?, ?, ?)",
            vec![text(&registration.issuer), text(&registration.redirect_uri), json(&registration)?],
        )
    }

    async fn remove_registration(&self, issuer: &str, redirect_uri: &str) -> Result<()> {
        if let Some(b) = self.registry {
            return self
                .registry_call(
                    b,
                    Call::RegistrationRemove {
                        issuer: issuer.into(),
                        redirect_uri: redirect_uri.into(),
                    },
                )
                .await;
        }
        self.exec(
            "DELETE FROM idp_registrations WHERE issuer = ? AND redirect_uri = ?",
            vec![text(issuer), text(redirect_uri)],
        )
    }

    async fn server(&self, issuer: &str) -> Result<Option<(AuthorizationServer, u64)>> {
        if let Some(b) = self.registry {
            return self
                .registry_call(
                    b,
                    Call::ServerGet {
                        issuer: issuer.into(),
                    },
                )
                .await;
        }
        let rows: Vec<ServerRow> = self.rows(
            "SELECT data, fetched_at FROM idp_servers WHERE issuer = ?",
            vec![text(issuer)],
        )?;
        match rows.into_iter().next() {
            Some(r) => {
                let server = serde_json::from_str(&r.data).map_err(storage_err)?;
                Ok(Some((server, u64::try_from(r.fetched_at).unwrap_or(0))))
            }
            None => Ok(None),
        }
    }

    async fn put_server(
        &self,
        issuer: &str,
        server: AuthorizationServer,
        fetched_at: u64,
    ) -> Result<()> {
        if let Some(b) = self.registry {
            return self
                .registry_call(
                    b,
                    Call::ServerPut {
                        issuer: issuer.into(),
                        server: Box::new(server),
                        fetched_at,
                    },
                )
                .await;
        }
        self.exec(
            "INSERT OR REPLACE INTO idp_servers (issuer, data, fetched_at) VALUES (?, ?, ?)",
            vec![text(issuer), json(&server)?, secs(fetched_at)],
        )
    }

    async fn put_provider(&self, owner: &str, provider: Provider) -> Result<()> {
        self.exec(
            "INSERT OR REPLACE INTO idp_providers (owner, key, data, updated_at) VALUES (?, ?, ?, ?)",
            vec![text(owner), text(provider.key.as_str()), json(&provider)?, secs(now())],
        )
    }

    async fn provider(&self, owner: &str, key: &ResourceKey) -> Result<Option<Provider>> {
        self.first_data(
            "SELECT data FROM idp_providers WHERE owner = ? AND key = ?",
            vec![text(owner), text(key.as_str())],
        )
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
        self.rows::<DataRow>(
            "SELECT data FROM idp_providers WHERE owner = ? ORDER BY key",
            vec![text(owner)],
        )?
        .into_iter()
        .map(|r| serde_json::from_str(&r.data).map_err(storage_err))
        .collect()
    }

    async fn remove_provider(&self, owner: &str, key: &ResourceKey) -> Result<Option<Provider>> {
        let p = self.provider(owner, key).await?;
        if p.is_some() {
            self.exec(
                "DELETE FROM idp_providers WHERE owner = ? AND key = ?",
                vec![text(owner), text(key.as_str())],
            )?;
        }
        Ok(p)
    }
}

/// Sends one internal call to the object `name` of `binding` and reads its
/// reply. Calls to a user's object carry the binding so it can reach the
/// registry; calls to the registry do not.
pub(crate) async fn call_object<T: DeserializeOwned>(
    env: &Env,
    binding: &str,
    name: &str,
    timeout_ms: Option<u32>,
    call: Call,
) -> std::result::Result<T, RemoteError> {
    let runtime = |e: worker::Error| RemoteError {
        code: "runtime".into(),
        message: format!("could not reach the {binding} Durable Object: {e}"),
        reauthorize: false,
        retryable: true,
        status: 500,
    };
    let envelope = Envelope {
        registry: (name != REGISTRY_NAME).then(|| binding.to_owned()),
        timeout_ms,
        call,
    };
    let stub = env
        .durable_object(binding)
        .and_then(|ns| ns.id_from_name(name).and_then(|id| id.get_stub()))
        .map_err(runtime)?;
    let body = serde_json::to_string(&envelope)
        .map_err(|e| runtime(worker::Error::RustError(e.to_string())))?;
    let mut init = worker::RequestInit::new();
    init.with_method(worker::Method::Post)
        .with_body(Some(body.into()));
    let req = Request::new_with_init(INTERNAL_URL, &init).map_err(runtime)?;
    let mut resp = stub.fetch_with_request(req).await.map_err(runtime)?;
    match resp.json::<Reply<T>>().await.map_err(runtime)? {
        Reply::Ok(v) => Ok(v),
        Reply::Err(e) => Err(e),
    }
}

/// The Durable Object's behaviour. Declare the class in your Worker (the
/// `#[idp_worker]` macro does this for you) and forward to it:
///
/// ```ignore
/// #[durable_object]
/// pub struct OAuthProviders(idp::workers::ProvidersObject<MyHook>);
///
/// impl DurableObject for OAuthProviders {
///     fn new(state: State, env: Env) -> Self {
///         Self(idp::workers::ProvidersObject::new(state, env, MyHook))
///     }
///     async fn fetch(&self, req: Request) -> worker::Result<Response> {
///         self.0.fetch(req).await
///     }
/// }
/// ```
pub struct ProvidersObject<H: OnAuthSuccess> {
    state: State,
    env: Env,
    hook: H,
    schema: std::result::Result<i64, String>,
    /// Held by every write of a provider row that follows an `.await` on
    /// the network (refresh, login, callback, removal, the hook's
    /// write-back), so a removal cannot be undone by a refresh finishing
    /// later, and a spent refresh token never overwrites a rotated one.
    writes: tokio::sync::Mutex<()>,
    calls: std::cell::Cell<u64>,
}

impl<H: OnAuthSuccess> std::fmt::Debug for ProvidersObject<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvidersObject")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

type CallResult = std::result::Result<serde_json::Value, RemoteError>;

fn to_value(v: impl Serialize) -> CallResult {
    serde_json::to_value(v).map_err(|e| RemoteError::from(&storage_err(e)))
}

fn remote(e: Error) -> RemoteError {
    let mut r = RemoteError::from(&e);
    // Tell "expired" (no refresh token) from "revoked" (the server refused).
    if r.reauthorize {
        r.code = match e {
            Error::NoRefreshToken { .. } => "expired",
            Error::NotConnected { .. } => "not_connected",
            _ => "revoked",
        }
        .into();
    }
    r
}

impl<H: OnAuthSuccess> ProvidersObject<H> {
    /// Opens the object: applies pending schema migrations.
    pub fn new(state: State, env: Env, hook: H) -> Self {
        let schema = migrate(&state.storage().sql()).map_err(|e| e.to_string());
        Self {
            state,
            env,
            hook,
            schema,
            writes: tokio::sync::Mutex::new(()),
            calls: std::cell::Cell::new(0),
        }
    }

    /// Answers one internal call.
    pub async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        self.calls.set(self.calls.get() + 1);
        let reply = match (&self.schema, req.json::<Envelope>().await) {
            (Err(e), _) => Err(RemoteError::from(&Error::Storage(format!(
                "schema migration failed: {e}"
            )))),
            (_, Err(e)) => Err(RemoteError {
                code: "bad_call".into(),
                message: format!("unreadable internal call: {e}"),
                reauthorize: false,
                retryable: false,
                status: 400,
            }),
            (
                Ok(_),
                Ok(Envelope {
                    registry,
                    timeout_ms,
                    call,
                }),
            ) => {
                let http = timeout_ms.map_or_else(WorkerHttp::default, WorkerHttp::with_timeout_ms);
                self.handle(registry.as_deref(), &http, call).await
            }
        };
        let reply = match reply {
            Ok(v) => Reply::Ok(v),
            Err(e) => Reply::Err(e),
        };
        Response::from_json(&reply)
    }

    fn store<'a>(&'a self, registry: Option<&'a str>) -> SqlStore<'a> {
        SqlStore {
            sql: self.state.storage().sql(),
            env: &self.env,
            registry,
        }
    }

    async fn named(
        &self,
        store: &SqlStore<'_>,
        owner: &str,
        mut provider: Provider,
    ) -> (ProviderView, Option<String>) {
        let tokens = provider.tokens();
        let info = self
            .hook
            .on_auth_success(Connected {
                resource_url: provider.key.as_str(),
                connected_url: &provider.resource_url,
                access_token: tokens.map(|t| &t.access_token),
                scope: tokens.and_then(|t| t.scope.as_deref()),
                env: &self.env,
            })
            .await;
        let hook_error = match info {
            Ok(ProviderInfo { name, metadata }) => {
                provider.name = name.clone();
                provider.metadata = metadata.clone();
                // Only name and metadata, on the row as it is now (a refresh
                // or a removal may have happened while the hook ran).
                let _writes = self.writes.lock().await;
                match store.provider(owner, &provider.key).await {
                    Ok(Some(mut current)) => {
                        current.name = name;
                        current.metadata = metadata;
                        store
                            .put_provider(owner, current)
                            .await
                            .err()
                            .map(|e| e.to_string())
                    }
                    Ok(None) => None,
                    Err(e) => Some(e.to_string()),
                }
            }
            Err(e) => Some(format!(
                "the app could not finish setting up this connection: {e}"
            )),
        };
        (ProviderView::of(&provider), hook_error)
    }

    async fn handle(&self, registry: Option<&str>, http: &WorkerHttp, call: Call) -> CallResult {
        match call {
            Call::ConfirmationToken { owner } => {
                let mut bytes = [0u8; 32];
                random_bytes(&mut bytes).map_err(|e| remote(Error::Storage(e)))?;
                let token = crate::encoding::base64url(&bytes);
                let store = self.store(registry);
                store
                    .exec(
                        "DELETE FROM idp_confirmations WHERE created_at < ?",
                        vec![secs(now().saturating_sub(CONFIRMATION_LIFETIME_SECS))],
                    )
                    .map_err(remote)?;
                store
                    .exec(
                        "INSERT INTO idp_confirmations (token, owner, created_at) VALUES (?, ?, ?)",
                        vec![text(&token), text(&owner), secs(now())],
                    )
                    .map_err(remote)?;
                to_value(token)
            }
            Call::Login {
                owner,
                url,
                scope,
                settings,
                confirmation,
            } => {
                let store = self.store(registry);
                if let Some(token) = confirmation {
                    store.spend_confirmation(&token, &owner).map_err(remote)?;
                }
                let entropy = entropy().map_err(|e| remote(Error::Storage(e)))?;
                let writes = self.writes.lock().await;
                let start = flow::start_login(
                    http,
                    &store,
                    &settings.to_settings(),
                    &owner,
                    &url,
                    scope.as_deref(),
                    now(),
                    entropy,
                )
                .await
                .map_err(remote)?;
                drop(writes);
                match start {
                    LoginStart::Redirect(url) => to_value(LoginReply::Redirect { url: url.into() }),
                    LoginStart::Public(p) => {
                        let (provider, hook_error) = self.named(&store, &owner, *p).await;
                        to_value(LoginReply::Public {
                            provider,
                            hook_error,
                        })
                    }
                }
            }
            Call::Callback {
                owner,
                callback_uri,
                query,
            } => {
                let store = self.store(registry);
                let p = {
                    let _writes = self.writes.lock().await;
                    flow::finish_login(http, &store, &owner, &callback_uri, &query, now())
                        .await
                        .map_err(remote)?
                };
                let (provider, hook_error) = self.named(&store, &owner, p).await;
                to_value(CallbackReply {
                    provider,
                    hook_error,
                })
            }
            Call::Authorization { owner, url } => {
                let store = self.store(registry);
                let key = ResourceKey::parse(&url).map_err(remote)?;
                let Some(p) = store
                    .provider_for(&owner, &key)
                    .await
                    .map_err(remote)?
                    .filter(|p| p.key.covers_request(&url))
                else {
                    return Ok(serde_json::Value::Null);
                };
                let tokens = match p.tokens() {
                    None if p.is_public() => None,
                    Some(t) if !t.needs_refresh(now()) => Some(t.clone()),
                    seen => {
                        // One refresh at a time: whoever waited finds the
                        // token already replaced and uses the new one.
                        let _one_at_a_time = self.writes.lock().await;
                        let reason = match seen {
                            Some(t) => RefreshReason::Rejected(t.access_token.secret()),
                            None => RefreshReason::Expiring,
                        };
                        let refreshed =
                            flow::refresh_provider(http, &store, &owner, &p.key, reason, now())
                                .await;
                        match (refreshed, seen) {
                            (Ok(t), _) => t,
                            // An early refresh that failed for a passing
                            // reason: the token in hand is still valid, so
                            // the call goes on with it and the next one
                            // tries the refresh again.
                            (Err(e), Some(t))
                                if !e.requires_reauthorization() && t.still_valid(now()) =>
                            {
                                worker::console_warn!(
                                    "idp: early refresh for {} failed, using the still-valid token: {e}",
                                    p.key
                                );
                                Some(t.clone())
                            }
                            (Err(e), _) => return Err(remote(e)),
                        }
                    }
                };
                to_value(AuthorizationReply {
                    key: p.key.to_string(),
                    header: tokens.as_ref().map(|t| t.authorization_header()),
                    scope: tokens.and_then(|t| t.scope),
                })
            }
            Call::Rejected {
                owner,
                key,
                fingerprint: failed,
            } => {
                let store = self.store(registry);
                let key = ResourceKey::parse(&key).map_err(remote)?;
                let _one_at_a_time = self.writes.lock().await;
                let current = store
                    .provider(&owner, &key)
                    .await
                    .map_err(remote)?
                    .ok_or_else(|| {
                        remote(Error::NotConnected {
                            url: key.to_string(),
                        })
                    })?;
                let stored = current.tokens().map(|t| t.access_token.secret().to_owned());
                let reason = match &stored {
                    Some(t) if fingerprint(t) == failed => RefreshReason::Rejected(t),
                    // Someone refreshed meanwhile: hand out the new token.
                    _ => RefreshReason::Expiring,
                };
                let tokens = flow::refresh_provider(http, &store, &owner, &key, reason, now())
                    .await
                    .map_err(remote)?;
                to_value(AuthorizationReply {
                    key: key.to_string(),
                    header: tokens.as_ref().map(|t| t.authorization_header()),
                    scope: tokens.and_then(|t| t.scope),
                })
            }
            Call::RefreshExpiring { owner, urls } => {
                let store = self.store(registry);
                let mut out = Vec::new();
                for url in urls {
                    out.push(self.refresh_one(http, &store, &owner, url).await);
                }
                to_value(out)
            }
            Call::McpSessionGet { owner, url } => {
                let state: Option<McpSessionState> = self
                    .store(None)
                    .first_data(
                        "SELECT data FROM idp_mcp_sessions WHERE owner = ? AND url = ?",
                        vec![text(&owner), text(&url)],
                    )
                    .map_err(remote)?;
                to_value(state)
            }
            Call::McpSessionPut {
                owner,
                url,
                session,
            } => {
                let store = self.store(None);
                match session {
                    Some(state) => store.exec(
                        "INSERT OR REPLACE INTO idp_mcp_sessions (owner, url, data, updated_at) VALUES (?, ?, ?, ?)",
                        vec![text(&owner), text(&url), json(&state).map_err(remote)?, secs(now())],
                    ),
                    None => store.exec(
                        "DELETE FROM idp_mcp_sessions WHERE owner = ? AND url = ?",
                        vec![text(&owner), text(&url)],
                    ),
                }
                .map_err(remote)?;
                to_value(())
            }
            Call::Providers { owner } => {
                let store = self.store(registry);
                let list = store.providers(&owner).await.map_err(remote)?;
                to_value(list.iter().map(ProviderView::of).collect::<Vec<_>>())
            }
            Call::Find { owner, url } => {
                let store = self.store(registry);
                let key = ResourceKey::parse(&url).map_err(remote)?;
                let p = store.provider_for(&owner, &key).await.map_err(remote)?;
                to_value(p.as_ref().map(ProviderView::of))
            }
            Call::Remove { owner, url } => {
                let store = self.store(registry);
                let key = ResourceKey::parse(&url).map_err(remote)?;
                let removal = {
                    let _writes = self.writes.lock().await;
                    flow::remove_provider(http, &store, &owner, &key)
                        .await
                        .map_err(remote)?
                };
                to_value(match removal {
                    None => RemoveOutcome {
                        removed: false,
                        revoked: false,
                        revocation_error: None,
                    },
                    Some(r) => RemoveOutcome {
                        removed: true,
                        revoked: r.revoked.as_ref().is_ok_and(|b| *b),
                        revocation_error: r.revoked.err().map(|e| e.to_string()),
                    },
                })
            }
            Call::Seed { owner, providers } => {
                let store = self.store(registry);
                let n = providers.len();
                for p in providers {
                    store.put_provider(&owner, p).await.map_err(remote)?;
                }
                to_value(n)
            }
            Call::Stats => to_value(serde_json::json!({ "calls": self.calls.get() })),
            Call::RegistrationGet {
                issuer,
                redirect_uri,
            } => to_value(
                self.store(None)
                    .registration(&issuer, &redirect_uri)
                    .await
                    .map_err(remote)?,
            ),
            Call::RegistrationPut { registration } => to_value(
                self.store(None)
                    .put_registration(registration)
                    .await
                    .map_err(remote)?,
            ),
            Call::RegistrationRemove {
                issuer,
                redirect_uri,
            } => to_value(
                self.store(None)
                    .remove_registration(&issuer, &redirect_uri)
                    .await
                    .map_err(remote)?,
            ),
            Call::KnownIssuers { limit } => {
                #[derive(Deserialize)]
                struct IssuerRow {
                    issuer: String,
                }
                let rows: Vec<IssuerRow> = self
                    .store(None)
                    .rows(
                        "SELECT issuer FROM idp_servers ORDER BY fetched_at DESC LIMIT ?",
                        vec![SqlStorageValue::from(i64::try_from(limit).unwrap_or(100))],
                    )
                    .map_err(remote)?;
                to_value(rows.into_iter().map(|r| r.issuer).collect::<Vec<_>>())
            }
            Call::ServerGet { issuer } => {
                to_value(self.store(None).server(&issuer).await.map_err(remote)?)
            }
            Call::ServerPut {
                issuer,
                server,
                fetched_at,
            } => to_value(
                self.store(None)
                    .put_server(&issuer, *server, fetched_at)
                    .await
                    .map_err(remote)?,
            ),
        }
    }

    async fn refresh_one(
        &self,
        http: &WorkerHttp,
        store: &SqlStore<'_>,
        owner: &str,
        url: String,
    ) -> RefreshOutcome {
        let outcome = |status: &str, expires_at, error| RefreshOutcome {
            url: url.clone(),
            status: status.into(),
            expires_at,
            error,
        };
        let key = match ResourceKey::parse(&url) {
            Ok(k) => k,
            Err(e) => return outcome("error", None, Some(remote(e))),
        };
        let p = match store.provider_for(owner, &key).await {
            Ok(Some(p)) => p,
            Ok(None) => return outcome("not_connected", None, None),
            Err(e) => return outcome("error", None, Some(remote(e))),
        };
        if p.is_public() {
            return outcome("public", None, None);
        }
        let before = p.tokens().and_then(|t| t.expires_at);
        let _one_at_a_time = self.writes.lock().await;
        match flow::refresh_provider(http, store, owner, &p.key, RefreshReason::Expiring, now())
            .await
        {
            Ok(t) => {
                let after = t.and_then(|t| t.expires_at);
                outcome(
                    if after != before {
                        "refreshed"
                    } else {
                        "fresh"
                    },
                    after,
                    None,
                )
            }
            Err(e) => outcome("error", None, Some(remote(e))),
        }
    }
}
