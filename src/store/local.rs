//! The local backend: `orgs.json` (see [`super::metadata`]) plus, per org, the OS
//! keychain or the secrets file; locks and journals under `<sfx home>/locks/`.
//!
//! Layout (written down once, here):
//! - `<home>/orgs.json`: every org's record and the default mark; no secrets;
//!   read without any lock (writes are atomic renames); read-modify-write under
//!   `<home>/locks/orgs.lock`.
//! - secrets, per org as its record's `store` says: keychain service `sfx`,
//!   account `<alias>:<kind>` (see [`super::keychain`]), or `<home>/secrets.json`
//!   `{ "<alias>": { "<kind>": "…" } }` (mode 0600, see [`super::file`]);
//!   `<kind>` is `access-token`, `refresh-token` or `client-secret`.
//! - `<home>/orgs.journal` and `<home>/secrets.journal` (mode 0600): in a store
//!   of 64 KiB or more, the records a refresh changed, appended instead of a
//!   rewrite and applied by every reader (see [`super::journaled`]).
//! - `<home>/locks/org-<enc>.lock`: the org's refresh lock, and
//!   `<home>/locks/org-<enc>.refreshing`: its refresh journal, where `<enc>` is
//!   the alias with every byte outside `a-z 0-9 . - @` written as `_xx` (hex):
//!   an injective encoding, so `a+b`, `a_b` and `A` vs `a` (on a case-insensitive
//!   file system) never share a file.
//!
//! Versions ([`Version`]) are a digest of the org's record; compare-and-set
//! checks it under `orgs.lock`, and refreshes also hold the org's refresh lock,
//! so a conflict only happens when something bypassed that lock (a login).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::metadata::{self, Metadata, OrgRecord, StoreKind};
use super::{
    Cas, Listing, NewTokens, Org, OrgLock, OrgStore, Remembered, SecretKind, SecretStore, Version,
    Versioned, file, journal, journaled, keychain, lock,
};
use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::secret::Secret;

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

/// Every reason the store under `home` is not trusted (see [`super::trust`]),
/// each with its fix: for `sfx doctor`.
pub fn trust_problems(home: &Path) -> Vec<String> {
    let above = super::trust::ancestors_problem(home);
    let items = [
        (home.to_path_buf(), false),
        (home.join("locks"), false),
        (home.join(metadata::FILE_NAME), false),
        (home.join(journaled::JOURNAL_NAME), false),
        (home.join(file::JOURNAL_NAME), true),
        (home.join(file::FILE_NAME), true),
    ];
    items
        .iter()
        .filter_map(|(p, secret)| odd_journal(p).or_else(|| super::trust::problem(p, *secret)))
        .chain(above)
        .map(|(what, fix)| format!("{what}: {fix}"))
        .collect()
}

/// A journal that is there but not a regular file (a link, a directory, a
/// FIFO), which every command refuses to read (exit 6): for `sfx doctor` too.
fn odd_journal(path: &Path) -> Option<(String, String)> {
    let name = path.file_name()?;
    if name != journaled::JOURNAL_NAME && name != file::JOURNAL_NAME {
        return None;
    }
    let meta = std::fs::symlink_metadata(path).ok()?;
    if meta.file_type().is_file() {
        return None;
    }
    let shown = path.display();
    Some((
        format!(
            "{shown} is not a regular file (a link, a directory or a FIFO), which sfx does not read"
        ),
        format!("look at what it is, then move it away: `mv {shown} {shown}.odd`"),
    ))
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
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))
}

/// The on-disk store under the sfx home.
pub struct LocalStore {
    pub home: PathBuf,
    file: file::FileStore,
    /// `orgs.json` and its journal, parsed while they are the versions parsed.
    meta: journaled::Journaled<Metadata>,
    /// How long to wait for another process's refresh of the same org
    /// (set from `--timeout` by the context: see [`refresh_lock_wait`]).
    pub refresh_lock_wait: std::time::Duration,
    /// Where lock waits and notes go (see [`super::Said`]).
    notes: super::Notes,
    /// Paces and bounds the lock waits.
    clock: Arc<dyn Clock>,
}

/// The longest a refresh can legitimately hold its org's lock: three attempts of
/// `timeout`, back-off and `Retry-After` waits (at most 2 x 10 s), keychain calls
/// (3 s each) and the writes. Waiting longer means the holder is stuck.
pub fn refresh_lock_wait(timeout: std::time::Duration) -> std::time::Duration {
    timeout
        .saturating_mul(3)
        .saturating_add(std::time::Duration::from_secs(30))
}

