//! `sfx introspect`: every field, times converted, one request.

use crate::common::*;
use predicates::prelude::*;

#[test]
fn introspect_shows_the_answer_as_received_plus_rfc3339_times() {
    let t = T::new();
    let token = t.login("prod");
    t.fake.clear_requests();
    let out = t.sfx().args(["introspect", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v = stdout_json(&out);
    assert_eq!(v["active"], true);
    assert_eq!(v["client_id"], DEFAULT_CLIENT_ID);
    assert_eq!(v["username"], DEFAULT_USERNAME);
    assert_eq!(v["exp"], t.fake.session_exp(&token).unwrap());
    for k in ["exp_at", "iat_at", "nbf_at"] {
        assert!(v[k].as_str().unwrap().ends_with('Z'), "{k}");
    }
    assert_eq!(t.fake.requests().len(), 1);
    let req = &t.fake.requests()[0];
    assert_eq!(req.path, "/services/oauth2/introspect");
    assert_eq!(req.param("token"), Some(token.as_str()));
    assert_eq!(req.param("token_type_hint"), Some("access_token"));
    assert_eq!(req.param("client_secret"), Some(DEFAULT_CLIENT_SECRET));
}

#[test]
fn human_introspection_shows_local_utc_and_relative_times_without_the_token() {
    let t = T::new();
    let token = t.login("prod");
    // A fixed winter instant (TZ is Europe/Paris, +01:00 in January), so the text
    // does not depend on the day the test runs (issue #11); the relative part is
    // checked against the test's own clock, with a margin for a slow run.
    let exp = 1_894_708_800; // 2030-01-15T12:00:00Z
    t.fake.set_session_exp(&token, exp);
    let out = t.sfx().args(["introspect"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    let row = s
        .lines()
        .find(|l| l.contains("exp") && !l.contains("exp_"))
        .unwrap_or_else(|| panic!("no exp row: {s}"));
    assert!(
        row.contains("2030-01-15 13:00:00 +01:00 · 2030-01-15T12:00:00Z · in "),
        "{row}"
    );
    let days = (exp - now()) / 86_400;
    assert!(
        row.contains(&format!("in {days}d ")) || row.contains(&format!("in {}d ", days + 1)),
        "{row}"
    );
    assert!(!s.contains(&token));
}

#[test]
fn introspect_refresh_asks_about_the_refresh_token() {
    let t = T::new();
    t.login("prod");
    t.fake.clear_requests();
    let v = stdout_json(
        &t.sfx()
            .args(["introspect", "--refresh", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(v["active"], true);
    assert_eq!(v["token_type"], "refresh_token");
    assert_eq!(
        t.fake.requests()[0].param("token_type_hint"),
        Some("refresh_token")
    );
}

#[test]
fn an_inactive_token_exits_3() {
    let t = T::new();
    let token = t.login("prod");
    t.fake.revoke_token(&token);
    t.sfx()
        .args(["introspect", "--json"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("\"active\":false"))
        .stderr(predicate::str::contains("another connected app"));
}
