//! [`Handler`]: one request's view of the SDK: the user's object, the URLs
//! of the SDK's routes, and the handler API (authorization for a URL,
//! providers, refresh, removal, MCP sessions). Its routes are answered in
//! `middleware`.

use super::client::ProvidersStub;
use super::config::{base_for, route_url, Config, DEFAULT_BINDING};
use super::error::{parse_url, Error};
use super::fetch::AuthedFetch;
use super::protocol::{
    McpSessionGet, McpSessionPut, ProviderView, Providers, ProvidersPage, Reencrypt, Reencrypted,
    RefreshExpiring, RefreshOutcome, Remove, RemoveOutcome,
};
use crate::matching::ResourceKey;
use url::Url;
use worker::Env;

/// One request's view of the SDK: the signed-in user, the configuration and
/// the user's object.
#[derive(Debug, Clone)]
pub struct Handler {
    pub(crate) config: Config,
    pub(crate) base: Url,
    pub(crate) stub: ProvidersStub,
    /// `{base}{prefix}/login`.
    login: Url,
}

impl Handler {
    /// A handler for `user_id` (required: an empty id is [`Error::NoUser`]).
    /// The base URL is the configured one or `request_url`'s origin. A
    /// configuration with [`Config::problems`] is refused (each is written to
    /// the log): a Worker wired by hand does not run with part of its
    /// configuration dropped either.
    pub fn new(
        env: &Env,
        config: &Config,
        user_id: &str,
        request_url: &Url,
    ) -> Result<Self, Error> {
        config.refuse_problems()?;
        let base = base_for(config, request_url).map_err(Error::Runtime)?;
        let mut stub = ProvidersStub::new(env, &config.binding, user_id)?;
        stub.timeout_ms = config.timeout_ms.map(std::num::NonZeroU32::get);
        let config = config.clone();
        let login = Url::parse(&route_url(&base, &config.prefix, "/login"))
            .map_err(|e| Error::Runtime(format!("base URL and prefix form no URL: {e}")))?;
        Ok(Handler {
            config,
            base,
            stub,
            login,
        })
    }

    /// The same handler acting as the user's account `label` ([`crate::flow::accounts`]):
    /// a second GitHub or Google account beside the first. Its login URLs
    /// connect that account (`{prefix}/login?account=&url=`), and its calls,
    /// refreshes, removal, MCP clients and device logins use that account's
    /// grants. The user's first connection to an API is their default
    /// there, whatever it is named.
    ///
    /// ```no_run
    /// # async fn f(handler: &idp::workers::Handler) -> Result<(), idp::workers::Error> {
    /// let work = handler.account("work")?;
    /// let to_connect = work.login_url("https://api.github.com", None);
    /// let repos = work.fetcher().get("https://api.github.com/user/repos").await?;
    /// # let _ = (to_connect, repos); Ok(()) }
    /// ```
    pub fn account(&self, label: &str) -> Result<Handler, Error> {
        let mut me = self.clone();
        me.stub.owner = crate::flow::accounts::owner_of(&self.stub.owner, Some(label))?;
        me.login.query_pairs_mut().append_pair("account", label);
        Ok(me)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The user's object.
    pub fn stub(&self) -> &ProvidersStub {
        &self.stub
    }

    /// Connects `url` for this user with enterprise-managed authorization:
    /// `id_token`, the user's ID token from the enterprise's identity
    /// provider (configured as [`Config::enterprise_idp`], from
    /// `IDP_ENTERPRISE_IDP`), which the app holds from its own sign-in, is
    /// exchanged there for an identity assertion authorization grant, which
    /// the app's pre-registered client at the resource's authorization
    /// server presents with the JWT bearer grant. No browser and no consent
    /// screen; when the tokens expire the exchange is repeated, and once
    /// the provider no longer takes the ID token, requests answer
    /// [`Error::AuthorizationRequired`] until the user signs in again and
    /// the app connects with the new one.
    ///
    /// ```no_run
    /// # async fn f(handler: &idp::workers::Handler, id_token: &str) -> Result<(), idp::workers::Error> {
    /// handler.connect_enterprise("https://mcp.example.com/mcp", id_token, None).await?;
    /// let tools = handler.fetcher().get("https://mcp.example.com/mcp").await?;
    /// # let _ = tools; Ok(()) }
    /// ```
    pub async fn connect_enterprise(
        &self,
        url: &str,
        id_token: &str,
        scope: Option<&str>,
    ) -> Result<ProviderView, Error> {
        let Some(idp) = self.config.enterprise_idp.clone() else {
            return Err(Error::Engine(crate::Error::Configuration {
                name: "IDP_ENTERPRISE_IDP".into(),
                reason: "no enterprise identity provider is configured".into(),
            }));
        };
        let id_token = crate::secret::Assertion::new(id_token);
        let credential = crate::flow::Credential::Enterprise { idp, id_token };
        connect_with(
            &self.stub,
            &self.login,
            &self.config,
            url,
            scope,
            credential,
        )
        .await
    }

    /// A client that authorizes requests for this user.
    pub fn fetcher(&self) -> AuthedFetch<'_> {
        AuthedFetch::new(
            &self.stub,
            &self.login,
            self.config.timeout_ms.map(std::num::NonZeroU32::get),
        )
        .with_cache(self.config.token_cache_secs.map(std::num::NonZeroU32::get))
        .with_policy(self.policy())
        .with_body_limit(self.config.max_body_bytes.map(std::num::NonZeroU32::get))
    }

