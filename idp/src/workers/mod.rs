//! The Cloudflare Workers runtime (feature `workers`).
//!
//! - [`ProvidersObject`]: the `OAuthProviders` Durable Object, one per user,
//!   owning that user's pending flows, tokens and refreshes in SQLite (plus a
//!   registry object holding the deployment's client registrations and server
//!   metadata).
//! - [`Handler`]: the Worker side: the OAuth middleware (`{prefix}/login`,
//!   `{prefix}/callback`) and the handler API (authorization for a URL, list,
//!   refresh, remove).
//! - [`AuthedFetch`]: an HTTP client that attaches the right token, refreshes
//!   and retries once on 401, and otherwise returns
//!   [`Error::AuthorizationRequired`] with the URL that re-authorizes.
//! - [`OnAuthSuccess`]: names and describes a provider once connected.
//! - [`McpClient`]: an MCP client (Streamable HTTP) over [`AuthedFetch`];
//!   [`mcp_provider_info`] names a connected MCP server from its `serverInfo`.
//! - [`Session`]: a signed session cookie, so the user id is not something a
//!   request can simply claim.
//! - [`relay()`]: an upstream answer passed on to the app's caller, its body
//!   streamed and cut at the relay cap ([`CappedBody`]).

mod cache;
mod client;
mod config;
mod device;
mod error;
mod events;
mod fetch;
mod handler;
mod hook;
mod http;
mod mcp;
mod middleware;
mod object;
pub mod pages;
mod protocol;
mod relay;
mod session;
mod variables;

pub use crate::error::{ErrorKind, ErrorReport};
pub use cache::MAX_TOKEN_CACHE_SECS;
pub use client::ProvidersStub;
pub use config::{Config, RoutePrefix, DEFAULT_BINDING};
pub use device::DeviceConnect;
pub use error::{AuthorizationRequired, Error, Reason};
pub use events::{Event, EventKind, AUDIT_LOG_LEN};
pub use fetch::{AuthedFetch, OutgoingRequest, FORWARDED_HEADERS};
pub use handler::{authorization_for, reencrypt_registry, Background, Handler};
pub use hook::{Connected, DefaultHook, OnAuthSuccess, ProviderInfo};
pub use http::{now, WorkerHttp, DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT_MS};
pub use mcp::{mcp_provider_info, McpClient, McpError, ServerInfo, Tool, MAX_INPUT_ROUNDS};
pub use middleware::client_metadata_response;
pub use object::{ProvidersObject, ENCRYPTION_KEYS_VAR, REGISTRY_WRITES_PER_HOUR};
#[cfg(feature = "bench")]
pub use protocol::CallStats;
pub use protocol::{
    DeviceStatus, ProviderView, ProvidersPage, Reencrypted, RefreshOutcome, RefreshStatus,
    RemoveOutcome,
};
pub use relay::{relay, CappedBody, DEFAULT_RELAY_MAX_BYTES};
pub use session::{cookie_name, Session, HOST_SESSION_COOKIE, SESSION_COOKIE, SESSION_KEY_VAR};

mod app;
pub use app::{serve, AppContext, AppHook, IdpWorker};
