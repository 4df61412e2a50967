//! # idp
//!
//! A client-side OAuth 2 identity provider for apps that act for their users
//! against many protected APIs and MCP servers.
//!
//! This crate's core is a protocol engine with no I/O of its own: challenge
//! parsing, discovery (RFC 9728, RFC 8414, OpenID Connect Discovery), client
//! registration (RFC 7591, pre-registered clients, client ID metadata
//! documents), PKCE S256, authorization requests and callbacks (RFC 9207), token
//! exchange, refresh and revocation (RFC 7009), and longest-prefix URL matching.
//! Requests go out through the [`http::HttpClient`] trait; time and randomness
//! are passed in. The same code runs natively and in wasm.
//!
//! ## Contents
//!
//! | to ... | use |
//! |---|---|
//! | run an app on Cloudflare Workers with OAuth for its users | [`idp_worker`] (feature `workers`), then [`workers`]: `Handler`, `AuthedFetch`, `McpClient`, `Session` |
//! | run the same engine in a Rust program | [`native::NativeIdp`] (feature `native`; `native::SqliteStore` with feature `sqlite`) |
//! | send a request as a user: token, refresh and retry, step-up, redirects | `workers::AuthedFetch`, `native::AuthedFetch`; the rules themselves: [`fetch::Exchange`] |
//! | connect a resource, finish a callback | [`flow`] |
//! | get an `Authorization`, refreshing once however many callers | [`flow::Refresher`] |
//! | call an MCP server | [`mcp::Session`] (any runtime), `workers::McpClient` |
//! | find the provider for a URL | [`matching::ResourceKey`] |
//! | one protocol step on its own | [`challenge`], [`probe`], [`discovery`], [`registration`], [`pkce`], [`authorize`], [`callback`], [`token`] |
//! | keep state your own way | [`store::Store`] ([`store::memory::MemoryStore`] in memory, [`store::sql::SqlStore`] on any SQLite), checked by [`store::conformance::check`] |
//! | report an error the same way everywhere | [`Error::report`] → [`error::ErrorReport`] ([`error::ErrorKind`]) |
//! | sign sessions | [`session::SessionKey`] |
//!
//! ```
//! // The engine alone, with a scripted server: which provider serves a URL.
//! use idp::matching::{longest_match, ResourceKey};
//!
//! let stored = [ResourceKey::parse("https://api.example.com/v1")?];
//! let url = ResourceKey::parse("https://api.example.com/v1/items/7")?;
//! assert_eq!(longest_match(&url, &stored), Some(&stored[0]));
//! # Ok::<(), idp::Error>(())
//! ```
//!
//! The layers and the life of a login and of an authed call are described in
//! the repository's `ARCHITECTURE.md`.
#![warn(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]
#![forbid(unsafe_code)]

pub mod authorize;
pub mod callback;
pub mod challenge;
pub mod client;
pub mod discovery;
pub mod dpop;
mod encoding;
pub mod error;
pub mod fetch;
pub mod flow;
pub mod http;
pub mod issuer;
pub mod jws;
pub mod matching;
pub mod mcp;
pub mod pkce;
pub mod policy;
pub mod probe;
pub mod profile;
pub mod registration;
pub mod scope;
pub mod secret;
pub mod session;
pub mod settings;
pub mod store;
pub mod token;

#[cfg(feature = "native")]
pub mod native;

#[cfg(test)]
mod testing;

pub use error::{Error, Result};

#[cfg(feature = "workers")]
pub mod workers;

