//! The local store, the sf link and the web login under attack (issue #24): the
//! real `sfx` against the fake, with files planted as another local user (or a
//! careless umask) would plant them.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::sfcli::{KeyVersion, Sf};
use fake_salesforce::PUBLIC_CLIENT_ID;

const HANG: Duration = Duration::from_secs(60);

#[cfg(unix)]
fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A spawned `sfx` whose stderr lines arrive on a channel as they are written.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn spawn(mut cmd: std::process::Command, stdin: &str) -> Running {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sfx");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).unwrap();
        drop(input);
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

    /// Wait (bounded) for a stderr line containing `needle`; that line.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + HANG;
        loop {
            if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("sfx never printed {needle:?}; it printed {:?}", self.seen);
                }
            }
        }
    }

    fn finish(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().unwrap();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(l);
        }
        (status, self.seen.join("\n"))
    }
}

// ----- 1. lock files are never followed -----------------------------------------------

#[cfg(unix)]
#[test]
fn a_lock_file_planted_as_a_symlink_is_refused_and_its_target_is_untouched() {
    let t = T::new();
    t.login("prod");
    let victim = t.dir.path().join("precious.txt");
    std::fs::write(&victim, "the user's own file\n").unwrap();
    let locks = t.home().join("locks");
    for (lock, args) in [
        ("orgs.lock", vec!["logout", "-o", "prod"]),
        ("secrets.lock", vec!["logout", "-o", "prod"]),
        ("org-prod.lock", vec!["refresh", "-o", "prod"]),
    ] {
        let path = locks.join(lock);
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let n = t.token_requests();
        let out = t.sfx().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(6), "{lock}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("symbolic link"),
            "{lock}: {}",
            text(&out.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "the user's own file\n",
            "{lock}: the link's target was written"
        );
        assert_eq!(t.token_requests(), n, "{lock}: nothing sent");
        std::fs::remove_file(&path).unwrap();
    }
    // With the links gone, everything works again.
    t.sfx().args(["refresh", "-o", "prod"]).assert().success();
    assert!(t.metadata()["orgs"]["prod"].is_object());
}

// ----- 2. a home that is not the user's own and private --------------------------------

