//! [`AuthedFetch`]: an HTTP client that authorizes each request for the
//! signed-in user.

use super::client::ProvidersStub;
use super::error::{AuthorizationRequired, Error};
use crate::fetch::{Answered, CallIo, Exchange, Hop, Reason, Reauthorize};
use crate::flow::Authorization;
use serde::de::DeserializeOwned;
use url::Url;
use worker::{Fetch, Headers, Method, Request, Response};

/// Headers [`OutgoingRequest::from_request`] never forwards: the incoming
/// caller's credentials, and connection-level headers.
/// The headers [`OutgoingRequest::forward`] passes on.
pub const FORWARDED_HEADERS: &[&str] = &[
    "accept",
    "accept-language",
    "content-type",
    "content-language",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "range",
    "last-event-id",
    "mcp-session-id",
    "mcp-protocol-version",
    "x-request-id",
];

const NOT_FORWARDED: &[&str] = &[
    "authorization",
    "cookie",
    "proxy-authorization",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "cf-connecting-ip",
    "x-forwarded-for",
];

/// A request with a replayable body, so it can be retried once after a refresh.
#[derive(Debug, Clone)]
pub struct OutgoingRequest {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

impl OutgoingRequest {
    /// A request with no body.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// A GET.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }

    /// A POST of JSON.
    pub fn post_json(url: impl Into<String>, value: &impl serde::Serialize) -> Result<Self, Error> {
        let body =
            serde_json::to_vec(value).map_err(|e| Error::Runtime(format!("JSON body: {e}")))?;
        Ok(Self::new(Method::Post, url)
            .header("content-type", "application/json")
            .body(body))
    }

    /// Adds a header. An `Authorization` header is replaced by the SDK's.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, bytes: Vec<u8>) -> Self {
        self.body = Some(bytes);
        self
    }

    /// Reads a Workers request (buffering its body, so it can be replayed).
    /// The caller's credentials and connection headers are not forwarded:
    /// `Cookie`, `Authorization`, `Proxy-Authorization`, `Host` and the
    /// hop-by-hop headers are dropped.
    pub async fn from_request(mut req: Request) -> Result<Self, Error> {
        let headers = req
            .headers()
            .entries()
            .filter(|(n, _)| !NOT_FORWARDED.iter().any(|h| n.eq_ignore_ascii_case(h)))
            .collect();
        let body = match req.method() {
            Method::Get | Method::Head => None,
            _ => Some(req.bytes().await.map_err(|e| {
                Error::NotReplayable(format!(
                    "could not buffer the request body for a retry: {e}"
                ))
            })?),
        };
        Ok(Self {
            method: req.method(),
            url: req.url()?.to_string(),
            headers,
            body,
        })
    }

    /// Reads a Workers request to send it to `url` instead (a proxy route):
    /// its method and body, and only the headers of [`FORWARDED_HEADERS`]
    /// (content negotiation, conditional requests, the MCP session): a
    /// proxy passes what the upstream needs to answer, never whatever the
    /// caller's browser or a page added.
    pub async fn forward(req: Request, url: impl Into<String>) -> Result<Self, Error> {
        let mut out = Self::from_request(req).await?;
        out.headers
            .retain(|(n, _)| FORWARDED_HEADERS.iter().any(|h| n.eq_ignore_ascii_case(h)));
        out.url = url.into();
        Ok(out)
    }
}

/// Sends requests with the signed-in user's credentials.
///
/// - The longest-prefix provider's token is attached (none for a public
///   provider), refreshed first when it expires within 5 minutes: one round
///   trip to the user's Durable Object per call.
/// - On 401 the object refreshes that provider (once, however many callers
///   saw the same token fail) and the request is retried once.
/// - When that cannot work, or nothing is connected and the resource
///   challenges, the result is [`Error::AuthorizationRequired`] with the URL
///   that (re-)authorizes; a 403 `insufficient_scope`, or a 401 whose
///   challenge asks for scope the token does not hold, gives a step-up URL
///   for the union of the held and required scopes (unless the token holds
///   them all already: then asking again cannot help, and the answer is
///   returned as it is).
/// - Redirects are followed by hand; the token is only sent to URLs under the
///   matched provider's prefix, and the caller's own credential headers never
///   follow a redirect to another origin.
/// - Each hop is aborted after the configured timeout
///   ([`Config::timeout`](crate::workers::Config::timeout), default 10 s), its
///   body included.
#[derive(Debug, Clone, Copy)]
pub struct AuthedFetch<'a> {
    stub: &'a ProvidersStub,
    /// `{base}{prefix}/login`, for the URLs that (re-)authorize.
    login: &'a Url,
    timeout_ms: u32,
    /// The isolate token cache's lifetime, when on.
    cache_secs: Option<u32>,
    /// Which hops may be sent at all.
    policy: crate::policy::Policy,
    /// The most body bytes read for the app.
    body_limit: usize,
    /// The user's account to act as, if not their default.
    account: Option<&'a str>,
}

