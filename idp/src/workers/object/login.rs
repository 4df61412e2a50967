//! Logins: the confirmation token, starting a login, its callback.

use super::super::events::{Event, EventKind};
use super::super::hook::OnAuthSuccess;
use super::super::http::entropy;
use super::super::http::now;
use super::super::http::random_bytes;
use super::super::protocol::*;
use super::dispatch::{Answer, Cx};
use super::ProvidersObject;
use crate::error::Error;
use crate::flow;
use crate::flow::LoginStart;

impl Answer for ConfirmationToken {
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError> {
        let ConfirmationToken { owner } = self;
        let mut bytes = [0u8; 32];
        random_bytes(&mut bytes).map_err(Error::NoRandomness)?;
        let token = crate::encoding::base64url(&bytes);
        o.store(cx.role).put_confirmation(&token, &owner)?;
        Ok(token)
    }
}

impl Answer for Login {
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError> {
        let Login {
            owner,
            url,
            scope,
            settings,
            confirmation,
        } = self;
        let store = o.store(cx.role);
        if let Some(token) = confirmation {
            store.spend_confirmation(&token, flow::accounts::split(&owner).0)?;
        }
        let entropy = entropy().map_err(Error::NoRandomness)?;
        let writes = o.refresher.lock().await;
        let engine = flow::Engine {
            http: cx.http,
            store: &store,
            settings: &settings,
            now: now(),
        };
        // The owner names the account to connect, if any.
        let req = flow::LoginRequest::of(&owner, scope.as_deref());
        let start = flow::start_login(&engine, req, url.as_str(), entropy).await?;
        drop(writes);
        match start {
            LoginStart::Redirect(url) => Ok(LoginReply::Redirect(url)),
            LoginStart::Public(p) => Ok(LoginReply::Public(o.public(&store, &owner, *p).await)),
        }
    }
}

impl Answer for ConnectWith {
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError> {
        let ConnectWith {
            owner,
            url,
            scope,
            settings,
            credential,
        } = self;
        let store = o.store(cx.role);
        let writes = o.refresher.lock().await;
        let engine = flow::Engine {
            http: cx.http,
            store: &store,
            settings: &settings,
            now: now(),
        };
        let provider =
            flow::connect_with(&engine, &owner, url.as_str(), scope.as_deref(), &credential)
                .await?;
        drop(writes);
        let (provider, hook_error) = o.named(&store, &owner, provider).await;
        Ok(CallbackReply {
            provider,
            hook_error,
        })
    }
}

impl Answer for Callback {
    async fn answer<H: OnAuthSuccess>(
        self,
        o: &ProvidersObject<H>,
        cx: &Cx<'_>,
    ) -> Result<Self::Reply, RemoteError> {
        let Callback {
            owner,
            callback_uri,
            query,
        } = self;
        let store = o.store(cx.role);
        let p = {
            let _writes = o.refresher.lock().await;
            flow::finish_login(cx.http, &store, &owner, &callback_uri, &query, now()).await?
        };
        let resource = p.key.to_string();
        let recovered = o.was_broken(&owner, &resource);
        // The store owner of the account it connected.
        let holder = flow::accounts::holder(&store, &owner, &p).await?;
        let (provider, hook_error) = o.named(&store, &holder, p).await;
        let event = |kind| Event {
            user: holder.clone(),
            resource: resource.clone(),
            at: now(),
            kind,
            account: provider.account.clone(),
        };
        let mut events = vec![event(EventKind::Connected)];
        if recovered {
            events.push(event(EventKind::Recovered));
        }
        o.record(events).await;
        if let Err(e) = o.schedule().await {
            worker::console_error!("idp: could not set the refresh alarm: {e}");
        }
        Ok(CallbackReply {
            provider,
            hook_error,
        })
    }
}
