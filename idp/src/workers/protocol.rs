//! The internal JSON protocol between the Worker and the `OAuthProviders`
//! Durable Object (a Rust Durable Object cannot receive JS RPC, so it is
//! reached over `fetch`). Not a public API.

use crate::discovery::AuthorizationServer;
use crate::matching::ResourceKey;
use crate::registration::Registration;
use crate::settings::Settings;
use crate::store::Provider;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

/// The URL every internal call is sent to (the host is never resolved).
pub(crate) const INTERNAL_URL: &str = "https://idp.internal/call";

/// One call to an object, with the type of its reply. User calls go to a
/// user's object ([`UserOp`]), registry calls to the registry ([`RegistryOp`]);
/// the compiler keeps each call to its object and each reply to its type.
pub(crate) trait Op: Into<Call> {
    /// What the object answers.
    type Reply: Serialize + DeserializeOwned;
}

/// A call to a user's object.
pub(crate) trait UserOp: Op {}

/// A call to the registry object.
pub(crate) trait RegistryOp: Op {}

/// Encodes a struct as a JSON array of its fields in declaration order:
/// decoding a tuple takes one sequence visitor, where a struct with named
/// fields needs a map visitor and a field-name matcher as well. For what
/// crosses between the Worker and its objects only (both ends are one
/// build), never for what is stored.
macro_rules! tuple_wire {
    ($(#[$attr:meta])* $name:ident { $( $field:ident : $ty:ty ),* $(,)? }) => {
        $(#[$attr])*
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                ($( &self.$field, )*).serialize(s)
            }
        }
        $(#[$attr])*
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let ($( $field, )*) = <($( $ty, )*)>::deserialize(d)?;
                Ok($name { $( $field ),* })
            }
        }
    };
}

