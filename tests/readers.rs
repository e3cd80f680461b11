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
