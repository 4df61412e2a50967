//! [`HttpClient`] over the Workers `fetch` API, and randomness and time.

use crate::http::{HttpClient, HttpRequest, HttpResponse, Method, TransportError, MAX_BODY_BYTES};
use wasm_bindgen::JsCast;
use worker::{Fetch, Headers, Request, RequestInit, RequestRedirect};

/// Sends engine requests with `fetch`, never following redirects.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkerHttp;

pub(crate) fn to_worker_method(m: Method) -> worker::Method {
    match m {
        Method::Get => worker::Method::Get,
        Method::Head => worker::Method::Head,
        Method::Post => worker::Method::Post,
    }
}

impl HttpClient for WorkerHttp {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let fail = |e: worker::Error| TransportError::new(e.to_string());
        let headers = Headers::new();
        for (name, value) in &request.headers {
            headers.append(name, value).map_err(fail)?;
        }
        let mut init = RequestInit::new();
        init.with_method(to_worker_method(request.method))
            .with_headers(headers)
            .with_redirect(RequestRedirect::Manual);
        if !request.body.is_empty() {
            init.with_body(Some(
                js_sys::Uint8Array::from(request.body.as_slice()).into(),
            ));
        }
        let req = Request::new_with_init(request.url.as_str(), &init).map_err(fail)?;
        let mut resp = Fetch::Request(req).send().await.map_err(fail)?;
        let status = resp.status_code();
        let headers: Vec<(String, String)> = resp.headers().entries().collect();
        let declared = resp
            .headers()
            .get("content-length")
            .ok()
            .flatten()
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
            return Err(TransportError::new(format!(
                "response body larger than {MAX_BODY_BYTES} bytes"
            )));
        }
        let body = if request.method == Method::Head {
            Vec::new()
        } else {
            resp.bytes().await.map_err(fail)?
        };
        if body.len() > MAX_BODY_BYTES {
            return Err(TransportError::new(format!(
                "response body larger than {MAX_BODY_BYTES} bytes"
            )));
        }
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
pub(crate) fn entropy() -> Result<crate::flow::Entropy, String> {
    let mut e = crate::flow::Entropy {
        verifier: [0; 32],
        state: [0; 32],
    };
    random_bytes(&mut e.verifier)?;
    random_bytes(&mut e.state)?;
    Ok(e)
}
