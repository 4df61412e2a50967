//! What a runtime persists for a user: connected providers, pending flows and
//! cached client registrations, behind the [`Store`] trait.
//!
//! The Workers runtime implements it over a Durable Object's SQLite;
//! [`memory::MemoryStore`] keeps everything in memory (tests, the native
//! runtime, single-process apps).

pub mod conformance;
pub mod memory;
pub mod seal;
pub mod sql;
pub mod update;

use crate::authorize::PendingFlow;
use crate::discovery::AuthorizationServer;
use crate::error::Result;
use crate::matching::ResourceKey;
use crate::registration::{Client, Registration};
use crate::token::TokenSet;
use serde::{Deserialize, Serialize};
use std::future::Future;
use url::Url;

/// What is held to call an authorization server for one provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The issuer.
    pub issuer: String,
    /// The client the tokens were issued to.
    pub client: Client,
    /// The token endpoint.
    pub token_endpoint: Url,
    /// The revocation endpoint, when the server has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<Url>,
    /// The tokens; `None` once the grant was found dead (re-authorization needed).
    pub tokens: Option<TokenSet>,
    /// The redirect URI the client was registered with (to drop a cached
    /// registration the server no longer accepts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<Url>,
    /// What is known about the server's token answers (from a profile, or
    /// learned: a server that refused `resource` on refresh).
    #[serde(default, skip_serializing_if = "crate::token::TokenRules::is_standard")]
    pub rules: crate::token::TokenRules,
    /// The provider profile the grant came from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// How the tokens were obtained, and so how new ones are: a person's
    /// authorization (refreshed with the refresh token) or the app's own
    /// client credentials (asked again when they expire).
    #[serde(default, skip_serializing_if = "GrantKind::is_authorization_code")]
    pub kind: GrantKind,
    /// How the API says a token is refused when it does not answer 401
    /// (from the profile the grant came from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<crate::token::Refusal>,
    /// Set by a store whose sealed secrets for this grant could not be
    /// opened (why; the tokens then read as absent). Never stored.
    #[serde(skip)]
    pub unreadable: Option<String>,
}

/// How a grant's tokens were obtained (`{"grant": "<kind>", ...fields}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "grant")]
pub enum GrantKind {
    /// A person authorized the app (authorization code with PKCE).
    #[default]
    AuthorizationCode,
    /// The app connected as itself (RFC 6749 §4.4); new tokens are asked
    /// for with the same client and scope, with no person involved.
    ClientCredentials {
        /// The scope asked for, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
    },
    /// The app connected as a workload (workload identity federation): its
    /// identity token, a JWT from the platform it runs on, presented with
    /// the JWT bearer grant (RFC 7523). New tokens are asked for with the
    /// same token while the server takes it; then the app connects again
    /// with a fresh one.
    JwtBearer {
        /// The scope asked for, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
        /// The workload's token (sealed at rest; `None` only when it was
        /// sealed under a key no longer configured).
        #[serde(default)]
        assertion: Option<crate::secret::Assertion>,
    },
    /// A person's grant under enterprise-managed authorization: their ID
    /// token from the enterprise's identity provider exchanged there for an
    /// identity assertion authorization grant, presented with the JWT
    /// bearer grant. New tokens repeat the exchange while the provider
    /// takes the ID token; then the person signs in to the app again.
    Enterprise {
        /// The scope asked for, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
        /// The identity provider (its client's secret sealed at rest).
        idp: Box<crate::token::EnterpriseIdp>,
        /// The person's ID token (sealed at rest; `None` only when it was
        /// sealed under a key no longer configured).
        #[serde(default)]
        id_token: Option<crate::secret::Assertion>,
    },
}

/// [`GrantKind`] as stored: its tag and every variant's fields side by
/// side. Decoding through it reads the object once; serde's decoder for an
/// internally tagged enum buffers it first (about 10 KB of wasm).
#[derive(Deserialize)]
struct GrantKindWire {
    grant: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    assertion: Option<crate::secret::Assertion>,
    #[serde(default)]
    idp: Option<Box<crate::token::EnterpriseIdp>>,
    #[serde(default)]
    id_token: Option<crate::secret::Assertion>,
}

