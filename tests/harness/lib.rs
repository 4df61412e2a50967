//! Harness for end-to-end tests: starts the real servers on free loopback
//! ports, drives login and consent like a browser, and stops everything by PID.
//!
//! The servers are Node programs in `tests/servers/`, run from the repository's
//! own `node_modules` (installed by `npm ci`).

pub mod postgres;
pub mod report;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The repository's top directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The Python that runs the test servers written in Python (`.venv`, made by
/// `scripts/setup` from `tests/servers/requirements.txt`).
pub fn python() -> String {
    let venv = repo_root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run scripts/setup",
        venv.display()
    );
    venv.display().to_string()
}

/// Where server logs go: `target/test-logs/`.
pub fn log_dir() -> PathBuf {
    let dir = repo_root().join("target").join("test-logs");
    std::fs::create_dir_all(&dir).expect("create target/test-logs");
    dir
}

/// A child process stopped (by PID) when dropped.
#[derive(Debug)]
pub struct Process {
    child: Child,
    /// What it printed as its first stdout line (JSON).
    pub ready: serde_json::Value,
    /// Its stderr log file.
    pub log: PathBuf,
}

impl Process {
    /// Starts `program args` in the repository root, waits for one JSON line on
    /// stdout and returns it. stderr goes to `target/test-logs/<name>.log`.
    pub fn start(name: &str, program: &str, args: &[&str]) -> Process {
        let log = log_dir().join(format!("{name}-{}.log", std::process::id()));
        let err = std::fs::File::create(&log).expect("create server log");
        let mut child = Command::new(program)
            .args(args)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {program} {args:?}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let read = reader.read_line(&mut line);
        // Keep draining stdout into the log so the server never writes to a
        // closed pipe.
        if let Ok(mut sink) = std::fs::OpenOptions::new().append(true).open(&log) {
            std::thread::spawn(move || std::io::copy(&mut reader, &mut sink));
        }
        let ready = match read {
            Ok(n) if n > 0 => serde_json::from_str(line.trim()).unwrap_or_else(|e| {
                panic!("{name} printed {line:?} instead of a JSON ready line: {e}")
            }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                let log_text = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("{name} exited before it was ready; its log:\n{log_text}")
            }
        };
        Process { child, ready, log }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A string field of the ready line.
    pub fn field(&self, name: &str) -> String {
        self.ready[name]
            .as_str()
            .unwrap_or_else(|| panic!("ready line has no {name}: {}", self.ready))
            .to_owned()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        stop_group(&mut self.child);
    }
}

/// Stops a child started in its own process group (its PID is the group id):
/// SIGTERM to the group, then SIGKILL after 5 s, then reaps it.
fn stop_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    let quiet = |signal: &str| {
        let _ = Command::new("kill")
            .args([signal, "--", &group])
            .stderr(Stdio::null())
            .status();
    };
    quiet("-TERM");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    quiet("-KILL");
    let _ = child.kill();
    let _ = child.wait();
}

