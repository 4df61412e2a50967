//! The benchmark: builds the example app in release mode, runs it in workerd
//! (`wrangler dev`) with the local authorization server and API on loopback,
//! measures, prints a table and writes `target/bench/report.json`.
//!
//! `scripts/bench` runs it; `scripts/bench --quick` runs each measurement
//! briefly (the test command does, so it cannot rot). No figure fails the run:
//! each is printed beside its target.

mod cold;
mod native;
mod scale;
mod size;

use idp::matching::ResourceKey;
use idp::store::Provider;
use idp_tests::{
    join_all, repo_root, state_dir, urlencode, App, AuthServerOptions, Servers, Worker,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

struct Opts {
    quick: bool,
}

fn main() {
    // `bench --size-profile <wasm> <symbols>`: the code-size profile of a
    // build, as JSON (how tests/bench/size-baseline.json was made).
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, wasm, symbols] = args.as_slice() {
        if flag == "--size-profile" {
            let profile = size::profile(wasm.as_ref(), symbols.as_ref());
            println!("{}", serde_json::to_string_pretty(&profile).expect("JSON"));
            return;
        }
    }
    // `bench --readme`: the README's performance section from the last
    // report (scripts/bench-readme).
    if args.get(1).map(String::as_str) == Some("--readme") {
        write_readme();
        return;
    }
    let opts = Opts {
        quick: std::env::args().any(|a| a == "--quick"),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // `bench --native [--quick]`: the native runtime's rows only.
    if std::env::args().any(|a| a == "--native") {
        let mut rows = Vec::new();
        rt.block_on(async {
            let servers = Servers::start(AuthServerOptions::default());
            native::stores(&mut rows, &servers, opts.quick).await
        });
        print_table(&rows);
        return;
    }
    let report = rt.block_on(run(&opts));
    let dir = repo_root().join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    let path = dir.join("report.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report).expect("JSON"))
        .expect("write report");
    println!("\nwritten: {}", path.display());
}

/// Rewrites the README's performance section from `target/bench/report.json`
/// and keeps that report as `docs/bench-report.json` (which `tests/readme.rs`
/// checks the section against).
fn write_readme() {
    use idp_tests::report;
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("target/bench/report.json"))
        .expect("target/bench/report.json: run scripts/bench first");
    let parsed: Value = serde_json::from_str(&text).expect("report JSON");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let updated = report::replace_section(&readme, &report::render(&parsed))
        .expect("README.md has the bench markers");
    std::fs::write(root.join("docs/bench-report.json"), text).expect("docs/bench-report.json");
    std::fs::write(root.join("README.md"), updated).expect("README.md");
    println!("README.md: performance section written from target/bench/report.json");
}

/// `YYYY-MM-DD` (UTC) and the runtime's versions, for the report.
fn provenance() -> (String, String) {
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let version = |package: &str| {
        std::fs::read_to_string(repo_root().join(format!("node_modules/{package}/package.json")))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["version"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "?".into())
    };
    (
        date,
        format!(
            "wrangler {} / workerd {}, everything on 127.0.0.1",
            version("wrangler"),
            version("workerd")
        ),
    )
}

/// One row of the table: a figure, its target, whether it is met.
pub(crate) struct Row {
    name: String,
    value: String,
    target: String,
    met: Option<bool>,
    /// What limits the figure, where that is worth saying.
    limit: Option<&'static str>,
}

impl Row {
    /// Says what limits the figure (the README's last column).
    pub(crate) fn limited_by(mut self, limit: &'static str) -> Row {
        self.limit = Some(limit);
        self
    }
}

pub(crate) fn row(name: &str, value: impl ToString, target: &str, met: Option<bool>) -> Row {
    Row {
        name: name.into(),
        value: value.to_string(),
        target: target.into(),
        met,
        limit: None,
    }
}

fn print_table(rows: &[Row]) {
    let w0 = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.value.len()).max().unwrap_or(0);
    let w2 = rows.iter().map(|r| r.target.len()).max().unwrap_or(0);
    println!(
        "\n{:w0$}  {:>w1$}  {:w2$}  met",
        "measure", "value", "target"
    );
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        println!("{:w0$}  {:>w1$}  {:w2$}  {met}", r.name, r.value, r.target);
    }
}

