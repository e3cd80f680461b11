//! The insecure file backend (`--insecure-storage`, `SFX_CREDENTIAL_STORE=file`):
//! `secrets.json` beside the metadata, mode `0600`, written atomically, for hosts
//! with no keychain. Every write says so on stderr.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use crate::error::Error;
use crate::secret::Secret;
use crate::store::{SecretKind, SecretStore, atomic};

pub const FILE_NAME: &str = "secrets.json";

pub struct FileStore {
    pub path: PathBuf,
    /// Print the notice on stderr when writing.
    pub notice: bool,
}

type Doc = BTreeMap<String, BTreeMap<String, Secret>>;

impl FileStore {
    fn read(&self) -> Result<Doc, Error> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                Error::Other(format!(
                    "the secrets file {} is damaged ({e}); move it away and log in again",
                    self.path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Doc::new()),
            Err(e) => Err(Error::StoreUnavailable {
                message: format!("cannot read the secrets file {}: {e}", self.path.display()),
                hint: None,
            }),
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
        if self.notice && changes.iter().any(|(_, v)| v.is_some()) {
            let _ = writeln!(
                std::io::stderr(),
                "sfx: note: storing secrets unencrypted in {} (insecure storage, mode 0600)",
                self.path.display()
            );
        }
        let bytes = serde_json::to_vec_pretty(&doc).map_err(|e| Error::Other(e.to_string()))?;
        atomic::write(&self.path, &bytes).map_err(|e| Error::StoreUnavailable {
            message: format!("cannot write the secrets file {}: {e}", self.path.display()),
            hint: None,
        })
    }
}
