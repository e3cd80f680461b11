//! What the local store trusts: a home that is the user's own and that no one
//! else can write, and store files that are the user's own (issue #24).
//!
//! Whoever can write the sfx home can plant a link where sfx writes, or swap
//! `orgs.json` so that the next refresh sends the refresh token and client
//! secret to a server of theirs; whoever can read `secrets.json` has the tokens.
//! So, as ssh does with `~/.ssh`, sfx refuses (exit 6, with the command that
//! fixes it) to use:
//!
//! - a home (or its `locks/`) owned by another user, or writable by its group
//!   or by everyone;
//! - an `orgs.json` owned by another user or writable by others;
//! - a `secrets.json` owned by another user or readable or writable by others.
//!
//! It changes nothing itself: a home that was open may already hold what
//! someone else put there, and the user is the one to judge that.

use std::path::Path;

use crate::error::Error;

/// What is wrong with `path` for the store, if anything (`None`: it is the
/// user's own and private enough, or it does not exist). `secret`: the file
/// holds secrets, so no one else may even read it.
#[cfg(unix)]
pub fn problem(path: &Path, secret: bool) -> Option<(String, String)> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    // A link planted as the home (in a shared place like /tmp) by someone else:
    // its target may be the user's own, but its owner can point it elsewhere
    // between a check and a read, as for a link above the home.
    if let Ok(link) = std::fs::symlink_metadata(path)
        && link.file_type().is_symlink()
        && link.uid() != me
        && link.uid() != 0
    {
        return Some((
            format!(
                "{} is a symbolic link that belongs to another user (uid {}), who can point it elsewhere at any time",
                path.display(),
                link.uid()
            ),
            "use a path of your own (SFX_HOME), not a link someone else made".into(),
        ));
    }
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() && !meta.is_dir() {
        // A device or FIFO: the reader names it ("not a regular file").
        return None;
    }
    let mode = meta.mode() & 0o7777;
    let shown = path.display();
    if meta.uid() != me {
        return Some((
            format!(
                "{shown} belongs to another user (uid {}, not {me})",
                meta.uid()
            ),
            if meta.is_dir() {
                format!(
                    "use a home of your own (SFX_HOME), or if this one is yours: `chown -R {me} {shown}`"
                )
            } else {
                format!("if the file is yours: `chown {me} {shown}`; otherwise remove it")
            },
        ));
    }
    let open = if secret { 0o077 } else { 0o022 };
    if mode & open != 0 {
        let who = if secret && mode & 0o044 != 0 && mode & 0o022 == 0 {
            "readable"
        } else {
            "writable"
        };
        let fix = if meta.is_dir() { "700" } else { "600" };
        return Some((
            format!(
                "{shown} is {who} by other users (mode {:04o})",
                mode & 0o777
            ),
            format!("make it private: `chmod {fix} {shown}`"),
        ));
    }
    None
}

#[cfg(not(unix))]
pub fn problem(_path: &Path, _secret: bool) -> Option<(String, String)> {
    None
}

/// What is wrong with the directories above the home, if anything: each must
/// belong to the user or root, and one that others can write must be sticky
/// (`/tmp`), or someone else could swap the home for one of theirs between a
/// check and a read. A link on the way counts as its owner's. As ssh checks
/// the directories above `~/.ssh`.
#[cfg(unix)]
pub fn ancestors_problem(home: &Path) -> Option<(String, String)> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let home = std::path::absolute(home).ok()?;
    for dir in home.ancestors().skip(1) {
        let (Ok(link), Ok(meta)) = (std::fs::symlink_metadata(dir), std::fs::metadata(dir)) else {
            continue;
        };
        let shown = dir.display();
        for m in [&link, &meta] {
            if m.uid() != me && m.uid() != 0 {
                return Some((
                    format!(
                        "{shown}, above the home, belongs to another user (uid {})",
                        m.uid()
                    ),
                    "keep the sfx home (SFX_HOME) under directories only you (or root) control"
                        .into(),
                ));
            }
        }
        let mode = meta.mode();
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Some((
                format!(
                    "{shown}, above the home, is writable by other users (mode {:04o}, not sticky)",
                    mode & 0o7777
                ),
                format!("`chmod go-w {shown}`, or keep the sfx home elsewhere"),
            ));
        }
    }
    None
}

#[cfg(not(unix))]
pub fn ancestors_problem(_home: &Path) -> Option<(String, String)> {
    None
}

/// Refuse the directories above the home when others can change them.
///
/// Checked once per process and directory: those directories belong to the
/// user or root, who alone can change them afterwards (a watch over many orgs
/// reads the store thousands of times).
pub fn check_ancestors(home: &Path) -> Result<(), Error> {
    static TRUSTED: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());
    let known = |t: &Vec<std::path::PathBuf>| t.iter().any(|p| p == home);
    if known(&TRUSTED.lock().unwrap_or_else(|e| e.into_inner())) {
        return Ok(());
    }
    match ancestors_problem(home) {
        None => {
            TRUSTED
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(home.to_path_buf());
            Ok(())
        }
        Some(p) => Err(refusal(p)),
    }
}

fn refusal((what, fix): (String, String)) -> Error {
    Error::StoreUnavailable {
        message: format!(
            "sfx does not use its store there: {what}, so someone else could change where sfx sends your tokens, or read them"
        ),
        hint: Some(format!(
            "{fix} (sfx, like ssh with ~/.ssh, only trusts a home that is yours and private)"
        )),
        source: None,
    }
}

/// Refuse a path of the store that is not the user's own and private.
pub fn check(path: &Path, secret: bool) -> Result<(), Error> {
    match problem(path, secret) {
        None => Ok(()),
        Some(p) => Err(refusal(p)),
    }
}
