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
//! Routes: `GET /signin?user=` (a demo sign-in: a signed cookie),
//! `GET /oauth/login?url=&account=`, `GET /oauth/callback/{id}`,
//! `GET /api/call?url=`, `POST /api/mcp?url=&tool=`, `GET /api/providers`,
//! `DELETE /api/providers?url=`, and `/` (what the user has connected).

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
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

    let routes = Router::new()
        .route("/", get(home))
        .route("/signin", get(sign_in))
        .route("/oauth/login", get(login))
        .route("/oauth/callback/{id}", get(callback))
        .route("/api/call", get(call))
        .route("/api/mcp", axum::routing::post(mcp))
        .route("/api/providers", get(providers).delete(remove))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    println!(
        "{}",
        json!({ "origin": format!("http://127.0.0.1:{port}") })
    );
    axum::serve(listener, routes).await.expect("serve");
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

/// Only the app's own pages may start a login or change connections (a
/// browser says where a request came from in `Sec-Fetch-Site`).
fn same_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v == "same-origin" || v == "none")
}

#[derive(Deserialize)]
struct SignIn {
    user: String,
}

/// A demo sign-in: any name, a signed cookie for a day. A real app signs
/// people in its own way and keeps using their id as idp's owner.
async fn sign_in(State(app): Shared, Query(q): Query<SignIn>) -> Response {
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
    if !same_site(&headers) {
        return (
            StatusCode::FORBIDDEN,
            "start a connection from the app's own page",
        )
            .into_response();
    }
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
    if !same_site(&headers) {
        return (
            StatusCode::FORBIDDEN,
            "change connections from the app's own page",
        )
            .into_response();
    }
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
