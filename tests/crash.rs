//! Crash safety (issue #5, item 3): `kill -9` a refresh at moments spread over
//! its whole life, many times, and check what is left.
//!
//! What "consistent" means (and the README says):
//! - every store file parses: it is the old or the new version, never torn;
//! - the secrets file holds a matching pair: the old refresh and access tokens,
//!   or the new ones (one atomic write);
//! - the metadata is old or new, and never ahead of the secrets (secrets are
//!   written first); "secrets new, metadata old" is the one mixed state, left by
//!   a kill between the two renames. It is safe: the old metadata understates the
//!   new token's life (the old token was issued earlier), so sfx at worst
//!   refreshes early, and the next refresh rewrites both;
//! - without rotation the org is always refreshable afterwards;
//! - with rotation, a kill after Salesforce rotated the refresh token but before
//!   the new one was stored leaves the stored one spent. That cannot be undone
//!   from the client; what sfx guarantees is that it does not replay the spent
//!   token (which would revoke every token of the login): the next refresh checks
//!   it by introspection and stops with exit 4, "log in again".

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;

const TOKEN: &str = "/services/oauth2/token";
const INTROSPECT: &str = "/services/oauth2/introspect";

#[derive(Default, Debug)]
struct Tally {
    kills: usize,
    old: usize,
    new: usize,
    secrets_ahead: usize,
    spent_and_stopped: usize,
    unspent_after_journal: usize,
    leftover_temp_files: usize,
}

fn mask(token: &str) -> String {
    let c: Vec<char> = token.chars().collect();
    format!(
        "{}…{}",
        c[..5].iter().collect::<String>(),
        c[c.len() - 4..].iter().collect::<String>()
    )
}

fn leftovers(t: &T) -> usize {
    std::fs::read_dir(t.home())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .count()
}

/// How long an uninterrupted `sfx refresh` lives, with the fake's delay.
fn lifetime(t: &T, delay_ms: u64) -> Duration {
    let mut worst = Duration::ZERO;
    for _ in 0..3 {
        t.fake.inject(TOKEN, Fault::delay(delay_ms));
        let started = Instant::now();
        t.sfx().args(["refresh", "-q"]).assert().success();
        worst = worst.max(started.elapsed());
    }
    worst
}

