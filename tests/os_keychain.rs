//! The real OS keychain on every platform (issue #22): the real `sfx` binary, with
//! its default store, against the in-repo fake. On macOS (the login keychain) and
//! Windows (Credential Manager) these run in the CI workflow's runners
//! (`.github/workflows/ci.yml`); on Linux they need a Secret Service, so they are
//! ignored in a plain `cargo test` and `scripts/test.sh` runs them (with
//! `--include-ignored`) inside `.ci/with-keyring.sh`.
//!
//! A test target of its own, apart from `tests/integration.rs` (whose harness is
//! Unix-only), so it builds on Windows. Each test uses aliases of its own and
//! deletes its entries, also when it fails.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use fake_salesforce::{DEFAULT_CLIENT_ID, DEFAULT_USERNAME, FakeSalesforce};

/// What the platform's keychain and networking need from the environment; the
/// rest is dropped so no SFX_* variable of the machine leaks in.
const KEEP: [&str; 13] = [
    "PATH",
    "HOME",
    "DBUS_SESSION_BUS_ADDRESS",
    "XDG_RUNTIME_DIR",
    "SystemRoot",
    "windir",
    "SystemDrive",
    "USERPROFILE",
    "APPDATA",
    "LOCALAPPDATA",
    "TEMP",
    "TMP",
    "USERNAME",
];

fn sfx(home: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sfx"));
    c.env_clear();
    for k in KEEP {
        if let Some(v) = std::env::var_os(k) {
            c.env(k, v);
        }
    }
    c.env("SFX_HOME", home)
        .env("SFX_NO_INPUT", "1")
        .env("NO_COLOR", "1")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("run sfx");
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().expect("wait for sfx")
}

fn ok(home: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let o = sfx(home, args, stdin);
    assert!(
        o.status.success(),
        "sfx {args:?} exited {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// A run-unique alias suffix: tests of several runs may share one keychain.
fn unique() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}{}", std::process::id(), nanos % 1_000_000_000)
}

/// Logs the aliases out (deleting their keychain entries) when the test ends.
struct Cleanup<'a> {
    home: &'a Path,
    aliases: Vec<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for a in &self.aliases {
            let _ = sfx(self.home, &["logout", "-o", a], None);
        }
    }
}

#[test]
#[cfg_attr(
    target_os = "linux",
    ignore = "needs a Secret Service: scripts/test.sh runs it in a private D-Bus session"
)]
fn login_keeps_the_secrets_in_the_os_keychain_and_a_second_process_reads_them() {
    let fake = FakeSalesforce::start();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("sfx-home");
    let alias = format!("kc{}", unique());
    let _cleanup = Cleanup {
        home: &home,
        aliases: vec![alias.clone()],
    };

    let doctor = ok(&home, &["doctor", "--json"], None);
    let doctor: serde_json::Value = serde_json::from_str(&doctor).unwrap();
    assert_eq!(doctor["keychain"]["works"], true, "sfx doctor: {doctor}");

    let auth_url = fake.auth_url(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    ok(
        &home,
        &["login", "--auth-url", "-", "--alias", &alias],
        Some(&auth_url),
    );
    let meta = std::fs::read_to_string(home.join("orgs.json")).unwrap();
    let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["orgs"][&alias]["store"], "keychain");
    assert!(!home.join("secrets.json").exists(), "no secret on disk");

    // A second process reads the token the first stored: the real keychain.
    let first = ok(&home, &["token", "-o", &alias], None);
    assert!(first.starts_with("00D"), "{first}");
    let raw = std::fs::read_to_string(home.join("orgs.json")).unwrap();
    assert!(!raw.contains(&first), "the metadata file holds the token");

    // A refresh replaces the stored token; the next process sees the new one.
    ok(&home, &["refresh", "-o", &alias], None);
    let second = ok(&home, &["token", "-o", &alias], None);
    assert_ne!(first, second);

    ok(&home, &["logout", "-o", &alias], None);
    let after = sfx(&home, &["token", "-o", &alias], None);
    assert_eq!(after.status.code(), Some(4), "the org is gone after logout");
}

/// Windows Credential Manager compares target names without regard to case: orgs
/// whose aliases differ only in case must keep separate entries.
#[test]
#[cfg_attr(
    target_os = "linux",
    ignore = "needs a Secret Service: scripts/test.sh runs it in a private D-Bus session"
)]
fn aliases_that_differ_only_in_case_keep_separate_keychain_entries() {
    let fake = FakeSalesforce::start();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("sfx-home");
    let id = unique();
    let upper = format!("Case{id}");
    let lower = format!("case{id}");
    let _cleanup = Cleanup {
        home: &home,
        aliases: vec![upper.clone(), lower.clone()],
    };

    for a in [&upper, &lower] {
        let auth_url = fake.auth_url(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
        ok(
            &home,
            &["login", "--auth-url", "-", "--alias", a],
            Some(&auth_url),
        );
    }
    let t_upper = ok(&home, &["token", "-o", &upper], None);
    let t_lower = ok(&home, &["token", "-o", &lower], None);
    assert_ne!(t_upper, t_lower, "two orgs, two tokens");

    // Logging one out leaves the other's secrets in place.
    ok(&home, &["logout", "-o", &lower], None);
    assert_eq!(ok(&home, &["token", "-o", &upper], None), t_upper);
    ok(&home, &["refresh", "-o", &upper], None);
}
