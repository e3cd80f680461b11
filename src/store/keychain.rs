//! The OS keychain backend, through the `keyring` crate (3.6).
//!
//! Layout, written down once here:
//! - service `sfx`, account `<alias>:<secret>` where `<secret>` is `access-token`,
//!   `refresh-token` or `client-secret` — one entry per secret per org (Windows
//!   caps one entry at 2,560 bytes and JWT access tokens can be long, so secrets
//!   are never packed together). An alias cannot contain `:`, so accounts never
//!   collide.
//! - Secret Service (Linux/BSD): attributes `service=sfx`, `username=<alias>:<secret>`,
//!   `target=default` (keyring's own), `application=sfx`; label
//!   `sfx: <secret> of Salesforce org <alias>`; stored in the default collection.
//!   `secret-tool search service sfx` lists them.
//! - macOS Keychain: a generic password with service `sfx` and account
//!   `<alias>:<secret>` in the login keychain (Keychain Access shows "sfx" with that account).
//! - Windows Credential Manager: a generic credential whose target name is
//!   `sfx:<alias>:<secret>` with each capital letter written `^` + its small letter
//!   (see [`windows_target`]), user name `<alias>:<secret>`, the label as comment.
//!   Windows compares target names without regard to case, and aliases `Prod` and
//!   `prod` are two orgs: their targets `sfx:^prod:…` and `sfx:prod:…` stay two entries.
//!
//! The value is stored as UTF-8 bytes (`set_secret`), not keyring's `set_password`,
//! which on Windows stores UTF-16 and so halves the room to 1,280 characters.
//!
//! The platform credential is built explicitly per OS: keyring's in-memory mock,
//! which loses every secret at exit, cannot be reached (a unit test pins the
//! type). Every call runs on a helper thread bounded by [`TIMEOUT`] (3 s), so a
//! locked keychain waiting for a prompt, or a hung provider, gives exit 6 rather
//! than a hang. "No entry" is `Ok(None)`, never an error.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::secret::Secret;
use crate::store::{SecretKind, SecretStore};

pub const SERVICE: &str = "sfx";
/// The bound on every keychain call.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// The largest value one entry holds on this platform, in bytes (Windows:
/// `CRED_MAX_CREDENTIAL_BLOB_SIZE`); `None` where the store has no small limit.
#[cfg(target_os = "windows")]
const MAX_ENTRY_BYTES: Option<usize> = Some(2560);
#[cfg(not(target_os = "windows"))]
const MAX_ENTRY_BYTES: Option<usize> = None;

/// The account of the entry `sfx doctor` (and every login, first) writes, reads
/// and deletes to test the keychain (`probe-…` is no secret kind, so it never
/// collides with an org's entry); the process id follows, so two logins at once
/// never read each other's test value.
const PROBE_ACCOUNT: &str = "sfx-doctor:probe";

fn probe_account() -> String {
    format!("{PROBE_ACCOUNT}-{}", std::process::id())
}

pub struct Keychain;

/// The entry name of one secret of one org.
pub fn account(alias: &str, kind: SecretKind) -> String {
    format!("{alias}:{}", kind.as_str())
}

/// What keychain viewers show as the entry's name (Secret Service label,
/// Windows comment).
pub fn label(account: &str) -> String {
    if account.starts_with(PROBE_ACCOUNT) {
        return "sfx: test entry written by `sfx doctor` (safe to delete)".to_string();
    }
    match account.rsplit_once(':') {
        Some((alias, kind)) => format!("sfx: {} of Salesforce org {alias}", kind.replace('-', " ")),
        None => format!("sfx: {account}"),
    }
}

/// The OS's keychain, in words.
pub fn backend_name() -> &'static str {
    if cfg!(target_os = "macos") {
        "macOS Keychain (login keychain)"
    } else if cfg!(target_os = "windows") {
        "Windows Credential Manager"
    } else if cfg!(any(
        target_os = "linux",
        target_os = "freebsd",
        target_os = "openbsd"
    )) {
        "Secret Service over D-Bus (GNOME Keyring, KWallet, KeePassXC, …)"
    } else {
        "none (no keychain backend for this operating system)"
    }
}

