//! A store file's parsed contents, kept while the file stays the same version.
//!
//! `orgs.json` and `secrets.json` hold every org; `sfx watch --all` over 10,000
//! orgs would otherwise parse megabytes per check (issue #16). The version of a
//! file is its identity: device, inode, modification time and size. sfx never
//! writes a store file in place — every write is a temp file renamed over it
//! ([`super::atomic`]) — so a write by any process is a new inode, and the next
//! read (one `stat`) sees it. The cache keeps the file it parsed open, so its
//! inode cannot be freed and handed to a later file: a new file never passes for
//! the cached one however fast writes follow each other. A file edited in place
//! (by hand) changes its time or size.
//!
//! Readers share the parse behind an [`Arc`] and take only what they need (one
//! record, one secret); a one-shot command parses once, as before.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Which version of a file: device, inode, modification time, size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp(u64, u64, std::time::SystemTime, u64);

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> Stamp {
        #[cfg(unix)]
        let (dev, ino) = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let (dev, ino) = (0, 0);
        Stamp(
            dev,
            ino,
            meta.modified().unwrap_or(std::time::UNIX_EPOCH),
            meta.len(),
        )
    }
}

struct Entry<T> {
    stamp: Stamp,
    /// The parsed file, held open so its inode is not reused (see the module doc).
    _pin: File,
    value: Arc<T>,
}

/// Why a load failed: reading the file, or parsing it.
#[derive(Debug)]
pub enum Fail<E> {
    Io(std::io::Error),
    Parse(E),
}

/// One file's parse, shared by every thread of the process.
pub struct Cached<T> {
    slot: Mutex<Option<Entry<T>>>,
    /// One read and parse at a time: threads that miss together wait for the
    /// first one's parse rather than each holding a copy of their own (the four
    /// workers of a watch over 10,000 orgs held four of each file at start, a
    /// third of its peak memory; issue #23).
    parsing: Mutex<()>,
}

impl<T> Default for Cached<T> {
    fn default() -> Self {
        Cached {
            slot: Mutex::new(None),
            parsing: Mutex::new(()),
        }
    }
}

