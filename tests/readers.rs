//! Readers and refreshers (issue #20) on a real `redis-server`: the key layout
//! (per-org keys with a hash tag, secrets apart), stores written by earlier
//! versions, reader keys, what a reader may not do, and the reader's Redis ACL.

use crate::common::*;
use crate::shared::{Fleet, TOKEN, refresh_tokens_sent};

/// The reader key of a refresher key, as the library derives it.
pub(crate) fn reader_of(key: &str) -> String {
    sfx::store::shared::seal::Keys::from_text(key)
        .unwrap()
        .reader_key
}

/// Rewrite org `alias` as the sfx before #20 stored it: one hash
/// `sfx:org:<alias>` (no hash tag) with every secret sealed with the refresher
/// key itself (the `v2:` form of #19), no reader check. Returns the refresh token.
pub(crate) fn make_legacy(f: &Fleet, alias: &str) -> String {
    use sfx::store::SecretKind;
    use sfx::store::shared::seal::{Binding, StoreKey};
    let s = crate::shared::store(&f.r, "sfx");
    s.set_key(&f.key).unwrap();
    let (rec, v) = s.read_org(alias).unwrap().unwrap();
    let root = StoreKey::from_base64(&f.key).unwrap();
    let b = Binding::of("sfx", &rec);
    let meta = f.r.cli(&["HGET", &format!("sfx:org:{{{alias}}}"), "meta"]);
    let mut args: Vec<String> = vec![
        "HSET".into(),
        format!("sfx:org:{alias}"),
        "v".into(),
        v.to_string(),
        "meta".into(),
        meta.trim().to_string(),
    ];
    for kind in SecretKind::ALL {
        let Some(plain) = s.secret(&rec, kind).unwrap() else {
            continue;
        };
        args.push(kind.as_str().into());
        args.push(
            root.seal_bound(&b, kind.as_str(), plain.expose().as_bytes())
                .unwrap(),
        );
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    f.r.cli(&args);
    let rt = s.secret(&rec, SecretKind::RefreshToken).unwrap().unwrap();
    for k in [
        format!("sfx:org:{{{alias}}}"),
        format!("sfx:secret:{{{alias}}}"),
        "sfx:readercheck".to_string(),
    ] {
        f.r.cli(&["DEL", &k]);
    }
    rt.expose().to_string()
}

fn keys(f: &Fleet) -> Vec<String> {
    let mut k: Vec<String> = f.r.dump().into_iter().map(|(k, _)| k).collect();
    k.sort();
    k
}

#[test]
fn a_store_written_by_the_previous_version_keeps_working_and_the_first_refresher_converts_it() {
    let f = Fleet::new();
    f.login("prod");
    let first_at = f.token(0);
    let rt = make_legacy(&f, "prod");
    assert!(
        keys(&f).contains(&"sfx:org:prod".to_string()),
        "{:?}",
        keys(&f)
    );
    assert!(!keys(&f).iter().any(|k| k.contains('{')), "{:?}", keys(&f));
    // Every machine still reads it, refresher or reader: orgs, offline expiry;
    // the refresher its token.
    f.sfx(1)
        .arg("orgs")
        .assert()
        .success()
        .stdout(predicates::str::contains("prod"));
    f.sfx(1).args(["expires", "--offline"]).assert().success();
    assert_eq!(f.token(1), first_at);
    let reader = reader_of(&f.key);
    let out = f
        .std(2)
        .env("SFX_STORE_KEY", &reader)
        .arg("token")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("stored by an earlier sfx"),
        "{}",
        text(&out.stderr)
    );
    f.std(2)
        .env("SFX_STORE_KEY", &reader)
        .args(["expires", "--offline"])
        .output()
        .unwrap();
    // Reading converted nothing.
    assert!(keys(&f).contains(&"sfx:org:prod".to_string()));
    // The first refresher that writes converts it: one refresh with the stored
    // refresh token, no new login.
    let before = refresh_tokens_sent(&f.t).len();
    f.expire_legacy("prod");
    let second_at = f.token(1);
    assert_ne!(second_at, first_at);
    let sent = refresh_tokens_sent(&f.t);
    assert_eq!(sent.len(), before + 1, "one refresh");
    assert_eq!(sent.last(), Some(&rt), "the stored refresh token was sent");
    let after = keys(&f);
    assert!(!after.contains(&"sfx:org:prod".to_string()), "{after:?}");
    for k in ["sfx:org:{prod}", "sfx:secret:{prod}", "sfx:readercheck"] {
        assert!(after.contains(&k.to_string()), "{k} missing: {after:?}");
    }
    assert!(
        f.r.cli(&["HGET", "sfx:org:{prod}", "access-token"])
            .starts_with("v3:")
    );
    assert!(
        f.r.cli(&["HGET", "sfx:secret:{prod}", "refresh-token"])
            .starts_with("v3:")
    );
    assert!(
        f.r.cli(&["HGET", "sfx:org:{prod}", "refresh-token"])
            .trim()
            .is_empty()
    );
    // Now the reader gets the token, and no machine sent anything more.
    let out = f
        .std(2)
        .env("SFX_STORE_KEY", &reader)
        .arg("token")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), second_at);
    assert_eq!(f.token(0), second_at);
    assert_eq!(refresh_tokens_sent(&f.t).len(), before + 1);
    let _ = TOKEN;
}

