//! What sfx quotes from a server reaches the terminal inert and readable
//! (issue #19, the smaller findings): an HTML page cut inside a tag is quoted
//! without the cut tag, and `sfx api -i` shows a control or bidi character in a
//! header value as an escape.

use std::io::{Read, Write};
use std::net::TcpListener;

use fake_salesforce::FaultBody;

use crate::common::*;

const TOKEN: &str = "/services/oauth2/token";

#[test]
fn a_maintenance_page_cut_inside_a_tag_is_quoted_without_the_cut_tag() {
    let t = T::new();
    t.login("prod");
    // sfx reads the first 8 KiB of a page that is not JSON; this one's text
    // comes after a large style sheet, and the 8 KiB end inside `<table border`.
    let mut page = String::from("<!DOCTYPE html><html><head><style>");
    let tail = "</style></head><body><p>We'll be back shortly.</p> <table bord";
    page.push_str(&"a{}".repeat((8192 - page.len() - tail.len()) / 3));
    page.push_str(&" ".repeat(8192 - page.len() - tail.len()));
    page.push_str(tail);
    page.push_str("er=\"0\"><tr><td>status</td></tr></table></body></html>");
    t.fake.inject(
        TOKEN,
        Fault {
            status: 503,
            body: FaultBody::Html(page),
            ..Fault::default()
        }
        .retry_after(0)
        .forever(),
    );
    let out = t.sfx().args(["refresh"]).output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    t.fake.expect_hit(TOKEN);
    assert!(err.contains("We'll be back shortly."), "{err}");
    assert!(!err.contains("<table"), "{err}");
    assert!(!err.contains("bord"), "{err}");
}

/// A one-connection server that answers any request with `head` and `{}`.
fn answer_once(head: &'static [u8]) -> (String, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 4096];
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "the request ended early");
            got.extend_from_slice(&buf[..n]);
        }
        s.write_all(head).unwrap();
        s.write_all(
            b"Content-Length: 2\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{}",
        )
        .unwrap();
    });
    (url, h)
}

#[test]
fn api_include_shows_control_and_bidi_characters_in_header_values_as_escapes() {
    let t = T::new();
    t.fake.expect_no_requests();
    // U+202E (right-to-left override) and U+009B (the 8-bit CSI that starts a
    // terminal escape sequence), as UTF-8 in header values.
    let (url, server) = answer_once(
        "HTTP/1.1 200 OK\r\nX-Note: invoice\u{202E}fdp.exe\r\nX-Csi: a\u{9b}31mred\r\nX-Plain: tab\there\r\n"
            .as_bytes(),
    );
    let out = t
        .sfx()
        .env("SFX_ACCESS_TOKEN", "00Dtest!token")
        .env("SFX_INSTANCE_URL", &url)
        .args(["api", "-i", "/services/data/v62.0/limits"])
        .output()
        .unwrap();
    server.join().unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("x-note: invoice\\u{202e}fdp.exe\r\n"),
        "{stdout:?}"
    );
    assert!(stdout.contains("x-csi: a\\x9b31mred\r\n"), "{stdout:?}");
    assert!(stdout.contains("x-plain: tab\there\r\n"), "{stdout:?}");
    assert!(
        !stdout.contains('\u{202E}') && !stdout.contains('\u{9b}'),
        "{stdout:?}"
    );
    assert!(stdout.ends_with("\r\n\r\n{}"), "{stdout:?}");
}