impl<T> Cached<T> {
    /// The parse of `path` as it is now: the cached one when the file is the
    /// version it came from, else the file read (at most `max` bytes, with
    /// [`crate::limits::read_capped`]'s errors) and parsed. `None`: no file.
    pub fn load<E>(
        &self,
        path: &Path,
        max: u64,
        parse: impl FnOnce(&[u8]) -> Result<T, E>,
    ) -> Result<Option<Arc<T>>, Fail<E>> {
        let now = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.clear();
                return Ok(None);
            }
            Err(e) => return Err(Fail::Io(e)),
        };
        if let Some(hit) = self.hit(Stamp::of(&now)) {
            return Ok(Some(hit));
        }
        let _one = self.parsing.lock().unwrap_or_else(|e| e.into_inner());
        // Parsed by another thread while this one waited.
        if let Some(hit) = self.hit(Stamp::of(&now)) {
            return Ok(Some(hit));
        }
        if !now.is_file() || now.len() > max {
            // Never open a FIFO; the capped reader words the refusal.
            return Err(Fail::Io(refusal(path, max)));
        }
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.clear();
                return Ok(None);
            }
            Err(e) => return Err(Fail::Io(e)),
        };
        // The identity of exactly the file read (the path may be replaced meanwhile).
        let opened = file.metadata().map_err(Fail::Io)?;
        let stamp = Stamp::of(&opened);
        if let Some(hit) = self.hit(stamp) {
            return Ok(Some(hit));
        }
        if !opened.is_file() {
            return Err(Fail::Io(refusal(path, max)));
        }
        // Sized once: growing by doubling held up to twice the file.
        let mut bytes = Vec::with_capacity(opened.len().min(max) as usize + 1);
        (&file)
            .take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(Fail::Io)?;
        if bytes.len() as u64 > max {
            return Err(Fail::Io(refusal(path, max)));
        }
        let value = Arc::new(parse(&bytes).map_err(Fail::Parse)?);
        self.keep(stamp, file, value.clone());
        Ok(Some(value))
    }

    /// Remember what this process just wrote (`file`: the written file, still
    /// open, from [`super::atomic::write_kept`]), so its next read parses nothing.
    pub fn wrote(&self, file: File, value: Arc<T>) {
        match file.metadata() {
            Ok(m) => self.keep(Stamp::of(&m), file, value),
            Err(_) => self.clear(),
        }
    }

    fn hit(&self, stamp: Stamp) -> Option<Arc<T>> {
        let slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.as_ref()
            .filter(|e| e.stamp == stamp)
            .map(|e| e.value.clone())
    }

    fn keep(&self, stamp: Stamp, pin: File, value: Arc<T>) {
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(Entry {
            stamp,
            _pin: pin,
            value,
        });
    }

    fn clear(&self) {
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// The capped reader's error for a file it refuses (not regular, too big).
fn refusal(path: &Path, max: u64) -> std::io::Error {
    match crate::limits::read_capped(path, max) {
        Err(e) => e,
        // It changed back meanwhile: say so rather than guess.
        Ok(_) => std::io::Error::other("it changed while sfx read it; try again"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: &[u8]) -> Result<String, String> {
        String::from_utf8(b.to_vec()).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_once_per_version_and_sees_every_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        let cache = Cached::<String>::default();
        let parses = std::cell::Cell::new(0);
        let load = || {
            cache
                .load(&path, 1024, |b| {
                    parses.set(parses.get() + 1);
                    parse(b)
                })
                .unwrap()
                .map(|v| (*v).clone())
        };
        assert_eq!(load(), None);
        // Many same-size writes in a row, as fast as they come: each is seen.
        for i in 0..50 {
            let text = format!("v{i:03}");
            super::super::atomic::write(&path, text.as_bytes()).unwrap();
            assert_eq!(load().as_deref(), Some(text.as_str()));
            assert_eq!(load().as_deref(), Some(text.as_str()));
        }
        assert_eq!(parses.get(), 50, "one parse per version");
        // Our own write is cached without a parse.
        let f = super::super::atomic::write_kept(&path, b"mine").unwrap();
        cache.wrote(f, Arc::new("mine".into()));
        assert_eq!(load().as_deref(), Some("mine"));
        assert_eq!(parses.get(), 50);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(load(), None);
    }

    /// Threads that miss together (a watch's workers at start) parse the file
    /// once between them, not once each (issue #23: four copies at start).
    #[test]
    fn threads_that_miss_together_parse_once() {
        use std::sync::{Barrier, Condvar};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        super::super::atomic::write(&path, b"big").unwrap();
        let cache = Cached::<String>::default();
        let inside = (Mutex::new(0), Condvar::new());
        let start = Barrier::new(4);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    start.wait();
                    let got = cache.load(&path, 1024, |b| {
                        // Wait (a bounded while) for other parsers to come in.
                        let (n, cv) = &inside;
                        let mut n = n.lock().unwrap();
                        *n += 1;
                        cv.notify_all();
                        let _ = cv
                            .wait_timeout_while(n, std::time::Duration::from_millis(500), |n| {
                                *n < 4
                            })
                            .unwrap();
                        parse(b)
                    });
                    assert_eq!(got.unwrap().unwrap().as_str(), "big");
                });
            }
        });
        assert_eq!(*inside.0.lock().unwrap(), 1, "one parse for four threads");
    }

    #[test]
    fn refuses_what_the_capped_reader_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cached::<String>::default();
        let Err(Fail::Io(e)) = cache.load(dir.path(), 1024, parse) else {
            panic!("a directory was read");
        };
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 2000]).unwrap();
        let Err(Fail::Io(e)) = cache.load(&big, 1024, parse) else {
            panic!("a file over the cap was read");
        };
        assert!(e.to_string().contains("larger than"), "{e}");
    }
}