/// `sfx store reader-key` with `key` in SFX_STORE_KEY.
fn reader_key_cmd(t: &T, key: Option<&str>) -> std::process::Output {
    let mut c = t.sfx();
    c.args(["store", "reader-key"]);
    if let Some(k) = key {
        c.env("SFX_STORE_KEY", k);
    }
    // A store nobody listens on: the command must not need it.
    c.env("SFX_STORE", "redis://127.0.0.1:1");
    c.output().unwrap()
}

#[test]
fn store_reader_key_prints_the_same_reader_key_every_time_with_no_network_and_refuses_a_reader_key()
{
    let t = T::new();
    t.fake.expect_no_requests();
    let refresher = crate::shared::key_b64(7);
    let a = reader_key_cmd(&t, Some(&refresher));
    assert!(a.status.success(), "{}", text(&a.stderr));
    let key = text(&a.stdout).trim().to_string();
    assert!(key.starts_with("sfxr1:"), "{key}");
    assert_eq!(key, reader_of(&refresher));
    assert!(!key.contains(&refresher));
    let b = reader_key_cmd(&t, Some(&format!("  {refresher}\n")));
    assert_eq!(text(&b.stdout).trim(), key, "the same every time");
    let other = reader_key_cmd(&t, Some(&crate::shared::key_b64(8)));
    assert_ne!(text(&other.stdout).trim(), key);
    // --json
    let j = t
        .sfx()
        .args(["store", "reader-key", "--json"])
        .env("SFX_STORE_KEY", &refresher)
        .output()
        .unwrap();
    assert_eq!(stdout_json(&j), serde_json::json!({ "reader_key": key }));
    // A reader key, none, or a malformed one: exit 2 with a sentence.
    for (given, says) in [
        (Some(key.as_str()), "already holds a reader key"),
        (None, "not set"),
        (Some("abc"), "SFX_STORE_KEY"),
        (Some("sfxr1:abc"), "SFX_STORE_KEY"),
    ] {
        let out = reader_key_cmd(&t, given);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{given:?}: {err}");
        assert!(err.contains(says), "{given:?}: {err}");
        assert!(text(&out.stdout).is_empty());
        if let Some(g) = given {
            assert!(!err.contains(g) || g.len() < 6, "the key is echoed: {err}");
        }
    }
}

/// The Redis state, every key and value (to show a command changed nothing).
fn snapshot(f: &Fleet) -> Vec<(String, String)> {
    let mut d = f.r.dump();
    d.sort();
    d
}

/// Every file under `dir`, as bytes.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p, b));
        }
    }
    out
}

