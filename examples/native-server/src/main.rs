//! idp natively: an axum server that connects each signed-in user to
//! OAuth-protected APIs and MCP servers, on PostgreSQL, so any number of
//! replicas can serve the same users (a login started on one completes on
//! another; a grant is refreshed once whichever replicas ask).
//!
//! ```text
//! DATABASE_URL=postgresql://idp@127.0.0.1:5432/idp PORT=8801 \
//! IDP_ENCRYPTION_KEYS=k1:<base64 of 32 bytes> SESSION_SECRET=<32+ chars> \
//! IDP_ALLOW_LOOPBACK=1 cargo run -p idp-native-server
//! ```
//!
//! `PUBLIC_ORIGIN` (default `http://127.0.0.1:$PORT`) is where people reach
//! the app: replicas behind one load balancer share it, so a login's
//! callback may reach any of them.
//!
//! Routes: `GET /signin?user=` (a demo sign-in: a signed cookie, only on
//! loopback), `GET /oauth/login?url=&account=`, `GET /oauth/callback/{id}`,
//! `GET /api/call?url=`, `POST /api/mcp?url=&tool=`, `GET /api/providers`,
//! `DELETE /api/providers?url=`, and `/` (what the user has connected).
//! The routes that act with the user's credentials or change their
//! connections (login, call, MCP, removal) sit behind one layer,
//! [`own_pages_only`]: a request another site made gets 403 `cross_site`.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use idp::flow::{LoginStart, Settings};
use idp::native::{NativeIdp, PostgresStore};
use idp::session::SessionKey;
use idp::store::UserStore;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

struct App {
    idp: NativeIdp<PostgresStore>,
    sessions: SessionKey,
    origin: String,
}

type Shared = State<Arc<App>>;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set (see the example's docs)"))
}

#[tokio::main]
async fn main() {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8801);
    // Where people reach the app: replicas behind one load balancer share it.
    let origin =
        std::env::var("PUBLIC_ORIGIN").unwrap_or_else(|_| format!("http://127.0.0.1:{port}"));
    let keys =
        idp::store::seal::Keyring::parse(&var("IDP_ENCRYPTION_KEYS")).expect("IDP_ENCRYPTION_KEYS");
    let store = PostgresStore::connect(&var("DATABASE_URL"))
        .await
        .expect("PostgreSQL")
        .with_keys(keys);
    // The demo's servers are on loopback; a deployment keeps the strict policy.
    let policy = match std::env::var("IDP_ALLOW_LOOPBACK").as_deref() {
        Ok("1") => idp::policy::Policy::LOOPBACK_DEV,
        _ => idp::policy::Policy::STRICT,
    };
    let settings = Settings {
        policy,
        client_info: idp::registration::ClientInfo {
            name: "idp native server".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            uri: None,
        },
        clients: Default::default(),
        callback_base: format!("{origin}/oauth/callback")
            .parse()
            .expect("callback URL"),
        profiles: Vec::new(),
        dpop: Default::default(),
        dpop_always: Vec::new(),
        device_origins: Default::default(),
    };
    let sessions =
        SessionKey::new(var("SESSION_SECRET").as_bytes()).expect("SESSION_SECRET of 32+ bytes");
    let app = Arc::new(App {
        idp: NativeIdp::with_store(settings, store),
        sessions,
        origin,
    });

    // Background refresh: every replica may run it; claims keep them apart.
    let background = app.clone();
    tokio::spawn(async move {
        background
            .idp
            .run_background_refresh(
                Duration::from_secs(30),
                |e| eprintln!("refresh: {} {} {:?}", e.owner, e.key, e.event),
                |e| eprintln!("background refresh: {e}"),
            )
            .await
    });

    let routes = routes(app);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    println!(
        "{}",
        json!({ "origin": format!("http://127.0.0.1:{port}") })
    );
    axum::serve(listener, routes).await.expect("serve");
}

/// The app's routes. Those that act with the user's credentials or change
/// their connections answer the app's own pages only: one layer over all
/// of them, so a route added there gets it.
fn routes(app: Arc<App>) -> Router {
    let acting = Router::new()
        .route("/oauth/login", get(login))
        .route("/api/call", get(call))
        .route("/api/mcp", post(mcp))
        .route("/api/providers", delete(remove))
        .route_layer(from_fn_with_state(app.clone(), own_pages_only));
    Router::new()
        .route("/", get(home))
        .route("/signin", get(sign_in))
        .route("/oauth/callback/{id}", get(callback))
        .route("/api/providers", get(providers))
        .merge(acting)
        .with_state(app)
}

