use idp::worker::{Env, Request, Response};
use idp::workers::{AppContext, Error, IdpWorker};

#[idp::idp_worker]
struct App {
    label: String,
}


impl IdpWorker for App {
    fn user_id(&self, _req: &Request, _env: &Env) -> Option<String> {
        None
    }

    async fn fetch(&self, _req: Request, _cx: AppContext<'_>) -> Result<Response, Error> {
        Ok(Response::ok(self.label.clone())?)
    }
}

fn main() {}
