//! The internal JSON protocol between the Worker and the `OAuthProviders`
//! Durable Object (a Rust Durable Object cannot receive JS RPC, so it is
//! reached over `fetch`). Not a public API.

use crate::discovery::AuthorizationServer;
use crate::error::Error;
use crate::flow::Settings;
use crate::policy::Policy;
use crate::registration::{ClientConfig, ClientInfo, Registration};
use crate::store::Provider;
use serde::{Deserialize, Serialize};
use url::Url;

/// The URL every internal call is sent to (the host is never resolved).
pub(crate) const INTERNAL_URL: &str = "https://idp.internal/call";

/// Deployment settings the Worker sends with a login.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireSettings {
    pub allow_insecure_loopback: bool,
    pub allow_broader_resource: bool,
    pub client_info: ClientInfo,
    pub clients: ClientConfig,
    pub callback_base: Url,
}

impl WireSettings {
    pub(crate) fn to_settings(&self) -> Settings {
        Settings {
            policy: Policy {
                allow_insecure_loopback: self.allow_insecure_loopback,
                allow_broader_resource: self.allow_broader_resource,
            },
            client_info: self.client_info.clone(),
            clients: self.clients.clone(),
            callback_base: self.callback_base.clone(),
        }
    }
}

/// One call to a user's (or the registry's) object.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Call {
    Login {
        owner: String,
        url: String,
        scope: Option<String>,
        settings: Box<WireSettings>,
        /// For a login confirmed on the confirmation page: its single-use
        /// token, which the object checks and spends before anything else.
        confirmation: Option<String>,
    },
    /// A single-use token for the confirmation page (10 minutes).
    ConfirmationToken {
        owner: String,
    },
    Callback {
        owner: String,
        /// The URL the callback arrived at, without its query.
        callback_uri: Url,
        query: String,
    },
    Authorization {
        owner: String,
        url: String,
    },
    /// The resource rejected the token whose fingerprint is given.
    Rejected {
        owner: String,
        key: String,
        fingerprint: String,
    },
    RefreshExpiring {
        owner: String,
        urls: Vec<String>,
    },
    Providers {
        owner: String,
    },
    /// The MCP session kept for (owner, server URL), if any.
    McpSessionGet {
        owner: String,
        url: String,
    },
    /// Keeps (or, with `None`, forgets) the MCP session for (owner, server URL).
    McpSessionPut {
        owner: String,
        url: String,
        session: Option<McpSessionState>,
    },
    Find {
        owner: String,
        url: String,
    },
    Remove {
        owner: String,
        url: String,
    },
    /// Seeds providers directly (benchmarks and tests of lookup scaling).
    Seed {
        owner: String,
        providers: Vec<Provider>,
    },
    /// How many calls this object instance has answered (benchmarks).
    Stats,
    RegistrationGet {
        issuer: String,
        redirect_uri: String,
    },
    RegistrationPut {
        registration: Registration,
    },
    RegistrationRemove {
        issuer: String,
        redirect_uri: String,
    },
    ServerGet {
        issuer: String,
    },
    /// The issuers with cached metadata, most recently fetched first.
    KnownIssuers {
        limit: usize,
    },
    ServerPut {
        issuer: String,
        server: Box<AuthorizationServer>,
        fetched_at: u64,
    },
}

/// An MCP session kept for a user and server: the id the server assigned
/// and the protocol version agreed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct McpSessionState {
    pub id: String,
    pub protocol_version: Option<String>,
}

/// A call as sent: with the binding of the registry object, so a user's
/// object can reach the deployment's registrations (`None` in calls to the
/// registry itself, which keeps them locally).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Envelope {
    pub registry: Option<String>,
    /// The timeout of the object's outbound requests for this call
    /// (milliseconds; the default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    pub call: Call,
}

