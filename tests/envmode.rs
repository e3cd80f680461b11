//! Environment-only mode (CI): credentials from SFX_* variables, nothing on disk.

use crate::common::*;
use predicates::prelude::*;

#[test]
fn token_from_an_auth_url_in_the_environment_writes_nothing_under_sfx_home() {
    let t = T::new();
    let out = t
        .sfx()
        .args(["token"])
        .env("SFX_AUTH_URL", t.auth_url())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_string();
    assert!(t.fake.is_active(&token));
    assert_eq!(t.token_requests(), 1);
    assert!(!t.home().exists(), "no metadata, no lock files");
}

#[test]
fn expires_with_only_a_refresh_token_says_there_is_no_access_token_yet() {
    let t = T::new();
    t.fake.expect_no_requests();
    t.sfx()
        .args(["expires"])
        .env("SFX_AUTH_URL", t.auth_url())
        .assert()
        .code(3)
        .stderr(predicate::str::contains("no access token yet"));
}

#[test]
fn an_access_token_from_the_environment_is_introspected_with_the_given_client() {
    let t = T::new();
    let at = t
        .fake
        .grant_access_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    let v = stdout_json(
        &t.sfx()
            .args(["expires", "--json"])
            .env("SFX_ACCESS_TOKEN", &at)
            .env("SFX_INSTANCE_URL", t.fake.url())
            .env("SFX_CLIENT_ID", DEFAULT_CLIENT_ID)
            .env("SFX_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
            .output()
            .unwrap(),
    );
    assert_eq!(v["source"], "introspection");
    assert_eq!(v["org"], "env");
    assert_eq!(v["expires_at_unix"], t.fake.session_exp(&at).unwrap());
    assert!(!t.home().exists());
}

#[test]
fn refresh_format_env_hands_back_a_rotated_auth_url_and_warns() {
    let t = T::new();
    t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    let old = t.auth_url();
    let out = t
        .sfx()
        .args(["refresh", "--format", "env"])
        .env("SFX_AUTH_URL", &old)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let new_url = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SFX_AUTH_URL="))
        .expect("new SFX_AUTH_URL line")
        .to_string();
    assert_ne!(new_url, old);
    assert!(text(&out.stderr).contains("now dead"));
    assert!(
        !text(&out.stderr).contains(&new_url),
        "the new secret is not in the warning"
    );
    // The new URL works, the old one is spent.
    t.sfx()
        .args(["token"])
        .env("SFX_AUTH_URL", &new_url)
        .assert()
        .success();
    t.sfx()
        .args(["token"])
        .env("SFX_AUTH_URL", &old)
        .assert()
        .code(4);
}

/// The human line of a rotating refresh of the environment's org does not
/// claim the new refresh token was stored: nothing is, and the warning after it
/// says where it went.
#[test]
fn a_rotating_refresh_of_the_environments_org_does_not_say_stored() {
    let t = T::new();
    t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    t.fake.expect_hit("/services/oauth2/token");
    let out = t
        .sfx()
        .args(["refresh"])
        .env("SFX_AUTH_URL", t.auth_url())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("; refresh token rotated"), "{stdout}");
    assert!(!stdout.contains("rotated and stored"), "{stdout}");
    assert!(
        text(&out.stderr).contains("now dead"),
        "{}",
        text(&out.stderr)
    );
    assert!(!t.home().exists(), "nothing stored");
}

#[test]
fn refresh_token_in_the_environment_needs_client_id_and_a_url() {
    let t = T::new();
    t.fake.expect_no_requests();
    t.sfx()
        .args(["token"])
        .env("SFX_REFRESH_TOKEN", "5Aep861x")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("SFX_CLIENT_ID"));
    t.sfx()
        .args(["token"])
        .env("SFX_REFRESH_TOKEN", "5Aep861x")
        .env("SFX_CLIENT_ID", "id")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("SFX_INSTANCE_URL"));
}

#[test]
fn environment_urls_are_checked_eagerly() {
    let t = T::new();
    t.fake.expect_no_requests();
    t.sfx()
        .args(["orgs"])
        .env("SFX_INSTANCE_URL", "http://evil.example.com")
        .assert()
        .code(2);
    t.sfx()
        .args(["orgs"])
        .env("SFX_AUTH_URL", "force://broken")
        .assert()
        .code(2);
    t.sfx()
        .args(["orgs"])
        .env("SFX_TIMEOUT", "soon")
        .assert()
        .code(2);
}

#[test]
fn an_expired_jwt_in_the_environment_with_no_refresh_token_is_not_handed_out() {
    let t = T::new();
    t.fake.expect_no_requests();
    t.fake.update_client(DEFAULT_CLIENT_ID, |c| {
        c.jwt_access_tokens = true;
        c.session_timeout_secs = -60;
    });
    let jwt = t
        .fake
        .grant_access_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    assert_eq!(jwt.matches('.').count(), 2);
    t.sfx()
        .args(["token"])
        .env("SFX_ACCESS_TOKEN", &jwt)
        .env("SFX_INSTANCE_URL", t.fake.url())
        .assert()
        .code(4)
        .stdout("")
        .stderr(predicate::str::contains("cannot be refreshed"));
    t.sfx()
        .args(["expires", "--json"])
        .env("SFX_ACCESS_TOKEN", &jwt)
        .env("SFX_INSTANCE_URL", t.fake.url())
        .assert()
        .code(3)
        .stdout(predicate::str::contains("\"source\":\"jwt\""));
}