impl<'de> Deserialize<'de> for GrantKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = GrantKindWire::deserialize(d)?;
        Ok(match w.grant.as_str() {
            "authorization_code" => GrantKind::AuthorizationCode,
            "client_credentials" => GrantKind::ClientCredentials { scope: w.scope },
            "jwt_bearer" => GrantKind::JwtBearer {
                scope: w.scope,
                assertion: w.assertion,
            },
            "enterprise" => GrantKind::Enterprise {
                scope: w.scope,
                idp: w
                    .idp
                    .ok_or_else(|| serde::de::Error::missing_field("idp"))?,
                id_token: w.id_token,
            },
            other => {
                return Err(serde::de::Error::unknown_variant(
                    other,
                    &[
                        "authorization_code",
                        "client_credentials",
                        "jwt_bearer",
                        "enterprise",
                    ],
                ))
            }
        })
    }
}

impl GrantKind {
    /// Whether this is the default kind (a person's authorization).
    pub fn is_authorization_code(&self) -> bool {
        matches!(self, GrantKind::AuthorizationCode)
    }
}

/// A connected protected resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    /// Where it matches: URLs under this key use this provider.
    pub key: ResourceKey,
    /// The URL the person connected.
    pub resource_url: String,
    /// The canonical resource URI sent as RFC 8707 `resource`.
    pub resource: String,
    /// A display name.
    pub name: String,
    /// App-defined JSON metadata.
    #[serde(default)]
    pub metadata: serde_json::Value,
    /// The grant; `None` for a public resource.
    pub grant: Option<Grant>,
    /// When it was connected (seconds since the epoch).
    pub created_at: u64,
    /// The account this connection is, when the person or the app named
    /// it ([`crate::flow::accounts`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

impl Provider {
    /// Whether the resource needs no token.
    pub fn is_public(&self) -> bool {
        self.grant.is_none()
    }

    /// The tokens held, if any.
    pub fn tokens(&self) -> Option<&TokenSet> {
        self.grant.as_ref().and_then(|g| g.tokens.as_ref())
    }

    /// When the grant is next due for a background refresh (a
    /// [`RefreshQueue`] keeps this beside the row): the refresh margin of
    /// tokens that come with a refresh token. `None` for a public resource,
    /// a dead grant, or tokens that cannot be refreshed or never expire.
    pub fn refresh_due(&self) -> Option<u64> {
        self.refresh_due_with(None)
    }

    /// [`Provider::refresh_due`], or sooner the keep-alive (`keep_alive`
    /// seconds after the tokens were issued): what a queue configured with
    /// a keep-alive schedules.
    pub fn refresh_due_with(&self, keep_alive: Option<u64>) -> Option<u64> {
        self.tokens()
            .filter(|t| t.refresh_token.is_some())
            .and_then(|t| t.background_due(keep_alive))
    }

    /// The default display name: the resource's host.
    pub fn default_name(key: &ResourceKey) -> String {
        key.to_url().host_str().unwrap_or(key.as_str()).to_owned()
    }
}

/// What [`Store::take_flow`](crate::store::UserStore::take_flow) found.
#[derive(Debug)]
pub enum FlowTake {
    /// The flow, now removed from the store.
    Taken(Box<PendingFlow>),
    /// No flow with this state for this owner (unknown, used, expired, or
    /// another owner's).
    Missing,
    /// The owner's flow exists but was sent with another redirect URI; it
    /// stays in the store.
    OtherCallback,
}

/// What a provider write expects to find under its key: the write happens
/// only if the row is still as the writer read it, so a write based on a
/// stale read (a refresh that finished after a removal, a login racing
/// another) cannot undo a change it did not see.
#[derive(Debug, Clone, Copy)]
pub enum Expect<'a> {
    /// No provider under the key.
    Nothing,
    /// Exactly this provider (as read before).
    Exactly(&'a Provider),
}

impl<'a> From<Option<&'a Provider>> for Expect<'a> {
    fn from(p: Option<&'a Provider>) -> Self {
        p.map_or(Expect::Nothing, Expect::Exactly)
    }
}

