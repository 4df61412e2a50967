use idp::worker::{Env, Request, Response};
use idp::workers::{AppContext, Error, IdpWorker, Session};

// Exports the `OAuthProviders` Durable Object (one per user, holding their
// credentials) and the Worker's entry point, with the OAuth routes at /oauth.
#[idp::idp_worker(name = "My app", version = "1.0.0")]
struct App;

impl IdpWorker for App {
    // Who the user is: a signed session cookie (key in the IDP_SESSION_KEY
    // secret), set by your sign-in route with `Session::set_cookie`. Never a
    // header or cookie that a request can simply claim.
    fn user_id(&self, req: &Request, env: &Env) -> Option<String> {
        Session::from_env(env).ok()?.user_id(req)
    }

    // `on_auth_success` is optional: the default names each connected
    // resource by its host; implement it to choose a name and metadata.

    // Every request except the SDK's routes under /oauth.
    async fn fetch(&self, _req: Request, cx: AppContext<'_>) -> Result<Response, Error> {
        // As this user: on 401 the SDK refreshes and retries once; if the user
        // must (re-)authorize, the error answers
        // 401 {"error":"authorization_required","reauthorize_url":...}.
        cx.fetch.get("https://api.example.com/v1/me").await
    }
}
