//! The example app: a person signs in, connects OAuth-protected APIs, and
//! calls them through the SDK.
//!
//! HTTP contract (used by the end-to-end tests):
//! - `GET /signin?user=<id>` signs in as `<id>` with no password (a demo
//!   stand-in for a real sign-in): it sets a signed session cookie
//!   ([`idp::workers::Session`], key `IDP_SESSION_KEY`) and redirects to `/`.
//!   It exists only on loopback (404 elsewhere, signed in or not).
//! - A signed-in person's routes are one table, `Route::of`: each is
//!   `Reads` or `Acts`. A route that acts with the person's credentials or
//!   changes what is kept for them (`/api/fetch`, `/api/forward`,
//!   `/api/mcp`, `/api/background-fetch`, `POST /api/refresh`,
//!   `POST /api/reencrypt`, `DELETE /api/providers`,
//!   `POST /api/connect/enterprise`, `/api/device`) answers the app's
//!   own pages only: a request the browser says another site made is
//!   refused, 403 `{"error": "cross_site", "message"}`, before it runs.
//! - `GET /` the page: providers, connect form, refresh and remove, a call box.
//! - `GET /oauth/login?url=<resource>[&scope=]`, `GET /oauth/callback`: the SDK.
//! - `GET /api/providers[?limit=N[&after=<resource>]]` (all, or one page
//!   `{"providers": [...], "next": <resource or null>}`), `POST /api/refresh {"urls": [...], "force": false}`,
//!   `DELETE /api/providers?url=<resource>`.
//! - `GET /api/fetch?url=<url>`: calls the URL with the user's credentials and
//!   answers with the upstream status and body, or 401
//!   `{"error":"authorization_required","reauthorize_url",...}` (the app's
//!   own: `reauthorize_url` is its login route, on its origin). An answer
//!   relayed from the upstream carries `Idp-Relayed: upstream`, so an
//!   upstream's own 401 body, whatever it says, is never taken for the
//!   app's (its page offers to authorize only from an answer without it,
//!   and only through its own login route). The body is
//!   streamed through [`idp::workers::relay`]: at most `IDP_RELAY_MAX_BYTES`
//!   (16 MiB by default), after which its stream ends with an error (which
//!   workerd closes as if the body were whole) and the upstream request is
//!   cancelled; an answer that declares more is refused, 502
//!   `invalid_response`.
//! - `POST /api/mcp?url=<MCP server>`: sends one JSON-RPC message (the body)
//!   to the MCP server over Streamable HTTP as the user and answers the
//!   JSON-RPC response as JSON (read from JSON or an event stream), 202 for a
//!   notification. Each answer is read whole through the body cap
//!   (`IDP_MAX_BODY_BYTES`, 8 MiB by default), past which the route answers
//!   502 `invalid_response`. The MCP session is kept per user and server in the user's
//!   object (a request's own `Mcp-Session-Id` wins); the answer carries it.
//!   When the user must act: 401 `authorization_required`.
//! - `ANY /api/forward?url=<url>`: forwards this request (method, body and
//!   headers, but never the caller's cookies or credentials) to the URL with
//!   the user's credentials, answering like `/api/fetch` (the same cap).
//! - `POST /api/connect/enterprise?url=<resource>[&scope=]` with
//!   `{"id_token": "..."}`: connects with enterprise-managed authorization
//!   (`IDP_ENTERPRISE_IDP`), with the person's ID token, which must be
//!   theirs: its `sub` must be the signed-in user id (403
//!   `id_token_not_yours` otherwise, before anything is sent).
//! - `POST /api/device?url=<resource>[&scope=]`: connects with no browser
//!   callback (RFC 8628): answers the device login (`id`, `issuer` (show
//!   its origin beside the code, so the person sees whose code it is), `user_code`,
//!   `verification_uri`, `verification_uri_complete`, `expires_at`,
//!   `interval`), or the provider when the resource is public;
//!   `GET /api/device?id=` says where it stands (`{"waiting": {"poll_at"}}`
//!   or `{"connected": {"provider"}}`, or the error: declined, expired).
//! - Every `/api/` route takes `&account=<label>` to act as the user's
//!   account `label` (`/oauth/login?url=&account=` connects one): a second
//!   GitHub or Google account beside the first.
//! - `GET /api/events`: the user's audit log (lifecycle events), newest first.
//! - `POST /api/reencrypt`: seals this user's secrets again under the first
//!   key of `IDP_ENCRYPTION_KEYS` (key rotation).
//! - `POST /admin/reencrypt-registry`: the same for the deployment-wide
//!   registry, for the operator only (`Authorization: Bearer
//!   <IDP_ADMIN_TOKEN>`, a secret of 32 bytes or more; without it the route
//!   does not exist).
//! - `POST /admin/app/connect?url=&scope=`, `POST /admin/app/fetch?url=`,
//!   `POST /admin/app/mcp?url=`: the app as itself (its workload `app`, or
//!   `?workload=`), for the operator only as above: connects a resource
//!   with the client credentials grant (the app's pre-registered client for
//!   its issuer), GETs a URL, sends one MCP message, with no person.
//! - `GET /api/background-fetch?url=<url>`: the same call as a background
//!   job makes it (`idp::workers::Background`, no handler), relayed like
//!   `/api/fetch` (the same cap).
//! - `GET /api/plain-fetch?url=<url>`: the same call with no credentials
//!   lookup and no address policy (a baseline for benchmarks): only in a
//!   build with feature `bench` and when `IDP_BENCH_ROUTES` is `true`.
//! - `/api/debug/{calls,seed,find}`: the benchmark's routes, only in a build
//!   with feature `bench` and when the
//!   variable `IDP_BENCH_ROUTES` is `true` (the benchmark sets it).