/// What [`Store::put_provider`](crate::store::UserStore::put_provider) did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Put {
    /// The provider was written.
    Written,
    /// The row was not as expected; nothing was written. What is stored now.
    Conflict(Option<Box<Provider>>),
}

/// Persistence of one user's state: pending flows and providers.
///
/// The atomicity a runtime relies on is in the signatures:
/// [`UserStore::take_flow`] removes a flow only for its owner and its
/// redirect URI, in one step ([`FlowTake`]); [`UserStore::put_provider`] is a
/// compare-and-swap on the provider row ([`Expect`], [`Put`]). Methods are
/// async with no `Send` bound on the trait (wasm runtimes are
/// single-threaded); an implementation's futures are `Send` when its own
/// types are (the memory and SQLite stores' are), and callers that know the
/// store's type see that. [`conformance::check_user`] is the test such a
/// store must pass.
pub trait UserStore {
    /// Keeps a pending flow until its callback.
    fn put_flow(&self, flow: PendingFlow) -> impl Future<Output = Result<()>>;
    /// Removes and returns the flow with this state if `owner` started it and
    /// it was sent with `redirect_uri`. Another owner's flow, or one whose
    /// callback arrived at another redirect URI, is left untouched.
    fn take_flow(
        &self,
        state: &str,
        owner: &str,
        redirect_uri: &str,
    ) -> impl Future<Output = Result<FlowTake>>;
    /// Writes `owner`'s provider under its key if the row is as `expected`
    /// (compare-and-swap); otherwise writes nothing and returns what is stored.
    fn put_provider(
        &self,
        owner: &str,
        provider: Provider,
        expected: Expect<'_>,
    ) -> impl Future<Output = Result<Put>>;
    /// `owner`'s provider stored exactly under `key`.
    fn provider(
        &self,
        owner: &str,
        key: &ResourceKey,
    ) -> impl Future<Output = Result<Option<Provider>>>;
    /// `owner`'s provider with the longest key covering `url`.
    fn provider_for(
        &self,
        owner: &str,
        url: &ResourceKey,
    ) -> impl Future<Output = Result<Option<Provider>>>;
    /// All of `owner`'s providers, ordered by key.
    fn providers(&self, owner: &str) -> impl Future<Output = Result<Vec<Provider>>>;
    /// Up to `limit` of `owner`'s providers whose key sorts after `after`,
    /// ordered by key: one page of [`UserStore::providers`]. The default reads
    /// them all and slices; a store with an index should answer from it.
    fn providers_page(
        &self,
        owner: &str,
        after: Option<&ResourceKey>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Provider>>> {
        async move {
            let mut all = self.providers(owner).await?;
            all.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(all
                .into_iter()
                .filter(|p| after.is_none_or(|a| p.key > *a))
                .take(limit)
                .collect())
        }
    }
    /// Removes and returns `owner`'s provider under `key`.
    fn remove_provider(
        &self,
        owner: &str,
        key: &ResourceKey,
    ) -> impl Future<Output = Result<Option<Provider>>>;
    /// Runs `refresh` while no other process sharing this store refreshes
    /// `owner`'s grant under `key`, so a refresh token that rotates is used
    /// once across processes, not only within one (whose runtime already
    /// serialises its own callers with a [`crate::flow::RefreshLock`]).
    ///
    /// The default runs it at once: right for a store one process owns (in
    /// memory, a SQLite file, a Durable Object). A store several processes
    /// share holds a lock in the database for as long as `refresh` runs,
    /// waits for it a bounded time (then a [`StorageCause::Unavailable`]
    /// error), and loses it when its process or connection dies.
    ///
    /// [`StorageCause::Unavailable`]: crate::error::StorageCause::Unavailable
    fn exclusive<T>(
        &self,
        owner: &str,
        key: &ResourceKey,
        refresh: impl Future<Output = T>,
    ) -> impl Future<Output = Result<T>> {
        let _ = (owner, key);
        async move { Ok(refresh.await) }
    }

    /// Right before a refresh sends `refresh_token` (inside
    /// [`UserStore::exclusive`]): an error when it is no longer the one
    /// stored for `owner`'s grant under `key`, so it is not sent. A process
    /// that lost its database lock while it was paused must not send a
    /// token another process has rotated since: a server with reuse
    /// detection would revoke the whole grant.
    ///
    /// The default has nothing to check: in a store one process owns, the
    /// runtime's own lock is never lost. A store several processes share
    /// reads the row again.
    fn still_current(
        &self,
        owner: &str,
        key: &ResourceKey,
        refresh_token: &crate::secret::RefreshToken,
    ) -> impl Future<Output = Result<()>> {
        let _ = (owner, key, refresh_token);
        async { Ok(()) }
    }
}

/// Persistence shared by a whole deployment: client registrations and
/// authorization server metadata (on Workers, the registry object's).
/// [`conformance::check_registry`] is the test such a store must pass.
pub trait RegistryStore {
    /// A cached registration for (issuer, redirect URI).
    fn registration(
        &self,
        issuer: &str,
        redirect_uri: &str,
    ) -> impl Future<Output = Result<Option<Registration>>>;
    /// Caches a registration.
    fn put_registration(&self, registration: Registration) -> impl Future<Output = Result<()>>;
    /// Forgets a registration the server rejected.
    fn remove_registration(
        &self,
        issuer: &str,
        redirect_uri: &str,
    ) -> impl Future<Output = Result<()>>;
    /// Cached metadata for an issuer URL (as listed in resource metadata) and
    /// when it was fetched (seconds since the epoch). The flow decides whether
    /// it is still fresh.
    fn server(
        &self,
        issuer: &str,
    ) -> impl Future<Output = Result<Option<(AuthorizationServer, u64)>>>;
    /// Caches checked metadata under an issuer URL.
    fn put_server(
        &self,
        issuer: &str,
        server: AuthorizationServer,
        fetched_at: u64,
    ) -> impl Future<Output = Result<()>>;
}

/// A grant whose refresh is due, claimed by the process that reads it
/// ([`RefreshQueue::claim_due`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The owner.
    pub owner: String,
    /// The provider's key.
    pub key: ResourceKey,
    /// Passing failures in a row so far (for the backoff).
    pub failures: u64,
}

