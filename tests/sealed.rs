//! The shared store under attack (#19): a Redis writer without the key cannot
//! redirect a secret, nor make a process seal under a retired key.

use crate::common::*;
use crate::shared::Fleet;

/// Requests a server received, by path.
fn paths(fake: &FakeSalesforce) -> Vec<String> {
    fake.requests().into_iter().map(|r| r.path).collect()
}

#[test]
fn a_redis_writer_without_the_key_cannot_redirect_a_secret_anywhere() {
    let f = Fleet::new();
    f.login("prod");
    let attacker = FakeSalesforce::start();
    attacker.expect_no_requests();
    let before = f.t.fake.requests().len();
    // Each field that decides where a secret goes, changed by a Redis writer
    // who holds no SFX_STORE_KEY (redis-cli HSET of the clear record).
    let changes: Vec<(&str, serde_json::Value)> = vec![
        ("login_url", attacker.url().into()),
        ("instance_url", attacker.url().into()),
        ("client_id", "3MVG9attacker".into()),
        ("username", "someone.else@example.com".into()),
    ];
    for (field, value) in changes {
        let original = f.meta("prod");
        f.edit("prod", |m| m[field] = value.clone());
        for args in [
            &["refresh"][..],
            &["token"],
            &["api", "/services/data"],
            &["exec", "--", "true"],
            &["logout", "--revoke"],
        ] {
            // The token is expired, so every command must refresh first.
            f.edit("prod", |m| m["issued_at"] = (now() - 3 * 3600).into());
            let out = f.std(1).args(args).output().unwrap();
            let err = text(&out.stderr);
            let what = format!("{field} changed, sfx {args:?}");
            assert_eq!(out.status.code(), Some(6), "{what}: {err}");
            assert!(
                err.contains("changed by someone without the store's key"),
                "{what}: {err}"
            );
            assert!(
                paths(&attacker).is_empty(),
                "{what}: the attacker's server was reached"
            );
        }
        // Put back as it was: everything works again.
        f.r.cli(&["HSET", "sfx:org:{prod}", "meta", &original.to_string()]);
    }
    assert_eq!(
        f.t.fake.requests().len(),
        before,
        "nothing was sent to Salesforce either: {:?}",
        paths(&f.t.fake)
    );
    f.expire("prod");
    let t = f.token(1);
    assert!(f.t.fake.is_active(&t));
    assert!(paths(&attacker).is_empty());
}

