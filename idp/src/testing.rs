//! Test doubles for unit tests: a scripted HTTP client and a tiny executor.

use crate::http::{HttpClient, HttpRequest, HttpResponse, TransportError};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Runs a future whose I/O completes immediately (as [`Script`]'s does).
pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// Answers requests by URL from a script; records every request. A URL with
/// several queued responses answers them in order, repeating the last one.
/// Its randomness counts up, and it keeps DPoP nonces as a runtime does.
#[derive(Default)]
pub(crate) struct Script {
    routes: RefCell<Vec<(String, VecDeque<HttpResponse>)>>,
    seen: RefCell<Vec<HttpRequest>>,
    drawn: std::cell::Cell<u8>,
    nonces: crate::dpop::Nonces,
}

impl Script {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn raw(self, url: &str, resp: HttpResponse) -> Self {
        {
            let mut routes = self.routes.borrow_mut();
            match routes.iter_mut().find(|(u, _)| u == url) {
                Some((_, q)) => q.push_back(resp),
                None => routes.push((url.to_owned(), VecDeque::from([resp]))),
            }
        }
        self
    }

    pub(crate) fn json(self, url: &str, status: u16, body: serde_json::Value) -> Self {
        self.raw(
            url,
            HttpResponse::new(status, body.to_string())
                .with_header("content-type", "application/json"),
        )
    }

    pub(crate) fn status(self, url: &str, status: u16) -> Self {
        self.raw(url, HttpResponse::new(status, ""))
    }

    pub(crate) fn requests(&self) -> Vec<HttpRequest> {
        self.seen.borrow().clone()
    }
}

impl HttpClient for Script {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let url = request.url.to_string();
        self.seen.borrow_mut().push(request);
        let mut routes = self.routes.borrow_mut();
        let queue = routes
            .iter_mut()
            .find(|(u, _)| *u == url)
            .map(|(_, q)| q)
            .ok_or_else(|| TransportError::new(format!("no scripted response for {url}")))?;
        if queue.len() > 1 {
            Ok(queue
                .pop_front()
                .unwrap_or_else(|| HttpResponse::new(500, "")))
        } else {
            queue
                .front()
                .cloned()
                .ok_or_else(|| TransportError::new("empty script"))
        }
    }

    fn fill_random(&self, buf: &mut [u8]) -> Result<(), String> {
        self.drawn.set(self.drawn.get().wrapping_add(1));
        buf.fill(self.drawn.get());
        Ok(())
    }

    fn dpop_nonces(&self) -> Option<&crate::dpop::Nonces> {
        Some(&self.nonces)
    }
}

/// Strict settings for a test deployment at `https://app.example`.
#[allow(dead_code)]
pub(crate) fn settings() -> crate::settings::Settings {
    crate::settings::Settings {
        policy: crate::policy::Policy::STRICT,
        client_info: crate::registration::ClientInfo {
            name: "t".into(),
            version: "1".into(),
            uri: None,
        },
        clients: Default::default(),
        callback_base: url::Url::parse("https://app.example/oauth/callback").expect("valid"),
        profiles: Vec::new(),
        dpop: Default::default(),
        dpop_always: Vec::new(),
        device_origins: Default::default(),
    }
}

/// `alice` starts connecting `url` (with `scope`) at `now`, with fixed
/// randomness: the login fixture in one line.
#[allow(dead_code)]
pub(crate) fn start_login(
    http: &Script,
    store: &crate::store::memory::MemoryStore,
    settings: &crate::settings::Settings,
    url: &str,
    scope: Option<&str>,
    now: u64,
) -> crate::error::Result<crate::flow::LoginStart> {
    let engine = crate::flow::Engine {
        http,
        store,
        settings,
        now,
    };
    let req = crate::flow::LoginRequest {
        owner: "alice",
        scope,
        account: None,
    };
    let entropy = crate::settings::Entropy {
        verifier: [1; 32],
        state: [2; 32],
        dpop: [3; 32],
    };
    block_on(crate::flow::start_login(&engine, req, url, entropy))
}

