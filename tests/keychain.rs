//! The real OS keychain (issue #6): the real `sfx` binary against a real Secret
//! Service (gnome-keyring), checked from outside with `secret-tool`.
//!
//! Three kinds of tests:
//! - **shared session** — the D-Bus session of the test run (CI runs `cargo test`
//!   under `.ci/with-keyring.sh`, which starts a throw-away unlocked
//!   gnome-keyring). Every test uses its own aliases and deletes its entries.
//! - **private bus** — a test starts its own `dbus-daemon` (and gnome-keyring)
//!   to make the keychain locked, absent or hung without disturbing the others.
//! - **no D-Bus at all** — needs nothing, always runs.
//!
//! The first two kinds need a Secret Service (or the tools to start one), so
//! they are marked ignored (`#[ignore = "…"]`) with that reason, and `scripts/test.sh` runs them with
//! `--include-ignored` inside `.ci/with-keyring.sh`. When they run, a missing
//! Secret Service fails them: none returns early and passes without running
//! (issue #11).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::*;
use predicates::prelude::*;

const KINDS: [&str; 3] = ["access-token", "refresh-token", "client-secret"];

/// Generous upper bound for a command facing a locked, absent or hung keychain
/// (each keychain call is bounded by 3 s).
const HANG_BOUND: Duration = Duration::from_secs(10);

/// A test that needs a Secret Service runs only where one is (it is
/// marked ignored (`#[ignore = "…"]`) otherwise): not finding one is a failure, never a silent pass.
fn missing(why: &str) -> ! {
    panic!(
        "this keychain test cannot run: {why}. Run it as scripts/test.sh does: `bash .ci/with-keyring.sh cargo test --test integration keychain:: -- --include-ignored` with dbus, gnome-keyring and libsecret-tools installed"
    );
}

fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// Does `org.freedesktop.secrets` have an owner on the bus at `addr`?
fn secret_service_on(addr: &str) -> bool {
    Command::new("dbus-send")
        .args([
            &format!("--bus={addr}"),
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.NameHasOwner",
            "string:org.freedesktop.secrets",
        ])
        .output()
        .is_ok_and(|o| o.status.success() && text(&o.stdout).contains("boolean true"))
}

/// A D-Bus session with a Secret Service, as the tests see it.
struct Bus {
    addr: String,
}

impl Bus {
    /// The test run's session, if a Secret Service answers there.
    fn shared() -> &'static Bus {
        static BUS: OnceLock<Result<Bus, String>> = OnceLock::new();
        let found = BUS.get_or_init(|| {
            for tool in ["dbus-send", "secret-tool"] {
                if !have(tool) {
                    return Err(format!("{tool} is not installed"));
                }
            }
            let addr = std::env::var("DBUS_SESSION_BUS_ADDRESS")
                .ok()
                .filter(|a| !a.trim().is_empty())
                .ok_or("DBUS_SESSION_BUS_ADDRESS is not set")?;
            if !secret_service_on(&addr) {
                return Err("no Secret Service reachable on the session bus".into());
            }
            Ok(Bus { addr })
        });
        match found {
            Ok(b) => b,
            Err(why) => missing(why),
        }
    }

    /// `sfx` with the default store (the keychain) on this bus.
    fn sfx(&self, t: &T) -> assert_cmd::Command {
        let mut c = t.bare();
        c.env("DBUS_SESSION_BUS_ADDRESS", &self.addr);
        c
    }

    fn secret_tool(&self, args: &[&str]) -> Output {
        Command::new("secret-tool")
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.addr)
            .output()
            .expect("run secret-tool")
    }

    /// The value of entry `<alias>:<kind>` of service `sfx`, looked up by attributes.
    fn lookup(&self, alias: &str, kind: &str) -> Option<String> {
        let account = format!("{alias}:{kind}");
        let o = self.secret_tool(&["lookup", "service", "sfx", "username", &account]);
        o.status.success().then(|| text(&o.stdout))
    }

    /// The labels of every item of service `sfx` that belongs to `alias`.
    fn labels(&self, alias: &str) -> Vec<String> {
        let o = self.secret_tool(&["search", "--all", "service", "sfx"]);
        let suffix = format!(" of Salesforce org {alias}");
        text(&o.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("label = "))
            .filter(|l| l.ends_with(&suffix))
            .map(str::to_string)
            .collect()
    }

    /// Remove one entry behind sfx's back.
    fn clear(&self, alias: &str, kind: &str) {
        let account = format!("{alias}:{kind}");
        self.secret_tool(&["clear", "service", "sfx", "username", &account]);
    }

    /// Lock the default collection (gnome-keyring's `login`) over D-Bus.
    fn lock(&self) {
        let o = Command::new("dbus-send")
            .args([
                &format!("--bus={}", self.addr),
                "--print-reply",
                "--dest=org.freedesktop.secrets",
                "/org/freedesktop/secrets",
                "org.freedesktop.Secret.Service.Lock",
                "array:objpath:/org/freedesktop/secrets/collection/login",
            ])
            .output()
            .expect("run dbus-send");
        assert!(o.status.success(), "lock: {}", text(&o.stderr));
    }
}