/// The grants due for a refresh with no request in flight, for a background
/// task that any of several processes sharing the store may run: each due
/// grant is claimed by one process at a time, for a lease. A grant is due
/// from [`crate::flow::schedule::due_at`] of the tokens last written (only
/// grants with a refresh token), or the retry time after a passing failure;
/// a dead grant (no tokens) is never due.
///
/// [`conformance::check_refresh_queue`] is the test such a store must pass
/// ([`memory::MemoryStore`], one process's queue, passes it too).
pub trait RefreshQueue {
    /// Claims up to `limit` grants due at `now` that no other process holds
    /// a lease on, each for `lease` seconds (a process that dies with a
    /// claim leaves it to another once the lease ends).
    fn claim_due(
        &self,
        now: u64,
        limit: usize,
        lease: u64,
    ) -> impl Future<Output = Result<Vec<Due>>>;
    /// After a passing failure: due again at `at`, with `failures` in a row.
    fn retry_at(
        &self,
        owner: &str,
        key: &ResourceKey,
        failures: u64,
        at: u64,
    ) -> impl Future<Output = Result<()>>;
    /// Ends a claim (new tokens written through the store say when the grant
    /// is next due; a grant still due is claimable again).
    fn release(&self, owner: &str, key: &ResourceKey) -> impl Future<Output = Result<()>>;
    /// Ends a claim on a grant that needs the person again (dead, or its
    /// secrets unreadable): never due until new tokens are written.
    fn stop(&self, owner: &str, key: &ResourceKey) -> impl Future<Output = Result<()>>;
}

/// Everything the engine keeps: a [`UserStore`] and a [`RegistryStore`]
/// (one type may be both, as every store here is). [`conformance::check`]
/// runs both checks.
pub trait Store: UserStore + RegistryStore {}

impl<T: UserStore + RegistryStore> Store for T {}

#[cfg(test)]
mod tests;
