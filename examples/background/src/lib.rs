//! Background access: a cron trigger and a queue consumer call an API as
//! each user, with no request from that user in flight.
//!
//! The user's Durable Object keeps every token fresh with its own alarm, so
//! `Background` finds a valid token even after weeks without traffic.
//! When a grant no longer works, the answer is an error that says so (the
//! user must connect again; `IdpWorker::on_event` heard
//! `NeedsReauthorization` when it happened), and the job is dropped rather
//! than retried.
//!
//! `wrangler.toml` for this Worker adds, besides the usual Durable Object
//! binding:
//!
//! ```toml
//! [triggers]
//! crons = ["*/30 * * * *"]
//!
//! [[queues.consumers]]
//! queue = "sync-jobs"
//! ```

use idp::worker::{Env, Request, Response};
use idp::workers::{AppContext, Background, Error, IdpWorker, Session};
use serde::Deserialize;
use worker::{event, Context, MessageBatch, MessageExt};

/// The API the jobs call.
const API: &str = "https://api.example.com/v1/items";

// The Worker's fetch entry point and the `OAuthProviders` Durable Object, as
// in the quick start; the scheduled and queue handlers below sit beside them.
#[idp::idp_worker(name = "Background example", version = "1.0.0")]
struct App;

impl IdpWorker for App {
    fn user_id(&self, req: &Request, env: &Env) -> Option<String> {
        Session::from_env(env).ok()?.user_id(req)
    }

    async fn fetch(&self, _req: Request, cx: AppContext<'_>) -> Result<Response, Error> {
        cx.fetch.get(API).await
    }
}

/// Calls the API as `user`, with every rule an in-request call has
/// (redirects by hand, the token only under its provider's prefix, one
/// refresh and retry); a user who must connect (again) is an error whose
/// report says `reauthorize`.
async fn call_as(env: &Env, user: &str, url: &str) -> Result<u16, Error> {
    let resp = Background::new(env, user)?.fetch().get(url).await?;
    Ok(resp.status_code())
}

/// Every 30 minutes: the API for each user listed in `SYNC_USERS`
/// (comma-separated; an app would read its own user table).
#[event(scheduled)]
async fn scheduled(_event: worker::ScheduledEvent, env: Env, _ctx: worker::ScheduleContext) {
    let users = env
        .var("SYNC_USERS")
        .map(|v| v.to_string())
        .unwrap_or_default();
    for user in users.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        match call_as(&env, user, API).await {
            Ok(status) => worker::console_log!("sync {user}: {status}"),
            Err(e) => worker::console_error!("sync {user}: {e}"),
        }
    }
}

/// One job: call `url` as `user`.
#[derive(Debug, Deserialize)]
struct Job {
    user: String,
    url: String,
}

/// A queue consumer: each job calls its URL as its user. A job whose user
/// must connect again is acknowledged (retrying cannot help); other failures
/// are retried by the queue.
#[event(queue)]
async fn queue(batch: MessageBatch<Job>, env: Env, _ctx: Context) -> worker::Result<()> {
    for message in batch.messages()? {
        let job = message.body();
        match call_as(&env, &job.user, &job.url).await {
            Ok(_) => message.ack(),
            Err(e) if e.report().reauthorize => {
                worker::console_warn!("job for {}: {e}", job.user);
                message.ack();
            }
            Err(e) => {
                worker::console_error!("job for {}: {e}", job.user);
                message.retry();
            }
        }
    }
    Ok(())
}
