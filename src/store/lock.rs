//! Cross-process locks: std `File::lock` on files under `<sfx home>/locks/`.
//!
//! `orgs.lock` guards read-modify-write of the metadata and secrets files; one
//! `<alias>.lock` per org serialises refreshes, so twenty `sfx token` calls racing
//! on an expired token make one token request. The OS drops a lock when its
//! process dies, so a killed process never blocks the next one.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::error::Error;

/// Held while alive.
pub struct Lock {
    _file: File,
}

pub fn acquire(dir: &Path, name: &str) -> Result<Lock, Error> {
    let locks = dir.join("locks");
    super::ensure_private_dir(&locks)?;
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = locks.join(format!("{safe}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::Other(format!("cannot open the lock file {}: {e}", path.display())))?;
    file.lock()
        .map_err(|e| Error::Other(format!("cannot lock {}: {e}", path.display())))?;
    Ok(Lock { _file: file })
}