/// The OS's keychain, as a stable key for JSON.
pub fn backend_id() -> &'static str {
    if cfg!(target_os = "macos") {
        "macos-keychain"
    } else if cfg!(target_os = "windows") {
        "windows-credential-manager"
    } else if cfg!(any(
        target_os = "linux",
        target_os = "freebsd",
        target_os = "openbsd"
    )) {
        "secret-service"
    } else {
        "none"
    }
}

#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
fn entry(account: &str) -> keyring::Result<keyring::Entry> {
    let mut cred = keyring::secret_service::SsCredential::new_with_target(None, SERVICE, account)?;
    // Not search attributes: only used when the item is created.
    cred.label = label(account);
    cred.attributes
        .insert("application".to_string(), SERVICE.to_string());
    Ok(keyring::Entry::new_with_credential(Box::new(cred)))
}

#[cfg(target_os = "macos")]
fn entry(account: &str) -> keyring::Result<keyring::Entry> {
    let cred = keyring::macos::MacCredential::new_with_target(None, SERVICE, account)?;
    Ok(keyring::Entry::new_with_credential(Box::new(cred)))
}

/// The Windows credential target name of an entry: `sfx:<account>`, written so
/// that two different accounts never compare equal when case is ignored, as
/// Windows Credential Manager compares target names. A capital ASCII letter
/// becomes `^` and its small letter, `^` becomes `^^`, and any other character
/// that is not ASCII becomes `^{hex}`; what remains has no capital letters, so
/// folding case changes nothing and distinct accounts keep distinct targets.
/// Aliases are ASCII letters, digits and `. _ - @ +`, so an all-small alias keeps
/// its plain, readable target.
#[cfg_attr(not(target_os = "windows"), allow(dead_code))]
pub fn windows_target(account: &str) -> String {
    let mut target = format!("{SERVICE}:");
    for c in account.chars() {
        match c {
            'A'..='Z' => {
                target.push('^');
                target.push(c.to_ascii_lowercase());
            }
            '^' => target.push_str("^^"),
            c if !c.is_ascii() => target.push_str(&format!("^{{{:x}}}", c as u32)),
            c => target.push(c),
        }
    }
    target
}

#[cfg(target_os = "windows")]
fn entry(account: &str) -> keyring::Result<keyring::Entry> {
    let target = windows_target(account);
    let mut cred =
        keyring::windows::WinCredential::new_with_target(Some(&target), SERVICE, account)?;
    cred.comment = label(account);
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

/// Why the keychain cannot be used, by what the user can do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    /// Linux: no D-Bus session bus to talk to.
    NoSession,
    /// Linux: a bus, but nobody provides org.freedesktop.secrets.
    NoProvider,
    /// The keychain is locked (or has no default keyring) and cannot be unlocked here.
    Locked,
    /// It did not answer within [`TIMEOUT`].
    NoAnswer,
    /// Anything else, with the platform's words.
    Other(String),
}

