//! The example's relay routes in workerd against an upstream whose answer
//! never stops (`tests/servers/endless.mjs`): each relays at most the relay
//! cap (`IDP_RELAY_MAX_BYTES`, here 1 MiB), then ends the answer and the
//! upstream request, and the app answers the next call at once.
//!
//! How a cut answer ends for the caller is workerd's: it closes a response
//! whose body stream errors as if it were whole (workerd issue 6818), so the
//! cut shows here as exactly the cap's bytes and as the error in the
//! Worker's log, not as a transport error.

use idp_tests::{state_dir, urlencode, App, Process, Worker};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The relay cap the Worker runs with here.
const CAP: u64 = 1 << 20;
/// The endless server's chunk.
const CHUNK: u64 = 64 << 10;
/// What the upstream may have written before it saw the relay go away:
/// the cap, and what the sockets and the runtime buffer, far below the
/// server's own bound of 512 MiB.
const UPSTREAM_BOUND: u64 = 64 << 20;

/// How a relayed answer went.
#[derive(Debug)]
struct Drained {
    status: u16,
    bytes: u64,
    /// The body ended as a whole body does (rather than with a transport
    /// error): workerd ends an errored stream so.
    clean_end: bool,
    took: Duration,
}

/// Reads a relayed answer to its end, or stops (as a failure to report)
/// well past the cap, so a relay without a cap fails fast instead of
/// reading the upstream's 512 MiB.
async fn drain(resp: reqwest::Response, started: Instant) -> Drained {
    let status = resp.status().as_u16();
    let mut resp = resp;
    let mut bytes = 0;
    let clean_end = loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                bytes += c.len() as u64;
                if bytes > CAP + (4 << 20) {
                    break false;
                }
            }
            Ok(None) => break true,
            Err(_) => break false,
        }
    };
    Drained {
        status,
        bytes,
        clean_end,
        took: started.elapsed(),
    }
}

async fn upstream_log(origin: &str) -> Vec<Value> {
    let log: Value = reqwest::get(format!("{origin}/__log"))
        .await
        .expect("endless server reachable")
        .json()
        .await
        .expect("its log is JSON");
    log["streams"].as_array().expect("streams").clone()
}

