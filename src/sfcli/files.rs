//! The Salesforce CLI's files under `~/.sfdx` and its file lock.
//!
//! - `alias.json`: `{"orgs":{"<alias>":"<username>"}}`;
//! - `<username>.json`: one login; `username`, `orgId`, `instanceUrl`, `loginUrl`,
//!   `clientId`, … in clear, every key matching /token|password|secret/i encrypted
//!   (see [`super::crypto`]). sf writes it with `JSON.stringify(contents, null, 2)`.
//! - sf's lock (proper-lockfile, sfdx-core `src/util/fileLocking.ts`): a directory
//!   `<file>.lock` made with `mkdir`, whose mtime the holder refreshes every 5 s; a
//!   lock whose mtime is older than 10 s is stale and may be taken over. sf's reads
//!   wait for the lock to go away.
//!
//! Every read is bounded ([`MAX_FILE`]); nothing here prints.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use super::crypto::{self, Key};
use crate::clock::Clock;
use crate::error::Error;
use crate::secret::Secret;

/// The largest sf file sfx reads (sf's auth files are about 2 KB).
pub const MAX_FILE: u64 = 1 << 20;
/// proper-lockfile's `stale` as sf sets it.
pub const STALE: Duration = Duration::from_secs(10);
/// How long sfx waits for a lock sf keeps fresh before it gives up: longer than
/// sf's own wait (10 retries of at most 1 s), so sfx never gives up first.
pub const LOCK_WAIT: Duration = Duration::from_secs(15);
/// How often sfx refreshes the mtime of a lock it holds (proper-lockfile: stale / 2).
const LOCK_UPDATE: Duration = Duration::from_secs(5);
/// How often a waiter looks at sf's lock again.
const LOCK_POLL: Duration = Duration::from_millis(100);
/// sf's default connected app, used when a file names none.
pub const SF_DEFAULT_CLIENT_ID: &str = "PlatformCLI";

/// sf's state directory: `~/.sfdx` (sf uses the home directory of `HOME` on Unix),
/// refused when it is not the user's own and private (see [`check_dir`]).
pub fn sf_dir() -> Result<PathBuf, Error> {
    let dir = etcetera::home_dir()
        .map(|h| h.join(".sfdx"))
        .map_err(|_| Error::Other("cannot find the home directory (HOME is not set), so the Salesforce CLI's files cannot be found".into()))?;
    check_dir(&dir)?;
    Ok(dir)
}

/// Refuse sf's directory when someone else owns it or can write it (the sfx
/// home's rule, [`crate::store::trust`]): they could swap sf's auth file for
/// one that sends the refresh token to a server of theirs, or `alias.json` for
/// one naming another login. sf itself creates `~/.sfdx` 0700 (sfdx-core's
/// `Global.createDir`). Exit 6, before anything is read, sent or written.
pub fn check_dir(dir: &Path) -> Result<(), Error> {
    let Some((what, fix)) = crate::store::trust::problem(dir, false) else {
        return Ok(());
    };
    let fix = if what.contains("another user") {
        format!(
            "sf's directory must be yours: if it is, `chown -R $(id -u) {}`; otherwise log in to sf again as yourself",
            dir.display()
        )
    } else {
        fix
    };
    Err(Error::StoreUnavailable {
        message: format!(
            "sfx does not read or write the Salesforce CLI's files there: {what}, so someone else could swap sf's login files and take the tokens; sfx read none of them and sent or wrote nothing"
        ),
        hint: Some(format!("{fix} (sf itself creates it 0700)")),
        source: None,
    })
}

/// Read a file of at most [`MAX_FILE`] bytes; `None` when it does not exist.
pub fn read_bounded(p: &Path) -> Result<Option<Vec<u8>>, Error> {
    // Not a regular file (a FIFO, a device): opening it could block forever.
    match std::fs::metadata(p) {
        Ok(m) if !m.is_file() => {
            return Err(Error::Other(format!(
                "{} is not a regular file, which no file of the Salesforce CLI is; sfx did not read it",
                p.display()
            )));
        }
        _ => {}
    }
    let f = match std::fs::File::open(p) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Other(format!("cannot read {}: {e}", p.display())));
        }
    };
    let mut buf = Vec::new();
    f.take(MAX_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::Other(format!("cannot read {}: {e}", p.display())))?;
    if buf.len() as u64 > MAX_FILE {
        return Err(Error::Other(format!(
            "{} is larger than {} bytes, which no file of the Salesforce CLI is; sfx did not read it",
            p.display(),
            MAX_FILE
        )));
    }
    Ok(Some(buf))
}