fn gzip_len(path: &std::path::Path) -> u64 {
    let out = std::process::Command::new("gzip")
        .args(["-9", "-c"])
        .arg(path)
        .output()
        .expect("gzip");
    out.stdout.len() as u64
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "os": std::env::consts::OS,
    })
}

/// Latencies of a closed loop: `concurrency` clients each sending requests
/// back to back for `duration`.
pub(crate) async fn load(
    client: &reqwest::Client,
    url: &str,
    concurrency: usize,
    duration: Duration,
) -> (Vec<Duration>, usize, Duration) {
    let start = Instant::now();
    let deadline = start + duration;
    let clients = (0..concurrency).map(|_| async {
        let mut lat = Vec::new();
        let mut errors = 0;
        while Instant::now() < deadline {
            let t = Instant::now();
            match client.get(url).send().await {
                Ok(r) => {
                    let _ = r.bytes().await;
                    lat.push(t.elapsed());
                }
                Err(_) => errors += 1,
            }
        }
        (lat, errors)
    });
    let results = join_all(clients.collect()).await;
    let elapsed = start.elapsed();
    let mut all = Vec::new();
    let mut errors = 0;
    for (l, e) in results {
        all.extend(l);
        errors += e;
    }
    all.sort();
    (all, errors, elapsed)
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    client
        .get(url)
        .send()
        .await
        .expect("reachable")
        .json()
        .await
        .unwrap_or(Value::Null)
}

/// Requests the Worker and its objects made during a login: everything at the
/// API, and at the authorization server everything but the pages the
/// person's browser loads.
fn worker_requests(auth: &Value, resource: &Value) -> u64 {
    let browser = ["GET /auth", "GET /auth/:uid", "GET /interaction"];
    let at_auth: u64 = auth
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !browser.contains(&k.as_str()))
                .filter_map(|(_, v)| v.as_u64())
                .sum()
        })
        .unwrap_or(0);
    let at_resource: u64 = resource["requests"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    at_auth + at_resource
}

async fn reset(servers: &Servers) {
    let c = reqwest::Client::new();
    let _ = c.post(format!("{}/__stats", servers.issuer)).send().await;
    let _ = c.post(format!("{}/__stats", servers.origin)).send().await;
}

async fn counted_login(servers: &Servers, app: &App, resource: &str) -> u64 {
    reset(servers).await;
    let (status, page) = app.connect(resource).await;
    assert_eq!(status, 200, "login to {resource}: {page}");
    worker_requests(&servers.auth_stats().await, &servers.resource_stats().await)
}

/// A realistic nested resource URL; providers are spread over a few hosts.
fn synthetic_url(i: usize) -> String {
    format!(
        "https://api{}.example.com/v{}/orgs/org-{}/projects/{}",
        i % 7,
        i % 3,
        i % 101,
        i
    )
}

/// Providers with realistic nested URLs under a few hosts.
fn synthetic_providers(n: usize) -> Vec<Provider> {
    (0..n)
        .map(|i| {
            let url = synthetic_url(i);
            let key = ResourceKey::parse(&url).expect("valid synthetic URL");
            Provider {
                name: format!("provider {i}"),
                resource_url: url.clone(),
                resource: url,
                key,
                metadata: Value::Null,
                grant: None,
                created_at: 0,
                account: None,
            }
        })
        .collect()
}

