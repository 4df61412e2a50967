//! [`AuthedFetch`]: the native runtime's authed HTTP client, driving the
//! engine's request policy ([`crate::fetch`]) over reqwest.

use super::{describe, now, MemoryStore, NativeIdp};
use crate::error::{Error, Result};
use crate::fetch::{Answered, CallIo, Exchange, Hop};
use crate::flow::{Authorization, Refused};
use crate::store::Store;
use url::Url;

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
    pub(super) idp: &'a NativeIdp<S>,
    pub(super) owner: Result<crate::flow::accounts::Owner>,
    pub(super) account: Option<&'a str>,
}

impl<'a, S: Store> AuthedFetch<'a, S> {
    /// The same client acting as the user's account `label`
    /// ([`crate::flow::accounts`]); without it, a call uses the account
    /// connected first.
    pub fn account(mut self, label: &'a str) -> Self {
        self.account = Some(label);
        self
    }

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
        let owner = self.owner.clone()?;
        let owner = match self.account {
            None => owner,
            Some(label) => crate::flow::accounts::Owner::account(owner.as_str(), label)?,
        };
        let found = idp.authorization_of(&owner, &url).await;
        let (exchange, next) =
            Exchange::start(request.method().as_str(), &url, found, idp.settings.policy)?;
        let io = Call {
            idp,
            owner: &owner,
            request: &request,
            body,
        };
        crate::fetch::drive(&io, exchange, next).await
    }
}

/// One call's I/O for [`crate::fetch::drive`]: the request as the caller
/// gave it, sent hop by hop with reqwest.
struct Call<'a, S: Store> {
    idp: &'a NativeIdp<S>,
    owner: &'a crate::flow::accounts::Owner,
    request: &'a reqwest::Request,
    body: Option<Vec<u8>>,
}

impl<S: Store> CallIo for Call<'_, S> {
    type Answer = reqwest::Response;
    type Error = Error;

    async fn send(&self, hop: &Hop<'_>, proof: Option<&str>) -> Result<reqwest::Response> {
        let hop_url = hop.url.clone();
        let method =
            reqwest::Method::from_bytes(hop.method.as_bytes()).map_err(|e| Error::InvalidUrl {
                input: self.request.url().to_string(),
                reason: format!("method: {e}"),
            })?;
        let mut builder = self.idp.http.client.request(method, hop_url.clone());
        for (name, value) in self.request.headers() {
            if hop.forwards(name.as_str()) {
                builder = builder.header(name, value);
            }
        }
        if let Some(h) = hop.authorization {
            builder = builder.header("authorization", h);
        }
        if let Some(p) = proof {
            builder = builder.header(crate::dpop::HEADER, p);
        }
        if let (true, Some(b)) = (hop.body, &self.body) {
            builder = builder.body(b.clone());
        }
        builder.send().await.map_err(|e| Error::Transport {
            url: hop_url,
            message: describe(&e),
        })
    }

    fn answered(&self, resp: &reqwest::Response) -> Answered {
        let header = |n: &str| {
            let h = resp.headers().get(n)?;
            h.to_str().ok().map(str::to_owned)
        };
        // Every challenge, whether sent in one header or several (a `DPoP`
        // one on a line of its own says the resource takes bound tokens).
        let challenges: Vec<&str> = resp
            .headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        Answered {
            status: resp.status().as_u16(),
            location: header("location"),
            www_authenticate: (!challenges.is_empty()).then(|| challenges.join(", ")),
            dpop_nonce: header(crate::dpop::NONCE_HEADER),
        }
    }

    async fn read_body(
        &self,
        resp: reqwest::Response,
        url: &Url,
    ) -> Result<(reqwest::Response, Vec<u8>)> {
        read_answer(resp, url).await
    }

    async fn refresh(&self, a: &Authorization, token: &str) -> Result<Authorization> {
        let (idp, owner) = (self.idp, self.owner.as_str());
        let serving = crate::flow::accounts::serving(&idp.store, owner, a.key.as_str()).await?;
        let refused = Refused::Token(token);
        let (http, store) = (&idp.http, &idp.store);
        idp.refresher
            .rejected(http, store, &serving, &a.key, refused, now())
            .await
    }

    fn reauthorize(&self, _: &Exchange, r: crate::fetch::Reauthorize) -> Error {
        Error::AuthorizationRequired(r)
    }

    fn jti(&self) -> Result<[u8; 16]> {
        crate::http::jti(&self.idp.http)
    }

    fn nonces(&self) -> &crate::dpop::Nonces {
        &self.idp.http.nonces
    }

    fn now(&self) -> u64 {
        now()
    }
}

