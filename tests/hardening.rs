//! Issue #11: no input breaks sfx, no answer misleads. Durations have ranges
//! (usage error naming the flag and the range), files and stdin are read with a
//! bound, a record sfx would refuse is never written, server-sent numbers never
//! panic, server trouble with an OAuth body is exit 5, a login rate limit is
//! transient, a dead refresh token is `login_required`.

use std::time::{Duration, Instant};

use crate::common::*;
use crate::faults::assert_one_clear_error;

const TOKEN: &str = "/services/oauth2/token";
const INTROSPECT: &str = "/services/oauth2/introspect";

fn out_of(t: &T, args: &[&str]) -> std::process::Output {
    t.sfx().args(args).output().unwrap()
}

#[test]
fn every_duration_outside_its_range_is_a_usage_error_naming_flag_and_range() {
    let t = T::new();
    t.login("prod");
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["--timeout", "300000000000y", "orgs"],
            "--timeout (or SFX_TIMEOUT)",
            "from 100ms to 1h",
        ),
        (
            &["--timeout", "0s", "orgs"],
            "--timeout",
            "from 100ms to 1h",
        ),
        (
            &["--timeout", "2h", "orgs"],
            "--timeout",
            "from 100ms to 1h",
        ),
        (
            &["--wait", "0s", "token"],
            "--wait (or SFX_WAIT)",
            "from 1s to 1h",
        ),
        (&["token", "--wait", "2h"], "--wait", "from 1s to 1h"),
        (
            &["expires", "--within", "300000000000y"],
            "--within",
            "from 0s to 366d",
        ),
        (
            &["expires", "--within", "99999999999999999999s"],
            "--within",
            "far too long",
        ),
        (
            &["refresh", "--if-expiring-within", "400d"],
            "--if-expiring-within",
            "366d",
        ),
        (
            &["token", "--min-valid", "1000000000000000h"],
            "--min-valid",
            "366d",
        ),
        (
            &["api", "--min-valid", "367d", "/services/data"],
            "--min-valid",
            "366d",
        ),
        (
            &["exec", "--min-valid", "367d", "--", "true"],
            "--min-valid",
            "366d",
        ),
        (&["watch", "--exec-timeout", "2d"], "--exec-timeout", "1d"),
        (
            &["watch", "--refresh-before", "367d"],
            "--refresh-before",
            "366d",
        ),
        (
            &["watch", "--keepalive", "0s"],
            "--keepalive",
            "from 1s to 366d",
        ),
        (
            &["login", "--auth-url", "-", "--session-timeout", "400d"],
            "--session-timeout",
            "from 1m to 366d",
        ),
        (
            &["login", "--auth-url", "-", "--session-timeout", "30s"],
            "--session-timeout",
            "from 1m to 366d",
        ),
        (
            &["login", "--device", "--login-timeout", "300000000000y"],
            "--login-timeout (or SFX_LOGIN_TIMEOUT)",
            "from 1s to 1h",
        ),
    ];
    for (args, names, range) in cases {
        let out = out_of(&t, args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(names) && err.contains(range),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    for (var, value, names) in [
        ("SFX_TIMEOUT", "300000000000y", "SFX_TIMEOUT"),
        ("SFX_TIMEOUT", "-1s", "SFX_TIMEOUT"),
        ("SFX_LOGIN_TIMEOUT", "300000000000y", "SFX_LOGIN_TIMEOUT"),
        (
            "SFX_WATCH_MIN_CHECK",
            "300000000000y",
            "SFX_WATCH_MIN_CHECK",
        ),
        ("SFX_WATCH_MAX_CHECK", "0s", "SFX_WATCH_MAX_CHECK"),
    ] {
        let cmd = if var == "SFX_LOGIN_TIMEOUT" {
            vec!["login", "--device"]
        } else if var.starts_with("SFX_WATCH") {
            vec!["watch"]
        } else {
            vec!["orgs"]
        };
        let out = t.sfx().args(&cmd).env(var, value).output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {err}");
        assert!(err.contains(names), "{var}={value}: {err}");
    }
    // The store is untouched and still readable.
    t.sfx().args(["orgs", "--json"]).assert().success();
}

#[test]
fn a_session_timeout_the_store_would_refuse_is_never_written() {
    let t = T::new();
    let out = t
        .sfx()
        .args([
            "login",
            "--auth-url",
            "-",
            "--alias",
            "prod",
            "--session-timeout",
            "400d",
        ])
        .write_stdin(t.auth_url())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(!t.home().join("orgs.json").exists(), "nothing stored");
    // The longest accepted one is stored and read back by every later command.
    t.sfx()
        .args([
            "login",
            "--auth-url",
            "-",
            "--alias",
            "prod",
            "--session-timeout",
            "366d",
        ])
        .write_stdin(t.auth_url())
        .assert()
        .success();
    t.sfx().args(["orgs", "--json"]).assert().success();
    t.sfx()
        .args(["expires", "--offline", "-q"])
        .assert()
        .success();
    assert_eq!(
        t.metadata()["orgs"]["prod"]["session_timeout_secs"],
        366 * 86_400
    );
}

#[test]
fn a_client_id_the_store_would_refuse_is_a_usage_error() {
    let t = T::new();
    t.fake.expect_no_requests();
    let out = t
        .sfx()
        .args([
            "login",
            "--refresh-token",
            "-",
            "--instance-url",
            &t.fake.url(),
        ])
        .args(["--client-id", "bad\u{1}id"])
        .write_stdin(
            t.fake
                .grant_refresh_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--client-id"));
    assert!(!t.home().join("orgs.json").exists());
    assert_eq!(t.token_requests(), 0, "refused before any request");
}

#[cfg(unix)]
#[test]
fn endless_files_and_stdin_are_refused_not_read_forever() {
    let t = T::new();
    t.fake.expect_no_requests();
    let started = Instant::now();
    let out = t
        .sfx()
        .args([
            "login",
            "--jwt",
            "--client-id",
            DEFAULT_CLIENT_ID,
            "--username",
            DEFAULT_USERNAME,
        ])
        .args(["--key-file", "/dev/zero", "--login-url", &t.fake.url()])
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    assert_one_clear_error(&out, 2, "/dev/zero");
    assert!(text(&out.stderr).contains("not a regular file"));
    // A key file far larger than any key.
    let big = t.dir.path().join("big.pem");
    std::fs::write(&big, vec![b'A'; 200 * 1024]).unwrap();
    let out = t
        .sfx()
        .args([
            "login",
            "--jwt",
            "--client-id",
            DEFAULT_CLIENT_ID,
            "--username",
            DEFAULT_USERNAME,
        ])
        .args([
            "--key-file",
            big.to_str().unwrap(),
            "--login-url",
            &t.fake.url(),
        ])
        .output()
        .unwrap();
    assert_one_clear_error(&out, 2, "larger than 64 KiB");
    for flag in [["--auth-url", "-"], ["--access-token", "-"]] {
        let out = t
            .std_sfx()
            .args(["login", flag[0], flag[1], "--instance-url", &t.fake.url()])
            .stdin(std::fs::File::open("/dev/zero").unwrap())
            .output()
            .unwrap();
        assert_one_clear_error(&out, 2, "more than 64 KiB without a line end");
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(t.token_requests(), 0);
    // A store file that is a device is named, not read forever.
    std::fs::create_dir_all(t.home()).unwrap();
    std::os::unix::fs::symlink("/dev/zero", t.home().join("orgs.json")).unwrap();
    let out = out_of(&t, &["orgs"]);
    assert_one_clear_error(&out, 1, "not a regular file");
}

#[test]
fn hostile_device_flow_numbers_never_panic() {
    let t = T::new();
    t.fake.inject(
        TOKEN,
        Fault::json(
            200,
            r#"{"device_code":"dc","user_code":"ABCD","verification_uri":"https://example.com/device","interval":18446744073709551615,"expires_in":18446744073709551615}"#,
        ),
    );
    // The first poll: the code expired (ends the wait without sleeping 60 s twice).
    t.fake
        .inject(TOKEN, Fault::json(400, r#"{"error":"expired_token"}"#));
    t.fake.expect_hit(TOKEN);
    let out = t
        .sfx()
        .args([
            "login",
            "--device",
            "--client-id",
            DEFAULT_CLIENT_ID,
            "--login-url",
            &t.fake.url(),
        ])
        .args(["--login-timeout", "1s"])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // Without --login-timeout, a lifetime of u64::MAX seconds is clamped, not added.
    t.fake.inject(
        TOKEN,
        Fault::json(
            200,
            r#"{"device_code":"dc","user_code":"ABCD","verification_uri":"https://example.com/device","interval":"1","expires_in":"18446744073709551615"}"#,
        ),
    );
    t.fake
        .inject(TOKEN, Fault::json(400, r#"{"error":"expired_token"}"#));
    let out = t
        .sfx()
        .args([
            "login",
            "--device",
            "--client-id",
            DEFAULT_CLIENT_ID,
            "--login-url",
            &t.fake.url(),
        ])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("waiting up to 1h "),
        "clamped to an hour: {err}"
    );
}

#[test]
fn hostile_introspection_times_never_panic() {
    let t = T::new();
    t.login("prod");
    for body in [
        r#"{"active":true,"exp":9223372036854775807,"iat":-9223372036854775808}"#,
        r#"{"active":true,"exp":8210298412799,"iat":"8210298412799999"}"#,
        r#"{"active":true,"exp":-62167219200,"nbf":1e308}"#,
        r#"{"active":true,"exp":"soon","iat":null}"#,
        r#"{"active":true,"exp":1.5e15}"#,
    ] {
        for cmd in [
            &["expires"][..],
            &["introspect"],
            &["expires", "--json"],
            &["introspect", "--json"],
            &["orgs"],
        ] {
            t.fake.inject(INTROSPECT, Fault::json(200, body));
            let out = out_of(&t, cmd);
            let err = text(&out.stderr);
            let code = out.status.code().unwrap_or(-1);
            assert!(
                (0..=6).contains(&code),
                "{cmd:?} {body}: exit {code}: {err}"
            );
            assert!(!err.contains("panicked"), "{cmd:?} {body}: {err}");
            t.fake.clear_faults();
        }
    }
    t.sfx().args(["orgs", "--json"]).assert().success();
    t.sfx()
        .args(["expires", "--offline", "--json"])
        .assert()
        .code(predicates::ord::lt(6));
}

#[test]
fn a_hostile_issued_at_and_retry_after_never_panic() {
    let t = T::new();
    t.login("prod");
    for issued in ["99999999999999999999", "-99999999999999", "1e400", "\"\""] {
        let at = t
            .fake
            .grant_access_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
        t.fake.inject(
            TOKEN,
            Fault::json(
                200,
                &format!(
                    r#"{{"access_token":"{at}","instance_url":"{}","id":"https://login.salesforce.com/id/00D000000000001AAA/005000000000001AAA","token_type":"Bearer","issued_at":{issued}}}"#,
                    t.fake.url()
                ),
            ),
        );
        let out = out_of(&t, &["refresh"]);
        assert!(
            !text(&out.stderr).contains("panicked"),
            "{}",
            text(&out.stderr)
        );
        t.sfx().args(["orgs", "--json"]).assert().success();
        t.sfx()
            .args(["expires", "--offline"])
            .assert()
            .code(predicates::ord::lt(6));
    }
    for wait in [u64::MAX, 0] {
        t.fake.inject(
            TOKEN,
            Fault {
                status: 503,
                retry_after: Some(wait),
                ..Fault::default()
            }
            .forever(),
        );
        let out = out_of(&t, &["refresh", "--timeout", "2s"]);
        assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
        t.fake.clear_faults();
    }
}

// ---- answers that mislead ----

const SERVER_ERROR: &str =
    r#"{"error":"server_error","error_description":"An internal server error has occurred"}"#;
const UNAVAILABLE: &str =
    r#"{"error":"temporarily_unavailable","error_description":"try again later"}"#;

/// Through every command that talks to the token or introspection endpoint,
/// one status of each retry class (503 is retried even where a request may
/// have been processed, like 429; 500 only where it is safe, like 502). Every
/// status's classification, attempts and back-off are pinned on the fake
/// clock: `salesforce::http::tests::on_a_fake_clock`.
#[test]
fn a_5xx_or_429_with_an_oauth_error_body_is_server_trouble_retried_exit_5() {
    for (status, body) in [(500, SERVER_ERROR), (503, UNAVAILABLE)] {
        let t = T::new();
        t.login("prod");
        t.fake.clear_requests();
        t.fake.inject(TOKEN, Fault::json(status, body).forever());
        let out = out_of(&t, &["refresh"]);
        assert_one_clear_error(&out, 5, &format!("HTTP {status}"));
        let err = text(&out.stderr);
        assert!(err.contains("not a refusal of the credentials"), "{err}");
        assert!(
            !err.contains("refused") && !err.contains("log in again"),
            "{err}"
        );
        assert_eq!(t.token_requests(), 3, "{status}: retried like any {status}");
        // `token` and an environment org say the same.
        let out = out_of(&t, &["token", "--min-valid", "366d"]);
        assert_one_clear_error(&out, 5, &format!("HTTP {status}"));
        let out = t
            .bare()
            .args(["token"])
            .env("SFX_AUTH_URL", t.auth_url())
            .output()
            .unwrap();
        assert_one_clear_error(&out, 5, "not a refusal of the credentials");
        // Introspection (expires, introspect, orgs --check) too.
        t.fake
            .inject(INTROSPECT, Fault::json(status, body).forever());
        for cmd in [&["expires"][..], &["introspect"]] {
            let out = out_of(&t, cmd);
            assert_one_clear_error(&out, 5, &format!("HTTP {status}"));
        }
        let out = out_of(&t, &["orgs", "--check", "--json"]);
        assert_eq!(out.status.code(), Some(5));
        assert_eq!(stdout_json(&out)[0]["status"], "unreachable");
        // A login import says it too, and stores nothing.
        let out = t
            .sfx()
            .args(["login", "--auth-url", "-", "--alias", "other"])
            .write_stdin(t.auth_url())
            .output()
            .unwrap();
        assert_one_clear_error(&out, 5, &format!("HTTP {status}"));
        assert!(t.metadata()["orgs"].get("other").is_none());
    }
}

#[test]
fn server_error_in_a_400_is_still_server_trouble() {
    let t = T::new();
    t.login("prod");
    t.fake.inject(TOKEN, Fault::json(400, SERVER_ERROR));
    let out = out_of(&t, &["refresh"]);
    assert_one_clear_error(&out, 5, "trouble at Salesforce");
}

const RATE: &str = r#"{"error":"invalid_grant","error_description":"login rate exceeded"}"#;

#[test]
fn login_rate_exceeded_is_transient_exit_5_and_never_says_log_in_again() {
    let t = T::new();
    t.login("prod");
    t.fake.inject(TOKEN, Fault::json(400, RATE).times(2));
    let out = out_of(&t, &["refresh"]);
    assert_one_clear_error(&out, 5, "login rate exceeded");
    let err = text(&out.stderr);
    assert!(
        err.contains("clears by itself") && err.contains("within the hour"),
        "{err}"
    );
    assert!(
        !err.contains("log in again:") && !err.contains("sfx login"),
        "{err}"
    );
    // The environment org: no "mint a new SFDX auth URL".
    let out = t
        .bare()
        .args(["token"])
        .env("SFX_AUTH_URL", t.auth_url())
        .output()
        .unwrap();
    assert_one_clear_error(&out, 5, "login rate exceeded");
    assert!(!text(&out.stderr).contains("mint a new"));
    // It clears by itself: the same org refreshes afterwards.
    t.sfx().args(["refresh", "-q"]).assert().success();
}

#[test]
fn watch_backs_off_on_a_login_rate_limit_and_keeps_the_org() {
    let t = T::new();
    t.login("prod");
    t.fake.expire_session(&t.access_token("prod"));
    t.fake.inject(TOKEN, Fault::json(400, RATE));
    t.fake.expect_hit(TOKEN);
    let mut child = t
        .std_sfx()
        .args(["watch", "--json"])
        .env("SFX_WATCH_MIN_CHECK", "1s")
        .env("SFX_WATCH_MAX_CHECK", "1s")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut saw_transient = false;
    let mut refreshed = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        if v["event"] == "error" {
            let m = v["message"].as_str().unwrap_or_default();
            assert!(m.contains("login rate exceeded"), "{v}");
            assert!(
                !m.contains("stopped watching") && !m.contains("log in again:"),
                "{v}"
            );
            assert_eq!(v["needs_login"], false, "{v}");
            saw_transient = true;
        }
        if v["event"] == "refreshed" {
            refreshed = true;
            break;
        }
        assert!(Instant::now() < deadline, "no refresh within 60 s");
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    assert!(saw_transient, "the rate limit was reported");
    assert!(
        refreshed,
        "then the org was refreshed, not dropped (exit {status:?})"
    );
}

#[test]
fn orgs_check_calls_a_revoked_refresh_token_login_required() {
    let t = T::new();
    t.login("prod");
    t.fake.revoke_token(&t.refresh_token("prod"));
    t.fake.expect_hit(INTROSPECT);
    let out = out_of(&t, &["orgs", "--check", "--json"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert_eq!(stdout_json(&out)[0]["status"], "login_required");
    let hinted = t
        .fake
        .requests()
        .iter()
        .filter(|r| r.path == INTROSPECT && r.param("token_type_hint") == Some("refresh_token"))
        .count();
    assert_eq!(hinted, 1, "the refresh token was introspected once");
    // An expired access token with a live refresh token stays `expired` (3).
    let t = T::new();
    t.login("prod");
    t.fake.expire_session(&t.access_token("prod"));
    let out = out_of(&t, &["orgs", "--check", "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(stdout_json(&out)[0]["status"], "expired");
}

#[test]
fn introspect_shows_the_masked_access_token() {
    let t = T::new();
    let at = t.login("prod");
    t.fake.expect_hit(INTROSPECT);
    let out = out_of(&t, &["introspect"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    let masked = format!("{}…{}", &at[..5], &at[at.len() - 4..]);
    assert!(s.contains(&masked), "{masked} in {s}");
    assert!(!s.contains(&at), "never the token itself");
}

#[test]
fn maintenance_pages_are_quoted_with_their_sentences_apart() {
    let t = T::new();
    t.login("prod");
    t.fake.inject(
        TOKEN,
        Fault {
            status: 503,
            body: fake_salesforce::FaultBody::Html(
                "<html><body><div>Down for maintenance.</div>Sorry<br>for a<b &amp; c</body></html>".into(),
            ),
            ..Fault::default()
        }
        .forever(),
    );
    let out = out_of(&t, &["refresh"]);
    assert_one_clear_error(&out, 5, "Down for maintenance. Sorry for a<b & c");
    t.fake.clear_faults();
    t.fake.inject(TOKEN, Fault::json(404, r#""Not Found""#));
    let out = out_of(&t, &["refresh"]);
    assert_one_clear_error(&out, 5, "a JSON string");
}

#[test]
fn a_damaged_secrets_file_is_reported_without_quoting_its_values() {
    let t = T::new();
    t.login("a");
    let token = t.refresh_token("a");
    // An org's entry as a bare string (a hand edit, another tool): serde's own
    // message would quote it.
    std::fs::write(
        t.home().join("secrets.json"),
        format!("{{\"a\":\"{token}\"}}"),
    )
    .unwrap();
    let out = t.sfx().args(["token", "-o", "a"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("is damaged (line 1"), "{err}");
    assert!(!err.contains(&token), "the token was quoted: {err}");
}
