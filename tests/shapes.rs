//! Every JSON shape of `docs/reference.md`, pinned: the real binary's output is
//! deserialised into a typed copy of the documented shape with unknown keys
//! refused, and the keys the page calls required must be present (a `null` is
//! fine where the page says `?`). A new key fails here until it is documented.
//! (The `sfx watch` event stream is pinned the same way in `watch.rs`.)

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::common::*;

/// `v` has every key of `required` (values may be null) and parses as `T`
/// (which refuses keys it does not know).
fn pinned<T: DeserializeOwned>(v: &Value, required: &[&str]) -> T {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    for k in required {
        assert!(obj.contains_key(*k), "key `{k}` missing from {v}");
    }
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"))
}

fn json_of(t: &T, args: &[&str]) -> Value {
    json_exiting(t, args, 0)
}

fn json_exiting(t: &T, args: &[&str], code: i32) -> Value {
    let out = t.sfx().args(args).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}: {}",
        text(&out.stderr)
    );
    stdout_json(&out)
}

fn is_time(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(s).is_ok() && s.ends_with('Z')
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Expires {
    org: String,
    username: Option<String>,
    instance_url: String,
    active: bool,
    expires_at: Option<String>,
    expires_at_unix: Option<i64>,
    issued_at: Option<String>,
    issued_at_unix: Option<i64>,
    seconds_remaining: Option<i64>,
    source: String,
    checked_at: Option<String>,
    note: Option<String>,
}

const EXPIRES_KEYS: [&str; 10] = [
    "org",
    "username",
    "instance_url",
    "active",
    "expires_at",
    "expires_at_unix",
    "issued_at",
    "issued_at_unix",
    "seconds_remaining",
    "source",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ExpiresError {
    org: String,
    username: Option<String>,
    instance_url: String,
    error: String,
    exit_code: i64,
}

#[test]
fn expires_json_has_the_documented_keys_and_types() {
    let t = T::new();
    t.login("a");
    let e: Expires = pinned(&json_of(&t, &["expires", "--json"]), &EXPIRES_KEYS);
    assert_eq!(e.source, "introspection");
    assert!(e.active);
    assert!(e.expires_at.as_deref().is_some_and(is_time));
    assert!(e.checked_at.is_none() && e.note.is_none());

    // Offline after a check: the cached answer carries `checked_at`.
    let e: Expires = pinned(
        &json_of(&t, &["expires", "--offline", "--json"]),
        &EXPIRES_KEYS,
    );
    assert_eq!(e.source, "cached");
    assert!(e.checked_at.as_deref().is_some_and(is_time));

    // --all: an array of the same rows; a row that failed has the error shape.
    t.login("b");
    t.edit_org("b", |o| o["instance_url"] = "http://127.0.0.1:9".into());
    let all = json_exiting(&t, &["expires", "--all", "--json"], 5);
    let rows = all.as_array().expect("array");
    assert_eq!(rows.len(), 2);
    let a = rows.iter().find(|r| r["org"] == "a").unwrap();
    let _: Expires = pinned(a, &EXPIRES_KEYS);
    let b = rows.iter().find(|r| r["org"] == "b").unwrap();
    let b: ExpiresError = pinned(
        b,
        &["org", "username", "instance_url", "error", "exit_code"],
    );
    assert_eq!(b.exit_code, 5);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Minted {
    org: String,
    username: Option<String>,
    instance_url: String,
    issued_at: Option<String>,
    expires_at: Option<String>,
    expires_at_unix: Option<i64>,
    source: String,
    refresh_token_rotated: bool,
    access_token: Option<String>,
    refresh_token: Option<String>,
}

const MINTED_KEYS: [&str; 8] = [
    "org",
    "username",
    "instance_url",
    "issued_at",
    "expires_at",
    "expires_at_unix",
    "source",
    "refresh_token_rotated",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Skipped {
    org: String,
    refreshed: bool,
    expires_at: Option<String>,
    expires_at_unix: Option<i64>,
    source: String,
}

#[test]
fn login_and_refresh_json_have_the_documented_keys_and_no_token_unless_asked() {
    let t = T::new();
    let out = t
        .sfx()
        .args(["login", "--auth-url", "-", "--alias", "a", "--json"])
        .write_stdin(t.auth_url())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let m: Minted = pinned(&stdout_json(&out), &MINTED_KEYS);
    assert!(m.access_token.is_none() && m.refresh_token.is_none());

    let m: Minted = pinned(&json_of(&t, &["refresh", "--json"]), &MINTED_KEYS);
    assert!(m.access_token.is_none());
    let m: Minted = pinned(
        &json_of(&t, &["refresh", "--json", "--show-token"]),
        &MINTED_KEYS,
    );
    assert_eq!(
        m.access_token.as_deref(),
        Some(t.access_token("a").as_str())
    );

    let s: Skipped = pinned(
        &json_of(&t, &["refresh", "--if-expiring-within", "1m", "--json"]),
        &[
            "org",
            "refreshed",
            "expires_at",
            "expires_at_unix",
            "source",
        ],
    );
    assert!(!s.refreshed);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Token {
    org: String,
    instance_url: String,
    access_token: String,
    refreshed: bool,
}

#[test]
fn token_json_has_the_documented_keys() {
    let t = T::new();
    t.login("a");
    let tok: Token = pinned(
        &json_of(&t, &["token", "--json"]),
        &["org", "instance_url", "access_token", "refreshed"],
    );
    assert_eq!(tok.access_token, t.access_token("a"));
    assert!(!tok.refreshed);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct OrgRow {
    org: String,
    username: Option<String>,
    instance_url: String,
    default: bool,
    flow: String,
    store: String,
    expires_at: Option<String>,
    expires_at_unix: Option<i64>,
    source: Option<String>,
    status: Option<String>,
    message: Option<String>,
    linked_sf_file: Option<String>,
}

const ORG_KEYS: [&str; 10] = [
    "org",
    "username",
    "instance_url",
    "default",
    "flow",
    "store",
    "expires_at",
    "expires_at_unix",
    "source",
    "linked_sf_file",
];

#[test]
fn orgs_json_rows_have_the_documented_keys_with_and_without_check() {
    let t = T::new();
    t.login("a");
    let rows = json_of(&t, &["orgs", "--json"]);
    let r: OrgRow = pinned(&rows[0], &ORG_KEYS);
    assert_eq!((r.flow.as_str(), r.store.as_str()), ("auth_url", "file"));
    assert!(r.status.is_none());

    let rows = json_of(&t, &["orgs", "--check", "--json"]);
    let mut keys = ORG_KEYS.to_vec();
    keys.push("status");
    let r: OrgRow = pinned(&rows[0], &keys);
    assert_eq!(r.status.as_deref(), Some("ok"));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct LoggedOut {
    org: String,
    revoked: bool,
    removed: bool,
}

#[test]
fn logout_json_is_one_object_or_an_array_with_all() {
    let t = T::new();
    t.login("a");
    t.login("b");
    let one: LoggedOut = pinned(
        &json_of(&t, &["logout", "-o", "a", "--json"]),
        &["org", "revoked", "removed"],
    );
    assert!(one.removed && !one.revoked);
    let all = json_of(&t, &["logout", "--all", "--json"]);
    let rows = all.as_array().expect("array");
    assert_eq!(rows.len(), 1);
    let _: LoggedOut = pinned(&rows[0], &["org", "revoked", "removed"]);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Doctor {
    keychain: DoctorKeychain,
    file: DoctorFile,
    new_logins: String,
    orgs: Vec<DoctorOrg>,
    environment: bool,
    needs_keychain: bool,
    /// `null` unless a shared store is chosen (issue #13; its shape is pinned in tests/shared.rs).
    shared: Option<serde_json::Value>,
    /// The local store's home and whether sfx trusts it (issue #24).
    home: DoctorHome,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DoctorHome {
    path: String,
    trusted: bool,
    problems: Vec<String>,
    /// false: the home is on a read-only file system (`doctor` exits 6).
    writable: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DoctorKeychain {
    backend: String,
    name: String,
    status: String,
    works: bool,
    message: Option<String>,
    elapsed_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DoctorFile {
    path: String,
    exists: bool,
    mode: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DoctorOrg {
    org: String,
    store: String,
}

#[test]
fn doctor_json_has_the_documented_keys() {
    let t = T::new();
    t.login("a");
    // No D-Bus session here: the keychain is reported unusable, which is
    // fine for the file store (exit 0), and the shape is the same either way.
    let out = t.sfx().args(["doctor", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = stdout_json(&out);
    let d: Doctor = pinned(
        &v,
        &[
            "keychain",
            "file",
            "new_logins",
            "orgs",
            "environment",
            "needs_keychain",
            "home",
        ],
    );
    let _: DoctorKeychain = pinned(
        &v["keychain"],
        &[
            "backend",
            "name",
            "status",
            "works",
            "message",
            "elapsed_ms",
        ],
    );
    let _: DoctorFile = pinned(&v["file"], &["path", "exists", "mode"]);
    let _: DoctorHome = pinned(&v["home"], &["path", "trusted", "problems", "writable"]);
    assert!(d.home.trusted && d.home.problems.is_empty() && d.home.writable);
    assert_eq!(d.orgs.len(), 1);
    assert_eq!(d.file.mode.as_deref(), Some("0600"));
}

#[test]
fn introspect_json_adds_rfc3339_times_to_the_answer() {
    let t = T::new();
    t.login("a");
    let v = json_of(&t, &["introspect", "--json"]);
    assert_eq!(v["active"], true);
    for (num, at) in [("exp", "exp_at"), ("iat", "iat_at")] {
        assert!(v[num].is_i64(), "{num} in {v}");
        assert!(v[at].as_str().is_some_and(is_time), "{at} in {v}");
    }
}

#[test]
fn format_env_prints_the_documented_names_only() {
    let t = T::new();
    t.login("a");
    let out = t
        .sfx()
        .args(["refresh", "--format", "env"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let names: Vec<String> = text(&out.stdout)
        .lines()
        .map(|l| l.split_once('=').expect("NAME=value").0.to_string())
        .collect();
    assert_eq!(
        names,
        [
            "SFX_ACCESS_TOKEN",
            "SFX_INSTANCE_URL",
            "SF_ACCESS_TOKEN",
            "SF_INSTANCE_URL",
            "SF_TARGET_ORG",
            "SF_ORG_INSTANCE_URL"
        ]
    );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct SfLogin {
    aliases: Vec<String>,
    username: String,
    instance_url: Option<String>,
    org_id: Option<String>,
    problem: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct TookFromSf {
    org: String,
    username: Option<String>,
    instance_url: String,
    issued_at: Option<String>,
    expires_at: Option<String>,
    expires_at_unix: Option<i64>,
    source: String,
    refresh_token_rotated: bool,
    linked_sf_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct AuthUrl {
    org: String,
    auth_url: String,
}

#[test]
fn from_sf_and_auth_url_json_have_the_documented_keys() {
    use crate::sfcli::{KeyVersion, import, setup, sfx};
    let (t, _sf) = setup(KeyVersion::V1, false);
    let run = |args: &[&str]| {
        let out = sfx(&t).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        stdout_json(&out)
    };
    let list = run(&["login", "--from-sf", "--json"]);
    let row: SfLogin = pinned(
        &list[0],
        &["aliases", "username", "instance_url", "org_id", "problem"],
    );
    assert_eq!(row.aliases, ["prod"]);
    let took: TookFromSf = pinned(
        &run(&["login", "--from-sf", "prod", "--json"]),
        &[
            "org",
            "username",
            "instance_url",
            "issued_at",
            "expires_at",
            "expires_at_unix",
            "source",
            "refresh_token_rotated",
            "linked_sf_file",
        ],
    );
    assert!(took.linked_sf_file.is_some());
    let rows = run(&["orgs", "--json"]);
    let r: OrgRow = pinned(&rows[0], &ORG_KEYS);
    assert_eq!(r.flow, "sf");
    import(&t);
    let a: AuthUrl = pinned(
        &run(&["token", "--auth-url", "--json"]),
        &["org", "auth_url"],
    );
    assert!(a.auth_url.starts_with("force://"));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Migrated {
    org: String,
    from: String,
    to: String,
    moved: bool,
}

#[test]
fn migrate_json_has_the_documented_keys() {
    let t = T::new();
    t.login("a");
    // Into the store it is already in: nothing moves, and no keychain is opened.
    let m: Migrated = pinned(
        &json_of(&t, &["login", "--migrate", "--insecure-storage", "--json"]),
        &["org", "from", "to", "moved"],
    );
    assert_eq!(
        (m.from.as_str(), m.to.as_str(), m.moved),
        ("file", "file", false)
    );
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DefaultSet {
    org: String,
    default: bool,
}

/// Issue #21: `sfx login --set-default -o ORG` with no flow.
#[test]
fn login_set_default_json_has_the_documented_keys() {
    let t = T::new();
    t.login("a");
    t.login("b");
    let v = json_of(&t, &["login", "--set-default", "-o", "b", "--json"]);
    let d: DefaultSet = pinned(&v, &["org", "default"]);
    assert_eq!((d.org.as_str(), d.default), ("b", true));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ReaderKey {
    reader_key: String,
}

#[test]
fn store_reader_key_json_has_the_documented_keys() {
    let t = T::new();
    t.fake.expect_no_requests();
    let out = t
        .sfx()
        .args(["store", "reader-key", "--json"])
        .env("SFX_STORE_KEY", crate::shared::key_b64(5))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let r: ReaderKey = pinned(&stdout_json(&out), &["reader_key"]);
    assert!(r.reader_key.starts_with("sfxr1:"));
}