#[test]
fn a_new_instance_url_seals_the_kept_secrets_again_and_old_records_convert_on_the_next_write() {
    use sfx::secret::Secret;
    use sfx::store::Cas;
    use sfx::store::SecretKind;
    let r = crate::common::redis_server::RedisServer::start();
    let s = crate::shared::store(&r, "sfx");
    s.set_key(&crate::shared::key_b64(3)).unwrap();
    let rec = crate::shared::record("prod");
    let (rt, cs, at) = (
        Secret::new("5Aep-refresh"),
        Secret::new("client-secret"),
        Secret::new("00D-access"),
    );
    let Cas::Written(v) = s
        .write(
            &rec,
            &[
                (SecretKind::RefreshToken, Some(&rt)),
                (SecretKind::ClientSecret, Some(&cs)),
                (SecretKind::AccessToken, Some(&at)),
            ],
            None,
        )
        .unwrap()
    else {
        panic!("not written")
    };
    // A refresh answered from another instance, with no new refresh token.
    let mut moved = rec.clone();
    moved.instance_url = "https://moved.my.salesforce.com".into();
    let at2 = Secret::new("00D-access-2");
    let written = s
        .write(&moved, &[(SecretKind::AccessToken, Some(&at2))], Some(v))
        .unwrap();
    assert!(matches!(written, Cas::Written(_)), "{written:?}");
    let open = |r: &sfx::store::metadata::OrgRecord, k| {
        s.secret(r, k).unwrap().map(|x| x.expose().to_string())
    };
    assert_eq!(
        open(&moved, SecretKind::RefreshToken).as_deref(),
        Some("5Aep-refresh")
    );
    assert_eq!(
        open(&moved, SecretKind::ClientSecret).as_deref(),
        Some("client-secret")
    );
    assert_eq!(
        open(&moved, SecretKind::AccessToken).as_deref(),
        Some("00D-access-2")
    );
    // ...and no longer under the old record.
    assert!(s.secret(&rec, SecretKind::RefreshToken).is_err());

    // A record as the previous sfx wrote it (`v1:`, bound to alias and kind only)
    // still opens, and its next write seals every secret with its binding.
    let key = sfx::store::shared::seal::StoreKey::from_base64(&crate::shared::key_b64(3)).unwrap();
    for (kind, value) in [
        ("refresh-token", "5Aep-refresh"),
        ("client-secret", "client-secret"),
        ("access-token", "00D-access-2"),
    ] {
        let old = key.seal("prod", kind, value.as_bytes()).unwrap();
        assert!(old.starts_with("v1:"));
        let hash = if kind == "access-token" {
            "sfx:org:{prod}"
        } else {
            "sfx:secret:{prod}"
        };
        r.cli(&["HSET", hash, kind, &old]);
    }
    assert_eq!(
        open(&moved, SecretKind::RefreshToken).as_deref(),
        Some("5Aep-refresh")
    );
    let v = r
        .cli(&["HGET", "sfx:org:{prod}", "v"])
        .trim()
        .parse::<u64>()
        .unwrap();
    let at3 = Secret::new("00D-access-3");
    s.write(
        &moved,
        &[(SecretKind::AccessToken, Some(&at3))],
        Some(sfx::store::Version(v)),
    )
    .unwrap();
    for (hash, kind) in [
        ("sfx:secret:{prod}", "refresh-token"),
        ("sfx:secret:{prod}", "client-secret"),
        ("sfx:org:{prod}", "access-token"),
    ] {
        let stored = r.cli(&["HGET", hash, kind]);
        assert!(stored.starts_with("v3:"), "{kind}: {stored}");
    }
    assert_eq!(
        open(&moved, SecretKind::ClientSecret).as_deref(),
        Some("client-secret")
    );
}

#[test]
fn a_process_that_verified_its_key_checks_it_again_after_the_store_key_is_rotated() {
    // A long-running process (a watch) verified its key once; the fleet then
    // rotates the store's key (every org out, back in under the new key). The
    // old process must not seal anything more with the old key.
    use sfx::secret::Secret;
    use sfx::store::SecretKind;
    let r = crate::common::redis_server::RedisServer::start();
    let old = crate::shared::store(&r, "sfx");
    old.set_key(&crate::shared::key_b64(1)).unwrap();
    let rt = Secret::new("5Aep-rt");
    let with_rt = [(SecretKind::RefreshToken, Some(&rt))];
    old.write(&crate::shared::record("x"), &with_rt, None)
        .unwrap();
    // The rotation, by another machine with the new key.
    let new = crate::shared::store(&r, "sfx");
    new.set_key(&crate::shared::key_b64(2)).unwrap();
    new.delete("x").unwrap();
    new.write(&crate::shared::record("y"), &with_rt, None)
        .unwrap();
    // The old process writes again: refused, nothing sealed with the old key.
    let err = old
        .write(&crate::shared::record("z"), &with_rt, None)
        .unwrap_err();
    assert_eq!(err.exit(), sfx::exit::Exit::StoreUnavailable, "{err}");
    assert!(err.to_string().contains("SFX_STORE_KEY"), "{err}");
    assert!(old.read_org("z").unwrap().is_none(), "z was written");
    // The new key's secrets are untouched and open.
    let y = new.read_org("y").unwrap().unwrap().0;
    assert_eq!(
        new.secret(&y, SecretKind::RefreshToken)
            .unwrap()
            .unwrap()
            .expose(),
        "5Aep-rt"
    );
}