/// An error as JSON: its kind, what happened, and, when the user must
/// connect (again), where to send them.
fn failure(e: idp::Error) -> Response {
    let status = StatusCode::from_u16(e.kind().status()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut body = json!({ "error": e.kind(), "message": e.to_string() });
    if let idp::Error::AuthorizationRequired(r) = &e {
        body["reauthorize_url"] = json!(format!("/oauth/login?url={}", encode(&r.resource)));
    }
    (status, Json(body)).into_response()
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The signed-in user, from the session cookie.
fn user(app: &App, headers: &HeaderMap) -> Option<String> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    let token = cookies
        .split(';')
        .find_map(|c| c.trim().strip_prefix("session="))?;
    app.sessions.verify(token, idp::native::now())
}

fn signed_out() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "error": "signed_out", "message": "sign in at /signin?user=NAME" })),
    )
        .into_response()
}

/// Whether the browser says another site made the request: a
/// `Sec-Fetch-Site` other than `same-origin` or `none` (a typed URL), or
/// an `Origin` other than the app's. A request that says nothing (a
/// client that is not a browser) is not.
fn from_another_site(app: &App, headers: &HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("?"));
    if let Some(site) = header("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return true;
        }
    }
    let origin = |u: &str| url::Url::parse(u).map(|u| u.origin());
    header("origin").is_some_and(|o| origin(o).ok() != origin(&app.origin).ok())
}

/// The layer over every route that acts with the user's credentials or
/// changes their connections: only the app's own pages reach them, so a
/// link, form or script on another site makes the server send nothing
/// and change nothing.
async fn own_pages_only(State(app): Shared, req: axum::extract::Request, next: Next) -> Response {
    if from_another_site(&app, req.headers()) {
        let body = json!({
            "error": "cross_site",
            "message": "this route acts with your credentials or changes your connections, and answers only this app's own pages",
        });
        return (StatusCode::FORBIDDEN, Json(body)).into_response();
    }
    next.run(req).await
}

/// Whether a URL's host is loopback.
fn loopback_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| {
        u.host()
            .is_some_and(|h| idp::policy::reach_host(&h) == idp::policy::Reach::Loopback)
    })
}

/// Whether a `Host` header (`host[:port]`, nothing else) is loopback.
fn loopback_host(authority: &str) -> bool {
    !authority.contains(['@', '/', '\\', '?', '#']) && loopback_url(&format!("http://{authority}"))
}

/// Whether the request reached the app on loopback, as in local
/// development: its `Host` is loopback, the app's public origin is too, and
/// no proxy forwarded it (`Forwarded`, `X-Forwarded-*`).
fn on_loopback(app: &App, headers: &HeaderMap) -> bool {
    let proxied = ["forwarded", "x-forwarded-for", "x-forwarded-host"]
        .iter()
        .any(|h| headers.contains_key(*h));
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .is_some_and(loopback_host);
    host && !proxied && loopback_url(&app.origin)
}

#[derive(Deserialize)]
struct SignIn {
    user: String,
}

/// A demo sign-in: any name, a signed cookie for a day, only on loopback
/// (404 elsewhere). A real app signs people in its own way and keeps using
/// their id as idp's owner.
async fn sign_in(State(app): Shared, headers: HeaderMap, Query(q): Query<SignIn>) -> Response {
    if !on_loopback(&app, &headers) {
        let body = json!({
            "error": "not_found",
            "message": "password-less sign-in exists only on loopback: put real sign-in in front of the app",
        });
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    }
    if idp::flow::accounts::check_user(&q.user).is_err() || q.user.is_empty() {
        return (StatusCode::BAD_REQUEST, "not a user id").into_response();
    }
    let token = app.sessions.sign(&q.user, idp::native::now() + 86_400);
    let cookie = format!("session={token}; Path=/; HttpOnly; SameSite=Lax");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

#[derive(Deserialize)]
struct Target {
    url: String,
    account: Option<String>,
    tool: Option<String>,
}

async fn login(State(app): Shared, headers: HeaderMap, Query(q): Query<Target>) -> Response {
    let Some(user) = user(&app, &headers) else {
        return signed_out();
    };
    let owner = match q.account.as_deref() {
        Some(label) => idp::flow::accounts::Owner::account(&user, label),
        None => idp::flow::accounts::Owner::user(&user),
    };
    let owner = match owner {
        Ok(o) => o,
        Err(e) => return failure(e),
    };
    match app.idp.connect(&owner, &q.url, None).await {
        Ok(LoginStart::Redirect(to)) => Redirect::to(to.as_str()).into_response(),
        Ok(LoginStart::Public(_)) => Redirect::to("/").into_response(),
        Err(e) => failure(e),
    }
}

async fn callback(State(app): Shared, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let Some(user) = user(&app, &headers) else {
        return signed_out();
    };
    let Ok(at) = url::Url::parse(&format!("{}{}", app.origin, uri)) else {
        return (StatusCode::BAD_REQUEST, "not a callback URL").into_response();
    };
    match app.idp.callback(&user, &at).await {
        Ok(_) => Redirect::to("/").into_response(),
        Err(e) => failure(e),
    }
}

/// An authed call: the user's token for the URL, refreshed and retried once
/// on a 401; a resource never connected (or a dead grant) answers 401 with
/// where to connect it.
async fn call(State(app): Shared, headers: HeaderMap, Query(q): Query<Target>) -> Response {
    let Some(user) = user(&app, &headers) else {
        return signed_out();
    };
    let mut fetch = app.idp.fetch(&user);
    if let Some(label) = q.account.as_deref() {
        fetch = fetch.account(label);
    }
    match fetch.get(&q.url).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            Json(json!({ "status": status, "body": body })).into_response()
        }
        Err(e) => failure(e),
    }
}

