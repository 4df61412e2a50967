//! Connecting with no browser callback (RFC 8628): the person enters a code
//! on another device while the app polls the token endpoint. The login is a
//! pending flow like any other, kept under the device redirect URN (so no
//! callback can take it) with its codes and polling schedule; each poll
//! takes it (single use, so two pollers never send the same device code at
//! once) and puts it back until the person has answered.

use super::{route, store_grant, Begun, Engine, Entropy, LoginRequest, Probed, Route, Via};
use crate::client::DEVICE_CODE_GRANT;
use crate::error::{DeviceProblem, Error, OAuthErrorCode, Result};
use crate::http::HttpClient;
use crate::store::{FlowTake, Provider, Store};
use crate::token::device::{self, DeviceGrant, DeviceWait, Poll};
use serde::{Deserialize, Serialize};
use url::Url;

/// How many device logins one user may have waiting at once (where a
/// runtime polls them itself: the Durable Object's alarm).
pub const MAX_WAITING_DEVICE_LOGINS: usize = 5;

/// A device login waiting for its person: show `user_code` and
/// `verification_uri` (or link `verification_uri_complete`), then poll
/// with `id` ([`poll_device_login`]) no sooner than every `interval` seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceLogin {
    /// The login's handle, to poll it (not a credential: polling never
    /// hands out a token).
    pub id: String,
    /// The resource being connected (its key).
    pub resource: String,
    /// The authorization server the person is approving at: show its
    /// origin beside the code, so the person can tell whose code it is.
    pub issuer: String,
    /// What the person enters.
    pub user_code: String,
    /// Where the person enters it.
    pub verification_uri: Url,
    /// The same page with the code filled in, when the server gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_uri_complete: Option<Url>,
    /// When the code expires (seconds since the epoch).
    pub expires_at: u64,
    /// Seconds between polls.
    pub interval: u64,
}

/// How starting a device login went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceStart {
    /// The resource answered without credentials; it is stored as public.
    Public(Box<Provider>),
    /// Show the code to the person and poll.
    Waiting(Box<DeviceLogin>),
}

/// What a poll found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevicePoll {
    /// The person approved: the provider is stored with its grant.
    Connected(Box<Provider>),
    /// Not yet: poll again at `poll_at` (seconds since the epoch).
    Waiting {
        /// The earliest moment of the next poll.
        poll_at: u64,
    },
}

/// Starts connecting `resource_url` for `owner` with no browser callback:
/// probes it (a public one is stored as such), resolves its authorization
/// server and client as [`super::start_login`] does (a profile's
/// `device_authorization_endpoint`, or the server metadata's), asks the
/// server for a device code and stores the waiting login.
/// [`DeviceProblem::Unsupported`] when the server offers no device flow.
pub async fn start_device_login<H: HttpClient, S: Store>(
    cx: &Engine<'_, H, S>,
    req: LoginRequest<'_>,
    resource_url: &str,
    entropy: Entropy,
) -> Result<DeviceStart> {
    let (url, (route, vouched)) = match super::begin(cx, req, resource_url, Via::Device).await? {
        (_, Begun::Probed(Probed::Public(p))) => return Ok(DeviceStart::Public(p)),
        (url, Begun::Profiled(route)) => (url, (*route, true)),
        (url, Begun::Probed(Probed::Challenged(c))) => {
            let route = route(cx, req, &url, c.as_ref(), Via::Device).await?;
            let issuer = &route.resolved.issuer;
            // The operator vouches for a profile's endpoints and for a
            // server it registered a client at; a server learned by
            // discovery is held to its own origin.
            let vouched =
                route.profile.is_some() || cx.settings.clients.pre_registered_for(issuer).is_some();
            (url, (route, vouched))
        }
    };
    let Route {
        resolved,
        device_authorization_endpoint,
        ..
    } = route;
    let Some(endpoint) = device_authorization_endpoint else {
        return Err(Error::DeviceLogin(DeviceProblem::Unsupported {
            issuer: resolved.issuer,
        }));
    };
    let issuer = resolved.issuer.clone();
    let own = |what: &'static str, url: &Url| {
        if vouched || cx.settings.device_origin_allowed(&issuer, url) {
            Ok(())
        } else {
            Err(Error::DeviceLogin(DeviceProblem::ForeignEndpoint {
                issuer: issuer.clone(),
                what,
                url: url.to_string(),
            }))
        }
    };
    own("device authorization endpoint", &endpoint)?;
    own("token endpoint", &resolved.token_endpoint)?;
    let mut flow = resolved.pending(req, &url, cx.now, entropy);
    let client = flow.client.ready(&flow.issuer, cx.now, cx.http)?;
    let resource = flow
        .rules
        .resource_on_authorization()
        .then_some(flow.resource.as_str());
    let ask =
        device::device_authorization_request(&endpoint, &client, flow.scope.as_deref(), resource);
    let (answered_at, resp) = crate::token::send(cx.http, ask).await?;
    let answer = device::parse_device_authorization(&answered_at, &resp)?;
    own("verification page", &answer.verification_uri)?;
    if let Some(complete) = &answer.verification_uri_complete {
        own("verification page", complete)?;
    }
    let wait = DeviceWait::new(answer, cx.now);
    let login = DeviceLogin {
        id: flow.state.secret().to_owned(),
        resource: flow.resource.clone(),
        issuer: flow.issuer.clone(),
        user_code: wait.user_code.clone(),
        verification_uri: wait.verification_uri.clone(),
        verification_uri_complete: wait.verification_uri_complete.clone(),
        expires_at: wait.expires_at,
        interval: wait.interval,
    };
    flow.device = Some(wait);
    cx.store.put_flow(flow).await?;
    Ok(DeviceStart::Waiting(Box::new(login)))
}