#[test]
fn a_reader_reads_access_tokens_and_what_needs_the_refresh_token_exits_2_sending_and_writing_nothing()
 {
    let f = Fleet::new();
    f.login("prod");
    let refresher_at = f.token(0);
    let rt = {
        let s = crate::shared::store(&f.r, "sfx");
        s.set_key(&f.key).unwrap();
        let (rec, _) = s.read_org("prod").unwrap().unwrap();
        s.secret(&rec, sfx::store::SecretKind::RefreshToken)
            .unwrap()
            .unwrap()
            .expose()
            .to_string()
    };
    let reader_key = {
        let out = f.sfx(0).args(["store", "reader-key"]).output().unwrap();
        text(&out.stdout).trim().to_string()
    };
    let mut seen = String::new();
    let reader = |args: &[&str], stdin: Option<String>| {
        let mut c = f.sfx(1);
        // No refresher runs here: a reader's wait for one is short.
        c.env("SFX_STORE_KEY", &reader_key)
            .env("SFX_WAIT", "1s")
            .args(args);
        if let Some(s) = stdin {
            c.write_stdin(s);
        }
        c.output().unwrap()
    };
    let mut record = |out: &std::process::Output| {
        seen.push_str(&text(&out.stdout));
        seen.push_str(&text(&out.stderr));
    };
    // What a reader may do: the org list, offline expiry, a fresh token.
    let requests = f.t.fake.requests().len();
    let out = reader(&["orgs"], None);
    record(&out);
    assert!(out.status.success() && text(&out.stdout).contains("prod"));
    let out = reader(&["expires", "--offline"], None);
    record(&out);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = reader(&["token"], None);
    record(&out);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), refresher_at);
    let out = reader(&["doctor", "--json"], None);
    record(&out);
    let d = stdout_json(&out);
    assert_eq!(d["shared"]["key_kind"], "reader", "{d}");
    assert_eq!(d["shared"]["key"], "works", "{d}");
    let out = f.sfx(0).args(["doctor", "--json"]).output().unwrap();
    assert_eq!(stdout_json(&out)["shared"]["key_kind"], "refresher");
    assert_eq!(
        f.t.fake.requests().len(),
        requests,
        "a reader sent a request"
    );

    // What needs the refresh token: exit 2, a sentence, nothing sent or written.
    let before = snapshot(&f);
    let requests = f.t.fake.requests().len();
    for (args, stdin) in [
        (
            &["login", "--auth-url", "-", "--alias", "other"][..],
            Some(f.t.auth_url()),
        ),
        (&["logout", "--revoke", "-o", "prod"], None),
        (&["logout", "-o", "prod"], None),
        (&["token", "--auth-url", "-o", "prod"], None),
        (&["login", "--migrate", "--to", "local", "-o", "prod"], None),
        (
            &["login", "--migrate", "--to", "shared", "-o", "prod"],
            None,
        ),
    ] {
        let out = reader(args, stdin);
        record(&out);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("reader key"), "{args:?}: {err}");
        assert!(text(&out.stdout).is_empty(), "{args:?}");
        assert_eq!(snapshot(&f), before, "{args:?} changed the store");
        assert_eq!(
            f.t.fake.requests().len(),
            requests,
            "{args:?} sent a request"
        );
    }

    // Where it would refresh, it asks the refreshers; none runs here: exit 5,
    // saying so — and still no token request from the reader.
    f.expire("prod");
    // A reader's request (`sfx:req:{prod}`, no token in it) is all it writes.
    let unasked = |f: &Fleet| {
        let mut d = snapshot(f);
        d.retain(|(k, _)| !k.starts_with("sfx:req:"));
        d
    };
    let before = unasked(&f);
    for args in [
        &["token"][..],
        &["token", "--min-valid", "3h"],
        &["refresh"],
        &["exec", "--", "true"],
    ] {
        let out = reader(args, None);
        record(&out);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{args:?}: {err}");
        assert!(err.contains("no refresher answered"), "{args:?}: {err}");
        assert!(err.contains("sfx watch"), "{args:?}: {err}");
        assert_eq!(unasked(&f), before, "{args:?} changed the store");
    }
    // A 401 in `api` (the token revoked behind sfx's back): the same.
    f.edit("prod", |m| m["issued_at"] = now().into());
    f.t.fake.revoke_token(&refresher_at);
    let out = reader(&["api", "/services/data/v64.0/limits"], None);
    record(&out);
    assert!(
        f.t.fake
            .requests_to("/services/data/v64.0/limits")
            .iter()
            .any(|r| r.header("authorization") == Some(format!("Bearer {refresher_at}").as_str())),
        "the reader's api call reached the fake"
    );
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no refresher answered"));
    assert!(
        refresh_tokens_sent(&f.t).len() == 1,
        "only the login's verifying refresh: {:?}",
        refresh_tokens_sent(&f.t)
    );
    let _ = TOKEN;

    // Nothing the reader printed or keeps holds the refresh token.
    assert!(!seen.contains(&rt), "a reader printed the refresh token");
    for (p, bytes) in files_under(&f.home(1)) {
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&rt),
            "{} holds the refresh token",
            p.display()
        );
    }
}

