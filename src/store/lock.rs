//! Cross-process locks: std `File::lock` on files under `<sfx home>/locks/`.
//!
//! `orgs.lock` guards read-modify-write of the metadata file and `secrets.lock`
//! that of the secrets file; one `org-<alias>.lock` per org (alias [`encode`]d)
//! serialises refreshes,
//! so twenty `sfx token` calls racing on an expired token make one token request.
//! The locks live under the sfx home, so two `SFX_HOME`s never block each other.
//!
//! Stale locks cannot happen: these are OS advisory locks (`flock` on Unix,
//! `LockFileEx` on Windows) that the kernel drops when the holder's process dies,
//! `kill -9` included; the file left behind is just a name. A holder that is alive
//! but stuck (stopped, hung) does not block forever either: waiting gives up after
//! a bound and says which process holds the lock (its pid is written in the file).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::clock::Clock;

use crate::error::Error;

/// Held while alive; dropping it (or the process dying) releases the lock.
pub struct Lock {
    _file: File,
}

/// How long to wait for the short locks (`orgs`, `secrets`): their holders only
/// read and rename one small file.
pub const SHORT_WAIT: Duration = Duration::from_secs(30);

/// The lock file for `name` under `<dir>/locks/` (`name` is already a safe
/// file name: a fixed word, or built with [`encode`]).
pub fn path_for(dir: &Path, name: &str) -> PathBuf {
    dir.join("locks").join(format!("{name}.lock"))
}

/// An alias as a file-name fragment, injectively: `a-z`, `0-9`, `.`, `-` and
/// `@` stand for themselves; every other byte (`_` and upper case included)
/// becomes `_` and two lower-case hex digits. So two different aliases never
/// name the same file, not even on a case-insensitive file system (issue #11).
pub fn encode(alias: &str) -> String {
    let mut out = String::with_capacity(alias.len());
    for b in alias.bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'@') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

/// Take the lock `name` under `dir`, waiting at most `wait` for another process
/// to release it. `what` names the lock in messages ("the refresh lock of org prod");
/// a wait of more than two seconds is told to `notes`. The wait and its pacing go
/// through `clock`.
pub fn acquire(
    dir: &Path,
    name: &str,
    wait: Duration,
    what: &str,
    notes: &super::Notes,
    clock: &dyn Clock,
) -> Result<Lock, Error> {
    let locks = dir.join("locks");
    super::trust::check(dir, false)?;
    super::ensure_private_dir(&locks)?;
    super::trust::check(&locks, false)?;
    let path = path_for(dir, name);
    let mut file = open_lock_file(&path)?;
    let started = clock.instant();
    let mut pause = Duration::from_millis(5);
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => {
                return Err(Error::io(format!("cannot lock {}", path.display()), e));
            }
        }
        let waited = clock.instant().saturating_duration_since(started);
        if waited >= wait {
            let holder = holder_pid(&mut file)
                .map(|p| format!("sfx process {p}"))
                .unwrap_or_else(|| "another sfx process".to_string());
            return Err(Error::StoreUnavailable {
                message: format!(
                    "{holder} has held {what} for more than {}, so this one gives up",
                    crate::timefmt::humanize(wait)
                ),
                hint: Some(format!(
                    "if that process is stuck, stop it (the lock is released when it exits); the lock file is {}",
                    path.display()
                )),
                source: None,
            });
        }
        if !told && waited >= Duration::from_secs(2) {
            told = true;
            let holder = holder_pid(&mut file)
                .map(|p| format!(" (pid {p})"))
                .unwrap_or_default();
            notes.tell(super::Said::Waiting(&format!(
                "waiting for another sfx process{holder} that holds {what}…"
            )));
        }
        clock.sleep(pause.min(wait.saturating_sub(waited)));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
    // Say who holds it, for the message of a process that gives up waiting.
    // Best effort: a failure here does not matter.
    let _ = file
        .set_len(0)
        .and_then(|_| file.rewind())
        .and_then(|_| writeln!(file, "{}", std::process::id()));
    Ok(Lock { _file: file })
}