impl LocalStore {
    pub fn new(home: PathBuf) -> LocalStore {
        let file = file::FileStore::new(home.join(file::FILE_NAME));
        let meta = journaled::Journaled::new(
            home.join(metadata::FILE_NAME),
            journaled::JOURNAL_NAME,
            false,
        );
        LocalStore {
            home,
            file,
            meta,
            refresh_lock_wait: refresh_lock_wait(std::time::Duration::from_secs(30)),
            notes: super::Notes::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Tell lock waits and notes to `notes` (a store alone says nothing).
    pub fn with_notes(mut self, notes: super::Notes) -> LocalStore {
        self.file.notes = notes.clone();
        self.notes = notes;
        self
    }

    /// Wait for locks on `clock` (the context's; a test's fake).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> LocalStore {
        self.file.clock = clock.clone();
        self.clock = clock;
        self
    }

    /// Size the wait for another process's refresh from the per-request timeout.
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> LocalStore {
        self.refresh_lock_wait = refresh_lock_wait(timeout);
        self
    }

    pub fn metadata_path(&self) -> PathBuf {
        self.home.join(metadata::FILE_NAME)
    }

    /// When the records last changed: the later modification time of
    /// `orgs.json` and its journal (a refresh by another process may have
    /// changed only the journal).
    pub fn changed_at(&self) -> Option<std::time::SystemTime> {
        [
            self.metadata_path(),
            self.home.join(journaled::JOURNAL_NAME),
        ]
        .iter()
        .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .max()
    }

    /// Read the metadata (no lock, no keychain): parsed once per version of
    /// the file and shared, so take what is needed from it rather than clone it.
    pub fn read(&self) -> Result<Arc<Metadata>, Error> {
        let path = self.metadata_path();
        // A home someone else can write, or a record file they own, is refused
        // before a word of it is read (see [`super::trust`]).
        super::trust::check_ancestors(&self.home)?;
        super::trust::check(&self.home, false)?;
        super::trust::check(&path, false)?;
        Ok(self.meta.load()?.merged)
    }

    /// Read-modify-write the metadata under `orgs.lock`.
    pub fn update<T>(&self, f: impl FnOnce(&mut Metadata) -> Result<T, Error>) -> Result<T, Error> {
        ensure_private_dir(&self.home)?;
        let _guard = lock::acquire(
            &self.home,
            "orgs",
            lock::SHORT_WAIT,
            "the metadata lock",
            &self.notes,
            &*self.clock,
        )?;
        self.read()?;
        let now = self.meta.load()?;
        let before = now.merged.clone();
        let mut meta = Metadata::clone(&before);
        let out = f(&mut meta)?;
        if meta == *before {
            // Nothing changed (a compare-and-set that lost, a cache entry that
            // no longer applies): no write.
            return Ok(out);
        }
        meta.version = 1;
        // Never write what would not read back (issue #11).
        meta.check_since(&before).map_err(|why| {
            Error::Other(format!(
                "sfx did not write {}: the result would not read back ({why}); nothing was changed",
                self.metadata_path().display()
            ))
        })?;
        // Appended to the journal, or the file written anew (see [`journaled`]).
        self.meta.write(&now, meta)?;
        Ok(out)
    }

    /// The secrets backend of one kind.
    pub fn backend(&self, kind: StoreKind) -> &dyn SecretStore {
        match kind {
            StoreKind::Keychain => &keychain::Keychain,
            // A local record never says `shared` (the shared backend marks its
            // own records); a hand-edited one falls back to the file.
            StoreKind::File | StoreKind::Env | StoreKind::Shared => &self.file,
        }
    }

    /// The in-flight journal of an org's rotating refreshes (see [`journal`]).
    pub fn refresh_journal(&self, alias: &str) -> journal::Journal {
        journal::Journal {
            path: lock::path_for(&self.home, &org_lock_name(alias)).with_extension("refreshing"),
        }
    }

    /// [`OrgStore::write_tokens`] itself.
    fn write_tokens_now(&self, expected: Version, new: &NewTokens<'_>) -> Result<Cas, Error> {
        let alias = new.record.alias.as_str();
        self.update(|meta| {
            let Some(current) = meta.orgs.get(alias) else {
                return Ok(Cas::Conflict);
            };
            if version_of(current) != expected {
                return Ok(Cas::Conflict);
            }
            let mut changes: Vec<(SecretKind, Option<&Secret>)> = Vec::new();
            if let Some(rt) = new.refresh_token {
                changes.push((SecretKind::RefreshToken, Some(rt)));
            }
            changes.push((SecretKind::AccessToken, Some(new.access_token)));
            self.backend(new.record.store).put(alias, &changes)?;
            meta.orgs
                .insert(alias.to_string(), Arc::new(new.record.clone()));
            Ok(Cas::Written(version_of(new.record)))
        })
    }

    /// `locks/org-<enc>.room`: space held for the writes of a rotating refresh.
    fn room_path(&self, alias: &str) -> PathBuf {
        lock::path_for(&self.home, &org_lock_name(alias)).with_extension("room")
    }

    /// Before a rotating refresh is sent: allocate as much disk as
    /// writing both store files anew needs, plus room for the new tokens, in a
    /// file given back just before those writes. On a full disk this fails
    /// while nothing is sent yet, and the login stays as it was (issue #24).
    fn reserve_room(&self, alias: &str) -> Result<(), Error> {
        let len = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let need = len(self.file.path.clone()) + len(self.metadata_path()) + ROOM_SLACK;
        let path = self.room_path(alias);
        let full = |e: std::io::Error| {
            let _ = std::fs::remove_file(&path);
            if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem {
                return Error::StoreUnavailable {
                    message: format!(
                        "the sfx home {} is on a read-only file system, so org {alias}'s rotating refresh could not store its new tokens; nothing was sent, and the login is as it was",
                        self.home.display()
                    ),
                    hint: Some(
                        "give sfx a writable home (SFX_HOME), or make this one writable".into(),
                    ),
                    source: Some(Box::new(e)),
                };
            }
            Error::StoreUnavailable {
                message: format!(
                    "there is not enough free space under {} to store the new tokens of org {alias}'s refresh ({} KiB needed: {e}); nothing was sent, and the login is as it was",
                    self.home.display(),
                    need / 1024
                ),
                hint: Some("free some disk space, then run the command again".into()),
                source: Some(Box::new(e)),
            }
        };
        // Anything but a regular file there (a FIFO would block the open and
        // hang the refresh, holding the org's lock) is refused and left as it is.
        let odd = |what: String| Error::StoreUnavailable {
            message: format!(
                "{} is {what}, not a file sfx made to keep room for org {alias}'s refresh; nothing was sent, and the login is as it was",
                path.display()
            ),
            hint: Some(format!(
                "look at what it is, then remove it: `rm -r {}`",
                path.display()
            )),
            source: None,
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
        }
        let f = match opts.open(&path) {
            Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => f,
            Ok(_) => return Err(odd("not a regular file".into())),
            #[cfg(unix)]
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENXIO | libc::EISDIR | libc::ELOOP)
                ) =>
            {
                return Err(odd(format!("not a regular file ({e})")));
            }
            Err(e) => return Err(full(e)),
        };
        reserve_space(f, need).map_err(full)
    }

    /// Hold the per-org refresh lock (`locks/org-<enc>.lock` under this home).
    pub fn org_lock(&self, alias: &str) -> Result<lock::Lock, Error> {
        ensure_private_dir(&self.home)?;
        lock::acquire(
            &self.home,
            &org_lock_name(alias),
            self.refresh_lock_wait,
            &format!("the refresh lock of org {alias}"),
            &self.notes,
            &*self.clock,
        )
    }
}

