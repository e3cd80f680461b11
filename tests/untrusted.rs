//! The sf link, the web login's callback, server text and signals under attack
//! (issue #24): the real `sfx` against the fake, with sf's files written by the
//! test-side writer of tests/sfcli.rs and the callback hit over raw sockets.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::localstore::{HANG, Running};
use crate::sfcli::{KeyVersion, Sf};
use fake_salesforce::PUBLIC_CLIENT_ID;

// ----- 5, 6. the sf link ---------------------------------------------------------------

#[cfg(unix)]
#[test]
fn a_symlinked_sf_file_is_written_through_not_replaced() {
    let (t, sf) = crate::sfcli::setup(KeyVersion::V1, true);
    // sf's file lives on a shared volume; ~/.sfdx holds a link to it.
    let volume = t.dir.path().join("volume");
    std::fs::create_dir(&volume).unwrap();
    let real = volume.join(format!("{DEFAULT_USERNAME}.json"));
    std::fs::rename(sf.file(DEFAULT_USERNAME), &real).unwrap();
    std::os::unix::fs::symlink(&real, sf.file(DEFAULT_USERNAME)).unwrap();
    crate::sfcli::import(&t);
    let out = crate::sfcli::sfx(&t)
        .args(["refresh", "-vv"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    eprintln!("{}", text(&out.stderr));
    let new_rt = t.refresh_token("prod");
    assert!(
        std::fs::symlink_metadata(sf.file(DEFAULT_USERNAME))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link is kept"
    );
    let v = read_json(&real);
    assert_eq!(sf.decrypt(v["refreshToken"].as_str().unwrap()), new_rt);
    assert!(!Path::new(&format!("{}.lock", real.display())).exists());
    // sf's next refresh, through its link, uses the live token.
    sf.refresh(&t.fake.url(), DEFAULT_USERNAME).unwrap();
    assert_eq!(t.fake.replays(), 0);
}

#[test]
fn sf_logging_in_again_with_another_app_does_not_cost_sfx_its_login() {
    let t = T::new();
    let app = "3MVG9custom.team.app";
    let mut c = Client::new(app, None);
    c.rotate_refresh_tokens = true;
    t.fake.add_client(c);
    t.fake
        .update_client(PUBLIC_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    let sf = Sf::with_key_json(t.dir.path(), KeyVersion::V1);
    // sf logged in with the team's app (`sf org login web --client-id …`).
    let rt = t.fake.grant_refresh_token(app, DEFAULT_USERNAME);
    let at = t.fake.grant_access_token(app, DEFAULT_USERNAME);
    sf.write_login(DEFAULT_USERNAME, &t.fake.url(), &at, &rt);
    let mut v = sf.read(DEFAULT_USERNAME);
    v["clientId"] = serde_json::json!(app);
    std::fs::write(
        sf.file(DEFAULT_USERNAME),
        serde_json::to_string_pretty(&v).unwrap(),
    )
    .unwrap();
    sf.write_aliases(&[("prod", DEFAULT_USERNAME)]);
    crate::sfcli::import(&t);
    let out = crate::sfcli::sfx(&t).args(["refresh"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sfx_rt = t.refresh_token("prod");
    // Later, `sf org login web` again for the same user, with sf's own app.
    let rt2 = t
        .fake
        .grant_refresh_token(PUBLIC_CLIENT_ID, DEFAULT_USERNAME);
    let at2 = t
        .fake
        .grant_access_token(PUBLIC_CLIENT_ID, DEFAULT_USERNAME);
    sf.write_login(DEFAULT_USERNAME, &t.fake.url(), &at2, &rt2);
    let sf_before = std::fs::read(sf.file(DEFAULT_USERNAME)).unwrap();
    let out = crate::sfcli::sfx(&t).args(["refresh"]).output().unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("another connected app") && err.contains("link is broken"),
        "{err}"
    );
    let last = t
        .fake
        .requests_to("/services/oauth2/token")
        .into_iter()
        .last()
        .unwrap();
    assert_eq!(
        last.param("refresh_token"),
        Some(sfx_rt.as_str()),
        "sfx's own token sent"
    );
    assert_ne!(t.refresh_token("prod"), rt2, "sf's token was not taken");
    assert!(
        t.fake.is_active(&t.refresh_token("prod")),
        "sfx's login lives"
    );
    assert!(t.fake.is_active(&rt2), "sf's login lives");
    assert_eq!(
        std::fs::read(sf.file(DEFAULT_USERNAME)).unwrap(),
        sf_before,
        "sf's file untouched"
    );
    assert_eq!(t.fake.replays(), 0);
}

// ----- 8. secrets quoted by a server, hostile tokens -----------------------------------

#[test]
fn a_secret_quoted_bare_by_the_server_is_never_printed() {
    let t = T::new();
    t.login("prod");
    let rt = t.refresh_token("prod");
    let body = format!(
        r#"{{"error":"invalid_grant {rt}","error_description":"refresh token {rt} is not valid for the client secret {DEFAULT_CLIENT_SECRET}"}}"#
    );
    for args in [
        vec!["refresh", "-o", "prod"],
        vec!["refresh", "-o", "prod", "--json"],
        vec!["refresh", "-o", "prod", "-vv"],
    ] {
        t.fake.inject(
            "/services/oauth2/token",
            Fault {
                status: 400,
                body: fake_salesforce::FaultBody::Json(body.clone()),
                ..Fault::default()
            },
        );
        let n = t.token_requests();
        let out = t.sfx().args(&args).output().unwrap();
        assert_eq!(t.token_requests(), n + 1, "{args:?}: the fake was asked");
        // Not a refusal sfx knows ("invalid_grant <token>" is no OAuth code): exit 1.
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(all.contains("invalid_grant"), "{args:?}: {all}");
        assert!(
            !all.contains(&rt),
            "{args:?}: the refresh token was printed: {all}"
        );
        assert!(
            !all.contains(&rt[..30]),
            "{args:?}: part of the refresh token was printed: {all}"
        );
        assert!(
            !all.contains(DEFAULT_CLIENT_SECRET),
            "{args:?}: the client secret was printed: {all}"
        );
    }
}

#[test]
fn a_token_with_terminal_escapes_is_refused_and_never_reaches_the_terminal() {
    let t = T::new();
    t.login("prod");
    let before = t.access_token("prod");
    let evil = "\u{1b}]0;pwned\u{7}\u{1b}[2J00D5g000004FAKE!AQ0AQevilevilevilevil\u{1b}[31m";
    let body = serde_json::json!({
        "access_token": evil,
        "instance_url": t.fake.url(),
        "id": format!("{}/id/00D5g000004FAKEEA4/0055g002kQNI8p0AQD", t.fake.url()),
        "issued_at": (now() * 1000).to_string(),
        "token_type": "Bearer",
    })
    .to_string();
    t.fake.inject(
        "/services/oauth2/token",
        Fault {
            status: 200,
            body: fake_salesforce::FaultBody::Json(body),
            ..Fault::default()
        },
    );
    let n = t.token_requests();
    let out = t.sfx().args(["refresh", "-o", "prod"]).output().unwrap();
    assert_eq!(t.token_requests(), n + 1, "the fake was asked");
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("control characters"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(t.access_token("prod"), before, "not stored");
    for args in [vec!["orgs"], vec!["refresh", "-o", "prod"]] {
        let out = t.sfx().args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        for b in [&out.stdout, &out.stderr] {
            assert!(
                !b.contains(&0x1b) && !b.contains(&0x07),
                "{args:?}: {}",
                text(b)
            );
        }
    }
}

/// A token response with `"refresh_token": ""` (a broken proxy, a hostile
/// server) was taken as a rotation: the stored refresh token became the empty
/// string, the next refresh sent nothing and the login was gone. An empty
/// refresh token is no refresh token: the stored one is kept.
#[test]
fn an_empty_refresh_token_in_a_response_does_not_replace_the_stored_one() {
    let t = T::new();
    t.login("prod");
    let rt = t.refresh_token("prod");
    let body = serde_json::json!({
        "access_token": t.fake.grant_access_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME),
        "refresh_token": "",
        "instance_url": t.fake.url(),
        "id": format!("{}/id/00D5g000004FAKEEA4/0055g002kQNI8p0AQD", t.fake.url()),
        "issued_at": (now() * 1000).to_string(),
        "token_type": "Bearer",
    })
    .to_string();
    t.fake.inject(
        "/services/oauth2/token",
        Fault {
            status: 200,
            body: fake_salesforce::FaultBody::Json(body),
            ..Fault::default()
        },
    );
    let n = t.token_requests();
    let out = t.sfx().args(["refresh", "-o", "prod"]).output().unwrap();
    assert_eq!(t.token_requests(), n + 1, "the fake was asked");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        t.refresh_token("prod"),
        rt,
        "the stored refresh token is kept"
    );
    // And it still works.
    t.sfx().args(["refresh", "-o", "prod"]).assert().success();
    assert_eq!(t.token_requests(), n + 2);
}

// ----- 7. the web login's callback -----------------------------------------------------

/// `sfx login --web` against the fake, waiting for its callback; returns the
/// run, the authorize URL and the callback port.
fn web_login(t: &T, extra: &[&str]) -> (Running, String, u16) {
    let mut c = t.std_sfx();
    c.args(["login", "--web", "--no-browser", "--port", "0"])
        .args([
            "--client-id",
            DEFAULT_CLIENT_ID,
            "--login-url",
            &t.fake.url(),
        ])
        .args(extra);
    let mut run = Running::spawn(c, "");
    let line = run.wait_for("/services/oauth2/authorize");
    let url = line[line.find("http").unwrap()..].trim().to_string();
    let redirect = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .unwrap()
        .1
        .into_owned();
    let port = url::Url::parse(&redirect).unwrap().port().unwrap();
    (run, url, port)
}

/// Play the browser: authorize at the fake, follow its redirect to sfx.
fn browse(authorize: &str) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(HANG))
        .build()
        .into();
    let resp = agent.get(authorize).call().unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    let to = resp.headers()["location"].to_str().unwrap().to_string();
    agent.get(&to).call().unwrap().status().as_u16()
}

/// Send raw bytes to the callback port; the status line that comes back.
fn raw(port: u16, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(HANG)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut back = String::new();
    let _ = std::io::Read::read_to_string(&mut s, &mut back);
    back.lines().next().unwrap_or("").to_string()
}

#[test]
fn a_forged_error_callback_without_state_neither_ends_the_login_nor_is_shown() {
    let t = T::new();
    let (run, url, port) = web_login(&t, &[]);
    let status = raw(
        port,
        "GET /OauthRedirect?error=access_denied&error_description=Your+account+is+locked%3A+call+evil HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert!(status.contains(" 400 "), "{status}");
    assert_eq!(
        browse(&url),
        200,
        "the real callback still completes the login"
    );
    let (st, err) = run.finish();
    assert!(st.success(), "{err}");
    assert!(
        !err.contains("evil") && !err.contains("access_denied"),
        "{err}"
    );
    assert_eq!(t.fake.count_grant("authorization_code"), 1);
    assert!(t.metadata()["orgs"][DEFAULT_USERNAME].is_object());
}

#[cfg(target_os = "linux")]
fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

#[cfg(target_os = "linux")]
#[test]
fn an_endless_request_head_is_cut_off_and_the_login_goes_on() {
    let t = T::new();
    let (run, url, port) = web_login(&t, &[]);
    let pid = run.child.id();
    let before = rss_kib(pid);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /OauthRedirect?state=x HTTP/1.1\r\nX-Fill: ")
        .unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    let mut sent = 0usize;
    let cut = loop {
        match s.write_all(&chunk) {
            Ok(()) => sent += chunk.len(),
            Err(_) => break true,
        }
        if sent >= 64 * 1024 * 1024 {
            break false;
        }
    };
    assert!(cut, "sfx took 64 MiB of one request head");
    assert!(
        sent < 32 * 1024 * 1024,
        "sfx took {sent} bytes before cutting it off"
    );
    let grown = rss_kib(pid).saturating_sub(before);
    assert!(grown < 16 * 1024, "sfx grew by {grown} KiB");
    assert_eq!(browse(&url), 200);
    let (st, err) = run.finish();
    assert!(st.success(), "{err}");
}

/// Any local process can open connections to the callback port that send a
/// few bytes and then nothing. sfx reads at most 16 heads at once; a new
/// connection used to be closed unread while 16 were waiting, so 16 idle ones
/// (renewed every 5 s) kept the browser's callback out until the login timed
/// out. Now the newest connection closes the oldest that is still waiting.
#[test]
fn idle_connections_holding_every_slot_do_not_keep_the_browser_out() {
    let t = T::new();
    let (run, url, port) = web_login(&t, &[]);
    let idle: Vec<std::net::TcpStream> = (0..40)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /OauthRedirect?").unwrap();
            s
        })
        .collect();
    // sfx has taken them in once it closed one of them (at the cap).
    let deadline = Instant::now() + HANG;
    'closed: loop {
        for s in &idle {
            s.set_nonblocking(true).unwrap();
            let mut b = [0u8; 1];
            if let Ok(0) = s.peek(&mut b) {
                break 'closed;
            }
        }
        assert!(
            Instant::now() < deadline,
            "sfx never closed an idle connection"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(HANG))
        .build()
        .into();
    let resp = agent.get(&url).call().unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    let to = resp.headers()["location"].to_str().unwrap().to_string();
    let got = agent.get(&to).call().map(|r| r.status().as_u16());
    assert_eq!(
        got.as_ref().ok(),
        Some(&200),
        "the browser's callback was shut out: {got:?}"
    );
    let (st, err) = run.finish();
    assert!(st.success(), "{err}");
    assert_eq!(t.fake.count_grant("authorization_code"), 1);
    drop(idle);
}

