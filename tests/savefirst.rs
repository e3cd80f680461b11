//! Never lose a login (issue #19, items 5 and 7): a login checks that it can save
//! before it sends anything, and `login --from-sf` with a shared store lands in
//! the shared store or is refused, never writing or deleting a local secret.

use crate::common::redis_server::RedisServer;
use crate::common::*;

/// "A machine with no keychain": sfx with a D-Bus address where nothing listens.
fn nowhere(t: &T) -> assert_cmd::Command {
    let mut c = t.bare();
    c.env(
        "DBUS_SESSION_BUS_ADDRESS",
        format!("unix:path={}", t.dir.path().join("no-bus").display()),
    );
    c
}

fn rotating(t: &T) {
    t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
}

/// A login that cannot save fails with exit 6 naming --insecure-storage, and
/// sends nothing to the fake.
fn refused_before_sending(t: &T, out: std::process::Output) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("--insecure-storage"), "{err}");
    assert!(
        t.fake.requests().is_empty(),
        "a login that cannot save sent {:?}",
        t.fake.requests()
    );
    assert!(!t.home().join("orgs.json").exists(), "nothing is stored");
}

#[test]
fn without_a_keychain_a_pasted_auth_url_is_not_spent_and_works_with_insecure_storage() {
    let t = T::new();
    rotating(&t);
    let auth = t.auth_url();
    t.fake.clear_requests();
    let out = nowhere(&t)
        .args(["login", "--auth-url", "-", "--alias", "rot"])
        .write_stdin(auth.clone())
        .output()
        .unwrap();
    refused_before_sending(&t, out);
    // The same auth URL still works.
    nowhere(&t)
        .args([
            "login",
            "--auth-url",
            "-",
            "--alias",
            "rot",
            "--insecure-storage",
        ])
        .write_stdin(auth)
        .assert()
        .success();
    assert_eq!(t.token_requests(), 1);
    assert_eq!(t.fake.replays(), 0);
    assert_eq!(t.metadata()["orgs"]["rot"]["store"], "file");
    nowhere(&t).args(["token", "-o", "rot"]).assert().success();
}

#[test]
fn without_a_keychain_a_pasted_refresh_token_is_not_spent_and_works_with_insecure_storage() {
    let t = T::new();
    rotating(&t);
    let rt = t
        .fake
        .grant_refresh_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    t.fake.clear_requests();
    let login = |extra: &[&str]| {
        let mut c = nowhere(&t);
        c.args(["login", "--refresh-token", "-", "--alias", "rot"])
            .args(["--client-id", DEFAULT_CLIENT_ID, "--instance-url"])
            .arg(t.fake.url())
            .args(extra)
            .env("SFX_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
            .write_stdin(rt.clone());
        c
    };
    refused_before_sending(&t, login(&[]).output().unwrap());
    login(&["--insecure-storage"]).assert().success();
    assert_eq!(t.token_requests(), 1);
    assert_eq!(t.fake.replays(), 0);
    // An access token is not sent (to userinfo) either when it cannot be saved.
    let at = t
        .fake
        .grant_access_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    t.fake.clear_requests();
    let out = nowhere(&t)
        .args(["login", "--access-token", "-", "--alias", "at"])
        .arg("--instance-url")
        .arg(t.fake.url())
        .write_stdin(at)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert!(t.fake.requests().is_empty(), "{:?}", t.fake.requests());
}

#[test]
fn logging_in_again_over_an_insecure_org_keeps_it_in_the_file_and_says_so() {
    let t = T::new();
    rotating(&t);
    nowhere(&t)
        .args([
            "login",
            "--auth-url",
            "-",
            "--alias",
            "rot",
            "--insecure-storage",
        ])
        .write_stdin(t.auth_url())
        .assert()
        .success();
    let out = nowhere(&t)
        .args(["login", "--auth-url", "-", "--alias", "rot"])
        .write_stdin(t.auth_url())
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("secrets file"), "{err}");
    assert!(err.contains("--migrate"), "{err}");
    assert_eq!(t.metadata()["orgs"]["rot"]["store"], "file");
    assert_eq!(t.fake.replays(), 0);
    nowhere(&t).args(["token", "-o", "rot"]).assert().success();
}

