//! The smallest Rust Worker built the way the example is (`worker` 0.8.7,
//! worker-build, the same release profile and post-processing): what the
//! benchmark compares the example's size and cold start with.

use worker::{event, Context, Env, Request, Response, Result};

/// Answers every request with `hello`.
#[event(fetch)]
async fn fetch(_req: Request, _env: Env, _ctx: Context) -> Result<Response> {
    Response::ok("hello")
}
