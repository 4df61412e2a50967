//! The SDK's own routes, answered by [`Handler::middleware`]: the login
//! (started at once from the app's own pages, confirmed from anywhere else),
//! the callback, and the client ID metadata document.

use super::client::call_registry;
use super::config::{base_for, route_url, Config};
use super::handler::Handler;
use super::pages;
use super::protocol::{
    Callback, CallbackReply, ConfirmationToken, KnownIssuers, Login, LoginReply, ProviderView,
};
use url::Url;
use worker::{Env, Method, Request, Response};

/// The parameters of a login, from the query or the confirmation form.
struct LoginQuery {
    url: Option<String>,
    scope: Option<String>,
    token: Option<String>,
    /// The account to connect beside those already connected
    /// ([`crate::flow::accounts`]).
    account: Option<String>,
}

impl Handler {
    /// Answers the SDK's own routes (`{prefix}/login`, `{prefix}/callback/..`,
    /// and the client ID metadata documents when configured here); `None` for
    /// every other request.
    pub async fn middleware(&self, req: &Request) -> worker::Result<Option<Response>> {
        if let Some(resp) = client_metadata_response(&self.config, &self.stub.env, req).await? {
            return Ok(Some(resp));
        }
        let url = req.url()?;
        let Some(rest) = url.path().strip_prefix(self.config.prefix.as_str()) else {
            return Ok(None);
        };
        let is_callback = rest == "/callback" || rest.starts_with("/callback/");
        match (req.method(), rest) {
            (Method::Get, "/login") => self.login(req, &url).await.map(Some),
            (Method::Post, "/login") => self.confirmed_login(req).await.map(Some),
            (Method::Get, _) if is_callback => self.callback(&url, rest).await.map(Some),
            _ => Ok(None),
        }
    }

    /// An SDK page: never cached, never framed (its buttons cannot be
    /// clicked through another site's page).
    fn page(&self, html: String, status: u16) -> worker::Result<Response> {
        let mut resp = Response::from_html(html)?.with_status(status);
        let headers = resp.headers_mut();
        headers.set("cache-control", "no-store")?;
        headers.set("x-frame-options", "DENY")?;
        headers.set(
            "content-security-policy",
            "frame-ancestors 'none'; default-src 'none'; style-src 'unsafe-inline'",
        )?;
        headers.set("referrer-policy", "no-referrer")?;
        Ok(resp)
    }

    fn connected(
        &self,
        provider: &ProviderView,
        hook_error: Option<&str>,
    ) -> worker::Result<Response> {
        let html = pages::connected(
            &provider.name,
            provider.resource_url.as_str(),
            hook_error,
            &self.config.return_to,
        );
        self.page(html, 200)
    }

    fn failure(&self, message: &str, status: u16) -> worker::Result<Response> {
        self.page(pages::failed(message, &self.config.return_to), status)
    }

    /// `GET {prefix}/login?url=&scope=`: starts at once when the request
    /// comes from the app's own pages; from anywhere else (another site, a
    /// typed or bookmarked URL, a client that says nothing) it only answers a
    /// confirmation page, whose button posts back with a single-use token.
    async fn login(&self, req: &Request, url: &Url) -> worker::Result<Response> {
        let q = login_query(url.query_pairs());
        let Some(resource) = q.url.clone() else {
            return self.missing_url();
        };
        if self.same_origin(req) {
            return self.start_login(q, None).await;
        }
        let token = match self
            .stub
            .call(ConfirmationToken {
                owner: self.stub.owner.clone(),
            })
            .await
        {
            Ok(t) => t,
            Err(e) => return self.failure(&e.to_string(), e.status()),
        };
        // The account, if any, goes with the form's action.
        let mut action = format!("{}/login", self.config.prefix);
        if let Some(a) = &q.account {
            let a: String = url::form_urlencoded::byte_serialize(a.as_bytes()).collect();
            action = format!("{action}?account={a}");
        }
        let html = pages::confirm(
            &resource,
            q.scope.as_deref(),
            &action,
            &token,
            &self.config.return_to,
        );
        self.page(html, 200)
    }

