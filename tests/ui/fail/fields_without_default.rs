use idp::worker::{Env, Request, Response, Result};
use idp::workers::{AppContext, IdpWorker};

#[idp::idp_worker]
struct App {
    label: String,
}


impl IdpWorker for App {
    fn user_id(&self, _req: &Request, _env: &Env) -> Option<String> {
        None
    }

    async fn fetch(&self, _req: Request, _cx: AppContext<'_>) -> Result<Response> {
        Response::ok(self.label.clone())
    }
}

fn main() {}