    /// The deployment's address policy ([`crate::policy::Policy`]).
    pub(crate) fn policy(&self) -> crate::policy::Policy {
        self.config.policy()
    }

    pub(crate) fn route(&self, path: &str) -> String {
        route_url(&self.base, &self.config.prefix, path)
    }

    /// Where callbacks arrive: `{base}{prefix}/callback`. Each authorization
    /// server gets its own redirect URI under it ([`Handler::callback_url`]).
    pub fn callback_base(&self) -> Url {
        Url::parse(&self.route("/callback")).expect("base URL and prefix form a URL")
    }

    /// The redirect URI used with `issuer`: `{base}{prefix}/callback/{id}`,
    /// where `id` is the pre-registered client's `callback_id` or the
    /// issuer's derived id ([`crate::callback`]). Register this URL at
    /// providers whose client you configure in advance.
    pub fn callback_url(&self, issuer: &str) -> Url {
        crate::callback::redirect_uri(
            &self.callback_base(),
            &self.config.clients.callback_id(issuer),
        )
    }

    /// The callback URL of every pre-registered client, as (issuer, URL): the
    /// list to register at those providers.
    pub fn callback_urls(&self) -> Vec<(String, Url)> {
        self.config
            .clients
            .pre_registered
            .iter()
            .map(|p| (p.issuer.clone(), self.callback_url(&p.issuer)))
            .collect()
    }

    /// The URL that connects (or re-connects) `resource`, optionally asking for `scope`.
    pub fn login_url(&self, resource: &str, scope: Option<&str>) -> String {
        super::fetch::login_url(&self.login, resource, scope).into()
    }

    pub(crate) fn settings(&self) -> crate::settings::Settings {
        self.config.settings(self.callback_base())
    }

    /// The `Authorization` header value for `url`: the longest-prefix
    /// provider's token (refreshed first when within 5 minutes of expiry);
    /// `None` for a public provider or when none matches. Send it only to
    /// `url`, with redirects not followed; [`Handler::fetcher`] sends
    /// requests with every per-hop rule built in.
    pub async fn authorization_for(&self, url: &str) -> Result<Option<String>, Error> {
        Ok(self
            .stub
            .authorization(url, false)
            .await?
            .and_then(|a| a.header))
    }