    /// `POST {prefix}/login` from the confirmation page: `url`, `scope` and
    /// the page's `token` as a form.
    async fn confirmed_login(&self, req: &Request) -> worker::Result<Response> {
        let body = req.clone()?.text().await.unwrap_or_default();
        let mut q = login_query(url::form_urlencoded::parse(body.as_bytes()));
        q.account = login_query(req.url()?.query_pairs()).account;
        let Some(token) = q.token.clone() else {
            return self.failure(&crate::Error::Confirmation.to_string(), 403);
        };
        if q.url.is_none() {
            return self.missing_url();
        }
        self.start_login(q, Some(token)).await
    }

    fn missing_url(&self) -> worker::Result<Response> {
        self.failure(
            "The url parameter is missing: say which resource to connect.",
            400,
        )
    }

    /// Whether the browser says the request comes from this app's origin:
    /// `Sec-Fetch-Site: same-origin`, or without that header an `Origin` or
    /// else `Referer` on the app's origin. No header at all is not same-origin.
    /// Whether the browser says `req` comes from another site: a
    /// `Sec-Fetch-Site` of `cross-site` or `same-site`, or (without it) an
    /// `Origin` other than the app's. An app refuses such requests on routes
    /// that act with the person's credentials (a link or a form on another
    /// site must not make the Worker send the person's token anywhere).
    /// Requests that say nothing (a client that is not a browser) pass.
    pub fn is_cross_site(&self, req: &Request) -> bool {
        let header = |name: &str| req.headers().get(name).ok().flatten();
        if let Some(site) = header("sec-fetch-site") {
            let site = site.trim().to_ascii_lowercase();
            return site == "cross-site" || site == "same-site";
        }
        let ours = self.base.origin();
        header("origin").is_some_and(|o| Url::parse(&o).map_or(true, |u| u.origin() != ours))
    }

    fn same_origin(&self, req: &Request) -> bool {
        let header = |name: &str| req.headers().get(name).ok().flatten();
        if let Some(site) = header("sec-fetch-site") {
            return site.trim().eq_ignore_ascii_case("same-origin");
        }
        let ours = self.base.origin();
        let on_ours = |v: String| Url::parse(&v).is_ok_and(|u| u.origin() == ours);
        if let Some(origin) = header("origin") {
            return on_ours(origin);
        }
        header("referer").is_some_and(on_ours)
    }

    async fn start_login(
        &self,
        q: LoginQuery,
        confirmation: Option<String>,
    ) -> worker::Result<Response> {
        let Some(resource) = q.url else {
            return self.missing_url();
        };
        // A URL that is not one goes no further than the Worker.
        let resource = match super::error::parse_url(&resource) {
            Ok(u) => u,
            Err(e) => return self.failure(&e.to_string(), e.status()),
        };
        // Another account is the user's account as a store owner.
        let owner = match crate::flow::accounts::owner_of(&self.stub.owner, q.account.as_deref()) {
            Ok(o) => o,
            Err(e) => return self.failure(&e.to_string(), e.kind().status()),
        };
        let call = Login {
            owner,
            url: resource,
            scope: q.scope,
            settings: Box::new(self.settings()),
            confirmation,
        };
        match self.stub.call(call).await {
            Ok(LoginReply::Redirect(url)) => {
                // Built by hand: `Response::redirect` has immutable headers.
                let mut resp = Response::empty()?.with_status(302);
                resp.headers_mut().set("location", url.as_str())?;
                resp.headers_mut().set("cache-control", "no-store")?;
                Ok(resp)
            }
            Ok(LoginReply::Public(CallbackReply {
                provider,
                hook_error,
            })) => self.connected(&provider, hook_error.as_deref()),
            Err(e) => self.failure(&e.to_string(), e.status()),
        }
    }

