//! The example Worker in workerd (`wrangler dev`), started and stopped by the tests.

use super::*;

/// Serialises worker builds and wrangler start-ups across tests.
static WORKER_START: Mutex<()> = Mutex::new(());

/// The example Worker running in workerd (`wrangler dev`) on a free loopback
/// port, with its Durable Object state in `state_dir`.
#[derive(Debug)]
pub struct Worker {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
    /// wrangler's log.
    pub log: PathBuf,
    /// Where the Durable Object SQLite files live.
    pub state_dir: PathBuf,
    /// From starting wrangler to the first answer (polled every 20 ms).
    pub ready_after: Duration,
}

/// The request that tells a started Worker is ready: a path and its status.
const APP_PROBE: (&str, u16) = ("/api/providers", 401);

impl Worker {
    /// Builds (through wrangler's build command) and starts the example, and
    /// waits until it answers.
    pub fn start(state_dir: &Path) -> Worker {
        Self::start_with(state_dir, &[])
    }

    /// [`Worker::start`] with extra Worker variables (`--var NAME:VALUE`;
    /// `{origin}` in a value becomes the Worker's origin).
    pub fn start_with(state_dir: &Path, vars: &[(&str, &str)]) -> Worker {
        Self::start_once_or_retry(&[], state_dir, vars, APP_PROBE)
    }

    /// [`Worker::start_with`] on a port chosen before (so its callback URLs
    /// can be registered at a server before it starts).
    pub fn start_on(port: u16, state_dir: &Path, vars: &[(&str, &str)]) -> Worker {
        Self::start_once_or_retry_on(Some(port), &[], state_dir, vars, APP_PROBE)
    }

    /// The example as a split deployment (`examples/app/split/`): the Worker's
    /// script, and the objects' script that defines the Durable Object class,
    /// in one `wrangler dev`.
    pub fn start_split(state_dir: &Path) -> Worker {
        Self::start_split_with("examples/app/split/objects.toml", state_dir)
    }

    /// [`Worker::start_split`] with another config for the objects' script.
    pub fn start_split_with(objects: &str, state_dir: &Path) -> Worker {
        Self::start_once_or_retry(
            &["examples/app/split/worker.toml", objects],
            state_dir,
            &[],
            APP_PROBE,
        )
    }

    /// The example's benchmark build (feature `bench`, `tests/bench/wrangler.toml`).
    pub fn start_bench(state_dir: &Path, vars: &[(&str, &str)]) -> Worker {
        Self::start_once_or_retry(&["tests/bench/wrangler.toml"], state_dir, vars, APP_PROBE)
    }

    /// [`Worker::start_with`], ready when `GET probe.0` answers `probe.1`
    /// (for a Worker that answers every request with an error).
    pub fn start_expecting(state_dir: &Path, vars: &[(&str, &str)], probe: (&str, u16)) -> Worker {
        Self::start_once_or_retry(&[], state_dir, vars, probe)
    }

    /// Another Worker (its wrangler config, relative to the repository), ready
    /// when `GET probe.0` answers `probe.1`.
    pub fn start_config(config: &str, state_dir: &Path, probe: (&str, u16)) -> Worker {
        Self::start_once_or_retry(&[config], state_dir, &[], probe)
    }

