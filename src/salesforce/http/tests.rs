use super::html::*;
use super::retry::*;
use super::*;

#[test]
fn a_network_failure_keeps_ureqs_error_as_its_cause() {
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let http = Http::new(Duration::from_secs(2), 0);
    let err = http
        .send(&Request {
            method: "POST",
            url: format!("http://127.0.0.1:{port}/services/oauth2/token"),
            form: Vec::new(),
            bearer: None,
            basic: None,
            retry: Retry::OnlyUnsent,
        })
        .unwrap_err();
    assert_eq!(err.exit(), crate::exit::Exit::Network, "{err}");
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
    let cause = std::error::Error::source(&err).expect("the cause is kept");
    assert!(cause.downcast_ref::<ureq::Error>().is_some(), "{cause:?}");
}

#[test]
fn a_rotating_refresh_whose_window_closed_is_never_sent() {
    // A process resumed (SIGCONT) after its attempt window: nothing leaves.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let http = Http::new(Duration::from_secs(2), 0);
    let (result, delivery) = http.send_tracked(&Request {
        method: "POST",
        url: format!("http://127.0.0.1:{port}/services/oauth2/token"),
        form: vec![("refresh_token", "5Aep-spent".into())],
        bearer: None,
        basic: None,
        retry: Retry::OnlyUnsentBy(BootInstant::now()),
    });
    let err = result.unwrap_err();
    assert!(err.to_string().contains("was not sent"), "{err}");
    assert_eq!(delivery, Delivery::NotProcessed);
    assert!(listener.accept().is_err(), "a connection was made");
}

#[test]
fn backoff_grows_and_stays_capped() {
    for attempt in 1..6 {
        let d = backoff(attempt).as_millis() as u64;
        let base = (250u64 << (attempt - 1).min(3)).min(2000);
        assert!(d >= base / 2 && d <= base + base / 2, "{attempt}: {d}");
    }
}

#[test]
fn html_pages_are_quoted_by_their_title_or_first_text() {
    let mut r = Reply {
        status: 503,
        content_type: "text/html".into(),
        body:
            "<!DOCTYPE html>\n<html><head><title>Salesforce - Down for Maintenance</title></head>"
                .into(),
        url: String::new(),
        retry_after: None,
        location: None,
        received_at: chrono::Utc::now(),
    };
    assert_eq!(r.first_line(), "Salesforce - Down for Maintenance");
    r.body = "<!DOCTYPE html>\n<p>Bad \x1b[31mgateway</p>".into();
    assert_eq!(r.first_line(), "Bad  [31mgateway");
    r.content_type = "text/plain".into();
    r.body = "plain text\nsecond".into();
    assert_eq!(r.first_line(), "plain text");
    // Issue #11: sentences split by <br> and block tags stay apart; text
    // between < and > that is not a tag stays.
    r.content_type = "text/html".into();
    r.body = "<html><body><h1>Down for maintenance.</h1><p>We are sorry.<br>Back at 22:00.<br/>Thanks</p></body></html>".into();
    assert_eq!(
        r.first_line(),
        "Down for maintenance. We are sorry. Back at 22:00. Thanks"
    );
    r.body = "<p>load < 3 and x<y but <b>bold</b>ly <3</p><script>var a='<p>no</p>';</script><!-- hidden -->end".into();
    assert_eq!(r.first_line(), "load < 3 and x<y but boldly <3 end");
    r.body = "<title>Maintenance &amp; <b>upgrade</b></title>".into();
    assert_eq!(r.first_line(), "Maintenance & upgrade");
    r.content_type = "text/plain".into();
    r.body = "error: a<b and <c> kept".into();
    assert_eq!(r.first_line(), "error: a<b and <c> kept");
}

