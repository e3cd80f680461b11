//! A real three-node Redis Cluster on loopback per test: `redis-server
//! --cluster-enabled yes` ×3 in temp dirs, joined with `redis-cli --cluster
//! create … --cluster-replicas 0`, ready once every node says `cluster_state:ok`.
//! A password on every node; killed on drop. A missing `redis-server` or
//! `redis-cli` fails the test loudly.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisCluster {
    children: Vec<Child>,
    pub ports: Vec<u16>,
    pub password: String,
    pub dir: tempfile::TempDir,
    /// With TLS (clients and the cluster bus): the CA certificate to trust.
    pub ca: Option<std::path::PathBuf>,
}

/// A port for a cluster node. A node also listens on port + 10000 (its bus);
/// both come from below Linux's ephemeral range (32768–60999), where no other
/// test's `127.0.0.1:0` can land, so no test ever reaches a node's bus by mistake.
fn node_port() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    loop {
        let p = 20_000 + (RandomState::new().hash_one(std::time::Instant::now()) % 2_700) as u16;
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(p) && free(p + 10_000) {
            return p;
        }
    }
}

/// Wait for `ok` with a bounded deadline.
fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(started.elapsed() < within, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl RedisCluster {
    /// Three primaries, slots split evenly, a password on each.
    pub fn start() -> RedisCluster {
        Self::start_inner(false)
    }

    /// The same, speaking TLS only (to clients and between nodes), with a
    /// throw-away CA made by `openssl`.
    pub fn start_tls() -> RedisCluster {
        Self::start_inner(true)
    }

    fn start_inner(tls: bool) -> RedisCluster {
        for bin in ["redis-server", "redis-cli"] {
            let found = Command::new(bin)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok();
            assert!(
                found,
                "`{bin}` is not installed: the cluster tests need Debian's redis-server and redis-tools (scripts/test.sh installs them)"
            );
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = RedisCluster {
            children: Vec::new(),
            ports: Vec::new(),
            password: "cluster-pass-Zr4".into(),
            ca: None,
            dir,
        };
        if tls {
            c.ca = Some(super::redis_server::make_certs(c.dir.path()));
        }
        for i in 0..3 {
            let port = loop {
                let p = node_port();
                if !c.ports.contains(&p) {
                    break p;
                }
            };
            let d = c.dir.path().join(format!("node-{i}"));
            std::fs::create_dir_all(&d).unwrap();
            let mut cmd = Command::new("redis-server");
            cmd.args(["--bind", "127.0.0.1"]);
            match &c.ca {
                None => {
                    cmd.args(["--port", &port.to_string()]);
                }
                Some(ca) => {
                    let d = c.dir.path();
                    cmd.args(["--port", "0", "--tls-port", &port.to_string()])
                        .args(["--tls-cluster", "yes", "--tls-auth-clients", "no"])
                        .arg("--tls-cert-file")
                        .arg(d.join("server.pem"))
                        .arg("--tls-key-file")
                        .arg(d.join("server.key"))
                        .arg("--tls-ca-cert-file")
                        .arg(ca);
                }
            }
            let child = cmd
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--cluster-node-timeout", "5000"])
                .args(["--save", "", "--appendonly", "no"])
                .args(["--requirepass", &c.password, "--masterauth", &c.password])
                .arg("--dir")
                .arg(&d)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start redis-server");
            c.children.push(child);
            c.ports.push(port);
        }
        for &p in &c.ports {
            wait_for("a cluster node listens", Duration::from_secs(10), || {
                std::net::TcpStream::connect(("127.0.0.1", p)).is_ok()
            });
        }
        let mut create = c.redis_cli();
        create
            .args(["--cluster", "create"])
            .args(c.ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"]);
        let out = create.output().expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for i in 0..3 {
            wait_for(
                "cluster_state:ok on every node",
                Duration::from_secs(20),
                || {
                    c.node_cli(i, &["CLUSTER", "INFO"])
                        .contains("cluster_state:ok")
                },
            );
        }
        c
    }

    /// `redis://:PASSWORD@127.0.0.1:PORT` (or `rediss://`) of node `i`.
    pub fn url(&self, i: usize) -> String {
        let scheme = if self.ca.is_some() { "rediss" } else { "redis" };
        format!("{scheme}://:{}@127.0.0.1:{}", self.password, self.ports[i])
    }

    /// `redis-cli` with the password (and TLS) of the cluster.
    fn redis_cli(&self) -> Command {
        let mut c = Command::new("redis-cli");
        c.args(["-a", &self.password, "--no-auth-warning"]);
        if let Some(ca) = &self.ca {
            c.arg("--tls").arg("--cacert").arg(ca);
        }
        c
    }

    /// `redis-cli` against node `i`, not following redirects.
    pub fn node_cli(&self, i: usize, args: &[&str]) -> String {
        let out = self
            .redis_cli()
            .args(["-h", "127.0.0.1", "-p", &self.ports[i].to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `redis-cli -c` (following redirects): a command on whichever node
    /// holds its key.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self
            .redis_cli()
            .args(["-c", "-h", "127.0.0.1", "-p", &self.ports[0].to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The slot of a key, as the cluster computes it.
    pub fn slot(&self, key: &str) -> u16 {
        self.node_cli(0, &["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .expect("CLUSTER KEYSLOT answers a number")
    }

    /// The node (index) serving `slot`.
    pub fn owner(&self, slot: u16) -> usize {
        let id = self.node_of_slot(slot);
        (0..3)
            .find(|&i| self.node_cli(i, &["CLUSTER", "MYID"]).trim() == id)
            .expect("a node serves the slot")
    }

    fn node_of_slot(&self, slot: u16) -> String {
        // CLUSTER NODES: `<id> <ip:port@bus> <flags> … <slot ranges>`.
        let nodes = self.node_cli(0, &["CLUSTER", "NODES"]);
        for line in nodes.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            for range in f.iter().skip(8) {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>())
                    && (a..=b).contains(&slot)
                {
                    return f[0].to_string();
                }
            }
        }
        panic!("no node serves slot {slot}: {nodes}")
    }

    /// Move `slot` with its keys from its node to node `to` (the steps of a
    /// resharding: IMPORTING/MIGRATING, MIGRATE of each key, SETSLOT NODE on
    /// every node), returning once every node agrees.
    pub fn move_slot(&self, slot: u16, to: usize) {
        let from = self.owner(slot);
        assert_ne!(from, to, "slot {slot} is already on node {to}");
        let s = slot.to_string();
        let from_id = self.node_cli(from, &["CLUSTER", "MYID"]).trim().to_string();
        let to_id = self.node_cli(to, &["CLUSTER", "MYID"]).trim().to_string();
        let ok = |out: String| assert!(out.trim() == "OK", "{out}");
        ok(self.node_cli(to, &["CLUSTER", "SETSLOT", &s, "IMPORTING", &from_id]));
        ok(self.node_cli(from, &["CLUSTER", "SETSLOT", &s, "MIGRATING", &to_id]));
        loop {
            let keys = self.node_cli(from, &["CLUSTER", "GETKEYSINSLOT", &s, "100"]);
            let keys: Vec<&str> = keys.split_whitespace().collect();
            if keys.is_empty() {
                break;
            }
            let port = self.ports[to].to_string();
            let mut args = vec![
                "MIGRATE",
                "127.0.0.1",
                &port,
                "",
                "0",
                "5000",
                "AUTH",
                &self.password,
                "KEYS",
            ];
            args.extend(keys.iter().copied());
            ok(self.node_cli(from, &args));
        }
        for i in 0..3 {
            ok(self.node_cli(i, &["CLUSTER", "SETSLOT", &s, "NODE", &to_id]));
        }
        wait_for(
            "every node agrees on the moved slot",
            Duration::from_secs(10),
            || {
                (0..3).all(|i| {
                let n = self.node_cli(i, &["CLUSTER", "NODES"]);
                n.lines().any(|l| {
                    l.starts_with(&to_id)
                        && l.split_whitespace().skip(8).any(|r| {
                            let (a, b) = r.split_once('-').unwrap_or((r, r));
                            matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
                        })
                })
            })
            },
        );
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