/// Polls `owner`'s device login `id` once, if its time has come: stores
/// the grant when the person approved ([`DevicePoll::Connected`]), else
/// says when to poll next. The person's refusal is
/// [`Error::AuthorizationDenied`], an expired code
/// [`DeviceProblem::Expired`]; both end the login. A passing failure (the
/// server down) keeps it for the next poll.
///
/// Like [`super::finish_login`], it needs no settings: everything was
/// resolved when the login started, so a runtime may poll from a
/// background task (the Durable Object's alarm) with its clock alone.
pub async fn poll_device_login(
    http: &impl HttpClient,
    store: &impl Store,
    owner: &str,
    id: &str,
    now: u64,
) -> Result<DevicePoll> {
    let FlowTake::Taken(flow) = store.take_flow(id, owner, DEVICE_CODE_GRANT).await? else {
        return Err(Error::DeviceLogin(DeviceProblem::Unknown));
    };
    let mut flow = *flow;
    let Some(mut wait) = flow.device.take() else {
        return Err(Error::DeviceLogin(DeviceProblem::Unknown));
    };
    if now >= wait.expires_at {
        return Err(Error::DeviceLogin(DeviceProblem::Expired));
    }
    // Each poll puts the login back as new, so the store keeps it while it
    // is polled, however long the server's codes live.
    let keep = |mut flow: crate::authorize::PendingFlow, wait: DeviceWait| {
        let poll_at = wait.poll_at;
        flow.device = Some(wait);
        flow.created_at = now;
        async move {
            store.put_flow(flow).await?;
            Ok(DevicePoll::Waiting { poll_at })
        }
    };
    if now < wait.poll_at {
        return keep(flow, wait).await;
    }
    let grant = DeviceGrant {
        issuer: &flow.issuer,
        token_endpoint: &flow.token_endpoint,
        client: &flow.client,
        device_code: &wait.device_code,
        resource: flow
            .rules
            .resource_on_authorization()
            .then_some(flow.resource.as_str()),
        rules: &flow.rules,
        dpop: flow.dpop.as_ref(),
    };
    match device::poll(http, &grant, now).await {
        Ok(Poll::Granted(tokens)) => {
            let provider = store_grant(http, store, &flow, tokens, now).await?;
            Ok(DevicePoll::Connected(Box::new(provider)))
        }
        Ok(poll) => {
            wait.waited(now, poll == Poll::SlowDown);
            keep(flow, wait).await
        }
        Err(e) if e.is_retryable() => {
            wait.waited(now, false);
            keep(flow, wait).await?;
            Err(e)
        }
        Err(Error::Token { oauth: Some(o), .. }) if o.code() == OAuthErrorCode::ExpiredToken => {
            Err(Error::DeviceLogin(DeviceProblem::Expired))
        }
        Err(Error::Token { oauth: Some(o), .. }) if o.code() == OAuthErrorCode::AccessDenied => {
            Err(Error::AuthorizationDenied(*o))
        }
        Err(e) => {
            if e.client_rejected() {
                store
                    .remove_registration(&flow.issuer, flow.redirect_uri.as_str())
                    .await?;
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::ProviderProfile;
    use crate::store::memory::MemoryStore;
    use crate::store::UserStore;
    use crate::testing::{block_on, Script};

    const DEVICE: &str = "https://tv.example/device/code";
    const TOKEN: &str = "https://tv.example/token";
    const API: &str = "https://api.tv.example/v1";

    fn settings() -> crate::settings::Settings {
        let mut profile = ProviderProfile::new(
            "tv",
            &[API],
            "https://tv.example",
            Url::parse("https://tv.example/authorize").unwrap(),
            Url::parse(TOKEN).unwrap(),
            "tv-client",
        );
        profile.device_authorization_endpoint = Some(Url::parse(DEVICE).unwrap());
        profile.scopes = vec!["read".into()];
        let mut settings = crate::testing::settings();
        settings.profiles = vec![profile];
        settings
    }

    fn start(
        script: &Script,
        store: &MemoryStore,
        settings: &crate::settings::Settings,
    ) -> DeviceLogin {
        let cx = Engine {
            http: script,
            store,
            settings,
            now: 1000,
        };
        let req = LoginRequest {
            owner: "alice",
            scope: None,
            account: None,
        };
        let entropy = Entropy {
            verifier: [1; 32],
            state: [2; 32],
            dpop: [3; 32],
        };
        match block_on(start_device_login(
            &cx,
            req,
            &format!("{API}/items"),
            entropy,
        ))
        .unwrap()
        {
            DeviceStart::Waiting(login) => *login,
            other => panic!("{other:?}"),
        }
    }

    fn poll(script: &Script, store: &MemoryStore, id: &str, now: u64) -> Result<DevicePoll> {
        block_on(poll_device_login(script, store, "alice", id, now))
    }

    fn err(e: &str) -> serde_json::Value {
        serde_json::json!({ "error": e })
    }

    fn device_answer() -> serde_json::Value {
        serde_json::json!({"device_code": "dc-SECRET", "user_code": "WDJB-MJHT",
            "verification_uri": "https://tv.example/device",
            "verification_uri_complete": "https://tv.example/device?user_code=WDJB-MJHT",
            "expires_in": 600, "interval": 5})
    }

    /// A server that answers `authorization_pending` forever, with codes
    /// that live 10^15 seconds and an interval of 1 second: polled every 5
    /// seconds at most, for 30 minutes at most, then the login ends.
    #[test]
    fn an_endless_pending_login_is_polled_a_bounded_number_of_times() {
        let endless = serde_json::json!({"device_code": "dc", "user_code": "WDJB-MJHT",
            "verification_uri": "https://tv.example/device",
            "expires_in": 1_000_000_000_000_000u64, "interval": 1});
        let script =
            Script::new()
                .json(DEVICE, 200, endless)
                .json(TOKEN, 400, err("authorization_pending"));
        let store = MemoryStore::default();
        let login = start(&script, &store, &settings());
        assert_eq!((login.interval, login.expires_at), (5, 1000 + 1800));
        let mut now = 1000;
        let ended = loop {
            now += 1;
            match poll(&script, &store, &login.id, now) {
                Ok(DevicePoll::Waiting { .. }) => assert!(now < 10_000, "never ends"),
                Ok(other) => panic!("{other:?}"),
                Err(e) => break e,
            }
        };
        assert_eq!(ended, Error::DeviceLogin(DeviceProblem::Expired));
        assert_eq!(now, 1000 + 1800);
        let polls = script
            .requests()
            .iter()
            .filter(|r| r.url.as_str() == TOKEN)
            .count();
        assert!(polls <= 1800 / 5, "{polls} polls");
        assert!(
            poll(&script, &store, &login.id, now + 5).is_err(),
            "the login is gone"
        );
    }

    #[test]
    fn a_device_login_polls_at_the_servers_pace_and_stores_the_grant() {
        let script = Script::new()
            .json(DEVICE, 200, device_answer())
            .json(TOKEN, 400, err("authorization_pending"))
            .json(TOKEN, 400, err("slow_down"))
            .json(
                TOKEN,
                200,
                serde_json::json!({"access_token": "at", "token_type": "Bearer",
                "expires_in": 3600, "refresh_token": "rt"}),
            );
        let store = MemoryStore::default();
        let settings = settings();
        let login = start(&script, &store, &settings);
        assert_eq!(
            (login.user_code.as_str(), login.interval, login.expires_at),
            ("WDJB-MJHT", 5, 1600)
        );
        assert_eq!(login.resource, API);
        let asked = String::from_utf8(script.requests()[0].body.clone()).unwrap();
        assert!(
            asked.contains("client_id=tv-client")
                && asked.contains("scope=read")
                && asked.contains("resource="),
            "{asked}"
        );
        // Too early: no request.
        assert_eq!(
            poll(&script, &store, &login.id, 1002).unwrap(),
            DevicePoll::Waiting { poll_at: 1005 }
        );
        assert_eq!(script.requests().len(), 1);
        // Pending, then slow down: the interval grows by 5 seconds.
        assert_eq!(
            poll(&script, &store, &login.id, 1005).unwrap(),
            DevicePoll::Waiting { poll_at: 1010 }
        );
        assert_eq!(
            poll(&script, &store, &login.id, 1010).unwrap(),
            DevicePoll::Waiting { poll_at: 1020 }
        );
        assert_eq!(
            poll(&script, &store, &login.id, 1015).unwrap(),
            DevicePoll::Waiting { poll_at: 1020 }
        );
        assert_eq!(script.requests().len(), 3);
        let DevicePoll::Connected(p) = poll(&script, &store, &login.id, 1020).unwrap() else {
            panic!("not connected")
        };
        assert_eq!(p.tokens().unwrap().access_token.secret(), "at");
        let sent = String::from_utf8(script.requests()[3].body.clone()).unwrap();
        assert!(
            sent.contains("device_code=dc-SECRET") && sent.contains("client_id=tv-client"),
            "{sent}"
        );
        let stored = block_on(store.provider("alice", &p.key)).unwrap().unwrap();
        assert_eq!(stored.grant.unwrap().profile.as_deref(), Some("tv"));
        // The login is spent.
        let e = poll(&script, &store, &login.id, 1030).unwrap_err();
        assert!(
            matches!(e, Error::DeviceLogin(DeviceProblem::Unknown)),
            "{e}"
        );
    }

    #[test]
    fn a_refusal_or_an_expired_code_ends_the_login_and_a_passing_failure_keeps_it() {
        let settings = settings();
        for (answer, expect) in [
            (err("access_denied"), "denied"),
            (err("expired_token"), "expired"),
            (
                serde_json::json!({"error": "temporarily_unavailable"}),
                "kept",
            ),
        ] {
            let status = if expect == "kept" { 503 } else { 400 };
            let script = Script::new()
                .json(DEVICE, 200, device_answer())
                .json(TOKEN, status, answer)
                .json(TOKEN, 400, err("authorization_pending"));
            let store = MemoryStore::default();
            let login = start(&script, &store, &settings);
            let e = poll(&script, &store, &login.id, 1005).unwrap_err();
            match expect {
                "denied" => assert!(matches!(e, Error::AuthorizationDenied(_)), "{e}"),
                "expired" => assert!(
                    matches!(e, Error::DeviceLogin(DeviceProblem::Expired)),
                    "{e}"
                ),
                _ => assert!(e.is_retryable(), "{e}"),
            }
            let next = poll(&script, &store, &login.id, 1010);
            if expect == "kept" {
                assert_eq!(next.unwrap(), DevicePoll::Waiting { poll_at: 1015 });
            } else {
                assert!(
                    matches!(next, Err(Error::DeviceLogin(DeviceProblem::Unknown))),
                    "{next:?}"
                );
            }
        }
        // Past its lifetime, the login ends with no request.
        let script = Script::new().json(DEVICE, 200, device_answer());
        let store = MemoryStore::default();
        let login = start(&script, &store, &settings);
        let e = poll(&script, &store, &login.id, 1600).unwrap_err();
        assert!(
            matches!(e, Error::DeviceLogin(DeviceProblem::Expired)),
            "{e}"
        );
        assert_eq!(script.requests().len(), 1);
    }

    #[test]
    fn no_callback_can_take_a_device_login_and_a_server_without_one_says_so() {
        let script = Script::new().json(DEVICE, 200, device_answer());
        let store = MemoryStore::default();
        let settings = settings();
        let login = start(&script, &store, &settings);
        let callback = Url::parse("https://app.example/oauth/callback/tv").unwrap();
        let e = block_on(super::super::finish_login(
            &script,
            &store,
            "alice",
            &callback,
            &format!("code=stolen&state={}", login.id),
            1001,
        ))
        .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Callback(crate::error::CallbackProblem::WrongCallback { .. })
            ),
            "{e}"
        );
        assert_eq!(script.requests().len(), 1, "no token request");
        // Another user cannot poll it.
        let e = block_on(poll_device_login(
            &script, &store, "mallory", &login.id, 1005,
        ))
        .unwrap_err();
        assert!(
            matches!(e, Error::DeviceLogin(DeviceProblem::Unknown)),
            "{e}"
        );
        // A profile without a device endpoint.
        let mut plain = settings.clone();
        plain.profiles[0].device_authorization_endpoint = None;
        let cx = Engine {
            http: &script,
            store: &store,
            settings: &plain,
            now: 1000,
        };
        let req = LoginRequest {
            owner: "alice",
            scope: None,
            account: None,
        };
        let entropy = Entropy {
            verifier: [1; 32],
            state: [4; 32],
            dpop: [3; 32],
        };
        let e = block_on(start_device_login(&cx, req, API, entropy)).unwrap_err();
        assert!(
            matches!(e, Error::DeviceLogin(DeviceProblem::Unsupported { .. })),
            "{e}"
        );
        assert_eq!(e.kind().status(), 400);
    }

    /// A hostile resource whose own authorization server names an honest
    /// provider's device and token endpoints (or sends the person to its
    /// page), from discovery.
    mod foreign {
        use super::*;

        pub(super) const MCP: &str = "https://mcp.evil.example/mcp";
        pub(super) const AS: &str = "https://as.evil.example";
        pub(super) const HONEST: &str = "https://honest.example";

        pub(super) fn script(device: &str, token: &str, verification: &str) -> Script {
            Script::new()
                .raw(
                    MCP,
                    crate::http::HttpResponse::new(401, "").with_header(
                        "www-authenticate",
                        r#"Bearer resource_metadata="https://mcp.evil.example/.well-known/oauth-protected-resource/mcp""#,
                    ),
                )
                .json(
                    "https://mcp.evil.example/.well-known/oauth-protected-resource/mcp",
                    200,
                    serde_json::json!({"resource": MCP, "authorization_servers": [AS]}),
                )
                .json(
                    "https://as.evil.example/.well-known/oauth-authorization-server",
                    200,
                    serde_json::json!({
                        "issuer": AS,
                        "authorization_endpoint": format!("{AS}/authorize"),
                        "token_endpoint": token,
                        "device_authorization_endpoint": device,
                        "registration_endpoint": format!("{AS}/register"),
                        "response_types_supported": ["code"],
                        "code_challenge_methods_supported": ["S256"],
                    }),
                )
                .json(
                    &format!("{AS}/register"),
                    201,
                    serde_json::json!({"client_id": "public-client", "token_endpoint_auth_method": "none"}),
                )
                .json(
                    device,
                    200,
                    serde_json::json!({"device_code": "dc", "user_code": "WDJB-MJHT",
                        "verification_uri": verification, "expires_in": 600, "interval": 5}),
                )
        }

        pub(super) fn start(
            script: &Script,
            store: &MemoryStore,
            settings: &crate::settings::Settings,
        ) -> Result<DeviceStart> {
            let cx = Engine {
                http: script,
                store,
                settings,
                now: 1000,
            };
            let req = LoginRequest {
                owner: "alice",
                scope: None,
                account: None,
            };
            let entropy = Entropy {
                verifier: [1; 32],
                state: [2; 32],
                dpop: [3; 32],
            };
            block_on(start_device_login(&cx, req, MCP, entropy))
        }

        pub(super) fn sent_to(script: &Script, origin: &str) -> usize {
            script
                .requests()
                .iter()
                .filter(|r| r.url.as_str().starts_with(origin))
                .count()
        }
    }

    /// The device endpoint, the token endpoint or the person's page of a
    /// discovered server on another origin: refused, nothing sent there,
    /// nothing kept, the person shown nothing.
    #[test]
    fn a_discovered_server_cannot_run_another_servers_device_flow() {
        use foreign::*;
        let own_device = format!("{AS}/device");
        let own_token = format!("{AS}/token");
        let own_page = format!("{AS}/activate");
        let honest_device = format!("{HONEST}/device/code");
        let honest_token = format!("{HONEST}/token");
        let honest_page = format!("{HONEST}/activate");
        for (device, token, page, what) in [
            (
                &honest_device,
                &honest_token,
                &own_page,
                "device authorization endpoint",
            ),
            (&own_device, &honest_token, &own_page, "token endpoint"),
            (&own_device, &own_token, &honest_page, "verification page"),
        ] {
            let script = script(device, token, page);
            let store = MemoryStore::default();
            let e = start(&script, &store, &crate::testing::settings()).unwrap_err();
            match &e {
                Error::DeviceLogin(DeviceProblem::ForeignEndpoint {
                    issuer,
                    what: w,
                    url,
                }) => {
                    assert_eq!((issuer.as_str(), *w), (AS, what));
                    assert!(url.starts_with(HONEST), "{url}");
                }
                other => panic!("{what}: {other:?}"),
            }
            let text = e.to_string();
            assert!(text.contains(AS) && text.contains(HONEST), "{text}");
            assert_eq!(sent_to(&script, HONEST), 0, "{what}: nothing sent there");
            let state = crate::secret::FlowState::from_random([2; 32]);
            let kept =
                block_on(store.take_flow(state.secret(), "alice", DEVICE_CODE_GRANT)).unwrap();
            assert!(matches!(kept, FlowTake::Missing), "{what}: nothing kept");
        }
    }

    /// The operator allows a provider that splits its device flow across
    /// origins; its own origin always works, and shows the issuer.
    #[test]
    fn an_allowed_origin_and_the_issuers_own_work() {
        use foreign::*;
        let own = script(
            &format!("{AS}/device"),
            &format!("{AS}/token"),
            &format!("{AS}/activate"),
        );
        let Ok(DeviceStart::Waiting(login)) =
            start(&own, &MemoryStore::default(), &crate::testing::settings())
        else {
            panic!("the issuer's own origin")
        };
        assert_eq!(login.issuer, AS);
        let split = script(
            &format!("{HONEST}/device/code"),
            &format!("{HONEST}/token"),
            &format!("{HONEST}/activate"),
        );
        let mut settings = crate::testing::settings();
        settings
            .device_origins
            .insert(AS.to_owned(), vec![HONEST.to_owned()]);
        assert!(matches!(
            start(&split, &MemoryStore::default(), &settings),
            Ok(DeviceStart::Waiting(_))
        ));
    }

    /// A registration that answers with the client id the app holds at
    /// another server is refused, before any code is asked for.
    #[test]
    fn a_registration_cannot_lend_the_apps_own_client_id() {
        use foreign::*;
        let script = script(
            &format!("{AS}/device"),
            &format!("{AS}/token"),
            &format!("{AS}/activate"),
        );
        let mut settings = crate::testing::settings();
        settings
            .clients
            .pre_registered
            .push(crate::registration::PreRegisteredClient::new(
                HONEST,
                crate::client::Client::public("public-client"),
                &["https://api.honest.example"],
            ));
        let e = start(&script, &MemoryStore::default(), &settings).unwrap_err();
        assert!(e.to_string().contains(HONEST), "{e}");
        assert_eq!(sent_to(&script, &format!("{AS}/device")), 0);
    }
}
