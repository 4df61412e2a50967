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

/// Gives `path` to the `postgres` user when this is root (the server runs
/// as that user then).
fn hand_to_server(path: &Path) {
    if !is_root() {
        return;
    }
    let ok = Command::new("chown")
        .args(["postgres:postgres"])
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "could not hand {} to the postgres user", path.display());
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
        Self::start_with(None)
    }

    /// [`Postgres::start`] with TLS on (`ssl=on`), presenting `cert` (a
    /// PEM certificate and its key, [`TestCa::issue`]).
    pub fn start_tls(cert: &ServerCert) -> Postgres {
        Self::start_with(Some(cert))
    }

    fn start_with(tls: Option<&ServerCert>) -> Postgres {
        let bin = bin_dir();
        let dir = std::env::temp_dir().join(format!(
            "idp-pg-{}-{}",
            std::process::id(),
            crate::free_port()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temporary data directory");
        hand_to_server(&dir);
        let data = dir.join("data");
        let log = crate::log_dir().join(format!("postgres-{}.log", std::process::id()));
        let mut initdb = server_command(&bin.join("initdb"));
        initdb.arg("-D").arg(&data).stdout(Stdio::null()).args([
            "-U",
            "idp",
            "--auth=trust",
            "--locale=C",
            "--encoding=UTF8",
            "-N",
        ]);
        ran(&mut initdb, "initdb");
        let port = crate::free_port();
        let mut options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            dir.display()
        );
        if let Some(cert) = tls {
            // The server reads its key only when it alone can.
            let (crt, key) = (dir.join("server.crt"), dir.join("server.key"));
            std::fs::copy(&cert.cert, &crt).expect("copy the certificate");
            std::fs::copy(&cert.key, &key).expect("copy the key");
            for f in [&crt, &key] {
                let mut perm = std::fs::metadata(f).expect("copied").permissions();
                std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o600);
                std::fs::set_permissions(f, perm).expect("chmod 600");
                hand_to_server(f);
            }
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                crt.display(),
                key.display()
            ));
        }
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
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        self.url(name)
    }

    /// The URL of a database on the server.
    pub fn url(&self, name: &str) -> String {
        format!("postgresql://idp@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs SQL in a database with `psql`; its output, unaligned.
    pub fn sql(&self, database: &str, sql: &str) -> String {
        self.psql(database, sql)
    }

    fn psql(&self, database: &str, sql: &str) -> String {
        let mut psql = Command::new(self.bin.join("psql"));
        psql.args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "idp", "-d", database, "-v", "ON_ERROR_STOP=1"])
            .args(["-At", "-c", sql]);
        let out = ran(&mut psql, sql);
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

/// A certificate authority of the test's own, made with `openssl` in a
/// temporary directory: its root is `ca.pem`.
#[derive(Debug)]
pub struct TestCa {
    dir: PathBuf,
    /// The root certificate (PEM), for `sslrootcert`.
    pub root: PathBuf,
}

/// A server certificate and its key (PEM files).
#[derive(Debug)]
pub struct ServerCert {
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// Runs `command` (doing `what`) to its end; its output, or a panic with
/// what it wrote to stderr.
fn ran(command: &mut Command, what: &str) -> std::process::Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: could not run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn openssl(dir: &Path, args: &[&str]) {
    let mut openssl = Command::new("openssl");
    openssl.current_dir(dir).args(args);
    ran(
        &mut openssl,
        &format!("openssl {args:?} (Debian's openssl package)"),
    );
}

impl TestCa {
    /// A new authority (P-256, valid two days).
    pub fn new(name: &str) -> TestCa {
        let dir = std::env::temp_dir().join(format!("idp-ca-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("CA directory");
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=idp test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        TestCa {
            root: dir.join("ca.pem"),
            dir,
        }
    }

    /// A server certificate for `san` (`IP:127.0.0.1`, `DNS:db.example`),
    /// signed by this authority.
    pub fn issue(&self, name: &str, san: &str) -> ServerCert {
        let ext = format!(
            "subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        );
        std::fs::write(self.dir.join(format!("{name}.ext")), ext).expect("extensions file");
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
        ServerCert {
            cert: self.dir.join(crt),
            key: self.dir.join(key),
        }
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