/// The URL that connects (or re-connects) `resource` through the login route
/// `login`, optionally asking for `scope`.
pub(crate) fn login_url(login: &Url, resource: &str, scope: Option<&str>) -> Url {
    let mut u = login.clone();
    u.query_pairs_mut().append_pair("url", resource);
    if let Some(s) = scope {
        u.query_pairs_mut().append_pair("scope", s);
    }
    u
}

impl<'a> AuthedFetch<'a> {
    /// A client for the user of `stub`, whose login route is `login`.
    pub(crate) fn new(stub: &'a ProvidersStub, login: &'a Url, timeout_ms: Option<u32>) -> Self {
        Self {
            stub,
            login,
            timeout_ms: timeout_ms.unwrap_or(super::http::DEFAULT_TIMEOUT_MS),
            cache_secs: None,
            policy: crate::policy::Policy::STRICT,
            body_limit: super::DEFAULT_MAX_BODY_BYTES,
            account: None,
        }
    }

    /// The same client acting as the user's account `label` (a second
    /// GitHub or Google account, [`crate::flow::accounts`]): its tokens,
    /// and re-authorization URLs that connect that account. Without it, a
    /// call uses the account connected first.
    ///
    /// ```no_run
    /// # async fn f(handler: &idp::workers::Handler) -> Result<(), idp::workers::Error> {
    /// let work = handler.fetcher().account("work");
    /// let me = work.get("https://api.github.com/user").await?;
    /// # let _ = me; Ok(()) }
    /// ```
    pub fn account(mut self, label: &'a str) -> Self {
        self.account = Some(label);
        self
    }

    /// The store owner the calls are made as.
    fn owner(&self) -> Result<String, Error> {
        Ok(crate::flow::accounts::acting(
            &self.stub.owner,
            self.account,
        )?)
    }

    /// Reads at most `bytes` of a body for the app.
    pub(crate) fn with_body_limit(mut self, bytes: Option<u32>) -> Self {
        if let Some(b) = bytes {
            self.body_limit = b as usize;
        }
        self
    }

    /// Reads the body of `resp` (an answer from `url`) through the body cap
    /// ([`Config::max_body_bytes`](super::Config#structfield.max_body_bytes)):
    /// streamed, and refused once it passes the cap, whatever
    /// `Content-Length` says.
    pub async fn read_body(&self, resp: &mut Response, url: &str) -> Result<Vec<u8>, Error> {
        super::http::read_capped(resp, self.body_limit)
            .await
            .map_err(|reason| {
                Error::Engine(crate::Error::InvalidResponse {
                    url: url::Url::parse(url).unwrap_or_else(|_| self.login.clone()),
                    reason,
                })
            })
    }

