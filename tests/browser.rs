//! The example app in a real browser: Debian's chromium (installed by
//! `scripts/setup`) driven by `tests/browser/app.mjs` through playwright-core,
//! against the app in workerd and the local servers. Screenshots go to
//! `target/test-logs/browser/`.

use idp_tests::{log_dir, repo_root, state_dir, AuthServerOptions, Hostile, Servers, Worker};

#[test]
fn a_person_connects_calls_and_removes_in_chromium() {
    let chromium = std::path::Path::new("/usr/bin/chromium");
    assert!(
        chromium.exists(),
        "/usr/bin/chromium is missing: run scripts/setup (it installs Debian's chromium)"
    );
    let servers = Servers::start(AuthServerOptions::default());
    let hostile = Hostile::start();
    let worker = Worker::start(&state_dir("browser"));
    let shots = log_dir().join("browser");
    std::fs::create_dir_all(&shots).unwrap();
    let out = std::process::Command::new("node")
        .arg("tests/browser/app.mjs")
        .args(["--app", &worker.origin])
        .args(["--api", &format!("{}/api", servers.origin)])
        .args(["--api2", &format!("{}/v1", servers.origin)])
        .args(["--hostile", &hostile.origin])
        .args(["--mcp", &format!("{}/mcp", servers.origin)])
        .arg("--shots")
        .arg(&shots)
        .current_dir(repo_root())
        .output()
        .expect("run node");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser session failed ({}); screenshots in {}:\n{log}",
        out.status,
        shots.display()
    );
    assert!(
        log.contains("ok: two providers left after removal"),
        "{log}"
    );
    assert!(
        log.contains("ok: the MCP server is listed with its tools"),
        "{log}"
    );
}