use idp::profile::ProviderProfile;
use idp::worker::{Env, Method, Request, Response};
use idp::workers::Config;
use idp::workers::{
    mcp_provider_info, AppContext, Connected, DeviceConnect, Handler, IdpWorker, McpClient,
    McpError, ProviderInfo, Session,
};
use serde::Deserialize;

/// The app. `#[idp_worker]` exports the `OAuthProviders` Durable Object and
/// the Worker's entry point, with the OAuth middleware at `/oauth`.
#[idp::idp_worker(name = "idp example app")]
pub struct ExampleApp;

impl IdpWorker for ExampleApp {
    /// Names an MCP server (a URL ending in `/mcp`: other APIs get no extra
    /// request) by its `serverInfo` and records its tools; names any other
    /// API by host and path. Records when and how it was connected.
    async fn on_auth_success(&self, c: Connected<'_>) -> Result<ProviderInfo, String> {
        let looks_mcp = url::Url::parse(c.connected_url)
            .is_ok_and(|u| u.path().trim_end_matches('/').ends_with("/mcp"));
        let mcp = if looks_mcp {
            mcp_provider_info(&c).await.ok()
        } else {
            None
        };
        // A connection the person did not name is named after whom its
        // token is for, when the token says (a JWT's `sub`).
        let account = c.account.is_none().then(|| c.token_subject()).flatten();
        if let Some(mut info) = mcp {
            info.metadata["connected_at"] = idp::workers::now().into();
            info.metadata["scope"] = c.scope.into();
            info.account = account;
            return Ok(info);
        }
        let default = ProviderInfo::default_for(c.resource_url);
        let path = url::Url::parse(c.resource_url)
            .map(|u| u.path().to_owned())
            .unwrap_or_default();
        Ok(ProviderInfo {
            name: format!("{}{}", default.name, path.trim_end_matches('/')),
            metadata: serde_json::json!({
                "connected_at": idp::workers::now(),
                "scope": c.scope,
                "public": c.access_token.is_none(),
            }),
            account,
        })
    }

    /// A provider profile configured in Rust, when `EXAMPLE_PROFILE_ORIGIN`
    /// names an API without discovery (the tests point it at their local
    /// one); real apps add `idp::profile::builtin::github(..)` and the like.
    fn configure(&self, config: Config, env: &Env) -> Config {
        let Ok(origin) = env.var("EXAMPLE_PROFILE_ORIGIN").map(|v| v.to_string()) else {
            return config;
        };
        let url = |path: &str| url::Url::parse(&format!("{origin}{path}"));
        let (Ok(authorize), Ok(token), Ok(revoke)) = (
            url("/oauth/authorize"),
            url("/oauth/token"),
            url("/oauth/revoke"),
        ) else {
            return config;
        };
        let mut profile = ProviderProfile::new(
            "rust-configured",
            &[&format!("{origin}/api/rust")],
            origin.clone(),
            authorize,
            token,
            "quirks-app",
        );
        profile.client_secret_name = Some("QUIRKS_SECRET".into());
        profile.revocation_endpoint = Some(revoke);
        profile.scopes = vec!["repo".into()];
        profile.rules.assume_bearer = true;
        config.profile(profile)
    }

    fn user_id(&self, req: &Request, env: &Env) -> Option<String> {
        // Off loopback, nobody is signed in while development settings are
        // left in place (`anonymous` then says what to set).
        if !on_loopback(req) && !development_settings(env).is_empty() {
            return None;
        }
        Session::from_env(env)
            .ok()?
            .user_id(req)
            .filter(|u| valid_user(u))
    }

