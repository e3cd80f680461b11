//! `sfx login` by OAuth flow — web (PKCE), device, JWT bearer, client credentials,
//! username-password — end to end against the fake, and how each flow's org is
//! refreshed afterwards (refresh grant vs the grant again vs "log in again").
//!
//! The web flow's browser is played by the test: it reads the authorize URL from
//! sfx's stderr, GETs it from the fake (which checks PKCE and echoes `state`), and
//! follows the 302 to sfx's callback listener.

use std::io::{BufRead, BufReader};
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use fake_salesforce::{
    DEFAULT_PASSWORD, DEFAULT_SECURITY_TOKEN, PUBLIC_CLIENT_ID, RecordedRequest, pkce_s256,
};
use predicates::prelude::*;
use serde_json::Value;

use crate::common::*;

pub(crate) const TOKEN: &str = "/services/oauth2/token";
pub(crate) const AUTHORIZE: &str = "/services/oauth2/authorize";
const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Generous upper bound for anything that should finish in about a second.
const HANG: Duration = Duration::from_secs(30);

pub(crate) fn key(name: &str) -> String {
    format!(
        "{}/crates/fake-salesforce/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A spawned `sfx` whose stderr lines arrive on a channel as they are written.
pub(crate) struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    pub(crate) fn spawn(t: &T, args: &[&str]) -> Running {
        let mut child = t
            .std_sfx()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sfx");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first stderr line containing `needle` (waiting for it, with a deadline).
    pub(crate) fn line_with(&mut self, needle: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + HANG;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!(
                        "sfx never printed {needle:?} on stderr; it printed: {:?}",
                        self.seen
                    );
                }
            }
        }
    }

    /// Wait for the exit (with a deadline); stdout, and every stderr line.
    pub(crate) fn finish(mut self) -> (Output, String) {
        let deadline = Instant::now() + HANG;
        loop {
            if let Some(_status) = self.child.try_wait().expect("try_wait") {
                break;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("sfx did not exit within {HANG:?}; stderr: {:?}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = self.child.wait_with_output().expect("output");
        // The reader thread ends with the process: collect the rest.
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(l);
        }
        (out, self.seen.join("\n"))
    }
}

/// A browser that does not follow redirects by itself.
fn browser() -> ureq::Agent {
    ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(HANG))
        .build()
        .new_agent()
}

/// GET a URL: status, `Location`, body.
fn get(url: &str) -> (u16, Option<String>, String) {
    let mut resp = browser().get(url).call().expect("GET");
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    (status, location, body)
}

pub(crate) fn query(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url)
        .expect("URL")
        .query_pairs()
        .into_owned()
        .collect()
}

/// The authorize URL sfx printed (its own line on stderr).
pub(crate) fn authorize_url(run: &mut Running) -> String {
    let line = run.line_with(AUTHORIZE);
    let start = line.find("http").expect("a URL on the line");
    line[start..].trim().to_string()
}

/// Play the browser: authorize at the fake, follow its redirect to sfx's listener.
/// Returns the redirect target and the listener's answer.
pub(crate) fn browse(authorize: &str) -> (String, u16, String) {
    let (status, location, _) = get(authorize);
    assert_eq!(status, 302, "the fake's authorize redirects");
    let callback = location.expect("Location");
    let (status, _, body) = get(&callback);
    (callback, status, body)
}

fn last_request(t: &T, path: &str, pred: impl Fn(&RecordedRequest) -> bool) -> RecordedRequest {
    t.fake
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == path && pred(r))
        .unwrap_or_else(|| panic!("no request to {path} matched"))
}

