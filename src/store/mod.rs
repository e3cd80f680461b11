//! Where orgs live: the metadata file plus one secrets backend per org.
//!
//! - [`metadata`]: `orgs.json`, non-secret, read without touching any keychain;
//! - [`keychain`]: the OS keychain (default);
//! - [`file`](mod@file): `secrets.json`, `0600`, for `--insecure-storage`;
//! - the environment (`SFX_AUTH_URL`, …): handled in `context.rs`, writes nothing;
//! - [`lock`]: cross-process locks; [`atomic`]: crash-safe writes;
//! - [`journal`]: the in-flight marker of a rotating refresh.

pub mod atomic;
pub mod file;
pub mod journal;
pub mod keychain;
pub mod lock;
pub mod metadata;
pub mod shared;

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::secret::Secret;
use metadata::{Metadata, StoreKind};

/// The secrets kept per org.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    AccessToken,
    RefreshToken,
    ClientSecret,
}

impl SecretKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::AccessToken => "access-token",
            SecretKind::RefreshToken => "refresh-token",
            SecretKind::ClientSecret => "client-secret",
        }
    }

    pub const ALL: [SecretKind; 3] = [
        SecretKind::RefreshToken,
        SecretKind::AccessToken,
        SecretKind::ClientSecret,
    ];
}

/// A secrets backend. "Nothing stored" is `Ok(None)`; "cannot use the store" is
/// `Err(Error::StoreUnavailable)`.
pub trait SecretStore {
    fn get(&self, alias: &str, kind: SecretKind) -> Result<Option<Secret>, Error>;
    /// Apply changes in the order given (`None` deletes).
    fn put(&self, alias: &str, changes: &[(SecretKind, Option<&Secret>)]) -> Result<(), Error>;
}

/// The sfx home: `$SFX_HOME`, else `~/.config/sfx` (XDG-style on every Unix,
/// like gh; `%APPDATA%\sfx` on Windows).
pub fn default_home() -> Result<PathBuf, Error> {
    if let Some(h) = std::env::var_os("SFX_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(h));
    }
    use etcetera::BaseStrategy;
    let base = etcetera::choose_base_strategy().map_err(|e| {
        Error::Other(format!(
            "cannot find the home directory ({e}); set SFX_HOME"
        ))
    })?;
    Ok(base.config_dir().join("sfx"))
}

/// Create `dir` (mode 0700 when sfx creates it).
pub fn ensure_private_dir(dir: &Path) -> Result<(), Error> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
        .map_err(|e| Error::Other(format!("cannot create {}: {e}", dir.display())))
}

/// The on-disk store under the sfx home.
pub struct Store {
    pub home: PathBuf,
    file: file::FileStore,
    /// How long to wait for another process's refresh of the same org
    /// (set from `--timeout` by the context: see [`refresh_lock_wait`]).
    pub refresh_lock_wait: std::time::Duration,
}

/// The longest a refresh can legitimately hold its org's lock: three attempts of
/// `timeout`, back-off and `Retry-After` waits (at most 2 x 10 s), keychain calls
/// (3 s each) and the writes. Waiting longer means the holder is stuck.
pub fn refresh_lock_wait(timeout: std::time::Duration) -> std::time::Duration {
    timeout.saturating_mul(3) + std::time::Duration::from_secs(30)
}

impl Store {
    pub fn new(home: PathBuf) -> Store {
        let file = file::FileStore::new(home.join(file::FILE_NAME));
        Store {
            home,
            file,
            refresh_lock_wait: refresh_lock_wait(std::time::Duration::from_secs(30)),
        }
    }

    /// Size the wait for another process's refresh from the per-request timeout.
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Store {
        self.refresh_lock_wait = refresh_lock_wait(timeout);
        self
    }

    pub fn metadata_path(&self) -> PathBuf {
        self.home.join(metadata::FILE_NAME)
    }

    /// Read the metadata (no lock, no keychain).
    pub fn read(&self) -> Result<Metadata, Error> {
        Metadata::read(&self.metadata_path())
    }

    /// Read-modify-write the metadata under `orgs.lock`.
    pub fn update<T>(&self, f: impl FnOnce(&mut Metadata) -> Result<T, Error>) -> Result<T, Error> {
        ensure_private_dir(&self.home)?;
        let _guard = lock::acquire(&self.home, "orgs", lock::SHORT_WAIT, "the metadata lock")?;
        let mut meta = self.read()?;
        let out = f(&mut meta)?;
        meta.version = 1;
        atomic::write(&self.metadata_path(), &meta.to_bytes()).map_err(|e| {
            Error::Other(format!(
                "cannot write {}: {e}",
                self.metadata_path().display()
            ))
        })?;
        Ok(out)
    }

    /// The secrets backend of one kind.
    pub fn backend(&self, kind: StoreKind) -> &dyn SecretStore {
        match kind {
            StoreKind::Keychain => &keychain::Keychain,
            StoreKind::File | StoreKind::Env => &self.file,
        }
    }

    /// The in-flight journal of an org's rotating refreshes (see [`journal`]).
    pub fn refresh_journal(&self, alias: &str) -> journal::Journal {
        let lock = lock::path_for(&self.home, &format!("org-{alias}"));
        journal::Journal {
            path: lock.with_extension("refreshing"),
        }
    }

    /// Hold the per-org refresh lock (`locks/org-<alias>.lock` under this home).
    pub fn org_lock(&self, alias: &str) -> Result<lock::Lock, Error> {
        ensure_private_dir(&self.home)?;
        lock::acquire(
            &self.home,
            &format!("org-{alias}"),
            self.refresh_lock_wait,
            &format!("the refresh lock of org {alias}"),
        )
    }
}