    async fn anonymous(&self, req: Request, env: &Env) -> idp::worker::Result<Response> {
        let url = req.url()?;
        if !on_loopback(&req) {
            let left = development_settings(env);
            if !left.is_empty() {
                return json_error(
                    500,
                    "development_settings",
                    &format!(
                        "this deployment still has the example's local development settings ({}): set real secrets (wrangler secret put IDP_SESSION_KEY, IDP_ENCRYPTION_KEYS) and remove IDP_ALLOW_INSECURE_LOOPBACK",
                        left.join(", ")
                    ),
                );
            }
        }
        if url.path() == "/admin/reencrypt-registry" && req.method() == Method::Post {
            return reencrypt_registry(&req, env).await;
        }
        if url.path().starts_with("/admin/app/") && req.method() == Method::Post {
            if let Err(refused) = operator(&req, env) {
                return refused;
            }
            let config = self
                .configure(
                    Config::new("idp example app", env!("CARGO_PKG_VERSION")).with_env(env),
                    env,
                )
                .resolve_secrets(env);
            return match as_app(req, env, &config, &url).await {
                Ok(resp) => Ok(resp),
                Err(e) => e.to_response(),
            };
        }
        if url.path() == "/signin" {
            return sign_in(&req, &url, env);
        }
        if url.path().starts_with("/api/") {
            return json_error(401, "not_signed_in", "sign in first: GET /signin?user=<id>");
        }
        Response::from_html(page::signed_out())
    }

    async fn fetch(
        &self,
        req: Request,
        cx: AppContext<'_>,
    ) -> Result<Response, idp::workers::Error> {
        let url = req.url()?;
        if url.path() == "/signin" {
            return Ok(sign_in(&req, &url, cx.env)?);
        }
        route(req, &cx, &url).await
    }
}

/// A JSON request body, or `None` if it is not one. Read as text and decoded
/// by serde_json, like everything in idp: `Request::json` decodes through
/// serde-wasm-bindgen, a second decoder for each type in the bundle.
async fn read_json<T: serde::de::DeserializeOwned>(req: &mut Request) -> Option<T> {
    serde_json::from_str(&req.text().await.ok()?).ok()
}

fn json_error(status: u16, error: &str, message: &str) -> idp::worker::Result<Response> {
    Ok(
        Response::from_json(&serde_json::json!({ "error": error, "message": message }))?
            .with_status(status),
    )
}

