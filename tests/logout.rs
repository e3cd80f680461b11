//! `sfx logout`: remove local credentials; `--revoke` first; defaults.

use crate::common::*;
use predicates::prelude::*;

#[test]
fn logout_removes_the_org_and_its_secrets_without_a_request() {
    let t = T::new();
    t.login("prod");
    t.fake.clear_requests();
    t.sfx()
        .args(["logout"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Logged out of prod"));
    assert_eq!(t.fake.requests().len(), 0);
    assert!(t.metadata()["orgs"].as_object().unwrap().is_empty());
    assert!(t.secrets().get("prod").is_none());
}

#[test]
fn logout_revoke_revokes_the_refresh_token_with_one_request() {
    let t = T::new();
    let at = t.login("prod");
    let rt = t.refresh_token("prod");
    t.fake.clear_requests();
    let v = stdout_json(
        &t.sfx()
            .args(["logout", "--revoke", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(v["revoked"], true);
    assert_eq!(t.fake.requests().len(), 1);
    assert_eq!(t.fake.requests()[0].param("token"), Some(rt.as_str()));
    assert!(!t.fake.is_active(&rt));
    assert!(
        !t.fake.is_active(&at),
        "revoking the refresh token ends its access tokens"
    );
}

#[test]
fn a_failed_revocation_keeps_the_credentials() {
    let t = T::new();
    t.login("prod");
    t.fake
        .inject("/services/oauth2/revoke", Fault::status(503).forever());
    t.fake.expect_hit("/services/oauth2/revoke");
    t.sfx()
        .args(["logout", "--revoke", "--timeout", "2s"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("without --revoke"));
    assert!(t.metadata()["orgs"]["prod"].is_object());
}

#[test]
fn logging_out_of_the_default_leaves_no_default_and_the_single_remaining_org_is_used() {
    let t = T::new();
    t.login("a");
    t.sfx()
        .args(["login", "--auth-url", "-", "--alias", "b", "--set-default"])
        .write_stdin(t.auth_url())
        .assert()
        .success();
    t.login("c");
    t.sfx().args(["logout", "-o", "b"]).assert().success();
    assert!(t.metadata()["default"].is_null());
    t.sfx()
        .args(["expires", "--offline"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--set-default"));
    t.sfx().args(["logout", "-o", "c"]).assert().success();
    t.sfx()
        .args(["expires", "--offline", "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"org\":\"a\""));
}

#[test]
fn logout_all_removes_every_org() {
    let t = T::new();
    t.login("a");
    t.login("b");
    let v = stdout_json(
        &t.sfx()
            .args(["logout", "--all", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert!(t.metadata()["orgs"].as_object().unwrap().is_empty());
}

#[test]
fn logout_revoke_revokes_the_access_token_when_there_is_no_refresh_token() {
    let t = T::new();
    let at = t.login_access_token("a");
    t.fake.clear_requests();
    t.sfx().args(["logout", "--revoke"]).assert().success();
    assert_eq!(t.fake.requests().len(), 1);
    assert_eq!(t.fake.requests()[0].param("token"), Some(at.as_str()));
    assert!(!t.fake.is_active(&at));
}
