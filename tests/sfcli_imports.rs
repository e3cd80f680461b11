//! `sfx login --from-sf` of an sf login without a refresh token (issue #21): an
//! `sf org login access-token` login becomes an access-token-only org (as
//! `sfx login --access-token` makes), so `sfx expires` answers for it; an
//! `sf org login jwt` login names its key file in sf's record (`privateKey`) and
//! becomes a JWT org signing with that key. sf's files come from the test-side
//! writer of tests/sfcli.rs ([`Sf`]), in the layout sf 2.150 writes.

use serde_json::Value;

use crate::common::*;
use crate::flows::key;
use crate::sfcli::{KeyVersion, Sf, sfx};
use fake_salesforce::PUBLIC_CLIENT_ID;

const USER: &str = DEFAULT_USERNAME;
const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// An auth file as sf writes it for a login that has no refresh token: no
/// `refreshToken` field; `extra` adds sf's fields of that flow (`privateKey`,
/// `clientId` for a JWT login).
fn write_login_without_refresh(sf: &Sf, instance_url: &str, access: &str, extra: &[(&str, &str)]) {
    let mut v = serde_json::json!({
        "accessToken": sf.encrypt(access),
        "instanceUrl": instance_url,
        "orgId": "00D000000000001EAA",
        "loginUrl": instance_url,
        "isDevHub": false,
        "instanceApiVersion": "62.0",
        "username": USER,
        "isScratch": false,
        "isSandbox": false,
        "tracksSource": false,
    });
    for (k, val) in extra {
        v[*k] = Value::String(val.to_string());
    }
    std::fs::write(sf.file(USER), serde_json::to_string_pretty(&v).unwrap()).unwrap();
    sf.write_aliases(&[("prod", USER)]);
}

fn nothing_stored(t: &T) {
    assert!(!t.home().join("orgs.json").exists(), "no metadata written");
    assert!(!t.home().join("secrets.json").exists(), "no secret written");
}

#[test]
fn an_access_token_login_of_sf_becomes_an_access_token_only_org_that_expires_answers_for() {
    let t = T::new();
    let sf = Sf::with_key_json(t.dir.path(), KeyVersion::V1);
    let at = t.fake.grant_access_token(PUBLIC_CLIENT_ID, USER);
    write_login_without_refresh(&sf, &t.fake.url(), &at, &[]);
    let out = sfx(&t)
        .args(["login", "--from-sf", "prod", "--json"])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("holds only an access token"), "{err}");
    assert!(err.contains("cannot refresh it"), "{err}");
    assert_eq!(t.token_requests(), 0);
    assert_eq!(t.fake.count("/services/oauth2/userinfo"), 1, "one check");
    let rec = &t.metadata()["orgs"]["prod"];
    assert_eq!(rec["flow"], "access_token");
    assert_eq!(rec["has_refresh_token"], false);
    assert!(rec["sf_link"].is_null(), "nothing of sf's to keep linked");
    assert_eq!(t.access_token("prod"), at);
    assert!(
        t.secrets()["prod"]
            .get("refresh-token")
            .is_none_or(Value::is_null)
    );
    // The question sfx exists for.
    let out = sfx(&t).args(["expires", "-o", "prod"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("expires in "),
        "{}",
        text(&out.stdout)
    );
    // A refresh says it cannot, and asks nothing of Salesforce.
    t.fake.clear_requests();
    let out = sfx(&t).args(["refresh", "-o", "prod"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out.stderr).contains("cannot be refreshed"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(t.token_requests(), 0);
}

#[test]
fn a_dead_access_token_login_of_sf_is_refused_and_nothing_is_written() {
    let t = T::new();
    let sf = Sf::with_key_json(t.dir.path(), KeyVersion::V1);
    let at = t.fake.grant_access_token(PUBLIC_CLIENT_ID, USER);
    t.fake.revoke_token(&at);
    write_login_without_refresh(&sf, &t.fake.url(), &at, &[]);
    let out = sfx(&t)
        .args(["login", "--from-sf", "prod"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = text(&out.stderr);
    assert!(
        err.contains("holds only an access token, and it no longer works"),
        "{err}"
    );
    assert!(err.contains("sfx login --web --alias prod"), "{err}");
    assert_eq!(t.fake.count("/services/oauth2/userinfo"), 1);
    nothing_stored(&t);
}

#[test]
fn a_jwt_login_of_sf_becomes_a_jwt_org_that_signs_with_sfs_key_file() {
    let t = T::new();
    let sf = Sf::with_key_json(t.dir.path(), KeyVersion::V2);
    let at = t.fake.grant_access_token(DEFAULT_CLIENT_ID, USER);
    let key_file = key("jwt-bearer-test-key.pem");
    write_login_without_refresh(
        &sf,
        &t.fake.url(),
        &at,
        &[("clientId", DEFAULT_CLIENT_ID), ("privateKey", &key_file)],
    );
    let out = sfx(&t)
        .args(["login", "--from-sf", "prod"])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("JWT bearer login"), "{err}");
    assert_eq!(t.token_requests(), 0, "taking it costs no token request");
    let rec = &t.metadata()["orgs"]["prod"];
    assert_eq!(rec["flow"], "jwt");
    assert_eq!(rec["key_file"], key_file.as_str());
    assert_eq!(rec["client_id"], DEFAULT_CLIENT_ID);
    assert!(rec["sf_link"].is_null());
    // A refresh signs a new assertion with sf's key: the fake accepts it.
    t.fake.clear_requests();
    sfx(&t).args(["refresh", "-o", "prod"]).assert().success();
    assert_eq!(t.fake.count_grant(JWT_GRANT), 1);
    assert!(t.fake.is_active(&t.access_token("prod")));
    assert_ne!(t.access_token("prod"), at);
}

#[test]
fn a_jwt_login_of_sf_whose_key_cannot_be_read_is_a_sentence_and_writes_nothing() {
    let t = T::new();
    t.fake.expect_no_requests();
    let sf = Sf::with_key_json(t.dir.path(), KeyVersion::V1);
    let at = t.fake.grant_access_token(DEFAULT_CLIENT_ID, USER);
    let missing = t.dir.path().join("gone/server.key");
    write_login_without_refresh(
        &sf,
        &t.fake.url(),
        &at,
        &[
            ("clientId", DEFAULT_CLIENT_ID),
            ("privateKey", missing.to_str().unwrap()),
        ],
    );
    let out = sfx(&t)
        .args(["login", "--from-sf", "prod"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = text(&out.stderr);
    assert!(
        err.contains("is a JWT bearer login, and its key file"),
        "{err}"
    );
    assert!(err.contains("cannot read it"), "{err}");
    assert!(
        err.contains(&format!(
            "sfx login --jwt --client-id {DEFAULT_CLIENT_ID} --username {USER}"
        )),
        "{err}"
    );
    assert_eq!(t.fake.requests().len(), 0, "nothing sent");
    nothing_stored(&t);
}