fn query(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Whether the request comes from the operator: `Authorization: Bearer
/// <IDP_ADMIN_TOKEN>` (a secret of at least 32 characters), compared in
/// constant time. Without that secret set, the operator's routes do not
/// exist (404). No user can reach them with a session.
fn operator(req: &Request, env: &Env) -> Result<(), idp::worker::Result<Response>> {
    let token = env
        .secret("IDP_ADMIN_TOKEN")
        .map(|s| s.to_string())
        .or_else(|_| env.var("IDP_ADMIN_TOKEN").map(|v| v.to_string()));
    let Ok(expected) = token else {
        return Err(json_error(404, "not_found", "no such route"));
    };
    let given = req
        .headers()
        .get("authorization")
        .ok()
        .flatten()
        .unwrap_or_default()
        .strip_prefix("Bearer ")
        .unwrap_or_default()
        .to_owned();
    let same = given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if expected.len() < 32 || !same {
        return Err(json_error(
            401,
            "not_the_operator",
            "give Authorization: Bearer <IDP_ADMIN_TOKEN>",
        ));
    }
    Ok(())
}

/// The operator's routes acting as the app itself (its workload `app`, or
/// `?workload=`), with no person: `POST /admin/app/connect?url=&scope=`
/// connects a resource with the client credentials grant, or with the JWT
/// bearer grant given `{"workload_token": "<JWT>"}` as the body;
/// `POST /admin/app/fetch?url=` GETs a URL as the app (relayed like
/// `/api/fetch`, through the same cap);
/// `POST /admin/app/mcp?url=` sends one MCP message (the body) as the app.
async fn as_app(
    req: Request,
    env: &Env,
    config: &Config,
    url: &url::Url,
) -> Result<Response, idp::workers::Error> {
    let workload = query(url, "workload").unwrap_or_else(|| "app".into());
    let app = idp::workers::Background::app(env, config, &workload)?;
    let Some(target) = query(url, "url") else {
        return Ok(json_error(400, "missing_url", "give ?url=<resource>")?);
    };
    match url.path() {
        "/admin/app/connect" => {
            let scope = query(url, "scope");
            // A workload identity token comes in the body, never the URL.
            let mut req = req;
            let body: serde_json::Value = read_json(&mut req).await.unwrap_or_default();
            let provider = match body["workload_token"].as_str() {
                Some(token) => {
                    app.connect_as_workload(&target, token, scope.as_deref())
                        .await?
                }
                None => app.connect_as_app(&target, scope.as_deref()).await?,
            };
            Ok(Response::from_json(&provider)?)
        }
        "/admin/app/fetch" => relayed(app.fetch().get(&target).await?, config),
        "/admin/app/mcp" => {
            let mcp = McpClient::new(app.fetch(), &target);
            mcp_exchange(req, mcp, None).await
        }
        _ => Ok(json_error(404, "not_found", "no such route")?),
    }
}

/// `POST /admin/reencrypt-registry`: the operator re-encrypts the
/// deployment-wide registry (`idp::workers::reencrypt_registry`), with
/// `Authorization: Bearer <IDP_ADMIN_TOKEN>`; without that secret set the
/// route does not exist. No user can reach it with a session.
async fn reencrypt_registry(req: &Request, env: &Env) -> idp::worker::Result<Response> {
    if let Err(refused) = operator(req, env) {
        return refused;
    }
    match idp::workers::reencrypt_registry(env, idp::workers::DEFAULT_BINDING).await {
        Ok(rows) => Response::from_json(&serde_json::json!({ "registry_rows": rows })),
        Err(e) => e.to_response(),
    }
}

/// The session key this file's `wrangler.toml` ships for local development.
const DEV_SESSION_KEY: &str = "local-development-only-not-a-secret-0123456789";
/// The encryption key `wrangler.toml` ships for local development.
const DEV_ENCRYPTION_KEY: &str = "dev1:ZGV2ZWxvcG1lbnQtb25seS1rZXktMzItYnl0ZXMhISE=";

/// Whether the request reached the Worker on a loopback host (local
/// development with `wrangler dev`).
fn on_loopback(req: &Request) -> bool {
    req.url().is_ok_and(|u| {
        u.host()
            .is_some_and(|h| idp::policy::reach_host(&h) == idp::policy::Reach::Loopback)
    })
}

/// Which of the example's local development settings are still in place.
fn development_settings(env: &Env) -> Vec<&'static str> {
    let text = |name: &str| {
        env.secret(name)
            .map(|v| v.to_string())
            .or_else(|_| env.var(name).map(|v| v.to_string()))
            .unwrap_or_default()
    };
    let mut left = Vec::new();
    if text("IDP_SESSION_KEY") == DEV_SESSION_KEY {
        left.push("IDP_SESSION_KEY");
    }
    if text("IDP_ENCRYPTION_KEYS").contains(DEV_ENCRYPTION_KEY) {
        left.push("IDP_ENCRYPTION_KEYS");
    }
    if text("IDP_ALLOW_INSECURE_LOOPBACK")
        .trim()
        .eq_ignore_ascii_case("true")
    {
        left.push("IDP_ALLOW_INSECURE_LOOPBACK");
    }
    left
}

fn valid_user(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
}

/// How long a demo session lasts: 8 hours.
const SESSION_SECS: u64 = 8 * 3600;

/// `GET /signin?user=<id>`, signed in or not. Password-less sign-in is a
/// stand-in for local development: it exists only on loopback, and a
/// deployment puts real sign-in in front (Cloudflare Access, or the app's
/// own) and reads the user from it in `user_id`.
fn sign_in(req: &Request, url: &url::Url, env: &Env) -> idp::worker::Result<Response> {
    if !on_loopback(req) {
        return json_error(
            404,
            "not_found",
            "password-less sign-in exists only on loopback: put real sign-in in front of the app",
        );
    }
    let user = query(url, "user").unwrap_or_default();
    if user.is_empty() {
        return Response::from_html(page::signed_out());
    }
    if !valid_user(&user) {
        return json_error(
            400,
            "invalid_user",
            "give ?user=<id> with letters, digits, - _ . @ (at most 64)",
        );
    }
    let session = match Session::from_env(env) {
        Ok(s) => s,
        Err(e) => return json_error(500, "no_session_key", &e.to_string()),
    };
    let mut resp = Response::empty()?.with_status(302);
    let headers = resp.headers_mut();
    headers.set("location", "/")?;
    headers.set("set-cookie", &session.set_cookie(url, &user, SESSION_SECS))?;
    Ok(resp)
}

/// What a route answers with.
type Answer = Result<Response, idp::workers::Error>;

/// Whether a route may answer a request another site made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Shows the person what they have (the page, a list): answers any
    /// request that carries their session.
    Reads,
    /// Acts with the person's credentials (sends a request as them) or
    /// changes what is kept for them: answers the app's own pages only. A
    /// request the browser says another site made
    /// ([`Handler::is_cross_site`]) is refused with 403 `cross_site`
    /// before the route runs, so a link, form or script elsewhere makes
    /// the Worker send nothing and change nothing.
    Acts,
}