    /// An MCP client for the server at `url`, as this user, continuing the
    /// session kept for (user, server) by [`Handler::keep_mcp_session`].
    pub async fn mcp(&self, url: &str) -> Result<super::McpClient<'_>, super::McpError> {
        let mut client = super::McpClient::new(self.fetcher(), url)?;
        let kept: Option<super::protocol::McpSessionState> = self
            .stub
            .call(McpSessionGet {
                owner: self.stub.owner.clone(),
                url: client.server_url(),
            })
            .await?;
        if let Some(state) = kept {
            if let Some(id) = state.id {
                client = client.with_session(id);
            }
            if let Some(v) = state.protocol_version {
                client = client.with_protocol_version(v);
            }
            client = client.with_tool_headers(state.tool_headers);
        }
        Ok(client)
    }

    /// Keeps `client`'s session for (user, server), or forgets it when the
    /// client has none, so the next [`Handler::mcp`] continues it.
    pub async fn keep_mcp_session(&self, client: &super::McpClient<'_>) -> Result<(), Error> {
        let id = client.session_id();
        let stateless = client
            .protocol_version()
            .is_some_and(|v| crate::mcp::is_stateless(&v));
        let tool_headers = client.tool_headers();
        let keep = id.is_some() || stateless || !tool_headers.is_empty();
        let session = keep.then(|| super::protocol::McpSessionState {
            id,
            protocol_version: client.protocol_version(),
            tool_headers,
        });
        self.stub
            .call(McpSessionPut {
                owner: self.stub.owner.clone(),
                url: client.server_url(),
                session,
            })
            .await
    }

    /// The user's providers ordered by resource URL, with re-authorize URLs;
    /// never tokens or secrets. A user with many providers is better listed
    /// a page at a time with [`Handler::providers_page`].
    pub async fn providers(&self) -> Result<Vec<ProviderView>, Error> {
        self.list(None, None).await
    }

    /// One page of the user's providers: at most `limit` (1 to
    /// [`MAX_PAGE`](Self::MAX_PAGE)), those whose resource URL sorts after
    /// `after` (the previous page's [`ProvidersPage::next`]; `None` for the
    /// first page).
    ///
    /// ```no_run
    /// # async fn all(handler: &idp::workers::Handler) -> Result<(), idp::workers::Error> {
    /// let mut after = None;
    /// loop {
    ///     let page = handler.providers_page(after.as_deref(), 100).await?;
    ///     for p in &page.providers {
    ///         println!("{}", p.resource_url);
    ///     }
    ///     match page.next {
    ///         Some(next) => after = Some(next),
    ///         None => break,
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn providers_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<ProvidersPage, Error> {
        let limit = limit.clamp(1, Self::MAX_PAGE);
        let providers = self.list(after, Some(limit)).await?;
        let next = (providers.len() == limit as usize)
            .then(|| providers.last().map(|p| p.resource_url.to_string()))
            .flatten();
        Ok(ProvidersPage { providers, next })
    }

    /// The largest page [`Handler::providers_page`] returns.
    pub const MAX_PAGE: u32 = 500;

    async fn list(
        &self,
        after: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<ProviderView>, Error> {
        let mut list: Vec<ProviderView> = self
            .stub
            .call(Providers {
                owner: self.stub.owner.clone(),
                after: after.map(ResourceKey::parse).transpose()?,
                limit,
            })
            .await?;
        for p in &mut list {
            let mut url = super::fetch::login_url(&self.login, p.resource_url.as_str(), None);
            // An account's own URL connects that account again (this
            // handler's login URL already names its account, if any).
            if let (Some(a), false) = (&p.account, self.login.query().is_some()) {
                url.query_pairs_mut().append_pair("account", a);
            }
            p.reauthorize_url = Some(url);
        }
        Ok(list)
    }

    /// Refreshes the providers serving `urls` whose tokens expire within 5 minutes.
    pub async fn refresh(&self, urls: &[String]) -> Result<Vec<RefreshOutcome>, Error> {
        self.refresh_with(urls, false).await
    }

    /// Refreshes the providers serving `urls` now, whether or not their
    /// tokens are near expiry: for tokens the app knows are dead (the API
    /// said so in a way idp cannot read). Concurrent callers still share
    /// one token request per provider.
    pub async fn refresh_now(&self, urls: &[String]) -> Result<Vec<RefreshOutcome>, Error> {
        self.refresh_with(urls, true).await
    }

    async fn refresh_with(
        &self,
        urls: &[String],
        force: bool,
    ) -> Result<Vec<RefreshOutcome>, Error> {
        let urls = urls
            .iter()
            .map(|u| parse_url(u))
            .collect::<Result<_, _>>()?;
        let owner = self.stub.owner.clone();
        self.stub.call(RefreshExpiring { owner, urls, force }).await
    }

    /// Removes the provider serving `url` (the longest prefix, as for an
    /// authed call: `https://api.github.com/user` removes the provider at
    /// `https://api.github.com`), revoking its token at the server when it
    /// has a revocation endpoint; `not_connected` (404) when no provider
    /// serves `url`.
    pub async fn remove(&self, url: &str) -> Result<RemoveOutcome, Error> {
        let outcome: RemoveOutcome = self
            .stub
            .call(Remove {
                owner: self.stub.owner.clone(),
                url: parse_url(url)?,
            })
            .await?;
        if let Some(key) = &outcome.key {
            super::cache::forget(&self.stub.owner, key);
        }
        Ok(outcome)
    }
}

