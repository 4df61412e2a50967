//! The whole client flow, composed from the protocol modules over an
//! [`HttpClient`] and a [`Store`]: connect a resource, finish the callback, get
//! an `Authorization` header for any URL, refresh, remove.
//!
//! Time (`now`, seconds since the epoch) and randomness ([`Entropy`]) are
//! passed in. Logins are here; a connected grant in use (authorization,
//! refresh, removal) is in `grant`. Runtimes wrap these functions; they add
//! locking (one refresh at a time per provider) and the hook that names a
//! provider.

pub mod accounts;
mod device;
mod grant;
mod machine;
mod profiled;
mod resolve;
use resolve::{route, Resolved, Route, Via};
mod refresher;
pub mod schedule;

pub use device::{
    poll_device_login, start_device_login, DeviceLogin, DevicePoll, DeviceStart,
    MAX_WAITING_DEVICE_LOGINS,
};
use grant::revocation_target;
pub use grant::{refresh_provider, remove_provider, Authorization, RefreshReason, Removal};
pub use machine::{connect_with, Credential};
pub use refresher::{
    RecordedRefresh, RefreshEvent, RefreshLock, Refresher, Refused, EARLY_REFRESH_PAUSE_SECS,
};

use crate::authorize::{self, AuthorizationRequest, CallbackParams, PendingFlow};
use crate::discovery;
use crate::error::{CallbackProblem, Error, Result, StorageCause};
use crate::http::HttpClient;
use crate::matching::ResourceKey;
use crate::policy::Policy;
use crate::probe::{self, Probe};
use crate::registration;
use crate::secret::{FlowState, PkceVerifier};
pub use crate::settings::{Entropy, Settings};
use crate::store::update::{update_provider, update_provider_from, Change};
use crate::store::{FlowTake, Grant, Provider, Store};
use crate::token;
use url::Url;

/// What one engine call runs with, built once per call by the runtime: the
/// HTTP client, the store, the deployment's settings and the time of the
/// call (randomness, needed by logins only, is passed to them).
///
/// ```
/// # #[cfg(feature = "native")]
/// # fn f(http: &idp::native::ReqwestHttp, store: &idp::store::memory::MemoryStore, settings: &idp::flow::Settings) {
/// # use idp::flow::Engine;
/// let cx = Engine { http, store, settings, now: idp::native::now() };
/// # let _ = cx; }
/// ```
#[derive(Debug)]
pub struct Engine<'a, H, S> {
    /// Sends every request.
    pub http: &'a H,
    /// Keeps flows, providers, registrations and server metadata.
    pub store: &'a S,
    /// The deployment's settings.
    pub settings: &'a Settings,
    /// Seconds since the epoch.
    pub now: u64,
}

impl<H, S> Clone for Engine<'_, H, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<H, S> Copy for Engine<'_, H, S> {}

/// Who is connecting, and for which scope beyond what the resource asks.
#[derive(Debug, Clone, Copy)]
pub struct LoginRequest<'a> {
    /// The user.
    pub owner: &'a str,
    /// Scope asked for explicitly (space- or comma-separated), if any.
    pub scope: Option<&'a str>,
    /// The account to connect, when the person or the app names one
    /// ([`accounts`]): another account at an API already connected is
    /// kept beside it.
    pub account: Option<&'a str>,
}

impl<'a> LoginRequest<'a> {
    /// The login of a store owner (a user, or a user's account as
    /// [`accounts::owner_of`] names it).
    pub fn of(owner: &'a str, scope: Option<&'a str>) -> Self {
        let (owner, account) = accounts::split(owner);
        Self {
            owner,
            scope,
            account,
        }
    }
}

/// How connecting a resource began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginStart {
    /// The resource answered without credentials; it is stored as public.
    Public(Box<Provider>),
    /// Send the person here; the flow waits in the store under its state.
    Redirect(Url),
}

