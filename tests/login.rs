//! `sfx login` by import: auth URL, refresh token, access token.

use crate::common::*;
use predicates::prelude::*;

#[test]
fn login_with_auth_url_from_stdin_stores_the_org_and_its_secrets() {
    let t = T::new();
    let out = t
        .sfx()
        .args(["login", "--auth-url", "-", "--alias", "prod", "--json"])
        .write_stdin(t.auth_url())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v = stdout_json(&out);
    assert_eq!(v["org"], "prod");
    assert_eq!(v["username"], DEFAULT_USERNAME);
    assert_eq!(v["instance_url"], t.fake.url());
    assert_eq!(v["refresh_token_rotated"], false);
    assert_eq!(v["source"], "estimate");
    assert!(
        v.get("access_token").is_none(),
        "no token values without --show-token"
    );
    // One refresh to verify, one userinfo to learn the user: nothing more.
    assert_eq!(t.fake.count_grant("refresh_token"), 1);
    assert_eq!(t.fake.count("/services/oauth2/userinfo"), 1);
    assert_eq!(t.fake.requests().len(), 2);

    let meta = t.metadata();
    let rec = &meta["orgs"]["prod"];
    assert_eq!(rec["username"], DEFAULT_USERNAME);
    assert_eq!(rec["client_id"], DEFAULT_CLIENT_ID);
    assert_eq!(rec["store"], "file");
    assert_eq!(rec["flow"], "auth_url");
    let token = t.access_token("prod");
    assert!(
        t.fake.is_active(&token),
        "the stored token is the one the server minted"
    );
    let meta_text = std::fs::read_to_string(t.home().join("orgs.json")).unwrap();
    assert!(!meta_text.contains(&token), "metadata never holds a secret");
    assert!(!meta_text.contains(&t.refresh_token("prod")));
    assert!(!meta_text.contains(DEFAULT_CLIENT_SECRET));
    assert_eq!(t.secrets()["prod"]["client-secret"], DEFAULT_CLIENT_SECRET);
}

#[cfg(unix)]
#[test]
fn store_files_are_private() {
    let t = T::new();
    t.login("prod");
    assert_eq!(mode(&t.home()), 0o700);
    assert_eq!(mode(&t.home().join("secrets.json")), 0o600);
    assert_eq!(mode(&t.home().join("orgs.json")), 0o600);
}

#[test]
fn insecure_storage_says_so_on_stderr_every_write() {
    let t = T::new();
    t.bare()
        .args([
            "login",
            "--insecure-storage",
            "--auth-url",
            "-",
            "--alias",
            "a",
        ])
        .write_stdin(t.auth_url())
        .assert()
        .success()
        .stderr(predicate::str::contains("unencrypted"));
    assert_eq!(t.metadata()["orgs"]["a"]["store"], "file");
    // The org stays in the file store for later commands, without the env switch.
    t.bare()
        .args(["refresh", "-o", "a"])
        .assert()
        .success()
        .stderr(predicate::str::contains("unencrypted"));
}

#[test]
fn username_is_the_alias_when_none_is_given_and_set_default_marks_it() {
    let t = T::new();
    t.sfx()
        .args(["login", "--auth-url", "-", "--set-default"])
        .write_stdin(t.auth_url())
        .assert()
        .success();
    let meta = t.metadata();
    assert!(meta["orgs"][DEFAULT_USERNAME].is_object());
    assert_eq!(meta["default"], DEFAULT_USERNAME);
}

#[test]
fn human_login_line_shows_the_masked_token_only() {
    let t = T::new();
    let out = t
        .sfx()
        .args(["login", "--auth-url", "-", "--alias", "p"])
        .write_stdin(t.auth_url())
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = t.access_token("p");
    let s = text(&out.stdout);
    assert!(
        s.contains(&format!("{}…{}", &token[..5], &token[token.len() - 4..])),
        "{s}"
    );
    assert!(!s.contains(&token));
    assert!(!text(&out.stderr).contains(&token));
}

