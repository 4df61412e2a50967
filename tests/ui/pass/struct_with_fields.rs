use idp::worker::{Env, Request, Response};
use idp::workers::{AppContext, Connected, Error, IdpWorker, ProviderInfo};

#[derive(Default)]
struct App {
    label: String,
}

#[idp::idp_worker]
#[derive(Clone)]
struct Other {
    n: u32,
}

impl Default for Other {
    fn default() -> Self {
        Other { n: 1 }
    }
}

impl IdpWorker for Other {
    async fn on_auth_success(&self, c: Connected<'_>) -> std::result::Result<ProviderInfo, String> {
        Ok(ProviderInfo {
            name: format!("{} #{}", c.resource_url, self.n),
            metadata: serde_json::Value::Null,
            account: None,
        })
    }

    fn user_id(&self, _req: &Request, _env: &Env) -> Option<String> {
        Some("user".into())
    }

    async fn fetch(&self, _req: Request, _cx: AppContext<'_>) -> Result<Response, Error> {
        Ok(Response::ok(App::default().label)?)
    }
}

fn main() {}