/// A signed-in person's routes: [`Route::of`] is their one list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Home,
    Providers,
    Remove,
    Events,
    Refresh,
    Reencrypt,
    ConnectEnterprise,
    StartDevice,
    DeviceLogin,
    Fetch,
    BackgroundFetch,
    Mcp,
    Forward,
    #[cfg(feature = "bench")]
    PlainFetch,
    #[cfg(feature = "bench")]
    DebugCalls,
    #[cfg(feature = "bench")]
    DebugSeed,
    #[cfg(feature = "bench")]
    DebugFind,
}

impl Route {
    /// Every route of a signed-in person, one line each: its method and
    /// path, and its [`Class`]. A request reaches a route only through this
    /// table (a route missing here is never built, which the compiler
    /// reports), so a route cannot be added without saying whether it acts
    /// for the person; the dispatcher, [`route`], holds each to its class.
    fn of(method: &Method, path: &str) -> Option<(Route, Class)> {
        use Class::{Acts, Reads};
        Some(match (method, path) {
            (Method::Get, "/") => (Route::Home, Reads),
            (Method::Get, "/api/providers") => (Route::Providers, Reads),
            (Method::Delete, "/api/providers") => (Route::Remove, Acts),
            (Method::Get, "/api/events") => (Route::Events, Reads),
            (Method::Post, "/api/refresh") => (Route::Refresh, Acts),
            (Method::Post, "/api/reencrypt") => (Route::Reencrypt, Acts),
            (Method::Post, "/api/connect/enterprise") => (Route::ConnectEnterprise, Acts),
            (Method::Post, "/api/device") => (Route::StartDevice, Acts),
            // Polls the server when due (and stores what it grants).
            (Method::Get, "/api/device") => (Route::DeviceLogin, Acts),
            (Method::Get, "/api/fetch") => (Route::Fetch, Acts),
            (Method::Get, "/api/background-fetch") => (Route::BackgroundFetch, Acts),
            (Method::Post, "/api/mcp") => (Route::Mcp, Acts),
            (_, "/api/forward") => (Route::Forward, Acts),
            #[cfg(feature = "bench")]
            (Method::Get, "/api/plain-fetch") => (Route::PlainFetch, Acts),
            #[cfg(feature = "bench")]
            (Method::Get, "/api/debug/calls") => (Route::DebugCalls, Reads),
            #[cfg(feature = "bench")]
            (Method::Post, "/api/debug/seed") => (Route::DebugSeed, Acts),
            #[cfg(feature = "bench")]
            (Method::Get, "/api/debug/find") => (Route::DebugFind, Reads),
            _ => return None,
        })
    }

    /// Runs the route's function.
    async fn run(self, c: Call<'_>) -> Answer {
        match self {
            Route::Home => home(c).await,
            Route::Providers => providers(c).await,
            Route::Remove => remove(c).await,
            Route::Events => events(c).await,
            Route::Refresh => refresh(c).await,
            Route::Reencrypt => reencrypt(c).await,
            Route::ConnectEnterprise => connect_enterprise(c).await,
            Route::StartDevice => start_device(c).await,
            Route::DeviceLogin => device_login(c).await,
            Route::Fetch => fetch(c).await,
            Route::BackgroundFetch => background_fetch(c).await,
            Route::Mcp => mcp(c).await,
            Route::Forward => forward(c).await,
            #[cfg(feature = "bench")]
            Route::PlainFetch => plain_fetch(c).await,
            #[cfg(feature = "bench")]
            Route::DebugCalls => debug_calls(c).await,
            #[cfg(feature = "bench")]
            Route::DebugSeed => debug_seed(c).await,
            #[cfg(feature = "bench")]
            Route::DebugFind => debug_find(c).await,
        }
    }
}

/// A signed-in person's request, as a route answers it.
struct Call<'a> {
    req: Request,
    url: &'a url::Url,
    cx: &'a AppContext<'a>,
    /// The person, or their account `?account=<label>`.
    handler: &'a Handler,
    /// Authorized requests as `handler`.
    fetch: idp::workers::AuthedFetch<'a>,
}

/// Serves a signed-in person's request: finds its route in [`Route::of`],
/// refuses another site's request to a route that [`Class::Acts`], then
/// runs the route.
async fn route(req: Request, cx: &AppContext<'_>, url: &url::Url) -> Answer {
    let Some((route, class)) = Route::of(&req.method(), url.path()) else {
        return Ok(json_error(404, "not_found", "no such route")?);
    };
    // `?account=<label>`: the same routes as the user's account `label`
    // (a second account at an API already connected).
    let account = match query(url, "account") {
        Some(label) => Some(cx.idp.account(&label)?),
        None => None,
    };
    let handler: &Handler = account.as_ref().unwrap_or(cx.idp);
    if class == Class::Acts && handler.is_cross_site(&req) {
        return Ok(json_error(
            403,
            "cross_site",
            "this route acts with your credentials or changes your connections, and answers only this app's own pages",
        )?);
    }
    let fetch = match &account {
        Some(h) => h.fetcher(),
        None => cx.fetch,
    };
    let call = Call {
        req,
        url,
        cx,
        handler,
        fetch,
    };
    route.run(call).await
}

