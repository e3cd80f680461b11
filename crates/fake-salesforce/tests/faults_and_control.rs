//! Fault injection, the request log, the `/__fake/` control API and the standalone binary.

mod support;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use fake_salesforce::*;
use serde_json::json;
use support::*;

const TOKEN: &str = "/services/oauth2/token";

fn cc(sf: &FakeSalesforce) -> Result<Resp, String> {
    raw(
        sf,
        "POST",
        TOKEN,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
        ])
        .as_bytes(),
    )
}

#[test]
fn status_html_json_faults_queue_in_order() {
    let sf = FakeSalesforce::start();
    sf.inject(TOKEN, Fault::status(503).retry_after(7));
    sf.inject(TOKEN, Fault::html(503));
    sf.inject(TOKEN, Fault::invalid_json());
    sf.inject(TOKEN, Fault::oversized());
    let r = cc(&sf).unwrap();
    assert_eq!((r.status, r.header("retry-after")), (503, Some("7")));
    let r = cc(&sf).unwrap();
    assert_eq!(r.status, 503);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.body.contains("Maintenance"));
    let r = cc(&sf).unwrap();
    assert_eq!(r.status, 200);
    assert!(serde_json::from_str::<serde_json::Value>(&r.body).is_err());
    let r = cc(&sf).unwrap();
    assert!(r.body.len() >= 2 * 1024 * 1024);
    // Queue drained: normal again. Other paths were never affected.
    assert_eq!(cc(&sf).unwrap().status, 200);
    assert_eq!(sf.count(TOKEN), 5);
    assert_eq!(sf.count_grant("client_credentials"), 5);
    let reqs = sf.requests();
    assert_eq!(reqs[0].param("client_id"), Some(DEFAULT_CLIENT_ID));
    assert_eq!(
        reqs[0].header("CONTENT-TYPE"),
        Some("application/x-www-form-urlencoded")
    );
    sf.clear_requests();
    assert!(sf.requests().is_empty());
}

