//! The object's answer to each internal call.

use super::super::events::{Event, EventKind};
use super::super::hook::OnAuthSuccess;
use super::super::http::{entropy, now, random_bytes, WorkerHttp};
use super::super::protocol::*;
use super::ProvidersObject;
use crate::error::Error;
use crate::flow::{self, LoginStart, Refused};
use crate::matching::ResourceKey;
use crate::store::sql::{json, secs, text};
use crate::store::Store;
use std::future::Future;

impl<H: OnAuthSuccess> ProvidersObject<H> {
    /// Answers one call with its reply type, serialised.
    pub(super) async fn handle(
        &self,
        registry: Option<&str>,
        http: &WorkerHttp,
        call: Call,
    ) -> String {
        match call {
            Call::ConfirmationToken(ConfirmationToken { owner }) => answer::<ConfirmationToken, _>(async {
                let mut bytes = [0u8; 32];
                random_bytes(&mut bytes).map_err(Error::NoRandomness)?;
                let token = crate::encoding::base64url(&bytes);
                self.store(registry)
                    .put_confirmation(&token, &owner)
                    ?;
                Ok(token)
            }).await,
            Call::Login(Login {
                owner,
                url,
                scope,
                settings,
                confirmation,
            }) => answer::<Login, _>(async {
                let store = self.store(registry);
                if let Some(token) = confirmation {
                    store.spend_confirmation(&token, &owner)?;
                }
                let entropy = entropy().map_err(Error::NoRandomness)?;
                let writes = self.refresher.lock().await;
                let cx = flow::Engine {
                    http,
                    store: &store,
                    settings: &settings,
                    now: now(),
                };
                let req = flow::LoginRequest {
                    owner: &owner,
                    scope: scope.as_deref(),
                };
                let start = flow::start_login(&cx, req, &url, entropy).await?;
                drop(writes);
                match start {
                    LoginStart::Redirect(url) => Ok(LoginReply::Redirect { url: url.into() }),
                    LoginStart::Public(p) => {
                        let (provider, hook_error) = self.named(&store, &owner, *p).await;
                        Ok(LoginReply::Public {
                            provider,
                            hook_error,
                        })
                    }
                }
            }).await,
            Call::Callback(Callback {
                owner,
                callback_uri,
                query,
            }) => answer::<Callback, _>(async {
                let store = self.store(registry);
                let p = {
                    let _writes = self.refresher.lock().await;
                    flow::finish_login(http, &store, &owner, &callback_uri, &query, now())
                        .await
                        ?
                };
                let resource = p.key.to_string();
                let recovered = self.was_broken(&owner, &resource);
                let (provider, hook_error) = self.named(&store, &owner, p).await;
                let event = |kind| Event {
                    user: owner.clone(),
                    resource: resource.clone(),
                    at: now(),
                    kind,
                };
                let mut events = vec![event(EventKind::Connected)];
                if recovered {
                    events.push(event(EventKind::Recovered));
                }
                self.record(events).await;
                if let Err(e) = self.schedule().await {
                    worker::console_error!("idp: could not set the refresh alarm: {e}");
                }
                Ok(CallbackReply {
                    provider,
                    hook_error,
                })
            }).await,
            Call::Events(Events { owner }) => answer::<Events, _>(async { Ok(self.events(&owner)?) }).await,
            Call::Authorization(Authorization { owner, url }) => answer::<Authorization, _>(async {
                let store = self.store(registry);
                let mut auth = self
                    .refresher
                    .authorization(http, &store, &owner, &url, now())
                    .await
                    ?;
                // For the Worker's isolate cache: the providers this answer
                // must not be reused under.
                if let Some(a) = auth.as_mut() {
                    a.narrower = store.sql.keys_under(&owner, &a.key)?;
                }
                Ok(auth)
            }).await,
            Call::Rejected(Rejected {
                owner,
                key,
                fingerprint,
            }) => answer::<Rejected, _>(async {
                let store = self.store(registry);
                let mut auth = self
                    .refresher
                    .rejected(
                        http,
                        &store,
                        &owner,
                        &key,
                        Refused::Fingerprint(&fingerprint),
                        now(),
                    )
                    .await
                    ?;
                auth.narrower = store.sql.keys_under(&owner, &auth.key)?;
                Ok(auth)
            }).await,
            Call::RefreshExpiring(RefreshExpiring { owner, urls }) => answer::<RefreshExpiring, _>(async {
                let store = self.store(registry);
                let mut out = Vec::new();
                for url in urls {
                    out.push(self.refresh_one(http, &store, &owner, url).await);
                }
                Ok(out)
            }).await,
            Call::McpSessionGet(McpSessionGet { owner, url }) => answer::<McpSessionGet, _>(async {
                let state: Option<McpSessionState> = self
                    .store(None)
                    .sql
                    .first_data(
                        "SELECT data FROM idp_mcp_sessions WHERE owner = ? AND url = ?",
                        vec![text(&owner), text(&url)],
                    )
                    ?;
                Ok(state)
            }).await,
            Call::McpSessionPut(McpSessionPut {
                owner,
                url,
                session,
            }) => answer::<McpSessionPut, _>(async {
                let store = self.store(None);
                match session {
                    Some(state) => store.sql.exec(
                        "INSERT OR REPLACE INTO idp_mcp_sessions (owner, url, data, updated_at) VALUES (?, ?, ?, ?)",
                        vec![text(&owner), text(&url), json(&state)?, secs(now())],
                    ),
                    None => store.sql.exec(
                        "DELETE FROM idp_mcp_sessions WHERE owner = ? AND url = ?",
                        vec![text(&owner), text(&url)],
                    ),
                }
                ?;
                Ok(())
            }).await,
            Call::Providers(Providers { owner, after, limit }) => answer::<Providers, _>(async {
                let store = self.store(registry);
                let list = match limit {
                    None => store.providers(&owner).await?,
                    Some(limit) => {
                        let after = after.as_deref().map(ResourceKey::parse).transpose()?;
                        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                        store.providers_page(&owner, after.as_ref(), limit).await?
                    }
                };
                Ok(list.iter().map(ProviderView::of).collect::<Vec<_>>())
            }).await,
            Call::Find(Find { owner, url }) => answer::<Find, _>(async {
                let store = self.store(registry);
                let key = ResourceKey::parse(&url)?;
                let p = store.provider_for(&owner, &key).await?;
                Ok(p.as_ref().map(ProviderView::of))
            }).await,
            Call::Remove(Remove { owner, url }) => answer::<Remove, _>(async {
                let store = self.store(registry);
                let key = ResourceKey::parse(&url)?;
                let removal = {
                    let _writes = self.refresher.lock().await;
                    flow::remove_provider(http, &store, &owner, &key)
                        .await
                        ?
                };
                if let Some(r) = &removal {
                    let event = |kind| Event {
                        user: owner.clone(),
                        resource: r.provider.key.to_string(),
                        at: now(),
                        kind,
                    };
                    let mut events = vec![event(EventKind::Removed)];
                    if matches!(r.revoked, Ok(true)) {
                        events.push(event(EventKind::Revoked));
                    }
                    self.record(events).await;
                }
                Ok(match removal {
                    None => RemoveOutcome {
                        removed: false,
                        revoked: false,
                        revocation_error: None,
                    },
                    Some(r) => RemoveOutcome {
                        removed: true,
                        revoked: r.revoked.as_ref().is_ok_and(|b| *b),
                        revocation_error: r.revoked.err().map(|e| e.to_string()),
                    },
                })
            }).await,
            #[cfg(feature = "bench")]
            Call::Seed(Seed { owner, providers }) => answer::<Seed, _>(async {
                let store = self.store(registry);
                let n = providers.len();
                for p in providers {
                    let _ = store
                        .put_provider(&owner, p, crate::store::Expect::Nothing)
                        .await
                        ?;
                }
                Ok(n)
            }).await,
            #[cfg(feature = "bench")]
            Call::Stats(_) => answer::<Stats, _>(async { Ok(CallStats {
                calls: self.calls.get(),
                database_bytes: self.state.storage().sql().database_size() as u64,
            }) }).await,
            Call::Reencrypt(Reencrypt {}) => {
                answer::<Reencrypt, _>(async {
                    let _writes = self.refresher.lock().await;
                    let user_rows = self.store(None).sql.reseal()?;
                    Ok(Reencrypted { user_rows })
                })
                .await
            }
            Call::RegistryReencrypt(RegistryReencrypt {}) => {
                answer::<RegistryReencrypt, _>(async { Ok(self.store(None).sql.reseal()?) }).await
            }
            Call::RegistrationGet(RegistrationGet {
                issuer,
                redirect_uri,
            }) => answer::<RegistrationGet, _>(async { Ok(
                self.store(None)
                    .registration(&issuer, &redirect_uri)
                    .await
                    ?,
            ) }).await,
            Call::RegistrationPut(RegistrationPut { registration }) => answer::<RegistrationPut, _>(async { Ok(
                self.store(None)
                    .put_registration(registration)
                    .await
                    ?,
            ) }).await,
            Call::RegistrationRemove(RegistrationRemove {
                issuer,
                redirect_uri,
            }) => answer::<RegistrationRemove, _>(async { Ok(
                self.store(None)
                    .remove_registration(&issuer, &redirect_uri)
                    .await
                    ?,
            ) }).await,
            Call::KnownIssuers(KnownIssuers { limit }) => answer::<KnownIssuers, _>(async {
                if let Some((l, list)) = self.document.borrow().as_ref() {
                    if *l == limit {
                        return Ok(list.clone());
                    }
                }
                let list = self.store(None).sql.known_issuers(limit)?;
                *self.document.borrow_mut() = Some((limit, list.clone()));
                Ok(list)
            }).await,
            Call::ServerGet(ServerGet { issuer }) => answer::<ServerGet, _>(async {
                Ok(self.store(None).server(&issuer).await?)
            }).await,
            Call::ServerPut(ServerPut {
                issuer,
                server,
                fetched_at,
            }) => answer::<ServerPut, _>(async {
                self.document.borrow_mut().take();
                Ok(self.store(None).put_server(&issuer, *server, fetched_at).await?)
            }).await,
        }
    }
}

/// Serialises the reply of `O`: the compiler holds each arm to its call's
/// reply type.
async fn answer<O: Op, F>(reply: F) -> String
where
    F: Future<Output = Result<O::Reply, RemoteError>>,
{
    let reply = match reply.await {
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