/// The `ACL SETUSER <user> …` line of docs/fleets.md, exactly as written, with
/// the password filled in.
pub(crate) fn acl_line(user: &str, password: &str) -> Vec<String> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/fleets.md")).unwrap();
    let prefix = format!("ACL SETUSER {user} ");
    let lines: Vec<&str> = doc.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert_eq!(lines.len(), 1, "one {user} line in docs/fleets.md");
    assert!(lines[0].contains(">PASSWORD"), "{}", lines[0]);
    lines[0]
        .split_whitespace()
        .map(|w| w.replace(">PASSWORD", &format!(">{password}")))
        .collect()
}

fn port_of(f: &Fleet) -> String {
    f.r.url().rsplit(':').next().unwrap().to_string()
}

/// `redis-cli` as `user`: (exit status, stdout + stderr).
fn cli_as(f: &Fleet, user: &str, password: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port_of(f)])
        .args(["--user", user, "--pass", password, "--no-auth-warning"])
        .args(args)
        .output()
        .unwrap();
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

#[test]
fn the_documented_acl_lines_let_a_reader_work_and_keep_it_out_of_every_secret_lease_and_journal() {
    let f = Fleet::new();
    for (user, pw) in [
        ("sfx-reader", "pw-reader"),
        ("sfx-refresher", "pw-refresher"),
    ] {
        let line = acl_line(user, pw);
        let args: Vec<&str> = line.iter().map(String::as_str).collect();
        assert_eq!(f.r.cli(&args).trim(), "OK", "{line:?}");
    }
    let as_user = |user: &str, pw: &str| format!("redis://{user}:{pw}@127.0.0.1:{}", port_of(&f));
    let refresher_url = as_user("sfx-refresher", "pw-refresher");
    let reader_url = as_user("sfx-reader", "pw-reader");
    // The refresher does everything under its user: login, refresh, leases, scripts.
    f.sfx(0)
        .env("SFX_STORE", &refresher_url)
        .args(["login", "--auth-url", "-", "--alias", "prod"])
        .write_stdin(f.t.auth_url())
        .assert()
        .success();
    f.expire("prod");
    let refreshes = refresh_tokens_sent(&f.t).len();
    let out = f
        .std(0)
        .env("SFX_STORE", &refresher_url)
        .arg("token")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let at = text(&out.stdout).trim().to_string();
    assert_eq!(
        refresh_tokens_sent(&f.t).len(),
        refreshes + 1,
        "one refresh"
    );
    // The reader works under its user.
    let reader_key = reader_of(&f.key);
    let reader = |args: &[&str]| {
        f.std(1)
            .env("SFX_STORE", &reader_url)
            .env("SFX_STORE_KEY", &reader_key)
            .args(args)
            .output()
            .unwrap()
    };
    let out = reader(&["orgs"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("prod"));
    let out = reader(&["expires", "--offline"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = reader(&["token"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), at);
    let out = reader(&["doctor", "--json"]);
    let d = stdout_json(&out);
    assert_eq!(d["shared"]["key"], "works", "{d}");
    assert_eq!(d["shared"]["key_kind"], "reader", "{d}");
    // Through the reader's user, no secret, lease, journal or key check can be
    // read, and nothing written.
    assert!(
        cli_as(
            &f,
            "sfx-reader",
            "pw-reader",
            &["HGET", "sfx:org:{prod}", "access-token"]
        )
        .starts_with("v3:")
    );
    f.r.cli(&["SET", "sfx:journal:{prod}", "x"]);
    f.r.cli(&["SET", "sfx:lease:{prod}", "x", "PX", "60000"]);
    for args in [
        &["HGETALL", "sfx:secret:{prod}"][..],
        &["HGET", "sfx:secret:{prod}", "refresh-token"],
        &["DUMP", "sfx:secret:{prod}"],
        &["GET", "sfx:lease:{prod}"],
        &["GET", "sfx:journal:{prod}"],
        &["GET", "sfx:inflight:{prod}"],
        &["GET", "sfx:keycheck"],
        &["HSET", "sfx:org:{prod}", "meta", "{}"],
        &["SET", "sfx:lease:{prod}", "y"],
        &["DEL", "sfx:org:{prod}"],
        &[
            "EVAL",
            "return redis.call('HGETALL', KEYS[1])",
            "1",
            "sfx:secret:{prod}",
        ],
        &["SUBSCRIBE", "sfx:anything"],
    ] {
        let said = cli_as(&f, "sfx-reader", "pw-reader", args);
        assert!(said.contains("NOPERM"), "{args:?}: {said}");
    }
    // The refresher's user cannot leave its namespace.
    f.r.cli(&["SET", "other:thing", "x"]);
    assert!(
        cli_as(&f, "sfx-refresher", "pw-refresher", &["GET", "other:thing"]).contains("NOPERM")
    );
}

#[test]
fn rotating_the_refresher_key_gives_a_new_reader_key_and_the_old_one_opens_nothing_with_no_new_login()
 {
    let f = Fleet::new();
    f.login("prod");
    let old_reader = reader_of(&f.key);
    let new_key = crate::shared::key_b64(43);
    let requests = f.t.fake.requests().len();
    // Out under the old key, back in under the new one (on the refresher host).
    f.sfx(0)
        .args(["login", "--migrate", "--to", "local", "-o", "prod"])
        .assert()
        .success();
    f.sfx(0)
        .env("SFX_STORE_KEY", &new_key)
        .args(["login", "--migrate", "--to", "shared", "-o", "prod"])
        .assert()
        .success();
    assert_eq!(
        f.t.fake.requests().len(),
        requests,
        "no new login, nothing sent"
    );
    let out = f
        .sfx(0)
        .env("SFX_STORE_KEY", &new_key)
        .args(["store", "reader-key"])
        .output()
        .unwrap();
    let new_reader = text(&out.stdout).trim().to_string();
    assert_ne!(new_reader, old_reader);
    let at = {
        let out = f
            .std(0)
            .env("SFX_STORE_KEY", &new_key)
            .arg("token")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    };
    let before = snapshot(&f);
    for old in [&old_reader, &f.key] {
        let out = f
            .std(1)
            .env("SFX_STORE_KEY", old)
            .arg("token")
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(6), "{err}");
        assert!(err.contains("SFX_STORE_KEY cannot open"), "{err}");
        assert!(text(&out.stdout).is_empty());
    }
    assert_eq!(snapshot(&f), before, "an old key changed the store");
    let out = f
        .std(1)
        .env("SFX_STORE_KEY", &new_reader)
        .arg("token")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), at);
    let out = f
        .std(1)
        .env("SFX_STORE_KEY", &new_reader)
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    assert_eq!(stdout_json(&out)["shared"]["key"], "works");
    assert_eq!(f.t.fake.requests().len(), requests);
}