#[test]
fn a_redirected_jwt_or_client_credentials_org_sends_no_grant_anywhere() {
    // These flows re-run a grant instead of sending a stored refresh token:
    // their record is authenticated all the same before anything is sent.
    let f = Fleet::new();
    let url = f.t.fake.url();
    let key_file = format!(
        "{}/crates/fake-salesforce/keys/jwt-bearer-test-key.pem",
        env!("CARGO_MANIFEST_DIR")
    );
    f.sfx(0)
        .args(["login", "--jwt", "--client-id", DEFAULT_CLIENT_ID])
        .args(["--username", DEFAULT_USERNAME, "--key-file", &key_file])
        .args(["--login-url", &url, "--alias", "jwt"])
        .assert()
        .success();
    f.sfx(0)
        .env("SFX_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
        .args([
            "login",
            "--client-credentials",
            "--client-id",
            DEFAULT_CLIENT_ID,
        ])
        .args(["--login-url", &url, "--alias", "svc"])
        .assert()
        .success();
    let attacker = FakeSalesforce::start();
    attacker.expect_no_requests();
    let before = f.t.fake.requests().len();
    for alias in ["jwt", "svc"] {
        let original = f.meta(alias);
        f.edit(alias, |m| m["login_url"] = attacker.url().into());
        let out = f.std(1).args(["refresh", "-o", alias]).output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(6), "{alias}: {err}");
        assert!(
            err.contains("changed by someone without the store's key"),
            "{alias}: {err}"
        );
        assert!(
            paths(&attacker).is_empty(),
            "{alias}: the attacker's server was reached"
        );
        f.r.cli(&[
            "HSET",
            &format!("sfx:org:{{{alias}}}"),
            "meta",
            &original.to_string(),
        ]);
    }
    assert_eq!(f.t.fake.requests().len(), before);
    // Untouched, both still refresh.
    for alias in ["jwt", "svc"] {
        f.sfx(1).args(["refresh", "-o", alias]).assert().success();
    }
}

#[test]
fn a_record_planted_without_any_sealed_value_is_never_signed_for() {
    // A writer without the key plants a JWT org of its own (the client id, user
    // and key file copied from a real org's clear record, its own login URL)
    // and makes it the default: nothing is signed or sent.
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
    let attacker = FakeSalesforce::start();
    attacker.expect_no_requests();
    let mut planted = f.meta("jwt");
    planted["alias"] = "planted".into();
    planted["login_url"] = attacker.url().into();
    planted["instance_url"] = attacker.url().into();
    planted["issued_at"] = (now() - 3 * 3600).into();
    f.r.cli(&[
        "HSET",
        "sfx:org:{planted}",
        "meta",
        &planted.to_string(),
        "v",
        "1",
    ]);
    f.r.cli(&["SADD", "sfx:orgs", "planted"]);
    f.r.cli(&["SET", "sfx:default", "planted"]);
    let before = f.t.fake.requests().len();
    for args in [&["token"][..], &["api", "/services/data"], &["refresh"]] {
        let out = f.std(1).args(args).output().unwrap();
        let err = text(&out.stderr);
        assert!(
            matches!(out.status.code(), Some(4) | Some(6)),
            "{args:?}: {:?} {err}",
            out.status.code()
        );
        assert!(
            paths(&attacker).is_empty(),
            "{args:?}: the attacker's server was reached"
        );
    }
    assert_eq!(f.t.fake.requests().len(), before);
}

