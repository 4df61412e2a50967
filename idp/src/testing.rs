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