/// The documented ACL lines hold to sfx's namespace: a leaked reader (or
/// refresher) Redis password must not pause the whole server, kill other
/// clients' connections (the refresher's, mid-refresh) or list who is
/// connected from where — `+@connection` granted all of that (CLIENT
/// PAUSE/KILL/LIST are in the category) — nor flush the server (FLUSHALL has
/// no key, so `~sfx:*` does not hold it) or its scripts and functions.
/// Every command still works under them.
#[test]
fn the_documented_acl_lines_give_no_power_over_the_server_or_other_clients() {
    let f = Fleet::new();
    for (user, pw) in [
        ("sfx-reader", "pw-reader"),
        ("sfx-refresher", "pw-refresher"),
    ] {
        let line = acl_line(user, pw);
        let args: Vec<&str> = line.iter().map(String::as_str).collect();
        assert_eq!(f.r.cli(&args).trim(), "OK", "{line:?}");
        for args in [
            &["CLIENT", "PAUSE", "5000", "ALL"][..],
            &["CLIENT", "KILL", "USER", "default"],
            &["CLIENT", "LIST"],
            &["CLIENT", "NO-EVICT", "on"],
            &["CLIENT", "UNPAUSE"],
            &["KEYS", "*"],
            &["SCRIPT", "KILL"],
            &["SCRIPT", "FLUSH"],
            &["FUNCTION", "FLUSH"],
            &["FLUSHDB"],
            &["FLUSHALL"],
            &["SWAPDB", "0", "1"],
        ] {
            let said = cli_as(&f, user, pw, args);
            assert!(said.contains("NOPERM"), "{user} {args:?}: {said}");
        }
    }
    assert_eq!(f.r.cli(&["PING"]).trim(), "PONG", "the server was paused");
    let url = |user: &str, pw: &str| format!("redis://{user}:{pw}@127.0.0.1:{}/0", port_of(&f));
    let refresher = |args: &[&str], stdin: Option<String>| {
        let mut c = f.sfx(0);
        c.env("SFX_STORE", url("sfx-refresher", "pw-refresher"))
            .args(args);
        if let Some(s) = stdin {
            c.write_stdin(s);
        }
        c.assert().success();
    };
    for alias in ["prod", "two"] {
        refresher(
            &["login", "--auth-url", "-", "--alias", alias],
            Some(f.t.auth_url()),
        );
    }
    f.expire("prod");
    refresher(&["refresh", "-o", "prod"], None);
    refresher(&["doctor"], None);
    refresher(&["login", "--migrate", "--to", "local", "-o", "two"], None);
    refresher(&["login", "--migrate", "--to", "shared", "-o", "two"], None);
    refresher(&["logout", "--revoke", "-o", "two"], None);
    for args in [&["orgs"][..], &["token", "-o", "prod"], &["doctor"]] {
        f.sfx(1)
            .env("SFX_STORE", url("sfx-reader", "pw-reader"))
            .env("SFX_STORE_KEY", reader_of(&f.key))
            .args(args)
            .assert()
            .success();
    }
}