/// The most bytes of an answer read to see whether the API refused the
/// token there (`token::Refusal`): 8 MiB.
const MAX_INSPECTED_BYTES: usize = 8 << 20;

/// Reads `resp`'s body (at most [`MAX_INSPECTED_BYTES`]) and gives back the
/// same answer, with that body, and the body.
async fn read_answer(
    mut resp: reqwest::Response,
    url: &Url,
) -> Result<(reqwest::Response, Vec<u8>)> {
    let mut body = Vec::new();
    let failed = |e: reqwest::Error| Error::Transport {
        url: url.clone(),
        message: describe(&e),
    };
    while let Some(chunk) = resp.chunk().await.map_err(failed)? {
        if body.len() + chunk.len() > MAX_INSPECTED_BYTES {
            return Err(Error::InvalidResponse {
                url: url.clone(),
                reason: format!("the answer is over {MAX_INSPECTED_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    let mut again = http::Response::new(reqwest::Body::from(body.clone()));
    *again.status_mut() = resp.status();
    *again.headers_mut() = resp.headers().clone();
    *again.version_mut() = resp.version();
    Ok((reqwest::Response::from(again), body))
}

/// The engine's [`crate::http::HttpClient`] with the user's credentials, so
/// what speaks through that trait (an MCP conversation,
/// [`crate::mcp::Session`]) acts as the user. Every failure (a resource that
/// needs connecting included) comes back as a [`TransportError`] that says
/// what happened; use [`AuthedFetch::send`] for the typed error.
///
/// ```no_run
/// # async fn run(idp: idp::native::NativeIdp) -> Result<(), idp::mcp::McpError> {
/// let mut mcp = idp::mcp::Session::new("https://mcp.example.com/mcp".parse().unwrap());
/// let fetch = idp.fetch("alice");
/// mcp.connect(&fetch).await?;
/// let tools = mcp.call(&fetch, "tools/list", serde_json::json!({})).await?;
/// # Ok(()) }
/// ```
///
/// [`TransportError`]: crate::http::TransportError
impl<S: Store> crate::http::HttpClient for AuthedFetch<'_, S> {
    async fn send(
        &self,
        request: crate::http::HttpRequest,
    ) -> std::result::Result<crate::http::HttpResponse, crate::http::TransportError> {
        use crate::http::TransportError;
        let failed = |e: Error| TransportError::new(e.to_string());
        let method = super::reqwest_method(request.method);
        let mut req = reqwest::Request::new(method, request.url.clone());
        for (name, value) in &request.headers {
            let (Ok(n), Ok(v)) = (
                reqwest::header::HeaderName::from_bytes(name.as_bytes()),
                reqwest::header::HeaderValue::from_str(value),
            ) else {
                return Err(TransportError::new(format!(
                    "the header {name} is not valid"
                )));
            };
            req.headers_mut().append(n, v);
        }
        if !request.body.is_empty() {
            *req.body_mut() = Some(reqwest::Body::from(request.body));
        }
        let resp = AuthedFetch::send(self, req).await.map_err(failed)?;
        super::read_response(request.method, resp).await
    }

    fn fill_random(&self, buf: &mut [u8]) -> std::result::Result<(), String> {
        self.idp.http.fill_random(buf)
    }

    fn dpop_nonces(&self) -> Option<&crate::dpop::Nonces> {
        self.idp.http.dpop_nonces()
    }
}