/// The header that marks an answer relayed from an upstream: its status
/// and body are the upstream's, never the app's own. An
/// `authorization_required` in such a body is what the upstream said, not
/// the app: its page offers to authorize only from an answer without it.
const RELAYED: &str = "idp-relayed";

/// `upstream`'s answer passed on ([`idp::workers::relay`]: streamed, cut
/// at the relay cap, inert), marked [`RELAYED`].
fn relayed(upstream: Response, config: &Config) -> Answer {
    let mut resp = idp::workers::relay(upstream, config)?;
    resp.headers_mut().set(RELAYED, "upstream")?;
    Ok(resp)
}

/// `GET /`: the page.
async fn home(c: Call<'_>) -> Answer {
    Ok(Response::from_html(page::home(
        c.cx.user_id,
        c.handler.config(),
    ))?)
}

/// `GET /api/providers[?limit=N[&after=<resource>]]`: all, or one page
/// `{"providers", "next"}`.
async fn providers(c: Call<'_>) -> Answer {
    let Some(limit) = query(c.url, "limit") else {
        return Ok(Response::from_json(&c.handler.providers().await?)?);
    };
    let Ok(limit) = limit.parse::<u32>() else {
        return Ok(json_error(400, "invalid_limit", "limit is a number")?);
    };
    let after = query(c.url, "after");
    let page = c.handler.providers_page(after.as_deref(), limit).await?;
    Ok(Response::from_json(&page)?)
}

/// `DELETE /api/providers?url=<resource>`.
async fn remove(c: Call<'_>) -> Answer {
    let Some(resource) = query(c.url, "url") else {
        return Ok(json_error(400, "missing_url", "give ?url=<resource>")?);
    };
    Ok(Response::from_json(&c.handler.remove(&resource).await?)?)
}

/// `GET /api/events`.
async fn events(c: Call<'_>) -> Answer {
    Ok(Response::from_json(&c.handler.events().await?)?)
}

#[derive(Deserialize)]
struct RefreshBody {
    urls: Vec<String>,
    /// Refresh now, not only near expiry (a token the app knows is dead).
    #[serde(default)]
    force: bool,
}

/// `POST /api/refresh {"urls": [...], "force": false}`.
async fn refresh(mut c: Call<'_>) -> Answer {
    let Some(body) = read_json::<RefreshBody>(&mut c.req).await else {
        return Ok(json_error(
            400,
            "invalid_body",
            r#"expected {"urls": ["..."]}"#,
        )?);
    };
    let outcomes = if body.force {
        c.handler.refresh_now(&body.urls).await?
    } else {
        c.handler.refresh(&body.urls).await?
    };
    Ok(Response::from_json(&outcomes)?)
}

/// `POST /api/reencrypt`.
async fn reencrypt(c: Call<'_>) -> Answer {
    Ok(Response::from_json(&c.handler.reencrypt().await?)?)
}

/// `POST /api/connect/enterprise?url=<resource>[&scope=]` with
/// `{"id_token": "..."}`: enterprise-managed authorization, with the
/// person's ID token from the enterprise's identity provider. A real app
/// takes it from its own sign-in rather than from the page.
///
/// The ID token must be the signed-in person's: its `sub` must be their
/// user id (this example signs people in under the identity provider's
/// subject; an app that keys its users otherwise compares the claim it
/// maps to its ids, `email` say). Otherwise 403 `id_token_not_yours`,
/// before anything is sent, so nobody attaches another person's identity
/// to this person's connections. The payload is read without checking the
/// signature: the app does not hold the identity provider's keys. The
/// identity provider checks the signature when it exchanges the token, so
/// a forged token gets nothing there; this check binds whatever it
/// accepts to the signed-in user.
async fn connect_enterprise(mut c: Call<'_>) -> Answer {
    let Some(resource) = query(c.url, "url") else {
        return Ok(json_error(400, "missing_url", "give ?url=<resource>")?);
    };
    let body: serde_json::Value = read_json(&mut c.req).await.unwrap_or_default();
    let Some(id_token) = body["id_token"].as_str() else {
        return Ok(json_error(
            400,
            "invalid_body",
            r#"expected {"id_token": "..."}"#,
        )?);
    };
    if jwt_subject(id_token).as_deref() != Some(c.cx.user_id) {
        return Ok(json_error(
            403,
            "id_token_not_yours",
            "the ID token is not the signed-in user's: its subject (sub) must be your user id",
        )?);
    }
    let scope = query(c.url, "scope");
    let provider = c
        .handler
        .connect_enterprise(&resource, id_token, scope.as_deref())
        .await?;
    Ok(Response::from_json(&provider)?)
}

