//! Working with the Salesforce CLI (issue #15): the real `sfx` against the fake,
//! with sf's files written by a test-side writer that follows sfdx-core's format
//! exactly (`src/crypto/crypto.ts`, `keyChainImpl.ts`, `fileLocking.ts`), written
//! independently of sfx's own `sfcli` code:
//!
//! - the key: `~/.sfdx/key.json` (`SF_USE_GENERIC_UNIX_KEYCHAIN=true`), or the
//!   Secret Service item that `secret-tool store --label='salesforce.com' user local
//!   domain sfdx` makes (the test that needs it is ignored unless run by
//!   `scripts/test.sh` inside `.ci/with-keyring.sh`);
//! - v1 keys (32 hex characters used as ASCII, 12-hex-character IV used as ASCII)
//!   and v2 keys (64 hex characters decoded, 24-hex-character IV decoded);
//! - values `<ivHex><ciphertextHex>:<tagHex>`; files `JSON.stringify(…, null, 2)`;
//!   `alias.json` `{"orgs":{…}}`; the lock a `<file>.lock` directory.
//!
//! A "simulated sf refresh" reads sf's file, spends its refresh token at the fake
//! and writes the answer back as sf 2.150 does (keeping a rotated refresh token).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use serde_json::Value;

use crate::common::*;
use fake_salesforce::{ORG_ID, PUBLIC_CLIENT_ID};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KeyVersion {
    V1,
    V2,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn random(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).unwrap();
    b
}

/// sf's state directory in a test's HOME, written the way sf writes it.
pub struct Sf {
    pub dir: PathBuf,
    /// The key as sf stores it (hex text).
    pub key: String,
}

impl Sf {
    /// `~/.sfdx` under `home`, with a new key of `version` in `key.json` (0600).
    pub fn with_key_json(home: &Path, version: KeyVersion) -> Sf {
        let sf = Sf::without_key(home, version);
        sf.write_key_json();
        sf
    }

    /// The directory and a key that is not stored anywhere yet.
    pub fn without_key(home: &Path, version: KeyVersion) -> Sf {
        let dir = home.join(".sfdx");
        std::fs::create_dir_all(&dir).unwrap();
        // global.ts `createDir`: mkdir(…, { recursive: true, mode: 0o700 }).
        set_mode(&dir, 0o700);
        // crypto.ts: randomBytes(KEY_SIZE[v]).toString('hex'), KEY_SIZE = {v1: 16, v2: 32}.
        let key = hex(&random(match version {
            KeyVersion::V1 => 16,
            KeyVersion::V2 => 32,
        }));
        Sf { dir, key }
    }

    /// keyChainImpl.ts `writeFile`: JSON.stringify(contents, null, 4), mode 600.
    pub fn write_key_json(&self) {
        let p = self.dir.join("key.json");
        let text = format!(
            "{{\n    \"account\": \"local\",\n    \"key\": \"{}\",\n    \"service\": \"sfdx\"\n}}",
            self.key
        );
        std::fs::write(&p, text).unwrap();
        set_mode(&p, 0o600);
    }

    fn version(&self) -> KeyVersion {
        if self.key.len() == 64 {
            KeyVersion::V2
        } else {
            KeyVersion::V1
        }
    }

    fn cipher(&self) -> Aes256Gcm {
        match self.version() {
            // v1: the key string's UTF-8 bytes are the key.
            KeyVersion::V1 => Aes256Gcm::new_from_slice(self.key.as_bytes()).unwrap(),
            KeyVersion::V2 => Aes256Gcm::new_from_slice(&unhex(&self.key)).unwrap(),
        }
    }

    /// crypto.ts `encryptV1` / `encryptV2`.
    pub fn encrypt(&self, plain: &str) -> String {
        let (iv_hex, nonce): (String, Vec<u8>) = match self.version() {
            KeyVersion::V1 => {
                let iv = hex(&random(6));
                let n = iv.as_bytes().to_vec();
                (iv, n)
            }
            KeyVersion::V2 => {
                let iv = random(12);
                (hex(&iv), iv)
            }
        };
        let out = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
            .unwrap();
        let (ct, tag) = out.split_at(out.len() - 16);
        format!("{iv_hex}{}:{}", hex(ct), hex(tag))
    }

