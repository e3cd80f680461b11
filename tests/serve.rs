//! Readers and refreshers (issue #20), the serving half: a `sfx watch` holding
//! the refresher key answers readers' requests for a fresher token through the
//! shared store — within two seconds, with at most one refresh however many ask,
//! none when the stored token already does, and a refresh although the expiry
//! looks fine when the request names a token Salesforce refused. Real parts: a
//! redis-server, the fake Salesforce over HTTP, machines as separate SFX_HOMEs.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::common::*;
use crate::shared::{Fleet, TOKEN};

/// The fingerprint requests and notices carry: 12 bytes of SHA-256, in hex.
pub(crate) fn fp(token: &str) -> String {
    Sha256::digest(token.as_bytes())[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Leave a request as a reader does (raw XADD), returns its id.
fn ask(f: &Fleet, alias: &str, until: i64, seen: &str, dead: &str) -> String {
    f.r.cli(&[
        "XADD",
        &format!("sfx:req:{{{alias}}}"),
        "*",
        "until",
        &until.to_string(),
        "seen",
        seen,
        "dead",
        dead,
    ])
    .trim()
    .to_string()
}

/// The last notice id of the org ("0-0" when none yet).
fn last_notice(f: &Fleet, alias: &str) -> String {
    let out = f.r.cli(&[
        "XREVRANGE",
        &format!("sfx:tok:{{{alias}}}"),
        "+",
        "-",
        "COUNT",
        "1",
    ]);
    out.lines()
        .next()
        .filter(|l| !l.is_empty())
        .unwrap_or("0-0")
        .to_string()
}

/// Block (XREAD BLOCK, no polling) until a notice after `after`; returns its
/// `result` field. Fails the test after `within`.
fn next_notice(f: &Fleet, alias: &str, after: &str, within: Duration) -> String {
    let ms = within.as_millis().to_string();
    let out = f.r.cli(&[
        "XREAD",
        "BLOCK",
        &ms,
        "STREAMS",
        &format!("sfx:tok:{{{alias}}}"),
        after,
    ]);
    let lines: Vec<&str> = out.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == "result")
        .unwrap_or_else(|| panic!("no notice within {within:?}: {out:?}"));
    lines[at + 1].to_string()
}

#[test]
fn a_watching_refresher_answers_requests_within_two_seconds_refreshing_only_when_needed() {
    let f = Fleet::new();
    f.t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    f.login("prod");
    let first = f.token(0);
    f.t.fake.clear_requests();
    let mut w = crate::watch::spawn_cmd(f.std(1), &["--all"], &[]);
    w.event("checked", Duration::from_secs(60));

    // A request the stored token satisfies: answered, no refresh.
    let before = last_notice(&f, "prod");
    let t0 = Instant::now();
    ask(&f, "prod", now() + 60, &fp(&first), "");
    assert_eq!(
        next_notice(&f, "prod", &before, Duration::from_secs(10)),
        "fresh"
    );
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(
        f.t.fake.count(TOKEN),
        0,
        "no refresh for a satisfied request"
    );

    // Revoked behind sfx's back: the stored expiry still looks fine, but the
    // request names the dead token, so the refresher refreshes.
    f.t.fake.revoke_token(&first);
    let before = last_notice(&f, "prod");
    let t0 = Instant::now();
    ask(&f, "prod", now() + 60, &fp(&first), &fp(&first));
    assert_eq!(
        next_notice(&f, "prod", &before, Duration::from_secs(10)),
        "refreshed"
    );
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(f.t.fake.count_grant("refresh_token"), 1);
    let second = f.token(0);
    assert_ne!(second, first);
    assert!(f.t.fake.is_active(&second));

    // Thirty readers at once want more than the stored token has left (more
    // than a whole session, even): one refresh answers them all.
    w.during(Duration::from_millis(300));
    let mark = w.seen_events().len();
    let before = last_notice(&f, "prod");
    let until = now() + 3 * 3600;
    std::thread::scope(|s| {
        for _ in 0..30 {
            s.spawn(|| ask(&f, "prod", until, &fp(&second), ""));
        }
    });
    assert_eq!(
        next_notice(&f, "prod", &before, Duration::from_secs(10)),
        "refreshed"
    );
    // Every request was read and answered (the later ones by the new token).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        w.during(Duration::from_millis(100));
        let answered: usize = w.seen_events()[mark..]
            .iter()
            .map(|e| requests_in(e["message"].as_str().unwrap_or_default()))
            .sum();
        if answered >= 30 {
            assert_eq!(answered, 30, "{:#?}", &w.seen_events()[mark..]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{answered} of 30 requests answered"
        );
    }
    assert_eq!(
        f.t.fake.count_grant("refresh_token"),
        2,
        "one refresh for 30 readers"
    );
    crate::shared::no_replays(&f.t);
    w.signal("TERM");
    assert!(w.exit(Duration::from_secs(30)).success(), "{}", w.stderr());
}

/// "… for 29 readers' requests …" → 29; "… a reader's request …" → 1.
fn requests_in(m: &str) -> usize {
    if m.contains("a reader's request") {
        return 1;
    }
    m.split(" readers' requests")
        .next()
        .and_then(|h| h.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore = "needs prometheus (promtool): scripts/test.sh installs it and runs this"]
fn listen_counts_readers_requests_by_result_and_their_wait_and_passes_promtool() {
    use std::io::Write;
    let f = Fleet::new();
    f.login("prod");
    let token = f.token(0);
    f.t.fake.clear_requests();
    let home = f.home(1);
    let url = f.r.url();
    let w = crate::listen::spawn(
        &f.t,
        &["--all"],
        &[
            ("SFX_HOME", home.to_str().unwrap()),
            ("SFX_STORE", &url),
            ("SFX_STORE_KEY", &f.key),
        ],
    );
    w.event("checked", Some("prod"), Duration::from_secs(60));
    let before = last_notice(&f, "prod");
    ask(&f, "prod", now() + 60, &fp(&token), "");
    assert_eq!(
        next_notice(&f, "prod", &before, Duration::from_secs(10)),
        "fresh"
    );
    let before = last_notice(&f, "prod");
    ask(&f, "prod", now() + 60, &fp(&token), &fp(&token));
    assert_eq!(
        next_notice(&f, "prod", &before, Duration::from_secs(10)),
        "refreshed"
    );
    // The answer reaches the metrics right after the notice: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (_, body) = w.get("/metrics");
        if crate::listen::sample(&body, "sfx_reader_request_wait_seconds_count") == Some(2.0) {
            break body;
        }
        assert!(Instant::now() < deadline, "{body}");
        std::thread::sleep(Duration::from_millis(50));
    };
    for (result, n) in [("fresh", 1.0), ("refreshed", 1.0), ("failed", 0.0)] {
        let series = format!("sfx_reader_requests_total{{org=\"prod\",result=\"{result}\"}}");
        assert_eq!(
            crate::listen::sample(&body, &series),
            Some(n),
            "{series}\n{body}"
        );
    }
    assert!(
        body.contains("# TYPE sfx_reader_requests_total counter"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE sfx_reader_request_wait_seconds histogram"),
        "{body}"
    );
    // Waits are short: both under two seconds.
    assert_eq!(
        crate::listen::sample(&body, "sfx_reader_request_wait_seconds_bucket{le=\"2\"}"),
        Some(2.0),
        "{body}"
    );
    let mut lint = std::process::Command::new(crate::listen::prometheus_bin("promtool"))
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    lint.stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = lint.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{body}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(f.t.fake.count_grant("refresh_token"), 1);
}

/// The stored token as a later moment finds it: expired, its expiry known
/// only from `issued_at` (a watch's check may have stored an exact one).
pub(crate) fn expire(f: &Fleet, alias: &str) {
    f.edit(alias, |m| {
        m["issued_at"] = (now() - 3 * 3600).into();
        m["expiry"] = serde_json::Value::Null;
    });
}

/// The reader's half through the library: `ask_refreshers` against a real
/// watching refresher, and with none.
fn library_store(f: &Fleet, wait: Duration) -> sfx::store::shared::SharedStore {
    let s = crate::shared::store(&f.r, "sfx").with_wait(wait);
    s.set_key(&f.key).unwrap();
    s
}

#[test]
fn with_no_refresher_a_request_ends_in_exit_5_within_the_wait_plus_a_second() {
    let f = Fleet::new();
    f.login("prod");
    let token = f.token(0);
    expire(&f, "prod");
    f.t.fake.clear_requests();
    let s = library_store(&f, Duration::from_secs(2));
    let need = sfx::store::shared::FreshNeed {
        valid_until: now() + 300,
        dead_token_fp: None,
    };
    let t0 = Instant::now();
    let e = s.ask_refreshers("prod", &need, s.wait()).unwrap_err();
    let took = t0.elapsed();
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(e.exit(), sfx::exit::Exit::Network, "{e}");
    let m = e.to_string();
    assert!(m.contains("no refresher answered within 2s"), "{m}");
    assert!(m.contains("sfx watch --all"), "{m}");
    assert!(m.contains("SFX_STORE_KEY"), "{m}");
    // The request was left, and carries no token.
    let req = f.r.cli(&["XRANGE", "sfx:req:{prod}", "-", "+"]);
    assert!(req.contains("until"), "{req}");
    assert!(!req.contains(&token), "{req}");
    assert_eq!(f.t.fake.count(TOKEN), 0, "nothing refreshed");
}

#[test]
fn a_request_is_answered_by_a_watching_refresher_on_another_host_within_two_seconds() {
    let f = Fleet::new();
    f.t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    f.login("prod");
    let mut w = crate::watch::spawn_cmd(f.std(1), &["--all"], &[]);
    w.event("checked", Duration::from_secs(60));
    let old = f.token(0);
    expire(&f, "prod");
    f.t.fake.clear_requests();
    let s = library_store(&f, Duration::from_secs(60));
    let need = sfx::store::shared::FreshNeed {
        valid_until: now() + 300,
        dead_token_fp: None,
    };
    let t0 = Instant::now();
    s.ask_refreshers("prod", &need, s.wait()).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(f.t.fake.count_grant("refresh_token"), 1);
    let new = f.token(0);
    assert_ne!(new, old);
    assert!(f.t.fake.is_active(&new));
    // A 401 on the new token (revoked behind sfx's back): answered by a refresh
    // although its expiry looks fine.
    f.t.fake.revoke_token(&new);
    let need = sfx::store::shared::FreshNeed {
        valid_until: now() + 300,
        dead_token_fp: Some(fp(&new)),
    };
    let t0 = Instant::now();
    s.ask_refreshers("prod", &need, s.wait()).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(f.t.fake.count_grant("refresh_token"), 2);
    let third = f.token(0);
    assert!(f.t.fake.is_active(&third) && third != new);
    crate::shared::no_replays(&f.t);
}

/// A reader machine: `sfx` with the reader key of the fleet's refresher key.
fn reader(f: &Fleet, host: usize) -> assert_cmd::Command {
    let key = f
        .sfx(0)
        .args(["store", "reader-key"])
        .output()
        .expect("sfx store reader-key");
    assert!(key.status.success(), "{}", text(&key.stderr));
    let mut c = f.sfx(host);
    c.env("SFX_STORE_KEY", text(&key.stdout).trim());
    c
}

/// Token requests made so far, and their number must equal the refreshes the
/// watching refresher reports: no reader ever sent one.
fn only_the_refresher_asked_salesforce(f: &Fleet, w: &mut crate::watch::Watch) {
    w.during(Duration::from_millis(300));
    let refreshed = w
        .seen_events()
        .iter()
        .filter(|e| e["event"] == "refreshed")
        .count();
    assert_eq!(
        f.t.fake.count(TOKEN),
        refreshed,
        "token requests vs the refresher's refreshes: {:#?}",
        w.seen_events()
    );
}

#[test]
fn readers_are_served_by_a_watching_refresher_and_never_send_a_token_request() {
    let f = Fleet::new();
    f.t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    f.login("prod");
    f.t.fake.clear_requests();
    let mut w = crate::watch::spawn_cmd(f.std(1), &["--all"], &[]);
    w.event("checked", Duration::from_secs(60));

    // An expired token: the reader asks, the refresher refreshes, the reader prints it.
    let old = f.token(0);
    expire(&f, "prod");
    let t0 = Instant::now();
    let out = reader(&f, 2).arg("token").output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    let second = text(&out.stdout).trim().to_string();
    assert_ne!(second, old);
    assert!(f.t.fake.is_active(&second));
    assert_eq!(f.t.fake.count_grant("refresh_token"), 1);
    only_the_refresher_asked_salesforce(&f, &mut w);

    // --min-valid above what is left (30 minutes of a two-hour session).
    f.edit("prod", |m| {
        m["issued_at"] = (now() - 90 * 60).into();
        m["expiry"] = serde_json::Value::Null;
    });
    let out = reader(&f, 3)
        .args(["token", "--min-valid", "1h"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let third = text(&out.stdout).trim().to_string();
    assert!(third != second && f.t.fake.is_active(&third));
    assert_eq!(f.t.fake.count_grant("refresh_token"), 2);
    only_the_refresher_asked_salesforce(&f, &mut w);

    // Revoked behind sfx's back: the expiry looks fine, the API says 401, the
    // reader asks naming the dead token, and the call goes through on a new one.
    f.t.fake.revoke_token(&third);
    let out = reader(&f, 2)
        .args(["api", "/services/data/v64.0/limits"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(f.t.fake.count_grant("refresh_token"), 3);
    let fourth = f.token(0);
    assert!(fourth != third && f.t.fake.is_active(&fourth));
    only_the_refresher_asked_salesforce(&f, &mut w);
    crate::shared::no_replays(&f.t);

    // The refresher stops: a reader on an expired token waits --wait, then exit 5,
    // and still sends nothing to Salesforce.
    w.signal("TERM");
    assert!(w.exit(Duration::from_secs(30)).success(), "{}", w.stderr());
    expire(&f, "prod");
    let before = f.t.fake.count(TOKEN);
    let t0 = Instant::now();
    let out = reader(&f, 2)
        .args(["token", "--wait", "2s"])
        .output()
        .unwrap();
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let err = text(&out.stderr);
    assert!(err.contains("no refresher answered within 2s"), "{err}");
    assert!(err.contains("sfx watch --all"), "{err}");
    assert_eq!(
        f.t.fake.count(TOKEN),
        before,
        "a reader sent a token request"
    );
}

#[test]
fn thirty_readers_on_three_hosts_racing_on_an_expired_token_cost_one_refresh() {
    let f = Fleet::new();
    f.t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    f.login("prod");
    let mut w = crate::watch::spawn_cmd(f.std(1), &["--all"], &[]);
    w.event("checked", Duration::from_secs(60));
    expire(&f, "prod");
    f.t.fake.clear_requests();
    let mut racers = Vec::new();
    for i in 0..30 {
        let mut c = reader(&f, 2 + i % 3);
        racers.push(std::thread::spawn(move || c.arg("token").output().unwrap()));
    }
    let outs: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
    let tokens: std::collections::HashSet<String> = outs
        .iter()
        .map(|o| {
            assert!(o.status.success(), "{}", text(&o.stderr));
            text(&o.stdout).trim().to_string()
        })
        .collect();
    assert_eq!(tokens.len(), 1, "every reader got the one new token");
    assert_eq!(f.t.fake.count(TOKEN), 1, "one token request for 30 readers");
    assert!(f.t.fake.is_active(tokens.iter().next().unwrap()));
    only_the_refresher_asked_salesforce(&f, &mut w);
}

#[test]
fn the_wait_defaults_to_60s_and_is_offered_where_a_reader_may_need_a_fresher_token() {
    let t = T::new();
    t.fake.expect_no_requests();
    for cmd in ["token", "exec", "api", "refresh"] {
        let out = t.sfx().args([cmd, "--help"]).output().unwrap();
        let help = text(&out.stdout);
        assert!(help.contains("--wait <DURATION>"), "{cmd}: {help}");
        assert!(help.contains("[default: 60s]"), "{cmd}: {help}");
        assert!(help.contains("SFX_WAIT"), "{cmd}: {help}");
    }
    // Not where it means nothing.
    let help = text(&t.sfx().args(["orgs", "--help"]).output().unwrap().stdout);
    assert!(!help.contains("--wait"), "{help}");
}

/// The `ACL SETUSER <user> …` line of docs/fleets.md as written, password filled in.
fn documented_acl(user: &str, password: &str) -> Vec<String> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/fleets.md")).unwrap();
    let prefix = format!("ACL SETUSER {user} ");
    let line = doc
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {user} line in docs/fleets.md"));
    line.split_whitespace()
        .map(|w| w.replace(">PASSWORD", &format!(">{password}")))
        .collect()
}

#[test]
fn under_the_documented_acl_users_a_reader_asks_and_a_refresher_serves() {
    let f = Fleet::new();
    f.t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    for (user, pw) in [("sfx-reader", "pw-r"), ("sfx-refresher", "pw-f")] {
        let line = documented_acl(user, pw);
        let args: Vec<&str> = line.iter().map(String::as_str).collect();
        assert_eq!(f.r.cli(&args).trim(), "OK", "{line:?}");
    }
    let port = f.r.url().rsplit(':').next().unwrap().to_string();
    let refresher_url = format!("redis://sfx-refresher:pw-f@127.0.0.1:{port}");
    let reader_url = format!("redis://sfx-reader:pw-r@127.0.0.1:{port}");
    f.sfx(0)
        .env("SFX_STORE", &refresher_url)
        .args(["login", "--auth-url", "-", "--alias", "prod"])
        .write_stdin(f.t.auth_url())
        .assert()
        .success();
    // No refresher yet: the reader's request and wait work under its user (exit
    // 5, not a refused command).
    expire(&f, "prod");
    let out = reader(&f, 2)
        .env("SFX_STORE", &reader_url)
        .args(["token", "--wait", "1s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no refresher answered"),
        "{}",
        text(&out.stderr)
    );
    // A refresher under its user serves that request (left in the store) and the next.
    let mut w = crate::watch::spawn_cmd(f.std(1), &["--all"], &[("SFX_STORE", &refresher_url)]);
    w.event("refreshed", Duration::from_secs(30));
    expire(&f, "prod");
    f.t.fake.clear_requests();
    let out = reader(&f, 2)
        .env("SFX_STORE", &reader_url)
        .arg("token")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(f.t.fake.is_active(text(&out.stdout).trim()));
    assert_eq!(f.t.fake.count(TOKEN), 1);
    assert!(!w.stderr().contains("NOPERM"), "{}", w.stderr());
}

#[test]
fn a_refresh_the_refresher_cannot_make_is_exit_4_on_the_reader_at_once_not_after_the_wait() {
    let f = Fleet::new();
    f.login("prod");
    let rt = {
        let s = library_store(&f, Duration::from_secs(60));
        let (rec, _) = s.read_org("prod").unwrap().unwrap();
        s.secret(&rec, sfx::store::SecretKind::RefreshToken)
            .unwrap()
            .unwrap()
            .expose()
            .to_string()
    };
    let mut w = crate::watch::spawn_cmd(f.std(1), &["--all"], &[]);
    w.event("checked", Duration::from_secs(60));
    // The login is revoked in Salesforce (an admin, or containment): the
    // refresher's refresh gets invalid_grant.
    f.t.fake.revoke_token(&rt);
    expire(&f, "prod");
    let t0 = Instant::now();
    let out = reader(&f, 2).arg("token").output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert!(
        err.contains("the refresher could not refresh org prod"),
        "{err}"
    );
    assert!(!err.contains(&rt), "{err}");
    w.event("error", Duration::from_secs(10));
}

#[test]
fn requests_cannot_make_a_refresher_retry_a_failing_refresh_more_than_once_a_second() {
    // A reader may write requests; when the refresh fails (the login revoked in
    // Salesforce) each request must not cost another token request at once:
    // requests cause at most one refresh attempt per org a second, failed or not.
    let f = Fleet::new();
    f.login("prod");
    let rt = {
        let s = library_store(&f, Duration::from_secs(60));
        let (rec, _) = s.read_org("prod").unwrap().unwrap();
        s.secret(&rec, sfx::store::SecretKind::RefreshToken)
            .unwrap()
            .unwrap()
            .expose()
            .to_string()
    };
    let token = f.token(0);
    let mut w = crate::watch::spawn_cmd(f.std(1), &["--all"], &[]);
    w.event("checked", Duration::from_secs(60));
    f.t.fake.revoke_token(&rt);
    f.t.fake.clear_requests();
    let t0 = Instant::now();
    // Three requests, each sent once the previous one is answered ("failed"):
    // without the gap all three in well under a second. (The gap to the
    // millisecond: `commands::watch::serve::tests`, on a fake clock.)
    for _ in 0..3 {
        let before = last_notice(&f, "prod");
        ask(&f, "prod", now() + 60, &fp(&token), &fp(&token));
        assert_eq!(
            next_notice(&f, "prod", &before, Duration::from_secs(10)),
            "failed"
        );
    }
    let took = t0.elapsed();
    let attempts = f.t.fake.count_grant("refresh_token");
    assert!(attempts >= 1, "the refresher tried");
    assert!(
        attempts as u64 <= 1 + took.as_secs(),
        "{attempts} refresh attempts in {took:?}"
    );
}

#[test]
fn a_request_id_far_ahead_of_the_clock_does_not_lock_readers_out() {
    // XADD takes any id from a writer, the documented reader user included (it
    // may XADD to `sfx:req:{*}`); once the top id is the largest there is, every
    // other reader's `XADD *` fails. A watching refresher clears such a stream,
    // and a reader whose request could not be left yet tries again meanwhile.
    let f = Fleet::new();
    f.login("prod");
    let mut w = crate::watch::spawn_cmd(f.std(1), &["--all"], &[]);
    w.event("checked", Duration::from_secs(60));
    // (What such an id does to a stream, shown on one nobody reads.)
    let top = "18446744073709551615-18446744073709551615";
    f.r.cli(&["XADD", "sfx:req:{scratch}", top, "until", "1"]);
    let refused = f.r.cli(&["XADD", "sfx:req:{scratch}", "*", "until", "1"]);
    assert!(
        refused.contains("exhausted the last possible ID"),
        "{refused}"
    );
    f.r.cli(&["XADD", "sfx:req:{prod}", top, "until", "1"]);
    expire(&f, "prod");
    f.t.fake.clear_requests();
    let out = reader(&f, 2)
        .args(["token", "--wait", "10s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(f.t.fake.is_active(text(&out.stdout).trim()));
    assert_eq!(f.t.fake.count(TOKEN), 1);
    let req = f.r.cli(&["XRANGE", "sfx:req:{prod}", "-", "+"]);
    assert!(!req.contains(top), "{req}");
}

#[test]
fn a_notice_stream_at_the_last_possible_id_does_not_keep_readers_waiting() {
    // A Redis writer puts the last possible id into the org's notice stream: no
    // notice can follow it, so a reader blocked on notices would sit out its
    // whole --wait though the refresher answered. The refresher clears the
    // stream; the reader looks at the token itself meanwhile.
    let f = Fleet::new();
    f.login("prod");
    let mut w = crate::watch::spawn_cmd(f.std(1), &["--all"], &[]);
    w.event("checked", Duration::from_secs(60));
    let top = "18446744073709551615-18446744073709551615";
    f.r.cli(&["XADD", "sfx:tok:{prod}", top, "result", "fresh"]);
    expire(&f, "prod");
    f.t.fake.clear_requests();
    let t0 = Instant::now();
    let out = reader(&f, 2)
        .args(["token", "--wait", "20s"])
        .output()
        .unwrap();
    let took = t0.elapsed();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(f.t.fake.is_active(text(&out.stdout).trim()));
    assert_eq!(f.t.fake.count(TOKEN), 1);
    // The stream works again: the next reader waits on notices.
    let tok = f.r.cli(&["XRANGE", "sfx:tok:{prod}", "-", "+"]);
    assert!(!tok.contains(top), "{tok}");
}

#[test]
fn two_watching_refreshers_together_refresh_an_org_at_most_once_a_second_for_requests() {
    // Each refresher kept its own once-a-second gap, so a reader writing one
    // request naming the current token as dead after each answer got a refresh
    // from whichever refresher was not in its gap: twice a second with two.
    let f = Fleet::new();
    f.login("prod");
    let mut a = crate::watch::spawn_cmd(f.std(1), &["--all"], &[]);
    let mut b = crate::watch::spawn_cmd(f.std(2), &["--all"], &[]);
    a.event("checked", Duration::from_secs(60));
    b.event("checked", Duration::from_secs(60));
    f.t.fake.clear_requests();
    let t0 = Instant::now();
    // Three rounds: without a gap across refreshers, three refreshes in well
    // under a second. (The gap by the stored token's issue time, to the
    // millisecond: `commands::watch::serve::tests`, on a fake clock.)
    for _ in 0..3 {
        let token = f.token(0);
        let before = last_notice(&f, "prod");
        ask(&f, "prod", now() + 60, &fp(&token), &fp(&token));
        // Both refreshers answer; wait (blocking) until one says "refreshed".
        loop {
            let out =
                f.r.cli(&["XRANGE", "sfx:tok:{prod}", &format!("({before}"), "+"]);
            assert!(!out.lines().any(|l| l == "failed"), "{out}");
            if out.lines().any(|l| l == "refreshed") {
                break;
            }
            let seen = out
                .lines()
                .rev()
                .find(|l| l.contains('-') && l.split('-').all(|p| p.parse::<u64>().is_ok()))
                .unwrap_or(&before)
                .to_string();
            next_notice(&f, "prod", &seen, Duration::from_secs(10));
        }
    }
    let took = t0.elapsed();
    let refreshes = f.t.fake.count_grant("refresh_token");
    assert!(refreshes >= 3, "{refreshes}");
    assert!(
        refreshes as u64 <= 1 + took.as_secs(),
        "{refreshes} refreshes in {took:?}"
    );
}
