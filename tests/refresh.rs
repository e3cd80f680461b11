//! `sfx refresh`: one request, rotation stored first, `--if-expiring-within`,
//! `--format env`, and a dead refresh token ending in exit 4.

use crate::common::*;
use predicates::prelude::*;

#[test]
fn refresh_mints_and_stores_a_new_token_with_one_request() {
    let t = T::new();
    let old = t.login("prod");
    t.fake.clear_requests();
    let out = t.sfx().args(["refresh", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v = stdout_json(&out);
    assert_eq!(v["refresh_token_rotated"], false);
    assert_eq!(v["org"], "prod");
    let new = t.access_token("prod");
    assert_ne!(old, new);
    assert!(t.fake.is_active(&new));
    assert_eq!(t.fake.requests().len(), 1);
    assert_eq!(t.fake.count_grant("refresh_token"), 1);
    let req = &t.fake.requests()[0];
    assert_eq!(req.param("client_id"), Some(DEFAULT_CLIENT_ID));
    assert_eq!(req.param("client_secret"), Some(DEFAULT_CLIENT_SECRET));
}

#[test]
fn a_rotated_refresh_token_is_stored_and_the_next_refresh_uses_it() {
    let t = T::new();
    t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    t.login("prod");
    let rt1 = t.refresh_token("prod");
    let v = stdout_json(&t.sfx().args(["refresh", "--json"]).output().unwrap());
    assert_eq!(v["refresh_token_rotated"], true);
    let rt2 = t.refresh_token("prod");
    assert_ne!(rt1, rt2);
    assert!(!t.fake.is_active(&rt1), "the old one is spent");
    t.sfx().args(["refresh", "-q"]).assert().success();
    assert_ne!(t.refresh_token("prod"), rt2);
    assert!(
        t.metadata()["orgs"]["prod"]["rotates_refresh_token"]
            .as_bool()
            .unwrap()
    );
}

#[test]
fn a_revoked_refresh_token_exits_4_with_a_sentence_saying_to_log_in_again() {
    let t = T::new();
    t.login("prod");
    let before = std::fs::read(t.home().join("secrets.json")).unwrap();
    t.fake.revoke_token(&t.refresh_token("prod"));
    t.sfx()
        .args(["refresh"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("expired access/refresh token"))
        .stderr(predicate::str::contains("five approvals"))
        .stderr(predicate::str::contains(
            "log in again: `sfx login --alias prod",
        ));
    assert_eq!(
        std::fs::read(t.home().join("secrets.json")).unwrap(),
        before,
        "nothing stored changed"
    );
}

#[test]
fn if_expiring_within_skips_a_fresh_token_without_a_token_request() {
    let t = T::new();
    let token = t.login("prod");
    t.fake.clear_requests();
    t.sfx()
        .args(["refresh", "--if-expiring-within", "10m"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Not refreshed"));
    assert_eq!(t.token_requests(), 0);
    assert_eq!(t.access_token("prod"), token);
    t.sfx()
        .args(["refresh", "--if-expiring-within", "3h", "-q"])
        .assert()
        .success();
    assert_eq!(t.token_requests(), 1);
    assert_ne!(t.access_token("prod"), token);
}

#[test]
fn format_env_prints_bare_assignments() {
    let t = T::new();
    t.login("prod");
    let out = t
        .sfx()
        .args(["refresh", "--format", "env"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = t.access_token("prod");
    let url = t.fake.url();
    assert_eq!(
        text(&out.stdout),
        format!(
            "SFX_ACCESS_TOKEN={token}\nSFX_INSTANCE_URL={url}\nSF_ACCESS_TOKEN={token}\nSF_INSTANCE_URL={url}\nSF_TARGET_ORG={token}\nSF_ORG_INSTANCE_URL={url}\n"
        )
    );
}

#[test]
fn refresh_uses_the_instance_url_salesforce_returns_next_time() {
    let t = T::new();
    t.login("prod");
    t.sfx().args(["refresh", "-q"]).assert().success();
    assert_eq!(t.metadata()["orgs"]["prod"]["instance_url"], t.fake.url());
}