/// A [`MemoryStore`](crate::store::memory::MemoryStore) a test bends where it needs
/// to, every other call going straight to it: the one delegating store of
/// the unit tests.
#[derive(Default)]
#[allow(dead_code, clippy::type_complexity)]
pub(crate) struct Bent {
    /// The store underneath.
    pub(crate) inner: crate::store::memory::MemoryStore,
    /// Runs before each provider write, with the owner and the row about
    /// to be written (it may write first, as another writer would); `true`
    /// overwrites whatever is there, whatever the writer expected.
    pub(crate) before_put:
        Option<Box<dyn Fn(&crate::store::memory::MemoryStore, &str, &Provider) -> bool>>,
    /// What [`UserStore::still_current`] answers (`Ok` when unset).
    pub(crate) current: Option<Box<dyn Fn() -> Result<()>>>,
    /// Gives back each claim of the refresh queue as soon as it is made.
    pub(crate) forget_claims: bool,
}

use crate::authorize::PendingFlow;
use crate::discovery::AuthorizationServer;
use crate::error::Result;
use crate::matching::ResourceKey;
use crate::registration::Registration;
use crate::store::{Due, Expect, FlowTake, Provider, Put, RefreshQueue, RegistryStore, UserStore};

impl UserStore for Bent {
    async fn put_flow(&self, flow: PendingFlow) -> Result<()> {
        self.inner.put_flow(flow).await
    }
    async fn take_flow(&self, s: &str, o: &str, r: &str) -> Result<FlowTake> {
        self.inner.take_flow(s, o, r).await
    }
    async fn put_provider(&self, o: &str, p: Provider, expect: Expect<'_>) -> Result<Put> {
        if self
            .before_put
            .as_ref()
            .is_some_and(|f| f(&self.inner, o, &p))
        {
            let now = self.inner.provider(o, &p.key).await?;
            return self.inner.put_provider(o, p, now.as_ref().into()).await;
        }
        self.inner.put_provider(o, p, expect).await
    }
    async fn provider(&self, o: &str, k: &ResourceKey) -> Result<Option<Provider>> {
        self.inner.provider(o, k).await
    }
    async fn provider_for(&self, o: &str, u: &ResourceKey) -> Result<Option<Provider>> {
        self.inner.provider_for(o, u).await
    }
    async fn providers(&self, o: &str) -> Result<Vec<Provider>> {
        self.inner.providers(o).await
    }
    async fn providers_page(
        &self,
        o: &str,
        after: Option<&ResourceKey>,
        limit: usize,
    ) -> Result<Vec<Provider>> {
        self.inner.providers_page(o, after, limit).await
    }
    async fn remove_provider(&self, o: &str, k: &ResourceKey) -> Result<Option<Provider>> {
        self.inner.remove_provider(o, k).await
    }
    async fn still_current(
        &self,
        o: &str,
        k: &ResourceKey,
        t: &crate::secret::RefreshToken,
    ) -> Result<()> {
        match &self.current {
            Some(answer) => answer(),
            None => self.inner.still_current(o, k, t).await,
        }
    }
}

impl RegistryStore for Bent {
    async fn registration(&self, i: &str, r: &str) -> Result<Option<Registration>> {
        self.inner.registration(i, r).await
    }
    async fn put_registration(&self, r: Registration) -> Result<()> {
        self.inner.put_registration(r).await
    }
    async fn remove_registration(&self, i: &str, r: &str) -> Result<()> {
        self.inner.remove_registration(i, r).await
    }
    async fn server(&self, i: &str) -> Result<Option<(AuthorizationServer, u64)>> {
        self.inner.server(i).await
    }
    async fn put_server(&self, i: &str, s: AuthorizationServer, at: u64) -> Result<()> {
        self.inner.put_server(i, s, at).await
    }
}

impl RefreshQueue for Bent {
    async fn claim_due(&self, now: u64, limit: usize, lease: u64) -> Result<Vec<Due>> {
        let due = self.inner.claim_due(now, limit, lease).await?;
        if self.forget_claims {
            for d in &due {
                self.inner.release(&d.owner, &d.key).await?;
            }
        }
        Ok(due)
    }
    async fn retry_at(&self, o: &str, k: &ResourceKey, n: u64, at: u64) -> Result<()> {
        self.inner.retry_at(o, k, n, at).await
    }
    async fn release(&self, o: &str, k: &ResourceKey) -> Result<()> {
        self.inner.release(o, k).await
    }
    async fn stop(&self, o: &str, k: &ResourceKey) -> Result<()> {
        self.inner.stop(o, k).await
    }
}