impl Trouble {
    /// Stable key for JSON (`sfx doctor --json`).
    pub fn code(&self) -> &'static str {
        match self {
            Trouble::NoSession => "no_dbus_session",
            Trouble::NoProvider => "no_provider",
            Trouble::Locked => "locked",
            Trouble::NoAnswer => "no_answer",
            Trouble::Other(_) => "error",
        }
    }

    /// One sentence (no final stop) saying what is wrong.
    pub fn sentence(&self) -> String {
        match self {
            Trouble::NoSession => match std::env::var("DBUS_SESSION_BUS_ADDRESS") {
                Ok(a) if !a.trim().is_empty() => format!(
                    "there is no D-Bus session: the session bus at {} does not answer",
                    crate::text::sanitize(&a, 100)
                ),
                _ => "there is no D-Bus session (DBUS_SESSION_BUS_ADDRESS is not set; typical over SSH, in containers and in CI)".to_string(),
            },
            Trouble::NoProvider => "the D-Bus session has no Secret Service provider (no gnome-keyring, KWallet or KeePassXC is running)".to_string(),
            Trouble::Locked => "it is locked (or has no default keyring) and cannot be unlocked here, where no password prompt can appear".to_string(),
            Trouble::NoAnswer => format!(
                "it did not answer within {} s (locked and waiting for a password prompt, or hung)",
                TIMEOUT.as_secs()
            ),
            Trouble::Other(text) => text.clone(),
        }
    }

    pub fn into_error(self) -> Error {
        unavailable(&self.sentence())
    }

    /// [`Trouble::into_error`] with keyring's own error kept as the cause.
    fn into_error_from(self, source: keyring::Error) -> Error {
        match self.into_error() {
            Error::StoreUnavailable { message, hint, .. } => Error::StoreUnavailable {
                message,
                hint,
                source: Some(Box::new(source)),
            },
            other => other,
        }
    }
}

/// The hint every "keychain unavailable" error carries: both ways out.
pub const WAYS_OUT: &str = "log in with `--insecure-storage` (or set SFX_CREDENTIAL_STORE=file) to keep secrets in a 0600 file instead, or give the credentials through the environment (SFX_AUTH_URL, SFX_REFRESH_TOKEN or SFX_ACCESS_TOKEN); `sfx doctor` shows what is wrong";

pub fn unavailable(cause: &str) -> Error {
    Error::StoreUnavailable {
        message: format!(
            "the OS keychain ({}) is not available: {cause}",
            short_name()
        ),
        hint: Some(WAYS_OUT.into()),
        source: None,
    }
}

/// The OS's keychain, in two words (for messages).
pub fn short_name() -> &'static str {
    match backend_id() {
        "secret-service" => "Secret Service",
        "macos-keychain" => "macOS Keychain",
        "windows-credential-manager" => "Windows Credential Manager",
        _ => "none",
    }
}

/// Classify a platform error by its text (D-Bus error names appear in the
/// `Debug` form: `D-Bus error: … (org.freedesktop.DBus.Error.ServiceUnknown)`).
pub fn classify_platform(debug: &str) -> Trouble {
    let has = |s: &str| debug.contains(s);
    if has("Error.NotSupported")
        || has("Error.FileNotFound")
        || has("Error.NoServer")
        || has("Error.BadAddress")
        || has("Error.Disconnected")
        || has("Error.NoNetwork")
        || has("autolaunch")
        || has("DBUS_SESSION_BUS_ADDRESS")
    {
        Trouble::NoSession
    } else if has("Error.ServiceUnknown") || has("Error.NameHasNoOwner") || has("Error.Spawn.") {
        Trouble::NoProvider
    } else if has("Secret.Error.IsLocked") || has("Secret.Error.NoSuchObject") {
        // A locked collection, or no default collection to write into.
        Trouble::Locked
    } else if has("Error.NoReply") || has("Error.Timeout") || has("Error.TimedOut") {
        Trouble::NoAnswer
    } else if has("Unavailable") {
        Trouble::NoProvider
    } else {
        Trouble::Other(crate::text::sanitize(debug, 200))
    }
}

/// A keyring error that means "the keychain cannot be used", as [`Trouble`].
fn trouble(e: &keyring::Error) -> Option<Trouble> {
    match e {
        keyring::Error::PlatformFailure(inner) => Some(classify_platform(&format!("{inner:?}"))),
        keyring::Error::NoStorageAccess(_) => Some(Trouble::Locked),
        _ => None,
    }
}

