//! How the object answers a call: each call is one [`Answer`] (in
//! `login.rs`, `providers.rs`, `registry.rs`, `upkeep.rs`), dispatched by
//! the `Call::answer_with` that `protocol.rs`'s `calls!` declares.

use super::super::hook::OnAuthSuccess;
use super::super::http::WorkerHttp;
use super::super::protocol::{Call, Op, RemoteError, Reply};
use super::{ProvidersObject, Role};
use crate::error::Error;

/// What every call is answered with besides the object: the registry
/// binding (for a user's object), and the HTTP client of this request.
pub(crate) struct Cx<'a> {
    /// Which role the object plays.
    pub role: Role<'a>,
    /// Sends every request, with this request's timeout.
    pub http: &'a WorkerHttp,
}

/// The object's answer to one call.
pub(crate) trait Answer: Op + Sized {
    /// Does what the call asks and returns its reply.
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError>;
}

impl<H: OnAuthSuccess> ProvidersObject<H> {
    /// Answers one call with its reply type, serialised.
    pub(super) async fn handle(
        &self,
        registry: Option<&str>,
        http: &WorkerHttp,
        call: Call,
    ) -> String {
        let role = Role::of(registry);
        call.answer_with(self, &Cx { role, http }).await
    }
}

/// Serialises the reply of `O`: the compiler holds each arm to its call's
/// reply type.
pub(crate) fn reply<O: Op>(reply: Result<O::Reply, RemoteError>) -> String {
    let reply = match reply {
        Ok(v) => Reply::Ok(v),
        Err(e) => Reply::Err(e),
    };
    serde_json::to_string(&reply).unwrap_or_else(|e| {
        let e = Error::Storage(crate::error::StorageError::with_source(
            crate::error::StorageCause::Corrupt,
            "could not encode a reply",
            e,
        ));
        serde_json::to_string(&Reply::<()>::Err(e.report())).unwrap_or_default()
    })
}
