//! A connected grant in use: the `Authorization` for a URL, refresh (one at
//! a time per provider is the caller's rule) and removal with revocation.

use crate::error::{Error, Result};
use crate::http::HttpClient;
use crate::matching::ResourceKey;
use crate::store::update::{update_provider_from, Change};
use crate::store::{Grant, Provider, Store};
use crate::token::{self, TokenSet};

/// What to revoke of a token set: the refresh token when there is one (which
/// ends the grant at most servers), else the access token; and its hint.
pub(super) fn revocation_target(tokens: &TokenSet) -> (&str, &'static str) {
    match &tokens.refresh_token {
        Some(rt) => (rt.secret(), "refresh_token"),
        None => (tokens.access_token.secret(), "access_token"),
    }
}

/// What to send to a URL. Its `Debug` output leaves the header out.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Authorization {
    /// The provider that matched.
    pub key: ResourceKey,
    /// The `Authorization` header value; `None` for a public provider.
    pub header: Option<String>,
    /// The scope the token holds, when the server said.
    pub scope: Option<String>,
    /// When the token expires (seconds since the epoch), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// The owner's other providers under `key`, when a runtime that keeps
    /// answers filled them in (the Workers isolate cache): a URL under one
    /// of them belongs to that provider, so this answer is not for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub narrower: Vec<ResourceKey>,
    /// The key the token is bound to (DPoP): each request that carries the
    /// token also carries a proof made with it ([`crate::fetch::Exchange::proof`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop: Option<crate::secret::DpopKey>,
    /// How the API says the token is refused when it does not answer 401
    /// (a profile's rule): such an answer is read as a 401.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<crate::token::Refusal>,
}

impl Authorization {
    /// The authorization for `key` with `tokens` (`None`: a public provider).
    pub fn of(key: ResourceKey, tokens: Option<&TokenSet>) -> Self {
        Self {
            key,
            header: tokens.map(TokenSet::authorization_header),
            scope: tokens.and_then(|t| t.scope.clone()),
            expires_at: tokens.and_then(|t| t.expires_at),
            narrower: Vec::new(),
            dpop: tokens.and_then(|t| t.dpop.clone()),
            refused: None,
        }
    }

    /// [`Authorization::of`] a provider whose grant is `grant`: its rule
    /// for refusals too.
    pub fn with_grant(mut self, grant: Option<&Grant>) -> Self {
        self.refused = grant.and_then(|g| g.refused.clone());
        self
    }

    /// Whether this answer is the one for `url`: `url` is under its key and
    /// under none of the narrower providers it names.
    pub fn serves(&self, url: &str) -> bool {
        self.key.covers_request(url) && !self.narrower.iter().any(|k| k.covers_request(url))
    }
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorization")
            .field("key", &self.key)
            .field("header", &self.header.as_ref().map(|_| "[redacted]"))
            .field("scope", &self.scope)
            .field("expires_at", &self.expires_at)
            .field("narrower", &self.narrower)
            .field("dpop", &self.dpop)
            .finish()
    }
}

/// Why a refresh is asked for.
#[derive(Debug, Clone, Copy)]
pub enum RefreshReason<'a> {
    /// The token expires within [`token::REFRESH_MARGIN_SECS`]; skipped if a
    /// fresher token is already stored.
    Expiring,
    /// This access token was rejected by the resource, or was seen expiring:
    /// refresh unless another token is already stored (someone refreshed
    /// meanwhile). This is what makes concurrent callers share one refresh.
    Rejected(&'a str),
}

/// Refreshes `owner`'s provider under `key` unless the stored tokens already
/// answer `reason`. Returns the tokens to use (`None` for a public provider).
///
/// When the server says the grant is gone (`invalid_grant`, ...), the stored
/// tokens are dropped (so the dead refresh token is never replayed) and the
/// error, which [`Error::requires_reauthorization`], is returned; when it no
/// longer knows the client, the cached registration is dropped too. Run at most
/// one at a time per provider: a rotated refresh token must not be used twice.
pub async fn refresh_provider(
    http: &impl HttpClient,
    store: &impl Store,
    owner: &str,
    key: &ResourceKey,
    reason: RefreshReason<'_>,
    now: u64,
) -> Result<Option<TokenSet>> {
    refresh_traced(http, store, owner, key, reason, now)
        .await
        .map(|(tokens, _)| tokens)
}