    /// crypto.ts `decryptV1` / `decryptV2`.
    pub fn decrypt(&self, text: &str) -> String {
        let (body, tag) = text.split_once(':').expect("sf's format");
        assert_eq!(tag.len(), 32, "a 16-byte tag");
        let ivl = match self.version() {
            KeyVersion::V1 => 12,
            KeyVersion::V2 => 24,
        };
        let (iv, ct) = body.split_at(ivl);
        let nonce = match self.version() {
            KeyVersion::V1 => iv.as_bytes().to_vec(),
            KeyVersion::V2 => unhex(iv),
        };
        let mut data = unhex(ct);
        data.extend(unhex(tag));
        let plain = self
            .cipher()
            .decrypt(Nonce::from_slice(&nonce), data.as_slice())
            .expect("decrypts with sf's key");
        String::from_utf8(plain).unwrap()
    }

    pub fn file(&self, username: &str) -> PathBuf {
        self.dir.join(format!("{username}.json"))
    }

    /// An auth file as sf 2.150 writes it (its field order, JSON.stringify(…, null, 2)).
    pub fn write_login(&self, username: &str, instance_url: &str, access: &str, refresh: &str) {
        let text = format!(
            r#"{{
  "accessToken": "{}",
  "instanceUrl": "{instance_url}",
  "orgId": "{ORG_ID}",
  "loginUrl": "{instance_url}",
  "refreshToken": "{}",
  "clientId": "{PUBLIC_CLIENT_ID}",
  "isDevHub": false,
  "instanceApiVersion": "62.0",
  "instanceApiVersionLastRetrieved": "11/28/2026, 9:00:00 AM",
  "username": "{username}",
  "isScratch": false,
  "isSandbox": false,
  "tracksSource": false
}}"#,
            self.encrypt(access),
            self.encrypt(refresh)
        );
        std::fs::write(self.file(username), text).unwrap();
    }

    /// aliasAccessor.ts: JSON.stringify({orgs: {...}}).
    pub fn write_aliases(&self, pairs: &[(&str, &str)]) {
        let orgs: serde_json::Map<String, Value> = pairs
            .iter()
            .map(|(a, u)| (a.to_string(), Value::String(u.to_string())))
            .collect();
        std::fs::write(
            self.dir.join("alias.json"),
            serde_json::json!({ "orgs": orgs }).to_string(),
        )
        .unwrap();
    }

    pub fn read(&self, username: &str) -> Value {
        read_json(&self.file(username))
    }

    pub fn token(&self, username: &str, field: &str) -> String {
        self.decrypt(self.read(username)[field].as_str().expect("field"))
    }

    /// What `sf` does when its access token is dead: spend the refresh token in
    /// its file and write the answer back (a rotated refresh token included, as
    /// sf 2.150 does), under its lock. Err: the fake's refusal.
    pub fn refresh(&self, fake_url: &str, username: &str) -> Result<(), String> {
        let rt = self.token(username, "refreshToken");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut resp = agent
            .post(&format!("{fake_url}/services/oauth2/token"))
            .send_form([
                ("grant_type", "refresh_token"),
                ("client_id", PUBLIC_CLIENT_ID),
                ("refresh_token", rt.as_str()),
            ])
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let raw = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        let body: Value = serde_json::from_str(&raw).map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(body.to_string());
        }
        let lock = PathBuf::from(format!("{}.lock", self.file(username).display()));
        std::fs::create_dir(&lock).expect("sf's lock is free");
        let mut v = self.read(username);
        v["accessToken"] = Value::String(self.encrypt(body["access_token"].as_str().unwrap()));
        if let Some(new_rt) = body["refresh_token"].as_str() {
            v["refreshToken"] = Value::String(self.encrypt(new_rt));
        }
        std::fs::write(
            self.file(username),
            serde_json::to_string_pretty(&v).unwrap(),
        )
        .unwrap();
        std::fs::remove_dir(&lock).unwrap();
        Ok(())
    }
}

#[cfg(unix)]
fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}
#[cfg(not(unix))]
fn set_mode(_p: &Path, _mode: u32) {}

const USER: &str = DEFAULT_USERNAME;

