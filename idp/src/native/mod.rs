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
//!     profiles: Vec::new(),
//!     dpop: Default::default(),
//!     dpop_always: Vec::new(),
//!     device_origins: Default::default(),
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

use crate::error::{Error, Result};
use crate::flow::{
    self, Authorization, Entropy, LoginRequest, LoginStart, Refresher, Refused, Removal, Settings,
};
use crate::http::{HttpClient, HttpRequest, HttpResponse, Method, TransportError, MAX_BODY_BYTES};
use crate::matching::ResourceKey;
use crate::policy::Policy;
pub use crate::store::memory::MemoryStore;
pub use background::{RefreshPass, CLAIM_LEASE_SECS};
pub use fetch::AuthedFetch;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteConnection, SqliteStore};

mod background;
mod device;
mod fetch;
mod locks;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
use crate::flow::accounts::{IntoOwner, Owner};
use crate::store::{Provider, Store};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use url::Url;

/// [`HttpClient`] over `reqwest`: no redirects followed, no proxy from the
/// environment (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` are ignored: a proxy
/// would resolve names past the address policy), 30 s timeout, bodies
/// capped at [`MAX_BODY_BYTES`], and every address it connects to allowed
/// by its [`Policy`]: an IP literal before anything is sent, a name by what
/// it resolves to, when it connects (so a name that resolves to a private
/// address is refused however it is spelt). Its clones share one memory
/// of the DPoP nonces servers gave ([`Nonces`](crate::dpop::Nonces)); its
/// randomness is the system's (`getrandom`).
#[derive(Debug, Clone)]
pub struct ReqwestHttp {
    pub(super) client: reqwest::Client,
    policy: Policy,
    pub(super) nonces: std::sync::Arc<crate::dpop::Nonces>,
}

impl Default for ReqwestHttp {
    fn default() -> Self {
        Self::new()
    }
}

impl ReqwestHttp {
    /// A client with the settings above, under [`Policy::STRICT`].
    pub fn new() -> Self {
        Self::with_policy(Policy::STRICT)
    }

    /// A client with the settings above, under `policy`.
    pub fn with_policy(policy: Policy) -> Self {
        // No proxy from the environment (`HTTPS_PROXY` and the like): a
        // proxy resolves names itself, past the address policy.
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .dns_resolver(std::sync::Arc::new(PolicyResolver(policy)))
            .build()
            .expect("reqwest client with static settings");
        Self {
            client,
            policy,
            nonces: Default::default(),
        }
    }

    /// Whether `url`'s host, when an IP literal, may be contacted (names are
    /// checked when they resolve).
    pub(super) fn allows(&self, url: &Url) -> Result<(), TransportError> {
        match url.host() {
            Some(h) if !self.policy.allows(crate::policy::reach_host(&h)) => {
                Err(TransportError::new(format!(
                    "refused: the host {h} is an address the policy keeps the SDK away from; nothing was sent"
                )))
            }
            _ => Ok(()),
        }
    }
}

/// Resolves names as the system does, and keeps only the addresses the
/// policy allows: a name with none left is refused before connecting.
struct PolicyResolver(Policy);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed = allowed_addrs(&policy, &host, resolved)?;
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The addresses of `host` that `policy` allows; none is an error.
fn allowed_addrs(
    policy: &Policy,
    host: &str,
    resolved: impl Iterator<Item = std::net::SocketAddr>,
) -> Result<Vec<std::net::SocketAddr>, String> {
    let allowed: Vec<_> = resolved.filter(|a| policy.allows_ip(a.ip())).collect();
    if allowed.is_empty() {
        return Err(format!(
            "{host} resolves to no address the policy allows (private, loopback, link-local or reserved); nothing was sent"
        ));
    }
    Ok(allowed)
}

impl HttpClient for ReqwestHttp {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        self.allows(&request.url)?;
        let mut builder = self
            .client
            .request(reqwest_method(request.method), request.url.as_str());
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let resp = builder
            .body(request.body)
            .send()
            .await
            .map_err(|e| TransportError::new(describe(&e)))?;
        read_response(request.method, resp).await
    }

    fn fill_random(&self, buf: &mut [u8]) -> Result<(), String> {
        getrandom::fill(buf).map_err(|e| e.to_string())
    }

    fn dpop_nonces(&self) -> Option<&crate::dpop::Nonces> {
        Some(&self.nonces)
    }
}