/// Declares each call as a struct with its reply type, and the wire enum
/// `Call` (`{"<snake_case name>": [...fields]}`: externally tagged, which decodes
/// without buffering; an internally tagged enum costs about 24 KB of gzipped
/// wasm). A call's fields cross as a JSON array in declaration order
/// ([`tuple_wire!`]). Both ends are the same build (`docs/deploy.md`: a split
/// deployment deploys both scripts together).
macro_rules! calls {
    ($( $kind:ident $(#[$attr:meta])* $name:ident { $( $(#[$fdoc:meta])* $field:ident : $ty:ty ),* $(,)? } -> $reply:ty ; )*) => {
        $(
            $(#[$attr])*
            #[derive(Debug)]
            pub(crate) struct $name { $( $(#[$fdoc])* pub $field: $ty ),* }
            $(#[$attr])*
            impl Op for $name { type Reply = $reply; }
            $(#[$attr])*
            impl $kind for $name {}
            $(#[$attr])*
            impl From<$name> for Call {
                fn from(op: $name) -> Call { Call::$name(op) }
            }
            tuple_wire!($(#[$attr])* $name { $( $field: $ty ),* });
        )*
        /// Every call, as it crosses the wire.
        #[derive(Debug, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub(crate) enum Call { $( $(#[$attr])* $name($name) ),* }

        impl Call {
            /// Answers the call with the object: one line per call, each
            /// call by its own [`Answer`](super::object::Answer).
            #[allow(unused_doc_comments)]
            pub(crate) async fn answer_with<H: super::OnAuthSuccess>(
                self,
                object: &super::object::ProvidersObject<H>,
                cx: &super::object::Cx<'_>,
            ) -> String {
                use super::object::{reply, Answer};
                match self {
                    $( $(#[$attr])* Call::$name(op) => reply::<$name>(op.answer(object, cx).await), )*
                }
            }
        }
    };
}

calls! {
    UserOp
    /// Starts connecting a resource.
    Login {
        owner: String,
        url: Url,
        scope: Option<String>,
        settings: Box<Settings>,
        /// For a login confirmed on the confirmation page: its single-use
        /// token, which the object checks and spends before anything else.
        confirmation: Option<String>,
    } -> LoginReply;
    UserOp
    /// Connects a resource with no browser (as the app, a workload, or a
    /// person its enterprise signed in).
    ConnectWith {
        owner: String,
        url: Url,
        scope: Option<String>,
        settings: Box<Settings>,
        credential: crate::flow::Credential,
    } -> CallbackReply;
    UserOp
    /// Starts connecting a resource with no browser callback (RFC 8628):
    /// the object polls it from its alarm.
    StartDeviceLogin {
        owner: String,
        url: Url,
        scope: Option<String>,
        settings: Box<Settings>,
    } -> DeviceStartReply;
    UserOp
    /// Where a device login stands (polled first when due).
    PollDeviceLogin { owner: String, id: String } -> DeviceStatus;
    UserOp
    /// A single-use token for the confirmation page (10 minutes).
    ConfirmationToken { owner: String } -> String;
    UserOp
    /// Finishes a login.
    Callback {
        owner: String,
        /// The URL the callback arrived at, without its query.
        callback_uri: Url,
        query: String,
    } -> CallbackReply;
    UserOp
    /// The `Authorization` for a URL (refreshed when near expiry).
    Authorization {
        owner: String,
        url: Url,
        /// Name the providers under the answer's key (for the isolate cache).
        narrower: bool,
    } -> Option<AuthorizationReply>;
    UserOp
    /// The resource rejected the token whose fingerprint is given.
    Rejected {
        owner: String,
        key: ResourceKey,
        fingerprint: String,
        /// Name the providers under the answer's key (for the isolate cache).
        narrower: bool,
    } -> AuthorizationReply;
    UserOp
    /// Refreshes the providers serving these URLs when near expiry, or
    /// now with `force`.
    RefreshExpiring {
        owner: String,
        urls: Vec<Url>,
        force: bool,
    } -> Vec<RefreshOutcome>;
    UserOp
    /// The owner's providers ordered by key: all of them, or with `limit`,
    /// one page of those after the resource URL `after`.
    Providers { owner: String, after: Option<ResourceKey>, limit: Option<u32> } -> Vec<ProviderView>;
    UserOp
    /// The MCP session kept for (owner, server URL), if any.
    McpSessionGet { owner: String, url: Url } -> Option<McpSessionState>;
    UserOp
    /// Keeps (or, with `None`, forgets) the MCP session for (owner, server URL).
    McpSessionPut { owner: String, url: Url, session: Option<McpSessionState> } -> ();
    UserOp
    /// The provider serving a URL, if any.
    Find { owner: String, url: Url } -> Option<ProviderView>;
    UserOp
    /// Removes (and revokes) the provider stored for a URL.
    Remove { owner: String, url: Url } -> RemoveOutcome;
    UserOp
    /// Seeds providers directly (benchmarks of lookup scaling).
    #[cfg(feature = "bench")]
    Seed { owner: String, providers: Vec<Provider> } -> usize;
    UserOp
    /// How many calls this object instance has answered (benchmarks).
    #[cfg(feature = "bench")]
    Stats {} -> CallStats;
    UserOp
    /// The user's audit log, newest first (the last 200 events).
    Events { owner: String } -> Vec<super::Event>;
    UserOp
    /// Seals again this user's secrets (and the registry's) under the current
    /// key.
    Reencrypt {} -> Reencrypted;
    RegistryOp
    /// Seals again the registry's secrets under the current key.
    RegistryReencrypt {} -> usize;
    RegistryOp
    /// A cached registration.
    RegistrationGet { issuer: String, redirect_uri: String } -> Option<Registration>;
    RegistryOp
    /// Caches a registration.
    RegistrationPut { registration: Registration } -> ();
    RegistryOp
    /// Forgets a registration.
    RegistrationRemove { issuer: String, redirect_uri: String } -> ();
    RegistryOp
    /// Cached server metadata and when it was fetched.
    ServerGet { issuer: String } -> Option<(AuthorizationServer, u64)>;
    RegistryOp
    /// The issuers with cached metadata, most recently fetched first.
    KnownIssuers { limit: usize } -> Vec<crate::registration::DocumentIssuer>;
    RegistryOp
    /// Caches server metadata.
    ServerPut { issuer: String, server: Box<AuthorizationServer>, fetched_at: u64 } -> ();
}

/// How many internal calls an object instance has answered (feature
/// `bench`).
#[cfg(feature = "bench")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallStats {
    /// The count.
    pub calls: u64,
    /// The size of the object's SQLite database in bytes (what storage is
    /// billed on).
    pub database_bytes: u64,
}

/// What [`Handler::reencrypt`](super::Handler::reencrypt) rewrote: rows
/// whose secrets were in plain text or under an older key, now sealed with
/// the first key of `IDP_ENCRYPTION_KEYS`. The deployment-wide registry is
/// the operator's to re-encrypt ([`reencrypt_registry`](super::reencrypt_registry)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reencrypted {
    /// Rows of the user's object.
    pub user_rows: usize,
}

/// An MCP session kept for a user and server: the id the server assigned
/// and the protocol version agreed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct McpSessionState {
    /// The session the server assigned (none in a stateless revision).
    #[serde(default)]
    pub id: Option<String>,
    pub protocol_version: Option<String>,
    /// The listed tools' mirrored parameters.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tool_headers: std::collections::BTreeMap<String, Vec<crate::mcp::HeaderParam>>,
}

/// A call as sent: with the binding of the registry object, so a user's
/// object can reach the deployment's registrations (`None` in calls to the
/// registry itself, which keeps them locally).
#[derive(Debug)]
pub(crate) struct Envelope {
    pub registry: Option<String>,
    /// The timeout of the object's outbound requests for this call
    /// (milliseconds; the default when absent).
    pub timeout_ms: Option<u32>,
    pub call: Call,
}
tuple_wire!(Envelope { registry: Option<String>, timeout_ms: Option<u32>, call: Call });

/// An error as it crosses the object boundary: the engine's report.
pub(crate) type RemoteError = crate::error::ErrorReport;

/// The reply to a [`Call`]: `{"ok": ...}` or `{"err": ...}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Reply<T> {
    Ok(T),
    Err(RemoteError),
}

/// What the object answers to a login.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LoginReply {
    /// A public resource, connected at once.
    Public(CallbackReply),
    /// Where to send the person to authorize.
    Redirect(Url),
}

/// What the object answers to the start of a device login.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DeviceStartReply {
    /// A public resource, connected at once.
    Public(CallbackReply),
    /// The person is to enter the code.
    Waiting(crate::flow::DeviceLogin),
}

/// Where a login with no browser (RFC 8628) stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    /// The person has not answered yet; the object polls again at
    /// `poll_at` (seconds since the epoch).
    Waiting {
        /// The next poll.
        poll_at: u64,
    },
    /// The person approved: the provider is connected.
    Connected {
        /// The provider, as the app's `on_auth_success` named it.
        provider: Box<ProviderView>,
    },
}

/// What the object answers to a callback.
#[derive(Debug)]
pub(crate) struct CallbackReply {
    pub provider: ProviderView,
    pub hook_error: Option<String>,
}
tuple_wire!(CallbackReply { provider: ProviderView, hook_error: Option<String> });

/// What the object answers to an authorization request (its `Debug` leaves
/// the header out).
pub(crate) use crate::flow::Authorization as AuthorizationReply;

/// One provider as the app may see it: never a token or a client secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderView {
    /// The resource URL this provider serves (a path prefix).
    pub resource_url: ResourceKey,
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
    pub reauthorize_url: Option<Url>,
    /// The provider profile that served it, when it has no discovery
    /// ([`crate::profile`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The account this connection is, when one was named
    /// ([`crate::flow::accounts`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

impl ProviderView {
    pub(crate) fn of(p: &Provider) -> Self {
        let tokens = p.tokens();
        ProviderView {
            resource_url: p.key.clone(),
            name: p.name.clone(),
            public: p.is_public(),
            metadata: p.metadata.clone(),
            has_token: tokens.is_some(),
            expires_at: tokens.and_then(|t| t.expires_at),
            scope: tokens.and_then(|t| t.scope.clone()),
            reauthorize_url: None,
            profile: p.grant.as_ref().and_then(|g| g.profile.clone()),
            account: p.account.clone(),
        }
    }
}

/// What one refresh in a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshStatus {
    /// New tokens were fetched.
    Refreshed,
    /// Nothing to do: the token is not near expiry.
    Fresh,
    /// The provider is public.
    Public,
    /// No provider serves the URL.
    NotConnected,
    /// The refresh failed (see `error`).
    Error,
}

/// The outcome of one refresh in a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshOutcome {
    /// The URL asked for.
    pub url: String,
    /// `refreshed`, `fresh` (nothing to do), `public`, `not_connected` or `error`.
    pub status: RefreshStatus,
    /// The new expiry, when known.
    pub expires_at: Option<u64>,
    /// What went wrong, for `error`.
    pub error: Option<RemoteError>,
    /// The account refreshed, when it is not the user's first at its API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// One page of a user's providers
/// ([`Handler::providers_page`](super::Handler::providers_page)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvidersPage {
    /// Ordered by resource URL.
    pub providers: Vec<ProviderView>,
    /// Where the next page starts (pass it as `after`); `None` on the last
    /// page.
    pub next: Option<String>,
}

/// What removing a provider did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoveOutcome {
    /// Whether a provider was removed (always, in an answer: a URL no
    /// provider serves is an error, `not_connected`).
    pub removed: bool,
    /// The provider removed: the one whose key is the longest prefix of the
    /// URL given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<ResourceKey>,
    /// Whether its token was revoked at the server.
    pub revoked: bool,
    /// Why revocation failed, if it did (the provider is removed anyway).
    pub revocation_error: Option<String>,
    /// The account removed, when it was named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_cross_as_arrays_and_read_back() {
        let env = Envelope {
            registry: Some("OAuthProviders".into()),
            timeout_ms: None,
            call: RefreshExpiring {
                owner: "alice".into(),
                urls: vec![Url::parse("https://api.example/v1").unwrap()],
                force: true,
            }
            .into(),
        };
        let text = serde_json::to_string(&env).unwrap();
        assert_eq!(
            text,
            r#"["OAuthProviders",null,{"refresh_expiring":["alice",["https://api.example/v1"],true]}]"#
        );
        let back: Envelope = serde_json::from_str(&text).unwrap();
        match back.call {
            Call::RefreshExpiring(c) => {
                assert_eq!(
                    (c.owner.as_str(), c.urls.len(), c.force),
                    ("alice", 1, true)
                )
            }
            other => panic!("{other:?}"),
        }
        let empty: Call = serde_json::from_str(r#"{"reencrypt":null}"#).unwrap();
        assert!(matches!(empty, Call::Reencrypt(_)));
    }

    #[test]
    fn a_call_of_the_wrong_shape_is_an_error() {
        for text in [
            r#"{"find":["alice"]}"#,
            r#"{"find":["alice","https://a.example/",3]}"#,
            r#"{"find":{"owner":"alice","url":"https://a.example/"}}"#,
            r#"{"find":["alice","not a url"]}"#,
            r#"{"unknown":[]}"#,
        ] {
            assert!(serde_json::from_str::<Call>(text).is_err(), "{text}");
        }
    }
}