/// A test with sf logged in to the fake's default user as `prod` (PlatformCLI, key.json).
pub fn setup(version: KeyVersion, rotate: bool) -> (T, Sf) {
    let t = T::new();
    if rotate {
        t.fake
            .update_client(PUBLIC_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    }
    let sf = Sf::with_key_json(t.dir.path(), version);
    let rt = t.fake.grant_refresh_token(PUBLIC_CLIENT_ID, USER);
    let at = t.fake.grant_access_token(PUBLIC_CLIENT_ID, USER);
    sf.write_login(USER, &t.fake.url(), &at, &rt);
    sf.write_aliases(&[("prod", USER)]);
    (t, sf)
}

/// `sfx` as a user whose sf keeps its key in key.json.
pub fn sfx(t: &T) -> assert_cmd::Command {
    let mut c = t.sfx();
    c.env("SF_USE_GENERIC_UNIX_KEYCHAIN", "true");
    c
}

pub fn import(t: &T) {
    sfx(t)
        .args(["login", "--from-sf", "prod"])
        .assert()
        .success();
}

#[test]
fn without_a_value_it_lists_sfs_logins_and_reads_no_secret() {
    let (t, sf) = setup(KeyVersion::V1, false);
    t.fake.expect_no_requests();
    sf.write_login("other@acme.com", "https://acme.my.salesforce.com", "a", "r");
    std::fs::write(sf.dir.join("broken@acme.com.json"), b"{not json").unwrap();
    // No key anywhere: listing must not need it.
    std::fs::remove_file(sf.dir.join("key.json")).unwrap();
    let out = sfx(&t)
        .args(["login", "--from-sf", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v = stdout_json(&out);
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let demo = rows.iter().find(|r| r["username"] == USER).unwrap();
    assert_eq!(demo["aliases"], serde_json::json!(["prod"]));
    assert_eq!(demo["instance_url"], t.fake.url());
    let broken = rows
        .iter()
        .find(|r| r["username"] == "broken@acme.com")
        .unwrap();
    assert!(
        broken["problem"]
            .as_str()
            .unwrap()
            .contains("not a Salesforce CLI auth file")
    );
    assert_eq!(t.fake.requests().len(), 0, "no request at all");
    assert!(!t.home().join("orgs.json").exists(), "nothing stored");
    let human = sfx(&t).args(["login", "--from-sf"]).output().unwrap();
    assert!(text(&human.stdout).contains("prod"));
    // No sf at all.
    let t2 = T::new();
    t2.fake.expect_no_requests();
    let out = sfx(&t2).args(["login", "--from-sf"]).output().unwrap();
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("has no logins"));
}

fn imports_with_no_token_request(version: KeyVersion) {
    let (t, sf) = setup(version, false);
    let out = sfx(&t)
        .args(["login", "--from-sf", "prod", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(t.token_requests(), 0, "no token request");
    assert_eq!(t.fake.count("/services/oauth2/userinfo"), 1, "one check");
    let v = stdout_json(&out);
    assert_eq!(v["org"], "prod");
    assert_eq!(v["linked_sf_file"], sf.file(USER).display().to_string());
    assert_eq!(t.refresh_token("prod"), sf.token(USER, "refreshToken"));
    assert_eq!(t.access_token("prod"), sf.token(USER, "accessToken"));
    let rec = &t.metadata()["orgs"]["prod"];
    assert_eq!(rec["flow"], "sf");
    assert_eq!(rec["client_id"], PUBLIC_CLIENT_ID);
    assert_eq!(rec["sf_link"]["username"], USER);
    assert!(text(&out.stderr).contains("linked to sf's login"));
    // `sfx orgs` shows the link.
    let orgs = sfx(&t).args(["orgs"]).output().unwrap();
    assert!(
        text(&orgs.stdout).contains("file + sf"),
        "{}",
        text(&orgs.stdout)
    );
    let j = stdout_json(&sfx(&t).args(["orgs", "--json"]).output().unwrap());
    assert_eq!(j[0]["linked_sf_file"], sf.file(USER).display().to_string());
    // The token it hands out works.
    let tok = sfx(&t)
        .args(["token", "--min-valid", "0s"])
        .output()
        .unwrap();
    assert!(tok.status.success(), "{}", text(&tok.stderr));
}

#[test]
fn imports_a_v1_key_login_with_no_token_request() {
    imports_with_no_token_request(KeyVersion::V1);
}

#[test]
fn imports_a_v2_key_login_with_no_token_request() {
    imports_with_no_token_request(KeyVersion::V2);
}

fn round_trip(version: KeyVersion) {
    let (t, sf) = setup(version, true);
    import(&t);
    let before = sf.read(USER);
    let old_rt = sf.token(USER, "refreshToken");
    let out = sfx(&t).args(["refresh"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let new_rt = t.refresh_token("prod");
    assert_ne!(new_rt, old_rt, "the fake rotated");
    // sf's file decrypts, with sf's key, to the new tokens.
    assert_eq!(sf.token(USER, "refreshToken"), new_rt);
    assert_eq!(sf.token(USER, "accessToken"), t.access_token("prod"));
    let after = sf.read(USER);
    for (k, v) in before.as_object().unwrap() {
        if k != "accessToken" && k != "refreshToken" {
            assert_eq!(&after[k], v, "{k} kept");
        }
    }
    let ivl = if version == KeyVersion::V1 { 12 } else { 24 };
    let (body, tag) = after["refreshToken"]
        .as_str()
        .unwrap()
        .split_once(':')
        .unwrap();
    assert_eq!((body.len(), tag.len()), (ivl + new_rt.len() * 2, 32));
    let raw = std::fs::read_to_string(sf.file(USER)).unwrap();
    assert!(
        raw.starts_with("{\n  \"") && !raw.ends_with('\n'),
        "JSON.stringify(…, null, 2)"
    );
    assert!(!PathBuf::from(format!("{}.lock", sf.file(USER).display())).exists());
    assert!(t.fake.is_active(&new_rt));
    assert_eq!(t.fake.replays(), 0);
}

#[test]
fn a_rotated_refresh_is_written_back_into_sfs_file_v1() {
    round_trip(KeyVersion::V1);
}

#[test]
fn a_rotated_refresh_is_written_back_into_sfs_file_v2() {
    round_trip(KeyVersion::V2);
}

#[test]
fn alternating_refreshes_under_rotation_keep_the_login_alive() {
    let (t, sf) = setup(KeyVersion::V1, true);
    import(&t);
    let url = t.fake.url();
    for round in 0..3 {
        let out = sfx(&t).args(["refresh"]).output().unwrap();
        assert!(out.status.success(), "round {round}: {}", text(&out.stderr));
        sf.refresh(&url, USER)
            .unwrap_or_else(|e| panic!("round {round}: sf's refresh failed: {e}"));
    }
    // sfx now reads sf's newer refresh token, not its own spent copy.
    let sf_rt = sf.token(USER, "refreshToken");
    assert_ne!(t.refresh_token("prod"), sf_rt);
    let out = sfx(&t).args(["refresh"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(t.fake.replays(), 0, "no spent refresh token was ever sent");
    assert!(t.fake.is_active(&sf.token(USER, "refreshToken")));
    assert_eq!(t.fake.count_grant("refresh_token"), 7);
}

#[test]
fn without_the_link_the_same_alternation_kills_the_login() {
    let (t, sf) = setup(KeyVersion::V1, true);
    // The old way: import sf's auth URL. Its verifying refresh rotates the token.
    let auth_url = format!(
        "force://{PUBLIC_CLIENT_ID}::{}@{}",
        sf.token(USER, "refreshToken"),
        t.fake.host()
    );
    let out = sfx(&t)
        .args(["login", "--auth-url", "-", "--alias", "prod", "--json"])
        .write_stdin(auth_url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(stdout_json(&out)["refresh_token_rotated"], true);
    assert!(
        text(&out.stderr).contains("now spent"),
        "{}",
        text(&out.stderr)
    );
    // sf's next refresh replays the spent token: Salesforce revokes the login.
    assert!(sf.refresh(&t.fake.url(), USER).is_err());
    assert_eq!(t.fake.replays(), 1);
    sfx(&t).args(["refresh"]).assert().code(4);
}

#[test]
fn sfx_waits_for_sfs_lock_then_proceeds() {
    let (t, sf) = setup(KeyVersion::V1, true);
    import(&t);
    let lock = PathBuf::from(format!("{}.lock", sf.file(USER).display()));
    std::fs::create_dir(&lock).unwrap();
    let mut child = t
        .std_sfx()
        .env("SF_USE_GENERIC_UNIX_KEYCHAIN", "true")
        .args(["refresh"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // While sf holds its lock (kept fresh), sfx sends nothing.
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(200));
        std::fs::File::open(&lock)
            .unwrap()
            .set_modified(SystemTime::now())
            .unwrap();
        assert!(child.try_wait().unwrap().is_none(), "sfx waits");
    }
    assert_eq!(t.token_requests(), 0, "no refresh while sf holds the lock");
    std::fs::remove_dir(&lock).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(t.token_requests(), 1);
    assert_eq!(sf.token(USER, "refreshToken"), t.refresh_token("prod"));
}

#[test]
fn a_stale_sf_lock_is_taken_over() {
    let (t, sf) = setup(KeyVersion::V2, true);
    import(&t);
    let lock = PathBuf::from(format!("{}.lock", sf.file(USER).display()));
    std::fs::create_dir(&lock).unwrap();
    std::fs::File::open(&lock)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(30))
        .unwrap();
    sfx(&t).args(["refresh"]).assert().success();
    assert!(!lock.exists());
    assert_eq!(sf.token(USER, "refreshToken"), t.refresh_token("prod"));
}

/// sf keeps its lock fresh past sfx's wait: the refresh gives up with exit 6
/// naming the lock, sends nothing and leaves sf's file alone. In process, on a
/// fake clock: the 15 s wait passes at once (`sfx_waits_for_sfs_lock_then_proceeds`
/// is the real-time test of the lock through the binary).
#[test]
fn an_sf_lock_kept_fresh_past_the_wait_fails_clearly_and_sends_nothing() {
    use sfx::clock::FakeClock;
    use sfx::store::OrgStore;
    let (t, sf) = setup(KeyVersion::V1, true);
    import(&t);
    let before = std::fs::read(sf.file(USER)).unwrap();
    let lock = PathBuf::from(format!("{}.lock", sf.file(USER).display()));
    // Fresh (just made) for the whole fake wait: real time barely moves.
    std::fs::create_dir(&lock).unwrap();
    let clock = std::sync::Arc::new(FakeClock::at(chrono::Utc::now()));
    let store = sfx::store::local::LocalStore::new(t.home()).with_clock(clock.clone());
    let http = sfx::salesforce::http::Http::with_clock(Duration::from_secs(5), 0, clock.clone());
    let org = OrgStore::read(&store, "prod")
        .unwrap()
        .expect("imported")
        .org;
    assert!(org.record.sf_link.is_some(), "linked to sf's file");
    let Err(err) = sfx::lifecycle::refresh::refresh_now(
        &store,
        &sfx::salesforce::Client { http: &http },
        &*clock,
        &org,
    ) else {
        panic!("refreshed while sf held its lock");
    };
    assert_eq!(err.exit(), sfx::exit::Exit::StoreUnavailable, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("has held the lock") && msg.contains("for more than 15 s"),
        "{msg}"
    );
    assert!(
        err.hint()
            .unwrap_or_default()
            .contains(&lock.display().to_string()),
        "{err:?}"
    );
    assert_eq!(clock.elapsed(), Duration::from_secs(15), "waited its bound");
    assert_eq!(t.token_requests(), 0);
    assert_eq!(std::fs::read(sf.file(USER)).unwrap(), before);
    assert!(lock.is_dir(), "sf's lock is sf's");
}

#[test]
fn a_damaged_or_foreign_sf_file_is_refused_and_nothing_is_written() {
    let (t, sf) = setup(KeyVersion::V1, false);
    t.fake.expect_no_requests();
    let other = Sf::without_key(&t.dir.path().join("elsewhere"), KeyVersion::V1);
    type Damage<'a> = Box<dyn Fn() + 'a>;
    let cases: Vec<(&str, Damage)> = vec![
        (
            "not JSON",
            Box::new(|| std::fs::write(sf.file(USER), b"{\"username\": ").unwrap()),
        ),
        (
            "a JSON array",
            Box::new(|| std::fs::write(sf.file(USER), b"[]").unwrap()),
        ),
        (
            "another key's secrets",
            Box::new(|| {
                let text = std::fs::read_to_string(sf.file(USER)).unwrap();
                let mut v: Value = serde_json::from_str(&text).unwrap();
                v["refreshToken"] = Value::String(other.encrypt("5Aep-other"));
                std::fs::write(sf.file(USER), v.to_string()).unwrap();
            }),
        ),
        (
            "another user's file",
            Box::new(|| {
                let text = std::fs::read_to_string(sf.file(USER)).unwrap();
                let mut v: Value = serde_json::from_str(&text).unwrap();
                v["username"] = Value::String("mallory@acme.com".into());
                std::fs::write(sf.file(USER), v.to_string()).unwrap();
            }),
        ),
        (
            "a key that is not sf's",
            Box::new(|| {
                std::fs::write(
                    sf.dir.join("key.json"),
                    b"{\"account\":\"local\",\"key\":\"nothex\",\"service\":\"sfdx\"}",
                )
                .unwrap()
            }),
        ),
    ];
    for (what, damage) in cases {
        let rt = t.fake.grant_refresh_token(PUBLIC_CLIENT_ID, USER);
        sf.write_key_json();
        sf.write_login(USER, &t.fake.url(), "at", &rt);
        damage();
        let before = std::fs::read(sf.file(USER)).unwrap();
        let out = sfx(&t)
            .args(["login", "--from-sf", "prod"])
            .output()
            .unwrap();
        // A key that cannot be sf's is "no key" (exit 4, as when it is missing);
        // a damaged or foreign file is exit 1.
        let want = if what == "a key that is not sf's" {
            4
        } else {
            1
        };
        assert_eq!(
            out.status.code(),
            Some(want),
            "{what}: {}",
            text(&out.stderr)
        );
        let err = text(&out.stderr);
        assert!(
            err.contains("sfx: error:") && !err.contains("panicked"),
            "{what}: {err}"
        );
        assert!(
            !t.home().join("orgs.json").exists(),
            "{what}: nothing stored"
        );
        assert_eq!(
            std::fs::read(sf.file(USER)).unwrap(),
            before,
            "{what}: sf's file untouched"
        );
        assert_eq!(t.fake.requests().len(), 0, "{what}: no request");
    }
}

#[test]
fn a_missing_key_or_a_loose_key_file_is_a_clear_error() {
    let (t, sf) = setup(KeyVersion::V1, false);
    t.fake.expect_no_requests();
    set_mode(&sf.dir.join("key.json"), 0o644);
    let out = sfx(&t)
        .args(["login", "--from-sf", "prod"])
        .output()
        .unwrap();
    assert!(
        text(&out.stderr).contains("mode 644"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_file(sf.dir.join("key.json")).unwrap();
    let out = sfx(&t)
        .args(["login", "--from-sf", "prod"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out.stderr).contains("encryption key is not in"),
        "{}",
        text(&out.stderr)
    );
    let out = sfx(&t)
        .args(["login", "--from-sf", "nobody"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(text(&out.stderr).contains("no login called `nobody`"));
    assert!(!t.home().join("orgs.json").exists());
}

#[test]
fn a_broken_link_under_rotation_refuses_to_send_a_possibly_spent_token() {
    let (t, sf) = setup(KeyVersion::V1, true);
    import(&t);
    sfx(&t).args(["refresh"]).assert().success();
    assert_eq!(t.metadata()["orgs"]["prod"]["rotates_refresh_token"], true);
    let n = t.token_requests();
    // sf logged out: its file is gone.
    std::fs::remove_file(sf.file(USER)).unwrap();
    let out = sfx(&t).args(["refresh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("is gone"));
    assert!(text(&out.stderr).contains("--from-sf"));
    assert_eq!(t.token_requests(), n, "nothing sent");
    // The key gone: the same.
    sf.write_login(USER, &t.fake.url(), "at", &t.refresh_token("prod"));
    std::fs::remove_file(sf.dir.join("key.json")).unwrap();
    let out = sfx(&t).args(["refresh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert_eq!(t.token_requests(), n, "nothing sent");
}

#[test]
fn a_broken_link_without_rotation_warns_and_refreshes_with_sfxs_own_token() {
    let (t, sf) = setup(KeyVersion::V1, false);
    import(&t);
    std::fs::remove_file(sf.file(USER)).unwrap();
    let out = sfx(&t).args(["refresh"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("warning: org prod is linked"));
    assert!(!sf.file(USER).exists(), "nothing re-created");
}

#[test]
fn token_auth_url_prints_the_current_refresh_token_and_warns_under_rotation() {
    let (t, sf) = setup(KeyVersion::V1, true);
    import(&t);
    let out = sfx(&t).args(["token", "--auth-url"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rt = sf.token(USER, "refreshToken");
    assert_eq!(
        text(&out.stdout).trim(),
        format!("force://{PUBLIC_CLIENT_ID}::{rt}@{}", t.fake.host())
    );
    assert!(
        !text(&out.stderr).contains("rotates"),
        "no rotation seen yet"
    );
    sfx(&t).args(["refresh"]).assert().success();
    // sf rotates it again: the URL carries sf's newest token, not sfx's spent copy.
    sf.refresh(&t.fake.url(), USER).unwrap();
    let out = sfx(&t)
        .args(["token", "--auth-url", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let url = stdout_json(&out)["auth_url"].as_str().unwrap().to_string();
    assert!(url.contains(&sf.token(USER, "refreshToken")));
    assert!(text(&out.stderr).contains("rotates refresh tokens"));
    assert_eq!(t.fake.replays(), 0);
}

/// The key in the real Secret Service, stored the way sf stores it
/// (`secret-tool store --label='salesforce.com' user local domain sfdx`).
#[test]
#[ignore = "needs a Secret Service: scripts/test.sh runs it"]
fn the_key_in_the_secret_service_is_found_as_sf_stores_it() {
    let addr = std::env::var("DBUS_SESSION_BUS_ADDRESS")
        .expect("run under .ci/with-keyring.sh (DBUS_SESSION_BUS_ADDRESS is not set)");
    let t = T::new();
    t.fake
        .update_client(PUBLIC_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    let sf = Sf::without_key(t.dir.path(), KeyVersion::V1);
    // Never touch a real sf key: this test stores and clears the one item sf uses.
    let existing = std::process::Command::new("secret-tool")
        .args(["lookup", "user", "local", "domain", "sfdx"])
        .env("DBUS_SESSION_BUS_ADDRESS", &addr)
        .output()
        .expect("secret-tool (libsecret-tools)");
    assert!(
        existing.stdout.is_empty(),
        "this Secret Service already holds sf's key (user=local domain=sfdx); run this test under .ci/with-keyring.sh, whose throw-away keyring has none"
    );
    let mut store = std::process::Command::new("secret-tool")
        .args([
            "store",
            "--label='salesforce.com'",
            "user",
            "local",
            "domain",
            "sfdx",
        ])
        .env("DBUS_SESSION_BUS_ADDRESS", &addr)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("secret-tool (libsecret-tools)");
    use std::io::Write;
    writeln!(store.stdin.take().unwrap(), "{}", sf.key).unwrap();
    assert!(store.wait().unwrap().success());
    let rt = t.fake.grant_refresh_token(PUBLIC_CLIENT_ID, USER);
    let at = t.fake.grant_access_token(PUBLIC_CLIENT_ID, USER);
    sf.write_login(USER, &t.fake.url(), &at, &rt);
    let run = |args: &[&str]| {
        t.sfx()
            .env("DBUS_SESSION_BUS_ADDRESS", &addr)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["login", "--from-sf", USER, "--alias", "prod"]);
    let cleanup = || {
        let _ = std::process::Command::new("secret-tool")
            .args(["clear", "user", "local", "domain", "sfdx"])
            .env("DBUS_SESSION_BUS_ADDRESS", &addr)
            .status();
    };
    if !out.status.success() {
        cleanup();
        panic!("{}", text(&out.stderr));
    }
    let out = run(&["refresh"]);
    cleanup();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(sf.token(USER, "refreshToken"), t.refresh_token("prod"));
}

/// The real `sf` reads what sfx wrote back: `sf org auth show-sfdx-auth-url`
/// decrypts sf's file (no network) and must show sfx's rotated refresh token.
/// sf cannot log in to the fake itself: `sf org login sfdx-url` always uses
/// https for the auth URL's host, and the fake speaks plain http.
#[test]
#[ignore = "needs the sf CLI: scripts/test.sh runs it when `sf` is on PATH"]
fn the_real_sf_reads_the_tokens_sfx_wrote_back() {
    let t = T::new();
    t.fake
        .update_client(PUBLIC_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    let sf = Sf::with_key_json(t.dir.path(), KeyVersion::V1);
    let rt = t.fake.grant_refresh_token(PUBLIC_CLIENT_ID, USER);
    let at = t.fake.grant_access_token(PUBLIC_CLIENT_ID, USER);
    sf.write_login(USER, &t.fake.url(), &at, &rt);
    sf.write_aliases(&[("prod", USER)]);
    import(&t);
    sfx(&t).args(["refresh"]).assert().success();
    let out = std::process::Command::new("sf")
        .args(["org", "auth", "show-sfdx-auth-url", "-o", "prod", "--json"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", t.dir.path())
        .env("SF_USE_GENERIC_UNIX_KEYCHAIN", "true")
        .env("SF_DISABLE_TELEMETRY", "true")
        .env("SF_AUTOUPDATE_DISABLE", "true")
        .output()
        .expect("sf on PATH");
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let v = stdout_json(&out);
    let url = v["result"]["sfdxAuthUrl"].as_str().unwrap();
    assert!(url.contains(&t.refresh_token("prod")), "{url}");
}

/// On a terminal, `--auth-url` needs a confirmation; where none can be asked
/// (SFX_NO_INPUT), it prints nothing and says how to pipe it instead.
#[cfg(unix)]
#[test]
fn token_auth_url_on_a_terminal_without_a_confirmation_prints_nothing() {
    if !std::path::Path::new("/usr/bin/script").exists() {
        panic!("util-linux `script` is needed to give sfx a terminal");
    }
    let (t, _sf) = setup(KeyVersion::V1, false);
    import(&t);
    let sfx_bin = env!("CARGO_BIN_EXE_sfx");
    // `script` runs the command with a pseudo-terminal as stdin and stdout.
    let mut c = t.std_sfx();
    c.env("SF_USE_GENERIC_UNIX_KEYCHAIN", "true");
    let envs: Vec<(String, String)> = c
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_str()?.to_string(), v?.to_str()?.to_string())))
        .collect();
    let out = std::process::Command::new("/usr/bin/script")
        .args([
            "-qec",
            &format!("{sfx_bin} token --auth-url -o prod"),
            "/dev/null",
        ])
        .env_clear()
        .envs(envs)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let all = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("only after a confirmation"), "{all}");
    assert!(!all.contains("force://"), "nothing printed: {all}");
}

/// sf rotated the token, then the app stopped rotating: sfx's refresh with sf's
/// token brings no new one, and sfx must keep sf's (not fall back to its spent copy).
#[test]
fn a_token_taken_from_sf_is_kept_when_the_refresh_brings_none() {
    let (t, sf) = setup(KeyVersion::V2, true);
    import(&t);
    sf.refresh(&t.fake.url(), USER).unwrap();
    t.fake
        .update_client(PUBLIC_CLIENT_ID, |c| c.rotate_refresh_tokens = false);
    for _ in 0..2 {
        let out = sfx(&t).args(["refresh"]).output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    assert_eq!(t.refresh_token("prod"), sf.token(USER, "refreshToken"));
    assert_eq!(t.fake.replays(), 0);
}

/// sf's choice of key store, followed: with sf's `secret-tool` present the key is
/// in the Secret Service (here unreachable: no D-Bus session, exit 6 with the way
/// out); without it, `key.json`.
#[cfg(unix)]
#[test]
fn the_key_store_is_chosen_as_sf_chooses_it() {
    let (t, sf) = setup(KeyVersion::V1, false);
    let tool = t.dir.path().join("secret-tool");
    std::fs::write(&tool, "#!/bin/sh\nexit 1\n").unwrap();
    set_mode(&tool, 0o755);
    let out = t
        .sfx()
        .env("SFDX_SECRET_TOOL_PATH", &tool)
        .args(["login", "--from-sf", "prod"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("Salesforce CLI's key cannot be read"), "{err}");
    assert!(err.contains("SF_USE_GENERIC_UNIX_KEYCHAIN=true"), "{err}");
    assert!(!t.home().join("orgs.json").exists());
    let out = t
        .sfx()
        .env("SFDX_SECRET_TOOL_PATH", t.dir.path().join("no-such-tool"))
        .args(["login", "--from-sf", "prod"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // key.json's key is what opened sf's file: sfx stored the tokens only it decrypts,
    assert_eq!(t.access_token("prod"), sf.token(USER, "accessToken"));
    assert_eq!(t.refresh_token("prod"), sf.token(USER, "refreshToken"));
    // and without key.json the same import has no key.
    std::fs::remove_file(sf.dir.join("key.json")).unwrap();
    let out = t
        .sfx()
        .env("SFDX_SECRET_TOOL_PATH", t.dir.path().join("no-such-tool"))
        .args(["login", "--from-sf", "prod"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("encryption key is not in"),
        "{}",
        text(&out.stderr)
    );
    // Importing checks the session (userinfo), never refreshes.
    t.fake.expect_hit("/services/oauth2/userinfo");
    t.fake.expect_no_hit("/services/oauth2/token");
}

#[cfg(unix)]
#[test]
fn a_fifo_in_sfs_directory_is_refused_not_waited_on() {
    let (t, sf) = setup(KeyVersion::V1, false);
    t.fake.expect_no_requests();
    let alias = sf.dir.join("alias.json");
    let _ = std::fs::remove_file(&alias);
    let made = std::process::Command::new("mkfifo")
        .arg(&alias)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    // sfx()'s own 60 s timeout would fail the test on a hang.
    let out = sfx(&t)
        .args(["login", "--from-sf", "prod"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("is not a regular file"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(t.fake.count("/services/oauth2/token"), 0);
}
