//! `sfx api` (issue #14): the "call, on a 401 refresh, else log in" ladder as one
//! command, against the fake's REST endpoints. Every test counts the requests the
//! fake received, so a call that never reached it fails.

use std::process::{Output, Stdio};

use crate::common::*;
use fake_salesforce::Fault;

const LIMITS: &str = "/services/data/v64.0/limits";
const ECHO: &str = "/services/apexrest/echo";

fn bearer_of(r: &fake_salesforce::RecordedRequest) -> String {
    r.header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string()
}

fn paths(t: &T) -> Vec<String> {
    t.fake.requests().into_iter().map(|r| r.path).collect()
}

#[test]
fn a_fresh_token_makes_exactly_one_request() {
    let t = T::new();
    let token = t.login("prod");
    t.fake.clear_requests();
    let out = t.sfx().args(["api", LIMITS]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let body = stdout_json(&out);
    assert_eq!(body["DailyApiRequests"]["Max"], 15000);
    let reqs = t.fake.requests();
    assert_eq!(reqs.len(), 1, "{:?}", paths(&t));
    assert_eq!(reqs[0].path, LIMITS);
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(bearer_of(&reqs[0]), token);
    assert_eq!(reqs[0].header("accept"), Some("application/json"));
}

#[test]
fn a_token_revoked_behind_sfxs_back_is_refreshed_and_the_same_body_resent() {
    let t = T::new();
    let old = t.login("prod");
    t.fake.revoke_token(&old);
    t.fake.clear_requests();
    // Not UTF-8, not JSON: the bytes must travel untouched, twice.
    let body: Vec<u8> = (0..=255u8).chain(*b"\r\n{\"Name\":\"x\"}\0").collect();
    let file = t.dir.path().join("body.bin");
    std::fs::write(&file, &body).unwrap();
    let out = t
        .sfx()
        .args([
            "api",
            "-X",
            "POST",
            ECHO,
            "-H",
            "Content-Type: application/octet-stream",
        ])
        .arg("--data")
        .arg(format!("@{}", file.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        out.stdout, body,
        "the echo of the resent body, byte for byte"
    );
    assert_eq!(paths(&t), [ECHO, "/services/oauth2/token", ECHO]);
    let reqs = t.fake.requests();
    assert_eq!(reqs[0].body, body);
    assert_eq!(reqs[2].body, body);
    assert_eq!(bearer_of(&reqs[0]), old);
    let new = t.access_token("prod");
    assert_ne!(new, old);
    assert_eq!(
        bearer_of(&reqs[2]),
        new,
        "resent with the refreshed, stored token"
    );
}

#[test]
fn a_dead_refresh_token_too_exits_4_with_the_reason_and_no_loop() {
    let t = T::new();
    t.login("prod");
    // Revoking the refresh token ends every access token of its approval.
    t.fake.revoke_token(&t.refresh_token("prod"));
    t.fake.clear_requests();
    let out = t.sfx().args(["api", LIMITS]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("HTTP 401: INVALID_SESSION_ID: Session expired or invalid"),
        "{err}"
    );
    assert!(err.contains("invalid_grant"), "{err}");
    assert!(err.contains("sfx login"), "{err}");
    assert_eq!(paths(&t), [LIMITS, "/services/oauth2/token"]);
}

#[test]
fn a_token_rejected_again_after_the_refresh_exits_4() {
    let t = T::new();
    let old = t.login("prod");
    t.fake.revoke_token(&old);
    t.fake.clear_requests();
    // The refresh works, but the call is refused with the new token too.
    t.fake.inject(
        LIMITS,
        Fault::json(
            401,
            r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
        )
        .times(2),
    );
    let out = t.sfx().args(["api", LIMITS]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("again"), "{}", text(&out.stderr));
    assert_eq!(paths(&t), [LIMITS, "/services/oauth2/token", LIMITS]);
}

fn spawn_many(t: &T, n: usize, args: &[&str]) -> Vec<Output> {
    let children: Vec<_> = (0..n)
        .map(|_| {
            t.std_sfx()
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

#[test]
fn twenty_parallel_calls_on_an_expired_token_make_one_refresh() {
    let t = T::new();
    let old = t.login("prod");
    t.fake.expire_session(&old);
    t.edit_org("prod", |o| o["issued_at"] = (now() - 3 * 3600).into());
    t.fake.clear_requests();
    for o in spawn_many(&t, 20, &["api", LIMITS]) {
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert_eq!(stdout_json(&o)["DailyApiRequests"]["Max"], 15000);
    }
    assert_eq!(t.token_requests(), 1, "exactly one token request");
    assert_eq!(t.fake.count(LIMITS), 20, "no call needed a second try");
    let new = t.access_token("prod");
    assert!(
        t.fake
            .requests_to(LIMITS)
            .iter()
            .all(|r| bearer_of(r) == new)
    );
}

#[test]
fn twenty_parallel_calls_on_a_revoked_token_make_one_refresh() {
    let t = T::new();
    let old = t.login("prod");
    t.fake.revoke_token(&old);
    t.fake.clear_requests();
    for o in spawn_many(&t, 20, &["api", LIMITS]) {
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    // Those that sent the old token got a 401; one refreshed, the others found
    // its token stored (late starters read it before their first try).
    assert_eq!(t.token_requests(), 1, "exactly one token request");
    let new = t.access_token("prod");
    let sent = t.fake.requests_to(LIMITS);
    let with = |tok: &str| sent.iter().filter(|r| bearer_of(r) == tok).count();
    assert_eq!(
        with(&new),
        20,
        "every call succeeded once with the new token"
    );
    assert!(with(&old) >= 1, "at least one call met the revoked token");
    assert_eq!(sent.len(), with(&new) + with(&old));
}

#[test]
fn post_is_not_retried_on_503() {
    let t = T::new();
    t.login("prod");
    t.fake.clear_requests();
    t.fake.inject(ECHO, Fault::html(503).retry_after(0));
    let out = t
        .sfx()
        .args(["api", "-X", "POST", ECHO, "--data", "{\"a\":1}"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("HTTP 503"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(t.fake.count(ECHO), 1, "sent once");
}

#[test]
fn get_is_retried_on_503_and_429() {
    let t = T::new();
    t.login("prod");
    t.fake.clear_requests();
    t.fake.inject(LIMITS, Fault::html(503).retry_after(0));
    t.fake.inject(LIMITS, Fault::status(429).retry_after(0));
    let out = t.sfx().args(["api", LIMITS]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(stdout_json(&out)["DailyApiRequests"]["Max"], 15000);
    assert_eq!(t.fake.count(LIMITS), 3);
}

#[test]
fn get_is_not_retried_on_500_nor_past_a_long_retry_after() {
    let t = T::new();
    t.login("prod");
    t.fake.clear_requests();
    t.fake.inject(
        LIMITS,
        Fault::json(
            500,
            r#"[{"errorCode":"UNKNOWN_EXCEPTION","message":"boom"}]"#,
        ),
    );
    let out = t.sfx().args(["api", LIMITS]).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(
        text(&out.stderr).contains("UNKNOWN_EXCEPTION: boom"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(t.fake.count(LIMITS), 1);

    t.fake.clear_requests();
    t.fake.inject(LIMITS, Fault::html(503).retry_after(3600));
    let out = t.sfx().args(["api", LIMITS]).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(
        t.fake.count(LIMITS),
        1,
        "an hour's Retry-After is not waited out"
    );
}

#[test]
fn a_binary_body_arrives_byte_for_byte_with_no_size_cap() {
    let t = T::new();
    t.login("prod");
    t.fake.clear_requests();
    let path = "/services/data/v64.0/sobjects/ContentVersion/068000000000001AAA/VersionData";
    let out = t.sfx().args(["api", path]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let want = fake_salesforce::blob_bytes();
    assert!(want.len() > 3 * 1024 * 1024);
    assert_eq!(out.stdout.len(), want.len());
    assert!(
        out.stdout == want,
        "the body differs from what the fake sent"
    );
    assert_eq!(t.fake.count(path), 1);
}

#[test]
fn version_is_asked_once_then_remembered() {
    let t = T::new();
    t.login("prod");
    t.fake.clear_requests();
    for _ in 0..2 {
        t.sfx()
            .args(["api", "/services/data/{version}/limits"])
            .assert()
            .success();
    }
    assert_eq!(t.fake.count("/services/data"), 1, "{:?}", paths(&t));
    assert_eq!(t.fake.count(LIMITS), 2, "v64.0 is the fake's latest");
    assert_eq!(t.metadata()["orgs"]["prod"]["api_version"], "64.0");
    // The versions list needs no token, and got none.
    let versions = t.fake.requests_to("/services/data");
    assert_eq!(versions[0].header("authorization"), None);
}

#[test]
fn a_4xx_exits_1_with_salesforces_error_code_and_the_body_on_stdout() {
    let t = T::new();
    t.login("prod");
    t.fake.clear_requests();
    let out = t
        .sfx()
        .args(["api", "/services/data/v64.0/query?q=DELETE everything"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("HTTP 400: MALFORMED_QUERY: unexpected token"),
        "{err}"
    );
    assert_eq!(stdout_json(&out)[0]["errorCode"], "MALFORMED_QUERY");
    let q = &t.fake.requests()[0];
    assert_eq!(
        q.param("q"),
        Some("DELETE everything"),
        "spaces sent encoded"
    );
}

#[test]
fn query_describe_and_create_work_end_to_end() {
    let t = T::new();
    t.login("prod");
    let out = t
        .sfx()
        .args([
            "api",
            "/services/data/v64.0/sobjects/Account",
            "--data",
            r#"{"Name":"Acme"}"#,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let created = stdout_json(&out);
    assert_eq!(created["success"], true);
    let out = t
        .sfx()
        .args([
            "api",
            "/services/data/v64.0/query?q=SELECT Id, Name FROM Account",
        ])
        .output()
        .unwrap();
    let q = stdout_json(&out);
    assert_eq!(q["records"][0]["Name"], "Acme");
    assert_eq!(q["records"][0]["Id"], created["id"]);
    let out = t
        .sfx()
        .args(["api", "/services/data/v64.0/sobjects/Account/describe"])
        .output()
        .unwrap();
    assert_eq!(stdout_json(&out)["name"], "Account");
    let post = &t.fake.requests_to("/services/data/v64.0/sobjects/Account")[0];
    assert_eq!(post.method, "POST", "--data without -X means POST");
    assert_eq!(post.header("content-type"), Some("application/json"));
}

#[test]
fn include_prints_the_status_line_and_headers_first() {
    let t = T::new();
    t.login("prod");
    let out = t.sfx().args(["api", "-i", LIMITS]).output().unwrap();
    assert!(out.status.success());
    let s = text(&out.stdout);
    assert!(s.starts_with("HTTP/1.1 200 OK\r\n"), "{s}");
    let (head, body) = s.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\nsforce-limit-info: api-usage="),
        "{head}"
    );
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["DailyApiRequests"]["Max"], 15000);
}

#[test]
fn quiet_prints_no_body_and_the_exit_code_answers() {
    let t = T::new();
    t.login("prod");
    t.sfx()
        .args(["api", "-q", LIMITS])
        .assert()
        .success()
        .stdout("");
    t.sfx()
        .args([
            "api",
            "-q",
            "/services/data/v64.0/nothing/here",
            "-X",
            "DELETE",
        ])
        .assert()
        .code(1)
        .stdout("");
}

#[test]
fn the_verbose_trace_redacts_the_token() {
    let t = T::new();
    let token = t.login("prod");
    let out = t
        .sfx()
        .args(["-vv", "api", LIMITS, "-H", "X-Api-Key: hunter2-key"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("X-Api-Key: <redacted>"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains("> GET http://"), "{err}");
    assert!(err.contains("Authorization: Bearer <redacted>"), "{err}");
    assert!(!err.contains(&token), "{err}");
    assert!(!text(&out.stdout).contains(&token));
}

#[test]
fn paths_and_headers_that_could_leak_the_token_are_usage_errors_before_any_request() {
    let t = T::new();
    t.login("prod");
    t.fake.clear_requests();
    let cases: &[&[&str]] = &[
        &["api", "//evil.example/services/data"],
        &["api", "https://evil.example/services/data"],
        &["api", "services/data"],
        &["api", "/services/data/\u{1b}[2J"],
        &["api", "/services\\data"],
        &["api", LIMITS, "-H", "Authorization: Bearer mine"],
        &["api", LIMITS, "-H", "Host: evil.example"],
        &["api", LIMITS, "-H", "X-Bad: a\nb"],
        &["api", LIMITS, "-H", "no colon"],
        &["api", LIMITS, "-X", "BREW"],
        &["api", LIMITS, "-X", "GET", "--data", "x"],
        &["api", LIMITS, "--data", "@/nonexistent/file"],
        &["api", LIMITS, "--data", "@"],
        &["--json", "api", LIMITS],
    ];
    for args in cases {
        let out = t.sfx().args(*args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(text(&out.stderr).starts_with("sfx: error: "), "{args:?}");
    }
    assert_eq!(t.fake.requests().len(), 0, "{:?}", paths(&t));
}

#[cfg(unix)]
#[test]
fn data_from_stdin_and_from_an_endless_file_is_bounded() {
    let t = T::new();
    t.login("prod");
    t.fake.clear_requests();
    let out = t
        .sfx()
        .args(["api", ECHO, "--data", "-"])
        .write_stdin("{\"from\":\"stdin\"}")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "{\"from\":\"stdin\"}");
    let out = t
        .sfx()
        .args(["api", ECHO, "--data", "@/dev/zero"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("64 MiB"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(t.fake.count(ECHO), 1);
}

#[test]
fn an_environment_access_token_that_is_revoked_exits_4_as_it_cannot_be_refreshed() {
    let t = T::new();
    let at = t
        .fake
        .grant_access_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    let env = |c: &mut assert_cmd::Command| {
        c.env("SFX_ACCESS_TOKEN", &at)
            .env("SFX_INSTANCE_URL", t.fake.url());
    };
    let mut ok = t.sfx();
    env(&mut ok);
    ok.args(["api", "/services/data/{version}/limits"])
        .assert()
        .success();
    t.fake.revoke_token(&at);
    t.fake.clear_requests();
    let mut dead = t.sfx();
    env(&mut dead);
    let out = dead.args(["api", LIMITS]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert_eq!(paths(&t), [LIMITS]);
    assert!(
        !t.home().join("orgs.json").exists(),
        "environment mode stores nothing"
    );
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let t = T::new();
    t.login("prod");
    let path = "/services/data/v64.0/sobjects/ContentVersion/068000000000001AAA/VersionData";
    let mut child = t
        .std_sfx()
        .args(["api", path])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn a_redirect_is_not_followed_and_exits_0() {
    let t = T::new();
    t.login("prod");
    t.fake.clear_requests();
    // A redirect with somewhere to go (on the same server, so following it would
    // be seen): "did not follow" is then told apart from "nothing to follow".
    let elsewhere = "/services/data/v62.0/elsewhere";
    let target = format!("{}{elsewhere}", t.fake.url());
    t.fake.inject(LIMITS, Fault::status(302).location(&target));
    t.fake.expect_no_hit(elsewhere);
    let out = t.sfx().args(["api", "-i", LIMITS]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let head = text(&out.stdout);
    assert!(head.starts_with("HTTP/1.1 302 Found\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("location: {}\r\n", target.to_ascii_lowercase())),
        "the Location is shown, not followed: {head}"
    );
    assert_eq!(t.fake.requests().len(), 1);
    assert_eq!(t.fake.count(elsewhere), 0, "the redirect was not followed");
}

/// On a terminal (a pseudo-terminal from util-linux `script`), a JSON body is
/// indented; through a pipe it is exactly what the fake sent.
#[cfg(target_os = "linux")]
#[test]
fn json_is_pretty_printed_only_on_a_terminal() {
    let t = T::new();
    t.login("prod");
    let piped = t.sfx().args(["api", LIMITS]).output().unwrap();
    assert!(
        !text(&piped.stdout).contains("\n  "),
        "compact through a pipe"
    );
    let sfx = env!("CARGO_BIN_EXE_sfx");
    let out = std::process::Command::new("script")
        .args(["-qec", &format!("{sfx} api {LIMITS}"), "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SFX_HOME", t.home())
        .env("SFX_CREDENTIAL_STORE", "file")
        .env("HOME", t.dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("util-linux `script` (Debian: bsdutils, always installed)");
    assert!(out.status.success(), "{}", text(&out.stdout));
    let shown = text(&out.stdout).replace("\r\n", "\n");
    assert!(shown.contains("{\n  \"DailyApiRequests\": {\n"), "{shown}");
    assert_eq!(t.fake.count(LIMITS), 2);
}

/// Issue #21: a typo'd placeholder (`{verison}`) is a usage error naming the
/// one placeholder there is, not a request for `%7Bverison%7D`.
#[test]
fn an_unknown_placeholder_is_a_usage_error_naming_version_before_any_request() {
    let t = T::new();
    t.login("prod");
    t.fake.clear_requests();
    for path in [
        "/services/data/{verison}/limits",
        "/services/data/{version}/sobjects/{sobject}/describe",
    ] {
        let out = t.sfx().args(["api", path]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{path}");
        let err = text(&out.stderr);
        assert!(err.starts_with("sfx: error: PATH holds `{"), "{err}");
        assert!(err.contains("the one placeholder is `{version}`"), "{err}");
    }
    let err = text(
        &t.sfx()
            .args(["api", "/services/data/{verison}/limits"])
            .output()
            .unwrap()
            .stderr,
    );
    assert!(err.contains("did you mean `{version}`?"), "{err}");
    assert_eq!(t.fake.requests().len(), 0, "{:?}", paths(&t));
}
