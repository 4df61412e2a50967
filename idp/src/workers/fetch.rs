//! [`AuthedFetch`]: an HTTP client that authorizes each request for the
//! signed-in user.

use super::client::ProvidersStub;
use super::error::{AuthorizationRequired, Error, Reason};
use crate::authorize::{scopes_cover, union_scopes};
use crate::challenge::BearerChallenge;
use crate::matching::ResourceKey;
use serde::de::DeserializeOwned;
use url::Url;
use worker::{Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response};

/// Redirects followed per request.
const MAX_REDIRECTS: usize = 5;

/// Headers [`OutgoingRequest::from_request`] never forwards: the incoming
/// caller's credentials, and connection-level headers.
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

/// Credential headers a redirect to another origin drops, as browsers do.
const CREDENTIALS: &[&str] = &["authorization", "cookie", "proxy-authorization"];

fn origin_of(url: &str) -> Option<url::Origin> {
    url::Url::parse(url).ok().map(|u| u.origin())
}

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

    /// Reads a Workers request as [`OutgoingRequest::from_request`] does, to
    /// send it to `url` instead (a proxy route: method, safe headers and body
    /// are kept).
    pub async fn forward(req: Request, url: impl Into<String>) -> Result<Self, Error> {
        let mut out = Self::from_request(req).await?;
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
}

/// The URL that connects (or re-connects) `resource` through the login route
/// `login`, optionally asking for `scope`.
pub(crate) fn login_url(login: &Url, resource: &str, scope: Option<&str>) -> String {
    let mut u = login.clone();
    u.query_pairs_mut().append_pair("url", resource);
    if let Some(s) = scope {
        u.query_pairs_mut().append_pair("scope", s);
    }
    u.into()
}

struct Sent {
    response: Response,
    /// Whether the final hop carried the Authorization header.
    authorized: bool,
    /// The final URL.
    url: String,
}

impl<'a> AuthedFetch<'a> {
    /// A client for the user of `stub`, whose login route is `login`.
    pub(crate) fn new(stub: &'a ProvidersStub, login: &'a Url, timeout_ms: Option<u32>) -> Self {
        Self {
            stub,
            login,
            timeout_ms: timeout_ms.unwrap_or(super::http::DEFAULT_TIMEOUT_MS),
        }
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
        Ok(resp.json().await?)
    }

    /// Sends a request, authorizing it as described on [`AuthedFetch`].
    pub async fn send(&self, req: OutgoingRequest) -> Result<Response, Error> {
        let auth = self.stub.authorization(&req.url).await?;
        let key = auth.as_ref().map(|a| a.key.clone());
        let header = auth.as_ref().and_then(|a| a.header.clone());
        let sent = self.dispatch(&req, key.as_ref(), header.as_deref()).await?;
        match sent.response.status_code() {
            401 if sent.authorized => {
                let (Some(a), Some(h)) = (&auth, &header) else {
                    return Ok(sent.response);
                };
                // A 401 whose challenge asks for scope the token does not
                // hold is a step-up, not a stale token: refreshing cannot
                // add scope.
                if let Some(c) = bearer_challenge(&sent.response) {
                    let asks_more = c.scope.is_some()
                        && a.scope.is_some()
                        && !scopes_cover(a.scope.as_deref(), c.scope.as_deref());
                    if c.error.as_deref() == Some("insufficient_scope") || asks_more {
                        if scopes_cover(a.scope.as_deref(), c.scope.as_deref()) {
                            return Ok(sent.response);
                        }
                        let scope = union_scopes(a.scope.as_deref(), c.scope.as_deref());
                        return Err(self.required(
                            a.key.as_str(),
                            scope.as_deref(),
                            Reason::InsufficientScope,
                        ));
                    }
                }
                let token = h.strip_prefix("Bearer ").unwrap_or(h);
                let retry = match self.stub.rejected(&a.key, token).await {
                    Ok(r) => r,
                    Err(Error::Remote(e)) if e.reauthorize => {
                        let reason = if e.code == super::protocol::ErrorCode::Expired {
                            Reason::Expired
                        } else {
                            Reason::Revoked
                        };
                        return Err(self.required(a.key.as_str(), None, reason));
                    }
                    Err(e) => return Err(e),
                };
                let again = self
                    .dispatch(&req, key.as_ref(), retry.header.as_deref())
                    .await?;
                if again.response.status_code() == 401 && again.authorized {
                    return Err(self.required(a.key.as_str(), None, Reason::Revoked));
                }
                self.check_scope(again, a.key.as_str(), retry.scope.as_deref())
            }
            401 => {
                if bearer_challenge(&sent.response).is_some() {
                    let resource = match &auth {
                        Some(a) if sent.url == req.url => a.key.to_string(),
                        _ => sent.url.clone(),
                    };
                    return Err(self.required(&resource, None, Reason::NeverConnected));
                }
                Ok(sent.response)
            }
            _ => match &auth {
                Some(a) => self.check_scope(sent, a.key.as_str(), a.scope.as_deref()),
                None => Ok(sent.response),
            },
        }
    }