/// Allocate `len` bytes of disk to `f`: `posix_fallocate` on Linux (no data
/// written, so a store of 10,000 orgs costs no megabytes of I/O per refresh),
/// else written zeros, synced.
fn reserve_space(f: std::fs::File, len: u64) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let len = libc::off_t::try_from(len).map_err(std::io::Error::other)?;
        // SAFETY: a valid open file descriptor for the duration of the call.
        let rc = unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, len) };
        // A file system without fallocate: write the zeros instead.
        if rc != libc::EOPNOTSUPP && rc != libc::EINVAL {
            return if rc == 0 {
                Ok(())
            } else {
                Err(std::io::Error::from_raw_os_error(rc))
            };
        }
    }
    use std::io::Write;
    let mut f = f;
    let zeros = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    f.sync_all()
}

/// What a rotating refresh's room holds beyond the store files' sizes: the new
/// tokens and record, several times over.
const ROOM_SLACK: u64 = 64 * 1024;

/// `org-<alias>` with the alias encoded injectively (see the module doc).
pub fn org_lock_name(alias: &str) -> String {
    format!("org-{}", lock::encode(alias))
}

/// The version of a record: a digest of its stored form.
fn version_of(record: &OrgRecord) -> Version {
    let bytes = serde_json::to_vec(record).unwrap_or_default();
    let d = Sha256::digest(&bytes);
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    Version(u64::from_be_bytes(b))
}