/// sf's aliases (`alias.json`'s `orgs` group): alias → username. Missing file: none.
pub fn aliases(dir: &Path) -> Result<Vec<(String, String)>, Error> {
    let p = dir.join("alias.json");
    let Some(bytes) = read_bounded(&p)? else {
        return Ok(Vec::new());
    };
    let damaged = || {
        Error::Other(format!(
            "{} is not the Salesforce CLI's alias file (expected {{\"orgs\":{{\"<alias>\":\"<username>\"}}}})",
            p.display()
        ))
    };
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| damaged())?;
    let Some(obj) = v.as_object() else {
        return Err(damaged());
    };
    let mut out = Vec::new();
    if let Some(orgs) = obj.get("orgs") {
        let orgs = orgs.as_object().ok_or_else(damaged)?;
        for (a, u) in orgs {
            if let Some(u) = u.as_str() {
                out.push((a.clone(), u.to_string()));
            }
        }
    }
    Ok(out)
}

/// sf's test for an auth file name (`orgAccessor.ts`:
/// `/^[^.][^@]*@[^.]+(\.[^.\s]+)+\.json$/`).
pub fn is_auth_file_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".json") else {
        return false;
    };
    if stem.starts_with('.') || stem.is_empty() {
        return false;
    }
    let Some((_, rest)) = stem.split_once('@') else {
        return false;
    };
    let mut parts = rest.split('.');
    let first_ok = parts.next().is_some_and(|p| !p.is_empty());
    let rest: Vec<&str> = parts.collect();
    first_ok
        && !rest.is_empty()
        && rest
            .iter()
            .all(|p| !p.is_empty() && !p.chars().any(char::is_whitespace))
}

/// The auth file of `username`, refusing names that would leave `dir`.
pub fn auth_path(dir: &Path, username: &str) -> Result<PathBuf, Error> {
    let ok = !username.is_empty()
        && username.len() <= 200
        && !username.contains(['/', '\\'])
        && !username.starts_with('.')
        && !username.chars().any(char::is_control);
    if !ok {
        return Err(Error::usage(format!(
            "`{}` is not a Salesforce username sf could have a file for",
            crate::text::sanitize(username, 100)
        )));
    }
    Ok(dir.join(format!("{username}.json")))
}

/// One of sf's auth files, parsed; secrets still encrypted.
#[derive(Debug, Clone)]
pub struct AuthFile {
    pub path: PathBuf,
    pub fields: Map<String, Value>,
    pub username: String,
    pub instance_url: Option<String>,
    pub login_url: Option<String>,
    pub org_id: Option<String>,
    pub client_id: String,
}

impl AuthFile {
    /// Read and parse; `Ok(None)` when the file does not exist.
    pub fn read(path: &Path) -> Result<Option<AuthFile>, Error> {
        let Some(bytes) = read_bounded(path)? else {
            return Ok(None);
        };
        AuthFile::parse(path, &bytes).map(Some).map_err(|why| {
            Error::Other(format!(
                "{} is not a Salesforce CLI auth file sfx understands ({why}); sfx wrote nothing",
                path.display()
            ))
        })
    }

    pub fn parse(path: &Path, bytes: &[u8]) -> Result<AuthFile, String> {
        let v: Value = serde_json::from_slice(bytes).map_err(|_| "it is not JSON".to_string())?;
        let Value::Object(fields) = v else {
            return Err("it is not a JSON object".into());
        };
        let text = |k: &str| -> Result<Option<String>, String> {
            match fields.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("`{k}` is not text")),
            }
        };
        let username = text("username")?.ok_or("it has no `username`")?;
        let instance_url = text("instanceUrl")?;
        let login_url = text("loginUrl")?;
        let org_id = text("orgId")?;
        let client_id = text("clientId")?
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| SF_DEFAULT_CLIENT_ID.to_string());
        for k in ["accessToken", "refreshToken", "clientSecret"] {
            text(k)?;
        }
        Ok(AuthFile {
            path: path.to_path_buf(),
            fields,
            username,
            instance_url,
            login_url,
            org_id,
            client_id,
        })
    }

    /// A secret field, decrypted as sf does: values that do not look encrypted are
    /// taken as they are (sf's `isEncrypted`). Empty or absent: `None`.
    pub fn secret(&self, key: &Key, field: &str) -> Result<Option<Secret>, String> {
        let Some(v) = self.fields.get(field).and_then(|v| v.as_str()) else {
            return Ok(None);
        };
        if v.is_empty() {
            return Ok(None);
        }
        if !crypto::looks_encrypted(v) {
            return Ok(Some(Secret::new(v)));
        }
        key.decrypt(v)
            .map(Some)
            .map_err(|why| format!("its `{field}`: {why}"))
    }

    /// The file's text with new tokens, encrypted with `key`, in sf's layout
    /// (`JSON.stringify(…, null, 2)`; the other fields kept as they are).
    pub fn with_tokens(
        &self,
        key: &Key,
        access_token: &Secret,
        refresh_token: &Secret,
    ) -> Result<Vec<u8>, String> {
        let mut fields = self.fields.clone();
        fields.insert(
            "accessToken".into(),
            Value::String(key.encrypt(access_token.expose())?),
        );
        fields.insert(
            "refreshToken".into(),
            Value::String(key.encrypt(refresh_token.expose())?),
        );
        serde_json::to_vec_pretty(&Value::Object(fields)).map_err(|e| e.to_string())
    }
}

