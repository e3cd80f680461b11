//! The in-flight journal of a rotating refresh.
//!
//! With refresh-token rotation, a refresh that reached Salesforce spends the stored
//! refresh token, and presenting a spent one again revokes the whole login (every
//! access token of it, in every tool that shares it). When sfx cannot know whether
//! a refresh was delivered — it timed out, the connection dropped, or the process
//! was killed before storing the answer — sending the stored token again would be
//! a gamble. So, before sending a rotating refresh, sfx writes a fingerprint of the
//! refresh token to `locks/org-<alias>.refreshing` (the alias encoded as for the
//! lock), and removes it once the answer is stored (or Salesforce answered at all). If the next refresh finds the
//! fingerprint of the token it is about to send, it first asks introspection
//! whether that refresh token is still active: if so, the earlier request never
//! took effect and the refresh goes ahead; if not, it stops with exit 4 instead of
//! replaying a spent token. The caller holds the org's refresh lock throughout.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::secret::Secret;

pub struct Journal {
    pub path: PathBuf,
}

/// A short, one-way fingerprint: it says which token was in flight without
/// storing the token.
fn fingerprint(token: &Secret) -> String {
    let digest = Sha256::digest(token.expose().as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

impl Journal {
    /// Was a refresh with this token started and never settled?
    pub fn pending_for(&self, token: &Secret) -> bool {
        crate::limits::read_capped(&self.path, 4096)
            .map(|s| String::from_utf8_lossy(&s).trim() == fingerprint(token))
            .unwrap_or(false)
    }

    /// Record that a refresh with this token is about to be sent.
    pub fn begin(&self, token: &Secret) -> Result<(), Error> {
        if let Some(dir) = self.path.parent() {
            super::ensure_private_dir(dir)?;
        }
        // Anything but a regular file (a directory, a FIFO, a link) is not
        // what sfx left here: named and left as it is, not written over.
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && !meta.is_file()
        {
            return Err(Error::StoreUnavailable {
                message: format!(
                    "{} is not a regular file (it is {}), not the journal sfx keeps of a rotating refresh; nothing was sent, and the login is as it was",
                    self.path.display(),
                    kind_of(&meta)
                ),
                hint: Some(format!(
                    "look at what it is, then remove it: `rm -r {}`",
                    self.path.display()
                )),
                source: None,
            });
        }
        // Before anything is sent: a failure here (a full disk) costs nothing.
        super::atomic::write(&self.path, format!("{}\n", fingerprint(token)).as_bytes()).map_err(
            |e| Error::StoreUnavailable {
                message: format!(
                    "cannot record the rotating refresh about to be sent in {} ({e}); nothing was sent, and the login is as it was",
                    self.path.display()
                ),
                hint: Some(match e.kind() {
                    std::io::ErrorKind::ReadOnlyFilesystem => "the sfx home is on a read-only file system: give sfx a writable home (SFX_HOME), or make this one writable".into(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                        "free some disk space, then run the command again".into()
                    }
                    _ => format!(
                        "check that {} is a directory you can write to, then run the command again",
                        self.path.parent().unwrap_or(&self.path).display()
                    ),
                }),
                source: Some(Box::new(e)),
            },
        )
    }

    /// The refresh is settled (its answer stored, or Salesforce answered).
    pub fn end(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_then_end_and_only_the_same_token_matches() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal {
            path: dir.path().join("locks").join("org-a.refreshing"),
        };
        let (a, b) = (Secret::new("5Aep-one"), Secret::new("5Aep-two"));
        assert!(!j.pending_for(&a));
        j.begin(&a).unwrap();
        assert!(j.pending_for(&a) && !j.pending_for(&b));
        assert!(!std::fs::read_to_string(&j.path).unwrap().contains("5Aep"));
        j.end();
        assert!(!j.pending_for(&a));
    }
}
