//! A native runtime (feature `native`): [`ReqwestHttp`] implements the HTTP
//! trait with `reqwest`, [`MemoryStore`] (re-exported from
//! [`crate::store::memory`]) keeps providers, flows and
//! registrations in memory, and [`NativeIdp`] ties them to the system clock and
//! the OS random source, for Rust programs outside Workers.
//!
//! ```no_run
//! use idp::native::NativeIdp;
//! use idp::flow::{LoginStart, Settings};
//! # async fn run() -> idp::Result<()> {
//! let idp = NativeIdp::new(Settings {
//!     policy: idp::policy::Policy::STRICT,
//!     client_info: idp::registration::ClientInfo { name: "My app".into(), version: "1.0".into(), uri: None },
//!     clients: Default::default(),
//!     callback_base: "https://app.example/oauth/callback".parse().unwrap(),
//! });
//! if let LoginStart::Redirect(url) = idp.connect("alice", "https://api.example.com/v1", None).await? {
//!     println!("open {url}");
//! }
//! // ...later, with the URL the person came back to:
//! # let back: url::Url = "https://app.example/oauth/callback/x?code=c&state=s".parse().unwrap();
//! let provider = idp.callback("alice", &back).await?;
//! let auth = idp.authorization("alice", "https://api.example.com/v1/items").await?;
//! # Ok(()) }
//! ```

use crate::error::{Error, Result, StorageCause, StorageError};
use crate::fetch::{Exchange, Next, Reason};
use crate::flow::{
    self, Authorization, Entropy, LoginStart, Refresher, Refused, Removal, Settings,
};
use crate::http::{HttpClient, HttpRequest, HttpResponse, Method, TransportError, MAX_BODY_BYTES};
use crate::matching::ResourceKey;
pub use crate::store::memory::MemoryStore;
use crate::store::{Provider, Store};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use url::Url;

/// [`HttpClient`] over `reqwest`: no redirects followed, 30 s timeout, bodies
/// capped at [`MAX_BODY_BYTES`].
#[derive(Debug, Clone)]
pub struct ReqwestHttp {
    client: reqwest::Client,
}

impl Default for ReqwestHttp {
    fn default() -> Self {
        Self::new()
    }
}

impl ReqwestHttp {
    /// A client with the settings above.
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("reqwest client with static settings");
        Self { client }
    }
}