fn web_args<'a>(t: &'a T, extra: &[&'a str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "login",
        "--web",
        "--no-browser",
        "--port",
        "0",
        "--login-url",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(t.fake.url());
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

pub(crate) fn spawn_web(t: &T, extra: &[&str]) -> Running {
    let args = web_args(t, extra);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Running::spawn(t, &refs)
}

pub(crate) fn nothing_stored(t: &T) {
    assert!(
        !t.home().join("orgs.json").exists(),
        "no org metadata may be written"
    );
    assert!(
        !t.home().join("secrets.json").exists(),
        "no secret may be written"
    );
}

fn expires_answers(t: &T, alias: &str) {
    t.sfx()
        .args(["expires", "-o", alias, "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"active\":true"));
}

// ----- web (authorization code + PKCE) ------------------------------------------------

#[test]
fn web_login_uses_pkce_and_state_then_refreshes_with_the_refresh_token() {
    let t = T::new();
    let mut run = spawn_web(
        &t,
        &["--client-id", DEFAULT_CLIENT_ID, "--alias", "web", "--json"],
    );
    let url = authorize_url(&mut run);
    let q = query(&url);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], DEFAULT_CLIENT_ID);
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["state"].len() >= 16, "a random state: {}", q["state"]);
    let redirect = q["redirect_uri"].clone();
    assert!(
        redirect.starts_with("http://localhost:") && redirect.ends_with("/OauthRedirect"),
        "{redirect}"
    );
    assert_ne!(
        redirect, "http://localhost:0/OauthRedirect",
        "port 0 is resolved"
    );

    // A stray request (a favicon) gets 404 and the listener keeps waiting.
    let stray = redirect.replace("/OauthRedirect", "/favicon.ico");
    assert_eq!(get(&stray).0, 404);

    let (callback, status, page) = browse(&url);
    assert_eq!(
        query(&callback)["state"],
        q["state"],
        "the fake echoes state"
    );
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Logged in"), "{page}");

    let (out, stderr) = run.finish();
    assert!(out.status.success(), "{stderr}");
    let v = stdout_json(&out);
    assert_eq!(v["org"], "web");
    assert_eq!(v["username"], DEFAULT_USERNAME);
    assert_eq!(v["instance_url"], t.fake.url());

    // The exchange carried the verifier of the challenge, and the same callback URL.
    let exchange = last_request(&t, TOKEN, |r| {
        r.param("grant_type") == Some("authorization_code")
    });
    let verifier = exchange.param("code_verifier").expect("code_verifier");
    assert_eq!(pkce_s256(verifier), q["code_challenge"]);
    assert_eq!(exchange.param("redirect_uri"), Some(redirect.as_str()));
    assert_eq!(t.fake.count_grant("authorization_code"), 1);

    let rec = &t.metadata()["orgs"]["web"];
    assert_eq!(rec["flow"], "web");
    assert_eq!(rec["client_id"], DEFAULT_CLIENT_ID);
    let rt = t.refresh_token("web");
    assert!(t.fake.is_active(&rt));
    expires_answers(&t, "web");

    t.fake.clear_requests();
    t.sfx().args(["refresh", "-o", "web"]).assert().success();
    assert_eq!(t.fake.count_grant("refresh_token"), 1);
    assert_eq!(t.fake.count(TOKEN), 1, "one refresh grant, nothing else");
}

#[test]
fn web_login_without_client_id_uses_the_platform_cli_app() {
    let t = T::new();
    let mut run = spawn_web(&t, &[]);
    let url = authorize_url(&mut run);
    assert_eq!(query(&url)["client_id"], PUBLIC_CLIENT_ID);
    let (_, status, _) = browse(&url);
    assert_eq!(status, 200);
    let (out, stderr) = run.finish();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("PlatformCLI"), "says which app: {stderr}");
    assert_eq!(
        t.metadata()["orgs"][DEFAULT_USERNAME]["client_id"],
        PUBLIC_CLIENT_ID
    );
    // A public client: no secret stored, the exchange sent none.
    let exchange = last_request(&t, TOKEN, |r| {
        r.param("grant_type") == Some("authorization_code")
    });
    assert_eq!(exchange.param("client_secret"), None);
    assert!(t.secrets()[DEFAULT_USERNAME].get("client-secret").is_none());
}