fn map_err(e: keyring::Error, account: &str) -> Error {
    if let Some(t) = trouble(&e) {
        return t.into_error_from(e);
    }
    match e {
        keyring::Error::BadEncoding(_) => Error::relogin(
            format!(
                "the keychain entry `{SERVICE}` / `{account}` does not hold text (was it changed by another program?)"
            ),
            "log in again to that org with `sfx login --alias …`; it replaces the entry",
        ),
        keyring::Error::Ambiguous(items) => Error::relogin(
            format!(
                "{} keychain entries are named `{SERVICE}` / `{account}`, so sfx cannot tell which is current",
                items.len()
            ),
            "log in again to that org with `sfx login --alias …`; it replaces them with one",
        ),
        keyring::Error::TooLong(what, limit) => Error::StoreUnavailable {
            message: format!(
                "the OS keychain cannot hold `{account}`: its {what} is longer than the limit of {limit}"
            ),
            hint: Some(WAYS_OUT.into()),
            source: None,
        },
        other => Error::Failed {
            message: format!(
                "the OS keychain failed: {}",
                crate::text::sanitize(&other.to_string(), 200)
            ),
            source: Box::new(other),
        },
    }
}

/// Run one keychain call on a helper thread, bounded by [`TIMEOUT`]. A call that
/// does not answer in time is left behind; the process does not wait for it.
/// Real time, on purpose: the bound is on a real OS call (a keychain that
/// hangs), which no fake clock can hurry.
fn bounded<T: Send + 'static>(
    f: impl FnOnce() -> keyring::Result<T> + Send + 'static,
) -> Result<keyring::Result<T>, Trouble> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(TIMEOUT).map_err(|_| Trouble::NoAnswer)
}

fn call<T: Send + 'static>(
    account: &str,
    f: impl FnOnce(keyring::Entry) -> keyring::Result<T> + Send + 'static,
) -> Result<T, Error> {
    let acct = account.to_string();
    match bounded(move || f(entry(&acct)?)) {
        Ok(r) => r.map_err(|e| map_err(e, account)),
        Err(t) => Err(t.into_error()),
    }
}

