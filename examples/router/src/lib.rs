//! idp in a Worker that already has its own entry point and `Router`,
//! without `#[idp_worker]`: the Durable Object is declared by hand around
//! [`ProvidersObject`], and the Worker's routes hand the SDK's paths to
//! [`Handler::middleware`] and use [`Handler::fetcher`] for authed calls.
//!
//! wrangler.toml binds the class as usual:
//! `bindings = [{ name = "OAuthProviders", class_name = "OAuthProviders" }]`.

use idp::workers::{
    client_metadata_response, Config, Connected, Handler, OnAuthSuccess, ProviderInfo,
    ProvidersObject, Session,
};
use worker::{
    durable_object, event, Context, DurableObject, Env, Request, Response, Result, Router, State,
};

/// Names providers for this app (the hook the object runs).
struct Names;

impl OnAuthSuccess for Names {
    async fn on_auth_success(&self, c: Connected<'_>) -> std::result::Result<ProviderInfo, String> {
        Ok(ProviderInfo::default_for(c.resource_url))
    }
}

/// The users' credentials: one object per user, declared by hand.
#[durable_object]
pub struct OAuthProviders(ProvidersObject<Names>);

impl DurableObject for OAuthProviders {
    fn new(state: State, env: Env) -> Self {
        Self(ProvidersObject::new(state, env, Names))
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        self.0.fetch(req).await
    }

    // Refreshes tokens before they lapse, with no request in flight.
    async fn alarm(&self) -> Result<Response> {
        self.0.alarm().await?;
        Response::empty()
    }
}

fn idp_config(env: &Env) -> Config {
    Config::new("Router app", "1.0.0").with_env(env)
}

/// The app's own entry point: the SDK's routes first, then the app's router.
#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let config = idp_config(&env);
    if let Some(resp) = client_metadata_response(&config, &env, &req).await? {
        return Ok(resp);
    }
    let user = Session::from_env(&env).ok().and_then(|s| s.user_id(&req));
    if let Some(user) = &user {
        let handler = match Handler::new(&env, &config, user, &req.url()?) {
            Ok(h) => h,
            Err(e) => return e.to_response(),
        };
        if let Some(resp) = handler.middleware(&req).await? {
            return Ok(resp);
        }
    }
    Router::with_data(user)
        .get("/", |_, _| Response::ok("hello"))
        .get_async("/me", |req, ctx| async move {
            let Some(user) = ctx.data.as_deref() else {
                return Response::error("sign in first", 401);
            };
            let handler = match Handler::new(&ctx.env, &idp_config(&ctx.env), user, &req.url()?) {
                Ok(h) => h,
                Err(e) => return e.to_response(),
            };
            match handler.fetcher().get("https://api.example.com/v1/me").await {
                Ok(resp) => Ok(resp),
                Err(e) => e.to_response(),
            }
        })
        .run(req, env)
        .await
}