#[test]
fn web_login_denied_in_the_browser_exits_4_and_stores_nothing() {
    let t = T::new();
    t.fake.set_authorize_deny(true);
    let mut run = spawn_web(&t, &["--client-id", DEFAULT_CLIENT_ID]);
    let url = authorize_url(&mut run);
    let (callback, status, page) = browse(&url);
    assert_eq!(query(&callback)["error"], "access_denied");
    assert_eq!(status, 400);
    assert!(page.contains("denied"), "{page}");
    let (out, stderr) = run.finish();
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("access_denied") && stderr.contains("denied"),
        "{stderr}"
    );
    assert_eq!(t.fake.count(TOKEN), 0, "no code exchange");
    nothing_stored(&t);
}

/// A callback with another `state` is not this login's (issue #24): answered
/// 400 and ignored, its code never exchanged; the login goes on waiting.
#[test]
fn web_callback_with_a_wrong_state_is_ignored_and_its_code_never_exchanged() {
    let t = T::new();
    let mut run = spawn_web(&t, &["--client-id", DEFAULT_CLIENT_ID]);
    let url = authorize_url(&mut run);
    let state = query(&url)["state"].clone();
    let forged = url.replace(&format!("state={state}"), "state=forged");
    assert_ne!(forged, url);
    let (callback, status, page) = browse(&forged);
    assert_eq!(query(&callback)["state"], "forged");
    let forged_code = query(&callback)["code"].clone();
    assert_eq!(status, 400);
    assert!(page.contains("state"), "{page}");
    // The login in progress is still waiting: its own callback completes it.
    let (callback, status, _) = browse(&url);
    assert_eq!(status, 200);
    let (out, stderr) = run.finish();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(t.fake.count_grant("authorization_code"), 1);
    let exchange = last_request(&t, TOKEN, |r| {
        r.param("grant_type") == Some("authorization_code")
    });
    assert_eq!(
        exchange.param("code"),
        Some(query(&callback)["code"].as_str())
    );
    assert_ne!(exchange.param("code"), Some(forged_code.as_str()));
}

#[test]
fn web_login_gives_up_when_no_browser_comes_back() {
    let t = T::new();
    t.fake.expect_no_requests();
    let started = Instant::now();
    let mut run = spawn_web(
        &t,
        &["--client-id", DEFAULT_CLIENT_ID, "--login-timeout", "1s"],
    );
    let _ = authorize_url(&mut run);
    let (out, stderr) = run.finish();
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("no browser login came back") && stderr.contains("within 1s"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--login-timeout"),
        "says how to wait longer"
    );
    assert!(started.elapsed() < HANG);
    assert_eq!(t.fake.count(TOKEN), 0);
    nothing_stored(&t);
}