/// Write `bytes` to `path` atomically (temp file beside it, fsync, rename),
/// keeping the file's mode. The caller holds sf's lock on `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // Through a link, as sf does (a shared volume, dotfiles): replacing the link
    // with a file would leave the real one holding a spent token (issue #24).
    crate::store::atomic::write_keeping_mode(&real_path(path), bytes)
}

/// `path` with its links resolved (itself when it cannot be resolved): sf's
/// lock library (proper-lockfile) locks and sf writes the real file.
pub fn real_path(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// sf's lock on one file, held: the `<file>.lock` directory, kept fresh by a
/// thread, removed on drop.
pub struct SfLock {
    dir: PathBuf,
    stop: Option<mpsc::Sender<()>>,
    keeper: Option<std::thread::JoinHandle<()>>,
    /// The lock directory as sfx made it and last touched it: (identity, mtime).
    mine: Arc<Mutex<Option<Stamp>>>,
}

/// Which directory, and when it was last touched.
type Stamp = ((u64, u64), Option<SystemTime>);

fn stamp(dir: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(dir).ok()?;
    #[cfg(unix)]
    let id = {
        use std::os::unix::fs::MetadataExt;
        (m.dev(), m.ino())
    };
    #[cfg(not(unix))]
    let id = (0, 0);
    Some((id, m.modified().ok()))
}

impl Drop for SfLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(k) = self.keeper.take() {
            let _ = k.join();
        }
        // Only sfx's own lock is removed: after a stall past STALE, sf may have
        // taken it over (another directory, or one it touched since), and
        // removing that would let a third process in beside sf (issue #24).
        let mine = *self.mine.lock().unwrap_or_else(|e| e.into_inner());
        if mine.is_some() && stamp(&self.dir) == mine {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

fn lock_dir(file: &Path) -> PathBuf {
    let mut s = real_path(file).into_os_string();
    s.push(".lock");
    PathBuf::from(s)
}

fn touch(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Take sf's lock on `file` as proper-lockfile does: `mkdir <file>.lock`; a lock
/// not refreshed for [`STALE`] is taken over; one kept fresh for longer than
/// `wait` makes sfx give up with exit 6. The wait and its pacing go through
/// `clock`; the lock's age is the directory's real modification time (sf
/// reads it too).
pub fn lock(file: &Path, wait: Duration, clock: &dyn Clock) -> Result<SfLock, Error> {
    let dir = lock_dir(file);
    let started = clock.instant();
    loop {
        match std::fs::create_dir(&dir) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let age = std::fs::metadata(&dir)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| SystemTime::now().duration_since(m).ok());
                if age.is_some_and(|a| a > STALE) {
                    // Stale: its holder died (proper-lockfile removes it too).
                    let _ = std::fs::remove_dir(&dir);
                    continue;
                }
                if clock.instant().saturating_duration_since(started) >= wait {
                    return Err(Error::StoreUnavailable {
                        message: format!(
                            "the Salesforce CLI has held the lock on {} for more than {} s and keeps it fresh, so sfx gives up rather than race it",
                            file.display(),
                            wait.as_secs()
                        ),
                        hint: Some(format!(
                            "let the running `sf` command finish, then run sfx again; if no sf is running, remove the directory {}",
                            dir.display()
                        )),
                        source: None,
                    });
                }
                clock.sleep(LOCK_POLL);
            }
            Err(e) => {
                return Err(Error::Other(format!(
                    "cannot take the Salesforce CLI's lock {}: {e}",
                    dir.display()
                )));
            }
        }
    }
    let (tx, rx) = mpsc::channel::<()>();
    let d = dir.clone();
    let mine = Arc::new(Mutex::new(stamp(&dir)));
    let kept = mine.clone();
    // Real time, on purpose: the keeper keeps the directory's modification
    // time fresh for sf, another process that judges it by the real clock.
    let keeper = std::thread::spawn(move || {
        while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(LOCK_UPDATE) {
            let mut m = kept.lock().unwrap_or_else(|e| e.into_inner());
            // Keep fresh only the lock sfx still holds.
            if m.is_none() || stamp(&d) != *m {
                *m = None;
                break;
            }
            touch(&d);
            *m = stamp(&d);
        }
    });
    Ok(SfLock {
        dir,
        stop: Some(tx),
        keeper: Some(keeper),
        mine,
    })
}