/// An error as it crosses the object boundary: enough to decide what to show
/// and whether re-authorization is needed, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteError {
    /// A stable code (`invalid_url`, `callback`, `token`, `reauthorize`, ...).
    pub code: String,
    /// The engine's message.
    pub message: String,
    /// The person must authorize again.
    pub reauthorize: bool,
    /// Trying later may work.
    pub retryable: bool,
    /// The HTTP status to answer with.
    pub status: u16,
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<&Error> for RemoteError {
    fn from(e: &Error) -> Self {
        let (code, status) = match e {
            Error::InvalidUrl { .. } => ("invalid_url", 400),
            Error::InsecureUrl { .. } => ("insecure_url", 400),
            Error::Challenge(_) => ("bad_challenge", 400),
            Error::ResourceMetadata { .. } => ("resource_metadata", 400),
            Error::DiscoveryUnavailable { .. } => ("discovery_unavailable", 502),
            Error::AuthorizationServer { .. } => ("authorization_server", 400),
            Error::NoClient { .. } => ("no_client", 400),
            Error::Registration { .. } => ("registration", 502),
            Error::AuthorizationDenied(_) => ("authorization_denied", 400),
            Error::Callback(_) => ("callback", 400),
            Error::NotConnected { .. } => ("not_connected", 401),
            Error::NoRefreshToken { .. } => ("reauthorize", 401),
            Error::Token { .. } if e.requires_reauthorization() => ("reauthorize", 401),
            Error::Token { .. } => ("token", 502),
            Error::Transport { .. } => ("transport", 502),
            Error::UnexpectedStatus { .. } => ("unexpected_status", 400),
            Error::NotAResource { .. } => ("not_a_resource", 400),
            Error::InvalidResponse { .. } => ("invalid_response", 502),
            Error::Storage(_) => ("storage", 500),
            Error::Confirmation => ("confirmation", 403),
            Error::PkceUnsupported { .. } => ("pkce_unsupported", 400),
        };
        RemoteError {
            code: code.into(),
            message: e.to_string(),
            reauthorize: e.requires_reauthorization(),
            retryable: e.is_retryable(),
            status,
        }
    }
}

/// The reply to a [`Call`]: `{"ok": ...}` or `{"err": ...}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Reply<T> {
    Ok(T),
    Err(RemoteError),
}

/// What the object answers to a login.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum LoginReply {
    Public {
        provider: ProviderView,
        hook_error: Option<String>,
    },
    Redirect {
        url: String,
    },
}

/// What the object answers to a callback.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CallbackReply {
    pub provider: ProviderView,
    pub hook_error: Option<String>,
}

/// What the object answers to an authorization request. `Debug` leaves the
/// header out: it carries the access token.
#[derive(Serialize, Deserialize)]
pub(crate) struct AuthorizationReply {
    pub key: String,
    pub header: Option<String>,
    pub scope: Option<String>,
}

impl std::fmt::Debug for AuthorizationReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationReply")
            .field("key", &self.key)
            .field("header", &self.header.as_ref().map(|_| "[redacted]"))
            .field("scope", &self.scope)
            .finish()
    }
}

/// One provider as the app may see it: never a token or a client secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderView {
    /// The resource URL this provider serves (a path prefix).
    pub resource_url: String,
    /// Display name.
    pub name: String,
    /// Whether the resource is public (no token).
    pub public: bool,
    /// App-defined metadata.
    pub metadata: serde_json::Value,
    /// Whether an access token is held.
    pub has_token: bool,
    /// When the access token expires (seconds since the epoch), if known.
    pub expires_at: Option<u64>,
    /// The scope granted, if known.
    pub scope: Option<String>,
    /// The URL that connects this resource again (filled in by the Worker).
    #[serde(default)]
    pub reauthorize_url: String,
}

impl ProviderView {
    pub(crate) fn of(p: &Provider) -> Self {
        let tokens = p.tokens();
        ProviderView {
            resource_url: p.key.to_string(),
            name: p.name.clone(),
            public: p.is_public(),
            metadata: p.metadata.clone(),
            has_token: tokens.is_some(),
            expires_at: tokens.and_then(|t| t.expires_at),
            scope: tokens.and_then(|t| t.scope.clone()),
            reauthorize_url: String::new(),
        }
    }
}

/// The outcome of one refresh in a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshOutcome {
    /// The URL asked for.
    pub url: String,
    /// `refreshed`, `fresh` (nothing to do), `public`, `not_connected` or `error`.
    pub status: String,
    /// The new expiry, when known.
    pub expires_at: Option<u64>,
    /// What went wrong, for `error`.
    pub error: Option<RemoteError>,
}

/// What removing a provider did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoveOutcome {
    /// Whether a provider was removed.
    pub removed: bool,
    /// Whether its token was revoked at the server.
    pub revoked: bool,
    /// Why revocation failed, if it did (the provider is removed anyway).
    pub revocation_error: Option<String>,
}

/// A token's fingerprint: base64url(SHA-256(token)), so the Worker can name
/// the token that failed without sending it back.
pub(crate) fn fingerprint(token: &str) -> String {
    use sha2::{Digest, Sha256};
    crate::encoding::base64url(&Sha256::digest(token.as_bytes()))
}