    fn start_with_once(
        port: Option<u16>,
        configs: &[&str],
        state_dir: &Path,
        vars: &[(&str, &str)],
        probe: (&str, u16),
    ) -> Worker {
        let _one_at_a_time = WORKER_START.lock().unwrap_or_else(|e| e.into_inner());
        let root = repo_root();
        let wrangler = root.join("node_modules/wrangler/bin/wrangler.js");
        assert!(
            wrangler.exists(),
            "wrangler is not installed: run `npm ci` (the README's test command does)"
        );
        std::fs::create_dir_all(state_dir).expect("state dir");
        let port = port.unwrap_or_else(free_port);
        let log = log_dir().join(format!("wrangler-{}-{port}.log", std::process::id()));
        let out = std::fs::File::create(&log).expect("wrangler log");
        let err = out.try_clone().expect("wrangler log");
        let port_arg = port.to_string();
        let child = Command::new("node")
            .arg(&wrangler)
            .args([
                "dev",
                "--ip",
                "127.0.0.1",
                "--port",
                &port_arg,
                "--inspector-port",
                "0",
            ])
            .args([
                "--show-interactive-dev-session=false",
                "--log-level",
                "info",
            ])
            .args(configs.iter().flat_map(|c| ["--config", c]))
            .arg("--persist-to")
            .arg(state_dir)
            .args(vars.iter().flat_map(|(k, v)| {
                let v = v.replace("{origin}", &format!("http://127.0.0.1:{port}"));
                ["--var".to_owned(), format!("{k}:{v}")]
            }))
            .current_dir(&root)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CI", "true")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .expect("start wrangler dev");
        let started = Instant::now();
        let mut worker = Worker {
            child,
            origin: format!("http://127.0.0.1:{port}"),
            log,
            state_dir: state_dir.to_path_buf(),
            ready_after: Duration::ZERO,
        };
        worker.wait_ready(Duration::from_secs(600), probe);
        worker.ready_after = started.elapsed();
        worker
    }

    /// [`Worker::start_with`], tried up to three times: wrangler dev on a
    /// machine without internet sometimes exits at start-up while looking up
    /// Cloudflare's hosts.
    fn start_once_or_retry(
        configs: &[&str],
        state_dir: &Path,
        vars: &[(&str, &str)],
        probe: (&str, u16),
    ) -> Worker {
        Self::start_once_or_retry_on(None, configs, state_dir, vars, probe)
    }

    fn start_once_or_retry_on(
        port: Option<u16>,
        configs: &[&str],
        state_dir: &Path,
        vars: &[(&str, &str)],
        probe: (&str, u16),
    ) -> Worker {
        for attempt in 1..=3 {
            match std::panic::catch_unwind(|| {
                Self::start_with_once(port, configs, state_dir, vars, probe)
            }) {
                Ok(w) => return w,
                Err(e) if attempt < 3 => {
                    let _ = e;
                    eprintln!("wrangler dev did not start (attempt {attempt}); trying again");
                }
                Err(e) => std::panic::resume_unwind(e),
            }
        }
        unreachable!()
    }

    fn wait_ready(&mut self, limit: Duration, (path, expected): (&str, u16)) {
        let deadline = Instant::now() + limit;
        let probe = format!("{}{path}", self.origin);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                let text = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!("wrangler dev exited ({status}) before it was ready; its log:\n{text}");
            }
            if status_of(&probe) == Some(expected) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        panic!("wrangler dev did not answer within {limit:?}; its log:\n{text}");
    }

    /// The process id of wrangler (workerd runs in its process group).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The resident memory of the workerd processes wrangler started, in
    /// bytes (Linux; 0 elsewhere).
    pub fn workerd_rss(&self) -> u64 {
        let group = self.child.id().to_string();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return 0;
        };
        dir.flatten()
            .filter_map(|e| {
                std::fs::read_to_string(e.path().join("stat"))
                    .ok()
                    .map(|s| (e, s))
            })
            .filter(|(_, stat)| {
                // pid (comm) state ppid pgrp ...
                let after = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
                stat.contains("(workerd)") && after.split(' ').nth(2) == Some(group.as_str())
            })
            .filter_map(|(e, _)| {
                let status = std::fs::read_to_string(e.path().join("status")).ok()?;
                let kb: u64 = status
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))?
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()?;
                Some(kb * 1024)
            })
            .sum()
    }

    /// Stops wrangler and workerd (by process group).
    pub fn stop(mut self) {
        stop_group(&mut self.child);
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        stop_group(&mut self.child);
    }
}

pub(crate) fn require_node_modules() {
    let root = repo_root();
    for package in [
        "oidc-provider",
        "jose",
        "@modelcontextprotocol/sdk",
        "express",
    ] {
        assert!(
            root.join("node_modules").join(package).exists(),
            "node_modules/{package} is missing: run `npm ci` in {} (the test command in README.md does)",
            root.display()
        );
    }
}