    /// Holds every hop to `policy` (the deployment's, [`crate::policy`]).
    pub(crate) fn with_policy(mut self, policy: crate::policy::Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Uses the isolate token cache for `secs` (none: off).
    pub(crate) fn with_cache(mut self, secs: Option<u32>) -> Self {
        self.cache_secs = secs;
        self
    }

    /// The object's answer for `url`, from the isolate cache when it is on.
    async fn authorization(&self, url: &str) -> Result<Option<crate::flow::Authorization>, Error> {
        let user = &self.owner()?;
        let Some(ttl) = self.cache_secs else {
            return self.stub.authorization_as(user, url, false).await;
        };
        let now = super::http::now();
        if let Some(a) = super::cache::lookup(user, url, now) {
            return Ok(Some(a));
        }
        let auth = self.stub.authorization_as(user, url, true).await?;
        if let Some(a) = &auth {
            super::cache::put(user, a, ttl, now);
        }
        Ok(auth)
    }

    /// GETs a URL.
    pub async fn get(&self, url: &str) -> Result<Response, Error> {
        self.send(OutgoingRequest::get(url)).await
    }

    /// GETs a URL and deserialises a 2xx JSON body.
    pub async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, Error> {
        let mut resp = self.get(url).await?;
        let status = resp.status_code();
        if !(200..300).contains(&status) {
            return Err(Error::Status {
                url: url.to_owned(),
                status,
            });
        }
        let body = self.read_body(&mut resp, url).await?;
        crate::encoding::json_from_bytes(&body).map_err(|e| {
            Error::Engine(crate::Error::InvalidResponse {
                url: url::Url::parse(url).unwrap_or_else(|_| self.login.clone()),
                reason: format!("not the JSON expected: {}", crate::error::json_reason(&e)),
            })
        })
    }

    /// Sends a request, authorizing it as described on [`AuthedFetch`] (the
    /// engine's request policy, [`crate::fetch`], run by its one driver).
    pub async fn send(&self, req: OutgoingRequest) -> Result<Response, Error> {
        let found = self.authorization(&req.url).await;
        let owner = self.owner()?;
        let (exchange, next) =
            Exchange::start(method_name(&req.method), &req.url, found, self.policy)?;
        let io = Call {
            fetch: self,
            req: &req,
            owner: &owner,
        };
        crate::fetch::drive(&io, exchange, next).await
    }

    fn required(&self, r: Reauthorize) -> Error {
        let mut login = login_url(self.login, &r.resource, r.scope.as_deref());
        if let Some(label) = self.account {
            login.query_pairs_mut().append_pair("account", label);
        }
        Error::AuthorizationRequired(AuthorizationRequired {
            reauthorize_url: login.into(),
            resource: r.resource,
            reason: r.reason,
        })
    }

    /// Sends one hop as the policy says (with its DPoP `proof` when the
    /// token is bound), within the timeout.
    async fn hop(
        &self,
        req: &OutgoingRequest,
        hop: Hop<'_>,
        proof: Option<&str>,
    ) -> Result<Response, Error> {
        let headers = Headers::new();
        for (n, v) in &req.headers {
            if hop.forwards(n) {
                headers.append(n, v)?;
            }
        }
        if let Some(h) = hop.authorization {
            headers.set("authorization", h)?;
        }
        if let Some(p) = proof {
            headers.set(crate::dpop::HEADER, p)?;
        }
        let body = match (hop.body, &req.body) {
            (true, Some(b)) => Some(wasm_bindgen::JsValue::from(js_sys::Uint8Array::from(
                b.as_slice(),
            ))),
            _ => None,
        };
        let timeout_ms = self.timeout_ms;
        let signal =
            super::http::timeout_signal(timeout_ms).map_err(|e| Error::Runtime(e.message))?;
        let request =
            super::http::new_request(hop.url.as_str(), hop.method, &headers, body.as_ref(), true)?;
        Fetch::Request(request)
            .send_with_signal(&signal)
            .await
            .map_err(|e| {
                if signal.aborted() {
                    Error::Runtime(format!("{} gave no answer within {timeout_ms} ms", hop.url))
                } else {
                    Error::from(e)
                }
            })
    }
}

fn method_name(m: &Method) -> &str {
    m.as_ref()
}

/// One call's I/O for [`crate::fetch::drive`]: hops sent with `fetch`, the
/// grant refreshed by the user's object, the isolate cache kept in step.
struct Call<'a, 'f> {
    fetch: &'a AuthedFetch<'f>,
    req: &'a OutgoingRequest,
    owner: &'a str,
}

impl CallIo for Call<'_, '_> {
    type Answer = Response;
    type Error = Error;

    async fn send(&self, hop: &Hop<'_>, proof: Option<&str>) -> Result<Response, Error> {
        self.fetch.hop(self.req, *hop, proof).await
    }

    fn answered(&self, response: &Response) -> Answered {
        // `Headers::get` joins a repeated header (every challenge) with ", ".
        let header = |n: &str| response.headers().get(n).ok().flatten();
        Answered {
            status: response.status_code(),
            location: header("location"),
            www_authenticate: header("www-authenticate"),
            dpop_nonce: header(crate::dpop::NONCE_HEADER),
        }
    }

    async fn read_body(
        &self,
        mut response: Response,
        url: &Url,
    ) -> Result<(Response, Vec<u8>), Error> {
        let body = self.fetch.read_body(&mut response, url.as_str()).await?;
        let (status, headers) = (response.status_code(), response.headers().clone());
        let again = Response::from_bytes(body.clone())?
            .with_status(status)
            .with_headers(headers);
        Ok((again, body))
    }

    async fn refresh(&self, a: &Authorization, token: &str) -> Result<Authorization, Error> {
        // The resource refused the token: never hand it out again.
        super::cache::forget(self.owner, &a.key);
        let cached = self.fetch.cache_secs.is_some();
        let refreshed = self
            .fetch
            .stub
            .rejected(self.owner, &a.key, token, cached)
            .await;
        if let (Ok(a), Some(ttl)) = (&refreshed, self.fetch.cache_secs) {
            super::cache::put(self.owner, a, ttl, super::http::now());
        }
        refreshed
    }

    fn reauthorize(&self, exchange: &Exchange, r: Reauthorize) -> Error {
        let dead = matches!(
            r.reason,
            Reason::Revoked | Reason::Expired | Reason::BoundTokenRefused
        );
        if let (true, Some(a)) = (dead, exchange.authorization()) {
            super::cache::forget(self.owner, &a.key);
        }
        self.fetch.required(r)
    }

    fn jti(&self) -> Result<[u8; 16], Error> {
        let mut jti = [0u8; 16];
        super::http::random_bytes(&mut jti).map_err(Error::Runtime)?;
        Ok(jti)
    }

    fn nonces(&self) -> &crate::dpop::Nonces {
        super::http::nonces()
    }

    fn now(&self) -> u64 {
        super::http::now()
    }
}
