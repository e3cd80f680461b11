//! `sfx orgs`: metadata only (never the keychain), masked tokens, `--check`.

use crate::common::*;
use predicates::prelude::*;

#[test]
fn orgs_lists_stored_orgs_with_the_masked_token_only() {
    let t = T::new();
    let token = t.login("prod");
    t.sfx()
        .args([
            "login",
            "--auth-url",
            "-",
            "--alias",
            "dev",
            "--set-default",
        ])
        .write_stdin(t.auth_url())
        .assert()
        .success();
    t.fake.clear_requests();
    let out = t.sfx().args(["orgs"]).output().unwrap();
    assert!(out.status.success());
    let s = text(&out.stdout);
    assert!(
        s.contains("prod") && s.contains("dev") && s.contains(DEFAULT_USERNAME),
        "{s}"
    );
    assert!(
        s.contains(&format!("{}…{}", &token[..5], &token[token.len() - 4..])),
        "{s}"
    );
    assert!(!s.contains(&token));
    assert_eq!(t.fake.requests().len(), 0);
    let v = stdout_json(&t.sfx().args(["orgs", "--json"]).output().unwrap());
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let dev = rows.iter().find(|r| r["org"] == "dev").unwrap();
    assert_eq!(dev["default"], true);
    assert_eq!(dev["flow"], "auth_url");
    assert_eq!(dev["store"], "file");
    assert_eq!(dev["source"], "estimate");
    assert!(dev["expires_at_unix"].is_i64());
}

#[test]
fn orgs_and_offline_expires_never_open_the_keychain() {
    let t = T::new();
    t.login("prod");
    // Pretend the secrets live in the keychain, and make any keychain access fail fast.
    t.edit_org("prod", |o| o["store"] = "keychain".into());
    let no_keychain = |c: &mut assert_cmd::Command| {
        c.env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    };
    let mut c = t.bare();
    no_keychain(&mut c);
    c.args(["orgs"])
        .assert()
        .success()
        .stdout(predicate::str::contains("keychain"));
    let mut c = t.bare();
    no_keychain(&mut c);
    c.args(["expires", "--offline"]).assert().success();
    // A command that needs the secret says the keychain is unavailable: exit 6.
    let mut c = t.bare();
    no_keychain(&mut c);
    c.args(["expires"])
        .assert()
        .code(6)
        .stderr(predicate::str::contains("--insecure-storage"))
        .stderr(predicate::str::contains("SFX_AUTH_URL"));
}

#[test]
fn check_reports_each_orgs_status_and_exits_with_the_worst() {
    let t = T::new();
    t.login("good");
    let bad = t.login("bad");
    t.sfx().args(["orgs", "--check"]).assert().success();
    t.fake.expire_session(&bad);
    let out = t
        .sfx()
        .args(["orgs", "--check", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let v = stdout_json(&out);
    let status = |o: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|r| r["org"] == o)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status("good"), "ok");
    assert_eq!(status("bad"), "expired");
}

#[test]
fn empty_store_says_how_to_log_in() {
    let t = T::new();
    t.fake.expect_no_requests();
    t.sfx()
        .args(["orgs"])
        .assert()
        .success()
        .stdout(predicate::str::contains("sfx login"));
    t.sfx()
        .args(["orgs", "--json"])
        .assert()
        .success()
        .stdout("[]\n");
}

#[test]
fn check_reports_an_unreachable_org_and_exits_5() {
    let t = T::new();
    t.login("good");
    t.fake
        .inject("/services/oauth2/introspect", Fault::html(503).forever());
    let out = t
        .sfx()
        .args(["orgs", "--check", "--json", "--timeout", "2s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    let v = stdout_json(&out);
    assert_eq!(v[0]["status"], "unreachable");
    assert!(v[0]["message"].as_str().unwrap().contains("503"));
}