/// Waits until the upstream's `n`th endless answer has ended because the
/// relay went away, and returns its log entry.
async fn upstream_ended(origin: &str, n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let streams = upstream_log(origin).await;
        if let Some(s) = streams.get(n) {
            if s["closed"] == true || s["finished"] == true || Instant::now() > deadline {
                return s.clone();
            }
        } else if Instant::now() > deadline {
            panic!("the upstream saw no endless request #{n}: {streams:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many times the Worker's log says a relayed answer was cut at the cap.
fn cuts_logged(worker: &Worker) -> usize {
    let needle = format!("the relayed answer passed {CAP} bytes and was cut there");
    std::fs::read_to_string(&worker.log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&needle))
        .count()
}

/// Waits (up to 5 s) until the Worker's log tells of more cuts than `before`.
async fn cut_logged_after(worker: &Worker, before: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if cuts_logged(worker) > before {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The checks after an endless answer through one route: it ended soon
/// after the cap and no later, cut by the relay (the Worker's log says so),
/// the upstream request ended with it, and a normal call answers 200
/// within a second.
async fn assert_cut_and_answering(
    route: &str,
    drained: &Drained,
    (worker, cuts_before): (&Worker, usize),
    app: &App,
    upstream: &str,
    n: usize,
) {
    eprintln!(
        "{route}: {} {} bytes in {:?}, then {}",
        drained.status,
        drained.bytes,
        drained.took,
        if drained.clean_end {
            "a clean end (workerd ends an errored stream so)"
        } else {
            "a transport error"
        }
    );
    assert_eq!(drained.status, 200, "{route}: {drained:?}");
    assert!(
        drained.bytes <= CAP + CHUNK,
        "{route}: at most the cap (and one chunk) relayed: {drained:?}"
    );
    assert!(
        drained.bytes >= CAP / 2,
        "{route}: the answer was relayed up to the cap: {drained:?}"
    );
    assert!(
        drained.took < Duration::from_secs(5),
        "{route}: the answer ended soon, not at the upstream's timeout: {drained:?}"
    );
    assert!(
        cut_logged_after(worker, cuts_before).await,
        "{route}: the Worker's log tells of the cut ({})",
        worker.log.display()
    );
    let entry = upstream_ended(upstream, n).await;
    eprintln!("{route}: upstream {entry}");
    assert_eq!(
        entry["closed"], true,
        "{route}: upstream request ended: {entry}"
    );
    assert!(
        entry["sent"].as_u64().unwrap() < UPSTREAM_BOUND,
        "{route}: the upstream stopped soon after the cap: {entry}"
    );
    answers_at_once(app, upstream, route).await;
}

/// A normal call through the app answers 200 within a second.
async fn answers_at_once(app: &App, upstream: &str, after: &str) {
    let started = Instant::now();
    let (status, body) = app.fetch(&format!("{upstream}/ok")).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "after {after}: {body}");
    assert_eq!(body["ok"], true, "after {after}: {body}");
    assert!(
        took < Duration::from_secs(1),
        "after {after}: the next call took {took:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn endless_answers_are_cut_at_the_relay_cap_and_the_app_answers_at_once() {
    let server = Process::start("endless", "node", &["tests/servers/endless.mjs"]);
    let upstream = server.field("origin");
    let worker = Worker::start_with(
        &state_dir("relay"),
        &[("IDP_RELAY_MAX_BYTES", &CAP.to_string())],
    );
    let alice = App::sign_in(&worker, "alice").await;
    answers_at_once(&alice, &upstream, "start").await;
    let endless = urlencode(&format!("{upstream}/endless"));
    let client = alice.browser.client();
    let same_origin = |r: reqwest::RequestBuilder| r.header("sec-fetch-site", "same-origin");

    // GET /api/fetch: the person's call, streamed through.
    let cuts = cuts_logged(&worker);
    let started = Instant::now();
    let resp = same_origin(client.get(format!("{}/api/fetch?url={endless}", worker.origin)))
        .send()
        .await
        .expect("app reachable");
    let drained = drain(resp, started).await;
    assert_cut_and_answering(
        "/api/fetch",
        &drained,
        (&worker, cuts),
        &alice,
        &upstream,
        0,
    )
    .await;

    // ANY /api/forward: a POST with a body, forwarded.
    let cuts = cuts_logged(&worker);
    let started = Instant::now();
    let resp = same_origin(client.post(format!("{}/api/forward?url={endless}", worker.origin)))
        .header("content-type", "text/plain")
        .body("a forwarded body")
        .send()
        .await
        .expect("app reachable");
    let drained = drain(resp, started).await;
    assert_cut_and_answering(
        "/api/forward",
        &drained,
        (&worker, cuts),
        &alice,
        &upstream,
        1,
    )
    .await;

    // GET /api/background-fetch: the same call as a background job makes it.
    let cuts = cuts_logged(&worker);
    let started = Instant::now();
    let resp = same_origin(client.get(format!(
        "{}/api/background-fetch?url={endless}",
        worker.origin
    )))
    .send()
    .await
    .expect("app reachable");
    let drained = drain(resp, started).await;
    assert_cut_and_answering(
        "/api/background-fetch",
        &drained,
        (&worker, cuts),
        &alice,
        &upstream,
        2,
    )
    .await;

    // POST /api/mcp: an MCP server whose event stream never brings the
    // answer. The relay reads each answer whole, through the body cap
    // (`IDP_MAX_BODY_BYTES`, 8 MiB by default), and answers 502 past it.
    let started = Instant::now();
    let mcp = urlencode(&format!("{upstream}/mcp"));
    let resp = same_origin(client.post(format!("{}/api/mcp?url={mcp}", worker.origin)))
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .expect("app reachable");
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    eprintln!("/api/mcp: {status} in {:?}: {body}", started.elapsed());
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "invalid_response", "{body}");
    let entry = upstream_ended(&upstream, 3).await;
    eprintln!("/api/mcp: upstream {entry}");
    assert_eq!(entry["path"], "/mcp", "{entry}");
    assert_eq!(
        entry["closed"], true,
        "/api/mcp: upstream request ended: {entry}"
    );
    assert!(
        entry["sent"].as_u64().unwrap() < UPSTREAM_BOUND,
        "/api/mcp: the upstream stopped soon after the body cap: {entry}"
    );
    answers_at_once(&alice, &upstream, "/api/mcp").await;

    // An answer that declares a length over the cap is refused before any
    // of it is relayed: 502, at once, and the upstream request ends.
    let started = Instant::now();
    let declared = urlencode(&format!("{upstream}/endless?declare={}", 512u64 << 20));
    let resp = same_origin(client.get(format!("{}/api/fetch?url={declared}", worker.origin)))
        .send()
        .await
        .expect("app reachable");
    let status = resp.status().as_u16();
    let body: Value = match resp.json().await {
        Ok(v) => v,
        Err(_) => panic!("a declared length over the cap: not the JSON error ({status})"),
    };
    let took = started.elapsed();
    eprintln!("declared: {status} in {took:?}: {body}");
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "invalid_response", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("more than the relay cap of {CAP} bytes")),
        "{body}"
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
    let entry = upstream_ended(&upstream, 4).await;
    eprintln!("declared: upstream {entry}");
    assert_eq!(entry["closed"], true, "{entry}");
    assert!(entry["sent"].as_u64().unwrap() < UPSTREAM_BOUND, "{entry}");
    answers_at_once(&alice, &upstream, "a declared length over the cap").await;

    // Several at once, then the app still answers at once.
    let started = Instant::now();
    let many: Vec<_> = (0..4)
        .map(|_| {
            let req = same_origin(client.get(format!("{}/api/fetch?url={endless}", worker.origin)));
            async move { drain(req.send().await.expect("app reachable"), started).await }
        })
        .collect();
    for d in idp_tests::join_all(many).await {
        assert_eq!(d.status, 200, "{d:?}");
        assert!(d.bytes <= CAP + CHUNK && d.bytes >= CAP / 2, "{d:?}");
    }
    answers_at_once(&alice, &upstream, "four at once").await;
    eprintln!(
        "workerd resident memory at the end: {} MiB",
        worker.workerd_rss() >> 20
    );
}