impl HttpClient for ReqwestHttp {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
            Method::Post => reqwest::Method::POST,
        };
        let mut builder = self.client.request(method, request.url.as_str());
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let mut resp = builder
            .body(request.body)
            .send()
            .await
            .map_err(|e| TransportError::new(describe(&e)))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| TransportError::new(describe(&e)))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(TransportError::new(format!(
                    "response body larger than {MAX_BODY_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

/// reqwest's messages can include the URL; ours say it separately, and a URL
/// the engine builds never carries a secret.
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "could not read the body"
    } else {
        "request failed"
    };
    let mut msg = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// Seconds since the epoch from the system clock.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Fresh entropy from the operating system.
pub fn entropy() -> Result<Entropy> {
    let mut e = Entropy {
        verifier: [0; 32],
        state: [0; 32],
    };
    getrandom::fill(&mut e.verifier)
        .and_then(|()| getrandom::fill(&mut e.state))
        .map_err(|err| Error::NoRandomness(err.to_string()))?;
    Ok(e)
}

/// The engine wired to reqwest, a [`Store`] (in memory by default), the system
/// clock and OS randomness. Refreshes go through one [`Refresher`], so
/// concurrent callers cause one token request and a rotated refresh token is
/// used once.
pub struct NativeIdp<S: Store = MemoryStore> {
    http: ReqwestHttp,
    store: S,
    settings: Settings,
    refresher: Refresher<tokio::sync::Mutex<()>>,
}

impl<S: Store> std::fmt::Debug for NativeIdp<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeIdp")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl NativeIdp<MemoryStore> {
    /// An engine with an in-memory store.
    pub fn new(settings: Settings) -> Self {
        Self::with_store(settings, MemoryStore::default())
    }
}

impl<S: Store> NativeIdp<S> {
    /// An engine over your own store.
    pub fn with_store(settings: Settings, store: S) -> Self {
        Self {
            http: ReqwestHttp::new(),
            store,
            settings,
            refresher: Refresher::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Starts connecting a resource ([`flow::start_login`]).
    pub async fn connect(
        &self,
        owner: &str,
        resource_url: &str,
        scope: Option<&str>,
    ) -> Result<LoginStart> {
        flow::start_login(
            &self.http,
            &self.store,
            &self.settings,
            owner,
            resource_url,
            scope,
            now(),
            entropy()?,
        )
        .await
    }

    /// Finishes a flow from the URL the person was redirected back to
    /// ([`flow::finish_login`]; its path must be the flow's redirect URI).
    pub async fn callback(&self, owner: &str, callback_url: &Url) -> Result<Provider> {
        let mut at = callback_url.clone();
        let query = at.query().unwrap_or_default().to_owned();
        at.set_query(None);
        at.set_fragment(None);
        let _writes = self.refresher.lock().await;
        flow::finish_login(&self.http, &self.store, owner, &at, &query, now()).await
    }

    /// The authorization for a URL, refreshing first when the token expires
    /// within 5 minutes ([`Refresher::authorization`]).
    pub async fn authorization(&self, owner: &str, url: &str) -> Result<Option<Authorization>> {
        self.refresher
            .authorization(&self.http, &self.store, owner, url, now())
            .await
    }

    /// Refreshes after a resource rejected `failed_access_token`; concurrent
    /// callers with the same failed token share one refresh.
    pub async fn refresh_rejected(
        &self,
        owner: &str,
        key: &ResourceKey,
        failed_access_token: &str,
    ) -> Result<Authorization> {
        self.refresher
            .rejected(
                &self.http,
                &self.store,
                owner,
                key,
                Refused::Token(failed_access_token),
                now(),
            )
            .await
    }

    /// Removes a provider and revokes its token at the server.
    pub async fn remove(&self, owner: &str, url: &str) -> Result<Option<Removal>> {
        flow::remove_provider(&self.http, &self.store, owner, &ResourceKey::parse(url)?).await
    }

    /// The HTTP client the engine uses.
    pub fn http(&self) -> &ReqwestHttp {
        &self.http
    }

    /// An HTTP client that sends `owner`'s requests with their credentials
    /// ([`AuthedFetch`]).
    pub fn fetch<'a>(&'a self, owner: &'a str) -> AuthedFetch<'a, S> {
        AuthedFetch { idp: self, owner }
    }
}

/// Sends requests with a user's credentials, following the engine's request
/// policy ([`crate::fetch`]): the longest-prefix provider's token is attached
/// to URLs under its prefix only; on 401 the provider is refreshed once
/// (shared with concurrent callers) and the request retried; a step-up, a
/// dead grant or a resource never connected gives
/// [`Error::AuthorizationRequired`] with what to connect.
///
/// ```no_run
/// # async fn run(idp: idp::native::NativeIdp) -> idp::Result<()> {
/// let resp = idp.fetch("alice").get("https://api.example.com/v1/me").await?;
/// match idp.fetch("alice").get("https://api.example.com/v1/me").await {
///     Ok(resp) => println!("{}", resp.status()),
///     Err(idp::Error::AuthorizationRequired(r)) => println!("connect {} ({})", r.resource, r.reason),
///     Err(e) => return Err(e),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AuthedFetch<'a, S: Store = MemoryStore> {
    idp: &'a NativeIdp<S>,
    owner: &'a str,
}

impl<S: Store> AuthedFetch<'_, S> {
    /// GETs a URL.
    pub async fn get(&self, url: &str) -> Result<reqwest::Response> {
        self.send(reqwest::Request::new(
            reqwest::Method::GET,
            reqwest::Url::parse(url).map_err(|e| Error::InvalidUrl {
                input: url.to_owned(),
                reason: e.to_string(),
            })?,
        ))
        .await
    }

    /// Sends a request (its body must be in memory, so it can be retried).
    /// The request's own `Authorization` is replaced; its `Cookie` and
    /// `Proxy-Authorization` go to its own origin only.
    pub async fn send(&self, request: reqwest::Request) -> Result<reqwest::Response> {
        let url = request.url().as_str().to_owned();
        let body = match request.body() {
            None => None,
            Some(b) => Some(b.as_bytes().map(<[u8]>::to_vec).ok_or_else(|| Error::InvalidResponse {
                url: request.url().clone(),
                reason: "a streaming request body cannot be replayed for the retry after a refresh; send the body as bytes".into(),
            })?),
        };
        let idp = self.idp;
        let auth = idp.authorization(self.owner, &url).await?;
        let mut exchange = Exchange::new(request.method().as_str(), &url, auth)?;
        loop {
            let hop = exchange.hop();
            let hop_url = Url::parse(hop.url).map_err(|e| Error::InvalidUrl {
                input: hop.url.to_owned(),
                reason: e.to_string(),
            })?;
            let method = reqwest::Method::from_bytes(hop.method.as_bytes()).map_err(|e| {
                Error::InvalidUrl {
                    input: url.clone(),
                    reason: format!("method: {e}"),
                }
            })?;
            let mut builder = idp.http.client.request(method, hop_url.clone());
            for (name, value) in request.headers() {
                if hop.forwards(name.as_str()) {
                    builder = builder.header(name, value);
                }
            }
            if let Some(h) = hop.authorization {
                builder = builder.header("authorization", h);
            }
            if let (true, Some(b)) = (hop.body, &body) {
                builder = builder.body(b.clone());
            }
            let resp = builder.send().await.map_err(|e| Error::Transport {
                url: hop_url.clone(),
                message: describe(&e),
            })?;
            let header = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok());
            let next = exchange.answer(
                resp.status().as_u16(),
                header("location"),
                header("www-authenticate"),
            )?;
            match next {
                Next::Send => continue,
                Next::Done => return Ok(resp),
                Next::Reauthorize(r) => return Err(Error::AuthorizationRequired(r)),
                Next::Refresh => {
                    let (Some(a), Some(token)) =
                        (exchange.authorization(), exchange.rejected_token())
                    else {
                        return Ok(resp);
                    };
                    let refreshed = idp
                        .refresher
                        .rejected(
                            &idp.http,
                            &idp.store,
                            self.owner,
                            &a.key,
                            Refused::Token(token),
                            now(),
                        )
                        .await;
                    let result = match refreshed {
                        Ok(a) => Ok(Some(a)),
                        Err(e @ Error::NoRefreshToken { .. }) if e.requires_reauthorization() => {
                            Err(Reason::Expired)
                        }
                        Err(e) if e.requires_reauthorization() => Err(Reason::Revoked),
                        Err(e) => return Err(e),
                    };
                    if let Next::Reauthorize(r) = exchange.refreshed(result) {
                        return Err(Error::AuthorizationRequired(r));
                    }
                }
            }
        }
    }
}