#[test]
fn revoked_refresh_token_fails_login_with_exit_4_and_stores_nothing() {
    let t = T::new();
    let url = t.auth_url();
    let rt = url
        .split(':')
        .nth(3)
        .unwrap()
        .split('@')
        .next()
        .unwrap()
        .to_string();
    t.fake.revoke_token(&rt);
    t.sfx()
        .args(["login", "--auth-url", "-", "--alias", "x"])
        .write_stdin(url)
        .assert()
        .code(4)
        .stderr(predicate::str::contains("invalid_grant"))
        .stderr(predicate::str::contains(&rt).not());
    assert!(!t.home().join("orgs.json").exists());
    assert!(!t.home().join("secrets.json").exists());
}

#[test]
fn refresh_token_import_needs_client_id_and_instance_url() {
    let t = T::new();
    let rt = t
        .fake
        .grant_refresh_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    t.sfx()
        .args([
            "login",
            "--refresh-token",
            "-",
            "--instance-url",
            &t.fake.url(),
        ])
        .write_stdin(rt.clone())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--client-id"));
    t.sfx()
        .args([
            "login",
            "--refresh-token",
            "-",
            "--client-id",
            DEFAULT_CLIENT_ID,
            "--instance-url",
            &t.fake.url(),
            "--alias",
            "r",
        ])
        .env("SFX_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
        .write_stdin(rt)
        .assert()
        .success();
    assert_eq!(t.metadata()["orgs"]["r"]["flow"], "refresh_token");
    t.sfx().args(["refresh", "-o", "r"]).assert().success();
}

#[test]
fn a_token_value_on_the_command_line_is_refused() {
    let t = T::new();
    t.fake.expect_no_requests();
    t.sfx()
        .args([
            "login",
            "--refresh-token",
            "5Aep861secret",
            "--client-id",
            "x",
            "--instance-url",
            &t.fake.url(),
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("ps"))
        .stderr(predicate::str::contains("5Aep861secret").not());
}

#[test]
fn access_token_import_works_but_cannot_refresh() {
    let t = T::new();
    let at = t.login_access_token("a");
    assert_eq!(t.access_token("a"), at);
    t.sfx()
        .args(["refresh", "-o", "a"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("log in again"));
}

#[test]
fn a_dead_access_token_is_refused_at_import() {
    let t = T::new();
    let at = t
        .fake
        .grant_access_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    t.fake.expire_session(&at);
    t.sfx()
        .args([
            "login",
            "--access-token",
            "-",
            "--instance-url",
            &t.fake.url(),
        ])
        .write_stdin(at)
        .assert()
        .code(4);
    assert!(!t.home().join("orgs.json").exists());
}

#[test]
fn plain_http_to_a_non_loopback_host_is_refused_before_any_request() {
    let t = T::new();
    t.fake.expect_no_requests();
    t.sfx()
        .args([
            "login",
            "--access-token",
            "-",
            "--instance-url",
            "http://acme.my.salesforce.com",
        ])
        .write_stdin("00Dx!tok")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("https://"));
    t.sfx()
        .args(["login", "--auth-url", "-"])
        .write_stdin("force://id:sec:rt@127.0.0.1:1")
        .args(["--login-url", "http://example.com"])
        .assert()
        .code(2);
    assert_eq!(t.fake.requests().len(), 0);
}

#[test]
fn a_malformed_auth_url_is_a_usage_error_that_does_not_echo_it() {
    let t = T::new();
    t.fake.expect_no_requests();
    t.sfx()
        .args(["login", "--auth-url", "-"])
        .write_stdin("force://id:secret:SECRETTOKEN")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("force://<clientId>"))
        .stderr(predicate::str::contains("SECRETTOKEN").not());
}

#[test]
fn logging_in_again_under_the_same_alias_replaces_the_org() {
    let t = T::new();
    let first = t.login("p");
    let second = t.login("p");
    assert_ne!(first, second);
    assert_eq!(t.metadata()["orgs"].as_object().unwrap().len(), 1);
}

#[test]
fn an_auth_url_in_argv_works_but_warns_that_it_leaks() {
    let t = T::new();
    t.sfx()
        .args(["login", "--alias", "p", "--auth-url", &t.auth_url()])
        .assert()
        .success()
        .stderr(predicate::str::contains("shows in `ps`"));
}