/// An MCP call as the user: lists the server's tools, or calls `tool`.
async fn mcp(State(app): Shared, headers: HeaderMap, Query(q): Query<Target>) -> Response {
    let Some(user) = user(&app, &headers) else {
        return signed_out();
    };
    let Ok(url) = q.url.parse() else {
        return failure(idp::Error::InvalidUrl {
            input: q.url,
            reason: "not a URL".into(),
        });
    };
    // Not connected yet: say where to connect it.
    match app.idp.authorization(&user, &q.url).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            let to = format!("/oauth/login?url={}", encode(&q.url));
            let body = json!({ "error": "authorization_required", "reauthorize_url": to });
            return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
        }
        Err(e) => return failure(e),
    }
    let fetch = app.idp.fetch(&user);
    let mut session = idp::mcp::Session::new(url);
    let answer = match session.connect(&fetch).await {
        Err(e) => Err(e),
        Ok(_) => match &q.tool {
            None => session.call(&fetch, "tools/list", json!({})).await,
            Some(tool) => {
                session
                    .call(
                        &fetch,
                        "tools/call",
                        json!({ "name": tool, "arguments": {} }),
                    )
                    .await
            }
        },
    };
    match answer {
        Ok(result) => Json(result).into_response(),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({ "error": "mcp", "message": e.to_string() })),
        )
            .into_response(),
    }
}

async fn providers(State(app): Shared, headers: HeaderMap) -> Response {
    let Some(user) = user(&app, &headers) else {
        return signed_out();
    };
    match app.idp.store().providers(&user).await {
        Ok(list) => Json(
            list.iter()
                .map(|p| json!({ "key": p.key.as_str(), "name": p.name, "account": p.account, "public": p.is_public(), "connected": p.is_public() || p.tokens().is_some() }))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => failure(e),
    }
}

async fn remove(State(app): Shared, headers: HeaderMap, Query(q): Query<Target>) -> Response {
    let Some(user) = user(&app, &headers) else {
        return signed_out();
    };
    let owner = match q.account.as_deref() {
        Some(label) => idp::flow::accounts::Owner::account(&user, label),
        None => idp::flow::accounts::Owner::user(&user),
    };
    let owner = match owner {
        Ok(o) => o,
        Err(e) => return failure(e),
    };
    match app.idp.remove(&owner, &q.url).await {
        Ok(r) => Json(json!({ "removed": r.provider.key.as_str(), "revoked": r.revoked.is_ok() }))
            .into_response(),
        Err(e) => failure(e),
    }
}

/// The user's page: what is connected, and forms to connect and call.
async fn home(State(app): Shared, headers: HeaderMap) -> Response {
    let Some(user) = user(&app, &headers) else {
        return axum::response::Html("<p><a href=\"/signin?user=alice\">Sign in as alice</a></p>")
            .into_response();
    };
    let list = app.idp.store().providers(&user).await.unwrap_or_default();
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('"', "&quot;")
    };
    let rows: String = list
        .iter()
        .map(|p| format!("<li>{} ({})</li>", esc(p.key.as_str()), esc(&p.name)))
        .collect();
    axum::response::Html(format!(
        "<h1>{}</h1><ul>{rows}</ul>\
         <form action=\"/oauth/login\"><input name=\"url\" placeholder=\"https://api.example.com/v1\"><button>Connect</button></form>\
         <form action=\"/api/call\"><input name=\"url\"><button>Call</button></form>",
        esc(&user)
    ))
    .into_response()
}