/// One login sf has, for the list (no secret read).
#[derive(Debug, Clone)]
pub struct Listed {
    pub aliases: Vec<String>,
    pub username: String,
    pub instance_url: Option<String>,
    pub org_id: Option<String>,
    /// Why the file could not be read, when it could not.
    pub problem: Option<String>,
}

/// Every login in sf's directory, sorted by username.
pub fn list(dir: &Path) -> Result<Vec<Listed>, Error> {
    let aliases = aliases(dir)?;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Other(format!("cannot read {}: {e}", dir.display())));
        }
    };
    let mut out = Vec::new();
    for entry in entries.flatten().take(10_000) {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_auth_file_name(name) {
            continue;
        }
        let stem = name.trim_end_matches(".json").to_string();
        let (username, instance_url, org_id, problem) = match AuthFile::read(&entry.path()) {
            Ok(Some(f)) => (f.username, f.instance_url, f.org_id, None),
            Ok(None) => continue,
            Err(e) => (stem.clone(), None, None, Some(e.to_string())),
        };
        let mut names: Vec<String> = aliases
            .iter()
            .filter(|(_, u)| *u == username)
            .map(|(a, _)| a.clone())
            .collect();
        names.sort();
        out.push(Listed {
            aliases: names,
            username,
            instance_url,
            org_id,
            problem,
        });
    }
    out.sort_by(|a, b| a.username.cmp(&b.username));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_file_names_follow_sfs_pattern() {
        for ok in ["me@acme.com.json", "a@b.c.json", "dev+1@x.org.sandbox.json"] {
            assert!(is_auth_file_name(ok), "{ok}");
        }
        for bad in [
            "alias.json",
            "key.json",
            ".me@a.com.json",
            "me@acme.json",
            "me@a.com",
            "me@a..com.json",
            "me@a.c om.json",
        ] {
            assert!(!is_auth_file_name(bad), "{bad}");
        }
    }

    #[test]
    fn usernames_cannot_leave_the_directory() {
        let d = Path::new("/h/.sfdx");
        assert!(auth_path(d, "../x").is_err());
        assert!(auth_path(d, "a/b@c.com").is_err());
        assert_eq!(auth_path(d, "me@a.com").unwrap(), d.join("me@a.com.json"));
    }

    #[test]
    fn a_stale_lock_is_taken_over_and_a_fresh_one_waited_for() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("me@a.com.json");
        let clock = crate::clock::FakeClock::at(chrono::Utc::now());
        let l = lock(&f, LOCK_WAIT, &clock).unwrap();
        assert!(t.path().join("me@a.com.json.lock").is_dir());
        assert!(clock.slept().is_empty());
        // A lock kept fresh: waited for exactly LOCK_WAIT, looked at every
        // LOCK_POLL, then exit 6.
        let err = lock(&f, LOCK_WAIT, &clock).err().unwrap();
        assert_eq!(err.exit(), crate::exit::Exit::StoreUnavailable);
        assert!(err.to_string().contains("for more than 15 s"), "{err}");
        assert_eq!(clock.elapsed(), LOCK_WAIT);
        let slept = clock.slept();
        assert_eq!(slept.len(), 150);
        assert!(slept.iter().all(|d| *d == LOCK_POLL), "{slept:?}");
        drop(l);
        assert!(!t.path().join("me@a.com.json.lock").exists());
        // A lock left 11 s ago by a dead process.
        let d = t.path().join("me@a.com.json.lock");
        std::fs::create_dir(&d).unwrap();
        std::fs::File::open(&d)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(11))
            .unwrap();
        let before = clock.slept().len();
        let _l = lock(&f, LOCK_WAIT, &clock).unwrap();
        assert_eq!(clock.slept().len(), before, "taken over at once");
    }
}