/// Whether `tokens` already answer a refresh asked for `reason`: not near
/// expiry, or not the token the resource rejected (someone refreshed
/// meanwhile).
fn settled(tokens: &TokenSet, reason: RefreshReason<'_>, now: u64) -> bool {
    match reason {
        RefreshReason::Expiring => !tokens.needs_refresh(now),
        RefreshReason::Rejected(failed) => tokens.access_token.secret() != failed,
    }
}

/// [`refresh_provider`], also saying whether new tokens were obtained (for
/// lifecycle events; `false` when the stored tokens already answered).
pub(super) async fn refresh_traced(
    http: &impl HttpClient,
    store: &impl Store,
    owner: &str,
    key: &ResourceKey,
    reason: RefreshReason<'_>,
    now: u64,
) -> Result<(Option<TokenSet>, bool)> {
    let not_connected = || Error::NotConnected {
        url: key.to_string(),
    };
    let before = store
        .provider(owner, key)
        .await?
        .ok_or_else(not_connected)?;
    let Some(grant) = before.grant.as_ref() else {
        return Ok((None, false));
    };
    let no_refresh = || match &grant.unreadable {
        Some(reason) => Error::Unreadable {
            resource: before.resource.clone(),
            reason: reason.clone(),
        },
        None => Error::NoRefreshToken {
            resource: before.resource.clone(),
        },
    };
    if !grant.kind.is_authorization_code() && grant.unreadable.is_none() {
        // The app's own grant: new tokens are asked for as the first were.
        if let Some(tokens) = grant.tokens.as_ref().filter(|t| settled(t, reason, now)) {
            return Ok((Some(tokens.clone()), false));
        }
        let Some(new) = super::machine::app_tokens(http, grant, &before.resource, now).await else {
            return Err(no_refresh());
        };
        let rules = grant.rules;
        return keep_refreshed(store, owner, before, new, rules).await;
    }
    let tokens = grant.tokens.as_ref().ok_or_else(no_refresh)?;
    if settled(tokens, reason, now) {
        return Ok((Some(tokens.clone()), false));
    }
    let Some(refresh_token) = tokens.refresh_token.as_ref() else {
        return Err(no_refresh());
    };
    let mut rules = grant.rules;
    let resource = before.resource.as_str();
    let key = &before.key;
    let send = |rules: token::TokenRules| async move {
        // A process that lost its lock while paused sends no token another
        // has rotated since (a store several processes share checks).
        store.still_current(owner, key, refresh_token).await?;
        // A `private_key_jwt` client signs a new assertion for each try.
        let resource = rules.resource_on_refresh().then_some(resource);
        let build = |client: &crate::client::Client| {
            token::refresh_request(&grant.token_endpoint, client, refresh_token, resource, None)
        };
        // A bound grant proves its key on refresh too (RFC 9449 §5).
        let dpop = tokens.dpop.as_ref();
        let (url, resp) =
            token::send_signed(http, &grant.client, &grant.issuer, &build, dpop, now).await?;
        token::parse_bound(&url, &resp, now, Some(refresh_token), &rules, dpop)
    };
    let mut result = send(rules).await;
    if rules.resource_on_refresh() && result.as_ref().is_err_and(refused_resource) {
        // Rule `resource_refused_on_refresh`: a server that refuses RFC 8707
        // `resource` on refresh gets one retry without it, remembered for
        // this grant.
        rules.resource = token::ResourceParam::NotOnRefresh;
        result = send(rules).await;
    }
    match result {
        Ok(new) => keep_refreshed(store, owner, before, Ok(new), rules).await,
        Err(e) if e.requires_reauthorization() => Err(drop_dead(store, owner, before, e).await?),
        Err(e) => Err(e),
    }
}

/// Stores the tokens a refresh brought (an error as it came): the new
/// tokens, and `true` for "new ones were obtained". A provider removed
/// while the refresh ran is not brought back.
async fn keep_refreshed(
    store: &impl Store,
    owner: &str,
    before: Provider,
    new: Result<TokenSet>,
    rules: token::TokenRules,
) -> Result<(Option<TokenSet>, bool)> {
    let url = before.key.to_string();
    match write_tokens(store, owner, before, Some(new?), rules).await? {
        Some(p) => Ok((p.tokens().cloned(), true)),
        None => Err(Error::NotConnected { url }),
    }
}

