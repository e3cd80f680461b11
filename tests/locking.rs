//! The per-org refresh lock across processes (issue #5, item 1): racing callers
//! make one token request and agree; `sfx refresh` racing `sfx token` never
//! replays a rotated refresh token; a lock held by a killed process does not
//! block; a waiter waits for a live holder (giving up after a bound: see
//! `store::lock`'s unit tests); locks are scoped
//! per SFX_HOME and per org.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const TOKEN: &str = "/services/oauth2/token";

fn spawn(t: &T, args: &[&str]) -> Child {
    t.std_sfx()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_all(children: Vec<Child>) -> Vec<Output> {
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

/// Wait for `cond` with a deadline (no sleep-and-hope: it polls an event).
fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An org whose access token looks expired to sfx (so `sfx token` refreshes).
fn expired_org(t: &T, rotating: bool) {
    if rotating {
        t.fake
            .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    }
    t.login("prod");
    t.edit_org("prod", |o| o["issued_at"] = (now() - 3 * 3600).into());
    t.fake.clear_requests();
}

/// Hold an org's refresh lock from this (test) process, as a stuck sfx would.
fn hold_lock(t: &T, alias: &str) -> std::fs::File {
    let dir = t.home().join("locks");
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(dir.join(format!("org-{alias}.lock")))
        .unwrap();
    f.lock().unwrap();
    writeln!(f, "{}", std::process::id()).unwrap();
    f
}

/// Twenty `sfx token` on an expired token with rotation on: the first refresh is
/// slowed down so that the other nineteen are all waiting on the lock when it
/// lands. Three rounds.
#[test]
fn twenty_racing_token_calls_make_one_request_per_round_and_agree() {
    let t = T::new();
    expired_org(&t, true);
    for round in 0..3 {
        if round > 0 {
            t.edit_org("prod", |o| o["issued_at"] = (now() - 3 * 3600).into());
            t.fake.clear_requests();
        }
        t.fake.inject(TOKEN, Fault::delay(300));
        let outs = wait_all((0..20).map(|_| spawn(&t, &["token"])).collect());
        for o in &outs {
            assert!(o.status.success(), "{}", text(&o.stderr));
        }
        let printed: HashSet<String> = outs.iter().map(|o| text(&o.stdout)).collect();
        assert_eq!(printed.len(), 1, "all twenty print the same token");
        assert_eq!(
            t.token_requests(),
            1,
            "round {round}: exactly one token request"
        );
        let token = printed.into_iter().next().unwrap();
        assert_eq!(token.trim(), t.access_token("prod"));
        assert!(t.fake.is_active(token.trim()));
        assert!(
            t.fake.is_active(&t.refresh_token("prod")),
            "the rotated refresh token was stored and its family is alive"
        );
    }
}

/// `sfx refresh` always refreshes, `sfx token` only when needed; racing, with
/// rotation on, they take turns: every request presents the then-current refresh
/// token (none is replayed, so Salesforce never revokes the family), and all exit 0.
#[test]
fn refresh_racing_token_never_replays_a_rotated_refresh_token() {
    let t = T::new();
    expired_org(&t, true);
    let first_rt = t.refresh_token("prod");
    t.fake.inject(TOKEN, Fault::delay(200));
    let mut children = Vec::new();
    for _ in 0..8 {
        children.push(spawn(&t, &["token"]));
        children.push(spawn(&t, &["refresh", "-q"]));
    }
    let outs = wait_all(children);
    for o in &outs {
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    let sent: Vec<String> = t
        .fake
        .requests()
        .iter()
        .filter(|r| r.path == TOKEN)
        .map(|r| r.param("refresh_token").unwrap().to_string())
        .collect();
    eprintln!("race: 8 refresh + 8 token -> {} token requests", sent.len());
    // 8 refreshes, plus one by `sfx token` if one of them got the lock first.
    assert!(
        sent.len() == 8 || sent.len() == 9,
        "{} requests",
        sent.len()
    );
    let distinct: HashSet<&String> = sent.iter().collect();
    assert_eq!(
        distinct.len(),
        sent.len(),
        "no refresh token was sent twice"
    );
    assert_eq!(sent[0], first_rt);
    assert!(t.fake.is_active(&t.refresh_token("prod")));
    for o in outs.iter().filter(|o| !o.stdout.is_empty()) {
        assert!(
            t.fake.is_active(text(&o.stdout).trim()),
            "token printed is live"
        );
    }
}

/// A refresh killed with SIGKILL while it holds the lock (its request is still
/// at the server) leaves the lock file behind, but not the lock: the next call
/// goes straight through.
#[cfg(unix)]
#[test]
fn a_lock_held_by_a_sigkilled_process_does_not_block() {
    let t = T::new();
    expired_org(&t, false);
    t.fake.inject(TOKEN, Fault::delay(5_000));
    let mut holder = spawn(&t, &["token"]);
    wait_until(
        "the first refresh to reach the fake",
        Duration::from_secs(10),
        || t.token_requests() == 1,
    );
    holder.kill().unwrap(); // SIGKILL
    let status = holder.wait().unwrap();
    assert_eq!(status.code(), None, "killed by a signal");
    let lock_file = t.home().join("locks/org-prod.lock");
    assert_eq!(
        std::fs::read_to_string(&lock_file).unwrap().trim(),
        holder.id().to_string(),
        "the dead holder's pid is still in the file"
    );
    let started = Instant::now();
    let out = t.sfx().args(["token"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "not blocked (the killed request is still sleeping at the fake): {:?}",
        started.elapsed()
    );
    assert!(t.fake.is_active(text(&out.stdout).trim()));
}

/// A holder that is alive but slow: the waiter waits on the lock (it neither
/// fails nor refreshes behind the holder's back), says so after 2 s, and goes
/// through as soon as the holder lets go. Giving up after 3 x --timeout + 30 s
/// (exit 6, naming the holder's pid and the lock file) is pinned on the fake
/// clock, in milliseconds: `store::lock::tests::a_stuck_holder_makes_a_waiter_give_up_after_exactly_its_bound`
/// and `store::local::tests::a_stuck_refresh_lock_is_waited_for_three_timeouts_and_30_s_on_the_stores_clock`.
#[test]
fn a_waiter_waits_for_the_holder_says_so_and_goes_on_when_it_lets_go() {
    use std::io::{BufRead, BufReader};
    let t = T::new();
    expired_org(&t, false);
    let held = hold_lock(&t, "prod");
    let mut waiter = spawn(&t, &["token", "--timeout", "1s"]);
    let stderr = waiter.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("waiting for another sfx process") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the waiter says it waits for the lock's holder");
    assert_eq!(t.token_requests(), 0, "nothing sent while the lock is held");
    assert_eq!(waiter.try_wait().unwrap(), None, "still waiting");
    drop(held);
    let out = waiter.wait_with_output().unwrap();
    let err = reader.join().unwrap();
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("(pid {})", std::process::id())),
        "the note names the holder: {err}"
    );
    assert!(t.fake.is_active(text(&out.stdout).trim()));
    assert_eq!(t.token_requests(), 1);
}

/// Locks live under SFX_HOME and are per org.
#[test]
fn locks_are_scoped_per_home_and_per_org() {
    let a = T::new();
    let b = T::new();
    expired_org(&a, false);
    expired_org(&b, false);
    b.login("other");
    b.edit_org("other", |o| o["issued_at"] = (now() - 3 * 3600).into());
    b.fake.clear_requests();
    // Home A's "prod" is locked by a stuck holder.
    let _held = hold_lock(&a, "prod");
    // The same alias in another home is not affected...
    let started = Instant::now();
    b.sfx().args(["token", "-o", "prod"]).assert().success();
    // ...nor another org in the locked home.
    let _held_b = hold_lock(&b, "prod");
    b.sfx().args(["token", "-o", "other"]).assert().success();
    // (The default wait is 3 x 30 s + 30 s: finishing fast means no waiting.)
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(b.token_requests(), 2);
    assert_eq!(a.token_requests(), 0);
}

/// Two processes storing secrets of two different orgs at the same time, in the
/// one secrets file: neither loses the other's tokens.
#[test]
fn concurrent_refreshes_of_different_orgs_keep_both_orgs_secrets() {
    let t = T::new();
    // Five: a sixth approval of the same user and app would revoke the first.
    let names: Vec<String> = (0..5).map(|i| format!("org{i}")).collect();
    for n in &names {
        t.login(n);
    }
    for _ in 0..3 {
        let children: Vec<Child> = names
            .iter()
            .map(|n| spawn(&t, &["refresh", "-q", "-o", n]))
            .collect();
        for o in wait_all(children) {
            assert!(o.status.success(), "{}", text(&o.stderr));
        }
        for n in &names {
            let stored = t.access_token(n);
            assert!(t.fake.is_active(&stored), "{n}");
            assert_eq!(
                t.metadata()["orgs"][n]["access_token_masked"],
                fake_mask(&stored),
                "{n}: metadata and secrets agree"
            );
        }
    }
}

fn fake_mask(token: &str) -> String {
    let c: Vec<char> = token.chars().collect();
    format!(
        "{}…{}",
        c[..5].iter().collect::<String>(),
        c[c.len() - 4..].iter().collect::<String>()
    )
}
