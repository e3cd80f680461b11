//! Readers and refreshers on a real three-node Redis Cluster (#20): a
//! `sfx watch --all` with the refresher key serves readers of several orgs whose
//! keys live in different slots (its one read of every org's request stream is
//! split per slot by sfx's cluster router), reached through nodes that do not
//! own those slots — as on a single server: an answer within two seconds, one
//! refresh for racing readers, a refresh for a token Salesforce refused, and
//! never a token request from a reader.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::{Fleet, org_key, other_node};
use crate::common::*;
use crate::shared::{TOKEN, no_replays};

/// Three orgs, each in a slot of its own, not all on one node.
const ORGS: [&str; 3] = ["prod", "dev", "qa"];

/// A reader machine (`host`, with the reader key) whose store URL names `node`.
fn reader(f: &Fleet, reader_key: &str, host: usize, node: usize) -> Command {
    let mut c = f.std(host);
    c.env("SFX_STORE", f.c.url(node))
        .env("SFX_STORE_KEY", reader_key);
    c
}

/// The node a reader of `alias` names: one that does not own the org's slot.
fn elsewhere(f: &Fleet, alias: &str) -> usize {
    other_node(&f.c, f.c.slot(&org_key(alias)))
}

/// Leave a request as a reader does (raw XADD on the org's node) for a token
/// valid `until`, having seen `seen`; then block (XREAD BLOCK, no polling) for
/// the refresher's notice after `after`, and return its `result`.
fn ask_and_wait(f: &Fleet, alias: &str, until: i64, seen: &str, within: Duration) -> String {
    let tok = format!("sfx:tok:{{{alias}}}");
    let last = f.c.cli(&["XREVRANGE", &tok, "+", "-", "COUNT", "1"]);
    let after = last
        .lines()
        .next()
        .filter(|l| !l.is_empty())
        .unwrap_or("0-0")
        .to_string();
    let req = format!("sfx:req:{{{alias}}}");
    let until = until.to_string();
    f.c.cli(&["XADD", &req, "*", "until", &until, "seen", seen, "dead", ""]);
    let ms = within.as_millis().to_string();
    let out = f.c.cli(&["XREAD", "BLOCK", &ms, "STREAMS", &tok, &after]);
    let lines: Vec<&str> = out.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == "result")
        .unwrap_or_else(|| panic!("no notice for {alias} within {within:?}: {out:?}"));
    lines[at + 1].to_string()
}

/// Every token request the fake received was one of the refresher's refreshes:
/// no reader sent one.
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
fn a_watching_refresher_serves_readers_of_orgs_in_several_slots_through_any_node() {
    let f = Fleet::new();
    f.t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    let slots: HashSet<u16> = ORGS.iter().map(|a| f.c.slot(&org_key(a))).collect();
    assert_eq!(slots.len(), ORGS.len(), "the test wants one slot per org");
    let owners: HashSet<usize> = slots.iter().map(|s| f.c.owner(*s)).collect();
    assert!(owners.len() >= 2, "the test wants orgs on several nodes");
    for (i, alias) in ORGS.iter().enumerate() {
        f.login(i, alias);
    }
    let out = f.sfx(0).args(["store", "reader-key"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reader_key = text(&out.stdout).trim().to_string();
    assert_ne!(reader_key, f.key);
    f.t.fake.clear_requests();

    // The refresher names node 1, which cannot own every org's slot.
    let mut w = crate::watch::spawn_cmd(f.std(1), &["--all"], &[]);
    let mut checked = HashSet::new();
    while checked.len() < ORGS.len() {
        let e = w.event("checked", Duration::from_secs(60));
        checked.insert(e["org"].as_str().unwrap_or_default().to_string());
    }

    // A request the stored token satisfies is a store read and a notice: the
    // refresher answers it at once, whichever org's slot it is in — not after
    // its blocking read of the other orgs' slots runs out (one second). Each
    // request follows the previous answer, so lands early in the next read.
    for round in 0..2 {
        for alias in ORGS {
            let seen = crate::serve::fp(&f.token(0, alias));
            let t0 = Instant::now();
            let result = ask_and_wait(&f, alias, now() + 60, &seen, Duration::from_secs(10));
            let took = t0.elapsed();
            assert_eq!(result, "fresh", "{alias}");
            assert!(
                took < Duration::from_millis(500),
                "round {round}, {alias}: answered after {took:?}"
            );
        }
    }
    assert_eq!(
        f.t.fake.count(TOKEN),
        0,
        "no refresh for satisfied requests"
    );

    // An expired token of each org: a reader naming a node that does not own
    // the org's slot gets a fresh token within two seconds.
    for (i, alias) in ORGS.iter().enumerate() {
        let old = f.token(0, alias);
        f.expire(alias);
        let grants = f.t.fake.count_grant("refresh_token");
        let t0 = Instant::now();
        let out = reader(&f, &reader_key, 2 + i, elsewhere(&f, alias))
            .args(["token", "-o", alias])
            .output()
            .unwrap();
        let took = t0.elapsed();
        assert!(out.status.success(), "{alias}: {}", text(&out.stderr));
        assert!(took < Duration::from_secs(2), "{alias}: {took:?}");
        let new = text(&out.stdout).trim().to_string();
        assert_ne!(new, old, "{alias}");
        assert!(f.t.fake.is_active(&new), "{alias}");
        assert_eq!(f.t.fake.count_grant("refresh_token"), grants + 1, "{alias}");
    }
    only_the_refresher_asked_salesforce(&f, &mut w);

    // Ten readers on five hosts, naming every node, racing on an expired token:
    // one token request.
    let alias = "dev";
    f.expire(alias);
    let before = f.t.fake.count(TOKEN);
    let racers: Vec<_> = (0..10)
        .map(|i| {
            reader(&f, &reader_key, 2 + i % 5, i % 3)
                .args(["token", "-o", alias])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<_> = racers
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let tokens: HashSet<String> = outs
        .iter()
        .map(|o| {
            assert!(o.status.success(), "{}", text(&o.stderr));
            text(&o.stdout).trim().to_string()
        })
        .collect();
    assert_eq!(tokens.len(), 1, "every reader got the one new token");
    assert!(f.t.fake.is_active(tokens.iter().next().unwrap()));
    assert_eq!(
        f.t.fake.count(TOKEN),
        before + 1,
        "one token request for 10 readers"
    );
    only_the_refresher_asked_salesforce(&f, &mut w);

    // Revoked behind sfx's back: the expiry looks fine, the API says 401, the
    // reader asks naming the dead token, and the call goes through on a new one.
    let alias = "qa";
    let dead = f.token(0, alias);
    f.t.fake.revoke_token(&dead);
    let grants = f.t.fake.count_grant("refresh_token");
    let out = reader(&f, &reader_key, 3, elsewhere(&f, alias))
        .args(["api", "-o", alias, "/services/data/v64.0/limits"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(f.t.fake.count_grant("refresh_token"), grants + 1);
    let live = f.token(0, alias);
    assert!(live != dead && f.t.fake.is_active(&live));
    only_the_refresher_asked_salesforce(&f, &mut w);
    no_replays(&f.t);

    w.signal("TERM");
    assert!(w.exit(Duration::from_secs(30)).success(), "{}", w.stderr());
    assert!(
        !w.stderr().contains("cannot read readers"),
        "{}",
        w.stderr()
    );
}
