//! Harness for end-to-end tests: starts the real servers on free loopback
//! ports, drives login and consent like a browser, and stops everything by PID.
//!
//! The servers are Node programs in `tests/servers/`, run from the repository's
//! own `node_modules` (installed by `npm ci`).

pub mod postgres;
pub mod replica;
pub mod report;

mod browser;
mod servers;
mod worker;
pub use browser::{App, Browser};
use servers::get_json;
pub use servers::{AuthServerOptions, BearerMcp, Servers};
use worker::require_node_modules;
pub use worker::Worker;

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

/// Form-urlencodes a string.
pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
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