/// Spawn `sfx refresh`, SIGKILL it after `after`, wait for it to die.
fn refresh_killed_after(t: &T, delay_ms: u64, after: Duration) {
    t.fake.inject(TOKEN, Fault::delay(delay_ms));
    let mut child = t
        .std_sfx()
        .args(["refresh", "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let _ = child.kill();
    child.wait().unwrap();
    t.fake.clear_faults();
}

/// Kill offsets spread evenly over the process's life (plus a margin), so that
/// kills land in start-up, the lock, the journal, the wait for the answer, and
/// the writes.
fn offsets(n: usize, life: Duration) -> Vec<Duration> {
    let span = life.as_micros() as u64 * 11 / 10;
    (0..n)
        .map(|i| Duration::from_micros(span * i as u64 / n as u64))
        .collect()
}

#[cfg(unix)]
#[test]
fn kill_9_at_any_moment_of_a_refresh_leaves_old_or_new_and_the_org_refreshable() {
    let t = T::new();
    t.login("prod");
    let delay = 15;
    let life = lifetime(&t, delay);
    let mut tally = Tally::default();
    for after in offsets(100, life) {
        let (old_rt, old_at) = (t.refresh_token("prod"), t.access_token("prod"));
        refresh_killed_after(&t, delay, after);
        tally.kills += 1;
        tally.leftover_temp_files += leftovers(&t);

        // Every file parses (read_json panics otherwise).
        let meta = t.metadata();
        let (rt, at) = (t.refresh_token("prod"), t.access_token("prod"));
        assert_eq!(rt, old_rt, "no rotation: the refresh token stays");
        let secrets_new = at != old_at;
        if secrets_new {
            assert_eq!(
                Some(at.clone()),
                t.fake.latest_access_token(),
                "the new pair"
            );
        }
        let masked = meta["orgs"]["prod"]["access_token_masked"]
            .as_str()
            .unwrap();
        let meta_new = masked != mask(&old_at);
        assert!(
            masked == mask(&old_at) || masked == mask(&at),
            "the metadata is old or new"
        );
        assert!(
            !meta_new || secrets_new,
            "the metadata is never ahead of the secrets"
        );
        match (secrets_new, meta_new) {
            (false, _) => tally.old += 1,
            (true, true) => tally.new += 1,
            (true, false) => tally.secrets_ahead += 1,
        }

        // Still usable: `sfx token` prints a live token, and the org refreshes.
        let out = t.sfx().args(["token"]).output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(t.fake.is_active(text(&out.stdout).trim()));
        t.sfx().args(["refresh", "-q"]).assert().success();
        assert_eq!(
            leftovers(&t),
            0,
            "the next write removed any leftover temp file"
        );
        assert_eq!(
            t.metadata()["orgs"]["prod"]["access_token_masked"],
            mask(&t.access_token("prod")),
            "and brought both back in step"
        );
    }
    eprintln!("crash (no rotation, life {life:?}): {tally:?}");
    assert!(
        tally.old > 0 && tally.new + tally.secrets_ahead > 0,
        "{tally:?}"
    );
}

#[cfg(unix)]
#[test]
fn kill_9_of_a_rotating_refresh_never_leads_to_a_replay() {
    let t = T::new();
    t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    t.login("prod");
    let delay = 15;
    let life = lifetime(&t, delay);
    let mut tally = Tally::default();
    for after in offsets(60, life) {
        let (old_rt, old_at) = (t.refresh_token("prod"), t.access_token("prod"));
        t.fake.clear_requests();
        refresh_killed_after(&t, delay, after);
        tally.kills += 1;
        tally.leftover_temp_files += leftovers(&t);
        let meta = t.metadata();
        let (rt, at) = (t.refresh_token("prod"), t.access_token("prod"));
        // The secrets are one pair: both old or both new.
        assert_eq!(
            rt == old_rt,
            at == old_at,
            "refresh and access token move together"
        );
        let masked = meta["orgs"]["prod"]["access_token_masked"]
            .as_str()
            .unwrap();
        assert!(masked == mask(&old_at) || masked == mask(&at));
        assert!(
            masked == mask(&old_at) || rt != old_rt,
            "metadata never ahead"
        );

        // Wait until the fake has finished with the killed request, if it got one.
        // A request the killed process had written whole still reaches the fake
        // (the kernel delivers it); give it a moment to arrive, then wait for the
        // fake to handle it (it records a request when read, answers after its
        // delay whether or not the client is still there, and each handled
        // refresh mints an access token).
        std::thread::sleep(Duration::from_millis(100));
        if t.token_requests() > 0 {
            let deadline = Instant::now() + Duration::from_secs(10);
            while t.fake.latest_access_token() == Some(old_at.clone()) {
                assert!(Instant::now() < deadline, "the fake never handled it");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let spent = rt == old_rt && !t.fake.is_active(&old_rt);
        if rt != old_rt {
            // New state stored.
            assert!(t.fake.is_active(&rt));
            if masked == mask(&at) {
                tally.new += 1;
            } else {
                tally.secrets_ahead += 1;
            }
        } else {
            tally.old += 1;
        }
        t.fake.clear_requests();
        let out = t.sfx().args(["refresh", "-q"]).output().unwrap();
        if spent {
            // Killed after Salesforce rotated: spent, and not replayed.
            assert_eq!(
                t.token_requests(),
                0,
                "the spent refresh token was not sent"
            );
            assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
            assert!(
                text(&out.stderr)
                    .contains("was interrupted and its refresh token is no longer active")
            );
            assert_eq!(t.fake.count(INTROSPECT), 1);
            let newest = t.fake.latest_access_token().unwrap();
            assert!(
                t.fake.is_active(&old_at) && t.fake.is_active(&newest),
                "no replay: the login's tokens were not revoked"
            );
            tally.spent_and_stopped += 1;
            t.login("prod");
        } else {
            assert!(out.status.success(), "{}", text(&out.stderr));
            if t.fake.count(INTROSPECT) == 1 {
                tally.unspent_after_journal += 1;
            }
            assert!(t.fake.is_active(&t.refresh_token("prod")));
        }
        assert_eq!(leftovers(&t), 0);
    }
    eprintln!("crash (rotation, life {life:?}): {tally:?}");
    // Issue #11: the test proves something only if kills landed in each phase —
    // before the request (old pair), inside the spent-token window (Salesforce
    // rotated, the new pair never stored: the case the journal exists for), and
    // after the write (new pair). The fake's delay makes that window most of the
    // refresh's life, so 60 evenly spread kills always hit it.
    assert!(
        tally.old > 0,
        "no kill before the refresh took effect: {tally:?}"
    );
    assert!(
        tally.spent_and_stopped > 0,
        "no kill landed inside the spent-token window: {tally:?}"
    );
    assert!(
        tally.new + tally.secrets_ahead > 0,
        "no kill after the new pair was stored: {tally:?}"
    );
}
