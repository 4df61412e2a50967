//! The object's answer to each internal call.

use super::super::hook::OnAuthSuccess;
use super::super::http::{entropy, now, random_bytes, WorkerHttp};
use super::super::protocol::*;
use super::{remote, to_value, CallResult, ProvidersObject};
use crate::error::Error;
use crate::flow::{self, LoginStart, Refused};
use crate::matching::ResourceKey;
use crate::store::sql::{json, secs, text, SqlValue};
use crate::store::{Expect, Store};

impl<H: OnAuthSuccess> ProvidersObject<H> {
    pub(super) async fn handle(
        &self,
        registry: Option<&str>,
        http: &WorkerHttp,
        call: Call,
    ) -> CallResult {
        match call {
            Call::ConfirmationToken(ConfirmationToken { owner }) => {
                let mut bytes = [0u8; 32];
                random_bytes(&mut bytes).map_err(|e| remote(Error::Storage(e)))?;
                let token = crate::encoding::base64url(&bytes);
                self.store(registry)
                    .put_confirmation(&token, &owner)
                    .map_err(remote)?;
                to_value(token)
            }
            Call::Login(Login {
                owner,
                url,
                scope,
                settings,
                confirmation,
            }) => {
                let store = self.store(registry);
                if let Some(token) = confirmation {
                    store.spend_confirmation(&token, &owner).map_err(remote)?;
                }
                let entropy = entropy().map_err(|e| remote(Error::Storage(e)))?;
                let writes = self.refresher.lock().await;
                let start = flow::start_login(
                    http,
                    &store,
                    &settings.to_settings(),
                    &owner,
                    &url,
                    scope.as_deref(),
                    now(),
                    entropy,
                )
                .await
                .map_err(remote)?;
                drop(writes);
                match start {
                    LoginStart::Redirect(url) => to_value(LoginReply::Redirect { url: url.into() }),
                    LoginStart::Public(p) => {
                        let (provider, hook_error) = self.named(&store, &owner, *p).await;
                        to_value(LoginReply::Public {
                            provider,
                            hook_error,
                        })
                    }
                }
            }
            Call::Callback(Callback {
                owner,
                callback_uri,
                query,
            }) => {
                let store = self.store(registry);
                let p = {
                    let _writes = self.refresher.lock().await;
                    flow::finish_login(http, &store, &owner, &callback_uri, &query, now())
                        .await
                        .map_err(remote)?
                };
                let (provider, hook_error) = self.named(&store, &owner, p).await;
                to_value(CallbackReply {
                    provider,
                    hook_error,
                })
            }
            Call::Authorization(Authorization { owner, url }) => {
                let store = self.store(registry);
                let auth = self
                    .refresher
                    .authorization(http, &store, &owner, &url, now())
                    .await
                    .map_err(remote)?;
                to_value(auth)
            }
            Call::Rejected(Rejected {
                owner,
                key,
                fingerprint,
            }) => {
                let store = self.store(registry);
                let auth = self
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
                    .map_err(remote)?;
                to_value(auth)
            }
            Call::RefreshExpiring(RefreshExpiring { owner, urls }) => {
                let store = self.store(registry);
                let mut out = Vec::new();
                for url in urls {
                    out.push(self.refresh_one(http, &store, &owner, url).await);
                }
                to_value(out)
            }
            Call::McpSessionGet(McpSessionGet { owner, url }) => {
                let state: Option<McpSessionState> = self
                    .store(None)
                    .sql
                    .first_data(
                        "SELECT data FROM idp_mcp_sessions WHERE owner = ? AND url = ?",
                        vec![text(&owner), text(&url)],
                    )
                    .map_err(remote)?;
                to_value(state)
            }
            Call::McpSessionPut(McpSessionPut {
                owner,
                url,
                session,
            }) => {
                let store = self.store(None);
                match session {
                    Some(state) => store.sql.exec(
                        "INSERT OR REPLACE INTO idp_mcp_sessions (owner, url, data, updated_at) VALUES (?, ?, ?, ?)",
                        vec![text(&owner), text(&url), json(&state).map_err(remote)?, secs(now())],
                    ),
                    None => store.sql.exec(
                        "DELETE FROM idp_mcp_sessions WHERE owner = ? AND url = ?",
                        vec![text(&owner), text(&url)],
                    ),
                }
                .map_err(remote)?;
                to_value(())
            }
            Call::Providers(Providers { owner }) => {
                let store = self.store(registry);
                let list = store.providers(&owner).await.map_err(remote)?;
                to_value(list.iter().map(ProviderView::of).collect::<Vec<_>>())
            }
            Call::Find(Find { owner, url }) => {
                let store = self.store(registry);
                let key = ResourceKey::parse(&url).map_err(remote)?;
                let p = store.provider_for(&owner, &key).await.map_err(remote)?;
                to_value(p.as_ref().map(ProviderView::of))
            }
            Call::Remove(Remove { owner, url }) => {
                let store = self.store(registry);
                let key = ResourceKey::parse(&url).map_err(remote)?;
                let removal = {
                    let _writes = self.refresher.lock().await;
                    flow::remove_provider(http, &store, &owner, &key)
                        .await
                        .map_err(remote)?
                };
                to_value(match removal {
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
            }
            Call::Seed(Seed { owner, providers }) => {
                let store = self.store(registry);
                let n = providers.len();
                for p in providers {
                    let _ = store
                        .put_provider(&owner, p, Expect::Nothing)
                        .await
                        .map_err(remote)?;
                }
                to_value(n)
            }
            Call::Stats(_) => to_value(CallStats {
                calls: self.calls.get(),
            }),
            Call::RegistrationGet(RegistrationGet {
                issuer,
                redirect_uri,
            }) => to_value(
                self.store(None)
                    .registration(&issuer, &redirect_uri)
                    .await
                    .map_err(remote)?,
            ),
            Call::RegistrationPut(RegistrationPut { registration }) => to_value(
                self.store(None)
                    .put_registration(registration)
                    .await
                    .map_err(remote)?,
            ),
            Call::RegistrationRemove(RegistrationRemove {
                issuer,
                redirect_uri,
            }) => to_value(
                self.store(None)
                    .remove_registration(&issuer, &redirect_uri)
                    .await
                    .map_err(remote)?,
            ),
            Call::KnownIssuers(KnownIssuers { limit }) => {
                let rows = self
                    .store(None)
                    .rows(
                        "SELECT issuer FROM idp_servers ORDER BY fetched_at DESC LIMIT ?",
                        vec![SqlValue::Integer(i64::try_from(limit).unwrap_or(100))],
                    )
                    .map_err(remote)?;
                let issuers = rows
                    .iter()
                    .filter_map(|r| r.first()?.as_text().map(str::to_owned));
                to_value(issuers.collect::<Vec<_>>())
            }
            Call::ServerGet(ServerGet { issuer }) => {
                to_value(self.store(None).server(&issuer).await.map_err(remote)?)
            }
            Call::ServerPut(ServerPut {
                issuer,
                server,
                fetched_at,
            }) => to_value(
                self.store(None)
                    .put_server(&issuer, *server, fetched_at)
                    .await
                    .map_err(remote)?,
            ),
        }
    }
}