#[test]
fn times_and_forever() {
    let sf = FakeSalesforce::start();
    sf.inject(TOKEN, Fault::status(500).times(2));
    assert_eq!(cc(&sf).unwrap().status, 500);
    assert_eq!(cc(&sf).unwrap().status, 500);
    assert_eq!(cc(&sf).unwrap().status, 200);
    sf.inject(TOKEN, Fault::status(502).forever());
    for _ in 0..3 {
        assert_eq!(cc(&sf).unwrap().status, 502);
    }
    sf.clear_faults();
    assert_eq!(cc(&sf).unwrap().status, 200);
    // Fault::json
    sf.inject(
        TOKEN,
        Fault::json(400, r#"{"error":"invalid_grant","error_description":"x"}"#),
    );
    assert_eq!(cc(&sf).unwrap().err().1, "invalid_grant");
}

#[test]
fn drop_and_truncated() {
    let sf = FakeSalesforce::start();
    sf.inject(TOKEN, Fault::drop());
    let e = cc(&sf).unwrap_err();
    assert!(e.contains("no response head"), "{e}");
    sf.inject(TOKEN, Fault::truncated());
    let e = cc(&sf).unwrap_err();
    assert!(e.contains("truncated"), "{e}");
    assert_eq!(cc(&sf).unwrap().status, 200);
    assert_eq!(sf.count(TOKEN), 3, "faulted requests are recorded");
}

#[test]
fn delays_do_not_block_other_requests() {
    let sf = FakeSalesforce::start();
    sf.inject(TOKEN, Fault::delay(1500));
    std::thread::scope(|s| {
        let slow = s.spawn(|| {
            let t = Instant::now();
            let r = cc(&sf).unwrap();
            (r.status, t.elapsed())
        });
        std::thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        assert_eq!(get(&sf, "/id/keys", None).status, 200);
        assert!(t.elapsed() < Duration::from_millis(1000));
        let (status, took) = slow.join().unwrap();
        assert_eq!(status, 200, "delay then answer normally");
        assert!(took >= Duration::from_millis(1500));
    });
    sf.set_global_delay(Duration::from_millis(200));
    let t = Instant::now();
    get(&sf, "/id/keys", None);
    assert!(t.elapsed() >= Duration::from_millis(200));
}

#[test]
fn keep_alive_connection_serves_several_requests() {
    use std::io::{Read, Write};
    let sf = FakeSalesforce::start();
    let mut s = std::net::TcpStream::connect(sf.host()).unwrap();
    s.write_all(b"GET /id/keys HTTP/1.1\r\nHost: x\r\n\r\nGET /id/keys HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2);
    assert_eq!(sf.count("/id/keys"), 2);
}

fn control(sf: &FakeSalesforce, method: &str, path: &str, body: serde_json::Value) -> Resp {
    raw(
        sf,
        method,
        path,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .unwrap()
}

#[test]
fn control_api() {
    let sf = FakeSalesforce::start_with(Options {
        bind: "127.0.0.1:0".into(),
        defaults: false,
    })
    .unwrap();
    // No defaults: unknown client.
    assert_eq!(cc(&sf).unwrap().err().1, "invalid_client_id");
    let r = control(
        &sf,
        "POST",
        "/__fake/clients",
        json!({"id": "3MVG9ctl", "secret": "s3", "rotate_refresh_tokens": true}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["session_timeout_secs"], 7200);
    assert_eq!(
        control(
            &sf,
            "POST",
            "/__fake/users",
            json!({"username": "u@x.io", "password": "p", "security_token": "T"})
        )
        .status,
        200
    );
    let g = control(
        &sf,
        "POST",
        "/__fake/grant",
        json!({"client_id": "3MVG9ctl", "username": "u@x.io"}),
    )
    .json();
    let rt = g["refresh_token"].as_str().unwrap().to_string();
    let at = g["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        g["auth_url"],
        format!("force://3MVG9ctl:s3:{rt}@{}", sf.host())
    );
    let s = get(&sf, &format!("/__fake/session?token={}", enc(&at)), None).json();
    assert_eq!(s["active"], true);
    assert!(s["exp"].as_i64().unwrap() > 0);
    control(&sf, "POST", "/__fake/expire", json!({"token": at}));
    assert_eq!(
        get(&sf, &format!("/__fake/session?token={}", enc(&at)), None).json()["active"],
        false
    );
    control(
        &sf,
        "POST",
        "/__fake/faults",
        json!({"path": TOKEN, "status": 503, "body": {"Html": "<p>down</p>"}, "times": 1}),
    );
    assert_eq!(cc(&sf).unwrap().status, 503);
    control(
        &sf,
        "POST",
        "/__fake/faults",
        json!({"path": TOKEN, "body": "Drop", "times": null}),
    );
    assert!(cc(&sf).is_err());
    control(&sf, "DELETE", "/__fake/faults", json!({}));
    control(&sf, "POST", "/__fake/revoke", json!({"token": rt}));
    assert!(!sf.is_active(&rt));
    let d = raw(
        &sf,
        "POST",
        TOKEN,
        &[],
        form(&[("response_type", "device_code"), ("client_id", "3MVG9ctl")]).as_bytes(),
    )
    .unwrap()
    .json();
    let ok = control(
        &sf,
        "POST",
        "/__fake/device/approve",
        json!({"user_code": d["user_code"], "username": "u@x.io"}),
    );
    assert_eq!(ok.json()["approved"], true);
    assert_eq!(
        control(&sf, "POST", "/__fake/delay", json!({"ms": 0})).status,
        200
    );
    assert_eq!(
        control(&sf, "POST", "/__fake/clients", json!("garbage")).status,
        400
    );
    // Control requests are not recorded.
    let log = get(&sf, "/__fake/requests", None).json();
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .all(|r| !r["path"].as_str().unwrap().starts_with("/__fake"))
    );
    assert_eq!(log.as_array().unwrap().len(), sf.requests().len());
    control(&sf, "DELETE", "/__fake/requests", json!({}));
    assert!(sf.requests().is_empty());
}

#[test]
fn drop_stops_the_server() {
    let sf = FakeSalesforce::start();
    sf.expect_no_requests();
    let host = sf.host();
    drop(sf);
    assert!(std::net::TcpStream::connect(host).is_err());
}

#[test]
fn standalone_binary_banner() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fake-salesforce"))
        .args(["--grants", "2", "--rotate"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let port = first
        .strip_prefix("fake-salesforce listening on http://127.0.0.1:")
        .unwrap()
        .to_string();
    for _ in 0..2 {
        let l = lines.next().unwrap().unwrap();
        assert!(
            l.starts_with("SFX_AUTH_URL=force://3MVG9fake.sfx.demo:fake-demo-secret-5Aep:5Aep861"),
            "{l}"
        );
        assert!(l.ends_with(&format!("@127.0.0.1:{port}")), "{l}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

// Issue #11: the fake fails a test that expected an endpoint nobody called, and
// one during which a request handler panicked (its connection thread is detached,
// so the panic would otherwise be lost).

#[test]
#[should_panic(expected = "expected requests to /services/oauth2/introspect but none came")]
fn an_expected_endpoint_never_hit_fails_the_test_on_drop() {
    let sf = FakeSalesforce::start();
    sf.expect_hit(TOKEN);
    sf.expect_hit("/services/oauth2/introspect");
    assert_eq!(cc(&sf).unwrap().status, 200);
    drop(sf);
}

#[test]
fn an_expected_endpoint_that_was_hit_passes() {
    let sf = FakeSalesforce::start();
    sf.expect_hit(TOKEN);
    assert!(sf.verify().is_err(), "nothing was sent yet");
    assert_eq!(cc(&sf).unwrap().status, 200);
    assert_eq!(sf.verify(), Ok(()));
}

#[test]
#[should_panic(expected = "a request handler panicked: POST /__fake/panic")]
fn a_panic_in_a_connection_thread_fails_the_test() {
    let sf = FakeSalesforce::start();
    let r = raw(&sf, "POST", "/__fake/panic", &[], b"").unwrap();
    assert_eq!(r.status, 500);
    // The fake still serves after a handler panicked.
    assert_eq!(cc(&sf).unwrap().status, 200);
    drop(sf);
}

#[test]
#[should_panic(expected = "the test's own failure")]
fn the_drop_check_never_panics_while_the_test_is_already_failing() {
    // A second panic during unwinding would abort the whole test binary.
    let sf = FakeSalesforce::start();
    sf.expect_hit("/never");
    let _keep = &sf;
    panic!("the test's own failure");
}

/// The drop check is on by default: a test states what it expects, and the fake
/// holds it to that (issue #23).
#[test]
fn a_fake_that_saw_no_request_fails_unless_the_test_said_none_would_come() {
    let sf = FakeSalesforce::start();
    let why = sf.verify().expect_err("silence was not declared");
    assert!(why.contains("no request came"), "{why}");
    sf.expect_no_requests();
    assert_eq!(sf.verify(), Ok(()));
    cc(&sf).unwrap();
    let why = sf.verify().expect_err("a request came after all");
    assert!(why.contains("expected no request"), "{why}");
    assert!(why.contains(TOKEN), "{why}");
    sf.no_expectations();
}

#[test]
fn an_expected_path_or_an_injected_fault_that_never_fired_fails_the_test() {
    let sf = FakeSalesforce::start();
    sf.expect_hit("/services/oauth2/introspect");
    sf.inject("/services/oauth2/revoke", Fault::status(503));
    cc(&sf).unwrap();
    let why = sf.verify().expect_err("two paths were never hit");
    assert!(
        why.contains("/services/oauth2/introspect") && why.contains("/services/oauth2/revoke"),
        "{why}"
    );
    // Clearing the log does not forget what was hit.
    sf.expect_hit(TOKEN);
    sf.clear_requests();
    let why = sf.verify().unwrap_err();
    assert!(!why.contains(TOKEN), "{why}");
    sf.expect_no_hit(TOKEN);
    let why = sf.verify().unwrap_err();
    assert!(
        why.contains(&format!("expected no request to {TOKEN}")),
        "{why}"
    );
    sf.no_expectations();
}
