use idp::worker::{Env, Request, Response, Result};
use idp::workers::{AppContext, IdpWorker, OnAuthSuccess};

// Exports the `OAuthProviders` Durable Object (one per user, holding their
// credentials) and the Worker's entry point, with the OAuth routes at /oauth.
#[idp::idp_worker(name = "My app", version = "1.0.0")]
struct App;

// The default names each connected resource by its host. Implement
// `on_auth_success` to choose a name and attach metadata.
impl OnAuthSuccess for App {}

impl IdpWorker for App {
    // Your app decides who the user is (a session cookie, a JWT, ...).
    fn user_id(&self, req: &Request, _env: &Env) -> Option<String> {
        req.headers().get("x-user-id").ok().flatten()
    }

    // Every request except /oauth/login?url=... and /oauth/callback.
    async fn fetch(&self, _req: Request, cx: AppContext<'_>) -> Result<Response> {
        // As this user: on 401 the SDK refreshes and retries once; if the user
        // must (re-)authorize, this answers
        // 401 {"error":"authorization_required","reauthorize_url":...}.
        match cx.fetch.get("https://api.example.com/v1/me").await {
            Ok(resp) => Ok(resp),
            Err(e) => e.to_response(),
        }
    }
}