/// A grant its server says is dead (`e`): its tokens dropped, never to be
/// replayed, and the registration of a client the server rejected
/// forgotten, so the next login registers again; `e` as it came.
async fn drop_dead(store: &impl Store, owner: &str, before: Provider, e: Error) -> Result<Error> {
    let Some(grant) = before.grant.as_ref() else {
        return Ok(e);
    };
    if let (true, Some(redirect)) = (e.client_rejected(), &grant.redirect_uri) {
        store
            .remove_registration(&grant.issuer, redirect.as_str())
            .await?;
    }
    let rules = grant.rules;
    write_tokens(store, owner, before, None, rules).await?;
    Ok(e)
}

/// Whether a token error says the server refuses the `resource` parameter.
fn refused_resource(e: &Error) -> bool {
    match e {
        Error::Token { oauth: Some(o), .. } => {
            o.error == "invalid_target"
                || (o.error == "invalid_request"
                    && o.error_description
                        .as_deref()
                        .is_some_and(|d| d.to_ascii_lowercase().contains("resource")))
        }
        _ => false,
    }
}

/// Replaces the tokens of the provider read as `before`, by compare-and-swap
/// ([`update_provider_from`]): over changes that left its grant alone (a
/// rename by the app's hook); not when the row was removed (`None`) or its
/// grant replaced (the row as it is now: another writer's tokens win).
async fn write_tokens(
    store: &impl Store,
    owner: &str,
    before: Provider,
    tokens: Option<TokenSet>,
    rules: token::TokenRules,
) -> Result<Option<Provider>> {
    let key = before.key.clone();
    let grant = before.grant.clone();
    let decide = |now: Option<&Provider>| match now {
        Some(p) if p.grant == grant => {
            let mut next = p.clone();
            if let Some(g) = next.grant.as_mut() {
                g.tokens.clone_from(&tokens);
                g.rules = rules;
            }
            Change::Write(Box::new(next))
        }
        _ => Change::Keep,
    };
    let what = "its tokens were written";
    update_provider_from(store, owner, &key, Some(before), what, decide).await
}

/// What removing a provider did.
#[derive(Debug)]
pub struct Removal {
    /// The provider removed.
    pub provider: Provider,
    /// The revocation at the server: `Ok(true)` revoked, `Ok(false)` nothing to
    /// revoke (no endpoint or no token), `Err` the server refused or failed.
    pub revoked: Result<bool>,
}

/// Removes `owner`'s provider serving `url` (the one whose key is the
/// longest prefix of it, as for an authed call: `https://api.example/user`
/// removes the provider at `https://api.example`) and revokes its refresh
/// token (or access token) at the server when it has a revocation endpoint.
/// The provider is removed even if revocation fails; the outcome is
/// reported. [`Error::NotConnected`] when no provider serves `url`. A
/// client that authenticates at the token endpoint (a secret, or
/// `private_key_jwt` with an assertion signed at `now`) authenticates at
/// the revocation endpoint too (RFC 7009 §2.1).
pub async fn remove_provider(
    http: &impl HttpClient,
    store: &impl Store,
    owner: &str,
    url: &ResourceKey,
    now: u64,
) -> Result<Removal> {
    let not_connected = || Error::NotConnected {
        url: url.to_string(),
    };
    let found = store
        .provider_for(owner, url)
        .await?
        .ok_or_else(not_connected)?;
    let Some(provider) = store.remove_provider(owner, &found.key).await? else {
        return Err(not_connected());
    };
    let revoked = match &provider.grant {
        Some(Grant {
            revocation_endpoint: Some(endpoint),
            client,
            tokens: Some(tokens),
            issuer,
            ..
        }) => match client.ready(issuer, now, http) {
            Ok(client) => {
                let (token, hint) = revocation_target(tokens);
                token::revoke(http, endpoint, &client, token, hint)
                    .await
                    .map(|()| true)
            }
            Err(e) => Err(e),
        },
        _ => Ok(false),
    };
    Ok(Removal { provider, revoked })
}