/// The two scripts of the example's split deployment (`examples/app/split/`):
/// each carries only its half of the code.
fn split_sizes(rows: &mut Vec<Row>) -> Value {
    let mut out = json!({});
    for (half, option) in [("worker", "--split-worker"), ("objects", "--split-objects")] {
        let status = std::process::Command::new(repo_root().join("scripts/build-worker"))
            .arg(option)
            .status()
            .expect("scripts/build-worker");
        assert!(status.success(), "split build failed");
        let build = repo_root().join(format!("examples/app/build-split-{half}"));
        let gz = gzip_len(&build.join("index_bg.wasm")) + gzip_len(&build.join("index.js"));
        out[half] = json!({ "gzip_bytes": gz });
        rows.push(if half == "worker" {
            row(
                "bundle size gzip, split deployment: the Worker's script",
                format!("{} KB", gz / 1000),
                "<= 250 KB",
                Some(gz <= 250_000),
            )
            .limited_by("the routes, middleware and the app; no Durable Object code")
        } else {
            row(
                "bundle size gzip, split deployment: the objects' script",
                format!("{} KB", gz / 1000),
                "-",
                None,
            )
            .limited_by("the engine: discovery, registration, tokens, storage")
        });
    }
    out
}

async fn run(opts: &Opts) -> Value {
    let mut rows = Vec::new();
    let (date, runtime) = provenance();
    let mut report =
        json!({ "quick": opts.quick, "machine": machine(), "date": date, "runtime": runtime });

    // 1. Size.
    println!("==> building the example (release)");
    let status = std::process::Command::new(repo_root().join("scripts/build-worker"))
        .status()
        .expect("scripts/build-worker");
    assert!(status.success(), "build failed");
    let build = repo_root().join("examples/app/build");
    let wasm = build.join("index_bg.wasm");
    let js = build.join("index.js");
    let bytes = std::fs::metadata(&wasm).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(&js).map(|m| m.len()).unwrap_or(0);
    let gz = gzip_len(&wasm) + gzip_len(&js);
    rows.push(row(
        "bundle size (wasm + JS)",
        format!("{} KB", bytes / 1000),
        "-",
        None,
    ));
    rows.push(
        row(
            "bundle size gzip, one script (the default)",
            format!("{} KB", gz / 1000),
            "<= 250 KB",
            Some(gz <= 250_000),
        )
        .limited_by("code size: the two entry futures and the decoders (docs/performance.md)"),
    );
    let now = size::profile(&wasm, &repo_root().join("target/worker/app-build.symbols"));
    let before: Value = serde_json::from_str(size::BASELINE).expect("size baseline JSON");
    size::print(&before, &now);
    let split = split_sizes(&mut rows);
    report["size"] = json!({
        "bytes": bytes, "gzip_bytes": gz, "target_gzip_bytes": 250_000,
        "profile": now, "profile_before": before, "split": split,
    });

    println!("==> starting servers and the Worker");
    let servers = Servers::start(AuthServerOptions::default());
    let short = Servers::start(AuthServerOptions {
        access_ttl: Some(10),
        ..Default::default()
    });
    let worker = Worker::start_bench(&state_dir("bench"), &[("IDP_BENCH_ROUTES", "true")]);

    // 4. Login round trips.
    println!("==> login round trips");
    let alice = App::sign_in(&worker, "alice").await;
    let api = format!("{}/api", servers.origin);
    let first = counted_login(&servers, &alice, &api).await;
    let second_resource = counted_login(&servers, &alice, &format!("{}/v1", servers.origin)).await;
    let bob = App::sign_in(&worker, "bob").await;
    let second_user = counted_login(&servers, &bob, &api).await;
    rows.push(row(
        "login requests: first login to an issuer",
        first,
        "<= 6",
        Some(first <= 6),
    ));
    rows.push(row(
        "login requests: 2nd resource, same issuer",
        second_resource,
        "<= 3",
        Some(second_resource <= 3),
    ));
    rows.push(row(
        "login requests: 2nd user, same issuer",
        second_user,
        "<= 3",
        Some(second_user <= 3),
    ));
    report["login_requests"] =
        json!({ "first": first, "second_resource": second_resource, "second_user": second_user });

    // 2. Hot path.
    println!("==> hot path");
    let items = format!("{api}/items");
    let authed_url = format!("{}/api/fetch?url={}", worker.origin, urlencode(&items));
    let plain_url = format!(
        "{}/api/plain-fetch?url={}",
        worker.origin,
        urlencode(&items)
    );
    let client = alice.browser.client().clone();
    let (warm, _) = (
        load(&client, &authed_url, 2, Duration::from_millis(500)).await,
        load(&client, &plain_url, 2, Duration::from_millis(500)).await,
    );
    drop(warm);
    let duration = if opts.quick {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(10)
    };
    let concurrency = 8;
    // Interleaved rounds, so drift on a shared machine hits both alike.
    let rounds = if opts.quick { 2 } else { 5 };
    let slice = duration / rounds;
    let calls_url = format!("{}/api/debug/calls", worker.origin);
    let (mut authed, mut plain, mut noop) = (Vec::new(), Vec::new(), Vec::new());
    let (mut authed_err, mut plain_err) = (0, 0);
    let (mut authed_time, mut plain_time) = (Duration::ZERO, Duration::ZERO);
    let (mut calls, mut counter_reads) = (0u64, 0u64);
    for _ in 0..rounds {
        let before = get_json(&client, &calls_url).await["calls"]
            .as_u64()
            .unwrap_or(0);
        let (l, e, t) = load(&client, &authed_url, concurrency, slice).await;
        let after = get_json(&client, &calls_url).await["calls"]
            .as_u64()
            .unwrap_or(0);
        calls += after.saturating_sub(before);
        counter_reads += 1;
        authed.extend(l);
        authed_err += e;
        authed_time += t;
        let (l, e, t) = load(&client, &plain_url, concurrency, slice).await;
        plain.extend(l);
        plain_err += e;
        plain_time += t;
        // A Durable Object round trip that does nothing: the runtime's share.
        let (l, _, _) = load(&client, &calls_url, concurrency, slice / 4).await;
        noop.extend(l);
    }
    authed.sort();
    plain.sort();
    noop.sort();
    // Each counter read is itself one call.
    let round_trips = calls.saturating_sub(counter_reads) as f64 / authed.len().max(1) as f64;
    let rps = |n: usize, t: Duration| n as f64 / t.as_secs_f64();
    let (a_rps, p_rps) = (rps(authed.len(), authed_time), rps(plain.len(), plain_time));
    let (a50, a99, p50, p99) = (
        percentile(&authed, 0.5),
        percentile(&authed, 0.99),
        percentile(&plain, 0.5),
        percentile(&plain, 0.99),
    );
    let ratio = a50 / p50;
    rows.push(row(
        "hot path /api/fetch req/s",
        format!("{a_rps:.0}"),
        "-",
        None,
    ));
    rows.push(row(
        "hot path baseline req/s",
        format!("{p_rps:.0}"),
        "-",
        None,
    ));
    rows.push(row(
        "hot path p50 ms (authed / baseline)",
        format!("{a50:.2} / {p50:.2}"),
        "-",
        None,
    ));
    rows.push(row(
        "hot path p99 ms (authed / baseline)",
        format!("{a99:.2} / {p99:.2}"),
        "-",
        None,
    ));
    let n50 = percentile(&noop, 0.5);
    rows.push(row(
        "no-op Durable Object call p50 ms (runtime cost)",
        format!("{n50:.2}"),
        "-",
        None,
    ));
    rows.push(
        row(
            "hot path p50 ratio authed/baseline",
            format!("{ratio:.2}"),
            "<= 1.3",
            Some(ratio <= 1.3),
        )
        .limited_by("one Durable Object round trip per call, as slow as the upstream here"),
    );
    rows.push(row(
        "hot path req/s ratio baseline/authed",
        format!("{:.2}", p_rps / a_rps),
        "<= 1.3",
        Some(p_rps / a_rps <= 1.3),
    ));
    rows.push(row(
        "Durable Object round trips per authed call",
        format!("{round_trips:.2}"),
        "1",
        Some((round_trips - 1.0).abs() < 0.05),
    ));
    report["hot_path"] = json!({
        "concurrency": concurrency, "seconds": duration.as_secs_f64(),
        "authed": { "requests": authed.len(), "errors": authed_err, "rps": a_rps, "p50_ms": a50, "p99_ms": a99 },
        "baseline": { "requests": plain.len(), "errors": plain_err, "rps": p_rps, "p50_ms": p50, "p99_ms": p99 },
        "noop_object_call_p50_ms": n50,
        "p50_ratio": ratio, "rps_ratio": p_rps / a_rps, "object_round_trips_per_call": round_trips,
    });

    // 2a. One busy user at 1, 8 and 64 concurrent callers.
    println!("==> one busy user");
    report["busy_user"] = scale::busy_user(&mut rows, &worker, &alice, &items, opts.quick).await;

    // 2b. Hot path with the opt-in isolate token cache (30 s).
    println!("==> hot path with the isolate token cache");
    let cached = Worker::start_bench(
        &state_dir("bench-cache"),
        &[("IDP_BENCH_ROUTES", "true"), ("IDP_TOKEN_CACHE_SECS", "30")],
    );
    let carol = App::sign_in(&cached, "carol").await;
    let (status, page) = carol.connect(&api).await;
    assert_eq!(status, 200, "{page}");
    let c_authed = format!("{}/api/fetch?url={}", cached.origin, urlencode(&items));
    let c_plain = format!(
        "{}/api/plain-fetch?url={}",
        cached.origin,
        urlencode(&items)
    );
    let c_client = carol.browser.client().clone();
    load(&c_client, &c_authed, 2, Duration::from_millis(500)).await;
    load(&c_client, &c_plain, 2, Duration::from_millis(500)).await;
    // The same route on a public resource too: there the upstream does the
    // same work for both (no token to verify), so the ratio is the SDK's own.
    let public = format!("{}/public", servers.origin);
    let (status, page) = carol.get(&App::login_path(&public)).await;
    assert_eq!(status, 200, "public: {page}");
    let public_items = format!("{public}/items");
    let c_pub_authed = format!(
        "{}/api/fetch?url={}",
        cached.origin,
        urlencode(&public_items)
    );
    let c_pub_plain = format!(
        "{}/api/plain-fetch?url={}",
        cached.origin,
        urlencode(&public_items)
    );
    load(&c_client, &c_pub_authed, 2, Duration::from_millis(500)).await;
    let (mut ca, mut cp, mut pa, mut pp) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        ca.extend(load(&c_client, &c_authed, concurrency, slice).await.0);
        cp.extend(load(&c_client, &c_plain, concurrency, slice).await.0);
        pa.extend(load(&c_client, &c_pub_authed, concurrency, slice).await.0);
        pp.extend(load(&c_client, &c_pub_plain, concurrency, slice).await.0);
    }
    for v in [&mut ca, &mut cp, &mut pa, &mut pp] {
        v.sort();
    }
    let (c50, cp50) = (percentile(&ca, 0.5), percentile(&cp, 0.5));
    let (pa50, pp50) = (percentile(&pa, 0.5), percentile(&pp, 0.5));
    let cached_ratio = c50 / cp50;
    let same_work_ratio = pa50 / pp50;
    rows.push(row(
        "hot path p50 ms with isolate cache (authed / baseline)",
        format!("{c50:.2} / {cp50:.2}"),
        "-",
        None,
    ));
    rows.push(row(
        "hot path p50 ratio with isolate cache (30 s)",
        format!("{cached_ratio:.2}"),
        "-",
        None,
    ));
    rows.push(row(
        "same, equal upstream work (public resource)",
        format!("{same_work_ratio:.2} ({pa50:.2} / {pp50:.2} ms)"),
        "<= 1.1",
        Some(same_work_ratio <= 1.1),
    ));
    report["hot_path_cached"] = json!({
        "ttl_secs": 30, "authed_p50_ms": c50, "baseline_p50_ms": cp50, "p50_ratio": cached_ratio,
        "public_authed_p50_ms": pa50, "public_baseline_p50_ms": pp50, "same_work_p50_ratio": same_work_ratio,
        "requests": ca.len(),
    });
    cached.stop();

    // 3. Lookup scaling.
    println!("==> lookup scaling");
    let samples = if opts.quick { 60 } else { 400 };
    let sizes = [10usize, 1_000, 10_000];
    let mut lookups = Vec::new();
    for n in sizes {
        let user = App::sign_in(&worker, &format!("lookup{n}")).await;
        for chunk in synthetic_providers(n).chunks(1000) {
            let resp = user
                .browser
                .client()
                .post(format!("{}/api/debug/seed", worker.origin))
                .json(&chunk)
                .send()
                .await
                .expect("seed");
            assert!(
                resp.status().is_success(),
                "seed: {}",
                resp.text().await.unwrap_or_default()
            );
        }
        let deep = format!("{}/items/42/comments?page=2", synthetic_url(5));
        let find = format!("{}/api/debug/find?url={}", worker.origin, urlencode(&deep));
        let found = get_json(user.browser.client(), &find).await;
        assert!(
            found["resource_url"]
                .as_str()
                .is_some_and(|s| s.ends_with("/projects/5")),
            "lookup found {found}"
        );
        lookups.push((user, find));
    }
    // Round-robin over the three users so drift affects each alike.
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); sizes.len()];
    for _ in 0..samples {
        for (i, (user, find)) in lookups.iter().enumerate() {
            let t = Instant::now();
            let _ = get_json(user.browser.client(), find).await;
            times[i].push(t.elapsed());
        }
    }
    let medians: Vec<(usize, f64)> = sizes
        .iter()
        .zip(times.iter_mut())
        .map(|(n, t)| {
            t.sort();
            (*n, percentile(t, 0.5))
        })
        .collect();
    let scale = medians[2].1 / medians[0].1;
    for (n, m) in &medians {
        rows.push(row(
            &format!("lookup median ms, {n} providers"),
            format!("{m:.2}"),
            "-",
            None,
        ));
    }
    rows.push(row(
        "lookup ratio 10,000 / 10",
        format!("{scale:.2}"),
        "<= 1.2",
        Some(scale <= 1.2),
    ));
    println!("==> listing 10,000 providers");
    report["listing"] = scale::listing(&mut rows, &worker, &lookups[2].0, sizes[2]).await;
    report["lookup"] = json!({ "median_ms": medians.iter().map(|(n, m)| json!({"providers": n, "median_ms": m})).collect::<Vec<_>>(), "ratio_10000_to_10": scale });

    // 5. Refresh under concurrency.
    println!("==> refresh under concurrency");
    let carol = App::sign_in(&worker, "carol").await;
    let short_api = format!("{}/api", short.origin);
    let (status, page) = carol.connect(&short_api).await;
    assert_eq!(status, 200, "{page}");
    tokio::time::sleep(Duration::from_secs(11)).await;
    let before = short.auth_count("POST /token").await;
    let url = format!("{short_api}/items");
    let results = join_all((0..50).map(|_| carol.fetch(&url)).collect()).await;
    let succeeded = results.iter().filter(|(s, _)| *s == 200).count();
    let token_requests = short.auth_count("POST /token").await - before;
    tokio::time::sleep(Duration::from_secs(11)).await;
    let survived = carol.fetch(&url).await.0 == 200;
    rows.push(row(
        "50 calls on an expired token: token requests",
        token_requests,
        "1",
        Some(token_requests == 1),
    ));
    rows.push(row(
        "50 calls on an expired token: succeeded",
        succeeded,
        "50",
        Some(succeeded == 50),
    ));
    rows.push(row(
        "50 calls on an expired token: grant survived",
        survived,
        "true",
        Some(survived),
    ));
    report["refresh_concurrency"] = json!({ "calls": 50, "token_requests": token_requests, "succeeded": succeeded, "grant_survived": survived });

    // 5b. Many users, each connecting once and calling.
    let users = if opts.quick { 40 } else { 1000 };
    println!("==> {users} users connect and call");
    report["many_users"] = scale::many_users(&mut rows, &worker, &api, &items, users).await;
    worker.stop();

    // 5c. Cold start against a hello-world Worker.
    println!("==> cold start");
    report["cold_start"] = cold::cold_start(&mut rows, opts.quick, &items).await;

    // 6. Side by side: the MCP TypeScript SDK's client auth, same servers.
    println!("==> MCP TypeScript SDK (auth() + withOAuth) against the same servers");
    let other = Servers::start(AuthServerOptions::default());
    let other_short = Servers::start(AuthServerOptions {
        access_ttl: Some(10),
        ..Default::default()
    });
    let out = std::process::Command::new("node")
        .current_dir(repo_root())
        .args([
            "tests/bench/mcp-sdk.mjs",
            "--issuer",
            &other.issuer,
            "--origin",
            &other.origin,
        ])
        .args(["--seconds", if opts.quick { "2" } else { "8" }])
        .args([
            "--short-issuer",
            &other_short.issuer,
            "--short-origin",
            &other_short.origin,
        ])
        .output()
        .expect("node tests/bench/mcp-sdk.mjs");
    let sdk: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        json!({ "error": String::from_utf8_lossy(&out.stderr).chars().take(500).collect::<String>() })
    });
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    rows.push(row(
        "MCP SDK: first login requests",
        n(&sdk["first_login"]),
        &format!("idp: {first}"),
        None,
    ));
    rows.push(row(
        "MCP SDK: repeat login requests",
        n(&sdk["repeat_login"]),
        &format!("idp: {second_resource}"),
        None,
    ));
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    rows.push(row(
        "MCP SDK: withOAuth per call p50 ms (wrapper / token by hand)",
        format!(
            "{:.2} / {:.2} = {:.2}",
            f(&sdk["per_call"]["with_oauth_p50_ms"]),
            f(&sdk["per_call"]["by_hand_p50_ms"]),
            f(&sdk["per_call"]["p50_ratio"])
        ),
        &format!("idp same-work ratio: {same_work_ratio:.2}"),
        None,
    ));
    rows.push(row(
        "MCP SDK: 50 expired calls, token requests",
        n(&sdk["concurrent"]["token_requests"]),
        &format!("idp: {token_requests}"),
        None,
    ));
    rows.push(row(
        "MCP SDK: 50 expired calls, succeeded",
        n(&sdk["concurrent"]["succeeded"]),
        &format!("idp: {succeeded}"),
        None,
    ));
    rows.push(row(
        "MCP SDK: grant survived",
        sdk["concurrent"]["grant_survived"]
            .as_bool()
            .unwrap_or(false),
        &format!("idp: {survived}"),
        None,
    ));
    let ratio_of = |theirs: u64, ours: u64| {
        if ours == 0 {
            f64::NAN
        } else {
            theirs as f64 / ours as f64
        }
    };
    report["comparison"] = json!({
        "mcp_sdk": sdk,
        "seed_mcp_idp_from_source": {
            "login_requests": "HEAD probe + resource metadata + up to 5 metadata URLs + registration + token request, on every login (up to 9)",
            "refresh": "one token request per concurrent caller, outside its Durable Object",
        },
        "ratios_mcp_sdk_to_idp": {
            "first_login_requests": ratio_of(n(&sdk["first_login"]), first),
            "repeat_login_requests": ratio_of(n(&sdk["repeat_login"]), second_resource),
            "token_requests_under_concurrency": ratio_of(n(&sdk["concurrent"]["token_requests"]), token_requests),
        },
    });
    rows.push(row(
        "seed (mcp-idp, from source): login requests",
        "up to 9 every login",
        &format!("idp: {first} / {second_resource}"),
        None,
    ));
    rows.push(row(
        "seed (mcp-idp, from source): 50 expired calls",
        "50 token requests",
        &format!("idp: {token_requests}"),
        None,
    ));

    // The native runtime on each store.
    report["native"] = native::stores(&mut rows, &servers, opts.quick).await;

    print_table(&rows);
    report["rows"] = Value::Array(
        rows.iter()
            .map(|r| json!({ "measure": r.name, "value": r.value, "target": r.target, "met": r.met, "limit": r.limit }))
            .collect(),
    );
    report
}