#[test]
fn a_page_cut_inside_a_tag_is_quoted_without_the_cut_tag() {
    // The 8 KiB that are read end inside `<table border=…>`.
    let mut body = String::from("<html><head><style>");
    let text = "</style></head><body><p>We'll be back shortly. <table bord";
    body.push_str(&"x".repeat(8192 - body.len() - text.len()));
    body.push_str(text);
    body.push_str("er=\"0\"><tr><td>status</td></tr></table></body></html>");
    let r = Reply {
        status: 503,
        content_type: "text/html".into(),
        body,
        url: String::new(),
        retry_after: None,
        location: None,
        received_at: chrono::Utc::now(),
    };
    assert_eq!(r.first_line(), "We'll be back shortly.");
    assert_eq!(drop_unfinished_tag("a <3"), "a <3");
    assert_eq!(drop_unfinished_tag("a <b>c"), "a <b>c");
    assert_eq!(drop_unfinished_tag("a <!-- x"), "a ");
    assert_eq!(drop_unfinished_tag("a <"), "a ");
}

#[test]
fn retry_after_takes_seconds_or_an_http_date() {
    let mut r = Reply {
        status: 503,
        content_type: String::new(),
        body: String::new(),
        url: String::new(),
        retry_after: Some(" 7 ".into()),
        location: None,
        // Time is an input: the date is read against when the answer arrived.
        received_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
    };
    assert_eq!(r.retry_after(), Some(Duration::from_secs(7)));
    let later = r.received_at + chrono::Duration::seconds(120);
    r.retry_after = Some(later.format("%a, %d %b %Y %H:%M:%S GMT").to_string());
    assert_eq!(r.retry_after(), Some(Duration::from_secs(120)));
    r.retry_after = Some("Wed, 21 Oct 2015 07:28:00 GMT".into());
    assert_eq!(
        r.retry_after(),
        Some(Duration::ZERO),
        "a date in the past: now"
    );
    r.retry_after = Some("soon".into());
    assert_eq!(r.retry_after(), None);
    r.body = r#"{"access_token":"00D5g000004ABCD!AQ0secret"}"#.into();
    assert!(!format!("{r:?}").contains("AQ0secret"));
}

#[test]
fn bodies_are_redacted_in_traces() {
    let b = r#"{"access_token":"00D!x","refresh_token":"5Aep","instance_url":"https://a","nested":{"client_secret":"s"}}"#;
    let r = redacted_body(b);
    assert!(
        !r.contains("00D!x") && !r.contains("5Aep") && !r.contains("\"s\""),
        "{r}"
    );
    assert!(r.contains("https://a"));
}

/// A refresh against the in-repo fake on a fake clock: retries and their
/// waits run in milliseconds, and `slept()` shows the waits.
mod on_a_fake_clock {
    use std::sync::Arc;

    use fake_salesforce::{
        DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_USERNAME, FakeSalesforce, Fault,
    };

    use super::*;
    use crate::clock::{Clock, FakeClock};
    use crate::salesforce::{Client, ClientCreds};

    const TOKEN: &str = "/services/oauth2/token";