/// The `sub` claim of a JWT (a JWS in compact form), read without
/// checking its signature; `None` for anything else.
fn jwt_subject(jwt: &str) -> Option<String> {
    use base64::Engine as _;
    let mut parts = jwt.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims["sub"].as_str().map(str::to_owned)
}

/// `POST /api/device?url=<resource>[&scope=]`: a login with no browser
/// callback (RFC 8628): the person enters the code on another device
/// while the user's object polls.
async fn start_device(c: Call<'_>) -> Answer {
    let Some(resource) = query(c.url, "url") else {
        return Ok(json_error(400, "missing_url", "give ?url=<resource>")?);
    };
    let scope = query(c.url, "scope");
    Ok(
        match c
            .handler
            .start_device_login(&resource, scope.as_deref())
            .await?
        {
            DeviceConnect::Waiting(login) => Response::from_json(&login)?,
            DeviceConnect::Public(provider) => Response::from_json(&provider)?,
        },
    )
}

/// `GET /api/device?id=`: where a device login stands.
async fn device_login(c: Call<'_>) -> Answer {
    let Some(id) = query(c.url, "id") else {
        return Ok(json_error(400, "missing_id", "give ?id=<device login>")?);
    };
    Ok(Response::from_json(&c.handler.device_login(&id).await?)?)
}

/// `GET /api/fetch?url=<url>`: the URL called as the user, relayed.
async fn fetch(c: Call<'_>) -> Answer {
    let Some(target) = query(c.url, "url") else {
        return Ok(json_error(400, "missing_url", "give ?url=<url>")?);
    };
    relayed(c.fetch.get(&target).await?, c.handler.config())
}

/// `GET /api/background-fetch?url=<url>`: what a cron trigger or queue
/// consumer does for a user (`idp::workers::Background`), reached here
/// for the tests.
async fn background_fetch(c: Call<'_>) -> Answer {
    let Some(target) = query(c.url, "url") else {
        return Ok(json_error(400, "missing_url", "give ?url=<url>")?);
    };
    let as_user = idp::workers::Background::new(c.cx.env, c.cx.user_id)?;
    relayed(as_user.fetch().get(&target).await?, c.handler.config())
}

/// `POST /api/mcp?url=<MCP server>`.
async fn mcp(c: Call<'_>) -> Answer {
    let Some(target) = query(c.url, "url") else {
        return Ok(json_error(400, "missing_url", "give ?url=<MCP server>")?);
    };
    mcp_relay(c.req, c.handler, c.fetch, target).await
}

/// `ANY /api/forward?url=<url>`: this request forwarded as the user.
async fn forward(c: Call<'_>) -> Answer {
    let Some(target) = query(c.url, "url") else {
        return Ok(json_error(400, "missing_url", "give ?url=<url>")?);
    };
    let out = idp::workers::OutgoingRequest::forward(c.req, target).await?;
    relayed(c.fetch.send(out).await?, c.handler.config())
}

/// Whether the benchmark's routes are on: built with feature `bench` and
/// `IDP_BENCH_ROUTES=true`, both set only by the benchmark command.
#[cfg(feature = "bench")]
fn bench_routes(env: &Env) -> Result<(), Answer> {
    if env
        .var("IDP_BENCH_ROUTES")
        .is_ok_and(|v| v.to_string() == "true")
    {
        return Ok(());
    }
    Err(json_error(404, "not_found", "no such route").map_err(idp::workers::Error::from))
}

/// `GET /api/plain-fetch?url=`: the same call with no credentials lookup
/// and no address policy (the benchmark's baseline).
#[cfg(feature = "bench")]
async fn plain_fetch(c: Call<'_>) -> Answer {
    if let Err(answer) = bench_routes(c.cx.env) {
        return answer;
    }
    let Some(target) = query(c.url, "url") else {
        return Ok(json_error(400, "missing_url", "give ?url=<url>")?);
    };
    let target = url::Url::parse(&target).map_err(|e| idp::Error::InvalidUrl {
        input: target.clone(),
        reason: e.to_string(),
    })?;
    let upstream = idp::worker::Fetch::Url(target).send().await?;
    relayed(upstream, c.handler.config())
}

/// `GET /api/debug/calls`: the object's call counter (the benchmark's).
#[cfg(feature = "bench")]
async fn debug_calls(c: Call<'_>) -> Answer {
    if let Err(answer) = bench_routes(c.cx.env) {
        return answer;
    }
    Ok(Response::from_json(&c.cx.idp.stub().stats().await?)?)
}

