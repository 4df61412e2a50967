use idp::worker::{Env, Request, Response};
use idp::workers::{AppContext, Error, IdpWorker};

#[idp::idp_worker(
    name = "Demo",
    version = "1.0.0",
    prefix = "/auth",
    class = "Providers",
    binding = "PROVIDERS",
    base_url = "https://app.example.com",
    allow_insecure_loopback = false
)]
struct App;

// No `on_auth_success`: the default names providers by host.
impl IdpWorker for App {
    fn user_id(&self, req: &Request, _env: &Env) -> Option<String> {
        req.headers().get("x-user").ok().flatten()
    }

    async fn fetch(&self, _req: Request, cx: AppContext<'_>) -> Result<Response, Error> {
        cx.fetch.get("https://api.example.com/v1").await
    }
}

// The expansion adds no names to this module.
struct OAuthProviders;
fn fetch() {}

fn main() {
    let _ = (OAuthProviders, fetch);
}
