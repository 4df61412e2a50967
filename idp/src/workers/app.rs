//! The app a `#[idp_worker]` struct describes.

use super::config::Config;
use super::error::Error;
use super::fetch::AuthedFetch;
use super::handler::Handler;
use super::hook::{Connected, OnAuthSuccess, ProviderInfo};
use worker::{Env, Request, Response};

/// What your Worker does; implemented on the struct marked `#[idp_worker]`.
///
/// The generated entry point builds the configuration (from the macro's
/// arguments, then [`IdpWorker::configure`]), asks [`IdpWorker::user_id`] who
/// is signed in, runs the OAuth middleware for that user, and hands every
/// other request to [`IdpWorker::fetch`] with a ready [`AuthedFetch`] and the
/// handler API. Requests without a user go to [`IdpWorker::anonymous`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is marked #[idp_worker] but does not implement `idp::workers::IdpWorker`",
    note = "add `impl idp::workers::IdpWorker for {Self} {{ fn user_id(..) .. async fn fetch(..) .. }}`"
)]
pub trait IdpWorker: Sized + 'static {
    /// The signed-in user's id (from your session), or `None`.
    fn user_id(&self, req: &Request, env: &Env) -> Option<String>;

    /// Handles a signed-in user's request that is not one of the SDK's routes.
    ///
    /// An error is answered with its [`Error::to_response`] (so `?` on an
    /// [`AuthedFetch`] call answers `authorization_required` with the URL
    /// that connects the resource); `worker::Error`s convert with `?` too.
    #[allow(async_fn_in_trait)]
    async fn fetch(&self, req: Request, cx: AppContext<'_>) -> Result<Response, Error>;

    /// Handles a request with no signed-in user. The default answers 401.
    #[allow(async_fn_in_trait)]
    async fn anonymous(&self, req: Request, env: &Env) -> worker::Result<Response> {
        let _ = (req, env);
        Ok(Response::from_json(&serde_json::json!({
            "error": "not_signed_in",
            "message": "sign in first"
        }))?
        .with_status(401))
    }

    /// Names a just-connected resource and attaches metadata; runs in the
    /// user's Durable Object after the tokens are stored (an error is shown
    /// to the person and loses nothing). The default names it by its host,
    /// with no metadata. See [`OnAuthSuccess`] and
    /// [`mcp_provider_info`](super::mcp_provider_info) for MCP servers.
    #[allow(async_fn_in_trait)]
    async fn on_auth_success(&self, connected: Connected<'_>) -> Result<ProviderInfo, String> {
        Ok(ProviderInfo::default_for(connected.resource_url))
    }

    /// Hears a lifecycle event ([`super::Event`]: connected, refreshed, a
    /// refresh failed, needs re-authorization, recovered, removed, revoked),
    /// in the user's Durable Object; for example, to email the person when a
    /// connection breaks. The default does nothing.
    #[allow(async_fn_in_trait)]
    async fn on_event(&self, event: &super::Event, env: &Env) {
        let _ = (event, env);
    }

    /// Adjusts the configuration for a request: add pre-registered clients
    /// (reading secrets from `env`), a client ID metadata document URL, ...
    /// The default returns it unchanged.
    fn configure(&self, config: Config, env: &Env) -> Config {
        let _ = env;
        config
    }
}

/// The [`OnAuthSuccess`] hook of an [`IdpWorker`]: its `on_auth_success`
/// (what the `#[idp_worker]` object runs).
#[derive(Debug, Clone, Copy, Default)]
pub struct AppHook<A>(pub A);

impl<A: IdpWorker> OnAuthSuccess for AppHook<A> {
    async fn on_auth_success(&self, connected: Connected<'_>) -> Result<ProviderInfo, String> {
        IdpWorker::on_auth_success(&self.0, connected).await
    }

    async fn on_event(&self, event: &super::Event, env: &Env) {
        IdpWorker::on_event(&self.0, event, env).await;
    }
}

/// What a signed-in request is handled with.
#[derive(Debug)]
#[non_exhaustive]
pub struct AppContext<'a> {
    /// The Worker's environment.
    pub env: &'a Env,
    /// The Worker's execution context.
    pub ctx: &'a worker::Context,
    /// The signed-in user.
    pub user_id: &'a str,
    /// The handler API (providers, refresh, remove, login URLs).
    pub idp: &'a Handler,
    /// Authorized requests for this user.
    pub fetch: AuthedFetch<'a>,
}

/// Serves one request for an app (what the generated entry point calls).
pub async fn serve<A: IdpWorker>(
    app: &A,
    config: Config,
    req: Request,
    env: Env,
    ctx: worker::Context,
) -> worker::Result<Response> {
    // Profiles added by `configure` get their secrets too.
    let config = app
        .configure(config.with_env(&env), &env)
        .resolve_secrets(&env);
    if let Err(e) = config.refuse_problems() {
        return super::Error::from(e).to_response();
    }
    if let Err(e) = config.refuse_development_off_loopback(&req.url()?) {
        return super::Error::from(e).to_response();
    }
    if let Some(resp) = super::middleware::client_metadata_response(&config, &env, &req).await? {
        return Ok(resp);
    }
    let Some(user) = app.user_id(&req, &env).filter(|u| !u.trim().is_empty()) else {
        return app.anonymous(req, &env).await;
    };
    let handler = match Handler::new(&env, &config, &user, &req.url()?) {
        Ok(h) => h,
        Err(e) => return e.to_response(),
    };
    if let Some(resp) = handler.middleware(&req).await? {
        return Ok(resp);
    }
    let cx = AppContext {
        env: &env,
        ctx: &ctx,
        user_id: &user,
        idp: &handler,
        fetch: handler.fetcher(),
    };
    match app.fetch(req, cx).await {
        Ok(resp) => Ok(resp),
        Err(e) => e.to_response(),
    }
}
