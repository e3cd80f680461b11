//! A store file and its journal (see [`super::applog`]): `orgs.json` with
//! `orgs.journal`, and the secrets file `secrets.json` with `secrets.journal`.
//! The records as readers see them, and how a change is written.
//!
//! A change that only replaces records already in a large file (a refresh's
//! new token state and tokens, an expiry learned) is appended to the journal;
//! anything else (a login, a logout, the default mark), a small file (under
//! [`JOURNAL_MIN`]: rewriting it costs no more than the journal would), or a
//! journal due for compaction writes the file anew and removes the journal.
//! So the bytes a refresh writes are bounded whatever the number of orgs: one
//! record's line, plus, on average, four lines' worth of the compaction that a
//! quarter of the file's size in lines pays for.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use std::collections::BTreeMap;

use super::applog::{self, BaseId, Parsed};
use super::cache::{self, Stamp};
use super::metadata::{Metadata, OrgRecord};
use crate::error::Error;

/// The journal of `orgs.json`.
pub const JOURNAL_NAME: &str = "orgs.journal";

/// A store file that keeps a journal: a map of records (by alias) and what
/// else the file holds.
pub trait Doc: Clone + Default + PartialEq + Send + Sync + 'static {
    type Rec: Clone + PartialEq + serde::de::DeserializeOwned;
    /// What the journal is called in messages.
    const JOURNAL: &'static str;
    fn parse(bytes: &[u8]) -> Result<Self, String>;
    fn unreadable(path: &Path, e: std::io::Error) -> Error;
    fn damaged(path: &Path, why: &str) -> Error;
    /// Stream the whole file.
    fn write_to(&self, w: &mut dyn std::io::Write) -> std::io::Result<()>;
    fn write_failed(path: &Path, e: std::io::Error) -> Error;
    fn records(&self) -> &BTreeMap<String, Self::Rec>;
    fn records_mut(&mut self) -> &mut BTreeMap<String, Self::Rec>;
    /// Everything but the records is the same: a change the journal can carry.
    fn same_frame(&self, other: &Self) -> bool;
    /// Check (and tidy) a record read from the journal, as from the file.
    fn check(key: &str, rec: &mut Self::Rec) -> Result<(), String>;
    /// Whether this change of a record may go to the journal (else the file
    /// is written anew): what an older sfx, which reads only the file, must
    /// never see stale is kept out of the journal.
    fn may_journal(_old: &Self::Rec, _new: &Self::Rec) -> bool {
        true
    }
    /// One journal line (see [`applog`]) for a record.
    fn line(key: &str, rec: &Self::Rec, out: &mut Vec<u8>) -> std::io::Result<()>;
}

/// Below this size `orgs.json` is rewritten for every change (about 100 orgs):
/// a journal would save less than it costs in files.
pub const JOURNAL_MIN: u64 = 64 * 1024;

/// The base file parsed, with the id of its bytes.
struct Based<D> {
    meta: Arc<D>,
    id: BaseId,
    len: u64,
}

/// The journal applied over a base, while both are the versions read.
struct View<D> {
    base: Arc<Based<D>>,
    stamp: Stamp,
    /// The journal as read, held open so its inode is not reused (see [`cache`]).
    _pin: File,
    /// Where its whole lines end (`None`: it extends another base).
    whole: Option<u64>,
    merged: Arc<D>,
}

/// What a writer needs of the current state.
pub struct Current<D> {
    base: Arc<Based<D>>,
    /// The journal's whole lines, when it extends this base and has a header.
    whole: Option<u64>,
    pub merged: Arc<D>,
}

pub struct Journaled<D> {
    path: PathBuf,
    log_path: PathBuf,
    /// The journal holds secrets (see [`super::trust`]).
    secret: bool,
    base: cache::Cached<Based<D>>,
    view: Mutex<Option<View<D>>>,
}

impl<D: Doc> Journaled<D> {
    pub fn new(path: PathBuf, journal_name: &str, secret: bool) -> Journaled<D> {
        let log_path = path.with_file_name(journal_name);
        Journaled {
            path,
            log_path,
            secret,
            base: cache::Cached::default(),
            view: Mutex::new(None),
        }
    }

    /// The records as of the file with its journal applied. The caller has
    /// checked the home and the file are trusted.
    pub fn load(&self) -> Result<Current<D>, Error> {
        // A compaction by another process between reading the base and the
        // journal shows as a new base: read again (a writer renames the new
        // base before it removes the journal, so a base that stayed the same
        // was read with its own journal or none).
        let mut tries = 0;
        loop {
            let base = self.load_base()?;
            let current = self.apply_log(base.clone())?;
            let again = self.load_base()?;
            tries += 1;
            if base.id == again.id || tries >= 5 {
                return Ok(current);
            }
        }
    }

