//! A PostgreSQL server of the test's own: `initdb` in a temporary directory
//! and `postgres` on a free loopback port (Debian's `postgresql` package,
//! which `scripts/setup` installs), stopped by PID and removed when dropped.
//! No test needs a database the machine already has.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A running PostgreSQL server.
#[derive(Debug)]
pub struct Postgres {
    dir: PathBuf,
    bin: PathBuf,
    pid: u32,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

/// The newest server binaries Debian installed (`/usr/lib/postgresql/N/bin`).
fn bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .unwrap_or_else(|e| {
            panic!(
                "{} is missing ({e}): install Debian's postgresql package (scripts/setup does)",
                root.display()
            )
        })
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, p)| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL version with initdb").1
}

/// Runs a server program, as the `postgres` user when this is root (the
/// server refuses to run as root).
fn server_command(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Postgres {
    /// Creates a cluster (user `idp`, trust on loopback, locale C) and starts
    /// it on a free port.
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let dir = std::env::temp_dir().join(format!(
            "idp-pg-{}-{}",
            std::process::id(),
            crate::free_port()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temporary data directory");
        if is_root() {
            let ok = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "could not hand {} to the postgres user", dir.display());
        }
        let data = dir.join("data");
        let log = crate::log_dir().join(format!("postgres-{}.log", std::process::id()));
        let init = server_command(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "idp",
                "--auth=trust",
                "--locale=C",
                "--encoding=UTF8",
                "-N",
            ])
            .stdout(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            init.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let port = crate::free_port();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            dir.display()
        );
        let server_log = dir.join("server.log");
        let started = server_command(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-l"])
            .arg(&server_log)
            .args(["-w", "-t", "60", "start"])
            .stdout(Stdio::null())
            .output()
            .expect("run pg_ctl");
        if !started.status.success() {
            let text = std::fs::read_to_string(&server_log).unwrap_or_default();
            let _ = std::fs::write(&log, &text);
            panic!("PostgreSQL did not start: {text}");
        }
        let pid_file =
            std::fs::read_to_string(data.join("postmaster.pid")).expect("postmaster.pid");
        let pid = pid_file
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("a PID in postmaster.pid");
        Postgres {
            dir,
            bin,
            pid,
            port,
        }
    }

    /// A new, empty database on the server; its URL.
    pub fn database(&self, name: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "idp",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
            ])
            .arg(format!("CREATE DATABASE \"{name}\""))
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "CREATE DATABASE {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(name)
    }

    /// The URL of a database on the server.
    pub fn url(&self, name: &str) -> String {
        format!("postgresql://idp@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs SQL in a database with `psql`; its output, unaligned.
    pub fn sql(&self, database: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "idp",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Postgres {
    /// Stops the server by its PID (an immediate shutdown), waits for it to
    /// exit, and removes its directory.
    fn drop(&mut self) {
        let pid = self.pid.to_string();
        let _ = Command::new("kill").args(["-QUIT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && Path::new(&format!("/proc/{pid}")).exists() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill")
            .args(["-KILL", &pid])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