/// Secret Service only: several items can match one account (written by another
/// tool, or an old version); writing and deleting then clear all of them first.
#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
fn clear_duplicates(entry: &keyring::Entry) -> keyring::Result<()> {
    match entry
        .get_credential()
        .downcast_ref::<keyring::secret_service::SsCredential>()
    {
        Some(c) => c.delete_all_passwords(),
        None => Ok(()),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd")))]
fn clear_duplicates(_entry: &keyring::Entry) -> keyring::Result<()> {
    Ok(())
}

fn set(entry: &keyring::Entry, value: &[u8]) -> keyring::Result<()> {
    match entry.set_secret(value) {
        Err(keyring::Error::Ambiguous(_)) => {
            clear_duplicates(entry)?;
            entry.set_secret(value)
        }
        other => other,
    }
}

fn delete(entry: &keyring::Entry) -> keyring::Result<()> {
    match entry.delete_credential() {
        Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
        Err(keyring::Error::Ambiguous(_)) => clear_duplicates(entry),
        Err(e) => Err(e),
    }
}

/// Refuse, before any call, a value the platform cannot hold in one entry.
fn check_size(account: &str, len: usize, limit: Option<usize>) -> Result<(), Error> {
    match limit {
        Some(max) if len > max => Err(Error::StoreUnavailable {
            message: format!(
                "the secret `{account}` is {len} bytes, more than the {max} bytes one {} entry holds",
                short_name()
            ),
            hint: Some(WAYS_OUT.into()),
            source: None,
        }),
        _ => Ok(()),
    }
}

impl SecretStore for Keychain {
    fn get(&self, alias: &str, kind: SecretKind) -> Result<Option<Secret>, Error> {
        let acct = account(alias, kind);
        let bytes = call(&acct, |e| match e.get_secret() {
            Ok(v) => Ok(Some(v)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(e),
        })?;
        match bytes.map(String::from_utf8).transpose() {
            Ok(v) => Ok(v.map(Secret::new)),
            Err(e) => Err(map_err(keyring::Error::BadEncoding(e.into_bytes()), &acct)),
        }
    }

    fn put(&self, alias: &str, changes: &[(SecretKind, Option<&Secret>)]) -> Result<(), Error> {
        for (kind, value) in changes {
            let acct = account(alias, *kind);
            if let Some(v) = value {
                check_size(&acct, v.expose().len(), MAX_ENTRY_BYTES)?;
            }
        }
        for (kind, value) in changes {
            let acct = account(alias, *kind);
            match value {
                Some(v) => {
                    let v = v.expose().as_bytes().to_vec();
                    call(&acct, move |e| set(&e, &v))?;
                }
                None => call(&acct, |e| delete(&e))?,
            }
        }
        Ok(())
    }
}

/// What `sfx doctor` learned about the keychain.
#[derive(Debug, Clone)]
pub struct Probe {
    pub result: Result<(), Trouble>,
    pub elapsed: Duration,
}

/// Write, read back and delete a test entry, all within [`TIMEOUT`]: the only
/// honest test that the keychain works (a locked keychain still answers
/// "no such entry" to a plain read).
pub fn probe() -> Probe {
    // Real time, on purpose: doctor shows how long the real OS calls took.
    let start = Instant::now();
    let value: Vec<u8> = format!("sfx-doctor-{}", std::process::id()).into_bytes();
    let result = match bounded(move || {
        let e = entry(&probe_account())?;
        set(&e, &value)?;
        let back = e.get_secret();
        delete(&e)?;
        match back {
            Ok(b) if b == value => Ok(Ok(())),
            Ok(_) => Ok(Err(Trouble::Other(
                "it gave back a different value than was written".into(),
            ))),
            Err(e) => Err(e),
        }
    }) {
        Ok(Ok(inner)) => inner,
        Ok(Err(e)) => Err(trouble(&e)
            .unwrap_or_else(|| Trouble::Other(crate::text::sanitize(&e.to_string(), 200)))),
        Err(t) => Err(t),
    };
    Probe {
        result,
        elapsed: start.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The credential is the platform's own, never keyring's in-memory mock
    /// (which would "work" and lose every secret at exit).
    #[test]
    fn entries_use_the_platform_credential_not_the_mock() {
        let e = entry("prod:access-token").expect("entry");
        let any = e.get_credential();
        assert!(
            any.downcast_ref::<keyring::mock::MockCredential>()
                .is_none()
        );
        #[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
        {
            let c = any
                .downcast_ref::<keyring::secret_service::SsCredential>()
                .expect("a Secret Service credential");
            assert_eq!(c.attributes["service"], "sfx");
            assert_eq!(c.attributes["username"], "prod:access-token");
            assert_eq!(c.attributes["target"], "default");
            assert_eq!(c.attributes["application"], "sfx");
            assert_eq!(c.label, "sfx: access token of Salesforce org prod");
        }
        #[cfg(target_os = "macos")]
        {
            let c = any
                .downcast_ref::<keyring::macos::MacCredential>()
                .expect("a macOS Keychain credential");
            assert_eq!(c.service, "sfx");
            assert_eq!(c.account, "prod:access-token");
        }
        #[cfg(target_os = "windows")]
        {
            let c = any
                .downcast_ref::<keyring::windows::WinCredential>()
                .expect("a Windows credential");
            assert_eq!(c.target_name, "sfx:prod:access-token");
            assert_eq!(c.username, "prod:access-token");
            let upper = entry("Prod:access-token").expect("entry");
            let c = upper
                .get_credential()
                .downcast_ref::<keyring::windows::WinCredential>()
                .expect("a Windows credential");
            assert_eq!(c.target_name, "sfx:^prod:access-token");
            assert_eq!(c.username, "Prod:access-token");
        }
    }

    /// Windows Credential Manager ignores case in target names: aliases that
    /// differ only in case must still name different entries (and an all-small
    /// alias keeps its readable target).
    #[test]
    fn windows_targets_stay_distinct_when_case_is_ignored() {
        assert_eq!(
            windows_target(&account("prod", SecretKind::AccessToken)),
            "sfx:prod:access-token"
        );
        assert_eq!(
            windows_target(&account("Prod", SecretKind::AccessToken)),
            "sfx:^prod:access-token"
        );
        let aliases = [
            "prod",
            "Prod",
            "PROD",
            "pRoD",
            "p^rod",
            "^prod",
            "^Prod",
            "dev@Acme.com",
            "dev@acme.com",
            "a.B_c-D+e",
            "A.b_C-d+E",
            "ß",
            "SS",
            "ss",
            "K",
            "k",
            "\u{212a}",
        ];
        let mut folded = std::collections::HashMap::new();
        for alias in aliases {
            for kind in [
                SecretKind::AccessToken,
                SecretKind::RefreshToken,
                SecretKind::ClientSecret,
            ] {
                let account = account(alias, kind);
                let target = windows_target(&account);
                assert!(target.is_ascii(), "{target}");
                assert!(!target.chars().any(|c| c.is_ascii_uppercase()), "{target}");
                // Windows folds to upper case; lower-case folding must agree.
                for key in [target.to_uppercase(), target.to_lowercase()] {
                    if let Some(other) = folded.insert(key.clone(), account.clone()) {
                        assert_eq!(other, account, "{other} and {account} share {key}");
                    }
                }
            }
        }
        assert_eq!(windows_target("sfx-doctor:probe"), "sfx:sfx-doctor:probe");
    }

    #[test]
    fn accounts_and_labels_name_the_org_and_the_secret() {
        assert_eq!(
            account("prod", SecretKind::RefreshToken),
            "prod:refresh-token"
        );
        assert_eq!(
            label(&account("dev@acme.com", SecretKind::ClientSecret)),
            "sfx: client secret of Salesforce org dev@acme.com"
        );
        assert!(label(PROBE_ACCOUNT).contains("sfx doctor"));
    }

    #[test]
    fn dbus_failures_are_told_apart() {
        let cases = [
            (
                "Dbus(D-Bus error: Unable to autolaunch a dbus-daemon without a $DISPLAY for X11 (org.freedesktop.DBus.Error.NotSupported))",
                "no_dbus_session",
            ),
            (
                "Dbus(D-Bus error: Failed to connect to socket /nowhere: No such file or directory (org.freedesktop.DBus.Error.FileNotFound))",
                "no_dbus_session",
            ),
            (
                "Dbus(D-Bus error: The name org.freedesktop.secrets was not provided by any .service files (org.freedesktop.DBus.Error.ServiceUnknown))",
                "no_provider",
            ),
            (
                "Dbus(D-Bus error: Did not receive a reply (org.freedesktop.DBus.Error.NoReply))",
                "no_answer",
            ),
            (
                "Dbus(D-Bus error: Cannot create an item in a locked collection (org.freedesktop.Secret.Error.IsLocked))",
                "locked",
            ),
            ("Crypto(something odd)", "error"),
        ];
        for (text, code) in cases {
            assert_eq!(classify_platform(text).code(), code, "{text}");
        }
    }

    #[test]
    fn a_secret_too_big_for_one_entry_is_refused_with_the_ways_out() {
        assert!(check_size("a:access-token", 2560, Some(2560)).is_ok());
        let err = check_size("a:access-token", 2561, Some(2560)).unwrap_err();
        assert_eq!(err.exit(), crate::exit::Exit::StoreUnavailable);
        assert!(err.to_string().contains("2561 bytes"));
        assert!(err.hint().unwrap().contains("--insecure-storage"));
        assert!(check_size("a:access-token", 1 << 20, None).is_ok());
    }
}