    fn load_base(&self) -> Result<Arc<Based<D>>, Error> {
        let parse = |b: &[u8]| {
            D::parse(b).map(|m| Based {
                meta: Arc::new(m),
                id: BaseId::of(b),
                len: b.len() as u64,
            })
        };
        match self
            .base
            .load(&self.path, crate::limits::STORE_FILE_MAX, parse)
        {
            Ok(Some(b)) => Ok(b),
            Ok(None) => Ok(Arc::new(Based {
                meta: Arc::default(),
                id: BaseId::of(b""),
                len: 0,
            })),
            Err(cache::Fail::Io(e)) => Err(D::unreadable(&self.path, e)),
            Err(cache::Fail::Parse(why)) => Err(D::damaged(&self.path, &why)),
        }
    }

    fn apply_log(&self, base: Arc<Based<D>>) -> Result<Current<D>, Error> {
        let plain = |base: Arc<Based<D>>| Current {
            merged: base.meta.clone(),
            base,
            whole: None,
        };
        let file = match open_log(&self.log_path) {
            Ok(Some(f)) => f,
            Ok(None) => {
                *self.view.lock().unwrap_or_else(|e| e.into_inner()) = None;
                return Ok(plain(base));
            }
            Err(e) => return Err(self.unreadable(e)),
        };
        super::trust::check(&self.log_path, self.secret)?;
        let meta = file.metadata().map_err(|e| self.unreadable(e))?;
        let stamp = Stamp::of(&meta);
        {
            let view = self.view.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(v) = view.as_ref()
                && Arc::ptr_eq(&v.base, &base)
                && v.stamp == stamp
            {
                return Ok(Current {
                    base,
                    whole: v.whole,
                    merged: v.merged.clone(),
                });
            }
        }
        let max = crate::limits::STORE_FILE_MAX;
        if meta.len() > max {
            return Err(self.damaged(&format!(
                "it is larger than the {} MiB sfx reads",
                max >> 20
            )));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize + 1);
        (&file)
            .take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.unreadable(e))?;
        let (whole, merged) = match applog::parse::<D::Rec>(&bytes, &base.id) {
            Err(why) => return Err(self.damaged(&why)),
            Ok(Parsed::Other) => (None, base.meta.clone()),
            Ok(Parsed::Applies { whole: 0, .. }) => (None, base.meta.clone()),
            Ok(Parsed::Applies { entries, whole }) => {
                let mut meta = D::clone(&base.meta);
                for (n, (key, value)) in entries.into_iter().enumerate() {
                    match value {
                        Some(mut rec) => {
                            D::check(&key, &mut rec).map_err(|why| {
                                self.damaged(&format!("update {} is refused: {why}", n + 1))
                            })?;
                            meta.records_mut().insert(key, rec);
                        }
                        None => {
                            meta.records_mut().remove(&key);
                        }
                    }
                }
                (Some(whole), Arc::new(meta))
            }
        };
        *self.view.lock().unwrap_or_else(|e| e.into_inner()) = Some(View {
            base: base.clone(),
            stamp,
            _pin: file,
            whole,
            merged: merged.clone(),
        });
        Ok(Current {
            base,
            whole,
            merged,
        })
    }

    /// Write `meta`, a change of `now` (the caller holds `orgs.lock`, and has
    /// checked that every changed record reads back).
    pub fn write(&self, now: &Current<D>, meta: D) -> Result<(), Error> {
        if let Some(lines) = self.journal_lines(now, &meta) {
            let appended = match now.whole {
                Some(whole) => applog::append(&self.log_path, whole, &lines).map(|f| (f, whole)),
                None => {
                    applog::start(&now.base.id, &[] as &[(&str, Option<&()>)]).and_then(|head| {
                        let bytes = [head.as_slice(), lines.as_slice()].concat();
                        super::atomic::write_kept(&self.log_path, &bytes)
                            .map(|f| (f, head.len() as u64))
                    })
                }
            };
            // When the journal cannot take it (a full disk), the whole file is
            // written instead, which says why if it cannot be either.
            if let Ok((file, at)) = appended {
                let merged = Arc::new(meta);
                let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
                *view = file.metadata().ok().map(|m| View {
                    base: now.base.clone(),
                    stamp: Stamp::of(&m),
                    _pin: file,
                    whole: Some(at + lines.len() as u64),
                    merged,
                });
                return Ok(());
            }
        }
        self.rewrite(meta)
    }

    /// The journal's lines for this change, when it goes there (see the module doc).
    fn journal_lines(&self, now: &Current<D>, meta: &D) -> Option<Vec<u8>> {
        let before = &now.merged;
        if now.base.len < JOURNAL_MIN
            || !meta.same_frame(before)
            || meta.records().len() != before.records().len()
        {
            return None;
        }
        let mut lines = Vec::new();
        for ((k, new), (k0, old)) in meta.records().iter().zip(before.records().iter()) {
            if k != k0 {
                return None;
            }
            if new != old {
                if !D::may_journal(old, new) {
                    return None;
                }
                D::line(k, new, &mut lines).ok()?;
            }
        }
        let used = now.whole.unwrap_or(0);
        (!applog::due(used + lines.len() as u64 + 128, now.base.len)).then_some(lines)
    }

    /// Write `orgs.json` anew (the journal folded in), then remove the journal.
    fn rewrite(&self, meta: D) -> Result<(), Error> {
        let mut id = None;
        let written = super::atomic::write_kept_with(&self.path, &mut |w| {
            let mut h = applog::Hashing::new(w);
            meta.write_to(&mut h)?;
            id = Some(h.id());
            Ok(())
        })
        .map_err(|e| D::write_failed(&self.path, e))?;
        let len = written.metadata().map(|m| m.len()).unwrap_or(0);
        let based = Based {
            meta: Arc::new(meta),
            id: id.unwrap_or_else(|| BaseId::of(b"")),
            len,
        };
        self.base.wrote(written, Arc::new(based));
        // After the rename: a journal left by a crash here extends the old
        // bytes, so it is ignored, and the next append replaces it.
        let _ = std::fs::remove_file(&self.log_path);
        *self.view.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }

    fn unreadable(&self, e: std::io::Error) -> Error {
        // Not a file sfx wrote (a link, a FIFO) or not readable: as with the
        // lock files, named and left as it is.
        Error::StoreUnavailable {
            message: format!(
                "cannot read the {} {}: {e}",
                D::JOURNAL,
                self.log_path.display()
            ),
            hint: Some(format!(
                "look at what it is, then move it away: `mv {} {}.odd`",
                self.log_path.display(),
                self.log_path.display()
            )),
            source: Some(Box::new(e)),
        }
    }

    fn damaged(&self, why: &str) -> Error {
        Error::Other(format!(
            "the {} {} is damaged ({why}); move it away (`mv {} {}.damaged`): sfx then reads {} as it was last written whole, and learns the newest token state again at the next check or refresh",
            D::JOURNAL,
            self.log_path.display(),
            self.log_path.display(),
            self.log_path.display(),
            self.path.display(),
        ))
    }
}

