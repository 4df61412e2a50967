//! Logins with no browser (RFC 8628): started by a call, polled by the
//! object's alarm at the server's pace (and by a status call when due), and
//! their outcome kept an hour for the app to read.

use super::super::events::{Event, EventKind};
use super::super::hook::OnAuthSuccess;
use super::super::http::{entropy, now, WorkerHttp};
use super::super::protocol::*;
use super::dispatch::{Answer, Cx};
use super::sql_store::ObjectStore;
use super::ProvidersObject;
use crate::error::{Error, ErrorKind};
use crate::flow::{self, DevicePoll, DeviceStart};
use crate::store::sql::{json, secs, tables, text, SqlValue};
use crate::store::UserStore;
use serde::{Deserialize, Serialize};

/// How long an ended device login's outcome is kept for the app to read.
const OUTCOME_SECS: u64 = 3600;
/// When a poll failed in passing (the server down), the next one is this
/// much later.
const RETRY_SECS: u64 = 30;

/// What came of a device login, as its row keeps it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    /// The store owner (the user, or one of their accounts) and the key.
    Connected {
        owner: String,
        key: String,
    },
    Failed(RemoteError),
}

impl Answer for StartDeviceLogin {
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError> {
        let StartDeviceLogin {
            owner,
            url,
            scope,
            settings,
        } = self;
        let store = o.store(cx.role);
        let entropy = entropy().map_err(Error::NoRandomness)?;
        let writes = o.refresher.lock().await;
        // Each waiting login is polled by this object's alarm: a user has
        // a few at most, whatever the servers answer. Counted under the
        // write lock, which a start holds until its row is written, so
        // logins started together cannot all pass.
        let user = flow::accounts::split(&owner).0;
        let waiting = store.rows(tables::device_logins::WAITING, vec![text(user)])?;
        let waiting = waiting.first().and_then(|r| r.first()?.as_integer());
        if waiting.is_some_and(|n| n >= flow::MAX_WAITING_DEVICE_LOGINS as i64) {
            return Err(Error::DeviceLogin(crate::error::DeviceProblem::TooMany {
                limit: flow::MAX_WAITING_DEVICE_LOGINS,
            })
            .into());
        }
        let engine = flow::Engine {
            http: cx.http,
            store: &store,
            settings: &settings,
            now: now(),
        };
        // The owner names the account to connect, if any.
        let req = flow::LoginRequest::of(&owner, scope.as_deref());
        let start = flow::start_device_login(&engine, req, url.as_str(), entropy).await?;
        match start {
            DeviceStart::Waiting(login) => {
                let at = login.expires_at.min(now().saturating_add(login.interval));
                // Kept, polled and read as the user's (the flow names the account).
                let user = flow::accounts::split(&owner).0;
                o.device_row(&store, &login.id, user, at, None)?;
                drop(writes);
                o.schedule_or_log().await;
                Ok(DeviceStartReply::Waiting(*login))
            }
            DeviceStart::Public(p) => {
                drop(writes);
                let reply = o.public(&store, &owner, *p).await;
                Ok(DeviceStartReply::Public(reply))
            }
        }
    }
}

impl Answer for PollDeviceLogin {
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError> {
        let PollDeviceLogin { owner, id } = self;
        let owner = flow::accounts::split(&owner).0.to_owned();
        let store = o.store(cx.role);
        let row = store.rows(tables::device_logins::GET, vec![text(&id), text(&owner)])?;
        let Some(row) = row.first() else {
            return Err(Error::DeviceLogin(crate::error::DeviceProblem::Unknown).report());
        };
        if let [_, SqlValue::Text(outcome)] = row.as_slice() {
            return match crate::store::sql::decode(&SqlValue::Text(outcome.clone()))? {
                Outcome::Connected { owner, key } => {
                    let key = crate::matching::ResourceKey::parse(&key)?;
                    let provider =
                        store
                            .provider(&owner, &key)
                            .await?
                            .ok_or_else(|| Error::NotConnected {
                                url: key.to_string(),
                            })?;
                    Ok(DeviceStatus::Connected {
                        provider: Box::new(ProviderView::of(&provider)),
                    })
                }
                Outcome::Failed(report) => Err(report),
            };
        }
        o.poll_device(&store, cx.http, &owner, &id).await
    }
}