/// Open (or create) a lock file without following a symbolic link and without
/// blocking on a FIFO: sfx truncates the file and writes its pid into it, so a
/// link planted there would make it overwrite whatever the link points at
/// (issue #24). Anything but a regular file is refused.
fn open_lock_file(path: &Path) -> Result<File, Error> {
    let mut opts = OpenOptions::new();
    opts.create(true).truncate(false).read(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    let refuse = |what: &str| Error::StoreUnavailable {
        message: format!(
            "the lock file {} is {what}, not a file sfx made; sfx does not follow or write through it (something may be trying to make sfx overwrite another file)",
            path.display()
        ),
        hint: Some(format!(
            "look at what it is and who put it there, then remove it: `rm {}`",
            path.display()
        )),
        source: None,
    };
    let file = match opts.open(path) {
        Ok(f) => f,
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(refuse("a symbolic link"));
        }
        // A home on a read-only file system (a read-only volume in a
        // container): a lock file that is there locks as well read-only, so
        // whatever needs no write (a valid token) still works.
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::EROFS) => {
            use std::os::unix::fs::OpenOptionsExt;
            let mut ro = OpenOptions::new();
            ro.read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
            match ro.open(path) {
                Ok(f) => f,
                Err(_) => {
                    return Err(Error::StoreUnavailable {
                        message: format!(
                            "cannot take the lock {}: the sfx home is on a read-only file system",
                            path.display()
                        ),
                        hint: Some(
                            "give sfx a writable home (SFX_HOME), or make this one writable".into(),
                        ),
                        source: Some(Box::new(e)),
                    });
                }
            }
        }
        Err(e) => {
            return Err(Error::io(
                format!("cannot open the lock file {}", path.display()),
                e,
            ));
        }
    };
    let meta = file
        .metadata()
        .map_err(|e| Error::io(format!("cannot open the lock file {}", path.display()), e))?;
    if !meta.is_file() {
        return Err(refuse(if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        }));
    }
    Ok(file)
}

fn holder_pid(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.rewind().ok()?;
    file.take(32).read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #11: `a+b` and `a_b` shared one lock file (both became `a_b`).
    #[test]
    fn different_aliases_never_share_a_lock_file() {
        let aliases = [
            "a+b", "a_b", "a_2b", "a_5f", "A", "a", "a.b", "a-b", "a@b", "prod", "Prod", "x_", "_",
        ];
        let dir = Path::new("/h");
        let mut seen = std::collections::HashMap::new();
        for a in aliases {
            let p = path_for(dir, &format!("org-{}", encode(a)));
            // Compared without case: some file systems ignore it.
            let key = p.to_string_lossy().to_lowercase();
            if let Some(other) = seen.insert(key, a) {
                panic!("{a} and {other} share {}", p.display());
            }
        }
        assert_eq!(encode("prod.eu-1@x"), "prod.eu-1@x");
        assert_eq!(encode("a+b"), "a_2bb");
        assert_eq!(encode("a_b"), "a_5fb");
    }

    /// A holder that is alive but stuck: the waiter gives up after exactly its
    /// bound (3 x --timeout + 30 s, here with --timeout 1s), naming the holder's
    /// pid and the lock file, looking again at 5, 10, 20, 40, 80, then every
    /// 100 ms. On the fake clock this takes milliseconds.
    #[test]
    fn a_stuck_holder_makes_a_waiter_give_up_after_exactly_its_bound() {
        let home = tempfile::tempdir().unwrap();
        let clock = crate::clock::FakeClock::at(chrono::Utc::now());
        // The refresh lock's bound with --timeout 1s: 3 x 1 s + 30 s.
        let wait = Duration::from_secs(33);
        let told = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let notes = {
            let told = told.clone();
            crate::store::Notes::to(move |said| {
                if let crate::store::Said::Waiting(line) = said {
                    told.lock().unwrap().push(line.to_string());
                }
            })
        };
        let held = acquire(
            home.path(),
            "org-prod",
            wait,
            "the refresh lock of org prod",
            &notes,
            &clock,
        )
        .unwrap();
        assert!(clock.slept().is_empty(), "a free lock is taken at once");
        let err = acquire(
            home.path(),
            "org-prod",
            wait,
            "the refresh lock of org prod",
            &notes,
            &clock,
        )
        .err()
        .unwrap();
        assert_eq!(err.exit(), crate::exit::Exit::StoreUnavailable);
        let text = format!("{err} {}", err.hint().unwrap_or_default());
        assert!(
            text.contains(&format!(
                "sfx process {} has held the refresh lock of org prod for more than 33s",
                std::process::id()
            )),
            "{text}"
        );
        assert!(text.contains("locks/org-prod.lock"), "{text}");
        assert_eq!(clock.elapsed(), wait, "gave up after exactly its bound");
        // The wait was said once, to the caller (no store prints).
        assert_eq!(
            *told.lock().unwrap(),
            [format!(
                "waiting for another sfx process (pid {}) that holds the refresh lock of org prod…",
                std::process::id()
            )]
        );
        let slept = clock.slept();
        let ms = |n| Duration::from_millis(n);
        assert_eq!(slept[..6], [ms(5), ms(10), ms(20), ms(40), ms(80), ms(100)]);
        assert!(slept[5..].iter().all(|d| *d <= ms(100)), "{slept:?}");
        // Released: the next one takes it at once.
        drop(held);
        let n = clock.slept().len();
        acquire(
            home.path(),
            "org-prod",
            wait,
            "the refresh lock of org prod",
            &notes,
            &clock,
        )
        .unwrap();
        assert_eq!(clock.slept().len(), n);
    }
}
