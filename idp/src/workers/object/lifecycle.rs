//! The object's life between requests: lifecycle events and their audit log,
//! and the alarm that refreshes tokens before they lapse, with no request in
//! flight (so a cron trigger or a queue consumer finds a valid token after
//! weeks without traffic).

use super::super::events::{Event, EventKind, AUDIT_LOG_LEN};
use super::super::hook::OnAuthSuccess;
use super::super::http::{now, WorkerHttp};
use super::Role;
use super::{ObjectStore, ProvidersObject};
use crate::error::{Error, Result};
use crate::flow::{RefreshEvent, Refused};
use crate::store::sql::tables;
use crate::store::sql::{json, secs, text, SqlValue};
use crate::store::UserStore;

use crate::flow::schedule::{due_at, retry_wait, RETRY_BASE_SECS};

impl<H: OnAuthSuccess> ProvidersObject<H> {
    /// Whether background refresh is on (unless `IDP_BACKGROUND_REFRESH` is
    /// `off` or `false`: then tokens are refreshed only when used).
    fn background(&self) -> bool {
        !self.env.var("IDP_BACKGROUND_REFRESH").is_ok_and(|v| {
            let v = v.to_string();
            let v = v.trim();
            v.eq_ignore_ascii_case("off") || v.eq_ignore_ascii_case("false")
        })
    }

    /// The opt-in keep-alive: `IDP_REFRESH_KEEPALIVE_DAYS` (whole days).
    fn keep_alive(&self) -> Option<u64> {
        self.env
            .var("IDP_REFRESH_KEEPALIVE_DAYS")
            .ok()
            .and_then(|v| v.to_string().trim().parse::<u64>().ok())
            .filter(|d| *d > 0)
            .map(|d| d.saturating_mul(86_400))
    }

    /// Adds events to the audit log (the last [`AUDIT_LOG_LEN`] per user are
    /// kept), then tells the app's hook.
    pub(super) async fn record(&self, mut events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        // An event of a user's account is the user's, naming the account.
        for e in &mut events {
            if let (user, Some(label)) = crate::flow::accounts::split(&e.user) {
                e.account = Some(label.to_owned());
                e.user = user.to_owned();
            }
        }
        let store = self.local();
        for e in &events {
            let written = json(e).and_then(|data| {
                store
                    .sql
                    .exec(tables::events::PUT, vec![text(&e.user), data])?;
                store.sql.exec(
                    tables::events::TRIM,
                    vec![text(&e.user), text(&e.user), secs(AUDIT_LOG_LEN as u64)],
                )
            });
            if let Err(err) = written {
                worker::console_error!("idp: could not keep an event: {err}");
            }
        }
        for e in &events {
            self.hook.on_event(e, &self.env).await;
        }
    }

    /// Records what the refresher's refreshes did since the last call.
    pub(super) async fn record_refreshes(&self) {
        // Every call ends here: nothing more than a look when nothing happened.
        let taken = self.refresher.take_events();
        if taken.is_empty() {
            return;
        }
        let at = now();
        let events = taken
            .into_iter()
            .map(|r| Event {
                user: r.owner,
                resource: r.key.to_string(),
                at,
                kind: match r.event {
                    RefreshEvent::Refreshed => EventKind::Refreshed,
                    RefreshEvent::Failed { transient, message } => {
                        EventKind::RefreshFailed { transient, message }
                    }
                    RefreshEvent::Dead { message } => {
                        EventKind::NeedsReauthorization { reason: message }
                    }
                },
                account: None,
            })
            .collect();
        self.record(events).await;
    }

    /// The user's audit log, newest first.
    pub(super) fn events(&self, owner: &str) -> Result<Vec<Event>> {
        let rows = self.local().rows(
            tables::events::NEWEST,
            vec![text(owner), secs(AUDIT_LOG_LEN as u64)],
        )?;
        rows.iter()
            .filter_map(|r| r.first())
            .map(crate::store::sql::decode)
            .collect()
    }

    /// Whether the last event for (owner, resource) says it needed
    /// re-authorization.
    pub(super) fn was_broken(&self, owner: &str, resource: &str) -> bool {
        self.events(owner)
            .ok()
            .and_then(|list| {
                list.into_iter().find(|e| {
                    e.resource == resource && !matches!(e.kind, EventKind::RefreshFailed { .. })
                })
            })
            .is_some_and(|e| matches!(e.kind, EventKind::NeedsReauthorization { .. }))
    }

    /// Remembers a value the alarm needs (the registry binding, the timeout).
    pub(super) fn remember(&self, name: &str, value: &str) {
        let _ = self
            .local()
            .sql
            .exec(tables::meta::PUT, vec![text(name), text(value)]);
    }

    fn recalled(&self, name: &str) -> Option<String> {
        let rows = self
            .local()
            .rows(tables::meta::GET, vec![text(name)])
            .ok()?;
        rows.first()?.first()?.as_text().map(str::to_owned)
    }

    /// The store owners of `user`'s further accounts.
    pub(super) fn accounts_of(&self, store: &ObjectStore<'_>, user: &str) -> Result<Vec<String>> {
        Ok(self
            .owners(store)?
            .into_iter()
            .filter(|o| matches!(crate::flow::accounts::split(o), (u, Some(_)) if u == user))
            .collect())
    }