#[test]
fn a_redis_writer_cannot_change_how_a_secret_is_used_flow_rotation_or_key_file() {
    // The record says how its secrets are used as well as where: a Redis writer
    // without the key who flips the flow to client credentials would have sfx
    // send the org's client secret in a grant for the app's run-as user; one who
    // turns rotation off would disable the journal and allow retries.
    let f = Fleet::new();
    f.t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    f.login("prod");
    let m = f.meta("prod");
    assert_eq!(m["rotates_refresh_token"], true, "{m}");
    assert_eq!(m["has_client_secret"], true, "{m}");
    f.t.fake.clear_requests();
    let changes: Vec<(&str, serde_json::Value)> = vec![
        ("flow", "client_credentials".into()),
        ("flow", "jwt".into()),
        ("rotates_refresh_token", false.into()),
        ("key_file", "/tmp/attacker.pem".into()),
    ];
    for (field, value) in changes {
        let original = f.meta("prod");
        f.edit("prod", |m| m[field] = value.clone());
        for args in [&["token"][..], &["refresh"], &["exec", "--", "true"]] {
            f.edit("prod", |m| m["issued_at"] = (now() - 3 * 3600).into());
            let out = f.std(1).args(args).output().unwrap();
            let err = text(&out.stderr);
            let what = format!("{field}={value}, sfx {args:?}");
            assert_eq!(out.status.code(), Some(6), "{what}: {err}");
            assert!(
                err.contains("changed by someone without the store's key"),
                "{what}: {err}"
            );
            assert!(
                f.t.fake.requests().is_empty(),
                "{what}: sent {:?}",
                paths(&f.t.fake)
            );
        }
        f.r.cli(&["HSET", "sfx:org:{prod}", "meta", &original.to_string()]);
    }
    assert_eq!(f.t.fake.count_grant("client_credentials"), 0);
    // Put back: the next refresh is the org's own, journaled as before.
    f.expire("prod");
    let t = f.token(1);
    assert!(f.t.fake.is_active(&t));
    assert_eq!(f.t.fake.count_grant("refresh_token"), 1);
    assert_eq!(f.t.fake.count_grant("client_credentials"), 0);
}

#[test]
fn writes_that_change_how_secrets_are_used_seal_the_kept_ones_again() {
    use sfx::secret::Secret;
    use sfx::store::Cas;
    use sfx::store::SecretKind;
    let r = crate::common::redis_server::RedisServer::start();
    let s = crate::shared::store(&r, "sfx");
    s.set_key(&crate::shared::key_b64(3)).unwrap();
    let mut rec = crate::shared::record("prod");
    rec.rotates_refresh_token = false;
    let (rt, cs, at) = (
        Secret::new("5Aep-refresh"),
        Secret::new("client-secret"),
        Secret::new("00D-access"),
    );
    let Cas::Written(v) = s
        .write(
            &rec,
            &[
                (SecretKind::RefreshToken, Some(&rt)),
                (SecretKind::ClientSecret, Some(&cs)),
                (SecretKind::AccessToken, Some(&at)),
            ],
            None,
        )
        .unwrap()
    else {
        panic!("not written")
    };
    // A refresh that rotated: new tokens, the record now says it rotates; the
    // client secret is kept and must follow the record.
    let mut rotated = rec.clone();
    rotated.rotates_refresh_token = true;
    let (rt2, at2) = (Secret::new("5Aep-2"), Secret::new("00D-2"));
    let w = s
        .write(
            &rotated,
            &[
                (SecretKind::RefreshToken, Some(&rt2)),
                (SecretKind::AccessToken, Some(&at2)),
            ],
            Some(v),
        )
        .unwrap();
    let Cas::Written(v) = w else { panic!("{w:?}") };
    let open = |r: &sfx::store::metadata::OrgRecord, k| {
        s.secret(r, k).map(|x| x.map(|x| x.expose().to_string()))
    };
    assert_eq!(
        open(&rotated, SecretKind::ClientSecret).unwrap().as_deref(),
        Some("client-secret")
    );
    // Under the record as it was, nothing opens any more.
    for k in [
        SecretKind::RefreshToken,
        SecretKind::ClientSecret,
        SecretKind::AccessToken,
    ] {
        let e = open(&rec, k).unwrap_err();
        assert_eq!(e.exit(), sfx::exit::Exit::StoreUnavailable, "{e}");
    }
    // A record-only write that changes the flow and key file (a new JWT login
    // over the org would write new secrets too; this is the narrowest case).
    let mut jwt = rotated.clone();
    jwt.flow = sfx::store::metadata::Flow::Jwt;
    jwt.key_file = Some("/etc/sfx/prod.pem".into());
    let w = s.write(&jwt, &[], Some(v)).unwrap();
    assert!(matches!(w, Cas::Written(_)), "{w:?}");
    for (k, want) in [
        (SecretKind::RefreshToken, "5Aep-2"),
        (SecretKind::ClientSecret, "client-secret"),
        (SecretKind::AccessToken, "00D-2"),
    ] {
        assert_eq!(open(&jwt, k).unwrap().as_deref(), Some(want));
        assert!(open(&rotated, k).is_err(), "{k:?} still opens as before");
    }
}
