//! A refresh's write cost (issue #23): in a large store, a refresh appends its
//! record to `orgs.journal` (and, with the file credential store, its tokens to
//! `secrets.journal`) instead of rewriting `orgs.json` (and `secrets.json`);
//! readers apply the journal; it is folded back into the file when it outgrows
//! a quarter of it. The real `sfx` against the fake, sizes measured in bytes on disk.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::*;

/// A home with `logins` logged in for real, their sessions 3 hours old (so
/// `sfx token` would refresh them), and `n` more orgs written directly as
/// `sfx login` stores them, with tokens of Salesforce's lengths (never used).
fn big_home(t: &T, logins: &[&str], n: usize) {
    for alias in logins {
        t.login(alias);
        t.edit_org(alias, |o| o["issued_at"] = json!(now() - 3 * 3600));
    }
    let path = t.home().join("orgs.json");
    let mut v = read_json(&path);
    let template = v["orgs"][logins[0]].clone();
    for i in 0..n {
        let alias = format!("org{i:05}");
        let mut r = template.clone();
        r["alias"] = json!(alias);
        r["username"] = json!(format!("user{i}@example.com"));
        v["orgs"][alias] = r;
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    let path = t.home().join("secrets.json");
    let mut s = read_json(&path);
    for i in 0..n {
        s[format!("org{i:05}")] = json!({
            "access-token": format!("00D5g000004FAKE!{i:0>96}"),
            "refresh-token": format!("5Aep861{i:0>80}"),
        });
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&s).unwrap()).unwrap();
}

fn journal(t: &T) -> std::path::PathBuf {
    t.home().join("orgs.journal")
}

fn secrets_journal(t: &T) -> std::path::PathBuf {
    t.home().join("secrets.journal")
}