impl Handler {
    /// Seals again, under the first key of `IDP_ENCRYPTION_KEYS`, this user's
    /// secrets and the registry's that are in plain text or under an older
    /// key. With the next write of each row this happens anyway; call this
    /// for every user after putting a new key first, before dropping the old
    /// one.
    pub async fn reencrypt(&self) -> Result<Reencrypted, Error> {
        self.stub.call(Reencrypt {}).await
    }

    /// This user's audit log, newest first: the last
    /// [`AUDIT_LOG_LEN`](super::AUDIT_LOG_LEN) lifecycle events.
    pub async fn events(&self) -> Result<Vec<super::Event>, Error> {
        self.stub
            .call(super::protocol::Events {
                owner: self.stub.owner.clone(),
            })
            .await
    }
}

/// Authorized requests as one user from code with no request of theirs in
/// flight (a cron trigger, a queue consumer), with every rule of
/// [`AuthedFetch`](super::AuthedFetch): redirects followed by hand, the
/// token only on hops under its provider's prefix, the address policy on
/// every hop, one refresh and retry on a 401, bodies read through the cap.
/// Prefer it to a raw header from [`authorization_for`].
///
/// Its configuration is the Worker's variables (`IDP_*`) over the defaults,
/// or the one given to [`Background::with_config`]; re-authorization URLs
/// in its errors start at `IDP_BASE_URL` (`https://app.invalid` without it).
///
/// ```no_run
/// # async fn job(env: &idp::worker::Env) -> Result<(), idp::workers::Error> {
/// let as_alice = idp::workers::Background::new(env, "alice")?;
/// let resp = as_alice.fetch().get("https://api.example.com/v1/items").await?;
/// # let _ = resp; Ok(()) }
/// ```
#[derive(Debug)]
pub struct Background {
    stub: ProvidersStub,
    login: url::Url,
    config: Config,
}

impl Background {
    /// As `user_id`, configured by the Worker's variables.
    pub fn new(env: &Env, user_id: &str) -> Result<Self, Error> {
        Self::with_config(env, &Config::new("", "").with_env(env), user_id)
    }

    /// As `user_id`, with the app's configuration.
    pub fn with_config(env: &Env, config: &Config, user_id: &str) -> Result<Self, Error> {
        let base = config
            .base_url
            .clone()
            .unwrap_or_else(|| url::Url::parse("https://app.invalid").expect("a valid URL"));
        let login = url::Url::parse(&route_url(&base, &config.prefix, "/login"))
            .map_err(|e| Error::Runtime(format!("the login route's URL: {e}")))?;
        let mut stub = ProvidersStub::new(env, &config.binding, user_id)?;
        stub.timeout_ms = config.timeout_ms.map(std::num::NonZeroU32::get);
        Ok(Self {
            stub,
            login,
            config: config.clone(),
        })
    }

    /// As the app itself, for its workload `name` (a job, a service): the
    /// credentials the app holds in its own name, in an object of their own
    /// (never a user's). Connect resources with
    /// [`Background::connect_as_app`]; requests through
    /// [`Background::fetch`] carry those tokens, asked for again when they
    /// expire or are refused.
    ///
    /// ```no_run
    /// # async fn job(env: &idp::worker::Env, config: &idp::workers::Config) -> Result<(), idp::workers::Error> {
    /// let app = idp::workers::Background::app(env, config, "nightly-sync")?;
    /// app.connect_as_app("https://mcp.example.com/mcp", None).await?;
    /// let resp = app.fetch().get("https://mcp.example.com/mcp/health").await?;
    /// # let _ = resp; Ok(()) }
    /// ```
    pub fn app(env: &Env, config: &Config, name: &str) -> Result<Self, Error> {
        let mut me = Self::with_config(env, config, "app")?;
        me.stub = ProvidersStub::for_app(env, &config.binding, name)?;
        me.stub.timeout_ms = config.timeout_ms.map(std::num::NonZeroU32::get);
        Ok(me)
    }

