//! Network and server trouble (issue #5, item 2): which failures are retried (3
//! attempts, jittered back-off, `Retry-After` honoured), which never are (4xx,
//! and a rotating refresh once it may have been delivered), and that each failure
//! is one clear sentence with the contract's exit code while nothing stored
//! changes, byte for byte.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use fake_salesforce::FaultBody;

const TOKEN: &str = "/services/oauth2/token";
const INTROSPECT: &str = "/services/oauth2/introspect";

/// Every store file under SFX_HOME, except the lock files (which hold the pid of
/// their last holder): compared byte for byte before and after a failure.
pub fn store_files(home: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(home) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_file() {
                out.insert(
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// The failure is one `sfx: error:` sentence (plus at most a hint line), on one
/// line, free of control characters, naming `says`; stdout is empty.
pub fn assert_one_clear_error(out: &std::process::Output, code: i32, says: &str) {
    let err = text(&out.stderr);
    if std::env::var_os("SHOW_ERRORS").is_some() {
        eprintln!("[{code}] {err}");
    }
    assert_eq!(out.status.code(), Some(code), "exit code; stderr: {err}");
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    let lines: Vec<&str> = err.lines().collect();
    let errors: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("sfx: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {err}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("sfx: error: ") || l.starts_with("sfx: hint: ")),
        "nothing but the error and its hint: {err}"
    );
    assert!(lines.len() <= 2, "{err}");
    assert!(
        !err.chars().any(|c| c.is_control() && c != '\n'),
        "control characters: {err:?}"
    );
    assert!(errors[0].len() < 600, "short: {err}");
    assert!(errors[0].contains(says), "expected {says:?} in: {err}");
}

fn fault(status: u16, body: FaultBody) -> Fault {
    Fault {
        status,
        body,
        ..Fault::default()
    }
}

/// Log in (optionally with rotation), inject `faults` on the token endpoint, run
/// `sfx refresh <extra>`; returns the output, the time it took and the token
/// requests the fake saw. Asserts the store did not change.
fn refresh_with(
    rotating: bool,
    faults: Vec<Fault>,
    extra: &[&str],
) -> (T, std::process::Output, Duration, usize) {
    let t = T::new();
    if rotating {
        t.fake
            .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    }
    t.login("prod");
    assert_eq!(
        t.metadata()["orgs"]["prod"]["rotates_refresh_token"],
        rotating
    );
    let before = store_files(&t.home());
    t.fake.clear_requests();
    for f in faults {
        t.fake.inject(TOKEN, f);
    }
    let started = Instant::now();
    let out = t.sfx().arg("refresh").args(extra).output().unwrap();
    let took = started.elapsed();
    let requests = t.token_requests();
    if !out.status.success() {
        assert_eq!(store_files(&t.home()), before, "nothing stored changed");
    }
    (t, out, took, requests)
}

/// One failing case: exit code, what the message names, how many token requests.
macro_rules! failing {
    ($name:ident, rotating: $rot:expr, $faults:expr, $extra:expr, exit $code:expr, says $says:expr, requests $n:expr) => {
        #[test]
        fn $name() {
            let (_t, out, took, requests) = refresh_with($rot, $faults, $extra);
            assert_one_clear_error(&out, $code, $says);
            assert_eq!(requests, $n, "token requests");
            assert!(took < Duration::from_secs(20), "bounded: {took:?}");
        }
    };
}

// ---- retried (3 attempts), then a clear exit 5 ----
failing!(a_persistent_503_gives_exit_5_after_three_attempts, rotating: false,
    vec![Fault::status(503).forever()], &[], exit 5, says "HTTP 503 (a server error)", requests 3);
failing!(a_persistent_500_gives_exit_5_after_three_attempts, rotating: false,
    vec![Fault::status(500).forever()], &[], exit 5, says "HTTP 500", requests 3);
failing!(a_persistent_429_gives_exit_5_after_three_attempts, rotating: false,
    vec![Fault::status(429).forever()], &[], exit 5, says "too many requests", requests 3);
failing!(a_dropped_connection_is_retried_then_exit_5, rotating: false,
    vec![Fault::drop().forever()], &[], exit 5, says "closed the connection without answering (after 3 attempts)", requests 3);
failing!(a_truncated_body_is_retried_then_exit_5, rotating: false,
    vec![Fault::truncated().forever()], &[], exit 5, says "was cut off before its end", requests 3);
failing!(an_html_maintenance_page_with_503_is_retried_then_quoted_by_its_title, rotating: false,
    vec![Fault::html(503).forever()], &[], exit 5, says "\"Salesforce - Down for Maintenance\"", requests 3);
failing!(a_server_slower_than_timeout_is_retried_then_exit_5, rotating: false,
    vec![Fault::delay(5_000).forever()], &["--timeout", "300ms"], exit 5, says "did not answer within 300ms", requests 3);

// ---- not retried: the answer is final ----
failing!(an_html_page_with_200_is_exit_5_not_parsed, rotating: false,
    vec![Fault::html(200)], &[], exit 5, says "with an HTML page instead of Salesforce's JSON", requests 1);
failing!(invalid_json_is_exit_5_and_not_quoted, rotating: false,
    vec![Fault::invalid_json()], &[], exit 5, says "JSON that cannot be parsed (it ends early", requests 1);
failing!(a_200_with_missing_fields_is_exit_5, rotating: false,
    vec![Fault::json(200, r#"{"token_type":"Bearer"}"#)], &[], exit 5, says "a token response sfx cannot use (missing field", requests 1);
failing!(a_200_with_an_empty_body_is_exit_5, rotating: false,
    vec![fault(200, FaultBody::Text(String::new()))], &[], exit 5, says "with an empty body", requests 1);
failing!(an_oversized_body_is_refused_with_exit_5, rotating: false,
    vec![Fault::oversized()], &[], exit 5, says "larger than 1 MiB", requests 1);
failing!(a_4xx_is_never_retried, rotating: false,
    vec![fault(404, FaultBody::Text("Not Found".into())).forever()], &[], exit 5, says "HTTP 404 with plain text instead of Salesforce's JSON: \"Not Found\"", requests 1);
failing!(invalid_grant_is_exit_4_and_never_retried, rotating: false,
    vec![Fault::json(400, r#"{"error":"invalid_grant","error_description":"expired access/refresh token"}"#).forever()],
    &[], exit 4, says "expired access/refresh token", requests 1);
failing!(a_redirect_is_not_followed, rotating: false,
    vec![Fault::status(302).forever()], &[], exit 5, says "a redirect", requests 1);
failing!(a_retry_after_beyond_the_cap_is_not_waited_out, rotating: false,
    vec![Fault::status(429).retry_after(3600).forever()], &[], exit 5, says "it asks to wait 1h before trying again", requests 1);

// ---- a rotating refresh is not sent again once it may have been delivered ----
failing!(a_rotating_refresh_is_not_retried_after_a_dropped_connection, rotating: true,
    vec![Fault::drop().forever()], &[], exit 5, says "the refresh may have reached Salesforce", requests 1);
failing!(a_rotating_refresh_is_not_retried_after_a_truncated_answer, rotating: true,
    vec![Fault::truncated().forever()], &[], exit 5, says "was cut off", requests 1);
failing!(a_rotating_refresh_is_not_retried_after_a_500, rotating: true,
    vec![Fault::status(500).forever()], &[], exit 5, says "HTTP 500", requests 1);
failing!(a_rotating_refresh_is_not_retried_after_a_timeout, rotating: true,
    vec![Fault::delay(5_000).forever()], &["--timeout", "300ms"], exit 5, says "did not answer within 300ms", requests 1);
// ...but an answer that says "not processed" is.
// Issue #11: a 503, then a 429, then a 503 — both kinds are retried.
failing!(a_rotating_refresh_is_retried_after_503_and_429, rotating: true,
    vec![Fault::status(503), Fault::status(429), Fault::status(503)], &[], exit 5, says "HTTP 503", requests 3);

#[test]
fn a_rotating_refresh_refused_with_503_leaves_nothing_in_doubt() {
    let (t, out, _, _) = refresh_with(true, vec![Fault::status(503).forever()], &[]);
    assert_eq!(out.status.code(), Some(5));
    assert!(!text(&out.stderr).contains("may have reached"));
    assert!(!t.home().join("locks/org-prod.refreshing").exists());
    t.fake.clear_faults();
    t.fake.clear_requests();
    t.sfx().args(["refresh", "-q"]).assert().success();
    assert_eq!(t.fake.count(INTROSPECT), 0, "no check needed");
}

#[test]
fn a_transient_503_is_retried_and_succeeds() {
    let (t, out, _, requests) = refresh_with(false, vec![Fault::status(503).times(2)], &["-q"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(requests, 3, "503, 503, 200");
    assert!(t.fake.is_active(&t.access_token("prod")));
}

#[test]
fn a_dropped_connection_then_success_succeeds_with_two_requests() {
    let (t, out, _, requests) = refresh_with(false, vec![Fault::drop()], &["-q"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(requests, 2);
    assert!(t.fake.is_active(&t.access_token("prod")));
}

#[test]
fn a_rotating_refresh_succeeds_after_503_503() {
    let (t, out, _, requests) = refresh_with(true, vec![Fault::status(503).times(2)], &["-q"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(requests, 3);
    assert!(t.fake.is_active(&t.refresh_token("prod")));
}

#[test]
fn retry_after_is_honoured() {
    let (t, out, _, requests) =
        refresh_with(false, vec![Fault::status(429).retry_after(1)], &["-q"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(requests, 2);
    let at: Vec<_> = t
        .fake
        .requests()
        .iter()
        .filter(|r| r.path == TOKEN)
        .map(|r| r.at)
        .collect();
    let gap = at[1].duration_since(at[0]).unwrap();
    // sfx sleeps at least the second it was asked to; the back-off alone would be
    // 125–375 ms, so this cannot pass by accident.
    assert!(gap >= Duration::from_millis(950), "waited {gap:?}");
}

// A persistent 503's two back-offs (125–375 ms, then 250–750 ms) are pinned on
// the fake clock: `salesforce::http::tests::on_a_fake_clock`. Through the binary:
// `a_persistent_503_gives_exit_5_after_three_attempts`, and the contract's bound
// in `timeouts_are_per_attempt_and_bound_the_whole_run`.

#[test]
fn timeouts_are_per_attempt_and_bound_the_whole_run() {
    let t = T::new();
    t.login("prod");
    t.fake.inject(INTROSPECT, Fault::delay(5_000).forever());
    let started = Instant::now();
    let out = t
        .sfx()
        .args(["expires", "--timeout", "1s"])
        .output()
        .unwrap();
    assert_one_clear_error(
        &out,
        5,
        "did not answer within 1s (raise it with --timeout)",
    );
    assert_eq!(t.fake.count(INTROSPECT), 3);
    // Contract: "--timeout 1s with three attempts and back-off ends in well under ten seconds".
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn introspection_faults_are_exit_5_and_change_nothing() {
    let t = T::new();
    t.login("prod");
    let cases: Vec<(Fault, &str, usize)> = vec![
        (Fault::status(503).forever(), "HTTP 503", 3),
        (Fault::html(200), "HTML page", 1),
        (Fault::invalid_json(), "cannot be parsed", 1),
        (
            Fault::json(200, r#"{"scope":"api"}"#),
            "without an `active` field",
            1,
        ),
        (Fault::oversized(), "larger than 1 MiB", 1),
        (Fault::truncated().forever(), "cut off", 3),
        (
            Fault::drop().forever(),
            "closed the connection without answering",
            3,
        ),
    ];
    for (f, says, n) in cases {
        let before = store_files(&t.home());
        t.fake.clear_requests();
        t.fake.clear_faults();
        t.fake.inject(INTROSPECT, f);
        let out = t.sfx().args(["expires"]).output().unwrap();
        assert_one_clear_error(&out, 5, says);
        assert_eq!(t.fake.count(INTROSPECT), n, "{says}");
        assert_eq!(
            store_files(&t.home()),
            before,
            "{says}: nothing stored changed"
        );
    }
}

#[test]
fn token_on_an_expired_token_fails_cleanly_when_the_server_does() {
    let t = T::new();
    t.login("prod");
    t.edit_org("prod", |o| o["issued_at"] = (now() - 3 * 3600).into());
    for (f, says) in [
        (Fault::html(503).forever(), "Down for Maintenance"),
        (Fault::invalid_json(), "cannot be parsed"),
        (Fault::oversized(), "larger than 1 MiB"),
    ] {
        let before = store_files(&t.home());
        t.fake.clear_faults();
        t.fake.inject(TOKEN, f);
        let out = t.sfx().args(["token"]).output().unwrap();
        assert_one_clear_error(&out, 5, says);
        assert_eq!(store_files(&t.home()), before);
    }
}

#[test]
fn a_broken_token_response_is_never_quoted() {
    // Fault::invalid_json() is a cut-off token response: quoting its first line
    // would print a piece of an access token.
    let (_t, out, _, _) = refresh_with(false, vec![Fault::invalid_json()], &["-vv"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5));
    assert!(!err.contains("00D5g000004FAKE"), "{err}");
}

#[test]
fn an_unreachable_host_is_exit_5() {
    let t = T::new();
    t.fake.expect_no_requests();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let out = t
        .sfx()
        .args(["token"])
        .env(
            "SFX_AUTH_URL",
            format!("force://id:s:5Aep861x@127.0.0.1:{port}"),
        )
        .output()
        .unwrap();
    assert_one_clear_error(&out, 5, "could not connect");
    assert!(!text(&out.stderr).contains("5Aep861x"));
}

/// With rotation, a refresh whose answer never arrived leaves a journal; the next
/// refresh asks introspection before sending the token again. Here the server did
/// process the timed-out request (the fake answers after its delay), so the stored
/// refresh token is spent: sfx stops with exit 4 instead of replaying it, and the
/// login's other tokens stay valid (a replay would have revoked them all).
#[test]
fn after_a_timed_out_rotating_refresh_a_spent_token_is_not_replayed() {
    let (t, out, _, _) = refresh_with(true, vec![Fault::delay(1_500)], &["--timeout", "300ms"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    let spent = t.refresh_token("prod");
    let in_use = t.access_token("prod");
    // Wait (with a deadline) until the fake has processed the delayed request.
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.fake.is_active(&spent) {
        assert!(
            Instant::now() < deadline,
            "the fake never rotated the token"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    t.fake.clear_requests();
    let out = t.sfx().args(["refresh"]).output().unwrap();
    assert_one_clear_error(
        &out,
        4,
        "was interrupted and its refresh token is no longer active",
    );
    assert_eq!(t.token_requests(), 0, "the spent token was not sent again");
    assert_eq!(t.fake.count(INTROSPECT), 1);
    assert!(
        t.fake.is_active(&in_use),
        "no replay, so the login's access tokens were not revoked"
    );
    let newest = t.fake.latest_access_token().unwrap();
    assert!(
        t.fake.is_active(&newest),
        "nor the one minted for the lost answer"
    );
}

/// Same, but the request never took effect (the connection was dropped before the
/// server handled it): introspection says the token is active, and the refresh
/// goes ahead.
#[test]
fn after_a_dropped_rotating_refresh_an_unspent_token_is_used() {
    let (t, out, _, _) = refresh_with(true, vec![Fault::drop()], &[]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(t.home().join("locks/org-prod.refreshing").exists());
    let rt = t.refresh_token("prod");
    t.fake.clear_requests();
    t.sfx().args(["refresh", "-q"]).assert().success();
    assert_eq!(t.fake.count(INTROSPECT), 1, "checked first");
    assert_eq!(t.token_requests(), 1);
    assert_ne!(t.refresh_token("prod"), rt, "rotated and stored");
    assert!(t.fake.is_active(&t.refresh_token("prod")));
    assert!(
        !t.home().join("locks/org-prod.refreshing").exists(),
        "settled"
    );
    // And the refresh after that needs no check.
    t.fake.clear_requests();
    t.sfx().args(["refresh", "-q"]).assert().success();
    assert_eq!(t.fake.count(INTROSPECT), 0);
}