/// The status of a plain GET to an `http://127.0.0.1:PORT/...` URL, if it answered.
fn status_of(url: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let u = url::Url::parse(url).ok()?;
    let addr = format!("{}:{}", u.host_str()?, u.port()?);
    let mut stream = std::net::TcpStream::connect(&addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
        u.path()
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

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

fn require_node_modules() {
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

/// Options for the authorization server.
#[derive(Debug, Clone, Default)]
pub struct AuthServerOptions {
    /// Access token lifetime in seconds (default 3600).
    pub access_ttl: Option<u64>,
    /// Behave like a server without RFC 9207: no `iss` on the callback.
    pub no_iss: bool,
    /// Offer no RFC 7592 registration management.
    pub no_registration_management: bool,
}

/// A running authorization server (oidc-provider) and protected API.
#[derive(Debug)]
pub struct Servers {
    /// The authorization server process.
    pub auth: Process,
    /// The protected resource process.
    pub resource: Process,
    /// The issuer URL (`http://127.0.0.1:PORT`).
    pub issuer: String,
    /// The resource server's origin (`http://127.0.0.1:PORT`).
    pub origin: String,
}

impl Servers {
    /// Starts both servers on free loopback ports.
    pub fn start(opts: AuthServerOptions) -> Servers {
        require_node_modules();
        let ttl = opts.access_ttl.unwrap_or(3600).to_string();
        let mut args = vec!["tests/servers/auth-server.mjs", "--access-ttl", &ttl];
        if opts.no_iss {
            args.push("--no-iss");
        }
        if opts.no_registration_management {
            args.push("--no-registration-management");
        }
        let auth = Process::start("auth-server", "node", &args);
        let issuer = auth.field("issuer");
        let resource = Process::start(
            "resource-server",
            "node",
            &["tests/servers/resource-server.mjs", "--issuer", &issuer],
        );
        let origin = resource.field("origin");
        Servers {
            auth,
            resource,
            issuer,
            origin,
        }
    }

    /// Request counts seen by the authorization server, by "METHOD path".
    pub async fn auth_stats(&self) -> serde_json::Value {
        get_json(&format!("{}/__stats", self.issuer)).await
    }

    /// Makes the authorization server's token endpoint answer the next
    /// `count` requests with `status`.
    pub async fn fail_token(&self, count: u32, status: u16) {
        let url = format!("{}/__fail-token?count={count}&status={status}", self.issuer);
        let sent = reqwest::Client::new().post(url).send().await;
        assert!(
            sent.is_ok_and(|r| r.status().is_success()),
            "failing the token endpoint"
        );
    }

    /// How many requests the authorization server saw for "METHOD path".
    pub async fn auth_count(&self, key: &str) -> u64 {
        self.auth_stats().await[key].as_u64().unwrap_or(0)
    }

    /// How many authorization server metadata documents were fetched (either
    /// well-known location).
    pub async fn metadata_fetches(&self) -> u64 {
        self.auth_count("GET /.well-known/oauth-authorization-server")
            .await
            + self
                .auth_count("GET /.well-known/openid-configuration")
                .await
    }

    /// Registers a public client at the authorization server (RFC 7591)
    /// for `redirect_uri`, as an operator registers the app in advance;
    /// returns its client id.
    pub async fn register_client(&self, redirect_uri: &str) -> String {
        let body = self
            .register(serde_json::json!({
                "client_name": "the app, registered in advance",
                "redirect_uris": [redirect_uri],
                "application_type": "native",
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
            }))
            .await;
        body["client_id"].as_str().expect("client_id").to_owned()
    }

    /// Registers a client with `metadata` (RFC 7591): the server's answer.
    async fn register(&self, metadata: serde_json::Value) -> serde_json::Value {
        let meta = get_json(&format!("{}/.well-known/openid-configuration", self.issuer)).await;
        let endpoint = meta["registration_endpoint"]
            .as_str()
            .expect("registration endpoint");
        let resp = reqwest::Client::new()
            .post(endpoint)
            .json(&metadata)
            .send()
            .await
            .expect("registration endpoint reachable");
        assert_eq!(resp.status().as_u16(), 201, "registration");
        resp.json().await.expect("registration answer")
    }

    /// Registers a machine client (the client credentials grant,
    /// `client_secret_basic`), as an operator would in advance: its id and
    /// secret.
    pub async fn register_machine_client(&self) -> (String, String) {
        let body = self
            .register(serde_json::json!({
                "client_name": "the app itself",
                "redirect_uris": [],
                "response_types": [],
                "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "client_secret_basic",
                "scope": "api:read",
            }))
            .await;
        (
            body["client_id"].as_str().expect("client_id").to_owned(),
            body["client_secret"]
                .as_str()
                .expect("client_secret")
                .to_owned(),
        )
    }

    /// Registers a machine client that authenticates with `private_key_jwt`
    /// (RFC 7523), its public key given as a JWK set, as an operator would
    /// in advance: its id.
    pub async fn register_keyed_machine_client(&self, key: &KeyPair) -> String {
        let body = self
            .register(serde_json::json!({
                "client_name": "the app itself, with a key",
                "redirect_uris": [],
                "response_types": [],
                "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "private_key_jwt",
                "token_endpoint_auth_signing_alg": key.alg,
                "jwks": { "keys": [key.public_jwk] },
                "scope": "api:read",
            }))
            .await;
        body["client_id"].as_str().expect("client_id").to_owned()
    }

    /// Registers a client for people that authenticates with
    /// `private_key_jwt` (its public key as a JWK set), with `redirect_uri`
    /// and refresh tokens, as an operator would in advance: its id.
    pub async fn register_keyed_client(&self, key: &KeyPair, redirect_uri: &str) -> String {
        let body = self
            .register(serde_json::json!({
                "client_name": "the app, with a key",
                "redirect_uris": [redirect_uri],
                "application_type": "native",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "private_key_jwt",
                "token_endpoint_auth_signing_alg": key.alg,
                "jwks": { "keys": [key.public_jwk] },
            }))
            .await;
        body["client_id"].as_str().expect("client_id").to_owned()
    }

    /// What the resource server saw.
    pub async fn resource_stats(&self) -> serde_json::Value {
        get_json(&format!("{}/__stats", self.origin)).await
    }
}

/// An MCP server that takes Bearer tokens only, as the MCP TypeScript
/// SDK's documentation builds one (its `requireBearerAuth` middleware and
/// metadata router, `tests/servers/bearer-mcp.mjs`), for `issuer`.
#[derive(Debug)]
pub struct BearerMcp {
    /// The server process.
    pub process: Process,
    /// Its origin (`http://127.0.0.1:PORT`); the MCP server is `{origin}/mcp`.
    pub origin: String,
}

impl BearerMcp {
    /// Starts it on a free loopback port.
    pub fn start(issuer: &str) -> BearerMcp {
        require_node_modules();
        let process = Process::start(
            "bearer-mcp",
            "node",
            &["tests/servers/bearer-mcp.mjs", "--issuer", issuer],
        );
        let origin = process.field("origin");
        BearerMcp { process, origin }
    }

    /// The `Authorization` schemes it saw (`{"Bearer": n, "DPoP": m,
    /// "none": k}`) and the statuses it answered (`{"200": n, ...}`).
    pub async fn stats(&self) -> serde_json::Value {
        get_json(&format!("{}/__stats", self.origin)).await
    }
}

async fn get_json(url: &str) -> serde_json::Value {
    reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// A browser stand-in: a cookie jar and manual redirects. Like a browser, it
/// says `Sec-Fetch-Site: same-origin` on navigations within the app it was
/// opened on (the person clicks the app's own links and forms).
#[derive(Debug, Clone)]
pub struct Browser {
    client: reqwest::Client,
    app_origin: Option<String>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    /// A fresh browser with an empty cookie jar.
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("browser client");
        Self {
            client,
            app_origin: None,
        }
    }

    /// A GET as a navigation from the app's own pages when `url` is on the
    /// app's origin.
    pub fn get(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        let url = url.into_url().expect("absolute URL");
        let same = self
            .app_origin
            .as_deref()
            .is_some_and(|o| url.origin().ascii_serialization() == o);
        let req = self.client.get(url);
        if same {
            req.header("sec-fetch-site", "same-origin")
        } else {
            req
        }
    }

    /// The underlying client (cookies kept, redirects not followed).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Follows redirects from `start` until one points under `stop_prefix`, and
    /// returns that URL without fetching it. Panics if a page does not redirect.
    pub async fn follow_until(&self, start: &str, stop_prefix: &str) -> url::Url {
        let mut current = url::Url::parse(start).expect("absolute start URL");
        for _ in 0..20 {
            if current.as_str().starts_with(stop_prefix) {
                return current;
            }
            let resp = self
                .get(current.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {current}: {e}"));
            let status = resp.status();
            let Some(location) = resp.headers().get("location") else {
                let body = resp.text().await.unwrap_or_default();
                panic!("{current} answered {status} without a redirect: {body:.500}");
            };
            let location = location.to_str().expect("ASCII Location").to_owned();
            current = current.join(&location).expect("valid Location");
        }
        panic!("more than 20 redirects from {start}");
    }
}

impl Browser {
    /// What a person does with a device login's link: opens
    /// `verification_uri_complete` on oidc-provider's device pages, confirms
    /// the code shown (or presses Abort when `approve` is false), and is
    /// logged in and consents through the server's interaction routes.
    /// Returns the last page's body.
    pub async fn enter_device_code(
        &self,
        verification_uri_complete: &str,
        approve: bool,
    ) -> String {
        let hidden = |page: &str, name: &str| -> String {
            let marker = format!("name=\"{name}\" value=\"");
            let at = page
                .find(&marker)
                .unwrap_or_else(|| panic!("no {name} in {page:.800}"));
            let rest = &page[at + marker.len()..];
            rest[..rest.find('"').expect("closed value")].to_owned()
        };
        let open = url::Url::parse(verification_uri_complete).expect("absolute URL");
        let page = self
            .get(open.clone())
            .send()
            .await
            .expect("GET device page");
        let page = page.text().await.expect("device page");
        // The page posts the code with the session's xsrf value; the server
        // answers with the confirmation form.
        let action = open.join("/device").expect("device action");
        let form = [
            ("xsrf", hidden(&page, "xsrf")),
            ("user_code", hidden(&page, "user_code")),
        ];
        let confirm = self
            .client
            .post(action.clone())
            .form(&form)
            .send()
            .await
            .expect("POST code");
        let confirm = confirm.text().await.expect("confirmation page");
        let answer = if approve {
            ("confirm", "yes")
        } else {
            ("abort", "yes")
        };
        let form = [
            ("xsrf", hidden(&confirm, "xsrf")),
            ("user_code", hidden(&confirm, "user_code")),
            (answer.0, answer.1.to_owned()),
        ];
        let mut resp = self
            .client
            .post(action.clone())
            .form(&form)
            .send()
            .await
            .expect("POST confirm");
        let mut at = action;
        for _ in 0..20 {
            let Some(location) = resp.headers().get("location") else {
                return resp.text().await.unwrap_or_default();
            };
            at = at
                .join(location.to_str().expect("ASCII Location"))
                .expect("valid Location");
            resp = self
                .get(at.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {at}: {e}"));
        }
        panic!("more than 20 redirects after confirming the device code");
    }
}

/// Polls futures concurrently on the current task.
pub async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("all ready")).collect()
}

/// A signed-in person using the example app.
pub struct App {
    /// The app's origin.
    pub origin: String,
    /// The person's browser (cookies kept).
    pub browser: Browser,
}

impl App {
    pub async fn sign_in(worker: &Worker, user: &str) -> App {
        let mut browser = Browser::new();
        browser.app_origin = Some(worker.origin.clone());
        let app = App {
            origin: worker.origin.clone(),
            browser,
        };
        let (status, _) = app.get(&format!("/signin?user={user}")).await;
        assert_eq!(status, 302, "sign in");
        app
    }

    pub async fn open(&self, url: &str) -> (u16, String) {
        let resp = self.browser.get(url).send().await.expect("app reachable");
        (
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        self.open(&format!("{}{path}", self.origin)).await
    }

    pub async fn json(&self, path: &str) -> (u16, Value) {
        let (status, text) = self.get(path).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}")),
        )
    }

    /// POSTs to one of the app's routes and reads its JSON answer.
    pub async fn post_json(&self, path: &str) -> (u16, Value) {
        self.send_json(reqwest::Method::POST, path).await
    }

    /// Sends `method` to one of the app's routes and reads its JSON answer.
    pub async fn send_json(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        let resp = self
            .browser
            .client
            .request(method, format!("{}{path}", self.origin))
            .header("sec-fetch-site", "same-origin")
            .send()
            .await
            .expect("app reachable");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub fn login_path(resource: &str) -> String {
        format!("/oauth/login?url={}", urlencode(resource))
    }

    /// Runs the login up to the redirect back to the app, without opening it.
    pub async fn start(&self, resource: &str) -> String {
        let start = format!("{}{}", self.origin, Self::login_path(resource));
        let back = self
            .browser
            .follow_until(&start, &format!("{}/oauth/callback", self.origin))
            .await;
        back.to_string()
    }

    /// Connects a resource through the authorization server; returns the
    /// callback page's status and body.
    pub async fn connect(&self, resource: &str) -> (u16, String) {
        let back = self.start(resource).await;
        self.open(&back).await
    }

    pub async fn providers(&self) -> Vec<Value> {
        let (status, v) = self.json("/api/providers").await;
        assert_eq!(status, 200, "{v}");
        v.as_array().expect("array").clone()
    }

    pub async fn fetch(&self, url: &str) -> (u16, Value) {
        self.json(&format!("/api/fetch?url={}", urlencode(url)))
            .await
    }
}

/// Form-urlencodes a string.
pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl App {
    /// Starts a login with a `login_hint` for the authorization server.
    pub async fn start_with_hint(&self, resource: &str, hint: &str) -> String {
        let start = format!("{}{}", self.origin, Self::login_path(resource));
        let resp = self.browser.get(&start).send().await.unwrap();
        let mut to = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
        to.query_pairs_mut().append_pair("login_hint", hint);
        self.browser
            .follow_until(to.as_str(), &format!("{}/oauth/callback", self.origin))
            .await
            .to_string()
    }
}

/// An honest authorization server that knows clients only by their client
/// ID metadata documents, with its API at `{origin}/api`
/// (`tests/servers/cimd-server.mjs`).
#[derive(Debug)]
pub struct CimdServer {
    /// The process.
    pub process: Process,
    /// Its issuer and origin, `http://127.0.0.1:PORT`.
    pub origin: String,
}

impl CimdServer {
    /// Starts it on a free loopback port; `iss`: it sends RFC 9207 `iss`.
    pub fn start(iss: bool) -> CimdServer {
        require_node_modules();
        let mut args = vec!["tests/servers/cimd-server.mjs"];
        if iss {
            args.push("--iss");
        }
        let process = Process::start("cimd-server", "node", &args);
        let origin = process.field("origin");
        CimdServer { process, origin }
    }

    /// Its authorization requests (`client_id`, `redirect_uri`, why it
    /// refused) and how many tokens it issued.
    pub async fn log(&self) -> Value {
        get_json(&format!("{}/__log", self.origin)).await
    }
}

/// The attacker's resource and authorization server (`tests/servers/hostile.mjs`).
#[derive(Debug)]
pub struct Hostile {
    /// The process.
    pub process: Process,
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
}

impl Hostile {
    /// Starts it on a free loopback port.
    pub fn start() -> Hostile {
        let process = Process::start("hostile", "node", &["tests/servers/hostile.mjs"]);
        let origin = process.field("origin");
        Hostile { process, origin }
    }

    /// Merges `config` into its configuration.
    pub async fn configure(&self, config: Value) {
        let resp = reqwest::Client::new()
            .post(format!("{}/__config", self.origin))
            .json(&config)
            .send()
            .await
            .expect("hostile server reachable");
        assert!(resp.status().is_success());
    }

    /// Everything it was sent: `requests` ("METHOD path"), `token_requests`
    /// (the forms sent to its token endpoint), `authorizations` (headers its
    /// resources received).
    pub async fn log(&self) -> Value {
        get_json(&format!("{}/__log", self.origin)).await
    }
}

/// A fresh directory for Durable Object state.
pub fn state_dir(name: &str) -> PathBuf {
    let dir = repo_root()
        .join("target/test-state")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The provider view for a resource URL in a list.
pub fn provider<'a>(list: &'a [Value], resource: &str) -> Option<&'a Value> {
    list.iter().find(|p| p["resource_url"] == resource)
}

/// A key pair made by Node's crypto (an implementation other than idp's):
/// the private key as PKCS#8 PEM and as a JWK, the public key as a JWK.
#[derive(Debug)]
pub struct KeyPair {
    /// `ES256` or `RS256`.
    pub alg: &'static str,
    /// The private key, PKCS#8 PEM.
    pub private_pem: String,
    /// The private key, JWK.
    pub private_jwk: serde_json::Value,
    /// The public key, JWK.
    pub public_jwk: serde_json::Value,
}

impl KeyPair {
    /// A fresh P-256 (`ES256`) or 2048-bit RSA (`RS256`) key pair.
    pub fn generate(alg: &'static str) -> Self {
        let (kind, options) = match alg {
            "ES256" => ("ec", "{namedCurve:'P-256'}"),
            "RS256" => ("rsa", "{modulusLength:2048}"),
            other => panic!("no key pair for {other}"),
        };
        let script = format!(
            "const c=require('crypto');const k=c.generateKeyPairSync('{kind}',{options});\
             console.log(JSON.stringify({{pem:k.privateKey.export({{type:'pkcs8',format:'pem'}}),\
             jwk:k.privateKey.export({{format:'jwk'}}),pub:k.publicKey.export({{format:'jwk'}})}}))"
        );
        let out = Command::new("node")
            .args(["-e", &script])
            .output()
            .expect("node runs");
        assert!(out.status.success(), "node made no key pair");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("key pair JSON");
        Self {
            alg,
            private_pem: v["pem"].as_str().expect("pem").to_owned(),
            private_jwk: v["jwk"].clone(),
            public_jwk: v["pub"].clone(),
        }
    }
}

/// A POST to the example's operator route `path` (the app as itself) for
/// `target`, with the operator's `token` (`IDP_ADMIN_TOKEN`): the status and
/// the JSON answer (or its text).
pub async fn as_operator(
    worker: &Worker,
    token: &str,
    path: &str,
    target: &str,
) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}?url={}", worker.origin, urlencode(target)))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// What the native tests, the benchmark and the replicas they start
/// (`tests/bin/replica.rs`) agree on.
pub mod replica {
    use idp::flow::{LoginStart, Settings};
    use idp::matching::ResourceKey;
    use idp::native::NativeIdp;
    use idp::store::{Expect, Put, Store};

    /// The callback URL of the replicas' settings (never fetched).
    pub const REDIRECT: &str = "http://127.0.0.1:9/oauth/callback";
    /// The sealing keys of every replica (a test key).
    pub const KEYS: &str = "k1:HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4=";

    /// The settings every replica runs with: servers on loopback, Bearer
    /// tokens (so a header can be compared across processes).
    pub fn settings() -> Settings {
        Settings {
            policy: idp::policy::Policy::LOOPBACK_DEV,
            client_info: idp::registration::ClientInfo {
                name: "idp replica".into(),
                version: "0.1.0".into(),
                uri: None,
            },
            clients: Default::default(),
            callback_base: url::Url::parse(REDIRECT).expect("static URL"),
            profiles: Vec::new(),
            dpop: idp::settings::DpopUse::Never,
            dpop_always: Vec::new(),
            device_origins: Default::default(),
        }
    }

    /// Connects `owner` to `url` through oidc-provider's pages.
    pub async fn connect<S: Store>(idp: &NativeIdp<S>, owner: &str, url: &str) -> ResourceKey {
        let LoginStart::Redirect(to) = idp.connect(owner, url, None).await.expect("login starts")
        else {
            panic!("{url} is protected");
        };
        let back = crate::Browser::new()
            .follow_until(to.as_str(), REDIRECT)
            .await;
        idp.callback(owner, &back).await.expect("callback").key
    }

    /// Makes a stored grant's access token expired, as if time had passed.
    pub async fn expire<S: Store>(store: &S, owner: &str, key: &ResourceKey) {
        let before = store.provider(owner, key).await.unwrap().expect("stored");
        let mut after = before.clone();
        let tokens = after.grant.as_mut().unwrap().tokens.as_mut().unwrap();
        tokens.expires_at = Some(idp::native::now() - 10);
        let put = store.put_provider(owner, after, Expect::Exactly(&before));
        assert_eq!(put.await.unwrap(), Put::Written);
    }

    /// The replica binary next to the running one's profile (debug or
    /// release), built by `scripts/test` and `scripts/bench`.
    pub fn binary() -> std::path::PathBuf {
        let root = crate::repo_root().join("target");
        let built = ["release", "debug"]
            .iter()
            .map(|p| root.join(p).join("idp-replica"))
            .filter(|p| p.exists())
            .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        built.unwrap_or_else(|| {
            panic!(
                "no idp-replica under {}: `cargo build -p idp-tests --bin idp-replica`",
                root.display()
            )
        })
    }

    /// Starts a replica; it is connected when this returns.
    pub fn start(name: &str, args: &[&str]) -> crate::Process {
        crate::Process::start(name, binary().to_str().expect("UTF-8 path"), args)
    }

    /// Waits for a replica's result file.
    pub async fn result(path: &std::path::Path) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while std::time::Instant::now() < deadline {
            if let Ok(text) = std::fs::read_to_string(path) {
                return serde_json::from_str(&text).expect("a JSON result");
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("no result at {}", path.display());
    }

    /// A scratch directory for the replicas' go and result files.
    pub fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("idp-replicas-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    }

    /// `processes` replicas that each run `callers` concurrent authorized
    /// calls to `url` as `owner` at once: their results.
    pub async fn authorize_together(
        db: &str,
        owner: &str,
        url: &str,
        processes: usize,
        callers: usize,
    ) -> Vec<serde_json::Value> {
        let dir = scratch("authorize");
        let go = dir.join("go");
        let callers = callers.to_string();
        let replicas: Vec<_> = (0..processes)
            .map(|i| {
                let out = dir.join(format!("out-{i}"));
                let args = [
                    "authorize",
                    "--db",
                    db,
                    "--go",
                    go.to_str().unwrap(),
                    "--out",
                    out.to_str().unwrap(),
                    "--owner",
                    owner,
                    "--url",
                    url,
                    "--callers",
                    &callers,
                ];
                (start(&format!("replica-{i}"), &args), out)
            })
            .collect();
        std::fs::write(&go, "").expect("go");
        let mut results = Vec::new();
        for (_, out) in &replicas {
            results.push(result(out).await);
        }
        let _ = std::fs::remove_dir_all(&dir);
        results
    }
}