/// docs/fleets.md: a reader works under its ACL line with `expires` too. Online
/// expiry asks introspection, which takes the client secret: a reader cannot
/// open it, and must tell the expiry from what it holds instead of failing.
#[test]
fn a_reader_tells_the_expiry_online_without_the_client_secret() {
    let f = Fleet::new();
    let line = acl_line("sfx-reader", "pw-reader");
    let args: Vec<&str> = line.iter().map(String::as_str).collect();
    assert_eq!(f.r.cli(&args).trim(), "OK");
    f.login("prod");
    assert_eq!(f.meta("prod")["has_client_secret"], true);
    let requests = f.t.fake.requests().len();
    let reader_url = format!("redis://sfx-reader:pw-reader@127.0.0.1:{}", port_of(&f));
    for args in [
        &["expires", "-o", "prod"][..],
        &["expires", "--json", "-o", "prod"],
    ] {
        let out = f
            .std(1)
            .env("SFX_STORE", &reader_url)
            .env("SFX_STORE_KEY", reader_of(&f.key))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let said = text(&out.stdout);
        if args.contains(&"--json") {
            let v: serde_json::Value = serde_json::from_str(said.trim()).expect("JSON");
            assert!(v.to_string().contains("\"active\":true"), "{v}");
        } else {
            assert!(said.contains("expires in"), "{said}");
        }
    }
    let sent: Vec<String> = f.t.fake.requests()[requests..]
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert!(
        sent.iter()
            .all(|p| p != TOKEN && !p.contains("introspect") && !p.contains("revoke")),
        "a reader sent {sent:?}"
    );
}