/// The engine's method as reqwest's.
pub(super) fn reqwest_method(method: Method) -> reqwest::Method {
    match method {
        Method::Get => reqwest::Method::GET,
        Method::Head => reqwest::Method::HEAD,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
    }
}

/// An answer as the engine reads it: its status, its headers, and its body
/// when the request's method has one, at most [`MAX_BODY_BYTES`].
pub(super) async fn read_response(
    method: Method,
    mut resp: reqwest::Response,
) -> Result<HttpResponse, TransportError> {
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
        .collect::<Vec<_>>();
    let mut body = Vec::new();
    let wanted = crate::http::reads_body(method, &headers);
    while let Some(chunk) = match wanted {
        true => resp
            .chunk()
            .await
            .map_err(|e| TransportError::new(describe(&e)))?,
        false => None,
    } {
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

/// reqwest's messages can include the URL; ours say it separately, and a URL
/// the engine builds never carries a secret.
pub(super) fn describe(e: &reqwest::Error) -> String {
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
        dpop: [0; 32],
    };
    getrandom::fill(&mut e.verifier)
        .and_then(|()| getrandom::fill(&mut e.state))
        .and_then(|()| getrandom::fill(&mut e.dpop))
        .map_err(|err| Error::NoRandomness(err.to_string()))?;
    Ok(e)
}

/// The engine wired to reqwest, a [`Store`] (in memory by default), the system
/// clock and OS randomness. Refreshes go through one [`Refresher`], so
/// concurrent callers cause one token request and a rotated refresh token is
/// used once; it locks per grant (owner and resource), and a login, a device
/// poll or a machine grant holds no lock across its requests (its write is
/// a compare-and-swap, `store::update`), so one user's slow server stalls
/// nobody else.
pub struct NativeIdp<S: Store = MemoryStore> {
    http: ReqwestHttp,
    pub(super) store: S,
    settings: Settings,
    pub(super) refresher: Refresher<locks::GrantLocks>,
    waiting: device::WaitingLogins,
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
            http: ReqwestHttp::with_policy(settings.policy),
            store,
            settings,
            refresher: Refresher::default(),
            waiting: Default::default(),
        }
    }

    /// The engine's context for one call, at the system clock's time.
    fn engine(&self) -> flow::Engine<'_, ReqwestHttp, S> {
        flow::Engine {
            http: &self.http,
            store: &self.store,
            settings: &self.settings,
            now: now(),
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Starts connecting a resource ([`flow::start_login`]).
    pub async fn connect(
        &self,
        owner: impl IntoOwner,
        resource_url: &str,
        scope: Option<&str>,
    ) -> Result<LoginStart> {
        let owner = owner.into_owner()?;
        let cx = self.engine();
        let req = LoginRequest::of(owner.as_str(), scope);
        flow::start_login(&cx, req, resource_url, entropy()?).await
    }

    /// Connects a resource as the app itself, for `owner` (a workload's
    /// name): the client credentials grant with the app's pre-registered
    /// confidential client ([`flow::connect_with`]). Its tokens are asked
    /// for again the same way when they expire or are refused.
    pub async fn connect_as_app(
        &self,
        owner: impl IntoOwner,
        resource_url: &str,
        scope: Option<&str>,
    ) -> Result<Provider> {
        let credential = flow::Credential::ClientSecret;
        self.connect_with(owner, resource_url, scope, &credential)
            .await
    }

    /// Connects a resource for `owner` with no browser, with what
    /// `credential` says: the app's client secret, a workload's identity
    /// token (workload identity federation), or a person's ID token from the
    /// enterprise's identity provider (enterprise-managed authorization).
    /// See [`flow::connect_with`].
    ///
    /// ```no_run
    /// # async fn f(idp: &idp::native::NativeIdp) -> idp::Result<()> {
    /// use idp::flow::Credential;
    /// use idp::secret::Assertion;
    /// let jwt = Assertion::new(std::env::var("WORKLOAD_TOKEN").unwrap_or_default());
    /// idp.connect_with("app:sync", "https://mcp.example.com/mcp", None, &Credential::Workload(jwt))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_with(
        &self,
        owner: impl IntoOwner,
        resource_url: &str,
        scope: Option<&str>,
        credential: &flow::Credential,
    ) -> Result<Provider> {
        let owner = owner.into_owner()?;
        let cx = self.engine();
        flow::connect_with(&cx, owner.as_str(), resource_url, scope, credential).await
    }

    /// Starts connecting a resource with no browser callback (RFC 8628,
    /// [`flow::start_device_login`]): show the person the user code and
    /// where to enter it, then [`NativeIdp::wait_device_login`].
    ///
    /// ```no_run
    /// # async fn f(idp: std::sync::Arc<idp::native::NativeIdp>) -> idp::Result<()> {
    /// use idp::flow::DeviceStart;
    /// if let DeviceStart::Waiting(login) = idp.start_device_login("alice", "https://api.example.com/v1", None).await? {
    ///     println!("enter {} at {}", login.user_code, login.verification_uri);
    ///     let task = tokio::spawn(async move { idp.wait_device_login("alice", &login).await });
    ///     let provider = task.await.expect("the task ran")?;
    ///     println!("connected {}", provider.key);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn start_device_login(
        &self,
        owner: impl IntoOwner,
        resource_url: &str,
        scope: Option<&str>,
    ) -> Result<flow::DeviceStart> {
        let owner = owner.into_owner()?;
        let place = self.waiting.reserve(owner.user_id(), now())?;
        let req = LoginRequest::of(owner.as_str(), scope);
        let start = flow::start_device_login(&self.engine(), req, resource_url, entropy()?).await?;
        if let flow::DeviceStart::Waiting(login) = &start {
            place.keep(&login.id, login.expires_at);
        }
        Ok(start)
    }

    /// Polls a device login once, if its time has come
    /// ([`flow::poll_device_login`]).
    pub async fn poll_device_login(
        &self,
        owner: impl IntoOwner,
        id: &str,
    ) -> Result<flow::DevicePoll> {
        let owner = owner.into_owner()?;
        let user = owner.user_id();
        let poll = flow::poll_device_login(&self.http, &self.store, user, id, now()).await;
        match &poll {
            Ok(flow::DevicePoll::Waiting { .. }) => {}
            Err(e) if e.is_retryable() => {}
            // Connected, declined, expired, unknown: it waits no more.
            _ => self.waiting.end(user, id),
        }
        poll
    }

    /// Polls a device login at the server's pace until the person answers:
    /// the provider stored with its grant, or why not (declined, expired).
    /// A passing failure (the server down) waits an interval and polls
    /// again. Run it in a task of its own.
    pub async fn wait_device_login(
        &self,
        owner: impl IntoOwner,
        login: &flow::DeviceLogin,
    ) -> Result<Provider> {
        let owner = owner.into_owner()?;
        loop {
            let wait = match self.poll_device_login(&owner, &login.id).await {
                Ok(flow::DevicePoll::Connected(p)) => return Ok(*p),
                Ok(flow::DevicePoll::Waiting { poll_at }) => poll_at.saturating_sub(now()),
                Err(e) if e.is_retryable() => login.interval,
                Err(e) => return Err(e),
            };
            tokio::time::sleep(Duration::from_secs(wait.max(1))).await;
        }
    }

    /// Finishes a flow from the URL the person was redirected back to
    /// ([`flow::finish_login`]; its path must be the flow's redirect URI).
    pub async fn callback(&self, owner: impl IntoOwner, callback_url: &Url) -> Result<Provider> {
        let owner = owner.into_owner()?;
        let mut at = callback_url.clone();
        let query = at.query().unwrap_or_default().to_owned();
        at.set_query(None);
        at.set_fragment(None);
        let user = owner.user_id();
        flow::finish_login(&self.http, &self.store, user, &at, &query, now()).await
    }

    /// The authorization for a URL, refreshing first when the token expires
    /// within 5 minutes ([`Refresher::authorization`]).
    ///
    /// `owner` is a user, or a user's account ([`Owner::account`], served
    /// by the account's own grant, or the user's first when that is the
    /// account).
    pub async fn authorization(
        &self,
        owner: impl IntoOwner,
        url: &str,
    ) -> Result<Option<Authorization>> {
        let owner = owner.into_owner()?;
        self.authorization_of(&owner, url).await
    }

    /// [`NativeIdp::authorization`] of an owner already checked.
    pub(crate) async fn authorization_of(
        &self,
        owner: &Owner,
        url: &str,
    ) -> Result<Option<Authorization>> {
        let owner = flow::accounts::serving(&self.store, owner.as_str(), url).await?;
        self.refresher
            .authorization(&self.http, &self.store, &owner, url, now())
            .await
    }

    /// Refreshes after a resource rejected `failed_access_token`; concurrent
    /// callers with the same failed token share one refresh.
    pub async fn refresh_rejected(
        &self,
        owner: impl IntoOwner,
        key: &ResourceKey,
        failed_access_token: &str,
    ) -> Result<Authorization> {
        let owner = owner.into_owner()?;
        self.refresher
            .rejected(
                &self.http,
                &self.store,
                owner.as_str(),
                key,
                Refused::Token(failed_access_token),
                now(),
            )
            .await
    }

    /// Removes the provider serving `url` (the longest prefix, as for
    /// [`NativeIdp::fetch`]) and revokes its token at the server;
    /// [`Error::NotConnected`] when none serves it.
    pub async fn remove(&self, owner: impl IntoOwner, url: &str) -> Result<Removal> {
        let owner = owner.into_owner()?;
        let key = ResourceKey::parse(url)?;
        let owner = flow::accounts::serving(&self.store, owner.as_str(), key.as_str()).await?;
        flow::remove_provider(&self.http, &self.store, &owner, &key, now()).await
    }

    /// The HTTP client the engine uses.
    pub fn http(&self) -> &ReqwestHttp {
        &self.http
    }

    /// An HTTP client that sends `owner`'s requests with their credentials
    /// ([`AuthedFetch`]).
    /// A user id that cannot be one ([`Owner::user`]) makes every request
    /// fail with that error, before anything is sent.
    pub fn fetch(&self, owner: impl IntoOwner) -> AuthedFetch<'_, S> {
        AuthedFetch {
            idp: self,
            owner: owner.into_owner(),
            account: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_connected_only_to_the_addresses_the_policy_allows() {
        let at = |ip: &str| std::net::SocketAddr::new(ip.parse().unwrap(), 443);
        let mixed = [
            at("10.0.0.1"),
            at("93.184.215.14"),
            at("::ffff:169.254.169.254"),
        ];
        assert_eq!(
            allowed_addrs(&Policy::STRICT, "h", mixed.into_iter()).unwrap(),
            vec![at("93.184.215.14")]
        );
        let private = [at("10.0.0.1"), at("fd00::1"), at("127.0.0.1")];
        let e = allowed_addrs(&Policy::STRICT, "rebind.example", private.into_iter()).unwrap_err();
        assert!(e.contains("rebind.example"), "{e}");
        let dev = allowed_addrs(&Policy::LOOPBACK_DEV, "h", private.into_iter()).unwrap();
        assert_eq!(dev, vec![at("127.0.0.1")]);
    }

    /// Under the strict policy a request to a loopback address is refused
    /// before anything is sent: the listener never sees a connection.
    #[test]
    fn a_refused_address_receives_nothing() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let http = ReqwestHttp::with_policy(Policy::STRICT);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for url in [
            format!("http://127.0.0.1:{port}/"),
            format!("http://2130706433:{port}/"),
            format!("http://[::ffff:127.0.0.1]:{port}/"),
        ] {
            let req = HttpRequest::get_json(Url::parse(&url).unwrap());
            let e = rt.block_on(http.send(req)).unwrap_err();
            assert!(e.message.contains("nothing was sent"), "{url}: {e:?}");
        }
        assert!(listener.accept().is_err(), "no connection was made");
    }
}
