//! The shared store on a real three-node Redis Cluster (#20): `--store` names
//! any one node, sfx finds the rest, follows MOVED and ASK, and each org's keys
//! share one slot, so leases and compare-and-set hold as on one server.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::redis_cluster::RedisCluster;
use crate::common::*;
use crate::shared::{TOKEN, key_b64, no_replays, record};
use serde_json::Value;
use sfx::store::shared::{SharedStore, url};
use sfx::store::{Cas, Version};

/// Hosts as processes with separate homes; host `i` names node `i % 3`.
pub(crate) struct Fleet {
    pub(crate) t: T,
    pub(crate) c: RedisCluster,
    pub(crate) key: String,
}

impl Fleet {
    pub(crate) fn new() -> Fleet {
        Fleet {
            t: T::new(),
            c: RedisCluster::start(),
            key: key_b64(42),
        }
    }

    pub(crate) fn std(&self, host: usize) -> std::process::Command {
        let mut c = self.t.std_sfx();
        c.env("SFX_HOME", self.t.dir.path().join(format!("host-{host}")))
            .env("SFX_STORE", self.c.url(host % 3))
            .env("SFX_STORE_KEY", &self.key)
            .env("SFX_TIMEOUT", "5s");
        c
    }

    pub(crate) fn sfx(&self, host: usize) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::from_std(self.std(host));
        c.timeout(Duration::from_secs(60));
        c
    }

    pub(crate) fn login(&self, host: usize, alias: &str) {
        self.sfx(host)
            .args(["login", "--auth-url", "-", "--alias", alias])
            .write_stdin(self.t.auth_url())
            .assert()
            .success();
    }

    /// The org's record in the store (in clear).
    pub(crate) fn meta(&self, alias: &str) -> Value {
        let raw = self.c.cli(&["HGET", &org_key(alias), "meta"]);
        serde_json::from_str(raw.trim()).expect("the record is JSON")
    }

    pub(crate) fn expire(&self, alias: &str) {
        let mut m = self.meta(alias);
        m["issued_at"] = (now() - 3 * 3600).into();
        // An exact expiry learnt earlier (introspection, `expires`) would win.
        m["expiry"] = Value::Null;
        self.c
            .cli(&["HSET", &org_key(alias), "meta", &m.to_string()]);
    }

    pub(crate) fn token(&self, host: usize, alias: &str) -> String {
        let out = self
            .sfx(host)
            .args(["token", "-o", alias])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    }
}

