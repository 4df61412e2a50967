//! A user's providers: authorizations, refreshes, the list, lookup, removal, MCP sessions and the audit log.

use super::super::events::{Event, EventKind};
use super::super::hook::OnAuthSuccess;
use super::super::http::now;
use super::super::protocol::*;
use super::dispatch::{Answer, Cx};
use super::ProvidersObject;
use crate::flow;
use crate::flow::accounts;
use crate::flow::Refused;
use crate::matching::ResourceKey;
use crate::store::sql::json;
use crate::store::sql::secs;
use crate::store::sql::tables;
use crate::store::sql::text;
use crate::store::UserStore;

impl Answer for Authorization {
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError> {
        let Authorization {
            owner,
            url,
            narrower,
        } = self;
        let store = o.store(cx.role);
        let owner = accounts::serving(&store, &owner, url.as_str()).await?;
        let mut auth = o
            .refresher
            .authorization(cx.http, &store, &owner, url.as_str(), now())
            .await?;
        // For the Worker's isolate cache (only when it is on): the
        // providers this answer must not be reused under.
        if let Some(a) = auth.as_mut().filter(|_| narrower) {
            a.narrower = store.sql.keys_under(&owner, &a.key)?;
        }
        Ok(auth)
    }
}

impl Answer for Rejected {
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError> {
        let Rejected {
            owner,
            key,
            fingerprint,
            narrower,
        } = self;
        let store = o.store(cx.role);
        let owner = accounts::serving(&store, &owner, key.as_str()).await?;
        let mut auth = o
            .refresher
            .rejected(
                cx.http,
                &store,
                &owner,
                &key,
                Refused::Fingerprint(&fingerprint),
                now(),
            )
            .await?;
        if narrower {
            auth.narrower = store.sql.keys_under(&owner, &auth.key)?;
        }
        Ok(auth)
    }
}

impl Answer for RefreshExpiring {
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError> {
        let RefreshExpiring { owner, urls, force } = self;
        let store = o.store(cx.role);
        let mut out = Vec::new();
        for url in urls {
            // A URL that is no key is refresh_one's to report.
            let owner = accounts::serving(&store, &owner, url.as_str())
                .await
                .unwrap_or_else(|_| owner.clone());
            out.push(
                o.refresh_one(cx.http, &store, &owner, url.into(), force)
                    .await,
            );
        }
        Ok(out)
    }
}

impl Answer for Providers {
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError> {
        let Providers {
            owner,
            after,
            limit,
        } = self;
        let store = o.store(cx.role);
        let list = match limit {
            // Every account: the user's own rows, then each account's.
            None => {
                let mut all = store.providers(&owner).await?;
                for account in o.accounts_of(&store, &owner)? {
                    all.extend(store.providers(&account).await?);
                }
                all
            }
            Some(limit) => {
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                store.providers_page(&owner, after.as_ref(), limit).await?
            }
        };
        Ok(list.iter().map(ProviderView::of).collect::<Vec<_>>())
    }
}

impl Answer for Find {
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError> {
        let Find { owner, url } = self;
        let store = o.store(cx.role);
        let key = ResourceKey::parse(url.as_str())?;
        let owner = accounts::serving(&store, &owner, key.as_str()).await?;
        let p = store.provider_for(&owner, &key).await?;
        Ok(p.as_ref().map(ProviderView::of))
    }
}

impl Answer for Remove {
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError> {
        let Remove { owner, url } = self;
        let store = o.store(cx.role);
        let key = ResourceKey::parse(url.as_str())?;
        let owner = accounts::serving(&store, &owner, key.as_str()).await?;
        let r = {
            let _writes = o.refresher.lock().await;
            flow::remove_provider(cx.http, &store, &owner, &key, now()).await?
        };
        let event = |kind| Event {
            user: owner.clone(),
            resource: r.provider.key.to_string(),
            at: now(),
            kind,
            account: r.provider.account.clone(),
        };
        let mut events = vec![event(EventKind::Removed)];
        if matches!(r.revoked, Ok(true)) {
            events.push(event(EventKind::Revoked));
        }
        o.record(events).await;
        Ok(RemoveOutcome {
            account: r.provider.account.clone(),
            removed: true,
            key: Some(r.provider.key.clone()),
            revoked: r.revoked.as_ref().is_ok_and(|b| *b),
            revocation_error: r.revoked.err().map(|e| e.to_string()),
        })
    }
}

impl Answer for Events {
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        _cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError> {
        let Events { owner } = self;
        Ok(o.events(&owner)?)
    }
}

impl Answer for McpSessionGet {
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        _cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError> {
        let McpSessionGet { owner, url } = self;
        let state: Option<McpSessionState> = o.local().sql.first_data(
            tables::mcp_sessions::GET,
            vec![text(&owner), text(url.as_str())],
        )?;
        Ok(state)
    }
}

impl Answer for McpSessionPut {
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        _cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError> {
        let McpSessionPut {
            owner,
            url,
            session,
        } = self;
        let store = o.local();
        match session {
            Some(state) => store.sql.exec(
                tables::mcp_sessions::PUT,
                vec![text(&owner), text(url.as_str()), json(&state)?, secs(now())],
            ),
            None => store.sql.exec(
                tables::mcp_sessions::DELETE,
                vec![text(&owner), text(url.as_str())],
            ),
        }?;
        Ok(())
    }
}
