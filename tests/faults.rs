//! Network and server trouble: retries, HTML pages, timeouts — each a clear
//! sentence and exit 5, nothing stored changed.

use crate::common::*;
use predicates::prelude::*;

#[test]
fn a_transient_503_is_retried_and_succeeds() {
    let t = T::new();
    t.login("prod");
    t.fake.clear_requests();
    t.fake
        .inject("/services/oauth2/token", Fault::status(503).times(2));
    t.sfx().args(["refresh", "-q"]).assert().success();
    assert_eq!(t.token_requests(), 3);
}

#[test]
fn a_persistent_503_gives_exit_5_after_three_attempts() {
    let t = T::new();
    t.login("prod");
    let before = std::fs::read(t.home().join("secrets.json")).unwrap();
    t.fake.clear_requests();
    t.fake
        .inject("/services/oauth2/token", Fault::status(503).forever());
    t.sfx()
        .args(["refresh"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("HTTP 503"));
    assert_eq!(t.token_requests(), 3);
    assert_eq!(
        std::fs::read(t.home().join("secrets.json")).unwrap(),
        before
    );
}

#[test]
fn an_html_maintenance_page_is_quoted_not_parsed() {
    let t = T::new();
    t.login("prod");
    t.fake
        .inject("/services/oauth2/introspect", Fault::html(200));
    t.sfx()
        .args(["expires"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("HTML page"))
        .stderr(predicate::str::contains("maintenance"));
}

#[test]
fn invalid_json_is_a_clear_error() {
    let t = T::new();
    t.login("prod");
    t.fake
        .inject("/services/oauth2/token", Fault::invalid_json());
    t.sfx()
        .args(["refresh"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("not JSON").or(predicate::str::contains("cannot use")));
}

#[test]
fn a_slow_server_times_out_per_attempt() {
    let t = T::new();
    t.login("prod");
    t.fake
        .inject("/services/oauth2/introspect", Fault::delay(5_000).forever());
    let started = std::time::Instant::now();
    t.sfx()
        .args(["expires", "--timeout", "300ms"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("did not answer within"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "3 attempts of 300 ms plus back-off"
    );
}

#[test]
fn an_unreachable_host_is_exit_5() {
    let t = T::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    t.sfx()
        .args(["token"])
        .env(
            "SFX_AUTH_URL",
            format!("force://id:s:5Aep861x@127.0.0.1:{port}"),
        )
        .assert()
        .code(5)
        .stderr(predicate::str::contains("could not connect"));
}

#[test]
fn a_token_response_missing_fields_is_exit_5() {
    let t = T::new();
    t.login("prod");
    t.fake.inject(
        "/services/oauth2/token",
        Fault {
            status: 200,
            body: fake_salesforce::FaultBody::Json(r#"{"token_type":"Bearer"}"#.into()),
            delay_ms: 0,
            retry_after: None,
            times: Some(1),
        },
    );
    t.sfx()
        .args(["refresh"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("cannot use"));
}
