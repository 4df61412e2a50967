use idp::workers::{Config, DefaultHook, Handler, ProvidersObject};
use worker::*;

// The Durable Object that holds each user's credentials (bound as
// `OAuthProviders` in wrangler.toml).
#[durable_object]
pub struct OAuthProviders(ProvidersObject<DefaultHook>);

impl DurableObject for OAuthProviders {
    fn new(state: State, env: Env) -> Self {
        Self(ProvidersObject::new(state, env, DefaultHook))
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        self.0.fetch(req).await
    }
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    // Your app decides who the user is (a session cookie, a JWT, ...).
    let Some(user) = req.headers().get("x-user-id")? else {
        return Response::error("sign in first", 401);
    };
    let config = Config::new("My app", "1.0.0").with_env(&env);
    let idp = match Handler::new(&env, &config, &user, &req.url()?) {
        Ok(idp) => idp,
        Err(e) => return e.to_response(),
    };
    // `/oauth/login?url=...` and `/oauth/callback` are handled here.
    if let Some(resp) = idp.middleware(&req).await? {
        return Ok(resp);
    }
    // Any other route: call a protected API as this user. On 401 the SDK
    // refreshes and retries once; if the user must (re-)authorize, the error
    // becomes 401 {"error":"authorization_required","reauthorize_url":...}.
    match idp.fetcher().get("https://api.example.com/v1/me").await {
        Ok(resp) => Ok(resp),
        Err(e) => e.to_response(),
    }
}