fn len(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn refresh(t: &T, alias: &str) {
    let before = t.token_requests();
    t.sfx().args(["refresh", "--org", alias]).assert().success();
    assert_eq!(
        t.token_requests(),
        before + 1,
        "the refresh reached the fake"
    );
}

/// The records as sfx reads them, computed apart from sfx: `orgs.json`, with
/// the journal's whole lines applied when its header names these exact bytes.
fn merged(t: &T) -> Value {
    merged_file(t, "orgs.json", &journal(t), "orgs")
}

/// The stored access token of `alias`, as sfx reads the secrets file.
fn stored_token(t: &T, alias: &str) -> String {
    let v = merged_file(t, "secrets.json", &secrets_journal(t), "");
    v["records"][alias]["access-token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `{file's top level…, "records": the records}` with the journal applied;
/// `records_at`: where the file keeps its records ("" for the top level).
fn merged_file(t: &T, file: &str, log: &std::path::Path, records_at: &str) -> Value {
    let base = std::fs::read(t.home().join(file)).unwrap();
    let top: Value = serde_json::from_slice(&base).unwrap();
    let mut v = if records_at.is_empty() {
        json!({ "records": top })
    } else {
        let mut v = top.clone();
        v["records"] = top[records_at].clone();
        v
    };
    let Ok(log) = std::fs::read(log) else {
        return fold(v, records_at);
    };
    let id: String = Sha256::digest(&base)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut lines = log.split(|&b| b == b'\n');
    let header: Value = serde_json::from_slice(lines.next().unwrap()).unwrap();
    if header["base"] != json!(id) {
        return fold(v, records_at);
    }
    for line in lines.filter(|l| !l.is_empty()) {
        let Ok(l) = serde_json::from_slice::<Value>(line) else {
            break; // a torn last line
        };
        v["records"][l["key"].as_str().unwrap()] = l["value"].clone();
    }
    fold(v, records_at)
}

fn fold(mut v: Value, records_at: &str) -> Value {
    if !records_at.is_empty() {
        v[records_at] = v["records"].take();
    }
    v
}

/// The stored token of `alias` is fresh as sfx reads the records: `sfx token`
/// prints it without asking the fake for a new one.
fn token_is_fresh(t: &T, alias: &str) {
    let before = t.token_requests();
    let out = t.sfx().args(["token", "--org", alias]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), stored_token(t, alias));
    assert_eq!(
        t.token_requests(),
        before,
        "no refresh: the record is fresh"
    );
}

#[test]
fn a_refresh_writes_the_same_bytes_whatever_the_number_of_orgs() {
    let mut per_refresh = Vec::new();
    for n in [300, 3_000] {
        let t = T::new();
        big_home(&t, &["a"], n);
        let files = ["orgs.json", "secrets.json"].map(|f| t.home().join(f));
        let bases = files.clone().map(|f| std::fs::read(f).unwrap());
        let mut sizes = Vec::new();
        for _ in 0..3 {
            refresh(&t, "a");
            sizes.push([len(&journal(&t)), len(&secrets_journal(&t))]);
        }
        for (f, base) in files.iter().zip(&bases) {
            assert!(
                std::fs::read(f).unwrap() == *base,
                "{} ({n} orgs, {} bytes) is not written by a refresh",
                f.display(),
                base.len()
            );
        }
        let a = &merged(&t)["orgs"]["a"];
        assert!(a["issued_at"].as_i64().unwrap() >= now() - 60, "{a}");
        token_is_fresh(&t, "a");
        #[cfg(unix)]
        {
            assert_eq!(mode(&journal(&t)), 0o600);
            assert_eq!(mode(&secrets_journal(&t)), 0o600);
        }
        let ([o0, s0], [o1, s1], [o2, s2]) = (sizes[0], sizes[1], sizes[2]);
        per_refresh.push((n, 0, o1 - o0, o2 - o1));
        per_refresh.push((n, 1, s1 - s0, s2 - s1));
    }
    // Per journal: the bytes of the 2nd and 3rd refresh, small store vs large.
    for k in 0..2 {
        let small = per_refresh.iter().find(|p| p.1 == k && p.0 == 300).unwrap();
        let large = per_refresh
            .iter()
            .find(|p| p.1 == k && p.0 == 3_000)
            .unwrap();
        for (s, l) in [(small.2, large.2), (small.3, large.3)] {
            assert!(s > 0 && s < 2048, "one record's line: {s} bytes ({k})");
            assert!(
                s.abs_diff(l) <= 16,
                "300 orgs: {s} bytes, 3,000 orgs: {l} bytes ({k})"
            );
        }
    }
}

#[test]
fn an_append_cut_short_by_a_crash_is_ignored_then_cut_off() {
    let t = T::new();
    big_home(&t, &["a"], 150);
    refresh(&t, "a");
    let whole = std::fs::read(journal(&t)).unwrap();
    let token = stored_token(&t, "a");
    // A crash in the middle of the next append: a line without its end, whose
    // record would send the tokens elsewhere were it ever applied.
    let torn = br#"{"key":"a","value":{"alias":"a","instance_url":"https://evil.example.com","flow":"auth_url","sto"#;
    std::fs::write(journal(&t), [&whole[..], &torn[..]].concat()).unwrap();
    let out = t.sfx().args(["orgs", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let orgs = stdout_json(&out);
    assert_eq!(orgs.as_array().unwrap().len(), 151);
    let a = orgs
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["org"] == "a")
        .unwrap();
    assert_eq!(a["instance_url"], json!(t.fake.url()));
    assert_eq!(stored_token(&t, "a"), token);
    token_is_fresh(&t, "a");
    // The next append starts where the whole lines end.
    refresh(&t, "a");
    let after = std::fs::read(journal(&t)).unwrap();
    assert!(after.starts_with(&whole));
    assert!(after.ends_with(b"\n"));
    assert!(!text(&after).contains("evil"));
    for line in after.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        serde_json::from_slice::<Value>(line).expect("every line whole");
    }
    token_is_fresh(&t, "a");
}

#[test]
fn the_journal_is_folded_into_orgs_json_once_it_outgrows_a_quarter_of_it() {
    let t = T::new();
    big_home(&t, &["a"], 150);
    let orgs = t.home().join("orgs.json");
    let base = std::fs::read(&orgs).unwrap();
    let mut refreshes = 0;
    while std::fs::read(&orgs).unwrap() == base {
        assert!(refreshes < 200, "no compaction after {refreshes} refreshes");
        refresh(&t, "a");
        refreshes += 1;
        let j = len(&journal(&t));
        assert!(
            j <= base.len() as u64 / 4,
            "journal {j} bytes, base {}",
            base.len()
        );
    }
    assert!(refreshes > 10, "compacted after {refreshes} refreshes");
    assert!(
        !journal(&t).exists(),
        "the journal is folded in and removed"
    );
    // orgs.json alone holds the newest state, and every other org as it was.
    let v = read_json(&orgs);
    assert_eq!(v["orgs"].as_object().unwrap().len(), 151);
    assert!(v["orgs"]["a"]["issued_at"].as_i64().unwrap() >= now() - 60);
    assert_eq!(v["orgs"]["org00149"]["username"], "user149@example.com");
    #[cfg(unix)]
    assert_eq!(mode(&orgs), 0o600);
    token_is_fresh(&t, "a");
    refresh(&t, "a");
    assert!(
        len(&journal(&t)) > 0,
        "the next refresh starts a journal again"
    );
    token_is_fresh(&t, "a");
}

#[test]
fn two_processes_refreshing_at_once_lose_no_update() {
    let t = T::new();
    big_home(&t, &["a", "b"], 150);
    let orgs = t.home().join("orgs.json");
    let base = std::fs::read(&orgs).unwrap();
    let before = t.token_requests();
    for _ in 0..8 {
        let kids: Vec<_> = ["a", "b"]
            .iter()
            .map(|alias| {
                t.std_sfx()
                    .args(["refresh", "--org", alias])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for k in kids {
            let out = k.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", text(&out.stderr));
        }
    }
    assert_eq!(t.token_requests(), before + 16);
    assert!(
        std::fs::read(&orgs).unwrap() == base,
        "orgs.json not rewritten"
    );
    let v = merged(&t);
    for alias in ["a", "b"] {
        let masked = v["orgs"][alias]["access_token_masked"].as_str().unwrap();
        let token = stored_token(&t, alias);
        assert!(
            masked.starts_with(&token[..5]) && masked.ends_with(&token[token.len() - 4..]),
            "{alias}: the record names the stored token"
        );
        token_is_fresh(&t, alias);
    }
}

#[test]
fn a_journal_over_orgs_json_rewritten_by_an_older_sfx_is_ignored() {
    let t = T::new();
    big_home(&t, &["a"], 150);
    refresh(&t, "a");
    // An older sfx (or a hand edit) writes orgs.json anew, knowing nothing of
    // the journal: its records win, the journal no longer extends them.
    t.edit_org("org00007", |o| o["username"] = json!("renamed@example.com"));
    let out = t.sfx().args(["orgs", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows = stdout_json(&out);
    let row = |org: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|o| o["org"] == org)
            .unwrap()
            .clone()
    };
    assert_eq!(row("org00007")["username"], "renamed@example.com");
    // The journal's newer state of `a` is not applied over those records: the
    // 3-hour-old session there is refreshed again, and a new journal started.
    token_is_stale_then_refreshed(&t, "a");
    let v = merged(&t);
    assert_eq!(v["orgs"]["org00007"]["username"], "renamed@example.com");
    token_is_fresh(&t, "a");
}

fn token_is_stale_then_refreshed(t: &T, alias: &str) {
    let before = t.token_requests();
    t.sfx().args(["token", "--org", alias]).assert().success();
    assert_eq!(t.token_requests(), before + 1);
}

#[test]
fn a_damaged_or_hostile_journal_is_a_sentence_and_nothing_is_sent() {
    let t = T::new();
    big_home(&t, &["a"], 150);
    refresh(&t, "a");
    let good = std::fs::read(journal(&t)).unwrap();
    let header_end = good.iter().position(|&b| b == b'\n').unwrap() + 1;
    let with_line = |line: &[u8]| [&good[..header_end], line, &good[header_end..]].concat();
    // What, how it is made, the sentence, the exit code (6: the store cannot
    // be used, as for an odd lock file; 1: damage, as for orgs.json).
    type Case<'a> = (&'a str, Box<dyn Fn() + 'a>, &'a str, i32);
    let mut cases: Vec<Case> = vec![
        (
            "garbage in the middle",
            Box::new(|| std::fs::write(journal(&t), with_line(b"not json\n")).unwrap()),
            "orgs.journal is damaged (line 2 does not parse",
            1,
        ),
        (
            "a record sending the tokens elsewhere",
            Box::new(|| {
                let line = format!(
                    "{}\n",
                    json!({"key": "a", "value": {"alias": "a", "instance_url": "http://evil.example.com", "flow": "auth_url", "store": "file"}})
                );
                std::fs::write(journal(&t), with_line(line.as_bytes())).unwrap()
            }),
            "orgs.journal is damaged (update 1 is refused: entry `a` has an unusable instance_url",
            1,
        ),
        (
            "a format from the future",
            Box::new(|| {
                std::fs::write(journal(&t), b"{\"sfx_journal\":9,\"base\":\"x\"}\n").unwrap()
            }),
            "format 9, which this sfx does not read",
            1,
        ),
    ];
    #[cfg(unix)]
    {
        cases.push((
            "a symbolic link",
            Box::new(|| {
                let target = t.dir.path().join("elsewhere");
                std::fs::write(&target, &good).unwrap();
                std::os::unix::fs::symlink(&target, journal(&t)).unwrap();
            }),
            "symbolic link",
            6,
        ));
        cases.push((
            "a FIFO",
            Box::new(|| {
                let p = std::ffi::CString::new(journal(&t).to_str().unwrap()).unwrap();
                // SAFETY: a valid C string for the duration of the call.
                assert_eq!(unsafe { libc::mkfifo(p.as_ptr(), 0o600) }, 0);
            }),
            "not a regular file",
            6,
        ));
    }
    for (what, make, want, code) in cases {
        let _ = std::fs::remove_file(journal(&t));
        make();
        let requests = t.token_requests();
        for args in [
            &["orgs", "--json"][..],
            &["refresh", "--org", "a"],
            &["token", "--org", "a"],
        ] {
            let out = t.sfx().args(args).output().unwrap();
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(code), "{what}: {args:?}: {err}");
            assert!(err.contains(want), "{what}: {args:?}: {err}");
            assert!(!err.contains("panicked"), "{what}: {err}");
        }
        assert_eq!(t.token_requests(), requests, "{what}: nothing sent");
    }
    // Moved away, as the sentence says: orgs.json as last written whole.
    std::fs::remove_file(journal(&t)).unwrap();
    t.sfx().args(["orgs", "--json"]).assert().success();
}

/// The secrets journal (file credential store) is read as carefully: damage is
/// a sentence that quotes no secret, and nothing is sent.
#[test]
fn a_damaged_secrets_journal_names_no_secret() {
    let t = T::new();
    big_home(&t, &["a"], 300);
    refresh(&t, "a");
    let good = std::fs::read(secrets_journal(&t)).unwrap();
    let token = stored_token(&t, "a");
    let bad = format!("{{\"key\":\"a\",\"value\":{{\"access-token\":[\"{token}\"]}}}}\n");
    std::fs::write(secrets_journal(&t), [&good[..], bad.as_bytes()].concat()).unwrap();
    let requests = t.token_requests();
    for args in [&["token", "--org", "a"][..], &["refresh", "--org", "a"]] {
        let out = t.sfx().args(args).output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("secrets.journal is damaged (line 3 does not parse"),
            "{err}"
        );
        assert!(!err.contains(&token[..20]), "{err}");
    }
    assert_eq!(t.token_requests(), requests, "nothing sent");
}