#[test]
fn a_squatter_on_the_ipv6_loopback_port_makes_the_web_login_refuse() {
    let Ok(squatter) = std::net::TcpListener::bind("[::1]:0") else {
        panic!("this test needs an IPv6 loopback (::1)");
    };
    let t = T::new();
    t.fake.expect_no_requests();
    let port = squatter.local_addr().unwrap().port().to_string();
    let out = t
        .sfx()
        .args(["login", "--web", "--no-browser", "--port", &port])
        .args([
            "--client-id",
            DEFAULT_CLIENT_ID,
            "--login-url",
            &t.fake.url(),
        ])
        .args(["--login-timeout", "2s"])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("[::1]") && err.contains("--port"), "{err}");
    assert_eq!(t.fake.requests().len(), 0, "nothing sent");
}

/// The Salesforce CLI's directory (`~/.sfdx`) is held to the sfx home's rule
/// before sfx reads or writes sf's files through it: group- or world-writable,
/// someone else could swap sf's auth file for one that sends the refresh token
/// to a server of theirs, or `alias.json` for one that names another login. sf
/// itself makes it 0700. Refused with a sentence and exit 6, before anything is
/// sent or written; `chmod 700` makes it work again.
#[cfg(unix)]
#[test]
fn a_group_writable_sf_directory_is_refused_before_sfx_reads_or_writes_through_it() {
    use crate::localstore::chmod;
    let (t, sf) = crate::sfcli::setup(KeyVersion::V2, true);
    let dir = sf.dir.clone();
    chmod(&dir, 0o775);
    let refused = |out: std::process::Output, what: &str| {
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(6), "{what}: {err}");
        assert!(
            err.contains(&format!("{} is writable by other users", dir.display()))
                && err.contains(&format!("chmod 700 {}", dir.display())),
            "{what}: {err}"
        );
    };
    let n = t.token_requests();
    refused(
        crate::sfcli::sfx(&t)
            .args(["login", "--from-sf", "prod"])
            .output()
            .unwrap(),
        "import",
    );
    refused(
        crate::sfcli::sfx(&t)
            .args(["login", "--from-sf"])
            .output()
            .unwrap(),
        "listing",
    );
    assert!(!t.home().join("orgs.json").exists(), "nothing stored");
    chmod(&dir, 0o700);
    crate::sfcli::import(&t);
    // Linked: a refresh writes through the same directory.
    let before = std::fs::read(sf.file(DEFAULT_USERNAME)).unwrap();
    let rt = t.refresh_token("prod");
    chmod(&dir, 0o777);
    let n2 = t.token_requests();
    refused(
        crate::sfcli::sfx(&t)
            .args(["refresh", "-o", "prod"])
            .output()
            .unwrap(),
        "refresh",
    );
    assert_eq!(t.token_requests(), n2, "nothing sent");
    assert_eq!(t.refresh_token("prod"), rt);
    assert_eq!(std::fs::read(sf.file(DEFAULT_USERNAME)).unwrap(), before);
    chmod(&dir, 0o700);
    crate::sfcli::sfx(&t)
        .args(["refresh", "-o", "prod"])
        .assert()
        .success();
    assert_ne!(t.refresh_token("prod"), rt);
    assert!(t.token_requests() > n);
}
