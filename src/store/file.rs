//! The insecure file backend (`--insecure-storage`, `SFX_CREDENTIAL_STORE=file`):
//! `secrets.json` beside the metadata, mode `0600`, written atomically, for hosts
//! with no keychain. Every write says so on stderr.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::error::Error;
use crate::secret::Secret;
use crate::store::{SecretKind, SecretStore, atomic};

pub const FILE_NAME: &str = "secrets.json";

pub struct FileStore {
    pub path: PathBuf,
    /// The parsed file and the identity of the version it came from: `expires
    /// --all` over many orgs reads it once, yet a write by another process (a new
    /// file, renamed into place) is always seen.
    cache: Mutex<Option<(Stamp, Doc)>>,
}

type Doc = BTreeMap<String, BTreeMap<String, Secret>>;

/// Which version of the file: inode, modification time and size.
type Stamp = (u64, std::time::SystemTime, u64);

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let ino = 0;
    (
        ino,
        meta.modified().unwrap_or(std::time::UNIX_EPOCH),
        meta.len(),
    )
}

impl FileStore {
    pub fn new(path: PathBuf) -> FileStore {
        FileStore {
            path,
            cache: Mutex::new(None),
        }
    }

    fn read(&self) -> Result<Doc, Error> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Doc::new()),
            Err(e) => return Err(self.unreadable(e)),
        };
        let now = stamp(&meta);
        if let Ok(cache) = self.cache.lock()
            && let Some((at, doc)) = cache.as_ref()
            && *at == now
        {
            return Ok(doc.clone());
        }
        let doc = self.read_file()?;
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some((now, doc.clone()));
        }
        Ok(doc)
    }

    fn unreadable(&self, e: std::io::Error) -> Error {
        Error::StoreUnavailable {
            message: format!("cannot read the secrets file {}: {e}", self.path.display()),
            hint: None,
        }
    }

    fn read_file(&self) -> Result<Doc, Error> {
        match crate::limits::read_capped(&self.path, crate::limits::STORE_FILE_MAX) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                Error::Other(format!(
                    "the secrets file {} is damaged ({e}); move it away and log in again",
                    self.path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Doc::new()),
            Err(e) => Err(self.unreadable(e)),
        }
    }
}

impl SecretStore for FileStore {
    fn get(&self, alias: &str, kind: SecretKind) -> Result<Option<Secret>, Error> {
        Ok(self
            .read()?
            .get(alias)
            .and_then(|m| m.get(kind.as_str()))
            .cloned())
    }

    fn put(&self, alias: &str, changes: &[(SecretKind, Option<&Secret>)]) -> Result<(), Error> {
        // One file holds every org's secrets: without this lock, two processes
        // refreshing two orgs at once could each write back the other's old tokens.
        let dir = self
            .path
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        super::ensure_private_dir(&dir)?;
        let _guard = super::lock::acquire(
            &dir,
            "secrets",
            super::lock::SHORT_WAIT,
            "the secrets file lock",
        )?;
        let mut doc = self.read()?;
        let before = doc.clone();
        let entry = doc.entry(alias.to_string()).or_default();
        for (kind, value) in changes {
            match value {
                Some(v) => entry.insert(kind.as_str().to_string(), (*v).clone()),
                None => entry.remove(kind.as_str()),
            };
        }
        if entry.is_empty() {
            doc.remove(alias);
        }
        if doc == before && changes.iter().all(|(_, v)| v.is_none()) {
            // Deleting what is not there: no write, and no file created for it.
            return Ok(());
        }
        if changes.iter().any(|(_, v)| v.is_some()) {
            let _ = writeln!(
                std::io::stderr(),
                "sfx: note: storing secrets unencrypted in {} (insecure storage, mode 0600)",
                self.path.display()
            );
        }
        // The one place the file's secrets leave their wrapper.
        let exposed: BTreeMap<&str, BTreeMap<&str, &str>> = doc
            .iter()
            .map(|(alias, m)| {
                (
                    alias.as_str(),
                    m.iter().map(|(k, v)| (k.as_str(), v.expose())).collect(),
                )
            })
            .collect();
        let bytes = serde_json::to_vec_pretty(&exposed).map_err(|e| Error::Other(e.to_string()))?;
        atomic::write(&self.path, &bytes).map_err(|e| Error::StoreUnavailable {
            message: format!("cannot write the secrets file {}: {e}", self.path.display()),
            hint: None,
        })
    }
}