/// A test's aliases, unique per process, whose entries are removed afterwards
/// (the daemon is shared by the whole run).
struct Aliases<'a> {
    bus: &'a Bus,
    names: Vec<String>,
}

impl<'a> Aliases<'a> {
    fn new(bus: &'a Bus, test: &str, n: usize) -> Aliases<'a> {
        let pid = std::process::id();
        let names = (0..n).map(|i| format!("kc-{test}-{i}-{pid}")).collect();
        Aliases { bus, names }
    }
}

impl Drop for Aliases<'_> {
    fn drop(&mut self) {
        for a in &self.names {
            for k in KINDS {
                self.bus.clear(a, k);
            }
        }
    }
}

fn login(bus: &Bus, t: &T, alias: &str) {
    bus.sfx(t)
        .args(["login", "--auth-url", "-", "--alias", alias])
        .write_stdin(t.auth_url())
        .assert()
        .success();
}

fn token(bus: &Bus, t: &T, alias: &str) -> String {
    let out = bus.sfx(t).args(["token", "-o", alias]).output().unwrap();
    assert!(out.status.success(), "sfx token: {}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

// ---------------------------------------------------------------- shared session

#[test]
#[ignore = "needs a Secret Service: scripts/test.sh runs them in a private D-Bus session"]
fn login_stores_one_labelled_keychain_entry_per_secret_and_no_secret_on_disk() {
    let bus = Bus::shared();
    let names = Aliases::new(bus, "store", 1);
    let a = &names.names[0];
    let t = T::new();
    login(bus, &t, a);

    let values: Vec<String> = KINDS
        .iter()
        .map(|k| {
            bus.lookup(a, k)
                .unwrap_or_else(|| panic!("secret-tool finds no {a}:{k}"))
        })
        .collect();
    assert!(values.iter().all(|v| !v.is_empty()));
    let mut labels = bus.labels(a);
    labels.sort();
    assert_eq!(
        labels,
        [
            format!("sfx: access token of Salesforce org {a}"),
            format!("sfx: client secret of Salesforce org {a}"),
            format!("sfx: refresh token of Salesforce org {a}"),
        ]
    );
    assert_eq!(t.metadata()["orgs"][a]["store"], "keychain");
    let meta = std::fs::read_to_string(t.home().join("orgs.json")).unwrap();
    for v in &values {
        assert!(
            !meta.contains(v.as_str()),
            "the metadata file holds a secret"
        );
    }
    assert!(!t.home().join("secrets.json").exists());
    // A second process reads what the first stored: the real keychain, not a mock.
    assert_eq!(token(bus, &t, a), values[0]);
}

#[test]
#[ignore = "needs a Secret Service: scripts/test.sh runs them in a private D-Bus session"]
fn expires_refresh_and_token_read_and_update_the_keychain_entries() {
    let bus = Bus::shared();
    let names = Aliases::new(bus, "use", 1);
    let a = &names.names[0];
    let t = T::new();
    login(bus, &t, a);
    let first = bus.lookup(a, "access-token").unwrap();

    t.fake.clear_requests();
    bus.sfx(&t)
        .args(["expires", "-o", a])
        .assert()
        .success()
        .stdout(predicate::str::contains("introspection"));
    let introspect = t
        .fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/services/oauth2/introspect")
        .expect("one introspection");
    assert_eq!(introspect.param("token"), Some(first.as_str()));
    assert_eq!(
        introspect.param("client_secret"),
        bus.lookup(a, "client-secret").as_deref(),
        "the client secret comes from the keychain"
    );

    bus.sfx(&t).args(["refresh", "-o", a]).assert().success();
    let second = bus.lookup(a, "access-token").unwrap();
    assert_ne!(first, second, "refresh stores the new access token");
    assert!(t.fake.is_active(&second));
    assert_eq!(token(bus, &t, a), second);
    assert!(!t.home().join("secrets.json").exists());
}

#[test]
#[ignore = "needs a Secret Service: scripts/test.sh runs them in a private D-Bus session"]
fn logout_removes_every_keychain_entry_of_the_org() {
    let bus = Bus::shared();
    let names = Aliases::new(bus, "logout", 2);
    let (a, b) = (&names.names[0], &names.names[1]);
    let t = T::new();
    login(bus, &t, a);
    login(bus, &t, b);
    bus.sfx(&t).args(["logout", "-o", a]).assert().success();
    for k in KINDS {
        assert_eq!(bus.lookup(a, k), None, "{a}:{k} is left");
        assert!(bus.lookup(b, k).is_some(), "another org's {k} went too");
    }
    assert!(bus.labels(a).is_empty());
    assert_eq!(bus.labels(b).len(), 3);
}

#[test]
#[ignore = "needs a Secret Service: scripts/test.sh runs them in a private D-Bus session"]
fn logging_in_again_replaces_the_entries_and_leaves_no_orphans() {
    let bus = Bus::shared();
    let names = Aliases::new(bus, "relogin", 1);
    let a = &names.names[0];
    let t = T::new();
    login(bus, &t, a);
    let old = bus.lookup(a, "access-token").unwrap();
    // Over it, an org with an access token only: no refresh token, no client secret.
    let fresh = t
        .fake
        .grant_access_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    bus.sfx(&t)
        .args([
            "login",
            "--access-token",
            "-",
            "--instance-url",
            &t.fake.url(),
            "--alias",
            a,
        ])
        .write_stdin(fresh.clone())
        .assert()
        .success();
    assert_eq!(
        bus.lookup(a, "access-token").as_deref(),
        Some(fresh.as_str())
    );
    assert_ne!(fresh, old);
    assert_eq!(bus.lookup(a, "refresh-token"), None);
    assert_eq!(bus.lookup(a, "client-secret"), None);
    assert_eq!(
        bus.labels(a).len(),
        1,
        "exactly one entry: {:?}",
        bus.labels(a)
    );
}

#[test]
#[ignore = "needs a Secret Service: scripts/test.sh runs them in a private D-Bus session"]
fn moving_an_alias_to_the_file_store_by_logging_in_again_deletes_its_keychain_entries() {
    let bus = Bus::shared();
    let names = Aliases::new(bus, "tofile", 1);
    let a = &names.names[0];
    let t = T::new();
    login(bus, &t, a);
    bus.sfx(&t)
        .args([
            "login",
            "--auth-url",
            "-",
            "--alias",
            a,
            "--insecure-storage",
        ])
        .write_stdin(t.auth_url())
        .assert()
        .success()
        .stderr(predicate::str::contains("insecure storage"));
    assert!(bus.labels(a).is_empty(), "keychain copies are left");
    assert_eq!(t.metadata()["orgs"][a]["store"], "file");
    assert!(t.secrets()[a]["refresh-token"].is_string());
}

#[test]
#[ignore = "needs a Secret Service: scripts/test.sh runs them in a private D-Bus session"]
fn migrate_moves_secrets_from_the_file_into_the_keychain_and_back_without_a_login() {
    let bus = Bus::shared();
    let names = Aliases::new(bus, "migrate", 1);
    let a = &names.names[0];
    let t = T::new();
    t.login(a); // the file store
    let (at, rt) = (t.access_token(a), t.refresh_token(a));
    t.fake.clear_requests();

    let out = bus
        .sfx(&t)
        .args(["login", "--migrate", "-o", a, "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v = stdout_json(&out);
    assert_eq!(v["from"], "file");
    assert_eq!(v["to"], "keychain");
    assert_eq!(v["moved"], true);
    assert_eq!(t.fake.requests().len(), 0, "no request to Salesforce");
    assert_eq!(bus.lookup(a, "access-token"), Some(at.clone()));
    assert_eq!(bus.lookup(a, "refresh-token"), Some(rt.clone()));
    assert!(bus.lookup(a, "client-secret").is_some());
    assert!(t.secrets().get(a).is_none(), "a file copy is left");
    assert_eq!(t.metadata()["orgs"][a]["store"], "keychain");
    assert_eq!(token(bus, &t, a), at);

    // Again: nothing to move.
    bus.sfx(&t)
        .args(["login", "--migrate", "-o", a])
        .assert()
        .success()
        .stdout(predicate::str::contains("already in the OS keychain"));

    // And back to the file.
    bus.sfx(&t)
        .args(["login", "--migrate", "--insecure-storage", "-o", a])
        .assert()
        .success()
        .stdout(predicate::str::contains("Moved the secrets"));
    assert!(bus.labels(a).is_empty());
    assert_eq!(t.refresh_token(a), rt);
    assert_eq!(t.metadata()["orgs"][a]["store"], "file");
}

#[test]
#[ignore = "needs a Secret Service: scripts/test.sh runs them in a private D-Bus session"]
fn a_keychain_entry_removed_behind_sfxs_back_means_log_in_again() {
    let bus = Bus::shared();
    let names = Aliases::new(bus, "gone", 1);
    let a = &names.names[0];
    let t = T::new();
    login(bus, &t, a);
    bus.clear(a, "access-token");
    bus.sfx(&t)
        .args(["token", "-o", a])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("OS keychain has no access token"))
        .stderr(predicate::str::contains("log in again"));
    bus.clear(a, "refresh-token");
    bus.sfx(&t)
        .args(["refresh", "-o", a])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("log in again"));
}

#[test]
#[ignore = "needs a Secret Service: scripts/test.sh runs them in a private D-Bus session"]
fn doctor_reports_a_working_keychain_and_leaves_no_test_entry() {
    let bus = Bus::shared();
    let t = T::new();
    t.fake.expect_no_requests();
    let out = bus.sfx(&t).args(["doctor", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = stdout_json(&out);
    assert_eq!(v["keychain"]["backend"], "secret-service");
    assert_eq!(v["keychain"]["status"], "ok");
    assert_eq!(v["keychain"]["works"], true);
    assert_eq!(v["new_logins"], "keychain");
    // Other tests' logins probe the keychain on this bus too (each its own
    // entry, deleted within milliseconds): wait until none is left.
    let left = || {
        let o = bus.secret_tool(&["search", "--all", "service", "sfx"]);
        text(&o.stdout).contains("sfx-doctor:probe")
    };
    let started = Instant::now();
    while left() && started.elapsed() < HANG_BOUND {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!left(), "the test entry is left");
    bus.sfx(&t)
        .arg("doctor")
        .assert()
        .success()
        .stdout(predicate::str::contains("works"));
}

// ---------------------------------------------------------------- private buses

/// A `dbus-daemon` of our own (and maybe a gnome-keyring on it), stopped on drop.
struct PrivateBus {
    dir: tempfile::TempDir,
    addr: String,
    children: Vec<Child>,
}

impl PrivateBus {
    /// A bus with no Secret Service; `services` are D-Bus activation files
    /// (name → Exec line) it offers.
    fn start(needs: &[&str], services: &[(&str, String)]) -> PrivateBus {
        for tool in ["dbus-daemon", "dbus-send"].iter().chain(needs) {
            if !have(tool) {
                missing(&format!("{tool} is not installed"));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let svc = dir.path().join("services");
        std::fs::create_dir(&svc).unwrap();
        for (name, exec) in services {
            std::fs::write(
                svc.join(format!("{name}.service")),
                format!("[D-BUS Service]\nName={name}\nExec={exec}\n"),
            )
            .unwrap();
        }
        let conf = dir.path().join("bus.conf");
        std::fs::write(
            &conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <servicedir>{}</servicedir>
  <limit name="service_start_timeout">60000</limit>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                dir.path().join("bus").display(),
                svc.display()
            ),
        )
        .unwrap();
        let mut daemon = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .args(["--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        let mut addr = String::new();
        BufReader::new(daemon.stdout.take().unwrap())
            .read_line(&mut addr)
            .expect("dbus-daemon prints its address");
        let addr = addr.trim().to_string();
        assert!(addr.starts_with("unix:"), "dbus-daemon address: {addr:?}");
        PrivateBus {
            dir,
            addr,
            children: vec![daemon],
        }
    }

    /// Start gnome-keyring on this bus with a fresh, unlocked login keyring, and
    /// wait (with a deadline) until it owns org.freedesktop.secrets.
    fn with_keyring(services: &[(&str, String)]) -> PrivateBus {
        let mut bus = PrivateBus::start(&["gnome-keyring-daemon", "secret-tool"], services);
        let home = bus.dir.path();
        for d in ["data", "run"] {
            std::fs::create_dir(home.join(d)).unwrap();
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(home.join("run"), std::fs::Permissions::from_mode(0o700))
                .unwrap();
        }
        let mut gk = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_RUNTIME_DIR", home.join("run"))
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.addr)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gnome-keyring-daemon");
        gk.stdin.take().unwrap().write_all(b"test-pass").unwrap(); // closed: EOF ends the password
        bus.children.push(gk);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !secret_service_on(&bus.addr) {
            assert!(Instant::now() < deadline, "gnome-keyring did not come up");
            std::thread::sleep(Duration::from_millis(25));
        }
        bus
    }

    fn as_bus(&self) -> Bus {
        Bus {
            addr: self.addr.clone(),
        }
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn sleep_exec() -> String {
    let p = std::env::var_os("PATH").unwrap_or_default();
    let sleep: PathBuf = std::env::split_paths(&p)
        .map(|d| d.join("sleep"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| Path::new("/bin/sleep").to_path_buf());
    format!("{} 20", sleep.display())
}

#[test]
#[ignore = "needs a Secret Service: scripts/test.sh runs them in a private D-Bus session"]
fn a_locked_keychain_gives_exit_6_within_the_timeout_and_the_file_store_still_works() {
    let private = PrivateBus::with_keyring(&[]);
    let bus = private.as_bus();
    let t = T::new();
    login(&bus, &t, "prod");
    assert!(bus.lookup("prod", "access-token").is_some());
    bus.lock();

    let started = Instant::now();
    bus.sfx(&t)
        .args(["token"])
        .assert()
        .code(6)
        .stderr(predicate::str::contains("locked"))
        .stderr(predicate::str::contains("--insecure-storage"))
        .stderr(predicate::str::contains("SFX_AUTH_URL"));
    assert!(started.elapsed() < HANG_BOUND, "{:?}", started.elapsed());

    let out = bus.sfx(&t).args(["doctor", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(stdout_json(&out)["keychain"]["status"], "locked");

    // The way out works while the keychain stays locked; the copies it cannot
    // delete are reported, not silently left.
    let started = Instant::now();
    bus.sfx(&t)
        .args([
            "login",
            "--auth-url",
            "-",
            "--alias",
            "prod",
            "--insecure-storage",
        ])
        .write_stdin(t.auth_url())
        .assert()
        .success()
        .stderr(predicate::str::contains("could not be deleted"));
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(t.metadata()["orgs"]["prod"]["store"], "file");
    bus.sfx(&t).args(["token"]).assert().success();
}

#[test]
#[ignore = "needs a Secret Service: scripts/test.sh runs them in a private D-Bus session"]
fn a_locked_keychain_whose_unlock_prompt_never_answers_gives_exit_6_after_3_s() {
    // The password prompter is "activated" but never appears: without sfx's own
    // bound, the unlock would wait for it (keyring's prompt wait has no limit).
    let services = [("org.gnome.keyring.SystemPrompter", sleep_exec())];
    let private = PrivateBus::with_keyring(&services);
    let bus = private.as_bus();
    let t = T::new();
    login(&bus, &t, "prod");
    bus.lock();
    let started = Instant::now();
    bus.sfx(&t)
        .args(["token"])
        .assert()
        .code(6)
        .stderr(predicate::str::contains("did not answer within 3 s"))
        .stderr(predicate::str::contains("--insecure-storage"));
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(3), "{took:?}");
    assert!(took < HANG_BOUND, "{took:?}");
}

#[test]
#[ignore = "needs a Secret Service: scripts/test.sh runs them in a private D-Bus session"]
fn a_bus_without_a_secret_service_is_named_as_such() {
    let private = PrivateBus::start(&[], &[]);
    let bus = private.as_bus();
    let t = T::new();
    t.fake.expect_no_requests();
    bus.sfx(&t)
        .args(["login", "--auth-url", "-", "--alias", "prod"])
        .write_stdin(t.auth_url())
        .assert()
        .code(6)
        .stderr(predicate::str::contains("no Secret Service provider"))
        .stderr(predicate::str::contains("--insecure-storage"));
    assert!(!t.home().join("orgs.json").exists(), "nothing is stored");
    let out = bus.sfx(&t).args(["doctor", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(stdout_json(&out)["keychain"]["status"], "no_provider");
}

#[test]
#[ignore = "needs a Secret Service: scripts/test.sh runs them in a private D-Bus session"]
fn a_hung_secret_service_gives_exit_6_not_a_hang() {
    // The bus "activates" a provider that never answers.
    let services = [("org.freedesktop.secrets", sleep_exec())];
    let private = PrivateBus::start(&["sleep"], &services);
    let bus = private.as_bus();
    let t = T::new();
    t.fake.expect_no_requests();
    let started = Instant::now();
    bus.sfx(&t)
        .args(["login", "--auth-url", "-", "--alias", "prod"])
        .write_stdin(t.auth_url())
        .assert()
        .code(6)
        .stderr(predicate::str::contains("did not answer"))
        .stderr(predicate::str::contains("--insecure-storage"));
    assert!(started.elapsed() < HANG_BOUND, "{:?}", started.elapsed());
    let started = Instant::now();
    let out = bus.sfx(&t).args(["doctor", "--json"]).output().unwrap();
    assert!(started.elapsed() < HANG_BOUND, "{:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(stdout_json(&out)["keychain"]["status"], "no_answer");
}

// ---------------------------------------------------------------- no D-Bus at all

fn nowhere(t: &T) -> assert_cmd::Command {
    let mut c = t.bare();
    c.env(
        "DBUS_SESSION_BUS_ADDRESS",
        format!("unix:path={}", t.dir.path().join("no-bus").display()),
    );
    c
}

#[test]
fn without_dbus_login_exits_6_naming_the_ways_out_and_insecure_storage_works() {
    let t = T::new();
    let started = Instant::now();
    nowhere(&t)
        .args(["login", "--auth-url", "-", "--alias", "prod"])
        .write_stdin(t.auth_url())
        .assert()
        .code(6)
        .stderr(predicate::str::contains("no D-Bus session"))
        .stderr(predicate::str::contains("--insecure-storage"))
        .stderr(predicate::str::contains("SFX_AUTH_URL"));
    assert!(started.elapsed() < HANG_BOUND);
    assert!(!t.home().join("orgs.json").exists(), "nothing is stored");

    nowhere(&t)
        .args([
            "login",
            "--auth-url",
            "-",
            "--alias",
            "prod",
            "--insecure-storage",
        ])
        .write_stdin(t.auth_url())
        .assert()
        .success();
    assert_eq!(t.metadata()["orgs"]["prod"]["store"], "file");
    nowhere(&t).args(["token"]).assert().success();
    // No D-Bus variable at all behaves the same.
    t.bare()
        .args(["login", "--auth-url", "-", "--alias", "other"])
        .write_stdin(t.auth_url())
        .assert()
        .code(6)
        .stderr(predicate::str::contains(
            "DBUS_SESSION_BUS_ADDRESS is not set",
        ));
}

#[test]
fn doctor_without_dbus_explains_and_fails_only_when_the_keychain_is_needed() {
    let t = T::new();
    nowhere(&t)
        .arg("doctor")
        .assert()
        .code(6)
        .stdout(predicate::str::contains("no D-Bus session"))
        .stdout(predicate::str::contains("--insecure-storage"))
        .stdout(predicate::str::contains("SFX_AUTH_URL"));
    // With the file store chosen and no org in the keychain, nothing needs it.
    let out = t.sfx().args(["doctor", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = stdout_json(&out);
    assert_eq!(v["keychain"]["status"], "no_dbus_session");
    assert_eq!(v["keychain"]["works"], false);
    assert_eq!(v["new_logins"], "file");
    assert_eq!(v["needs_keychain"], false);
    // An org in the keychain needs it again.
    t.login("prod");
    t.edit_org("prod", |o| o["store"] = "keychain".into());
    t.sfx().args(["doctor", "-q"]).assert().code(6).stdout("");
}

#[test]
fn a_secret_missing_from_the_file_store_means_log_in_again() {
    let t = T::new();
    t.login("prod");
    let path = t.home().join("secrets.json");
    let mut v = t.secrets();
    v["prod"].as_object_mut().unwrap().remove("access-token");
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    t.sfx()
        .args(["token"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("secrets file has no access token"))
        .stderr(predicate::str::contains("log in again"));
}

#[test]
fn migrate_with_nothing_to_move_says_so_and_opens_no_keychain() {
    let t = T::new();
    t.login("prod");
    nowhere(&t)
        .args(["login", "--migrate", "--insecure-storage"])
        .assert()
        .success()
        .stdout(predicate::str::contains("already in the secrets file"));
    // Into an unusable keychain: exit 6, and the file copy stays.
    nowhere(&t)
        .args(["login", "--migrate"])
        .assert()
        .code(6)
        .stderr(predicate::str::contains("--insecure-storage"));
    assert_eq!(t.metadata()["orgs"]["prod"]["store"], "file");
    assert!(t.secrets()["prod"]["refresh-token"].is_string());
    t.sfx()
        .args(["login", "--migrate", "--alias", "x"])
        .assert()
        .code(2);
}

#[test]
fn doctor_and_migrate_json_keys_are_pinned() {
    let t = T::new();
    t.login("prod");
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let v = stdout_json(&t.sfx().args(["doctor", "--json"]).output().unwrap());
    assert_eq!(
        keys(&v),
        [
            "environment",
            "file",
            "home",
            "keychain",
            "needs_keychain",
            "new_logins",
            "orgs",
            "shared"
        ]
    );
    assert_eq!(
        keys(&v["keychain"]),
        [
            "backend",
            "elapsed_ms",
            "message",
            "name",
            "status",
            "works"
        ]
    );
    assert_eq!(keys(&v["file"]), ["exists", "mode", "path"]);
    assert_eq!(v["file"]["mode"], "0600");
    assert_eq!(
        v["orgs"],
        serde_json::json!([{"org": "prod", "store": "file"}])
    );
    let v = stdout_json(
        &t.sfx()
            .args(["login", "--migrate", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(keys(&v), ["from", "moved", "org", "to"]);
    assert_eq!(v["moved"], false);
}

#[test]
#[ignore = "needs a Secret Service: scripts/test.sh runs them in a private D-Bus session"]
fn logins_at_the_same_moment_each_pass_the_keychain_check_before_sending() {
    // Every login first writes, reads back and deletes a test entry (issue #19):
    // each process has its own, so parallel logins never read each other's.
    let bus = Bus::shared();
    let t = T::new();
    // Four: the fake, like Salesforce, keeps five approvals per user and app.
    let names = Aliases::new(bus, "parallel", 4);
    std::thread::scope(|s| {
        for a in &names.names {
            let (bus, t) = (bus, &t);
            s.spawn(move || {
                let out = bus
                    .sfx(t)
                    .args(["login", "--auth-url", "-", "--alias", a])
                    .write_stdin(t.auth_url())
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{a}: {}", text(&out.stderr));
            });
        }
    });
    assert_eq!(t.fake.count("/services/oauth2/token"), 4);
}