    /// Connects `url` as the app (the client credentials grant, with the
    /// app's pre-registered confidential client for the resource's issuer,
    /// asking for `scope` or what the resource names); the provider as the
    /// app's `on_auth_success` named it. No person and no browser.
    pub async fn connect_as_app(
        &self,
        url: &str,
        scope: Option<&str>,
    ) -> Result<ProviderView, Error> {
        let credential = crate::flow::Credential::ClientSecret;
        connect_with(
            &self.stub,
            &self.login,
            &self.config,
            url,
            scope,
            credential,
        )
        .await
    }

    /// Connects `url` as the app's workload with its workload identity
    /// token `token` (a JWT the platform it runs on gave it, whose audience
    /// is the authorization server): the JWT bearer grant (workload identity
    /// federation), with the app's pre-registered client for the resource's
    /// issuer, public or confidential. New tokens are asked for with the
    /// same token while the server takes it; after that, requests answer
    /// [`Error::AuthorizationRequired`] and the workload connects again with
    /// a fresh token.
    ///
    /// ```no_run
    /// # async fn job(env: &idp::worker::Env, config: &idp::workers::Config, token: &str) -> Result<(), idp::workers::Error> {
    /// let app = idp::workers::Background::app(env, config, "nightly-sync")?;
    /// app.connect_as_workload("https://mcp.example.com/mcp", token, None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_as_workload(
        &self,
        url: &str,
        token: &str,
        scope: Option<&str>,
    ) -> Result<ProviderView, Error> {
        let credential = crate::flow::Credential::Workload(crate::secret::Assertion::new(token));
        connect_with(
            &self.stub,
            &self.login,
            &self.config,
            url,
            scope,
            credential,
        )
        .await
    }

    /// The user's authorized requests.
    pub fn fetch(&self) -> AuthedFetch<'_> {
        AuthedFetch::new(
            &self.stub,
            &self.login,
            self.config.timeout_ms.map(std::num::NonZeroU32::get),
        )
        .with_policy(self.config.policy())
        .with_body_limit(self.config.max_body_bytes.map(std::num::NonZeroU32::get))
    }
}

/// Seals the deployment-wide registry's secrets (client secrets and
/// registration access tokens of dynamic registrations) again under the
/// first key of `IDP_ENCRYPTION_KEYS`; returns how many rows were
/// rewritten. An operator's action, never a user's: call it from an admin
/// route you protect, or a cron trigger, after putting a new key first
/// (each user's own rows: [`Handler::reencrypt`]).
pub async fn reencrypt_registry(env: &Env, binding: &str) -> Result<usize, Error> {
    super::client::call_registry(env, binding, super::protocol::RegistryReencrypt {})
        .await
        .map_err(Error::from)
}

/// The `Authorization` header value for `url` for `user_id`, without a
/// handler (binding `OAuthProviders`). `None` for a public provider or when
/// none matches.
///
/// A bare header knows nothing of where it may go: send it only to `url`
/// itself, with redirects not followed (`redirect: manual`), since a
/// redirect would carry it to paths outside its provider (and, on older
/// compatibility dates, to other origins). [`Background`] sends requests
/// with those rules built in.
pub async fn authorization_for(
    env: &Env,
    user_id: &str,
    url: &str,
) -> Result<Option<String>, Error> {
    let stub = ProvidersStub::new(env, DEFAULT_BINDING, user_id)?;
    Ok(stub.authorization(url, false).await?.and_then(|a| a.header))
}

/// Connects `url` for the stub's owner with no browser
/// ([`crate::flow::connect_with`]); the provider as the app's
/// `on_auth_success` named it.
async fn connect_with(
    stub: &ProvidersStub,
    login: &Url,
    config: &Config,
    url: &str,
    scope: Option<&str>,
    credential: crate::flow::Credential,
) -> Result<ProviderView, Error> {
    let callback_base = login
        .join("callback")
        .map_err(|e| Error::Runtime(e.to_string()))?;
    let reply = stub
        .call(super::protocol::ConnectWith {
            owner: stub.owner.clone(),
            url: parse_url(url)?,
            scope: scope.map(str::to_owned),
            settings: Box::new(config.settings(callback_base)),
            credential,
        })
        .await?;
    if let Some(e) = &reply.hook_error {
        worker::console_warn!(
            "on_auth_success failed for {}: {e}",
            reply.provider.resource_url
        );
    }
    Ok(reply.provider)
}
