//! The insecure file backend (`--insecure-storage`, `SFX_CREDENTIAL_STORE=file`):
//! `secrets.json` beside the metadata, mode `0600`, written atomically, for hosts
//! with no keychain. Every write says so on stderr.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::secret::Secret;
use crate::store::journaled::{self, Journaled};
use crate::store::{SecretKind, SecretStore};

pub const FILE_NAME: &str = "secrets.json";
/// Its journal (see [`journaled`]).
pub const JOURNAL_NAME: &str = "secrets.journal";

pub struct FileStore {
    pub path: PathBuf,
    /// The parsed file while it is the version parsed (see [`super::cache`]):
    /// `expires --all` and `watch --all` over many orgs read it once per version,
    /// yet a write by another process (a new file, renamed into place) is
    /// always seen. Readers take the one secret they ask for, never a copy of all.
    /// A refresh's new tokens in a large file go to its journal (see [`journaled`]).
    cache: Journaled<Doc>,
    /// Where lock waits and notes go (see [`super::Said`]).
    pub notes: super::Notes,
    /// Paces the wait for the secrets file lock.
    pub(crate) clock: Arc<dyn Clock>,
}

type Doc = Secrets;

impl FileStore {
    pub fn new(path: PathBuf) -> FileStore {
        FileStore {
            cache: Journaled::new(path.clone(), JOURNAL_NAME, true),
            path,
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
        Ok(self.cache.load()?.merged)
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
        self.read()?;
        let now = self.cache.load()?;
        let before = now.merged.clone();
        let mut doc = Doc::clone(&before);
        let entry = Arc::make_mut(doc.entry(alias.to_string()).or_default());
        for (kind, value) in changes {
            match value {
                Some(v) => entry.insert(kind.as_str(), (*v).clone()),
                None => entry.remove(kind.as_str()),
            };
        }
        if entry.0.is_empty() {
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
        // Appended to the journal, or the file written anew.
        self.cache.write(&now, doc)
    }
}

/// Stream the secrets file, exposed, never past what sfx reads back (issue
/// #24, as `orgs.json`): a file over the limit would make every later command fail.
fn write_capped(
    exposed: &BTreeMap<&str, BTreeMap<&str, &str>>,
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let mut capped = Capped {
        inner: w,
        left: crate::limits::STORE_FILE_MAX,
    };
    serde_json::to_writer_pretty(&mut capped, exposed).map_err(std::io::Error::from)
}

/// The error of a failed write of the secrets file at `path`.
fn write_failed(path: &Path, e: std::io::Error) -> Error {
    if e.get_ref().is_some_and(|i| i.is::<TooLarge>()) {
        return Error::Other(format!(
            "sfx did not write {}: with this change it would be larger than the {} MiB sfx reads back; nothing was changed (remove orgs no longer used with `sfx logout`, or keep some in the keychain)",
            path.display(),
            crate::limits::STORE_FILE_MAX / (1024 * 1024)
        ));
    }
    Error::StoreUnavailable {
        message: format!("cannot write the secrets file {}: {e}", path.display()),
        hint: None,
        source: Some(Box::new(e)),
    }
}

/// The secrets file: alias, then kind (`access-token`…), then the secret.
type Secrets = BTreeMap<String, Arc<Kinds>>;

/// One org's secrets by kind (`access-token`…): a sorted list of at most
/// three, not a B-tree, whose smallest node holds eleven (about 550 bytes an
/// org: 5 MB of a watch over 10,000 orgs; issue #23). Behind an `Arc` in the
/// file's parse, so a change copies one org's, not every org's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Kinds(Vec<(String, Secret)>);

impl Kinds {
    fn get(&self, kind: &str) -> Option<&Secret> {
        self.0.iter().find(|(k, _)| k == kind).map(|(_, v)| v)
    }

    fn insert(&mut self, kind: &str, value: Secret) {
        match self.0.binary_search_by(|(k, _)| k.as_str().cmp(kind)) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (kind.to_string(), value)),
        }
    }

    fn remove(&mut self, kind: &str) {
        self.0.retain(|(k, _)| k != kind);
    }

    /// The one place the file's secrets leave their wrapper.
    fn exposed(&self) -> BTreeMap<&str, &str> {
        self.0
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect()
    }
}

impl<'de> serde::Deserialize<'de> for Kinds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Read as the map it is in the file, then kept as a list (sorted).
        let map = BTreeMap::<String, Secret>::deserialize(d)?;
        Ok(Kinds(map.into_iter().collect()))
    }
}

impl journaled::Doc for Secrets {
    type Rec = Arc<Kinds>;
    const JOURNAL: &'static str = "secrets journal";
    fn parse(bytes: &[u8]) -> Result<Self, String> {
        // serde's text quotes the offending value, which may be a token:
        // only its position is shown.
        serde_json::from_slice(bytes)
            .map_err(|e| format!("line {}, column {}", e.line(), e.column()))
    }
    fn unreadable(path: &Path, e: std::io::Error) -> Error {
        Error::StoreUnavailable {
            message: format!("cannot read the secrets file {}: {e}", path.display()),
            hint: None,
            source: Some(Box::new(e)),
        }
    }
    fn damaged(path: &Path, why: &str) -> Error {
        Error::Other(format!(
            "the secrets file {} is damaged ({why}); move it away and log in again",
            path.display()
        ))
    }
    fn write_to(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        // The one place the file's secrets leave their wrapper.
        let exposed: BTreeMap<&str, BTreeMap<&str, &str>> = self
            .iter()
            .map(|(alias, m)| (alias.as_str(), m.exposed()))
            .collect();
        write_capped(&exposed, w)
    }
    fn write_failed(path: &Path, e: std::io::Error) -> Error {
        write_failed(path, e)
    }
    fn records(&self) -> &BTreeMap<String, Self::Rec> {
        self
    }
    fn records_mut(&mut self) -> &mut BTreeMap<String, Self::Rec> {
        self
    }
    fn same_frame(&self, _: &Self) -> bool {
        true
    }
    fn check(_: &str, _: &mut Self::Rec) -> Result<(), String> {
        Ok(())
    }
    /// A new refresh token (Salesforce rotated it) or client secret is always
    /// written into the file itself: an older sfx, which reads only the file,
    /// must never send a spent refresh token (that revokes the whole login).
    fn may_journal(old: &Self::Rec, new: &Self::Rec) -> bool {
        ["refresh-token", "client-secret"]
            .iter()
            .all(|k| old.get(k) == new.get(k))
    }
    fn line(key: &str, rec: &Self::Rec, out: &mut Vec<u8>) -> std::io::Result<()> {
        out.extend(super::applog::lines(&[(key, Some(&rec.exposed()))])?);
        Ok(())
    }
}