fn key_b64(byte: u8) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

#[test]
fn from_sf_with_a_shared_store_is_refused_and_never_writes_or_deletes_a_local_secret() {
    use crate::sfcli::{KeyVersion, import, setup, sfx};
    let (t, _sf) = setup(KeyVersion::V2, true);
    let r = RedisServer::start();
    let shared = |c: &mut assert_cmd::Command| {
        c.env("SFX_STORE", r.url())
            .env("SFX_STORE_KEY", key_b64(42))
            .env("SFX_TIMEOUT", "5s");
    };
    let mut c = sfx(&t);
    shared(&mut c);
    let out = c.args(["login", "--from-sf", "prod"]).output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("shared store"), "{err}");
    assert!(err.contains("SFX_STORE"), "{err}");
    assert!(!err.contains(&r.password), "{err}");
    assert!(t.fake.requests().is_empty(), "{:?}", t.fake.requests());
    assert!(
        !t.home().join("secrets.json").exists(),
        "a local secret was written"
    );
    assert!(!t.home().join("orgs.json").exists());
    assert!(
        r.dump().iter().all(|(k, _)| !k.starts_with("sfx:org:")),
        "{:?}",
        r.dump()
    );

    // Imported locally before: the refused command leaves every secret in place.
    import(&t);
    let before = t.secrets();
    let mut c = sfx(&t);
    shared(&mut c);
    c.args(["login", "--from-sf", "prod"]).assert().code(2);
    assert_eq!(t.secrets(), before, "a local secret was deleted or changed");
    assert_eq!(t.metadata()["orgs"]["prod"]["store"], "file");
    sfx(&t).args(["token", "-o", "prod"]).assert().success();
}

#[test]
fn a_login_whose_home_cannot_be_written_sends_nothing() {
    let t = T::new();
    rotating(&t);
    // SFX_HOME under a regular file: no directory can be made there (even as root).
    let file = t.dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let auth = t.auth_url();
    t.fake.clear_requests();
    let out = t
        .sfx()
        .env("SFX_HOME", file.join("sfx"))
        .args(["login", "--auth-url", "-", "--alias", "rot"])
        .write_stdin(auth.clone())
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not-a-dir"), "{err}");
    assert!(t.fake.requests().is_empty(), "{:?}", t.fake.requests());
    // The same auth URL then works where it can be saved.
    t.sfx()
        .args(["login", "--auth-url", "-", "--alias", "rot"])
        .write_stdin(auth)
        .assert()
        .success();
    assert_eq!(t.fake.replays(), 0);
}

#[test]
fn a_login_whose_userinfo_fails_after_a_rotating_refresh_is_stored_not_lost() {
    let t = T::new();
    rotating(&t);
    const USERINFO: &str = "/services/oauth2/userinfo";
    t.fake
        .inject(USERINFO, Fault::status(503).retry_after(0).forever());
    for alias in [Some("rot"), None] {
        let mut c = t.sfx();
        c.args(["login", "--auth-url", "-"]);
        if let Some(a) = alias {
            c.args(["--alias", a]);
        }
        let out = c.write_stdin(t.auth_url()).output().unwrap();
        let err = text(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(err.contains("could not learn the user"), "{err}");
    }
    t.fake.expect_hit(USERINFO);
    let orgs = t.metadata()["orgs"].clone();
    let by_id: Vec<&String> = orgs
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("005"))
        .collect();
    assert_eq!(by_id.len(), 1, "{orgs}");
    // The rotated refresh tokens were kept: both orgs refresh, with no replay.
    t.fake.clear_faults();
    for alias in ["rot", by_id[0].as_str()] {
        t.sfx().args(["refresh", "-o", alias]).assert().success();
    }
    assert_eq!(t.fake.replays(), 0);
}