#[test]
fn web_login_on_a_busy_port_exits_2_naming_port() {
    let t = T::new();
    t.fake.expect_no_requests();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    t.sfx()
        .args(["login", "--web", "--no-browser", "--port", &port])
        .args(["--login-url", &t.fake.url()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--port"));
    assert_eq!(t.fake.requests().len(), 0);
}

#[test]
fn login_without_a_flow_off_a_terminal_exits_2_naming_the_flows() {
    let t = T::new();
    t.fake.expect_no_requests();
    t.sfx()
        .args(["login", "--login-url", &t.fake.url()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--web").and(predicate::str::contains("--device")));
    assert_eq!(t.fake.requests().len(), 0);
}

// ----- device -------------------------------------------------------------------------

pub(crate) fn spawn_device(t: &T, extra: &[&str]) -> Running {
    let url = t.fake.url();
    let mut args = vec![
        "login",
        "--device",
        "--client-id",
        DEFAULT_CLIENT_ID,
        "--login-url",
        &url,
    ];
    args.extend_from_slice(extra);
    Running::spawn(t, &args)
}

/// The user code sfx printed.
fn user_code(run: &mut Running) -> String {
    let line = run.line_with("enter the code");
    line.rsplit(' ').next().unwrap().trim().to_string()
}

fn polls(t: &T) -> Vec<RecordedRequest> {
    t.fake
        .requests()
        .into_iter()
        .filter(|r| r.path == TOKEN && r.param("grant_type") == Some("device"))
        .collect()
}

#[test]
fn device_login_shows_the_code_polls_until_approved_and_refreshes_with_the_refresh_token() {
    let t = T::new();
    t.fake.set_device_interval(1);
    let mut run = spawn_device(&t, &["--alias", "dev", "--json"]);
    let code = user_code(&mut run);
    let url_line = run.line_with("to log in, open");
    assert!(
        url_line.contains(&format!("{}/setup/connect", t.fake.url())),
        "{url_line}"
    );
    assert_eq!(t.fake.pending_user_codes(), vec![code.clone()]);
    assert!(t.fake.approve_device(&code, DEFAULT_USERNAME));
    let (out, stderr) = run.finish();
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout_json(&out)["org"], "dev");

    let request = last_request(&t, TOKEN, |r| {
        r.param("response_type") == Some("device_code")
    });
    assert_eq!(request.param("client_id"), Some(DEFAULT_CLIENT_ID));
    let polls = polls(&t);
    assert!(!polls.is_empty());
    assert!(
        polls
            .iter()
            .all(|p| p.param("code").is_some_and(|c| !c.is_empty()))
    );
    assert_eq!(t.metadata()["orgs"]["dev"]["flow"], "device");
    assert!(t.fake.is_active(&t.refresh_token("dev")));
    expires_answers(&t, "dev");

    t.fake.clear_requests();
    t.sfx().args(["refresh", "-o", "dev"]).assert().success();
    assert_eq!(t.fake.count_grant("refresh_token"), 1);
    assert_eq!(t.fake.count(TOKEN), 1);
}

#[test]
fn a_login_without_the_refresh_token_scope_says_it_cannot_be_refreshed() {
    let t = T::new();
    t.fake.set_device_interval(1);
    let mut run = spawn_device(&t, &["--alias", "short", "--scope", "api web"]);
    let code = user_code(&mut run);
    assert!(t.fake.approve_device(&code, DEFAULT_USERNAME));
    let (out, stderr) = run.finish();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("returned no refresh token"), "{stderr}");
    assert_eq!(t.metadata()["orgs"]["short"]["has_refresh_token"], false);
    t.sfx().args(["refresh", "-o", "short"]).assert().code(4);
}

// `slow_down` adding 5 s to the interval, and the wait ending after exactly
// --login-timeout, are paced on the clock: unit tests in
// src/salesforce/flows/device.rs (milliseconds instead of 6 s here).

#[test]
fn device_code_that_expires_unapproved_exits_4() {
    let t = T::new();
    t.fake.set_device_interval(1);
    t.fake.set_device_expiry(1);
    let mut run = spawn_device(&t, &[]);
    let _ = user_code(&mut run);
    let (out, stderr) = run.finish();
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("expired"), "{stderr}");
    nothing_stored(&t);
}

#[test]
fn device_login_stops_at_login_timeout_and_on_denial() {
    let t = T::new();
    t.fake.set_device_interval(1);
    let mut run = spawn_device(&t, &["--login-timeout", "1s"]);
    let _ = user_code(&mut run);
    let (out, stderr) = run.finish();
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("--login-timeout"), "{stderr}");

    let mut run = spawn_device(&t, &[]);
    let code = user_code(&mut run);
    assert!(t.fake.deny_device(&code));
    let (out, stderr) = run.finish();
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("access_denied"), "{stderr}");
    nothing_stored(&t);
}

// ----- JWT bearer -----------------------------------------------------------------------

pub(crate) fn jwt_login(t: &T, key_file: &str, alias: &str) -> assert_cmd::assert::Assert {
    t.sfx()
        .args(["login", "--jwt", "--client-id", DEFAULT_CLIENT_ID])
        .args(["--username", DEFAULT_USERNAME, "--key-file", key_file])
        .args(["--login-url", &t.fake.url(), "--alias", alias])
        .assert()
}

fn claims_of(assertion: &str) -> (Value, Value) {
    let mut parts = assertion.split('.');
    let mut part = || {
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts.next().expect("JWT part"))
            .expect("base64url");
        serde_json::from_slice::<Value>(&b).expect("JSON")
    };
    (part(), part())
}

