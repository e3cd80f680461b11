//! A second look at #19 from outside: what another host, a paused process or a
//! Redis writer can still do to a rotating login in the shared store.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::shared::{Fleet, TOKEN, no_replays};

/// Start host `host`'s `sfx refresh` and return once its token request has
/// reached Salesforce (the fake holds it for `delay_ms`).
fn refresh_in_flight(f: &Fleet, host: usize, delay_ms: u64) -> std::process::Child {
    f.t.fake.inject(TOKEN, Fault::delay(delay_ms).times(1));
    let before = f.t.fake.count(TOKEN);
    let a = f
        .std(host)
        .args(["refresh", "-q", "--timeout", "30s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while f.t.fake.count(TOKEN) == before {
        assert!(Instant::now() < deadline, "the refresh was never sent");
        std::thread::sleep(Duration::from_millis(5));
    }
    a
}

#[test]
fn a_record_only_write_by_another_host_during_a_rotating_refresh_keeps_the_rotated_token() {
    // Host A refreshes a rotating org; while its request is at Salesforce, host
    // B runs ordinary commands that write the record without the lease: `api`
    // remembers the API version, `expires` remembers what introspection said.
    // A must still store the refresh token Salesforce rotated to — else the
    // store keeps the spent one and the next refresh replays it (login revoked).
    for b_args in [
        &["api", "/services/data/{version}/limits"][..],
        &["expires"][..],
    ] {
        let f = Fleet::new();
        f.t.fake
            .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
        f.login("prod");
        f.t.fake.clear_requests();
        let v0 = f.r.cli(&["HGET", "sfx:org:{prod}", "v"]);
        let a = refresh_in_flight(&f, 1, 3_000);
        let b = f.std(2).args(b_args).output().unwrap();
        assert_eq!(
            b.status.code(),
            Some(0),
            "B {b_args:?}: {}",
            text(&b.stderr)
        );
        assert_ne!(
            f.r.cli(&["HGET", "sfx:org:{prod}", "v"]),
            v0,
            "B {b_args:?} wrote the record while A's refresh was in flight"
        );
        let a = a.wait_with_output().unwrap();
        assert_eq!(a.status.code(), Some(0), "A: {}", text(&a.stderr));
        assert_eq!(f.t.fake.count_grant("refresh_token"), 1);
        // The next refresh, on a third host, sends the token A was given.
        f.expire("prod");
        let out = f.std(3).args(["refresh", "-q"]).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "B {b_args:?}: the login was lost: {}",
            text(&out.stderr)
        );
        no_replays(&f.t);
        assert_eq!(f.t.fake.replays(), 0, "B {b_args:?}");
        assert_eq!(f.t.fake.count_grant("refresh_token"), 2);
    }
}