/// `POST /api/debug/seed`: seeds providers (the benchmark's).
#[cfg(feature = "bench")]
async fn debug_seed(mut c: Call<'_>) -> Answer {
    if let Err(answer) = bench_routes(c.cx.env) {
        return answer;
    }
    let Some(providers) = read_json::<Vec<idp::store::Provider>>(&mut c.req).await else {
        return Ok(json_error(
            400,
            "invalid_body",
            "expected a list of providers",
        )?);
    };
    Ok(Response::from_json(
        &c.cx.idp.stub().seed(providers).await?,
    )?)
}

/// `GET /api/debug/find?url=`: the longest-prefix lookup alone (the
/// benchmark's).
#[cfg(feature = "bench")]
async fn debug_find(c: Call<'_>) -> Answer {
    if let Err(answer) = bench_routes(c.cx.env) {
        return answer;
    }
    let target = query(c.url, "url").unwrap_or_default();
    Ok(Response::from_json(
        &c.cx.idp.stub().find_provider(&target).await?,
    )?)
}

/// `POST /api/mcp`: one JSON-RPC message to an MCP server, as the user,
/// through [`McpClient`], continuing the session (or the stateless revision)
/// kept for this user and server unless the caller names a session.
async fn mcp_relay(
    req: Request,
    handler: &Handler,
    fetch: idp::workers::AuthedFetch<'_>,
    target: String,
) -> Result<Response, idp::workers::Error> {
    let explicit = req.headers().get(idp::mcp::SESSION_HEADER)?;
    let made = match &explicit {
        Some(sid) => McpClient::new(fetch, &target).map(|m| m.with_session(sid.clone())),
        None => handler.mcp(&target).await,
    };
    mcp_exchange(req, made, explicit.is_none().then_some(handler)).await
}

/// Sends the request's JSON-RPC message (its body) through `made`, honouring
/// the caller's `Mcp-Protocol-Version`, and answers with the server's
/// result or error, the session and the revision agreed (as headers). With
/// `keeper`, a changed session or revision is kept for the next call.
async fn mcp_exchange(
    mut req: Request,
    made: Result<McpClient<'_>, McpError>,
    keeper: Option<&Handler>,
) -> Result<Response, idp::workers::Error> {
    use idp::mcp::{PROTOCOL_VERSION_HEADER, SESSION_HEADER};
    #[derive(Deserialize)]
    struct Message {
        #[serde(default)]
        id: Option<serde_json::Value>,
        method: String,
        #[serde(default)]
        params: Option<serde_json::Value>,
    }
    let Some(message) = read_json::<Message>(&mut req).await else {
        return Ok(json_error(
            400,
            "invalid_body",
            "the body must be one JSON-RPC request or notification",
        )?);
    };
    let mut mcp = match made {
        Ok(m) => m,
        Err(McpError::Request(e)) => return Err(e),
        Err(e) => return Ok(json_error(400, "invalid_url", &e.to_string())?),
    };
    if let Some(v) = req.headers().get(PROTOCOL_VERSION_HEADER)? {
        mcp = mcp.with_protocol_version(v);
    }
    let before = (mcp.session_id(), mcp.protocol_version(), mcp.tool_headers());
    let outcome = match &message.id {
        Some(_) => mcp
            .request(
                &message.method,
                message.params.unwrap_or(serde_json::json!({})),
            )
            .await
            .map(Some),
        None => mcp
            .notify(&message.method, message.params)
            .await
            .map(|()| None),
    };
    let mut resp = match outcome {
        Ok(None) => Response::empty()?.with_status(202),
        Ok(Some(result)) => Response::from_json(&serde_json::json!({
            "jsonrpc": "2.0", "id": message.id, "result": result,
        }))?,
        Err(McpError::Mcp(idp::mcp::McpError::Rpc(idp::mcp::RpcError {
            code,
            message: text,
            data,
        }))) => Response::from_json(&serde_json::json!({
            "jsonrpc": "2.0", "id": message.id,
            "error": {"code": code, "message": text, "data": data},
        }))?,
        Err(McpError::Request(e)) => return Err(e),
        Err(e) => json_error(502, "mcp", &e.to_string())?,
    };
    if let Some(keeper) = keeper {
        if (mcp.session_id(), mcp.protocol_version(), mcp.tool_headers()) != before {
            keeper.keep_mcp_session(&mcp).await?;
        }
    }
    if let Some(s) = mcp.session_id() {
        resp.headers_mut().set(SESSION_HEADER, &s)?;
    }
    if let Some(v) = mcp.protocol_version() {
        resp.headers_mut().set(PROTOCOL_VERSION_HEADER, &v)?;
    }
    Ok(resp)
}

mod page;