/// A SQLite database for [`SqliteStore`]: a `rusqlite` connection behind a
/// mutex, so a section of statements is not interleaved with another
/// writer's.
#[cfg(feature = "sqlite")]
#[derive(Debug)]
pub struct SqliteConnection(std::sync::Mutex<rusqlite::Connection>);

#[cfg(feature = "sqlite")]
impl crate::store::sql::SqlRun for std::sync::MutexGuard<'_, rusqlite::Connection> {
    fn run(
        &self,
        statement: &str,
        args: Vec<crate::store::sql::SqlValue>,
    ) -> std::result::Result<Vec<Vec<crate::store::sql::SqlValue>>, String> {
        use crate::store::sql::SqlValue;
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

#[cfg(feature = "sqlite")]
impl crate::store::sql::SqlConnection for SqliteConnection {
    type Atomic<'a> = std::sync::MutexGuard<'a, rusqlite::Connection>;
    fn atomic(&self) -> Self::Atomic<'_> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The [`Store`] on a SQLite file (feature `sqlite`): the statements and
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
#[cfg(feature = "sqlite")]
pub type SqliteStore = crate::store::sql::SqlStore<SqliteConnection>;

#[cfg(feature = "sqlite")]
impl crate::store::sql::SqlStore<SqliteConnection> {
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
        crate::store::sql::migrate(&crate::store::sql::SqlConnection::atomic(&conn)).map_err(
            |e| {
                Error::storage(
                    StorageCause::Backend,
                    format!("schema migration failed: {e}"),
                )
            },
        )?;
        Ok(Self::new(conn))
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;

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