fn parse_resource(policy: &Policy, input: &str) -> Result<(ResourceKey, Url)> {
    let key = ResourceKey::parse(input)?;
    let url = Url::parse(input.trim()).map_err(|e| Error::InvalidUrl {
        input: input.to_owned(),
        reason: e.to_string(),
    })?;
    policy.check(&url)?;
    Ok((key, url))
}

/// What the probe of a resource found.
enum Probed {
    /// It answered without credentials: stored as public (a grant stored
    /// under its key is kept).
    Public(Box<Provider>),
    /// It needs authorization: the challenge it answered with, if any.
    Challenged(Option<crate::challenge::BearerChallenge>),
}

/// How a person's connection begins.
enum Begun {
    /// A provider profile describes the resource: no probe, no discovery.
    Profiled(Box<Route>),
    /// The probe's answer.
    Probed(Probed),
}

/// The prelude of a person's connection (browser or device login):
/// parses and checks `resource_url`, finds a profile for it, else probes
/// it ([`probed`]).
async fn begin<H: HttpClient, S: Store>(
    cx: &Engine<'_, H, S>,
    req: LoginRequest<'_>,
    resource_url: &str,
    via: Via,
) -> Result<(Url, Begun)> {
    let (key, url) = parse_resource(&cx.settings.policy, resource_url)?;
    // A server without discovery, described by a profile: no probe.
    if let Some((profile, prefix)) = crate::profile::find(&cx.settings.profiles, &url) {
        let route = profiled::resolve(cx.settings, profile, &prefix, req.scope, via)?;
        return Ok((url, Begun::Profiled(Box::new(route))));
    }
    let probed = probed(cx, req.owner, key, &url).await?;
    Ok((url, Begun::Probed(probed)))
}

/// Probes `url` (every connection path does, a profile's aside): a public
/// one stored as such, or the challenge it answered with.
async fn probed<H: HttpClient, S: Store>(
    cx: &Engine<'_, H, S>,
    owner: &str,
    key: ResourceKey,
    url: &Url,
) -> Result<Probed> {
    Ok(match probe::probe(cx.http, url).await? {
        Probe::Public => Probed::Public(Box::new(store_public(cx, owner, key, url).await?)),
        Probe::NeedsAuthorization(c) => Probed::Challenged(c),
    })
}

/// Starts connecting `resource_url` for `owner`: probes it; stores it as public
/// on 2xx; on 401 discovers its authorization server, gets a client (caching a
/// new registration), stores a [`PendingFlow`] and returns the authorization URL.
pub async fn start_login<H: HttpClient, S: Store>(
    cx: &Engine<'_, H, S>,
    req: LoginRequest<'_>,
    resource_url: &str,
    entropy: Entropy,
) -> Result<LoginStart> {
    match begin(cx, req, resource_url, Via::Browser).await? {
        (_, Begun::Probed(Probed::Public(p))) => Ok(LoginStart::Public(p)),
        (url, Begun::Profiled(route)) => {
            let (flow, to) = route.login(req, &url, cx.now, entropy);
            cx.store.put_flow(flow).await?;
            Ok(LoginStart::Redirect(to))
        }
        (url, Begun::Probed(Probed::Challenged(c))) => {
            authorize(cx, req, &url, c.as_ref(), entropy).await
        }
    }
}

/// Stores a resource that answered without credentials as public. It never
/// replaces a grant stored under the same key: the grant is kept as it is.
async fn store_public<H: HttpClient, S: Store>(
    cx: &Engine<'_, H, S>,
    owner: &str,
    key: ResourceKey,
    url: &Url,
) -> Result<Provider> {
    let public = Provider {
        name: Provider::default_name(&key),
        key: key.clone(),
        resource_url: url.to_string(),
        resource: url.to_string(),
        metadata: serde_json::Value::Null,
        grant: None,
        created_at: cx.now,
        account: None,
    };
    // A grant stored under the key (before, or by a login meanwhile) stays.
    let decide = |now: Option<&Provider>| match now {
        Some(p) if p.grant.is_some() => Change::Keep,
        _ => Change::Write(Box::new(public.clone())),
    };
    let stored = update_provider(cx.store, owner, &key, "it was stored", decide).await?;
    // Either decision leaves a row.
    stored.ok_or_else(|| Error::storage(StorageCause::Conflict, format!("{key} was not stored")))
}