    async fn callback(&self, url: &Url, path: &str) -> worker::Result<Response> {
        let Ok(callback_uri) = Url::parse(&self.route(path)) else {
            return self.failure("This callback URL is not valid.", 400);
        };
        let call = Callback {
            owner: self.stub.owner.clone(),
            callback_uri,
            query: url.query().unwrap_or_default().to_owned(),
        };
        match self.stub.call(call).await {
            Ok(CallbackReply {
                provider,
                hook_error,
            }) => self.connected(&provider, hook_error.as_deref()),
            Err(e) => self.failure(&e.to_string(), e.status()),
        }
    }
}

/// How many authorization servers' callback URLs the client ID metadata
/// document lists (the most recently used).
const MAX_DOCUMENT_ISSUERS: usize = 100;

/// Serves the client ID metadata document at the configured URL when `req`
/// asks for it on this Worker. Its client id is that URL at every server; its
/// `redirect_uris` are the callback URL of each authorization server the
/// deployment has used that accepts the document and promises RFC 9207
/// `iss` or is trusted without it
/// ([`ClientConfig::metadata_document_without_iss`](crate::registration::ClientConfig::metadata_document_without_iss);
/// kept by the registry object; the server fetching the document was used
/// before it did), of each pre-registered client, and the base callback URL. Authorization
/// servers fetch it without a session, so this runs before the user is known
/// (the `#[idp_worker]` entry point calls it first).
pub async fn client_metadata_response(
    config: &Config,
    env: &Env,
    req: &Request,
) -> worker::Result<Option<Response>> {
    let Some(doc_url) = &config.clients.metadata_document_url else {
        return Ok(None);
    };
    let url = req.url()?;
    if req.method() != Method::Get
        || doc_url.origin() != url.origin()
        || doc_url.path() != url.path()
    {
        return Ok(None);
    }
    let base = base_for(config, &url).map_err(worker::Error::RustError)?;
    let callback_base = Url::parse(&route_url(&base, &config.prefix, "/callback"))
        .map_err(|e| worker::Error::RustError(e.to_string()))?;
    let issuers = call_registry(
        env,
        &config.binding,
        KnownIssuers {
            limit: MAX_DOCUMENT_ISSUERS,
        },
    )
    .await
    .map_err(|e| worker::Error::RustError(e.to_string()))?;
    // Only the callbacks of servers that send `iss` (or are trusted without
    // it): a server without `iss` listed here would let an attacker's server
    // have an honest one send its code to the attacker's callback URL.
    let mut redirect_uris = vec![callback_base.clone()];
    let listed = issuers
        .iter()
        .filter(|i| config.clients.metadata_document_lists(i))
        .map(|i| &i.issuer);
    for issuer in listed.chain(config.clients.pre_registered.iter().map(|p| &p.issuer)) {
        let uri =
            crate::callback::redirect_uri(&callback_base, &config.clients.callback_id(issuer));
        if !redirect_uris.contains(&uri) {
            redirect_uris.push(uri);
        }
    }
    let doc =
        crate::registration::client_metadata_document(doc_url, &config.client_info, &redirect_uris);
    let mut resp = Response::from_json(&doc)?;
    resp.headers_mut().set("cache-control", "no-cache")?;
    Ok(Some(resp))
}

fn login_query<'a>(
    pairs: impl Iterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
) -> LoginQuery {
    let mut q = LoginQuery {
        url: None,
        scope: None,
        token: None,
        account: None,
    };
    for (k, v) in pairs {
        let v = Some(v.into_owned()).filter(|v| !v.trim().is_empty());
        match k.as_ref() {
            "url" if q.url.is_none() => q.url = v,
            "scope" if q.scope.is_none() => q.scope = v,
            "token" if q.token.is_none() => q.token = v,
            "account" if q.account.is_none() => q.account = v,
            _ => {}
        }
    }
    q
}