#[test]
fn jwt_login_with_a_pkcs8_key_signs_the_assertion_and_refresh_runs_the_grant_again() {
    let t = T::new();
    jwt_login(&t, &key("jwt-bearer-test-key.pem"), "ci").success();
    let grant = last_request(&t, TOKEN, |r| r.param("grant_type") == Some(JWT_GRANT));
    assert_eq!(
        grant.param("client_secret"),
        None,
        "no secret in a JWT grant"
    );
    let (header, claims) = claims_of(grant.param("assertion").expect("assertion"));
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["iss"], DEFAULT_CLIENT_ID);
    assert_eq!(claims["sub"], DEFAULT_USERNAME);
    assert_eq!(claims["aud"], t.fake.url());
    let exp = claims["exp"].as_i64().expect("numeric exp");
    assert!(
        exp > now() + 60 && exp <= now() + 300,
        "a few minutes ahead"
    );

    let rec = &t.metadata()["orgs"]["ci"];
    assert_eq!(rec["flow"], "jwt");
    assert_eq!(rec["username"], DEFAULT_USERNAME);
    assert_eq!(rec["key_file"], key("jwt-bearer-test-key.pem"));
    let secrets = t.secrets();
    assert!(secrets["ci"].get("refresh-token").is_none());
    let stored = std::fs::read_to_string(t.home().join("secrets.json")).unwrap();
    assert!(!stored.contains("PRIVATE KEY"), "the key is never copied");
    expires_answers(&t, "ci");

    t.fake.clear_requests();
    let before = t.access_token("ci");
    t.sfx().args(["refresh", "-o", "ci"]).assert().success();
    assert_eq!(t.fake.count_grant(JWT_GRANT), 1);
    assert_eq!(t.fake.count_grant("refresh_token"), 0);
    assert_ne!(t.access_token("ci"), before);
    assert!(t.fake.is_active(&t.access_token("ci")));

    // `sfx token` takes the same path when the token is too close to its end.
    t.fake.clear_requests();
    t.sfx()
        .args(["token", "-o", "ci", "--min-valid", "3h"])
        .assert()
        .success();
    assert_eq!(t.fake.count_grant(JWT_GRANT), 1);
}

#[test]
fn jwt_login_with_a_pkcs1_key_works_too() {
    let t = T::new();
    jwt_login(&t, &key("jwt-bearer-test-key.pkcs1.pem"), "ci").success();
    assert_eq!(t.metadata()["orgs"]["ci"]["flow"], "jwt");
    t.sfx().args(["refresh", "-o", "ci"]).assert().success();
    assert_eq!(t.fake.count_grant(JWT_GRANT), 2);
}

#[test]
fn jwt_login_with_a_key_the_app_does_not_know_exits_4() {
    let t = T::new();
    // A real RSA key, but not the one whose certificate the app holds.
    jwt_login(&t, &key("access-token-signing-key.pem"), "ci")
        .code(4)
        .stderr(predicate::str::contains("invalid assertion"))
        .stderr(predicate::str::contains("--key-file"));
    nothing_stored(&t);
}

#[test]
fn jwt_login_with_a_file_that_is_not_a_private_key_exits_2_before_any_request() {
    let t = T::new();
    t.fake.expect_no_requests();
    jwt_login(&t, &key("jwt-bearer-test-pub.pem"), "ci")
        .code(2)
        .stderr(predicate::str::contains("not a PEM private key"));
    jwt_login(&t, "/nonexistent/key.pem", "ci")
        .code(2)
        .stderr(predicate::str::contains("cannot read it"));
    assert_eq!(t.fake.requests().len(), 0);
    nothing_stored(&t);
}