    fn owners(&self, store: &ObjectStore<'_>) -> Result<Vec<String>> {
        Ok(store
            .rows(tables::providers::OWNERS, vec![])?
            .iter()
            .filter_map(|r| r.first()?.as_text().map(str::to_owned))
            .collect())
    }

    fn retry_at(&self, store: &ObjectStore<'_>, owner: &str, key: &str) -> Option<(u64, u64)> {
        let rows = store
            .rows(tables::refresh_retries::GET, vec![text(owner), text(key)])
            .ok()?;
        match rows.first().map(Vec::as_slice) {
            Some([f, at]) => Some((
                f.as_integer().and_then(|v| u64::try_from(v).ok())?,
                at.as_integer().and_then(|v| u64::try_from(v).ok())?,
            )),
            _ => None,
        }
    }

    /// Sets the alarm for the earliest moment a provider with a refresh token
    /// needs refreshing (or its next retry), or clears it when none does.
    pub(super) async fn schedule(&self) -> Result<()> {
        let store = self.local();
        let keep_alive = self.keep_alive();
        let mut next: Option<u64> = self.next_device_poll(&store);
        let owners = if self.background() {
            self.owners(&store)?
        } else {
            Vec::new()
        };
        for owner in owners {
            for p in store.providers(&owner).await? {
                let Some(t) = p.tokens().filter(|t| t.refresh_token.is_some()) else {
                    continue;
                };
                let Some(mut due) = due_at(t, keep_alive) else {
                    continue;
                };
                if let Some((_, retry)) = self.retry_at(&store, &owner, p.key.as_str()) {
                    due = due.max(retry);
                }
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        let storage = self.state.storage();
        let result = match next {
            Some(t) => {
                let ms = t.saturating_mul(1000) as f64;
                storage
                    .set_alarm(worker::ScheduledTime::new(js_sys::Date::new(&ms.into())))
                    .await
            }
            None => storage.delete_alarm().await,
        };
        result
            .map_err(|e| Error::storage(crate::error::StorageCause::Backend, format!("alarm: {e}")))
    }

    /// Sets the next alarm, or says why it could not.
    pub(super) async fn schedule_or_log(&self) {
        if let Err(e) = self.schedule().await {
            worker::console_error!("idp: could not set the alarm: {e}");
        }
    }

    /// The alarm: polls the device logins that are due; refreshes every
    /// provider whose token needs it, retries
    /// passing failures with a capped exponential backoff, stops for a dead
    /// grant, records the events, and sets the next alarm.
    pub async fn alarm(&self) -> worker::Result<()> {
        let registry = self.recalled("registry");
        let http = self
            .recalled("timeout_ms")
            .and_then(|v| v.parse().ok())
            .map_or_else(WorkerHttp::default, WorkerHttp::with_timeout_ms);
        let base = self
            .env
            .var("IDP_REFRESH_RETRY_SECS")
            .ok()
            .and_then(|v| v.to_string().trim().parse::<u64>().ok())
            .filter(|s| *s > 0)
            .unwrap_or(RETRY_BASE_SECS);
        let store = self.store(Role::of(registry.as_deref()));
        self.poll_due_device_logins(&store, &http).await;
        let keep_alive = self.keep_alive();
        let at = now();
        let owners = if self.background() {
            self.owners(&store)
                .map_err(|e| worker::Error::RustError(e.to_string()))?
        } else {
            Vec::new()
        };
        for owner in owners {
            let providers = store
                .providers(&owner)
                .await
                .map_err(|e| worker::Error::RustError(e.to_string()))?;
            for p in providers {
                let Some(t) = p.tokens().filter(|t| t.refresh_token.is_some()) else {
                    continue;
                };
                let retry = self.retry_at(&store, &owner, p.key.as_str());
                let due = due_at(t, keep_alive).is_some_and(|d| d <= at);
                if !due || retry.is_some_and(|(_, r)| r > at) {
                    continue;
                }
                let done = if t.needs_refresh(at) {
                    self.refresher
                        .refresh_expiring(&http, &store, &owner, &p.key, at)
                        .await
                } else {
                    // The keep-alive: a refresh of a token still fresh.
                    let token = t.access_token.secret();
                    self.refresher
                        .rejected(&http, &store, &owner, &p.key, Refused::Token(token), at)
                        .await
                        .map(|_| None)
                };
                let row = vec![text(&owner), text(p.key.as_str())];
                let _ = match done {
                    Err(e) if !e.requires_reauthorization() => {
                        let failures = retry.map_or(0, |(f, _)| f) + 1;
                        let wait = retry_wait(base, failures);
                        let mut args = row;
                        args.extend([
                            SqlValue::Integer(i64::try_from(failures).unwrap_or(i64::MAX)),
                            secs(at.saturating_add(wait)),
                        ]);
                        store.sql.exec(tables::refresh_retries::PUT, args)
                    }
                    _ => store.sql.exec(tables::refresh_retries::DELETE, row),
                };
            }
        }
        self.record_refreshes().await;
        self.schedule()
            .await
            .map_err(|e| worker::Error::RustError(e.to_string()))
    }
}