#[test]
fn a_redis_user_that_cannot_run_the_write_fails_a_login_before_the_pasted_credential_is_spent() {
    // A hardened Redis: sfx's user may read and SET but not run scripts (a
    // common ACL), or may run scripts but not one command the write uses. The
    // key check passes (a plain SET), so without a probe the login refreshed,
    // rotating the pasted auth URL, then failed to store: the login was gone.
    let f = Fleet::new();
    f.t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    f.login("first"); // the store has a key check and an org already
    let port = f.r.port;
    f.r.cli(&[
        "ACL",
        "SETUSER",
        "noscript",
        "on",
        ">pw",
        "~sfx:*",
        "+@all",
        "-@scripting",
    ]);
    f.r.cli(&[
        "ACL", "SETUSER", "nohincr", "on", ">pw", "~sfx:*", "+@all", "-hincrby",
    ]);
    let auth_url = f.t.fake.auth_url(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    f.t.fake.clear_requests();
    for user in ["noscript", "nohincr"] {
        let out = f
            .std(1)
            .env("SFX_STORE", format!("redis://{user}:pw@127.0.0.1:{port}"))
            .args(["login", "--auth-url", "-", "--alias", "second"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(auth_url.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(6), "{user}: {err}");
        assert_eq!(
            f.t.fake.count(TOKEN),
            0,
            "{user}: the pasted auth URL was spent by a login that could not be saved"
        );
        assert!(err.contains("nothing was sent"), "{user}: {err}");
    }
    assert!(
        f.r.cli(&["KEYS", "sfx:probe*"]).trim().is_empty(),
        "the probe left keys behind"
    );
    // The same auth URL still logs in with a user that can write.
    f.sfx(1)
        .args(["login", "--auth-url", "-", "--alias", "second"])
        .write_stdin(auth_url)
        .assert()
        .success();
    assert_eq!(f.t.fake.replays(), 0);
}

#[test]
fn a_planted_attempt_window_of_a_century_is_exit_6_not_a_wait() {
    // A refresh whose outcome is unknown leaves its journal and attempt window;
    // a Redis writer without the key stretches the window to a hundred years.
    // The next host must not sleep that long holding the lease (every other
    // host would queue behind it): no sfx ever records more than 2 × 1 h + 10 s.
    let f = Fleet::new();
    f.t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    f.login("prod");
    f.expire("prod");
    f.t.fake.clear_requests();
    f.t.fake.inject(TOKEN, Fault::delay(3_000).times(1));
    let a = f
        .std(1)
        .args(["refresh", "-q", "--timeout", "1s"])
        .output()
        .unwrap();
    assert_eq!(a.status.code(), Some(5), "in doubt: {}", text(&a.stderr));
    assert_eq!(f.r.cli(&["EXISTS", "sfx:inflight:{prod}"]).trim(), "1");
    f.r.cli(&["PEXPIRE", "sfx:inflight:{prod}", "3153600000000"]);
    let started = Instant::now();
    let mut b = f
        .std(2)
        .args(["token", "--timeout", "2s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = started + Duration::from_secs(30);
    while b.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = b.kill();
            let out = b.wait_with_output().unwrap();
            panic!(
                "B still waiting after 30 s: {}",
                text(&out.stderr).lines().next().unwrap_or("")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = b.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("written by something else"), "{err}");
    assert!(err.contains("nothing was sent"), "{err}");
    assert_eq!(
        f.t.fake.count_grant("refresh_token"),
        1,
        "only A's request, never B's"
    );
}

/// #20: a reader holds the ACCESS key, which seals access tokens. A JWT bearer
/// org opens no refresh token or client secret to re-run its grant, so what
/// vouches for its record (where the refresher signs an assertion to, and for
/// whom) must be sealed with the REFRESH key: a reader with a Redis user that
/// may write must not make the refresher sign for another user, or send the
/// assertion to a server of the reader's choosing.
#[test]
fn a_reader_that_can_write_to_redis_cannot_make_the_refresher_sign_a_jwt_for_another_user_or_url() {
    use sfx::store::shared::seal::{Binding, Keys};
    let f = Fleet::new();
    let key_file = format!(
        "{}/crates/fake-salesforce/keys/jwt-bearer-test-key.pem",
        env!("CARGO_MANIFEST_DIR")
    );
    f.sfx(0)
        .args(["login", "--jwt", "--client-id", DEFAULT_CLIENT_ID])
        .args(["--username", DEFAULT_USERNAME, "--key-file", &key_file])
        .args(["--login-url", &f.t.fake.url(), "--alias", "jwt"])
        .assert()
        .success();
    let reader = Keys::from_text(&crate::readers::reader_of(&f.key)).unwrap();
    let attacker = FakeSalesforce::start();
    attacker.expect_no_requests();
    let grants = |fake: &FakeSalesforce| {
        fake.requests()
            .into_iter()
            .filter(|r| r.path == TOKEN)
            .count()
    };
    let before = grants(&f.t.fake);
    // What the reader changes in the clear record, then seals an access token
    // for with its ACCESS key (so the record looks vouched for).
    let changes: Vec<(&str, serde_json::Value)> = vec![
        ("login_url", attacker.url().into()),
        ("username", "admin@victim.example.com".into()),
    ];
    for (field, value) in changes {
        let original = f.meta("jwt");
        let original_at = f.r.cli(&["HGET", "sfx:org:{jwt}", "access-token"]);
        let mut forged = original.clone();
        forged[field] = value;
        forged["issued_at"] = (now() - 3 * 3600).into();
        let rec: sfx::store::metadata::OrgRecord = serde_json::from_value(forged.clone()).unwrap();
        let sealed = reader
            .seal_bound(&Binding::of("sfx", &rec), "access-token", b"00Dforged!x")
            .unwrap();
        f.r.cli(&[
            "HSET",
            "sfx:org:{jwt}",
            "meta",
            &forged.to_string(),
            "access-token",
            &sealed,
        ]);
        // The refresher, on another host, refreshes the org.
        let out = f.std(1).args(["refresh", "-o", "jwt"]).output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(6), "{field}: {err}");
        assert!(
            err.contains("changed by someone without the store's key") || err.contains("vouches"),
            "{field}: {err}"
        );
        assert_eq!(
            grants(&attacker),
            0,
            "{field}: the reader's server got an assertion"
        );
        assert_eq!(
            grants(&f.t.fake),
            before,
            "{field}: the refresher signed a grant for the reader's record"
        );
        f.r.cli(&[
            "HSET",
            "sfx:org:{jwt}",
            "meta",
            &original.to_string(),
            "access-token",
            original_at.trim(),
        ]);
    }
    // The refresher's own record still works: its next grant goes to Salesforce.
    f.sfx(1).args(["refresh", "-o", "jwt"]).assert().success();
    assert_eq!(grants(&f.t.fake), before + 1);
}

/// #20: the flow in the clear record decides which grant a refresher runs with
/// the client secret it opens. A reader that can write to Redis flips an org
/// with a refresh token and a client secret to the client credentials flow: the
/// refresher must not run a grant the login never was (it would store, for
/// every reader, a token of the app's run-as user instead of the org's user).
#[test]
fn a_reader_that_can_write_to_redis_cannot_switch_an_org_to_the_client_credentials_grant() {
    let f = Fleet::new();
    f.login("prod");
    assert_eq!(f.meta("prod")["has_client_secret"], true);
    let grants = |kind: &str| {
        f.t.fake
            .requests()
            .into_iter()
            .filter(|r| r.path == TOKEN)
            .filter(|r| r.form.iter().any(|(k, v)| k == "grant_type" && v == kind))
            .count()
    };
    let original = f.meta("prod");
    f.edit("prod", |m| {
        m["flow"] = "client_credentials".into();
        m["issued_at"] = (now() - 3 * 3600).into();
    });
    let out = f.std(1).args(["refresh", "-o", "prod"]).output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("changed by someone without"), "{err}");
    assert_eq!(
        grants("client_credentials"),
        0,
        "a client credentials grant was run"
    );
    // Put back: the refresher's own record refreshes as before.
    f.r.cli(&["HSET", "sfx:org:{prod}", "meta", &original.to_string()]);
    f.expire("prod");
    let refreshes = grants("refresh_token");
    f.sfx(1).args(["refresh", "-o", "prod"]).assert().success();
    assert_eq!(grants("refresh_token"), refreshes + 1);
}