/// Discovery, client and pending flow for a resource known to need
/// authorization (also used for re-authorization and step-up, where the
/// challenge is already in hand).
pub async fn authorize<H: HttpClient, S: Store>(
    cx: &Engine<'_, H, S>,
    req: LoginRequest<'_>,
    resource_url: &Url,
    challenge: Option<&crate::challenge::BearerChallenge>,
    entropy: Entropy,
) -> Result<LoginStart> {
    let route = route(cx, req, resource_url, challenge, Via::Browser).await?;
    let (flow, url) = route.login(req, resource_url, cx.now, entropy);
    cx.store.put_flow(flow).await?;
    Ok(LoginStart::Redirect(url))
}

/// Discovers a protected resource and its authorization server (cached
/// metadata first): what every way of connecting starts from.
async fn discover<H: HttpClient, S: Store>(
    cx: &Engine<'_, H, S>,
    resource_url: &Url,
    challenge: Option<&crate::challenge::BearerChallenge>,
) -> Result<(discovery::ResourceDiscovery, discovery::AuthorizationServer)> {
    let policy = &cx.settings.policy;
    let found = discovery::discover_resource(cx.http, policy, resource_url, challenge).await?;
    // Without resource metadata the resource's origin is the server (the
    // MCP specification of 2025-03-26), with its looser discovery.
    let legacy = found.metadata.is_none();
    let server = authorization_server(
        cx.http,
        cx.store,
        policy,
        &found.authorization_servers,
        legacy,
        cx.now,
    )
    .await?;
    Ok((found, server))
}

/// How long checked authorization server metadata is reused: 1 hour.
pub const SERVER_METADATA_TTL_SECS: u64 = 3600;

/// The first issuer with fresh cached metadata, or discovery (whose result is
/// cached); `legacy` for a resource without resource metadata
/// ([`discovery::discover_legacy_authorization_server`]).
async fn authorization_server(
    http: &impl HttpClient,
    store: &impl Store,
    policy: &Policy,
    issuers: &[crate::issuer::Issuer],
    legacy: bool,
    now: u64,
) -> Result<discovery::AuthorizationServer> {
    for issuer in issuers.iter().take(discovery::MAX_AUTHORIZATION_SERVERS) {
        if let Some((server, fetched_at)) = store.server(issuer.as_str()).await? {
            let fresh =
                now < fetched_at.saturating_add(SERVER_METADATA_TTL_SECS) && now >= fetched_at;
            if fresh
                && issuer.is(&server.issuer)
                && policy.check(&server.token_endpoint).is_ok()
                && policy.check(&server.authorization_endpoint).is_ok()
            {
                return Ok(server);
            }
        }
    }
    let server = match issuers.first() {
        // Not cached: what the looser 2025-03-26 rules accept (default
        // endpoints when every well-known URL is missing, an issuer with a
        // path on the origin) holds for this resource, and must not answer
        // deployment-wide for another resource that names the same origin.
        Some(origin) if legacy => {
            return discovery::discover_legacy_authorization_server(http, policy, origin.url())
                .await;
        }
        _ => discovery::discover_authorization_server(http, policy, issuers).await?,
    };
    // Cache under the listed URL that matched (the document's issuer equals it).
    if let Some(listed) = issuers.iter().find(|i| i.is(&server.issuer)) {
        store
            .put_server(listed.as_str(), server.clone(), now)
            .await?;
    }
    Ok(server)
}

