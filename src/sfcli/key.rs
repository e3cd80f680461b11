//! Where the Salesforce CLI keeps its encryption key, chosen as sf chooses
//! (sfdx-core `src/crypto/keyChain.ts`, `keyChainImpl.ts`):
//!
//! - `SF_USE_GENERIC_UNIX_KEYCHAIN` true (or Windows): `~/.sfdx/key.json`,
//!   `{"account":"local","key":"…","service":"sfdx"}`, which must be mode 0600 on Unix;
//! - Linux/BSD: the Secret Service item with attributes `user=local`, `domain=sfdx`
//!   (what `secret-tool lookup user local domain sfdx` finds) when sf's
//!   `secret-tool` is installed (`SFDX_SECRET_TOOL_PATH`, else `/usr/bin/secret-tool`);
//!   without it, `key.json`;
//! - macOS: the Keychain generic password of service `sfdx`, account `local`.
//!
//! Every keychain call is bounded like sfx's own ([`crate::store::keychain::TIMEOUT`]).

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use super::crypto::Key;
use crate::error::Error;
use crate::store::keychain::{TIMEOUT, Trouble};

pub const SERVICE: &str = "sfdx";
pub const ACCOUNT: &str = "local";

/// Where the key was found (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    KeyJson(PathBuf),
    SecretService,
    MacKeychain,
}

impl KeySource {
    pub fn describe(&self) -> String {
        match self {
            KeySource::KeyJson(p) => p.display().to_string(),
            KeySource::SecretService => {
                "the Secret Service item `user=local domain=sfdx`".to_string()
            }
            KeySource::MacKeychain => {
                "the macOS Keychain item of service `sfdx`, account `local`".to_string()
            }
        }
    }
}

/// kit's `env.getBoolean`: `true` or `1`, any case.
fn env_true(name: &str) -> bool {
    std::env::var(name)
        .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1"))
        .unwrap_or(false)
}

/// Which store sf itself would use on this machine now.
pub fn source(sf_dir: &Path) -> KeySource {
    let json = KeySource::KeyJson(sf_dir.join("key.json"));
    if cfg!(windows) || env_true("SF_USE_GENERIC_UNIX_KEYCHAIN") {
        return json;
    }
    if cfg!(target_os = "macos") {
        return KeySource::MacKeychain;
    }
    let tool = std::env::var_os("SFDX_SECRET_TOOL_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/secret-tool"));
    if is_executable(&tool) {
        KeySource::SecretService
    } else {
        json
    }
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

/// The hint for "sf's key cannot be found".
fn no_key_hint() -> String {
    "run sfx where sf itself works (the same user and desktop session, whose keychain holds sf's key); if sf keeps its key in ~/.sfdx/key.json here, set SF_USE_GENERIC_UNIX_KEYCHAIN=true for sfx as for sf".to_string()
}

/// Load sf's key from where sf keeps it.
pub fn load(sf_dir: &Path) -> Result<(Key, KeySource), Error> {
    let src = source(sf_dir);
    let text = match &src {
        KeySource::KeyJson(p) => read_key_json(p)?,
        KeySource::SecretService => secret_service()?,
        KeySource::MacKeychain => mac_keychain()?,
    };
    let Some(text) = text else {
        return Err(Error::relogin(
            format!(
                "the Salesforce CLI's encryption key is not in {} (where sf looks for it here), so sf's files cannot be read",
                src.describe()
            ),
            no_key_hint(),
        ));
    };
    let key = Key::parse(&text).map_err(|why| {
        Error::relogin(
            format!(
                "the Salesforce CLI's key in {} is not a key sf would write: {why}",
                src.describe()
            ),
            no_key_hint(),
        )
    })?;
    Ok((key, src))
}