    fn required(&self, resource: &str, scope: Option<&str>, reason: Reason) -> Error {
        Error::AuthorizationRequired(AuthorizationRequired {
            resource: resource.to_owned(),
            reauthorize_url: login_url(self.login, resource, scope),
            reason,
        })
    }

    /// A 403 `insufficient_scope` becomes a step-up error.
    ///
    /// When the token already holds every scope the server asks for, asking
    /// again cannot help (the server will never accept): the 403 is returned
    /// as it is, so a server that never accepts cannot loop the person
    /// through authorization.
    fn check_scope(&self, sent: Sent, key: &str, held: Option<&str>) -> Result<Response, Error> {
        if sent.response.status_code() == 403 && sent.authorized {
            if let Some(c) = bearer_challenge(&sent.response) {
                if c.error.as_deref() == Some("insufficient_scope") {
                    if scopes_cover(held, c.scope.as_deref()) {
                        return Ok(sent.response);
                    }
                    let scope = union_scopes(held, c.scope.as_deref());
                    return Err(self.required(key, scope.as_deref(), Reason::InsufficientScope));
                }
            }
        }
        Ok(sent.response)
    }

    /// Sends, following redirects by hand. The header goes only to URLs under
    /// `key`.
    async fn dispatch(
        &self,
        req: &OutgoingRequest,
        key: Option<&ResourceKey>,
        header: Option<&str>,
    ) -> Result<Sent, Error> {
        let mut url = req.url.clone();
        let mut method = req.method.clone();
        let mut body = req.body.clone();
        for _ in 0..=MAX_REDIRECTS {
            let authorized = header.is_some() && key.is_some_and(|k| k.covers_request(&url));
            let same_origin = origin_of(&url) == origin_of(&req.url);
            let headers = Headers::new();
            for (n, v) in &req.headers {
                let credential = CREDENTIALS.iter().any(|c| n.eq_ignore_ascii_case(c));
                // The SDK's own Authorization is set below; the caller's
                // credentials never follow a redirect to another origin.
                let dropped =
                    n.eq_ignore_ascii_case("authorization") || (credential && !same_origin);
                if !dropped {
                    headers.append(n, v)?;
                }
            }
            if authorized {
                if let Some(h) = header {
                    headers.set("authorization", h)?;
                }
            }
            let mut init = RequestInit::new();
            init.with_method(method.clone())
                .with_headers(headers)
                .with_redirect(RequestRedirect::Manual);
            if let Some(b) = &body {
                init.with_body(Some(js_sys::Uint8Array::from(b.as_slice()).into()));
            }
            let timeout_ms = self.timeout_ms;
            let signal =
                super::http::timeout_signal(timeout_ms).map_err(|e| Error::Runtime(e.message))?;
            let response = Fetch::Request(Request::new_with_init(&url, &init)?)
                .send_with_signal(&signal)
                .await
                .map_err(|e| {
                    if signal.aborted() {
                        Error::Runtime(format!("{url} gave no answer within {timeout_ms} ms"))
                    } else {
                        Error::from(e)
                    }
                })?;
            let status = response.status_code();
            let location = response.headers().get("location")?;
            match (status, location) {
                (301 | 302 | 303 | 307 | 308, Some(loc)) => {
                    let next = url::Url::parse(&url)
                        .and_then(|u| u.join(&loc))
                        .map_err(|e| Error::Runtime(format!("bad redirect from {url}: {e}")))?;
                    if status == 303 || (matches!(status, 301 | 302) && method == Method::Post) {
                        method = Method::Get;
                        body = None;
                    }
                    url = next.into();
                }
                _ => {
                    return Ok(Sent {
                        response,
                        authorized,
                        url,
                    })
                }
            }
        }
        Err(Error::Runtime(format!(
            "more than {MAX_REDIRECTS} redirects from {}",
            req.url
        )))
    }
}

fn bearer_challenge(resp: &Response) -> Option<BearerChallenge> {
    let value = resp.headers().get("www-authenticate").ok().flatten()?;
    BearerChallenge::from_headers([value.as_str()])
        .ok()
        .flatten()
}
