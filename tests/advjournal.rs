//! Adversarial checks of the store's journals (issue #23): `orgs.journal` and
//! `secrets.journal` damaged, killed mid-write, raced — through the real `sfx`
//! against the fake over HTTP, each home its own SFX_HOME.

use serde_json::json;

use crate::common::*;

/// A home over the journal threshold: `logins` logged in for real (sessions
/// 3 hours old, so the next `sfx token` refreshes), and `n` more orgs.
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

/// A journal whose first line is not the header: the sentence quotes nothing
/// of it (the secrets journal's lines hold tokens).
#[test]
fn a_secrets_journal_header_that_does_not_parse_names_no_secret() {
    let t = T::new();
    big_home(&t, &["a"], 300);
    t.sfx().args(["refresh", "--org", "a"]).assert().success();
    let token = t.access_token("a");
    let journal = t.home().join("secrets.journal");
    assert!(journal.exists(), "a refresh in a large store journals");
    for first in [
        format!("{{\"sfx_journal\":\"{token}\",\"base\":\"x\"}}\n"),
        format!("{{\"sfx_journal\":1,\"base\":[\"{token}\"]}}\n"),
        format!("{{\"{token}\":1}}\n"),
    ] {
        std::fs::write(&journal, &first).unwrap();
        let requests = t.token_requests();
        let out = t.sfx().args(["token", "--org", "a"]).output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("secrets.journal is damaged (line 1"), "{err}");
        assert!(
            !err.contains(&token[..20]),
            "the sentence quotes the token: {err}"
        );
        assert_eq!(t.token_requests(), requests, "nothing sent");
    }
}

/// A journal that is a link, a directory or a FIFO stops every command that
/// reads it (exit 6): `sfx doctor` names it too, with the fix, rather than
/// reporting a usable store. The secrets journal is the one doctor never reads.
#[cfg(unix)]
#[test]
fn doctor_names_a_journal_that_is_not_a_regular_file() {
    let t = T::new();
    big_home(&t, &["a"], 300);
    t.sfx().args(["refresh", "--org", "a"]).assert().success();
    let journal = t.home().join("secrets.journal");
    let good = std::fs::read(&journal).unwrap();
    let elsewhere = t.dir.path().join("elsewhere");
    type Make<'a> = (&'a str, Box<dyn Fn() + 'a>);
    let make: [Make; 3] = [
        (
            "a link to a private copy",
            Box::new(|| {
                std::fs::write(&elsewhere, &good).unwrap();
                std::fs::set_permissions(
                    &elsewhere,
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )
                .unwrap();
                std::os::unix::fs::symlink(&elsewhere, &journal).unwrap();
            }),
        ),
        (
            "a dangling link",
            Box::new(|| std::os::unix::fs::symlink("/nonexistent/sfx", &journal).unwrap()),
        ),
        (
            "a private directory",
            Box::new(|| {
                std::fs::create_dir(&journal).unwrap();
                std::fs::set_permissions(
                    &journal,
                    std::os::unix::fs::PermissionsExt::from_mode(0o700),
                )
                .unwrap();
            }),
        ),
    ];
    for (what, make) in make {
        let _ = std::fs::remove_file(&journal);
        let _ = std::fs::remove_dir(&journal);
        make();
        let requests = t.token_requests();
        let out = t.sfx().args(["token", "--org", "a"]).output().unwrap();
        assert_eq!(out.status.code(), Some(6), "{what}: {}", text(&out.stderr));
        assert_eq!(t.token_requests(), requests, "{what}: nothing sent");
        let out = t.sfx().arg("doctor").output().unwrap();
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(6), "{what}: doctor: {all}");
        assert!(
            all.contains("secrets.journal is not a regular file"),
            "{what}: {all}"
        );
        assert!(all.contains("secrets.journal.odd"), "{what}: {all}");
    }
}

/// A login again under an alias already stored is a login: `orgs.json` itself
/// is written anew (as the module and docs/how-it-works.md say), never only the
/// journal — an older sfx, which reads `orgs.json` alone, would otherwise pair
/// the old record (here: a refresh token, a client) with the new secrets.
#[test]
fn a_login_again_under_a_stored_alias_writes_orgs_json_itself() {
    let t = T::new();
    big_home(&t, &["a"], 300);
    t.sfx().args(["refresh", "--org", "a"]).assert().success();
    assert!(t.home().join("orgs.journal").exists(), "a refresh journals");
    // The same alias, now an access token alone (no refresh token, no client).
    let token = t.login_access_token("a");
    let file = read_json(&t.home().join("orgs.json"));
    let a = &file["orgs"]["a"];
    assert_eq!(a["flow"], "access_token", "orgs.json itself: {a}");
    assert_eq!(a["has_refresh_token"], false, "{a}");
    assert_eq!(a["client_id"], serde_json::Value::Null, "{a}");
    assert!(!t.home().join("orgs.journal").exists(), "folded in");
    // And sfx reads what it wrote: the new token, no refresh attempted.
    let requests = t.token_requests();
    let out = t.sfx().args(["token", "--org", "a"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), token);
    assert_eq!(t.token_requests(), requests);
}

/// The same for a login again that changes only the session timeout: an older
/// sfx reading `orgs.json` alone would otherwise keep the longer one, and hand
/// out a token past its end.
#[test]
fn a_login_again_with_a_shorter_session_timeout_writes_orgs_json_itself() {
    let t = T::new();
    big_home(&t, &["a"], 300);
    t.sfx().args(["refresh", "--org", "a"]).assert().success();
    t.sfx()
        .args([
            "login",
            "--auth-url",
            "-",
            "--alias",
            "a",
            "--session-timeout",
            "15m",
        ])
        .write_stdin(t.auth_url())
        .assert()
        .success();
    let file = read_json(&t.home().join("orgs.json"));
    assert_eq!(
        file["orgs"]["a"]["session_timeout_secs"], 900,
        "{}",
        file["orgs"]["a"]
    );
    assert!(!t.home().join("orgs.journal").exists(), "folded in");
}
