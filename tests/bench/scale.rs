//! Load beyond one caller: one busy user at 1, 8 and 64 concurrent callers,
//! many users each connecting once and calling, and a user with 10,000
//! providers listing them.

use crate::{load, percentile, row, Row};
use idp_tests::{join_all, urlencode, App, Worker};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// One user's authed calls at 1, 8 and 64 concurrent callers, beside the
/// no-op object call and the plain fetch at 64 (the two ceilings).
pub async fn busy_user(
    rows: &mut Vec<Row>,
    worker: &Worker,
    user: &App,
    items: &str,
    quick: bool,
) -> Value {
    let client = user.browser.client();
    let authed = format!("{}/api/fetch?url={}", worker.origin, urlencode(items));
    let plain = format!("{}/api/plain-fetch?url={}", worker.origin, urlencode(items));
    let noop = format!("{}/api/debug/calls", worker.origin);
    let slice = Duration::from_millis(if quick { 1000 } else { 4000 });
    let mut levels = Vec::new();
    for callers in [1usize, 8, 64] {
        let (lat, errors, took) = load(client, &authed, callers, slice).await;
        let rps = lat.len() as f64 / took.as_secs_f64();
        let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
        rows.push(
            row(
                &format!("one user, {callers} concurrent callers: req/s, p50 / p99 ms"),
                format!("{rps:.0}, {p50:.1} / {p99:.1}"),
                "-",
                None,
            )
            .limited_by("2 cores shared by workerd, the API and the load generator"),
        );
        levels.push(json!({ "callers": callers, "rps": rps, "p50_ms": p50, "p99_ms": p99, "errors": errors }));
    }
    let (lat, _, took) = load(client, &noop, 64, slice).await;
    let noop_rps = lat.len() as f64 / took.as_secs_f64();
    let (lat, _, took) = load(client, &plain, 64, slice).await;
    let plain_rps = lat.len() as f64 / took.as_secs_f64();
    rows.push(
        row(
            "  ceilings at 64: no-op object call / plain fetch req/s",
            format!("{noop_rps:.0} / {plain_rps:.0}"),
            "-",
            None,
        )
        .limited_by("an authed call needs both"),
    );
    json!({ "levels": levels, "noop_object_call_rps_64": noop_rps, "plain_fetch_rps_64": plain_rps })
}

/// `n` users, `parallel` at a time, each signing in, connecting `api` once
/// and calling `items`: the run's time, workerd's memory before and after,
/// and the size of each user's object's database.
pub async fn many_users(
    rows: &mut Vec<Row>,
    worker: &Worker,
    api: &str,
    items: &str,
    n: usize,
) -> Value {
    let parallel = 8;
    let rss_before = worker.workerd_rss();
    let start = Instant::now();
    let mut failures = 0;
    let mut connect_ms = Vec::new();
    let mut database = Vec::new();
    for batch in (0..n).collect::<Vec<_>>().chunks(parallel) {
        let results = join_all(
            batch
                .iter()
                .map(|i| async move {
                    let user = App::sign_in(worker, &format!("many{i}")).await;
                    let t = Instant::now();
                    let (status, _) = user.connect(api).await;
                    let took = t.elapsed();
                    let (called, _) = user.fetch(items).await;
                    let (_, stats) = user.json("/api/debug/calls").await;
                    let bytes = stats["database_bytes"].as_u64().unwrap_or(0);
                    (status == 200 && called == 200, took, bytes)
                })
                .collect(),
        )
        .await;
        for (ok, took, bytes) in results {
            failures += usize::from(!ok);
            connect_ms.push(took);
            database.push(bytes);
        }
    }
    let took = start.elapsed();
    connect_ms.sort();
    let rss_after = worker.workerd_rss();
    database.sort_unstable();
    let per_user = database.get(database.len() / 2).copied().unwrap_or(0);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    rows.push(
        row(
            &format!("{n} users connect once and call: total s, login p50 ms, failures"),
            format!(
                "{:.1}, {:.0}, {failures}",
                took.as_secs_f64(),
                percentile(&connect_ms, 0.5)
            ),
            "0 failures",
            Some(failures == 0),
        )
        .limited_by("oidc-provider's login and consent pages"),
    );
    rows.push(
        row(
            &format!("  workerd memory before / after {n} users (MiB)"),
            format!("{:.0} / {:.0}", mib(rss_before), mib(rss_after)),
            "-",
            None,
        )
        .limited_by("every object stays live in wrangler dev"),
    );
    rows.push(
        row(
            "  database size of a user's object, median (bytes)",
            per_user,
            "-",
            None,
        )
        .limited_by("one 4 KB page per table, nearly all empty"),
    );
    json!({
        "users": n, "parallel": parallel, "seconds": took.as_secs_f64(), "failures": failures,
        "login_p50_ms": percentile(&connect_ms, 0.5),
        "workerd_rss_bytes_before": rss_before, "workerd_rss_bytes_after": rss_after,
        "database_bytes_per_user_median": per_user,
    })
}

/// Listing a user's 10,000 providers: all in one reply, and one page.
pub async fn listing(rows: &mut Vec<Row>, worker: &Worker, user: &App, n: usize) -> Value {
    let client = user.browser.client();
    let time = |url: String| async move {
        let t = Instant::now();
        let resp = client.get(&url).send().await.expect("listing");
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap_or_default();
        (status, body.len(), t.elapsed(), body)
    };
    let all_url = format!("{}/api/providers", worker.origin);
    let page_url = format!("{}/api/providers?limit=100", worker.origin);
    let (status, all_bytes, all_time, body) = time(all_url).await;
    let listed = serde_json::from_slice::<Vec<Value>>(&body)
        .map(|v| v.len())
        .unwrap_or(0);
    assert_eq!((status, listed), (200, n), "listing {n} providers");
    let (status, page_bytes, page_time, body) = time(page_url.clone()).await;
    let page: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert_eq!(status, 200, "a page: {page}");
    // The last page, reached from the one before it: a page's cost does not
    // grow with how far into the list it is.
    let last_after = page["providers"][99]["resource_url"]
        .as_str()
        .map(str::to_owned);
    let mut times = vec![page_time];
    if let Some(after) = last_after {
        let (_, _, t, _) = time(format!("{page_url}&after={}", urlencode(&after))).await;
        times.push(t);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    rows.push(
        row(
            &format!("list {n} providers in one reply: ms, KB"),
            format!("{:.0}, {}", ms(all_time), all_bytes / 1000),
            "-",
            None,
        )
        .limited_by("one reply carries every provider: paginate"),
    );
    rows.push(
        row(
            "  one page of 100 (?limit=100): ms, KB",
            format!("{:.1}, {}", ms(page_time), page_bytes / 1000),
            "-",
            None,
        )
        .limited_by("read from the key index, whatever the page"),
    );
    json!({
        "providers": n, "all_ms": ms(all_time), "all_bytes": all_bytes,
        "page_size": 100, "page_ms": times.iter().map(|t| ms(*t)).collect::<Vec<_>>(), "page_bytes": page_bytes,
    })
}