fn stored(record: OrgRecord) -> Org {
    Org { record, env: None }
}

const ALL_NONE: [(SecretKind, Option<&Secret>); 3] = [
    (SecretKind::RefreshToken, None),
    (SecretKind::AccessToken, None),
    (SecretKind::ClientSecret, None),
];

impl OrgStore for LocalStore {
    fn list(&self) -> Result<Listing, Error> {
        let meta = self.read()?;
        let default = meta.default.clone().filter(|d| meta.orgs.contains_key(d));
        Ok(Listing {
            default,
            orgs: meta
                .orgs
                .values()
                .map(|r| stored(OrgRecord::clone(r)))
                .collect(),
        })
    }

    fn read(&self, alias: &str) -> Result<Option<Versioned>, Error> {
        Ok(LocalStore::read(self)?
            .orgs
            .get(alias)
            .map(|r| OrgRecord::clone(r))
            .map(|record| Versioned {
                version: version_of(&record),
                org: stored(record),
            }))
    }

    fn secret(&self, org: &Org, kind: SecretKind) -> Result<Option<Secret>, Error> {
        self.backend(org.record.store).get(&org.record.alias, kind)
    }

    fn write_tokens(&self, expected: Version, new: &NewTokens<'_>) -> Result<Cas, Error> {
        let alias = new.record.alias.as_str();
        // The room kept for this write (see `reserve_room`) is given back now.
        let _ = std::fs::remove_file(self.room_path(alias));
        let written = self.write_tokens_now(expected, new);
        match written {
            // Only when the new refresh token is not where the next refresh
            // reads it (a failed record write after it leaves the login alive).
            Err(e)
                if new.refresh_token.is_some_and(|rt| {
                    self.backend(new.record.store)
                        .get(alias, SecretKind::RefreshToken)
                        .ok()
                        .flatten()
                        .is_none_or(|stored| stored.expose() != rt.expose())
                }) && e.exit() != crate::exit::Exit::Relogin =>
            {
                Err(Error::relogin(
                    format!(
                        "Salesforce rotated the refresh token of org {alias}, and sfx could not store the new one ({e}): the old one is spent, so this login is lost"
                    ),
                    format!(
                        "fix what stopped the write (free disk space under {}), then log in again (`sfx login --alias {alias}` with the flow you used)",
                        self.home.display()
                    ),
                ))
            }
            other => other,
        }
    }

    fn put_secret(&self, org: &Org, kind: SecretKind, value: &Secret) -> Result<(), Error> {
        self.backend(org.record.store)
            .put(org.name(), &[(kind, Some(value))])
    }

    fn update_record(
        &self,
        alias: &str,
        change: &mut dyn FnMut(&mut OrgRecord),
    ) -> Result<bool, Error> {
        self.update(|meta| {
            Ok(meta
                .orgs
                .get_mut(alias)
                .map(|r| change(Arc::make_mut(r)))
                .is_some())
        })
    }