/// Turns a struct into a Cloudflare Worker with the OAuth identity provider
/// wired in (feature `workers`).
///
/// On `struct App;` (or any non-generic struct; one with fields must
/// implement `Default`) it generates, inside a `const _` block that adds no
/// names to your module:
/// - the Durable Object class (default name `OAuthProviders`; set `class` to
///   match `class_name` in wrangler.toml), whose objects hold each user's
///   credentials and call your [`workers::IdpWorker::on_auth_success`] (a
///   defaulted method) when a resource is connected;
/// - the Worker `fetch` entry point: configuration, user id from
///   [`workers::IdpWorker::user_id`], the OAuth middleware, then your
///   [`workers::IdpWorker::fetch`] with an [`workers::AuthedFetch`].
///
/// Arguments, all optional: `name` and `version` (the client's name and
/// version at authorization servers; default: your crate's), `prefix`
/// (default `"/oauth"`), `class` (default `"OAuthProviders"`), `binding` (the
/// Durable Object binding; default: the class name), `base_url` (default: each
/// request's origin), `allow_insecure_loopback` (default `false`; development
/// only, also settable with the `IDP_ALLOW_INSECURE_LOOPBACK` variable).
/// Pre-registered clients and other settings that need secrets go in
/// [`workers::IdpWorker::configure`].
///
/// **A split deployment.** By default one script exports both, and every
/// place that loads it (where the Worker answers, where an object runs) loads
/// all the code. Built twice, once with idp's feature `worker-script` (the
/// entry point only) and once with `objects-script` (the class only), each
/// script carries its half: the Worker's binding names the objects' script
/// (`script_name`), which holds the class's migrations and the
/// `IDP_ENCRYPTION_KEYS` secret. The example app has both configurations
/// (`examples/app/split/`); `docs/deploy.md` walks through it.
///
/// Your crate needs no dependency besides `idp`: the expansion reaches
/// `worker` and `wasm-bindgen` through `idp`. (Naming `worker` types such as
/// `Request` in your own code is easiest with `use idp::worker;`.)
///
/// ```no_run
/// use idp::worker::{Env, Request, Response};
/// use idp::workers::{AppContext, Error, IdpWorker, Session};
///
/// #[idp::idp_worker(name = "My app", version = "1.0.0")]
/// struct App;
///
/// impl IdpWorker for App {
///     fn user_id(&self, req: &Request, env: &Env) -> Option<String> {
///         Session::from_env(env).ok()?.user_id(req)
///     }
///
///     async fn fetch(&self, _req: Request, cx: AppContext<'_>) -> Result<Response, Error> {
///         cx.fetch.get("https://api.example.com/v1/me").await
///     }
/// }
/// ```
#[cfg(feature = "workers")]
pub use idp_macros::idp_worker;

/// The Workers SDK this crate is built on, for naming its types.
#[cfg(feature = "workers")]
pub use worker;

/// `#[idp_worker]`'s Durable Object class: kept unless this build is only the
/// Worker's script of a split deployment (feature `worker-script`).
#[cfg(all(
    feature = "workers",
    any(feature = "objects-script", not(feature = "worker-script"))
))]
#[doc(hidden)]
#[macro_export]
macro_rules! __idp_objects {
    ($($item:tt)*) => { $($item)* };
}

#[cfg(all(
    feature = "workers",
    not(any(feature = "objects-script", not(feature = "worker-script")))
))]
#[doc(hidden)]
#[macro_export]
macro_rules! __idp_objects {
    ($($item:tt)*) => {};
}

/// `#[idp_worker]`'s entry point: kept unless this build is only the objects'
/// script of a split deployment (feature `objects-script`).
#[cfg(all(
    feature = "workers",
    any(feature = "worker-script", not(feature = "objects-script"))
))]
#[doc(hidden)]
#[macro_export]
macro_rules! __idp_entry {
    ($($item:tt)*) => { $($item)* };
}

#[cfg(all(
    feature = "workers",
    not(any(feature = "worker-script", not(feature = "objects-script")))
))]
#[doc(hidden)]
#[macro_export]
macro_rules! __idp_entry {
    ($($item:tt)*) => {};
}

#[cfg(feature = "workers")]
#[doc(hidden)]
pub mod __private {
    pub use url;
    pub use worker;

    use worker::wasm_bindgen::JsValue;
    use worker::worker_sys::{web_sys, Context};

    /// The Durable Object's `fetch`, as the generated class exports it.
    pub async fn object_fetch<H: crate::workers::OnAuthSuccess>(
        object: &crate::workers::ProvidersObject<H>,
        req: web_sys::Request,
    ) -> Result<JsValue, JsValue> {
        std::panic::AssertUnwindSafe(async move {
            object
                .fetch(req.into())
                .await
                .map(web_sys::Response::from)
                .map(JsValue::from)
                .map_err(JsValue::from)
        })
        .await
    }

    /// The Durable Object's `alarm`, as the generated class exports it.
    pub async fn object_alarm<H: crate::workers::OnAuthSuccess>(
        object: &crate::workers::ProvidersObject<H>,
    ) -> Result<JsValue, JsValue> {
        std::panic::AssertUnwindSafe(async move {
            object
                .alarm()
                .await
                .map(|()| JsValue::UNDEFINED)
                .map_err(JsValue::from)
        })
        .await
    }

    /// The Worker's `fetch`, as the generated entry point exports it.
    pub async fn serve<A: crate::workers::IdpWorker>(
        app: A,
        config: crate::workers::Config,
        req: web_sys::Request,
        env: worker::Env,
        ctx: Context,
    ) -> Result<JsValue, JsValue> {
        std::panic::AssertUnwindSafe(async move {
            let ctx = worker::Context::new(ctx);
            let resp = match crate::workers::serve(&app, config, req.into(), env, ctx).await {
                Ok(r) => r,
                Err(e) => {
                    worker::console_error!("{e}");
                    worker::Response::error("internal error", 500).map_err(JsValue::from)?
                }
            };
            Ok(JsValue::from(web_sys::Response::from(resp)))
        })
        .await
    }
}