/// `key.json`, checked as sf checks it (service, account, mode 0600).
fn read_key_json(p: &Path) -> Result<Option<String>, Error> {
    let bytes = match super::files::read_bounded(p) {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(None),
        Err(e) => return Err(e),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        if mode != 0o600 {
            return Err(Error::Other(format!(
                "{} has mode {mode:o}; sf refuses a key file that is not 0600, and so does sfx",
                p.display()
            )));
        }
    }
    let damaged = |why: &str| {
        Error::Other(format!(
            "{} is not sf's key file ({why}); sfx wrote nothing",
            p.display()
        ))
    };
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| damaged("it is not JSON"))?;
    if v.get("service").and_then(|s| s.as_str()) != Some(SERVICE)
        || v.get("account").and_then(|s| s.as_str()) != Some(ACCOUNT)
    {
        return Err(damaged(
            "its service and account are not `sfdx` and `local`",
        ));
    }
    Ok(v.get("key").and_then(|k| k.as_str()).map(str::to_string))
}

/// Real time, on purpose: the bound is on a real OS keychain call.
fn bounded<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Trouble> + Send + 'static,
) -> Result<T, Error> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(r) => r.map_err(sf_trouble),
        Err(_) => Err(sf_trouble(Trouble::NoAnswer)),
    }
}

fn sf_trouble(t: Trouble) -> Error {
    Error::StoreUnavailable {
        message: format!(
            "the OS keychain that holds the Salesforce CLI's key cannot be read: {}",
            t.sentence()
        ),
        hint: Some("run sfx where sf itself works (the same desktop session), or, if sf uses ~/.sfdx/key.json here, set SF_USE_GENERIC_UNIX_KEYCHAIN=true".into()),
        source: None,
    }
}

#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
fn secret_service() -> Result<Option<String>, Error> {
    use dbus_secret_service::{EncryptionType, SecretService};
    use std::collections::HashMap;
    let classify = |e: dbus_secret_service::Error| match e {
        dbus_secret_service::Error::Locked => Trouble::Locked,
        other => crate::store::keychain::classify_platform(&format!("{other:?}")),
    };
    let values = bounded(move || {
        let ss = SecretService::connect(EncryptionType::Dh).map_err(classify)?;
        let found = ss
            .search_items(HashMap::from([("user", ACCOUNT), ("domain", SERVICE)]))
            .map_err(classify)?;
        if found.unlocked.is_empty() && !found.locked.is_empty() {
            return Err(Trouble::Locked);
        }
        let mut values = Vec::new();
        for item in &found.unlocked {
            values.push(item.get_secret().map_err(classify)?);
        }
        Ok(values)
    })?;
    let mut texts: Vec<String> = values
        .into_iter()
        .filter_map(|v| String::from_utf8(v).ok())
        .map(|s| s.trim().to_string())
        .collect();
    texts.dedup();
    match texts.len() {
        0 => Ok(None),
        1 => Ok(texts.pop()),
        n => Err(Error::Other(format!(
            "{n} different Secret Service items match `user=local domain=sfdx`, so sfx cannot tell which key sf uses; remove the extra ones (`secret-tool search --all user local domain sfdx`)"
        ))),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd")))]
fn secret_service() -> Result<Option<String>, Error> {
    Ok(None)
}

#[cfg(target_os = "macos")]
fn mac_keychain() -> Result<Option<String>, Error> {
    bounded(|| {
        let cred = keyring::macos::MacCredential::new_with_target(None, SERVICE, ACCOUNT)
            .map_err(|e| Trouble::Other(e.to_string()))?;
        let entry = keyring::Entry::new_with_credential(Box::new(cred));
        match entry.get_password() {
            Ok(p) => Ok(Some(p)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(keyring::Error::NoStorageAccess(_)) => Err(Trouble::Locked),
            Err(e) => Err(Trouble::Other(e.to_string())),
        }
    })
}

#[cfg(not(target_os = "macos"))]
fn mac_keychain() -> Result<Option<String>, Error> {
    Ok(None)
}