#[test]
fn jwt_login_for_a_user_who_has_not_approved_the_app_exits_4() {
    let t = T::new();
    t.fake.set_preauthorized(DEFAULT_CLIENT_ID, false);
    jwt_login(&t, &key("jwt-bearer-test-key.pem"), "ci")
        .code(4)
        .stderr(predicate::str::contains("hasn't approved"))
        .stderr(predicate::str::contains("pre-authorize"));
    nothing_stored(&t);
}

#[test]
fn jwt_refresh_without_the_key_file_exits_4() {
    let t = T::new();
    let copy = t.dir.path().join("server.key");
    std::fs::copy(key("jwt-bearer-test-key.pem"), &copy).unwrap();
    jwt_login(&t, copy.to_str().unwrap(), "ci").success();
    std::fs::remove_file(&copy).unwrap();
    t.fake.clear_requests();
    t.sfx()
        .args(["refresh", "-o", "ci"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("server.key"));
    assert_eq!(t.fake.count(TOKEN), 0);
}

#[test]
fn jwt_login_when_salesforce_is_down_exits_5_and_stores_nothing() {
    let t = T::new();
    t.fake.inject(TOKEN, Fault::html(503).forever());
    jwt_login(&t, &key("jwt-bearer-test-key.pem"), "ci").code(5);
    nothing_stored(&t);
}

// ----- client credentials ----------------------------------------------------------------

#[test]
fn client_credentials_login_stores_the_secret_and_refresh_runs_the_grant_again() {
    let t = T::new();
    t.sfx()
        .env("SFX_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
        .args([
            "login",
            "--client-credentials",
            "--client-id",
            DEFAULT_CLIENT_ID,
        ])
        .args(["--login-url", &t.fake.url(), "--alias", "svc"])
        .assert()
        .success();
    let grant = last_request(&t, TOKEN, |r| {
        r.param("grant_type") == Some("client_credentials")
    });
    assert_eq!(grant.param("client_secret"), Some(DEFAULT_CLIENT_SECRET));
    let rec = &t.metadata()["orgs"]["svc"];
    assert_eq!(rec["flow"], "client_credentials");
    assert_eq!(rec["username"], DEFAULT_USERNAME, "the run-as user");
    assert_eq!(t.secrets()["svc"]["client-secret"], DEFAULT_CLIENT_SECRET);
    assert!(t.secrets()["svc"].get("refresh-token").is_none());
    expires_answers(&t, "svc");

    t.fake.clear_requests();
    t.sfx().args(["refresh", "-o", "svc"]).assert().success();
    assert_eq!(t.fake.count_grant("client_credentials"), 1);
    assert_eq!(t.fake.count_grant("refresh_token"), 0);
}

#[test]
fn client_credentials_reads_the_secret_from_stdin() {
    let t = T::new();
    t.sfx()
        .args(["login", "--client-credentials", "--client-secret-stdin"])
        .args([
            "--client-id",
            DEFAULT_CLIENT_ID,
            "--instance-url",
            &t.fake.url(),
        ])
        .write_stdin(format!("{DEFAULT_CLIENT_SECRET}\n"))
        .assert()
        .success();
    assert_eq!(t.fake.count_grant("client_credentials"), 1);
}

#[test]
fn client_credentials_at_a_generic_login_host_exits_2_naming_my_domain() {
    let t = T::new();
    t.fake.expect_no_requests();
    for host in [
        &["--login-url", "https://login.salesforce.com"][..],
        &["--sandbox"][..],
    ] {
        t.sfx()
            .env("SFX_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
            .args([
                "login",
                "--client-credentials",
                "--client-id",
                DEFAULT_CLIENT_ID,
            ])
            .args(host)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("My Domain"));
    }
}

#[test]
fn client_credentials_without_a_secret_and_no_input_exits_2_naming_the_variable() {
    let t = T::new();
    t.fake.expect_no_requests();
    t.sfx()
        .args([
            "login",
            "--client-credentials",
            "--client-id",
            DEFAULT_CLIENT_ID,
        ])
        .args(["--login-url", &t.fake.url()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("SFX_CLIENT_SECRET"))
        .stderr(predicate::str::contains("--client-secret-stdin"));
    assert_eq!(t.fake.requests().len(), 0);
}

#[test]
fn client_credentials_with_a_wrong_secret_exits_4() {
    let t = T::new();
    t.sfx()
        .env("SFX_CLIENT_SECRET", "not-the-secret-4711")
        .args([
            "login",
            "--client-credentials",
            "--client-id",
            DEFAULT_CLIENT_ID,
        ])
        .args(["--login-url", &t.fake.url()])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("invalid_client"))
        .stderr(predicate::str::contains("not-the-secret-4711").not());
    nothing_stored(&t);
}

// ----- username-password ------------------------------------------------------------------

pub(crate) fn password_login(t: &T, stdin: &str) -> assert_cmd::assert::Assert {
    t.sfx()
        .env("SFX_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
        .args(["login", "--password", "--client-id", DEFAULT_CLIENT_ID])
        .args(["--username", DEFAULT_USERNAME, "--login-url", &t.fake.url()])
        .args(["--alias", "pw"])
        .write_stdin(stdin.to_string())
        .assert()
}

#[test]
fn password_login_from_stdin_warns_and_refresh_says_log_in_again() {
    let t = T::new();
    password_login(&t, &format!("{DEFAULT_PASSWORD}{DEFAULT_SECURITY_TOKEN}\n"))
        .success()
        .stderr(predicate::str::contains("blocks it by default"))
        .stderr(predicate::str::contains(DEFAULT_PASSWORD).not());
    let grant = last_request(&t, TOKEN, |r| r.param("grant_type") == Some("password"));
    assert_eq!(
        grant.param("password"),
        Some(format!("{DEFAULT_PASSWORD}{DEFAULT_SECURITY_TOKEN}").as_str())
    );
    assert_eq!(grant.param("username"), Some(DEFAULT_USERNAME));
    assert_eq!(t.metadata()["orgs"]["pw"]["flow"], "password");
    let stored = std::fs::read_to_string(t.home().join("secrets.json")).unwrap();
    assert!(
        !stored.contains(DEFAULT_PASSWORD),
        "the password is never stored"
    );
    expires_answers(&t, "pw");

    t.fake.clear_requests();
    t.sfx()
        .args(["refresh", "-o", "pw"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("log in again"));
    assert_eq!(t.fake.count(TOKEN), 0);
}

#[test]
fn password_login_with_a_wrong_password_exits_4_and_mentions_the_blocked_flow() {
    let t = T::new();
    password_login(&t, &format!("{DEFAULT_PASSWORD}\n"))
        .code(4)
        .stderr(predicate::str::contains("authentication failure"))
        .stderr(predicate::str::contains(
            "Allow OAuth Username-Password Flows",
        ));
    nothing_stored(&t);
}

#[test]
fn password_login_without_its_inputs_exits_2_naming_them() {
    let t = T::new();
    t.fake.expect_no_requests();
    t.sfx()
        .env("SFX_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
        .args(["login", "--password", "--client-id", DEFAULT_CLIENT_ID])
        .args(["--login-url", &t.fake.url()])
        .write_stdin("x\n")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--username"));
    t.sfx()
        .args(["login", "--password", "--client-id", DEFAULT_CLIENT_ID])
        .args(["--username", DEFAULT_USERNAME, "--login-url", &t.fake.url()])
        .write_stdin("x\n")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("SFX_CLIENT_SECRET"));
    // stdin carries the password, so it cannot carry the secret too.
    t.sfx()
        .args(["login", "--password", "--client-secret-stdin"])
        .args([
            "--client-id",
            DEFAULT_CLIENT_ID,
            "--username",
            DEFAULT_USERNAME,
        ])
        .args(["--login-url", &t.fake.url()])
        .write_stdin("x\n")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("SFX_CLIENT_SECRET"));
    t.sfx()
        .env("SFX_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
        .args(["login", "--password", "--client-id", DEFAULT_CLIENT_ID])
        .args(["--username", DEFAULT_USERNAME, "--login-url", &t.fake.url()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("stdin"));
    assert_eq!(t.fake.requests().len(), 0);
}
