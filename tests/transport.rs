//! Transport rules (issue #5, item 6): `https://` only (`http://` only to
//! loopback) wherever a URL comes from — flags, environment, the server's answer,
//! a hand-edited file; no redirects followed on the token, introspection,
//! revocation and userinfo endpoints; proxies from the standard environment
//! variables, `NO_PROXY` honoured, loopback always direct.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use crate::faults::{assert_one_clear_error, store_files};

/// A raw local server that records each request head and answers with
/// `respond(head)`, then closes the connection.
struct Listener {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Listener {
    fn start(respond: impl Fn(&str) -> String + Send + Sync + 'static) -> Listener {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (h, respond) = (heads.clone(), Arc::new(respond));
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { continue };
                let (h, respond) = (h.clone(), respond.clone());
                std::thread::spawn(move || serve(&mut conn, &h, &*respond));
            }
        });
        Listener { port, heads }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

fn serve(conn: &mut TcpStream, heads: &Mutex<Vec<String>>, respond: &dyn Fn(&str) -> String) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") && buf.len() < 65536 {
        match conn.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    if head.is_empty() {
        return;
    }
    heads.lock().unwrap().push(head.clone());
    let _ = conn.write_all(respond(&head).as_bytes());
    let _ = conn.flush();
}

/// A redirector: every request is answered `status` with `Location` pointing at
/// the same path on `target`.
fn redirector(status: u16, target: String) -> Listener {
    Listener::start(move |head| {
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        format!(
            "HTTP/1.1 {status} Moved\r\nLocation: {target}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
    })
}

#[test]
fn redirects_are_never_followed_on_oauth_endpoints() {
    for status in [301, 302, 303, 307, 308] {
        let t = T::new();
        t.login("prod");
        let r = redirector(status, t.fake.url());
        t.edit_org("prod", |o| {
            o["instance_url"] = r.url().into();
            o["login_url"] = r.url().into();
        });
        let before = store_files(&t.home());
        t.fake.clear_requests();
        // token, introspect, revoke: one request each to the redirector, none to
        // where it points.
        for (args, path) in [
            (&["refresh"][..], "/services/oauth2/token"),
            (&["introspect"], "/services/oauth2/introspect"),
            (&["expires"], "/services/oauth2/introspect"),
            (&["logout", "--revoke"], "/services/oauth2/revoke"),
        ] {
            let seen = r.heads().len();
            let out = t.sfx().args(args).output().unwrap();
            assert_one_clear_error(
                &out,
                5,
                &format!("answered HTTP {status} (a redirect to {}", t.fake.url()),
            );
            assert!(text(&out.stderr).contains("which sfx does not follow"));
            assert_eq!(
                r.heads().len(),
                seen + 1,
                "{args:?}: one request, not retried"
            );
            assert!(r.heads()[seen].starts_with(&format!("POST {path} ")));
            assert_eq!(
                t.fake.requests().len(),
                0,
                "{args:?}: the redirect was not followed"
            );
            assert_eq!(store_files(&t.home()), before);
        }
    }
}

#[test]
fn redirects_are_not_followed_for_environment_credentials_either() {
    let t = T::new();
    t.fake.expect_no_requests();
    let r = redirector(307, t.fake.url());
    let rt = t
        .fake
        .grant_refresh_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    let out = t
        .sfx()
        .args(["token", "-vv"])
        .env(
            "SFX_AUTH_URL",
            format!(
                "force://{DEFAULT_CLIENT_ID}:{DEFAULT_CLIENT_SECRET}:{rt}@127.0.0.1:{}",
                r.port
            ),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(
        text(&out.stderr).contains("a redirect"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(t.fake.requests().len(), 0);
    assert!(!text(&out.stderr).contains(&rt));
}

#[test]
fn plain_http_is_refused_except_to_loopback() {
    let t = T::new();
    // Flags and environment: a usage error before any work.
    let out = t
        .sfx()
        .args([
            "login",
            "--refresh-token",
            "-",
            "--client-id",
            "x",
            "--instance-url",
            "http://acme.my.salesforce.com",
        ])
        .write_stdin("5Aep861secret")
        .output()
        .unwrap();
    assert_one_clear_error(&out, 2, "uses http:// to a non-loopback host");
    for (var, value) in [
        ("SFX_INSTANCE_URL", "http://10.0.0.1"),
        ("SFX_LOGIN_URL", "http://[::ffff:7f00:1]"),
        ("SFX_INSTANCE_URL", "ftp://acme.my.salesforce.com"),
        ("SFX_INSTANCE_URL", "https://user:pw@acme.my.salesforce.com"),
    ] {
        let out = t
            .sfx()
            .args(["orgs"])
            .env("SFX_ACCESS_TOKEN", "00D5g000004ABCD!AQ0AQxyz")
            .env("SFX_INSTANCE_URL", "https://acme.my.salesforce.com")
            .env(var, value)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{var}={value}: {}",
            text(&out.stderr)
        );
    }
    // Loopback over http is fine: every other test talks to the fake that way,
    // including through `localhost` and 127.x.y.z.
    let rt = t
        .fake
        .grant_refresh_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    let out = t
        .sfx()
        .args(["token"])
        .env(
            "SFX_AUTH_URL",
            format!(
                "force://{DEFAULT_CLIENT_ID}:{DEFAULT_CLIENT_SECRET}:{rt}@localhost:{}",
                t.fake.port()
            ),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn an_http_instance_url_from_the_server_is_refused_and_nothing_is_stored() {
    let t = T::new();
    t.login("prod");
    let before = store_files(&t.home());
    t.fake.inject(
        "/services/oauth2/token",
        Fault::json(
            200,
            r#"{"access_token":"00D5g000004ABCD!AQ0AQstolen","instance_url":"http://evil.example.com","id":"https://login.salesforce.com/id/00D5g000004ABCDEAA/0055g00000XYZ12AAA","token_type":"Bearer","issued_at":"1714560000123"}"#,
        ),
    );
    let out = t.sfx().args(["refresh"]).output().unwrap();
    assert_one_clear_error(&out, 5, "unusable instance_url");
    assert_eq!(store_files(&t.home()), before);
}

#[test]
fn a_hand_edited_http_instance_url_is_refused_naming_the_file() {
    let t = T::new();
    t.login("prod");
    t.edit_org("prod", |o| {
        o["instance_url"] = "http://evil.example.com".into()
    });
    t.fake.clear_requests();
    for args in [&["token"][..], &["orgs"], &["expires", "--offline"]] {
        let out = t.sfx().args(args).output().unwrap();
        assert_one_clear_error(
            &out,
            1,
            "orgs.json is damaged (entry `prod` has an unusable instance_url",
        );
        assert!(text(&out.stderr).contains("http:// to a non-loopback host"));
    }
    assert_eq!(t.fake.requests().len(), 0, "no token went anywhere");
}

// ---- proxies ----

const PROXIED_HOST: &str = "sfx-proxy-test.invalid";

/// A proxy that refuses every CONNECT (so nothing reaches the internet).
fn refusing_proxy() -> Listener {
    Listener::start(|_| "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n".to_string())
}

fn proxied_auth_url(t: &T) -> (String, String) {
    let rt = t
        .fake
        .grant_refresh_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    (
        format!("force://{DEFAULT_CLIENT_ID}::{rt}@{PROXIED_HOST}"),
        rt,
    )
}

#[test]
fn https_requests_go_through_the_proxy_from_each_standard_variable() {
    let t = T::new();
    t.fake.expect_no_requests();
    for var in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        let p = refusing_proxy();
        let (url, rt) = proxied_auth_url(&t);
        let out = t
            .sfx()
            .args(["token", "-v"])
            .env("SFX_AUTH_URL", &url)
            .env(var, p.url())
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{var}: {err}");
        let heads = p.heads();
        assert!(!heads.is_empty(), "{var}: the proxy saw the request");
        assert!(
            heads[0].starts_with(&format!("CONNECT {PROXIED_HOST}:443 HTTP/1.1")),
            "{var}: {}",
            heads[0]
        );
        assert!(
            heads.iter().all(|h| !h.contains(&rt)),
            "the proxy sees a tunnel, not the token"
        );
        assert!(
            err.contains(&format!("via proxy 127.0.0.1:{}", p.port)),
            "{var}: {err}"
        );
        assert!(
            err.contains(&format!("the proxy 127.0.0.1:{} (from HTTPS_PROXY, HTTP_PROXY or ALL_PROXY) did not open a connection to {PROXIED_HOST}", p.port)),
            "{var}: {err}"
        );
    }
}

#[test]
fn no_proxy_sends_matching_hosts_direct() {
    let t = T::new();
    t.fake.expect_no_requests();
    for no_proxy in [
        PROXIED_HOST,
        ".invalid",
        "*.invalid",
        "example.com,sfx-proxy-test.invalid",
        "*",
    ] {
        let p = refusing_proxy();
        let (url, _) = proxied_auth_url(&t);
        let out = t
            .sfx()
            .args(["token"])
            .env("SFX_AUTH_URL", &url)
            .env("HTTPS_PROXY", p.url())
            .env("NO_PROXY", no_proxy)
            .output()
            .unwrap();
        // Direct: the name does not resolve (.invalid never does).
        assert_one_clear_error(&out, 5, &format!("the host {PROXIED_HOST} was not found"));
        assert!(
            p.heads().is_empty(),
            "NO_PROXY={no_proxy}: the proxy saw nothing"
        );
    }
}

#[test]
fn loopback_targets_never_go_through_a_proxy() {
    let t = T::new();
    t.login("prod");
    t.edit_org("prod", |o| o["issued_at"] = (now() - 3 * 3600).into());
    t.fake.clear_requests();
    let p = refusing_proxy();
    let out = t
        .sfx()
        .args(["token", "-v"])
        .env("HTTPS_PROXY", p.url())
        .env("HTTP_PROXY", p.url())
        .env("ALL_PROXY", p.url())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(p.heads().is_empty());
    assert!(!text(&out.stderr).contains("via proxy"));
    assert_eq!(t.token_requests(), 1, "it reached the fake directly");
}

#[test]
fn an_unreachable_proxy_is_named_in_the_error() {
    let t = T::new();
    t.fake.expect_no_requests();
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let (url, _) = proxied_auth_url(&t);
    let out = t
        .sfx()
        .args(["token"])
        .env("SFX_AUTH_URL", &url)
        .env("HTTPS_PROXY", format!("http://127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert_one_clear_error(
        &out,
        5,
        &format!(
            "could not connect to the proxy 127.0.0.1:{port} (from HTTPS_PROXY, HTTP_PROXY or ALL_PROXY) to reach {PROXIED_HOST}"
        ),
    );
}