    fn refresh(sf: &FakeSalesforce, clock: &Arc<FakeClock>) -> Result<(), crate::error::Error> {
        let http = Http::with_clock(Duration::from_secs(5), 0, clock.clone());
        let rt =
            crate::secret::Secret::new(sf.grant_refresh_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME));
        let secret = crate::secret::Secret::new(DEFAULT_CLIENT_SECRET);
        Client { http: &http }
            .refresh(
                &sf.url(),
                &rt,
                ClientCreds {
                    id: DEFAULT_CLIENT_ID,
                    secret: Some(&secret),
                },
                false,
                "refreshing org prod",
            )
            .map(|_| ())
            .map_err(|f| f.error)
    }

    fn fake_clock() -> Arc<FakeClock> {
        Arc::new(FakeClock::at(chrono::Utc::now()))
    }

    /// A 5xx or 429 with an OAuth error body is trouble at the server, not a
    /// refusal: three attempts with jittered, growing back-off, then exit 5
    /// saying so.
    #[test]
    fn a_5xx_or_429_with_an_oauth_error_body_is_retried_with_backoff_then_exit_5() {
        let body = r#"{"error":"server_error","error_description":"An internal server error has occurred"}"#;
        for status in [500, 503, 429, 502] {
            let sf = FakeSalesforce::start();
            let clock = fake_clock();
            sf.inject(TOKEN, Fault::json(status, body).forever());
            let err = refresh(&sf, &clock).unwrap_err();
            assert_eq!(err.exit(), crate::exit::Exit::Network, "{status}: {err}");
            let msg = err.to_string();
            assert!(msg.contains(&format!("HTTP {status}")), "{msg}");
            assert!(msg.contains("not a refusal of the credentials"), "{msg}");
            assert_eq!(sf.count(TOKEN), 3, "{status}: three attempts");
            let slept = clock.slept();
            assert_eq!(slept.len(), 2, "{status}: {slept:?}");
            let ms = |d: &Duration| d.as_millis() as u64;
            assert!((125..=375).contains(&ms(&slept[0])), "{slept:?}");
            assert!((250..=750).contains(&ms(&slept[1])), "{slept:?}");
        }
        // The same with no body to go by.
        for status in [500, 503, 429] {
            let sf = FakeSalesforce::start();
            let clock = fake_clock();
            sf.inject(TOKEN, Fault::status(status).forever());
            let err = refresh(&sf, &clock).unwrap_err();
            assert_eq!(err.exit(), crate::exit::Exit::Network, "{status}: {err}");
            assert_eq!(sf.count(TOKEN), 3, "{status}: three attempts");
            assert_eq!(clock.slept().len(), 2, "{status}");
            assert!(clock.elapsed() <= Duration::from_millis(375 + 750));
        }
    }

    /// A journaled refresh's attempt window is read on the client's clock: a
    /// wait (here `Retry-After: 2`) that carries it past the window's end
    /// means the retry is never sent.
    #[test]
    fn no_attempt_starts_once_the_attempt_window_has_closed() {
        let sf = FakeSalesforce::start();
        let clock = fake_clock();
        sf.inject(TOKEN, Fault::status(503).retry_after(2).times(1));
        let http = Http::with_clock(Duration::from_secs(5), 0, clock.clone());
        let by = clock.boot() + Duration::from_secs(1);
        let (result, delivery) = http.send_tracked(&Request {
            method: "POST",
            url: format!("{}{TOKEN}", sf.url()),
            form: vec![("grant_type", "refresh_token".into())],
            bearer: None,
            basic: None,
            retry: Retry::OnlyUnsentBy(by),
        });
        let err = result.unwrap_err();
        assert!(err.to_string().contains("attempt window closed"), "{err}");
        assert_eq!(delivery, Delivery::NotProcessed);
        assert_eq!(sf.count(TOKEN), 1, "the retry was not sent");
        assert_eq!(clock.slept(), [Duration::from_secs(2)]);
    }

    /// `Retry-After` sets the wait exactly; one longer than the cap (10 s) is
    /// not waited for at all.
    #[test]
    fn retry_after_sets_the_wait_and_one_past_the_cap_is_not_retried() {
        let sf = FakeSalesforce::start();
        let clock = fake_clock();
        sf.inject(TOKEN, Fault::status(503).retry_after(7).times(2));
        refresh(&sf, &clock).unwrap();
        assert_eq!(sf.count(TOKEN), 3);
        assert_eq!(clock.slept(), [Duration::from_secs(7); 2]);

        sf.clear_requests();
        let clock = fake_clock();
        sf.inject(TOKEN, Fault::status(503).retry_after(11).times(1));
        let err = refresh(&sf, &clock).unwrap_err();
        assert_eq!(err.exit(), crate::exit::Exit::Network, "{err}");
        assert_eq!(sf.count(TOKEN), 1, "not retried");
        assert!(clock.slept().is_empty());
    }
}