#[cfg(unix)]
#[test]
fn a_home_others_can_write_is_refused_and_doctor_says_so() {
    let t = T::new();
    t.login("prod");
    chmod(&t.home(), 0o777);
    let n = t.token_requests();
    for args in [
        vec!["orgs"],
        vec!["refresh", "-o", "prod"],
        vec!["token", "-o", "prod"],
    ] {
        let out = t.sfx().args(&args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(6),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let err = text(&out.stderr);
        assert!(
            err.contains("writable by other users") && err.contains("chmod 700"),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: no token printed");
    }
    assert_eq!(t.token_requests(), n, "nothing sent");
    let out = t.sfx().args(["doctor", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    let v = stdout_json(&out);
    assert_eq!(v["home"]["trusted"], false, "{v}");
    assert!(
        v["home"]["problems"][0]
            .as_str()
            .unwrap()
            .contains("mode 0777"),
        "{v}"
    );
    let out = t.sfx().args(["doctor"]).output().unwrap();
    assert!(
        text(&out.stdout).contains("not trusted"),
        "{}",
        text(&out.stdout)
    );
    // Made private again: used again.
    chmod(&t.home(), 0o700);
    t.sfx().args(["refresh", "-o", "prod"]).assert().success();
    let v = stdout_json(&t.sfx().args(["doctor", "--json"]).output().unwrap());
    assert_eq!(v["home"]["trusted"], true, "{v}");
}

#[cfg(unix)]
#[test]
fn a_secrets_file_others_can_read_is_refused_until_made_private() {
    let t = T::new();
    t.login("prod");
    let secrets = t.home().join("secrets.json");
    chmod(&secrets, 0o644);
    let out = t.sfx().args(["token", "-o", "prod"]).output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(
        err.contains("readable by other users") && err.contains("chmod 600"),
        "{err}"
    );
    // A record file someone else could rewrite: refused too.
    chmod(&secrets, 0o600);
    chmod(&t.home().join("orgs.json"), 0o666);
    let out = t.sfx().args(["orgs"]).output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    chmod(&t.home().join("orgs.json"), 0o600);
    t.sfx().args(["token", "-o", "prod"]).assert().success();
}

/// Run `argv` as the throw-away user `nobody` (uid 65534), with `setpriv`.
#[cfg(unix)]
fn as_nobody(argv: &[&str]) {
    let st = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(argv)
        .status()
        .expect("setpriv (util-linux) runs");
    assert!(st.success(), "{argv:?} as nobody");
}

#[cfg(unix)]
#[test]
#[ignore = "needs root (to act as a second user with setpriv): scripts/test.sh runs it"]
fn a_home_another_user_made_is_refused_and_nothing_is_written_there() {
    let t = T::new();
    // A shared place like /tmp, where the other user makes the home first.
    let shared = t.dir.path().join("tmp");
    std::fs::create_dir(&shared).unwrap();
    chmod(t.dir.path(), 0o755);
    chmod(&shared, 0o1777);
    let home = shared.join("sfx-home");
    as_nobody(&["mkdir", "-m", "700", home.to_str().unwrap()]);
    let out = t
        .sfx()
        .env("SFX_HOME", &home)
        .args(["login", "--auth-url", "-", "--alias", "prod"])
        .write_stdin(t.auth_url())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("belongs to another user"), "{err}");
    assert_eq!(
        std::fs::read_dir(&home).unwrap().count(),
        0,
        "nothing written into the other user's home"
    );
    let out = t
        .sfx()
        .env("SFX_HOME", &home)
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(stdout_json(&out)["home"]["trusted"], false);
}

// ----- 4. one lock spans an org's secrets and its record -------------------------------

#[test]
fn two_logins_of_one_alias_never_pair_one_users_record_with_anothers_tokens() {
    let t = T::new();
    let other = "other@example.com";
    t.fake
        .add_user(fake_salesforce::User::new(other, "pw", "tok"));
    let url_a = t.fake.auth_url(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    let url_b = t.fake.auth_url(DEFAULT_CLIENT_ID, other);
    let rt_of = |u: &str| {
        let (creds, _host) = u.rsplit_once('@').unwrap();
        creds.rsplit(':').next().unwrap().to_string()
    };
    // Something holds the metadata lock for a moment (a watch writing a record).
    let locks = t.home().join("locks");
    std::fs::create_dir_all(&locks).unwrap();
    #[cfg(unix)]
    {
        chmod(&t.home(), 0o700);
        chmod(&locks, 0o700);
    }
    let held = std::fs::File::create(locks.join("orgs.lock")).unwrap();
    held.lock().unwrap();
    let login = || {
        let mut c = t.std_sfx();
        c.args(["login", "--auth-url", "-", "--alias", "prod"]);
        c
    };
    let mut a = Running::spawn(login(), &url_a);
    a.wait_for("waiting for another sfx process");
    let mut b = Running::spawn(login(), &url_b);
    b.wait_for("waiting for another sfx process");
    // The second login dies while it waits; the first one goes on.
    b.child.kill().unwrap();
    let _ = b.finish();
    held.unlock().unwrap();
    let (status, err) = a.finish();
    assert!(status.success(), "{err}");
    let rec = &t.metadata()["orgs"]["prod"];
    assert_eq!(rec["username"], DEFAULT_USERNAME);
    assert_eq!(
        t.refresh_token("prod"),
        rt_of(&url_a),
        "the record names {DEFAULT_USERNAME}: the tokens must be theirs"
    );
}

// ----- 9. secrets.json is never written past what sfx reads back -----------------------

#[test]
fn a_login_that_would_grow_the_secrets_file_past_the_read_limit_is_refused() {
    let t = T::new();
    t.login("prod");
    let path = t.home().join("secrets.json");
    let mut doc = t.secrets();
    // Grown to just under the 32 MiB sfx reads back (thousands of orgs' worth).
    let limit = 32 * 1024 * 1024;
    let now = std::fs::metadata(&path).unwrap().len() as usize;
    doc["filler"] = serde_json::json!({ "access-token": "x".repeat(limit - now - 300) });
    std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let before = std::fs::read(&path).unwrap();
    assert!(before.len() < limit);
    let out = t
        .sfx()
        .args(["login", "--auth-url", "-", "--alias", "another-org"])
        .write_stdin(t.auth_url())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("32 MiB") && err.contains("nothing was changed"),
        "{err}"
    );
    assert!(std::fs::read(&path).unwrap() == before, "file unchanged");
    // Every command still works.
    t.sfx().args(["token", "-o", "prod"]).assert().success();
    t.sfx().args(["orgs"]).assert().success();
}

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
        assert!(!out.status.success(), "{args:?}");
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

#[test]
fn a_squatter_on_the_ipv6_loopback_port_makes_the_web_login_refuse() {
    let Ok(squatter) = std::net::TcpListener::bind("[::1]:0") else {
        panic!("this test needs an IPv6 loopback (::1)");
    };
    let t = T::new();
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

// ----- 3. a full disk ------------------------------------------------------------------

/// A small tmpfs, unmounted when dropped.
#[cfg(target_os = "linux")]
struct Tmpfs(std::path::PathBuf);

#[cfg(target_os = "linux")]
impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let st = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .expect("mount runs");
        assert!(st.success(), "mount a tmpfs (needs root)");
        Tmpfs(at.to_path_buf())
    }

    fn free(&self) -> u64 {
        let c = std::ffi::CString::new(self.0.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string and a zeroed out-parameter.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
        st.f_bavail as u64 * st.f_frsize as u64
    }

    /// Fill the file system until `left` bytes are free.
    fn fill(&self, name: &str, left: u64) {
        let n = self.free().saturating_sub(left) as usize;
        std::fs::write(self.0.join(name), vec![0u8; n]).unwrap();
        assert_eq!(self.free(), left, "filled to {left} bytes free");
    }
}

#[cfg(target_os = "linux")]
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A rotating org logged in under a tmpfs home.
#[cfg(target_os = "linux")]
fn rotating_on_tmpfs() -> (T, Tmpfs) {
    let t = T::new();
    t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    let fs = Tmpfs::mount(&t.home(), "1m");
    t.login("prod");
    assert_eq!(t.metadata()["orgs"]["prod"]["rotates_refresh_token"], true);
    (t, fs)
}

#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs root (to mount a small tmpfs): scripts/test.sh runs it"]
fn a_nearly_full_disk_sends_no_rotating_refresh_and_the_login_survives() {
    let (t, fs) = rotating_on_tmpfs();
    // Every lock file exists (a refresh took them).
    t.sfx().args(["refresh", "-o", "prod"]).assert().success();
    let rt = t.refresh_token("prod");
    // One page free: room for the journal, not for the new secrets file.
    fs.fill("filler", 4096);
    let n = t.token_requests();
    let out = t.sfx().args(["refresh", "-o", "prod"]).output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("nothing was sent"), "{err}");
    assert_eq!(t.token_requests(), n, "no refresh was sent");
    assert_eq!(t.refresh_token("prod"), rt);
    assert!(t.fake.is_active(&rt), "the login is alive");
    // Space freed: the same login refreshes.
    std::fs::remove_file(t.home().join("filler")).unwrap();
    t.sfx().args(["refresh", "-o", "prod"]).assert().success();
    assert_ne!(t.refresh_token("prod"), rt);
    assert_eq!(t.fake.replays(), 0);
}

#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs root (to mount a small tmpfs): scripts/test.sh runs it"]
fn a_rotated_token_that_cannot_be_stored_is_said_to_be_lost() {
    let (t, fs) = rotating_on_tmpfs();
    // Salesforce answers slowly; meanwhile something takes every byte left,
    // the room sfx kept included.
    t.fake.inject(
        "/services/oauth2/token",
        Fault {
            delay_ms: 1500,
            ..Fault::default()
        },
    );
    let mut run = Running::spawn(
        {
            let mut c = t.std_sfx();
            c.args(["refresh", "-o", "prod"]);
            c
        },
        "",
    );
    let room = t.home().join("locks").join("org-prod.room");
    let deadline = Instant::now() + HANG;
    while !room.exists() {
        assert!(Instant::now() < deadline, "sfx never kept room");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::remove_file(&room).unwrap();
    fs.fill("filler", 0);
    let _ = run.wait_for("");
    let (st, err) = run.finish();
    assert_eq!(st.code(), Some(4), "{err}");
    assert!(err.contains("this login is lost"), "{err}");
    assert!(!err.contains("5Aep"), "{err}");
}

// ----- also checked: a second signal during a refresh ----------------------------------

#[test]
fn a_second_sigterm_that_abandons_a_refresh_does_not_exit_0() {
    let t = T::new();
    t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    t.login("prod");
    // The keep-alive refresh is held at the server; two SIGTERMs arrive meanwhile.
    t.fake.inject(
        "/services/oauth2/token",
        Fault {
            delay_ms: 20_000,
            ..Fault::default()
        },
    );
    let mut w = crate::watch::spawn_cmd(
        t.std_sfx(),
        &["--keepalive", "1s"],
        &[("SFX_WATCH_MIN_CHECK", "1s")],
    );
    let deadline = Instant::now() + HANG;
    // The journal is written just before the rotating refresh is sent.
    let journal = t.home().join("locks").join("org-prod.refreshing");
    while !journal.exists() {
        assert!(Instant::now() < deadline, "no refresh: {}", w.stderr());
        std::thread::sleep(Duration::from_millis(10));
    }
    w.signal("TERM");
    while !w.stderr().contains("stopping once") {
        assert!(Instant::now() < deadline, "{}", w.stderr());
        std::thread::sleep(Duration::from_millis(10));
    }
    w.signal("TERM");
    let st = w.exit(Duration::from_secs(10));
    assert_eq!(st.code(), Some(130), "{}", w.stderr());
    assert!(w.stderr().contains("abandoned"), "{}", w.stderr());
}

// ----- also checked: sf's lock, taken over while sfx stalled ---------------------------

#[test]
fn an_sf_lock_taken_over_meanwhile_is_not_removed_by_sfx() {
    let (t, sf) = crate::sfcli::setup(KeyVersion::V1, true);
    crate::sfcli::import(&t);
    t.fake.inject(
        "/services/oauth2/token",
        Fault {
            delay_ms: 1500,
            ..Fault::default()
        },
    );
    let mut c = t.std_sfx();
    c.env("SF_USE_GENERIC_UNIX_KEYCHAIN", "true")
        .args(["refresh", "-o", "prod"]);
    let run = Running::spawn(c, "");
    let lock = std::path::PathBuf::from(format!("{}.lock", sf.file(DEFAULT_USERNAME).display()));
    let deadline = Instant::now() + HANG;
    while !lock.exists() {
        assert!(Instant::now() < deadline, "sfx never took sf's lock");
        std::thread::sleep(Duration::from_millis(5));
    }
    // sfx stalled past sf's stale limit: sf takes the lock over (as
    // proper-lockfile does: remove, make its own).
    std::fs::remove_dir(&lock).unwrap();
    std::fs::create_dir(&lock).unwrap();
    let (st, err) = run.finish();
    assert!(st.success(), "{err}");
    assert!(lock.is_dir(), "sfx removed the lock sf holds now");
}

// ----- also checked: no core dump, no reading sfx's memory -----------------------------

#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs root (to act as a second user with setpriv): scripts/test.sh runs it"]
fn another_process_of_the_same_user_cannot_read_sfxs_memory() {
    let t = T::new();
    let shared = t.dir.path().join("tmp");
    std::fs::create_dir(&shared).unwrap();
    chmod(t.dir.path(), 0o755);
    chmod(&shared, 0o1777);
    let home = shared.join("home");
    as_nobody(&["mkdir", "-m", "700", home.to_str().unwrap()]);
    // sfx running as `nobody`, waiting for a browser login.
    let mut c = std::process::Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_sfx"))
        .args(["login", "--web", "--no-browser", "--port", "0"])
        .args([
            "--client-id",
            DEFAULT_CLIENT_ID,
            "--login-url",
            &t.fake.url(),
        ])
        .env_clear()
        .env("SFX_HOME", &home)
        .env("HOME", &home)
        .env("SFX_NO_INPUT", "1")
        .env("SFX_CREDENTIAL_STORE", "file");
    let mut run = Running::spawn(c, "");
    run.wait_for("/services/oauth2/authorize");
    let pid = run.child.id();
    // Another process of the same user (a compromised tool, a debugger).
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["cat", &format!("/proc/{pid}/environ")])
        .output()
        .unwrap();
    run.child.kill().unwrap();
    let _ = run.finish();
    assert!(
        !out.status.success() && text(&out.stderr).contains("Permission denied"),
        "the same user read sfx's environment: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

// ----- also checked: a JWT key file others can read ------------------------------------

#[cfg(unix)]
#[test]
fn a_jwt_key_file_others_can_read_is_named_with_the_fix() {
    let t = T::new();
    let key = t.dir.path().join("server.key");
    std::fs::copy(
        format!(
            "{}/crates/fake-salesforce/keys/jwt-bearer-test-key.pem",
            env!("CARGO_MANIFEST_DIR")
        ),
        &key,
    )
    .unwrap();
    chmod(&key, 0o644);
    let login = |t: &T| {
        t.sfx()
            .args(["login", "--jwt", "--client-id", DEFAULT_CLIENT_ID])
            .args(["--username", DEFAULT_USERNAME, "--key-file"])
            .arg(&key)
            .args(["--login-url", &t.fake.url(), "--alias", "ci"])
            .output()
            .unwrap()
    };
    let out = login(&t);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("can be read by other users (mode 0644)") && err.contains("chmod 600"),
        "{err}"
    );
    let out = t.sfx().args(["refresh", "-o", "ci"]).output().unwrap();
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains("chmod 600"),
        "{}",
        text(&out.stderr)
    );
    chmod(&key, 0o600);
    let out = t.sfx().args(["refresh", "-o", "ci"]).output().unwrap();
    assert!(out.status.success());
    assert!(
        !text(&out.stderr).contains("other users"),
        "{}",
        text(&out.stderr)
    );
}
