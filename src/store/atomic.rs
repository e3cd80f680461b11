//! Crash-safe file writes: temp file in the same directory, fsync, rename, fsync
//! the directory. A crash or `kill -9` at any moment leaves the old or the new
//! file, never a mix. Files are created `0600` (tempfile's default on Unix).
//!
//! Callers hold the lock that guards `path` (`orgs.lock`, `secrets.lock`), so a
//! temp file of `path` found here was left by a writer that died mid-write: it is
//! removed, and such leftovers never pile up.

use std::io::Write;
use std::path::Path;

pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_kept(path, bytes).map(drop)
}

/// [`write()`], returning the written file still open: its identity (inode, time,
/// size) is exactly the version this call wrote, whatever happens to `path` next
/// (see [`super::cache`]).
pub fn write_kept(path: &Path, bytes: &[u8]) -> std::io::Result<std::fs::File> {
    write_kept_with(path, &mut |w| w.write_all(bytes))
}

/// [`write_kept`] with the contents streamed by `fill` (through a buffer) rather
/// than held whole in memory: a store file of 10,000 orgs is megabytes, and a
/// buffer that large, made again for every write, is what a long-running watch
/// keeps as resident memory (issue #16). An error from `fill` leaves `path` as it was.
pub fn write_kept_with(
    path: &Path,
    fill: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<std::fs::File> {
    write_with(path, fill, ".tmp", false)
}

/// [`write()`] for a file another program owns (the Salesforce CLI's, under its
/// lock): the file keeps its mode, and the temp file's name ends in `.sfx.tmp`,
/// so only sfx's own leftovers are ever removed there.
pub fn write_keeping_mode(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with(path, &mut |w| w.write_all(bytes), ".sfx.tmp", true).map(drop)
}

fn write_with(
    path: &Path,
    fill: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
    suffix: &str,
    keep_mode: bool,
) -> std::io::Result<std::fs::File> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let prefix = format!(".{name}.");
    remove_leftovers(dir, &prefix, suffix);
    let tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(suffix)
        .tempfile_in(dir)?;
    if keep_mode && let Ok(meta) = std::fs::metadata(path) {
        std::fs::set_permissions(tmp.path(), meta.permissions())?;
    }
    {
        let mut w = std::io::BufWriter::with_capacity(64 * 1024, tmp.as_file());
        fill(&mut w)?;
        w.flush()?;
    }
    tmp.as_file().sync_all()?;
    let file = tmp.persist(path).map_err(|e| e.error)?;
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    Ok(file)
}

/// Temp files of a writer killed between creating and renaming its temp file.
fn remove_leftovers(dir: &Path, prefix: &str, suffix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(prefix) && name.ends_with(suffix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_removes_leftover_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orgs.json");
        std::fs::write(dir.path().join(".orgs.json.abc123.tmp"), b"half").unwrap();
        std::fs::write(dir.path().join(".other.json.x.tmp"), b"keep").unwrap();
        write(&path, b"one").unwrap();
        write(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [".other.json.x.tmp", "orgs.json"]);
    }

    #[cfg(unix)]
    #[test]
    fn keeping_mode_keeps_the_files_mode_and_removes_only_sfx_leftovers() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("user.json");
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        std::fs::write(dir.path().join(".user.json.x.sfx.tmp"), b"ours").unwrap();
        std::fs::write(dir.path().join(".user.json.y.tmp"), b"not ours").unwrap();
        write_keeping_mode(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        assert!(!dir.path().join(".user.json.x.sfx.tmp").exists());
        assert!(dir.path().join(".user.json.y.tmp").exists());
    }
}