/// Finishes a flow from a callback that arrived at `callback_uri` (the
/// request's URL without its query) with `query`: takes `owner`'s pending
/// flow by state (single use), validates, exchanges the code and stores the
/// provider. A rejected client's cached registration is dropped.
///
/// A flow is only taken by a callback on the redirect URI it was sent with
/// (one per authorization server): a callback on another server's URI is a
/// mix-up attempt and fails with [`CallbackProblem::WrongCallback`], leaving
/// the flow and everything else as it was and sending no token request.
pub async fn finish_login(
    http: &impl HttpClient,
    store: &impl Store,
    owner: &str,
    callback_uri: &Url,
    query: &str,
    now: u64,
) -> Result<Provider> {
    let params = CallbackParams::from_query(query);
    let state = params
        .state
        .clone()
        .ok_or(Error::Callback(CallbackProblem::MissingState))?;
    let flow = match store
        .take_flow(&state, owner, callback_uri.as_str())
        .await?
    {
        FlowTake::Taken(flow) => *flow,
        FlowTake::Missing => return Err(Error::Callback(CallbackProblem::UnknownState)),
        FlowTake::OtherCallback => {
            return Err(Error::Callback(CallbackProblem::WrongCallback {
                arrived_at: callback_uri.to_string(),
            }))
        }
    };
    let code = authorize::validate_callback(params, &flow, now)?;
    let tokens = token::exchange_code(http, &flow.code_grant(), &code, now).await;
    let tokens = match tokens {
        Ok(t) => t,
        Err(e) => {
            if e.client_rejected() {
                store
                    .remove_registration(&flow.issuer, flow.redirect_uri.as_str())
                    .await?;
            }
            // A refused code is this login's failure, however the server
            // delivered it (HTTP 400, or 200 with an error): the person's
            // to retry, not a server fault.
            if let Error::Token { oauth: Some(o), .. } = &e {
                if o.code() == crate::error::OAuthErrorCode::InvalidGrant {
                    let error = o.error.clone();
                    return Err(Error::Callback(CallbackProblem::CodeRefused { error }));
                }
            }
            return Err(e);
        }
    };
    store_grant(http, store, &flow, tokens, now).await
}

/// Stores the grant a finished login (`flow`) obtained, replacing (and
/// revoking, when it came from another server or client) the one stored
/// for the same resource.
async fn store_grant(
    http: &impl HttpClient,
    store: &impl Store,
    flow: &PendingFlow,
    tokens: token::TokenSet,
    now: u64,
) -> Result<Provider> {
    let key = ResourceKey::parse(&flow.resource)?;
    let account = flow.account.as_deref();
    let owner = &accounts::placement(store, &flow.owner, account, &key).await?;
    let grant = Grant {
        issuer: flow.issuer.clone(),
        client: flow.client.clone(),
        token_endpoint: flow.token_endpoint.clone(),
        revocation_endpoint: flow.revocation_endpoint.clone(),
        tokens: Some(tokens),
        redirect_uri: Some(flow.redirect_uri.clone()),
        rules: flow.rules,
        profile: flow.profile.clone(),
        kind: Default::default(),
        refused: flow.refused.clone(),
        unreadable: None,
    };
    // The grant it replaces is revoked (when another server's or client's)
    // before the new one is stored; one a concurrent login stored meanwhile
    // is revoked too, right after: never silently overwritten.
    let previous = store.provider(owner, &key).await?;
    let revoked = previous.as_ref().and_then(|p| p.grant.clone());
    if let Some(old) = &revoked {
        revoke_replaced(http, old, flow).await;
    }
    let now_secs = now;
    let mut replaced = None;
    let decide = |now: Option<&Provider>| {
        replaced = now.and_then(|p| p.grant.clone());
        Change::Write(Box::new(Provider {
            name: now.map_or_else(|| Provider::default_name(&key), |p| p.name.clone()),
            metadata: now.map_or(serde_json::Value::Null, |p| p.metadata.clone()),
            key: key.clone(),
            resource_url: flow.resource_url.clone(),
            resource: flow.resource.clone(),
            grant: Some(grant.clone()),
            created_at: now_secs,
            account: flow
                .account
                .clone()
                .or_else(|| now.and_then(|p| p.account.clone())),
        }))
    };
    let what = "the new grant was stored";
    let stored = update_provider_from(store, owner, &key, previous, what, decide).await?;
    if let Some(other) = replaced.filter(|g| Some(g) != revoked.as_ref()) {
        revoke_replaced(http, &other, flow).await;
    }
    // A decision that always writes leaves the row it wrote.
    stored.ok_or_else(|| Error::storage(StorageCause::Conflict, format!("{key} was not stored")))
}

