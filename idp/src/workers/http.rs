//! [`HttpClient`] over the Workers `fetch` API, and randomness and time.

use crate::http::{HttpClient, HttpRequest, HttpResponse, Method, TransportError, MAX_BODY_BYTES};
use wasm_bindgen::JsCast;
use worker::{Fetch, Headers, Request};

/// How long an outbound request may take, answer and body included: 10 s.
pub const DEFAULT_TIMEOUT_MS: u32 = 10_000;

/// The most bytes of a response body the SDK reads for the app by default
/// (MCP answers, `AuthedFetch::get_json`, `AuthedFetch::read_body`): 8 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 << 20;

/// Sends engine requests with `fetch`, never following redirects. Every
/// request is aborted after its timeout (default [`DEFAULT_TIMEOUT_MS`]),
/// and a body is read as a stream and cut at [`MAX_BODY_BYTES`] whatever
/// `Content-Length` says, so a slow or endless answer cannot hold the user's
/// object (and its write lock) or its memory.
#[derive(Debug, Clone, Copy)]
pub struct WorkerHttp {
    timeout_ms: u32,
}

impl Default for WorkerHttp {
    fn default() -> Self {
        Self {
            timeout_ms: DEFAULT_TIMEOUT_MS,
        }
    }
}

impl WorkerHttp {
    /// A client whose requests are aborted after `timeout_ms`.
    pub fn with_timeout_ms(timeout_ms: u32) -> Self {
        Self { timeout_ms }
    }
}

pub(crate) fn to_worker_method(m: Method) -> worker::Method {
    match m {
        Method::Get => worker::Method::Get,
        Method::Head => worker::Method::Head,
        Method::Post => worker::Method::Post,
        Method::Put => worker::Method::Put,
    }
}

/// `AbortSignal.timeout(ms)`: aborts the request and its body when it fires.
pub(crate) fn timeout_signal(ms: u32) -> Result<worker::AbortSignal, TransportError> {
    let ctor = js_sys::Reflect::get(&js_sys::global(), &"AbortSignal".into())
        .map_err(|_| TransportError::new("no AbortSignal in this runtime"))?;
    let timeout = js_sys::Reflect::get(&ctor, &"timeout".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .ok_or_else(|| TransportError::new("no AbortSignal.timeout in this runtime"))?;
    let signal = timeout
        .call1(&ctor, &wasm_bindgen::JsValue::from(ms))
        .map_err(|_| TransportError::new("AbortSignal.timeout failed"))?;
    Ok(worker::AbortSignal::from(
        signal.unchecked_into::<worker::worker_sys::web_sys::AbortSignal>(),
    ))
}

/// A request built on the runtime's own `RequestInit`. `worker::RequestInit`
/// also carries Cloudflare's `cf` options, whose encoder is about 12 KB of
/// wasm the SDK never uses.
pub(crate) fn new_request(
    url: &str,
    method: &str,
    headers: &Headers,
    body: Option<&wasm_bindgen::JsValue>,
    manual_redirect: bool,
) -> worker::Result<Request> {
    use worker::worker_sys::web_sys;
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_headers(&headers.0);
    if manual_redirect {
        init.set_redirect(web_sys::RequestRedirect::Manual);
    }
    if let Some(body) = body {
        init.set_body(body);
    }
    web_sys::Request::new_with_str_and_init(url, &init)
        .map(Request::from)
        .map_err(worker::Error::from)
}

/// Reads a body as a stream, failing once it passes `cap` bytes.
pub(crate) async fn read_capped(
    resp: &mut worker::Response,
    cap: usize,
) -> Result<Vec<u8>, String> {
    use futures_core::Stream;
    let mut stream = resp.stream().map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    loop {
        let next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_next(cx)).await;
        match next {
            None => return Ok(body),
            Some(Err(e)) => return Err(e.to_string()),
            Some(Ok(chunk)) => {
                if body.len() + chunk.len() > cap {
                    return Err(format!("response body larger than {cap} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
        }
    }
}

/// The DPoP nonces servers gave, kept for this isolate's requests.
static NONCES: std::sync::LazyLock<crate::dpop::Nonces> =
    std::sync::LazyLock::new(Default::default);

/// This isolate's memory of the servers' DPoP nonces.
pub(crate) fn nonces() -> &'static crate::dpop::Nonces {
    &NONCES
}

impl HttpClient for WorkerHttp {
    fn fill_random(&self, buf: &mut [u8]) -> Result<(), String> {
        random_bytes(buf)
    }

    fn dpop_nonces(&self) -> Option<&crate::dpop::Nonces> {
        Some(nonces())
    }

    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let fail = |e: worker::Error| TransportError::new(e.to_string());
        let headers = Headers::new();
        for (name, value) in &request.headers {
            headers.append(name, value).map_err(fail)?;
        }
        let body = (!request.body.is_empty()).then(|| {
            wasm_bindgen::JsValue::from(js_sys::Uint8Array::from(request.body.as_slice()))
        });
        let timed_out =
            || TransportError::new(format!("no complete answer within {} ms", self.timeout_ms));
        let signal = timeout_signal(self.timeout_ms)?;
        let method = to_worker_method(request.method);
        let req = new_request(
            request.url.as_str(),
            method.as_ref(),
            &headers,
            body.as_ref(),
            true,
        )
        .map_err(fail)?;
        let mut resp = Fetch::Request(req)
            .send_with_signal(&signal)
            .await
            .map_err(|e| {
                if signal.aborted() {
                    timed_out()
                } else {
                    fail(e)
                }
            })?;
        let status = resp.status_code();
        let headers: Vec<(String, String)> = resp.headers().entries().collect();
        let body = if !crate::http::reads_body(request.method, &headers) {
            Vec::new()
        } else {
            read_capped(&mut resp, MAX_BODY_BYTES).await.map_err(|e| {
                if signal.aborted() {
                    timed_out()
                } else {
                    TransportError::new(e)
                }
            })?
        };
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

/// Seconds since the epoch from the Workers clock.
pub fn now() -> u64 {
    worker::Date::now().as_millis() / 1000
}

/// Fills `buf` from `crypto.getRandomValues`.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<(), String> {
    let global = js_sys::global();
    let crypto = js_sys::Reflect::get(&global, &"crypto".into()).map_err(|_| "no crypto object")?;
    let get = js_sys::Reflect::get(&crypto, &"getRandomValues".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .ok_or("no crypto.getRandomValues")?;
    let array = js_sys::Uint8Array::new_with_length(buf.len() as u32);
    get.call1(&crypto, &array)
        .map_err(|_| "crypto.getRandomValues failed")?;
    array.copy_to(buf);
    Ok(())
}

/// Fresh entropy for one authorization request.
pub(crate) fn entropy() -> Result<crate::settings::Entropy, String> {
    let mut e = crate::settings::Entropy {
        verifier: [0; 32],
        state: [0; 32],
        dpop: [0; 32],
    };
    random_bytes(&mut e.verifier)?;
    random_bytes(&mut e.state)?;
    random_bytes(&mut e.dpop)?;
    Ok(e)
}