impl<H: OnAuthSuccess> ProvidersObject<H> {
    /// Writes a device login's row: its next poll, or its outcome.
    fn device_row(
        &self,
        store: &ObjectStore<'_>,
        id: &str,
        owner: &str,
        at: u64,
        outcome: Option<&Outcome>,
    ) -> Result<(), Error> {
        let outcome = outcome.map(json).transpose()?.unwrap_or(SqlValue::Null);
        store
            .rows(
                tables::device_logins::PUT,
                vec![text(id), text(owner), secs(at), outcome],
            )
            .map(drop)
    }

    /// Polls one device login (if due) and keeps what it found: the next
    /// poll, or the outcome (the provider named by the app's hook, with a
    /// `connected` event; or the failure). A passing failure waits for the
    /// next poll.
    async fn poll_device(
        &self,
        store: &ObjectStore<'_>,
        http: &WorkerHttp,
        owner: &str,
        id: &str,
    ) -> Result<DeviceStatus, RemoteError> {
        let polled = {
            let _writes = self.refresher.lock().await;
            flow::poll_device_login(http, store, owner, id, now()).await
        };
        let at = now();
        match polled {
            Ok(DevicePoll::Waiting { poll_at }) => {
                self.device_row(store, id, owner, poll_at, None)?;
                Ok(DeviceStatus::Waiting { poll_at })
            }
            Ok(DevicePoll::Connected(p)) => {
                let resource = p.key.to_string();
                let holder = flow::accounts::holder(store, owner, &p).await?;
                let outcome = Outcome::Connected {
                    owner: holder.clone(),
                    key: resource.clone(),
                };
                self.device_row(store, id, owner, at, Some(&outcome))?;
                let (provider, hook_error) = self.named(store, &holder, *p).await;
                if let Some(e) = hook_error {
                    worker::console_warn!("on_auth_success failed for {resource}: {e}");
                }
                let event = Event {
                    user: holder,
                    resource,
                    at,
                    kind: EventKind::Connected,
                    account: provider.account.clone(),
                };
                self.record(vec![event]).await;
                Ok(DeviceStatus::Connected {
                    provider: Box::new(provider),
                })
            }
            Err(e) if e.is_retryable() => {
                let wait = now().saturating_add(RETRY_SECS);
                self.device_row(store, id, owner, wait, None)?;
                Err(e.report())
            }
            Err(e) => {
                let report = e.report();
                self.device_row(store, id, owner, at, Some(&Outcome::Failed(report.clone())))?;
                Err(report)
            }
        }
    }

    /// The alarm's part: polls every device login that is due.
    pub(super) async fn poll_due_device_logins(&self, store: &ObjectStore<'_>, http: &WorkerHttp) {
        let at = now();
        let _ = store.rows(
            tables::device_logins::EXPIRE,
            vec![secs(at.saturating_sub(OUTCOME_SECS))],
        );
        let due = store
            .rows(tables::device_logins::DUE, vec![secs(at)])
            .unwrap_or_default();
        for row in due {
            let (Some(id), Some(owner)) = (
                row.first().and_then(SqlValue::as_text),
                row.get(1).and_then(SqlValue::as_text),
            ) else {
                continue;
            };
            if let Err(e) = self.poll_device(store, http, owner, id).await {
                if e.error != ErrorKind::AuthorizationDenied {
                    worker::console_warn!("idp: a device login for {owner}: {e}");
                }
            }
        }
    }

    /// The earliest poll of a waiting device login.
    pub(super) fn next_device_poll(&self, store: &ObjectStore<'_>) -> Option<u64> {
        let rows = store.rows(tables::device_logins::NEXT, vec![]).ok()?;
        let at = rows.first()?.first()?.as_integer()?;
        u64::try_from(at).ok()
    }
}
