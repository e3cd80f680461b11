//! The OS keychain backend, through the `keyring` crate.
//!
//! Layout: service `sfx`, account `<alias>:<secret>` where `<secret>` is
//! `access-token`, `refresh-token` or `client-secret` — one entry per secret per
//! org (Windows caps one entry at 2,560 bytes; JWT access tokens can be long), so
//! `secret-tool search service sfx` or Keychain Access shows which org and which
//! secret each entry is. The platform store is chosen explicitly per OS (macOS
//! Keychain, Windows Credential Manager, Secret Service on Linux/BSD): keyring's
//! in-memory mock, which loses every secret at exit, cannot be reached. Every
//! call runs with a 3 s timeout, so a locked or hung keychain gives exit 6.

use std::sync::mpsc;
use std::time::Duration;

use crate::error::Error;
use crate::secret::Secret;
use crate::store::{SecretKind, SecretStore};

pub const SERVICE: &str = "sfx";
const TIMEOUT: Duration = Duration::from_secs(3);

pub struct Keychain;

fn account(alias: &str, kind: SecretKind) -> String {
    format!("{alias}:{}", kind.as_str())
}

#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
fn entry(account: &str) -> keyring::Result<keyring::Entry> {
    let cred = keyring::secret_service::SsCredential::new_with_target(None, SERVICE, account)?;
    Ok(keyring::Entry::new_with_credential(Box::new(cred)))
}

#[cfg(target_os = "macos")]
fn entry(account: &str) -> keyring::Result<keyring::Entry> {
    let cred = keyring::macos::MacCredential::new_with_target(None, SERVICE, account)?;
    Ok(keyring::Entry::new_with_credential(Box::new(cred)))
}

#[cfg(target_os = "windows")]
fn entry(account: &str) -> keyring::Result<keyring::Entry> {
    let cred = keyring::windows::WinCredential::new_with_target(None, SERVICE, account)?;
    Ok(keyring::Entry::new_with_credential(Box::new(cred)))
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "macos",
    target_os = "windows"
)))]
fn entry(_account: &str) -> keyring::Result<keyring::Entry> {
    Err(keyring::Error::PlatformFailure(
        "sfx has no keychain backend for this operating system".into(),
    ))
}

pub fn unavailable(cause: &str) -> Error {
    Error::StoreUnavailable {
        message: format!("the OS keychain is not available: {cause}"),
        hint: Some(
            "log in with `--insecure-storage` (or set SFX_CREDENTIAL_STORE=file) to keep secrets in a 0600 file instead, or give the credentials through the environment (SFX_AUTH_URL, SFX_REFRESH_TOKEN or SFX_ACCESS_TOKEN)".into(),
        ),
    }
}

fn map_err(e: keyring::Error) -> Error {
    match e {
        keyring::Error::PlatformFailure(inner) => {
            let text = inner.to_string();
            let cause = if text.contains("autolaunch")
                || text.contains("DBUS_SESSION")
                || text.contains("No such file")
            {
                "there is no D-Bus session (typical on servers and in CI)".to_string()
            } else if text.contains("ServiceUnknown") || text.contains("org.freedesktop.secrets") {
                "no Secret Service provider (such as gnome-keyring) is running".to_string()
            } else {
                crate::salesforce::url::sanitize(&text, 200)
            };
            unavailable(&cause)
        }
        keyring::Error::NoStorageAccess(inner) => unavailable(&format!(
            "it is locked or refused access ({})",
            crate::salesforce::url::sanitize(&inner.to_string(), 160)
        )),
        other => Error::Other(format!(
            "the OS keychain failed: {}",
            crate::salesforce::url::sanitize(&other.to_string(), 200)
        )),
    }
}

/// Run one keychain call with the timeout.
fn bounded<T: Send + 'static>(
    f: impl FnOnce() -> keyring::Result<T> + Send + 'static,
) -> Result<T, Error> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(r) => r.map_err(map_err),
        Err(_) => Err(unavailable(
            "it did not answer within 3 s (is it locked, waiting for a password prompt?)",
        )),
    }
}

impl SecretStore for Keychain {
    fn get(&self, alias: &str, kind: SecretKind) -> Result<Option<Secret>, Error> {
        let acct = account(alias, kind);
        bounded(move || match entry(&acct)?.get_password() {
            Ok(v) => Ok(Some(Secret::new(v))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(e),
        })
    }

    fn put(&self, alias: &str, changes: &[(SecretKind, Option<&Secret>)]) -> Result<(), Error> {
        for (kind, value) in changes {
            let acct = account(alias, *kind);
            match value {
                Some(v) => {
                    let v = v.expose().to_string();
                    bounded(move || entry(&acct)?.set_password(&v))?;
                }
                None => bounded(move || match entry(&acct)?.delete_credential() {
                    Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
                    Err(e) => Err(e),
                })?,
            }
        }
        Ok(())
    }
}