/// The key of an org's record (the `{alias}` hash tag puts all of an org's
/// keys in one slot).
pub(crate) fn org_key(alias: &str) -> String {
    format!("sfx:org:{{{alias}}}")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn store(c: &RedisCluster, node: usize) -> SharedStore {
    let url::StoreChoice::Shared(u) = url::parse(Some(&c.url(node)), "--store").unwrap() else {
        panic!("not shared")
    };
    SharedStore::new(u, "sfx".into(), Duration::from_secs(3)).unwrap()
}

/// A node that does not serve `slot`.
pub(crate) fn other_node(c: &RedisCluster, slot: u16) -> usize {
    (c.owner(slot) + 1) % 3
}

#[test]
fn every_command_works_on_a_three_node_cluster_whichever_node_the_store_names() {
    let f = Fleet::new();
    // Two orgs whose keys live on different nodes, each logged in through a
    // node that does not hold it.
    let (a, b) = ("prod", "dev");
    assert_ne!(
        f.c.owner(f.c.slot(&org_key(a))),
        f.c.owner(f.c.slot(&org_key(b))),
        "the test wants two orgs on two nodes"
    );
    f.login(other_node(&f.c, f.c.slot(&org_key(a))), a);
    f.sfx(1)
        .args(["login", "--auth-url", "-", "--alias", b, "--set-default"])
        .write_stdin(f.t.auth_url())
        .assert()
        .success();
    for host in 0..3 {
        let out = f.sfx(host).args(["orgs", "--json"]).output().unwrap();
        let orgs = stdout_json(&out);
        let names: HashSet<&str> = orgs
            .as_array()
            .expect("an array")
            .iter()
            .filter_map(|o| o["org"].as_str())
            .collect();
        assert_eq!(names, HashSet::from([a, b]), "host {host}: {orgs}");
        f.sfx(host).args(["expires", "--all"]).assert().success();
    }
    let before = f.token(2, a);
    f.sfx(0).args(["refresh", "-o", a, "-q"]).assert().success();
    let after = f.token(1, a);
    assert_ne!(before, after, "every node's clients see the refresh");
    // A refresh of an expired token through each node: lease, journal and
    // compare-and-set on the org's node.
    for host in 0..3 {
        let grants = f.t.fake.count_grant("refresh_token");
        f.expire(b);
        f.token(host, b);
        assert_eq!(f.t.fake.count_grant("refresh_token"), grants + 1);
    }
    // A resharding moves dev's slot (all of its keys) to another node: every
    // command follows it.
    let slot = f.c.slot(&org_key(b));
    f.c.move_slot(slot, other_node(&f.c, slot));
    let grants = f.t.fake.count_grant("refresh_token");
    f.expire(b);
    for host in 0..3 {
        f.token(host, b);
    }
    assert_eq!(f.t.fake.count_grant("refresh_token"), grants + 1);
    // doctor: a cluster of three nodes.
    let out = f.sfx(2).args(["doctor", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = &stdout_json(&out)["shared"];
    assert_eq!(
        (s["reachable"].as_bool(), s["key"].as_str()),
        (Some(true), Some("works"))
    );
    assert_eq!(s["cluster_nodes"], 3, "{s}");
    assert_eq!(s["orgs"], 2);
    let out = f.sfx(0).arg("doctor").output().unwrap();
    assert!(
        text(&out.stdout).contains("cluster, 3 nodes"),
        "{}",
        text(&out.stdout)
    );
    // A cluster has database 0 only: another is a sentence and exit 6.
    let out = f
        .sfx(0)
        .env("SFX_STORE", format!("{}/2", f.c.url(0)))
        .arg("orgs")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cluster"),
        "{}",
        text(&out.stderr)
    );
    // migrate: out of the cluster into this host's local store and back.
    f.sfx(1)
        .args(["login", "--migrate", "--to", "local", "-o", a])
        .assert()
        .success();
    assert_eq!(f.c.cli(&["EXISTS", &org_key(a)]).trim(), "0");
    f.sfx(1)
        .args(["login", "--migrate", "--to", "shared", "-o", a])
        .assert()
        .success();
    assert_eq!(f.c.cli(&["EXISTS", &org_key(a)]).trim(), "1");
    f.token(0, a);
    // logout: gone for every host.
    f.sfx(2).args(["logout", "-o", a]).assert().success();
    let out = f.sfx(0).args(["token", "-o", a]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert_eq!(f.c.cli(&["SMEMBERS", "sfx:orgs"]).trim(), b);
}

#[test]
fn thirty_racers_on_three_hosts_naming_three_nodes_make_one_token_request() {
    let f = Fleet::new();
    f.t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    f.login(0, "prod");
    f.expire("prod");
    f.t.fake.clear_requests();
    // The refresh is slowed so the other 29 are all waiting on the lease.
    f.t.fake.inject(TOKEN, Fault::delay(500));
    let token = crate::shared::thirty_tokens(|h| f.std(h));
    assert_eq!(
        f.t.fake.count_grant("refresh_token"),
        1,
        "one token request"
    );
    no_replays(&f.t);
    // The rotated refresh token still works (a replay would have revoked it).
    f.expire("prod");
    assert_ne!(f.token(2, "prod"), token);
    assert_eq!(f.t.fake.count_grant("refresh_token"), 2);
    no_replays(&f.t);
}

#[test]
fn compare_and_set_and_the_lease_hold_on_the_orgs_node_and_follow_a_resharding() {
    let c = RedisCluster::start();
    let slot = c.slot(&org_key("a"));
    // Through a node that does not hold the org: the first MOVED teaches the map.
    let s = store(&c, other_node(&c, slot));
    let Cas::Written(v1) = s.write(&record("a"), &[], Some(Version(0))).unwrap() else {
        panic!("first write conflicted")
    };
    assert_eq!(
        s.write(&record("a"), &[], Some(Version(0))).unwrap(),
        Cas::Conflict,
        "a second creator loses"
    );
    let lease = s.lease("a", Duration::from_millis(200)).unwrap();
    let other = store(&c, c.owner(slot));
    let e = other.lease("a", Duration::from_millis(300)).unwrap_err();
    assert_eq!(e.exit(), sfx::exit::Exit::StoreUnavailable, "{e}");
    drop(lease);
    drop(other.lease("a", Duration::from_secs(2)).unwrap());

    // The slot moves while `s` holds a map that says otherwise: its next calls
    // follow the MOVED, and the compare-and-set still fences a stale writer.
    let to = other_node(&c, slot);
    c.move_slot(slot, to);
    assert_eq!(c.owner(slot), to);
    let (rec, v) = s.read_org("a").unwrap().expect("the org after the move");
    assert_eq!((rec.alias.as_str(), Version(v)), ("a", v1));
    let Cas::Written(v2) = s.write(&record("a"), &[], Some(v1)).unwrap() else {
        panic!("write at the current version conflicted")
    };
    assert_eq!(s.write(&record("a"), &[], Some(v1)).unwrap(), Cas::Conflict);
    assert_eq!(
        s.read_org("a").unwrap().map(|(_, v)| Version(v)),
        Some(v2),
        "the stale write left the winner's version"
    );
    drop(s.lease("a", Duration::from_secs(2)).unwrap());
    let (_, orgs) = s.list().unwrap();
    assert_eq!(orgs.len(), 1);
}

#[test]
fn a_slot_in_migration_is_followed_through_ask() {
    let c = RedisCluster::start();
    let s = store(&c, 0);
    s.write(&record("a"), &[], None).unwrap();
    let slot = c.slot(&org_key("a"));
    let (from, to) = (c.owner(slot), other_node(&c, slot));
    let id = |i: usize| c.node_cli(i, &["CLUSTER", "MYID"]).trim().to_string();
    let sl = slot.to_string();
    assert_eq!(
        c.node_cli(to, &["CLUSTER", "SETSLOT", &sl, "IMPORTING", &id(from)])
            .trim(),
        "OK"
    );
    assert_eq!(
        c.node_cli(from, &["CLUSTER", "SETSLOT", &sl, "MIGRATING", &id(to)])
            .trim(),
        "OK"
    );
    let port = c.ports[to].to_string();
    let k = org_key("a");
    let moved = c.node_cli(
        from,
        &[
            "MIGRATE",
            "127.0.0.1",
            &port,
            "",
            "0",
            "5000",
            "AUTH",
            &c.password,
            "KEYS",
            &k,
        ],
    );
    assert_eq!(moved.trim(), "OK");
    // The old node now answers ASK for the org's key; sfx asks the new one.
    let asked = c.node_cli(from, &["HGET", &k, "v"]);
    assert!(asked.contains("ASK"), "the old node answers ASK: {asked}");
    let (rec, _) = s
        .read_org("a")
        .unwrap()
        .expect("the org during the migration");
    assert_eq!(rec.alias, "a");
}

#[test]
fn over_tls_every_node_is_reached_with_tls_and_the_password() {
    let c = RedisCluster::start_tls();
    let (a, b) = ("prod", "dev");
    assert_ne!(c.owner(c.slot(&org_key(a))), c.owner(c.slot(&org_key(b))));
    for alias in [a, b] {
        let meta = serde_json::to_string(&record(alias)).unwrap();
        c.cli(&["HSET", &org_key(alias), "meta", &meta, "v", "1"]);
        c.cli(&["SADD", "sfx:orgs", alias]);
    }
    let t = T::new();
    t.fake.expect_no_requests();
    let ca = c.ca.clone().unwrap();
    for node in 0..3 {
        let sfx = |args: &[&str]| {
            t.sfx()
                .env("SFX_STORE", c.url(node))
                .env("SSL_CERT_FILE", &ca)
                .env("SFX_TIMEOUT", "5s")
                .args(args)
                .output()
                .unwrap()
        };
        let out = sfx(&["orgs", "--json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let names: HashSet<String> = stdout_json(&out)
            .as_array()
            .expect("an array")
            .iter()
            .filter_map(|o| o["org"].as_str().map(String::from))
            .collect();
        assert_eq!(names, HashSet::from([a.to_string(), b.to_string()]));
        let out = sfx(&["doctor", "--json"]);
        let s = &stdout_json(&out)["shared"];
        assert_eq!(
            (s["reachable"].as_bool(), s["cluster_nodes"].as_u64()),
            (Some(true), Some(3)),
            "{s}"
        );
        // Without the CA, the first node already refuses: no clear-text fallback.
        let out = t
            .sfx()
            .env("SFX_STORE", c.url(node))
            .env("SFX_TIMEOUT", "5s")
            .arg("orgs")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("TLS"), "{}", text(&out.stderr));
    }
}

#[test]
fn any_node_serves_reads_leases_pipelines_and_doctor_and_a_stale_map_follows_moved() {
    let c = RedisCluster::start();
    assert_ne!(
        c.owner(c.slot(&org_key("a"))),
        c.owner(c.slot(&org_key("b"))),
        "the test wants two orgs on two nodes"
    );
    let meta = serde_json::to_string(&record("a")).unwrap();
    c.cli(&["HSET", &org_key("a"), "meta", &meta, "v", "3"]);
    let m2 = serde_json::to_string(&record("b")).unwrap();
    c.cli(&["HSET", &org_key("b"), "meta", &m2, "v", "4"]);
    c.cli(&["SADD", "sfx:orgs", "a", "b"]);
    for n in 0..3 {
        let s = store(&c, n);
        s.set_default(Some("a")).unwrap();
        assert_eq!(s.default_alias().unwrap().as_deref(), Some("a"));
        assert_eq!(s.read_org("a").unwrap().unwrap().1, 3);
        let (_, orgs) = s.list().unwrap();
        assert_eq!(orgs.len(), 2);
        drop(s.lease("a", Duration::from_secs(1)).unwrap());
        drop(s.lease("a", Duration::from_secs(1)).unwrap());
        assert_eq!(s.probe().unwrap().cluster_nodes, Some(3));
    }
    // A process that learnt the map, then the org's slot moves.
    let s = store(&c, 0);
    assert_eq!(s.read_org("a").unwrap().unwrap().1, 3);
    let slot = c.slot(&org_key("a"));
    c.move_slot(slot, (c.owner(slot) + 1) % 3);
    assert_eq!(s.read_org("a").unwrap().unwrap().1, 3);
    let (_, orgs) = s.list().unwrap();
    assert_eq!(orgs.len(), 2);
}

/// A fake cluster node that answers every command with `MOVED` (to itself, or
/// to `elsewhere`) and `CLUSTER SLOTS` with `slots` (raw RESP).
fn redirecting_node(elsewhere: Option<u16>, slots: &'static str) -> u16 {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let target = elsewhere.unwrap_or(port);
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = c.read(&mut chunk) else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    // Answer each complete command (an array of bulk strings).
                    while let Some((args, used)) = parse_command(&buf) {
                        buf.drain(..used);
                        let reply = if args
                            .first()
                            .is_some_and(|a| a.eq_ignore_ascii_case("CLUSTER"))
                        {
                            slots.replace("PORT", &port.to_string())
                        } else {
                            format!("-MOVED 1 127.0.0.1:{target}\r\n")
                        };
                        if c.write_all(reply.as_bytes()).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

fn parse_command(b: &[u8]) -> Option<(Vec<String>, usize)> {
    let line = |at: usize| -> Option<(usize, usize)> {
        let end = b.get(at..)?.windows(2).position(|w| w == b"\r\n")? + at;
        let n = std::str::from_utf8(b.get(at + 1..end)?)
            .ok()?
            .parse()
            .ok()?;
        Some((n, end + 2))
    };
    let (n, mut at) = line(0)?;
    let mut args = Vec::new();
    for _ in 0..n {
        let (len, start) = line(at)?;
        args.push(String::from_utf8_lossy(b.get(start..start + len)?).into_owned());
        at = start + len + 2;
    }
    (at <= b.len()).then_some((args, at))
}

#[test]
fn a_node_that_redirects_for_ever_or_sends_a_broken_slot_map_is_exit_6_within_the_timeout() {
    let t = T::new();
    t.fake.expect_no_requests();
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let itself = "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:PORT\r\n";
    let cases = [
        (redirecting_node(None, itself), "kept redirecting one call"),
        (redirecting_node(None, "*1\r\n:5\r\n"), "could not be read"),
        (
            redirecting_node(None, "-ERR no\r\n"),
            "did not give its slot map",
        ),
        (
            redirecting_node(Some(refused), itself),
            "refused the connection",
        ),
    ];
    for (port, says) in cases {
        for args in [&["orgs"][..], &["token"], &["doctor"]] {
            let started = std::time::Instant::now();
            let out = t
                .sfx()
                .env("SFX_STORE", format!("redis://127.0.0.1:{port}"))
                .env("SFX_STORE_KEY", key_b64(1))
                .env("SFX_TIMEOUT", "2s")
                .args(args)
                .output()
                .unwrap();
            let took = started.elapsed();
            let err = text(&out.stderr) + &text(&out.stdout);
            assert_eq!(out.status.code(), Some(6), "{args:?} on {port}: {err}");
            assert!(took < Duration::from_secs(5), "{args:?} took {took:?}");
            assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
            assert!(err.contains(says), "{args:?}, expected {says:?}: {err}");
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}

#[test]
fn a_new_store_key_takes_over_an_emptied_cluster_store() {
    let mut f = Fleet::new();
    f.login(0, "prod");
    f.sfx(1).args(["logout", "-o", "prod"]).assert().success();
    // Key rotation: every org out, then in again under the new key.
    f.key = key_b64(43);
    f.login(2, "prod");
    let token = f.token(1, "prod");
    assert!(f.t.fake.is_active(&token));
    // The old key no longer opens the store.
    f.key = key_b64(42);
    let out = f.sfx(0).args(["token", "-o", "prod"]).output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
}

#[test]
fn the_documented_acl_lines_work_on_every_node_of_a_cluster() {
    let f = Fleet::new();
    for (user, pw) in [
        ("sfx-reader", "pw-reader"),
        ("sfx-refresher", "pw-refresher"),
    ] {
        let line = crate::readers::acl_line(user, pw);
        let args: Vec<&str> = line.iter().map(String::as_str).collect();
        for node in 0..3 {
            assert_eq!(f.c.node_cli(node, &args).trim(), "OK", "{line:?}");
        }
    }
    let as_user = |user: &str, pw: &str, node: usize| {
        format!("redis://{user}:{pw}@127.0.0.1:{}", f.c.ports[node])
    };
    // Each through a node that does not hold the org.
    let other = other_node(&f.c, f.c.slot(&org_key("prod")));
    f.sfx(0)
        .env("SFX_STORE", as_user("sfx-refresher", "pw-refresher", other))
        .args(["login", "--auth-url", "-", "--alias", "prod"])
        .write_stdin(f.t.auth_url())
        .assert()
        .success();
    f.expire("prod");
    let grants = f.t.fake.count_grant("refresh_token");
    let out = f
        .sfx(0)
        .env("SFX_STORE", as_user("sfx-refresher", "pw-refresher", other))
        .arg("token")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(f.t.fake.count_grant("refresh_token"), grants + 1);
    let at = text(&out.stdout).trim().to_string();
    let reader_key = crate::readers::reader_of(&f.key);
    for node in 0..3 {
        let reader = |args: &[&str]| {
            f.sfx(1)
                .env("SFX_STORE", as_user("sfx-reader", "pw-reader", node))
                .env("SFX_STORE_KEY", &reader_key)
                .args(args)
                .output()
                .unwrap()
        };
        let out = reader(&["token"]);
        assert!(out.status.success(), "node {node}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), at);
        let out = reader(&["orgs"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        // The reader's user may not run CLUSTER INFO: doctor still knows it
        // is a cluster.
        let d = stdout_json(&reader(&["doctor", "--json"]));
        assert!(d["shared"]["cluster_nodes"].is_u64(), "{d}");
        assert_eq!(d["shared"]["key_kind"], "reader", "{d}");
        assert_eq!(d["shared"]["key"], "works", "{d}");
    }
}