/// Revokes a grant that a new login replaces (RFC 7009), before the new one
/// is stored, when it was issued by another server or to another client: its
/// tokens would otherwise stay live with nobody holding them. A grant from the
/// same server and client is left alone: servers commonly carry consecutive
/// authorizations of one client in one grant, and revoking the old refresh
/// token would revoke the new tokens too. Failures are ignored (the new grant
/// matters more); nothing secret is reported.
async fn revoke_replaced(http: &impl HttpClient, old: &Grant, new: &PendingFlow) {
    let same = old.issuer == new.issuer && old.client.client_id == new.client.client_id;
    if same {
        return;
    }
    if let (Some(endpoint), Some(tokens)) = (&old.revocation_endpoint, &old.tokens) {
        let (token, hint) = revocation_target(tokens);
        let _ = token::revoke(http, endpoint, &old.client, token, hint).await;
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{Put, RegistryStore, UserStore};

    /// A server synthesized for a resource without any metadata (the
    /// 2025-03-26 default endpoints) serves that login only: it is not kept
    /// in the deployment-wide cache for other resources naming the origin.
    #[test]
    fn a_synthesized_legacy_server_is_not_cached() {
        let api = "https://legacy.example/mcp";
        let mut script = crate::testing::Script::new().raw(
            api,
            crate::http::HttpResponse::new(401, "").with_header("www-authenticate", "Bearer"),
        );
        for missing in [
            "https://legacy.example/.well-known/oauth-protected-resource/mcp",
            "https://legacy.example/.well-known/oauth-protected-resource",
            "https://legacy.example/.well-known/oauth-authorization-server",
            "https://legacy.example/.well-known/openid-configuration",
        ] {
            script = script.status(missing, 404);
        }
        script = script.json(
            "https://legacy.example/register",
            201,
            serde_json::json!({"client_id": "c", "token_endpoint_auth_method": "none"}),
        );
        let store = crate::store::memory::MemoryStore::default();
        let start = crate::testing::start_login(
            &script,
            &store,
            &crate::testing::settings(),
            api,
            None,
            1000,
        );
        assert!(
            matches!(&start, Ok(LoginStart::Redirect(to)) if to.as_str().starts_with("https://legacy.example/authorize?")),
            "{start:?}"
        );
        let cached = crate::testing::block_on(store.server("https://legacy.example/")).unwrap();
        assert_eq!(cached, None);
        let cached = crate::testing::block_on(store.server("https://legacy.example")).unwrap();
        assert_eq!(cached, None);
    }
    use super::*;
    use crate::registration::{Client, Registration};
    use crate::secret::{AccessToken, RefreshToken};
    use crate::secret::{FlowState, PkceVerifier};
    use crate::store::memory::MemoryStore;
    use crate::testing::{block_on, Script};
    use crate::token::TokenSet;

    const TOKEN: &str = "https://as.example/token";

    fn key() -> ResourceKey {
        ResourceKey::parse("https://api.example/v1").unwrap()
    }

    fn provider() -> Provider {
        Provider {
            key: key(),
            resource_url: "https://api.example/v1".into(),
            resource: "https://api.example/v1".into(),
            name: "api".into(),
            metadata: serde_json::Value::Null,
            grant: Some(Grant {
                issuer: "https://as.example".into(),
                client: Client::public("c1"),
                token_endpoint: Url::parse(TOKEN).unwrap(),
                revocation_endpoint: None,
                tokens: Some(TokenSet {
                    access_token: AccessToken::new("old-at"),
                    refresh_token: Some(RefreshToken::new("rt-1")),
                    expires_at: Some(1000),
                    scope: None,
                    issued_at: Some(0),
                    dpop: None,
                }),
                redirect_uri: Some(Url::parse("https://app.example/oauth/callback").unwrap()),
                rules: Default::default(),
                profile: None,
                kind: Default::default(),
                unreadable: None,
                refused: None,
            }),
            created_at: 0,
            account: None,
        }
    }

    /// An early refresh of alice's grant at 2000.
    fn expiring(script: &Script, store: &impl Store) -> Result<Option<TokenSet>> {
        block_on(refresh_provider(
            script,
            store,
            "alice",
            &key(),
            RefreshReason::Expiring,
            2000,
        ))
    }

    fn store() -> MemoryStore {
        let store = MemoryStore::default();
        let put = store.put_provider("alice", provider(), crate::store::Expect::Nothing);
        assert_eq!(block_on(put).unwrap(), Put::Written);
        block_on(store.put_registration(Registration {
            issuer: "https://as.example".into(),
            redirect_uri: "https://app.example/oauth/callback".into(),
            client: Client::public("c1"),
            secret_expires_at: None,
            scope: None,
            management: None,
        }))
        .unwrap();
        store
    }

    #[test]
    fn same_rejected_token_refreshes_once_and_keeps_rotation() {
        let store = store();
        let script = Script::new().json(
            TOKEN,
            200,
            serde_json::json!({"access_token": "new-at", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "rt-2"}),
        );
        for _ in 0..3 {
            let t = block_on(refresh_provider(
                &script,
                &store,
                "alice",
                &key(),
                RefreshReason::Rejected("old-at"),
                2000,
            ))
            .unwrap()
            .unwrap();
            assert_eq!(t.access_token.secret(), "new-at");
            assert_eq!(t.refresh_token.unwrap().secret(), "rt-2");
        }
        assert_eq!(
            script.requests().len(),
            1,
            "one token request for three callers"
        );
        let body = String::from_utf8(script.requests()[0].body.clone()).unwrap();
        assert!(
            body.contains("refresh_token=rt-1") && body.contains("resource="),
            "{body}"
        );
    }

    #[test]
    fn dead_grant_drops_tokens_and_a_rejected_client_its_registration() {
        let store = store();
        let script = Script::new().json(TOKEN, 401, serde_json::json!({"error": "invalid_client"}));
        let e = expiring(&script, &store).unwrap_err();
        assert!(e.requires_reauthorization() && e.client_rejected(), "{e}");
        let p = block_on(store.provider("alice", &key())).unwrap().unwrap();
        assert!(
            p.tokens().is_none(),
            "the dead refresh token is never replayed"
        );
        let reg = block_on(
            store.registration("https://as.example", "https://app.example/oauth/callback"),
        )
        .unwrap();
        assert!(reg.is_none(), "the next login registers again");
        // Next time: no request at all, a typed re-authorization error.
        let e = expiring(&script, &store).unwrap_err();
        assert!(matches!(e, Error::NoRefreshToken { .. }));
        assert_eq!(script.requests().len(), 1);
    }

    /// A store that says the refresh token read is no longer current (a
    /// process that lost its lock, another that rotated the token): the
    /// engine asks it right before sending, sends nothing, keeps the grant.
    #[test]
    fn no_refresh_is_sent_with_a_token_the_store_no_longer_holds() {
        let store = crate::testing::Bent {
            inner: store(),
            current: Some(Box::new(|| {
                Err(Error::storage(
                    crate::error::StorageCause::Conflict,
                    "lost the refresh lock; nothing was sent",
                ))
            })),
            ..Default::default()
        };
        let script = Script::new().json(
            TOKEN,
            200,
            serde_json::json!({"access_token": "new-at", "token_type": "Bearer", "refresh_token": "rt-2"}),
        );
        let e = expiring(&script, &store).unwrap_err();
        assert!(e.to_string().contains("lost the refresh lock"), "{e}");
        assert!(script.requests().is_empty(), "no token request");
        let p = block_on(store.inner.provider("alice", &key()))
            .unwrap()
            .unwrap();
        let kept = p.tokens().unwrap().refresh_token.as_ref().unwrap();
        assert_eq!(kept.secret(), "rt-1");
    }

    #[test]
    fn a_server_failure_keeps_everything() {
        let store = store();
        let script = Script::new().status(TOKEN, 503);
        let e = expiring(&script, &store).unwrap_err();
        assert!(e.is_retryable() && !e.requires_reauthorization(), "{e}");
        let p = block_on(store.provider("alice", &key())).unwrap().unwrap();
        assert_eq!(
            p.tokens().unwrap().refresh_token.as_ref().unwrap().secret(),
            "rt-1"
        );
    }

    fn pending(state: &str, redirect: &str) -> PendingFlow {
        PendingFlow {
            state: FlowState::new(state),
            verifier: PkceVerifier::from_random([7; 32]),
            resource_url: "https://api.example/v1".into(),
            resource: "https://api.example/v1".into(),
            issuer: "https://attacker.example".into(),
            iss_required: false,
            client: Client::public("c-at-attacker"),
            token_endpoint: Url::parse("https://attacker.example/token").unwrap(),
            revocation_endpoint: None,
            redirect_uri: Url::parse(redirect).unwrap(),
            scope: None,
            owner: "alice".into(),
            created_at: 1000,
            rules: Default::default(),
            profile: None,
            dpop: None,
            refused: None,
            device: None,
            account: None,
        }
    }

    #[test]
    fn a_callback_on_another_servers_uri_sends_nothing_and_keeps_the_flow() {
        let store = store();
        let attacker_cb = "https://app.example/oauth/callback/attackerid1";
        let honest_cb = "https://app.example/oauth/callback/honestid001";
        block_on(store.put_flow(pending("st-1", attacker_cb))).unwrap();
        let script = Script::new().json(
            "https://attacker.example/token",
            200,
            serde_json::json!({"access_token": "stolen", "token_type": "Bearer"}),
        );
        // The honest server (no `iss`) redirected to its own callback URL.
        let e = block_on(finish_login(
            &script,
            &store,
            "alice",
            &Url::parse(honest_cb).unwrap(),
            "code=honest-code&state=st-1",
            1001,
        ))
        .unwrap_err();
        assert!(
            matches!(&e, Error::Callback(CallbackProblem::WrongCallback { arrived_at }) if arrived_at == honest_cb),
            "{e}"
        );
        assert!(script.requests().is_empty(), "no token request at all");
        assert_eq!(
            block_on(store.provider("alice", &key())).unwrap().unwrap(),
            provider(),
            "the stored grant is untouched"
        );
        // The flow is still there for its own callback URL.
        let ok = block_on(finish_login(
            &script,
            &store,
            "alice",
            &Url::parse(attacker_cb).unwrap(),
            "code=c&state=st-1",
            1001,
        ));
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn only_a_dead_grant_drops_tokens_and_an_early_refresh_failure_uses_the_valid_token() {
        for (status, body, ctype) in [
            (200, "<html>maintenance</html>", "text/html"),
            (400, "<html>bad gateway</html>", "text/html"),
            (401, "", "text/plain"),
            (502, "{}", "application/json"),
            (200, "{\"access_token\": 5}", "application/json"),
        ] {
            let store = store();
            let script = Script::new().raw(
                TOKEN,
                crate::http::HttpResponse::new(status, body).with_header("content-type", ctype),
            );
            // At 900 the token (valid until 1000) is inside the refresh margin.
            let refresher = Refresher::new(tokio::sync::Mutex::new(()));
            let auth = block_on(refresher.authorization(
                &script,
                &store,
                "alice",
                "https://api.example/v1/items",
                900,
            ))
            .unwrap()
            .unwrap();
            assert_eq!(
                auth.header.as_deref(),
                Some("Bearer old-at"),
                "{status} {body}: the still-valid token is used"
            );
            assert_eq!(script.requests().len(), 1);
            let p = block_on(store.provider("alice", &key())).unwrap().unwrap();
            assert_eq!(
                p.tokens().unwrap().refresh_token.as_ref().unwrap().secret(),
                "rt-1",
                "{status} {body}: the refresh token is kept"
            );
            // Within the pause, no second request.
            let again = block_on(refresher.authorization(
                &script,
                &store,
                "alice",
                "https://api.example/v1/items",
                900 + EARLY_REFRESH_PAUSE_SECS - 1,
            ))
            .unwrap()
            .unwrap();
            assert_eq!(again.header.as_deref(), Some("Bearer old-at"));
            assert_eq!(script.requests().len(), 1, "paused");
            // Once expired, the same failure is reported, still keeping the tokens.
            let e = block_on(refresher.authorization(
                &script,
                &store,
                "alice",
                "https://api.example/v1/items",
                2000,
            ))
            .unwrap_err();
            assert!(!e.requires_reauthorization(), "{status} {body}: {e}");
            assert!(block_on(store.provider("alice", &key()))
                .unwrap()
                .unwrap()
                .tokens()
                .is_some());
        }
    }

    /// Rule `resource_refused_on_refresh`: one retry without `resource`,
    /// remembered for the grant; the next refresh sends none.
    #[test]
    fn a_server_refusing_resource_on_refresh_gets_one_retry_without_it() {
        let store = store();
        let refused = serde_json::json!({"error": "invalid_target", "error_description": "resource not allowed"});
        let fresh = |at: &str| serde_json::json!({"access_token": at, "token_type": "Bearer", "expires_in": 3600});
        let script = Script::new()
            .json(TOKEN, 400, refused)
            .json(TOKEN, 200, fresh("at-2"))
            .json(TOKEN, 200, fresh("at-3"));
        let refresh = |failed| {
            block_on(refresh_provider(
                &script,
                &store,
                "alice",
                &key(),
                RefreshReason::Rejected(failed),
                2000,
            ))
        };
        let t = refresh("old-at").unwrap().unwrap();
        assert_eq!(t.access_token.secret(), "at-2");
        let bodies: Vec<String> = script
            .requests()
            .iter()
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .collect();
        assert!(bodies[0].contains("resource="), "{bodies:?}");
        assert!(!bodies[1].contains("resource="), "{bodies:?}");
        let p = block_on(store.provider("alice", &key())).unwrap().unwrap();
        assert_eq!(
            p.grant.unwrap().rules.resource,
            crate::token::ResourceParam::NotOnRefresh
        );
        refresh("at-2").unwrap();
        let third = String::from_utf8_lossy(&script.requests()[2].body).into_owned();
        assert!(!third.contains("resource="), "remembered: {third}");
        assert_eq!(script.requests().len(), 3);
    }

    #[test]
    fn a_resource_that_turned_public_never_replaces_a_grant() {
        let store = store();
        let script = Script::new().status("https://api.example/v1", 200);
        let settings = Settings {
            policy: crate::policy::Policy::STRICT,
            client_info: crate::registration::ClientInfo {
                name: "t".into(),
                version: "1".into(),
                uri: None,
            },
            clients: Default::default(),
            callback_base: Url::parse("https://app.example/oauth/callback").unwrap(),
            profiles: Vec::new(),
            dpop: Default::default(),
            dpop_always: Vec::new(),
            device_origins: Default::default(),
        };
        let start = crate::testing::start_login(
            &script,
            &store,
            &settings,
            "https://api.example/v1",
            None,
            10,
        )
        .unwrap();
        assert!(matches!(start, LoginStart::Public(p) if p.grant.is_some()));
        assert_eq!(
            block_on(store.provider("alice", &key())).unwrap().unwrap(),
            provider(),
            "the grant is kept as it was"
        );
    }
}
