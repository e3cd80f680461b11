//! `sfx expires`: jwt → introspection → cached → estimate, with `--within`,
//! `--format`, `--offline`, `--all`.

use crate::common::*;
use predicates::prelude::*;

#[test]
fn expires_reports_the_exp_the_server_holds() {
    let t = T::new();
    let token = t.login("prod");
    let server_exp = t.fake.session_exp(&token).unwrap();
    let out = t.sfx().args(["expires", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v = stdout_json(&out);
    assert_eq!(v["expires_at_unix"], server_exp);
    assert_eq!(v["source"], "introspection");
    assert_eq!(v["active"], true);
    assert_eq!(v["org"], "prod");
    assert_eq!(v["username"], DEFAULT_USERNAME);
    let remaining = v["seconds_remaining"].as_i64().unwrap();
    assert!((7190..=7200).contains(&remaining), "{remaining}");
    // Exactly one request: the introspection.
    assert_eq!(t.fake.count("/services/oauth2/introspect"), 1);
    assert_eq!(
        t.fake
            .requests()
            .iter()
            .filter(|r| r.path != "/services/oauth2/introspect")
            .count(),
        2,
        "only login's two requests besides"
    );
}

#[test]
fn expires_follows_the_server_when_activity_extends_the_session() {
    let t = T::new();
    let token = t.login("prod");
    let later = now() + 5000;
    t.fake.set_session_exp(&token, later);
    let v = stdout_json(&t.sfx().args(["expires", "--json"]).output().unwrap());
    assert_eq!(v["expires_at_unix"], later);
}

#[test]
fn human_line_names_time_source_and_user() {
    let t = T::new();
    let token = t.login("prod");
    let exp = t
        .fake
        .session_exp(&token)
        .expect("the fake knows the session");
    // The date is the session's real expiry in the test's zone, as the system's
    // `date` (tzdata) writes it: not computed with sfx's own code.
    let date = std::process::Command::new("date")
        .env("TZ", TZ)
        .arg(format!("--date=@{exp}"))
        .arg("+%Y-%m-%d %H:%M:%S %:z")
        .output()
        .expect("date");
    let when = text(&date.stdout).trim().to_string();
    assert!(date.status.success() && !when.is_empty(), "date: {when}");
    t.sfx()
        .args(["expires"])
        .assert()
        .success()
        // "2h" when login and check share a second.
        .stdout(
            predicate::str::is_match(format!(
                r"^expires in (1h 59m|2h) — {} \(introspection as of now, demo@example.com\)\n$",
                regex::escape(&when)
            ))
            .unwrap(),
        );
}

#[test]
fn within_a_window_longer_than_the_life_exits_3() {
    let t = T::new();
    t.login("prod");
    t.sfx()
        .args(["expires", "--within", "10m", "-q"])
        .assert()
        .code(0)
        .stdout("");
    t.sfx()
        .args(["expires", "--within", "3h", "-q"])
        .assert()
        .code(3)
        .stdout("");
}

#[test]
fn formats_print_one_value() {
    let t = T::new();
    let token = t.login("prod");
    let exp = t.fake.session_exp(&token).unwrap();
    t.sfx()
        .args(["expires", "--format", "unix"])
        .assert()
        .success()
        .stdout(format!("{exp}\n"));
    let iso = text(
        &t.sfx()
            .args(["expires", "--format", "iso"])
            .output()
            .unwrap()
            .stdout,
    );
    assert!(iso.trim().ends_with('Z') && iso.len() == 21, "{iso}");
    let secs: i64 = text(
        &t.sfx()
            .args(["expires", "--format", "seconds"])
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .parse()
    .unwrap();
    assert!((7190..=7200).contains(&secs));
}

#[test]
fn an_expired_session_exits_3_and_reads_inactive() {
    let t = T::new();
    let token = t.login("prod");
    t.fake.expire_session(&token);
    let out = t.sfx().args(["expires", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let v = stdout_json(&out);
    assert_eq!(v["active"], false);
    // Inactive is checked once, by userinfo.
    assert_eq!(
        t.fake.count("/services/oauth2/userinfo"),
        2,
        "login's and the probe"
    );
    t.sfx()
        .args(["expires", "--format", "seconds"])
        .assert()
        .code(3)
        .stdout("0\n");
}

#[test]
fn a_token_of_another_app_falls_back_to_the_estimate_with_a_note() {
    let t = T::new();
    t.fake
        .add_client(Client::new("3MVG9other.app", Some("other-secret")));
    let foreign = t
        .fake
        .grant_access_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    // The estimate must follow an inactive answer and a live probe, not replace them.
    t.fake.expect_hit("/services/oauth2/introspect");
    t.fake.expect_hit("/services/oauth2/userinfo");
    let out = t
        .sfx()
        .args(["expires", "--json"])
        .env("SFX_ACCESS_TOKEN", &foreign)
        .env("SFX_INSTANCE_URL", t.fake.url())
        .env("SFX_CLIENT_ID", "3MVG9other.app")
        .env("SFX_CLIENT_SECRET", "other-secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = stdout_json(&out);
    assert_eq!(v["source"], "estimate");
    assert_eq!(v["active"], true);
    assert!(
        v["note"]
            .as_str()
            .unwrap()
            .contains("another connected app")
    );
    assert!(text(&out.stderr).contains("another connected app"));
}

#[test]
fn a_rejected_client_falls_back_to_the_estimate_and_says_why() {
    let t = T::new();
    t.login("prod");
    t.edit_org("prod", |o| o["client_id"] = "3MVG9unknown".into());
    t.fake.expect_hit("/services/oauth2/introspect");
    let out = t.sfx().args(["expires", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = stdout_json(&out);
    assert_eq!(v["source"], "estimate");
    assert!(
        v["note"].as_str().unwrap().contains("invalid_client"),
        "{v}"
    );
}

#[test]
fn offline_uses_the_estimate_then_the_cached_introspection_without_requests() {
    let t = T::new();
    t.login("prod");
    t.fake.clear_requests();
    let v = stdout_json(
        &t.sfx()
            .args(["expires", "--offline", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(v["source"], "estimate");
    assert_eq!(t.fake.requests().len(), 0);
    t.sfx().args(["expires", "-q"]).assert().success();
    t.fake.clear_requests();
    let out = t
        .sfx()
        .args(["expires", "--offline", "--json"])
        .output()
        .unwrap();
    let v = stdout_json(&out);
    assert_eq!(v["source"], "cached");
    assert!(v["checked_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(t.fake.requests().len(), 0);
    t.sfx()
        .args(["expires", "--offline"])
        .assert()
        .success()
        .stdout(predicate::str::contains("introspection cached just now"));
}

#[test]
fn estimate_uses_the_session_timeout_given_at_login() {
    let t = T::new();
    t.sfx()
        .args([
            "login",
            "--auth-url",
            "-",
            "--alias",
            "p",
            "--session-timeout",
            "30m",
        ])
        .write_stdin(t.auth_url())
        .assert()
        .success();
    let v = stdout_json(
        &t.sfx()
            .args(["expires", "--offline", "--json"])
            .output()
            .unwrap(),
    );
    let secs = v["seconds_remaining"].as_i64().unwrap();
    assert!((1790..=1800).contains(&secs), "{secs}");
    assert_eq!(v["source"], "estimate");
    t.sfx()
        .args(["expires", "--offline"])
        .assert()
        .stdout(predicate::str::contains("estimated"));
}

#[test]
fn jwt_access_tokens_are_read_locally_with_no_request() {
    let t = T::new();
    t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.jwt_access_tokens = true);
    let token = t.login("prod");
    assert_eq!(token.matches('.').count(), 2, "a JWT");
    t.fake.clear_requests();
    let v = stdout_json(&t.sfx().args(["expires", "--json"]).output().unwrap());
    assert_eq!(v["source"], "jwt");
    assert_eq!(v["expires_at_unix"], t.fake.session_exp(&token).unwrap());
    assert_eq!(t.fake.requests().len(), 0);
}

#[test]
fn all_answers_for_every_org_and_exits_3_if_any_is_expired() {
    let t = T::new();
    t.login("a");
    let b = t.login("b");
    let out = t
        .sfx()
        .args(["expires", "--all", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v = stdout_json(&out);
    assert_eq!(v.as_array().unwrap().len(), 2);
    t.fake.expire_session(&b);
    let out = t
        .sfx()
        .args(["expires", "--all", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let v = stdout_json(&out);
    let b_row = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["org"] == "b")
        .unwrap();
    assert_eq!(b_row["active"], false);
    let human = text(&t.sfx().args(["expires", "--all"]).output().unwrap().stdout);
    assert!(
        human.contains("ORG") && human.contains("expired"),
        "{human}"
    );
}

#[test]
fn all_remembers_every_introspection_for_offline_use() {
    let t = T::new();
    for a in ["a", "b", "c"] {
        t.login(a);
    }
    t.sfx().args(["expires", "--all", "-q"]).assert().success();
    t.fake.clear_requests();
    let v = stdout_json(
        &t.sfx()
            .args(["expires", "--all", "--offline", "--json"])
            .output()
            .unwrap(),
    );
    let sources: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["source"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sources, ["cached", "cached", "cached"]);
    assert_eq!(t.fake.requests().len(), 0);
}

#[test]
fn an_app_without_a_secret_introspects_with_its_client_id_alone() {
    let t = T::new();
    let url = t
        .fake
        .auth_url(fake_salesforce::PUBLIC_CLIENT_ID, DEFAULT_USERNAME);
    assert!(url.starts_with("force://PlatformCLI::"), "{url}");
    t.sfx()
        .args(["login", "--auth-url", "-", "--alias", "p"])
        .write_stdin(url)
        .assert()
        .success();
    t.fake.clear_requests();
    let v = stdout_json(&t.sfx().args(["expires", "--json"]).output().unwrap());
    assert_eq!(v["source"], "introspection");
    let req = &t.fake.requests()[0];
    assert_eq!(req.param("client_id"), Some("PlatformCLI"));
    assert_eq!(req.param("client_secret"), None);
}

/// Issue #21: a dead token says what to run next — a refresh when sfx can make
/// one, a new login when it cannot (an imported access token).
#[test]
fn an_expired_token_says_what_to_run_next() {
    let t = T::new();
    let token = t.login("prod");
    t.fake.expire_session(&token);
    let out = t.sfx().args(["expires", "-o", "prod"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.starts_with("expired"), "{s}");
    assert!(s.contains("`sfx refresh -o prod` gets a new one"), "{s}");
    // An imported access token (no client id, so no introspection): its
    // estimate runs out when its session would have.
    t.login_access_token("bare");
    t.edit_org("bare", |o| o["issued_at"] = (now() - 3 * 3600).into());
    let out = t.sfx().args(["expires", "-o", "bare"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("it cannot be refreshed (access token login, no refresh token): log in again"),
        "{s}"
    );
}