    fn remember(&self, answers: &[Remembered<'_>]) -> Result<(), Error> {
        if answers.is_empty() {
            return Ok(());
        }
        self.update(|meta| {
            for a in answers {
                if let Some(rec) = meta.orgs.get_mut(a.alias)
                    && rec.access_token_masked.as_deref() == Some(a.masked.as_str())
                {
                    Arc::make_mut(rec).expiry = Some(a.expiry);
                }
            }
            Ok(())
        })
    }

    fn lock(&self, alias: &str) -> Result<OrgLock, Error> {
        self.org_lock(alias).map(OrgLock::new)
    }

    fn journal_pending(&self, alias: &str, refresh_token: &Secret) -> Result<bool, Error> {
        Ok(self.refresh_journal(alias).pending_for(refresh_token))
    }

    fn journal_begin(&self, alias: &str, refresh_token: &Secret) -> Result<bool, Error> {
        let journal = self.refresh_journal(alias);
        journal.begin(refresh_token)?;
        // The answer will spend this refresh token: make sure its successor can
        // be stored before sending it (issue #24, a full disk).
        if let Err(e) = self.reserve_room(alias) {
            journal.end();
            return Err(e);
        }
        Ok(true)
    }

    fn journal_settle(&self, alias: &str) {
        self.refresh_journal(alias).end();
        let _ = std::fs::remove_file(self.room_path(alias));
    }

    fn save_org(
        &self,
        record: &OrgRecord,
        secrets: &[(SecretKind, Option<&Secret>)],
        make_default: bool,
    ) -> Result<Vec<String>, Error> {
        let alias = record.alias.as_str();
        // The secrets and the record are written under one lock, `orgs.lock`
        // (taken before `secrets.lock`, as a refresh takes them): two logins of
        // one alias at once can never leave one user's record with another's
        // tokens (issue #24).
        self.update(|meta| {
            let previous = meta.orgs.get(alias).cloned();
            self.backend(record.store).put(alias, secrets)?;
            // Moving an org between stores leaves no copy behind in the old one.
            let mut notes = Vec::new();
            if let Some(prev) = &previous
                && prev.store != record.store
                && prev.store != StoreKind::Env
                && let Err(e) = self.backend(prev.store).put(alias, &ALL_NONE)
            {
                notes.push(format!(
                    "warning: the old copies of org {alias}'s secrets in the {} could not be deleted ({e}); they are no longer used",
                    super::describe_kind(prev.store)
                ));
            }
            meta.orgs
                .insert(alias.to_string(), Arc::new(record.clone()));
            if make_default {
                meta.default = Some(alias.to_string());
            }
            Ok(notes)
        })
    }

    fn delete_org(&self, alias: &str) -> Result<Option<OrgRecord>, Error> {
        if !LocalStore::read(self)?.orgs.contains_key(alias) {
            return Ok(None);
        }
        // Under one lock, as in `save_org`.
        self.update(|meta| {
            let Some(rec) = meta.orgs.get(alias).map(|r| OrgRecord::clone(r)) else {
                return Ok(None);
            };
            self.backend(rec.store).put(alias, &ALL_NONE)?;
            meta.orgs.remove(alias);
            if meta.default.as_deref() == Some(alias) {
                meta.default = None;
            }
            Ok(Some(rec))
        })
    }

    fn set_default(&self, alias: Option<&str>) -> Result<(), Error> {
        self.update(|meta| {
            meta.default = alias.map(str::to_string);
            Ok(())
        })
    }

    fn describe(&self) -> String {
        "the local store".to_string()
    }

    fn snapshot(&self) -> Result<Arc<Metadata>, Error> {
        LocalStore::read(self)
    }

    fn changed_since(&self, seen: &mut Option<std::time::SystemTime>) -> Option<bool> {
        // Two `stat`s (orgs.json and its journal); the files are read only
        // when one changed.
        let stamp = self.changed_at();
        let changed = stamp != *seen;
        *seen = stamp;
        Some(changed)
    }

    /// The keychain takes, gives back and deletes a test entry (a locked one
    /// still answers "no such entry" to a plain read); the local files read and
    /// their directory takes a lock. A keychain that is missing or locked fails
    /// here, exit 6, naming `--insecure-storage`.
    fn ready_to_save(&self, kind: StoreKind) -> Result<(), Error> {
        if kind == StoreKind::Keychain {
            keychain::probe().result.map_err(|t| t.into_error())?;
        }
        // The metadata reads, and its directory and lock can be written (an
        // update that changes nothing writes no file).
        self.update(|_| Ok(()))?;
        if kind == StoreKind::File {
            // The secrets file reads (a damaged one would refuse the write later).
            self.backend(kind)
                .get("sfx-login-check", SecretKind::AccessToken)?;
        }
        Ok(())
    }
}

/// Delete all of an org's secrets from one backend.
pub fn delete_secrets(backend: &dyn SecretStore, alias: &str) -> Result<(), Error> {
    backend.put(alias, &ALL_NONE)
}

#[cfg(test)]
mod tests;