/// Open the journal for reading: `None` when there is none; never through a
/// link, never blocking on a FIFO.
fn open_log(path: &Path) -> std::io::Result<Option<File>> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    match opts.open(path) {
        Ok(f) => {
            if f.metadata()?.is_file() {
                Ok(Some(f))
            } else {
                Err(std::io::Error::other("it is not a regular file"))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(std::io::Error::other(
            "it is a symbolic link, which sfx does not follow there",
        )),
        Err(e) => Err(e),
    }
}

impl Doc for Metadata {
    type Rec = Arc<OrgRecord>;
    const JOURNAL: &'static str = "org journal";
    fn parse(bytes: &[u8]) -> Result<Self, String> {
        Metadata::parse(bytes)
    }
    fn unreadable(path: &Path, e: std::io::Error) -> Error {
        Metadata::unreadable(path, e)
    }
    fn damaged(path: &Path, why: &str) -> Error {
        Metadata::damaged(path, why)
    }
    fn write_to(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        Metadata::write_to(self, w)
    }
    fn write_failed(path: &Path, e: std::io::Error) -> Error {
        Error::io(format!("cannot write {}", path.display()), e)
    }
    fn records(&self) -> &BTreeMap<String, Arc<OrgRecord>> {
        &self.orgs
    }
    fn records_mut(&mut self) -> &mut BTreeMap<String, Arc<OrgRecord>> {
        &mut self.orgs
    }
    fn same_frame(&self, other: &Self) -> bool {
        self.default == other.default && self.version == other.version
    }
    fn check(key: &str, rec: &mut Arc<OrgRecord>) -> Result<(), String> {
        // Just parsed: not shared, so changed in place.
        Arc::make_mut(rec).check(key)
    }
    /// Only a change of the token's state (a refresh, an expiry learned, a
    /// keep-alive): a login again under the same alias (another org, flow,
    /// client, store or session timeout) writes the file anew, or an older
    /// sfx would pair the old record with the new secrets.
    fn may_journal(old: &Arc<OrgRecord>, new: &Arc<OrgRecord>) -> bool {
        let mut same = OrgRecord::clone(old);
        same.issued_at = new.issued_at;
        same.expiry = new.expiry;
        same.access_token_masked = new.access_token_masked.clone();
        same.refresh_token_used_at = new.refresh_token_used_at;
        same == **new
    }
    fn line(key: &str, rec: &Arc<OrgRecord>, out: &mut Vec<u8>) -> std::io::Result<()> {
        out.extend(applog::lines(&[(key, Some(&**rec))])?);
        Ok(())
    }
}
