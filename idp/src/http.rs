//! The one door to the network: a small async HTTP trait and plain request and
//! response values.
//!
//! The engine builds [`HttpRequest`]s and parses [`HttpResponse`]s; a runtime
//! (the Workers `Fetch` API, `reqwest`, a test double) moves them. The trait has no
//! `Send` bound so it fits single-threaded wasm. Implementations must not follow
//! redirects: the engine decides what a redirect means.

use std::future::Future;
use url::Url;

/// The largest response body the engine reads (1 MiB). Metadata documents and
/// token responses are a few kilobytes; anything bigger is refused.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// An HTTP method used by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT (RFC 7592 registration updates)
    Put,
}

impl Method {
    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

/// A request the engine wants sent.
///
/// `Debug` leaves out header values and the body: they may carry credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Method.
    pub method: Method,
    /// Absolute URL.
    pub url: Url,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// Body bytes (empty for GET and HEAD).
    pub body: Vec<u8>,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url.as_str())
            .field("headers", &names)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl HttpRequest {
    /// A GET asking for JSON.
    pub fn get_json(url: Url) -> Self {
        Self {
            method: Method::Get,
            url,
            headers: vec![("accept".into(), "application/json".into())],
            body: Vec::new(),
        }
    }

    /// A POST of a form body, accepting JSON.
    pub fn post_form(url: Url, body: Vec<u8>) -> Self {
        Self {
            method: Method::Post,
            url,
            headers: vec![
                (
                    "content-type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                ("accept".into(), "application/json".into()),
            ],
            body,
        }
    }

    /// A POST of a JSON body, accepting JSON.
    pub fn post_json(url: Url, body: &serde_json::Value) -> Self {
        Self {
            method: Method::Post,
            url,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("accept".into(), "application/json".into()),
            ],
            body: body.to_string().into_bytes(),
        }
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// A response as the engine sees it.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names and values, one entry per header line.
    pub headers: Vec<(String, String)>,
    /// Body bytes (at most [`MAX_BODY_BYTES`] when produced by a well-behaved client).
    pub body: Vec<u8>,
}

impl std::fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl HttpResponse {
    /// A response with a status and a body.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Every value of a header, by case-insensitive name, in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Why a request could not be sent or its response could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    /// What went wrong, without secrets.
    pub message: String,
}

impl TransportError {
    /// A transport error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Sends one request and returns its response, without following redirects;
/// and gives what goes with sending a signed request: fresh randomness for
/// each proof's and assertion's `jti`, and the servers' DPoP nonces.
///
/// Implemented by the runtimes (`reqwest` behind the `native` feature, the Workers
/// `Fetch` API) and by closures in tests. A closure only sends: it draws no
/// random numbers, so a request that needs a `jti` (a DPoP-bound or
/// `private_key_jwt` token request) fails through it with
/// [`Error::NoRandomness`](crate::Error::NoRandomness).
pub trait HttpClient {
    /// Sends `request`. A non-2xx status is a response, not an error.
    fn send(
        &self,
        request: HttpRequest,
    ) -> impl Future<Output = Result<HttpResponse, TransportError>>;

    /// Fills `buf` with fresh random bytes from the platform (`getrandom`,
    /// `crypto.getRandomValues`). The default has none.
    fn fill_random(&self, buf: &mut [u8]) -> Result<(), String> {
        let _ = buf;
        Err("this HTTP client draws no random numbers".into())
    }

    /// Where this client keeps the nonces DPoP servers hand out. Without
    /// (the default), each request to a server that wants a nonce is
    /// refused once and sent again with it.
    fn dpop_nonces(&self) -> Option<&crate::dpop::Nonces> {
        None
    }
}

/// 16 fresh random bytes from `http`'s runtime: a `jti`.
pub(crate) fn jti(http: &impl HttpClient) -> crate::Result<[u8; 16]> {
    let mut bytes = [0; 16];
    http.fill_random(&mut bytes)
        .map_err(crate::Error::NoRandomness)?;
    Ok(bytes)
}

impl<F, Fut> HttpClient for F
where
    F: Fn(HttpRequest) -> Fut,
    Fut: Future<Output = Result<HttpResponse, TransportError>>,
{
    fn send(
        &self,
        request: HttpRequest,
    ) -> impl Future<Output = Result<HttpResponse, TransportError>> {
        self(request)
    }
}

/// Whether a runtime reads the body of the answer to a `method` request
/// with these headers: not for `HEAD`, and not for a `GET` answered with an
/// event stream (an MCP server's stream, open-ended; what the SDK asks with
/// a `GET` needs only its status and headers then). Both runtimes follow it.
pub fn reads_body(method: Method, headers: &[(String, String)]) -> bool {
    let stream = || {
        headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("content-type")
                && v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("text/event-stream")
        })
    };
    match method {
        Method::Head => false,
        Method::Get => !stream(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_stream_answering_a_get_is_not_read() {
        let h = |ct: &str| vec![("Content-Type".to_owned(), ct.to_owned())];
        assert!(!reads_body(Method::Get, &h("text/event-stream")));
        assert!(!reads_body(
            Method::Get,
            &h("Text/Event-Stream; charset=utf-8")
        ));
        assert!(reads_body(Method::Get, &h("application/json")));
        assert!(reads_body(Method::Post, &h("text/event-stream")));
        assert!(!reads_body(Method::Head, &h("application/json")));
    }
}
