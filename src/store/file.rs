//! The insecure file backend (`--insecure-storage`, `SFX_CREDENTIAL_STORE=file`):
//! `secrets.json` beside the metadata, mode `0600`, written atomically, for hosts
//! with no keychain. Every write says so on stderr.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::secret::Secret;
use crate::store::cache::{Cached, Fail};
use crate::store::{SecretKind, SecretStore, atomic};

pub const FILE_NAME: &str = "secrets.json";

pub struct FileStore {
    pub path: PathBuf,
    /// The parsed file while it is the version parsed (see [`super::cache`]):
    /// `expires --all` and `watch --all` over many orgs read it once per version,
    /// yet a write by another process (a new file, renamed into place) is
    /// always seen. Readers take the one secret they ask for, never a copy of all.
    cache: Cached<Doc>,
    /// Where lock waits and notes go (see [`super::Said`]).
    pub notes: super::Notes,
    /// Paces the wait for the secrets file lock.
    pub(crate) clock: Arc<dyn Clock>,
}

type Doc = BTreeMap<String, BTreeMap<String, Secret>>;

impl FileStore {
    pub fn new(path: PathBuf) -> FileStore {
        FileStore {
            path,
            cache: Cached::default(),
            notes: super::Notes::default(),
            clock: Arc::new(SystemClock),
        }
    }

    fn read(&self) -> Result<Arc<Doc>, Error> {
        if let Some(dir) = self.path.parent() {
            super::trust::check_ancestors(dir)?;
            super::trust::check(dir, false)?;
        }
        super::trust::check(&self.path, true)?;
        let parse = |b: &[u8]| serde_json::from_slice::<Doc>(b);
        match self
            .cache
            .load(&self.path, crate::limits::STORE_FILE_MAX, parse)
        {
            Ok(Some(doc)) => Ok(doc),
            Ok(None) => Ok(Arc::default()),
            Err(Fail::Io(e)) => Err(self.unreadable(e)),
            // serde's text quotes the offending value, which may be a token:
            // only its position is shown.
            Err(Fail::Parse(e)) => Err(Error::Other(format!(
                "the secrets file {} is damaged (line {}, column {}); move it away and log in again",
                self.path.display(),
                e.line(),
                e.column()
            ))),
        }
    }

    fn unreadable(&self, e: std::io::Error) -> Error {
        Error::StoreUnavailable {
            message: format!("cannot read the secrets file {}: {e}", self.path.display()),
            hint: None,
            source: Some(Box::new(e)),
        }
    }
}

/// The marker error of a write that would pass the read limit.
#[derive(Debug)]
struct TooLarge;

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the file would pass the size sfx reads back")
    }
}

impl std::error::Error for TooLarge {}

/// A writer that fails once more than `left` bytes went through it.
struct Capped<'a> {
    inner: &'a mut dyn std::io::Write,
    left: u64,
}

impl std::io::Write for Capped<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(std::io::Error::other(TooLarge));
        }
        let n = self.inner.write(buf)?;
        self.left -= n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
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
            &self.notes,
            &*self.clock,
        )?;
        let before = self.read()?;
        let mut doc = Doc::clone(&before);
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
        if doc == *before && changes.iter().all(|(_, v)| v.is_none()) {
            // Deleting what is not there: no write, and no file created for it.
            return Ok(());
        }
        // Said once per process: a watch writes at every refresh.
        static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if changes.iter().any(|(_, v)| v.is_some())
            && !SAID.swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            self.notes.tell(super::Said::Note(&format!(
                "storing secrets unencrypted in {} (insecure storage, mode 0600)",
                self.path.display()
            )));
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
        // Streamed to the temp file: no second copy of every secret in one buffer.
        // Never written past what `read` takes back (issue #24, as `orgs.json`):
        // a file over the limit would make every later command fail.
        let max = crate::limits::STORE_FILE_MAX;
        let written = atomic::write_kept_with(&self.path, &mut |w| {
            let mut capped = Capped {
                inner: w,
                left: max,
            };
            serde_json::to_writer_pretty(&mut capped, &exposed).map_err(std::io::Error::from)
        });
        if let Err(e) = &written
            && e.get_ref().is_some_and(|i| i.is::<TooLarge>())
        {
            return Err(Error::Other(format!(
                "sfx did not write {}: with this change it would be larger than the {} MiB sfx reads back; nothing was changed (remove orgs no longer used with `sfx logout`, or keep some in the keychain)",
                self.path.display(),
                max / (1024 * 1024)
            )));
        }
        let written = written.map_err(|e| Error::StoreUnavailable {
            message: format!("cannot write the secrets file {}: {e}", self.path.display()),
            hint: None,
            source: Some(Box::new(e)),
        })?;
        self.cache.wrote(written, Arc::new(doc));
        Ok(())
    }
}
