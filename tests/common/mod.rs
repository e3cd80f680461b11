//! Test harness: a fake Salesforce per test, a temporary SFX_HOME, and an `sfx`
//! command with a scrubbed environment (no inherited SFX_*/SF_*/proxy/D-Bus
//! variables, fixed TZ, the file credential store unless a test asks otherwise).

#![allow(dead_code)]

pub mod redis_cluster;
pub mod redis_server;

use std::path::{Path, PathBuf};

pub use fake_salesforce::{
    Client, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_USERNAME, FakeSalesforce, Fault,
};
use serde_json::Value;

pub struct T {
    pub fake: FakeSalesforce,
    pub dir: tempfile::TempDir,
}

/// The time zone every test runs in (a fixed, non-UTC offset in November: +01:00).
pub const TZ: &str = "Europe/Paris";

impl T {
    pub fn new() -> T {
        T {
            fake: FakeSalesforce::start(),
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// SFX_HOME (not created until sfx writes to it).
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("sfx-home")
    }

    /// `sfx` with a scrubbed environment and the file store.
    pub fn sfx(&self) -> assert_cmd::Command {
        let mut c = self.bare();
        c.env("SFX_CREDENTIAL_STORE", "file");
        c
    }

    /// `sfx` with a scrubbed environment and no store choice (the keychain by default).
    pub fn bare(&self) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::from_std(self.std_bare());
        c.timeout(std::time::Duration::from_secs(60));
        c
    }

    /// The same as [`T::sfx`], as a plain `std::process::Command` (for spawning many).
    pub fn std_sfx(&self) -> std::process::Command {
        let mut c = self.std_bare();
        c.env("SFX_CREDENTIAL_STORE", "file");
        c
    }

    fn std_bare(&self) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_sfx"));
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("SFX_HOME", self.home())
            .env("TZ", TZ)
            .env("LC_ALL", "C")
            .env("SFX_NO_INPUT", "1");
        c
    }

    /// The default client's SFDX auth URL for the default user (a fresh refresh token).
    pub fn auth_url(&self) -> String {
        self.fake.auth_url(DEFAULT_CLIENT_ID, DEFAULT_USERNAME)
    }

    /// Import the default org under `alias`; returns the stored access token.
    pub fn login(&self, alias: &str) -> String {
        self.sfx()
            .args(["login", "--auth-url", "-", "--alias", alias])
            .write_stdin(self.auth_url())
            .assert()
            .success();
        self.access_token(alias)
    }

    /// Import a fresh access token of the default client and user under `alias`
    /// (no refresh token, no client id); returns the token.
    pub fn login_access_token(&self, alias: &str) -> String {
        let at = self
            .fake
            .grant_access_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
        self.sfx()
            .args([
                "login",
                "--access-token",
                "-",
                "--instance-url",
                &self.fake.url(),
                "--alias",
                alias,
            ])
            .write_stdin(at.clone())
            .assert()
            .success();
        at
    }

    pub fn metadata(&self) -> Value {
        read_json(&self.home().join("orgs.json"))
    }

    pub fn secrets(&self) -> Value {
        read_json(&self.home().join("secrets.json"))
    }

    pub fn access_token(&self, alias: &str) -> String {
        self.secrets()[alias]["access-token"]
            .as_str()
            .expect("stored access token")
            .to_string()
    }

    pub fn refresh_token(&self, alias: &str) -> String {
        self.secrets()[alias]["refresh-token"]
            .as_str()
            .expect("stored refresh token")
            .to_string()
    }

    /// Change an org's metadata as a later moment would find it (e.g. an old issued_at).
    pub fn edit_org(&self, alias: &str, f: impl FnOnce(&mut Value)) {
        let path = self.home().join("orgs.json");
        let mut v = read_json(&path);
        f(&mut v["orgs"][alias]);
        std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }

    pub fn token_requests(&self) -> usize {
        self.fake.count("/services/oauth2/token")
    }
}

pub fn read_json(p: &Path) -> Value {
    let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    serde_json::from_slice(&bytes).expect("valid JSON")
}

pub fn stdout_json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[cfg(unix)]
pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}
