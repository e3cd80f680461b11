//! An append-only log of record updates beside a store file (issue #23).
//!
//! `orgs.json` holds every org, so rewriting it for each refresh costs as many
//! bytes as there are orgs: a watch over 10,000 two-hour sessions would rewrite
//! a 6 MB file more than once a second. Instead, a change that only replaces
//! existing records (a refresh's new token state, an introspected expiry) is
//! appended to `orgs.journal` beside it — one `write` and one `fsync` of a few
//! hundred bytes under the lock that already guards the file — and readers apply
//! the log over the file. When the log outgrows a fraction of the file it is
//! compacted: the file is written anew (an atomic rename) and the log removed,
//! so the amortized cost of an update does not grow with the number of orgs.
//!
//! Format, one JSON document per line:
//!
//! ```text
//! {"sfx_journal":1,"base":"<SHA-256 of the file's bytes, hex>"}
//! {"key":"<alias>","value":{…the whole record…}}
//! ```
//!
//! The header binds the log to the exact bytes of the file it extends: a file
//! written anew (by a compaction, a login, or an older sfx that knows nothing of
//! the log) has another digest, so a log left over is ignored — never applied
//! over records it does not extend — and replaced by the next append. A last
//! line without its newline is an append cut short by a crash: it is ignored,
//! and cut off by the next append. Anything else that does not parse is damage,
//! reported in a sentence (see [`parse`]).

use std::io::Write;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The version of the format above.
const FORMAT: u32 = 1;

/// Which bytes a log extends: the SHA-256 of the base file, in hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseId(String);

impl BaseId {
    pub fn of(bytes: &[u8]) -> BaseId {
        BaseId::from_digest(Sha256::digest(bytes).as_slice())
    }

    fn from_digest(d: &[u8]) -> BaseId {
        BaseId(d.iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// A writer that hashes every byte it passes on: the id of a file as it is
/// streamed to disk, without holding it whole in memory.
pub struct Hashing<'a> {
    inner: &'a mut dyn Write,
    hash: Sha256,
}

impl<'a> Hashing<'a> {
    pub fn new(inner: &'a mut dyn Write) -> Hashing<'a> {
        Hashing {
            inner,
            hash: Sha256::new(),
        }
    }

    pub fn id(self) -> BaseId {
        BaseId::from_digest(self.hash.finalize().as_slice())
    }
}

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    sfx_journal: u32,
    base: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<V> {
    key: String,
    value: Option<V>,
}

#[derive(Serialize)]
struct LineOut<'a, V> {
    key: &'a str,
    value: Option<&'a V>,
}

/// A log read for a base.
#[derive(Debug)]
pub enum Parsed<V> {
    /// The log extends another version of the file: ignore it.
    Other,
    /// The updates to apply, in order (`None`: the record was removed), and
    /// the length of the whole lines read (a torn last line comes after it).
    Applies {
        entries: Vec<(String, Option<V>)>,
        whole: u64,
    },
}

/// Parse a log's bytes for the base `base`. `Err`: the log is damaged (why,
/// with the line number); a torn last line is not damage.
pub fn parse<V: DeserializeOwned>(bytes: &[u8], base: &BaseId) -> Result<Parsed<V>, String> {
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut lines = bytes[..whole].split(|&b| b == b'\n');
    let Some(first) = lines.next().filter(|_| whole > 0) else {
        // Nothing but (perhaps) a header cut short: no update was completed.
        return Ok(Parsed::Applies {
            entries: Vec::new(),
            whole: 0,
        });
    };
    // serde's text may quote a value (a token, in the secrets journal): only
    // where it failed is shown, as for the other lines.
    let header: Header = serde_json::from_slice(first).map_err(|e| {
        format!(
            "line 1 is not the header sfx writes (column {})",
            e.column()
        )
    })?;
    if header.sfx_journal != FORMAT {
        return Err(format!(
            "it is in format {}, which this sfx does not read (it reads format {FORMAT})",
            header.sfx_journal
        ));
    }
    if header.base != base.0 {
        return Ok(Parsed::Other);
    }
    let mut entries = Vec::new();
    for (i, line) in lines.enumerate() {
        if line.is_empty() {
            // The split's last piece after the final newline.
            continue;
        }
        let l: Line<V> = serde_json::from_slice(line)
            // serde's text may quote a value: only where it failed is shown.
            .map_err(|e| format!("line {} does not parse (column {})", i + 2, e.column()))?;
        entries.push((l.key, l.value));
    }
    Ok(Parsed::Applies {
        entries,
        whole: whole as u64,
    })
}

/// The bytes that start a new log for `base` with `updates`.
pub fn start<V: Serialize>(
    base: &BaseId,
    updates: &[(&str, Option<&V>)],
) -> std::io::Result<Vec<u8>> {
    let mut out = serde_json::to_vec(&Header {
        sfx_journal: FORMAT,
        base: base.0.clone(),
    })?;
    out.push(b'\n');
    out.extend(lines(updates)?);
    Ok(out)
}

/// The lines of `updates`, each ending in a newline.
pub fn lines<V: Serialize>(updates: &[(&str, Option<&V>)]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    for (key, value) in updates {
        serde_json::to_writer(&mut out, &LineOut { key, value: *value })?;
        out.push(b'\n');
    }
    Ok(out)
}

/// Append `bytes` to the log at `path` whose whole lines end at `whole` (a
/// torn line after them is cut off first): one write, then fsync. Returns the
/// file, still open (its identity is the version written, see [`super::cache`]).
/// The caller holds the lock that guards the log.
pub fn append(path: &Path, whole: u64, bytes: &[u8]) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Never through a link, never blocking on a FIFO put there.
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    let mut f = opts.open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("it is not a regular file"));
    }
    if meta.len() != whole {
        // A torn line from an append cut short (or bytes added meanwhile by
        // hand): the log is exactly its whole lines before anything is added.
        f.set_len(whole)?;
    }
    use std::io::Seek;
    f.seek(std::io::SeekFrom::Start(whole))?;
    f.write_all(bytes)?;
    f.sync_data()?;
    Ok(f)
}

/// Whether a log of `log_len` bytes over a base of `base_len` bytes is due
/// for compaction: past a quarter of the base, so the base's rewrite is paid
/// for by as many appends as a quarter of it holds (four bytes of rewrite per
/// byte appended, on average, whatever the number of records).
pub fn due(log_len: u64, base_len: u64) -> bool {
    log_len > base_len / 4
}

#[cfg(test)]
mod tests {
    use super::*;

    type V = std::collections::BTreeMap<String, u32>;

    fn v(n: u32) -> V {
        [("n".to_string(), n)].into()
    }

    #[test]
    fn round_trip_torn_line_and_other_base() {
        let base = BaseId::of(b"{}");
        let mut bytes = start(&base, &[("a", Some(&v(1)))]).unwrap();
        bytes.extend(lines::<V>(&[("b", Some(&v(2))), ("a", None)]).unwrap());
        let whole = bytes.len() as u64;
        bytes.extend(b"{\"key\":\"a\",\"val");
        let Parsed::Applies { entries, whole: w } = parse::<V>(&bytes, &base).unwrap() else {
            panic!("the log applies to its base");
        };
        assert_eq!(w, whole);
        assert_eq!(
            entries,
            [
                ("a".to_string(), Some(v(1))),
                ("b".to_string(), Some(v(2))),
                ("a".to_string(), None)
            ]
        );
        assert!(matches!(
            parse::<V>(&bytes, &BaseId::of(b"{ }")).unwrap(),
            Parsed::Other
        ));
        // A header cut short: nothing was completed.
        assert!(matches!(
            parse::<V>(b"{\"sfx_jou", &base).unwrap(),
            Parsed::Applies { ref entries, whole: 0 } if entries.is_empty()
        ));
    }

    #[test]
    fn damage_is_a_sentence_not_a_panic() {
        let base = BaseId::of(b"{}");
        let good = start::<V>(&base, &[]).unwrap();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not json\n".to_vec(), "line 1"),
            (b"{\"sfx_journal\":9,\"base\":\"x\"}\n".to_vec(), "format 9"),
            ([good.clone(), b"garbage\n".to_vec()].concat(), "line 2"),
            (
                [
                    good.clone(),
                    b"{\"key\":\"a\",\"value\":{\"n\":\"secret\"}}\n".to_vec(),
                ]
                .concat(),
                "line 2",
            ),
            ([good.clone(), b"\xff\xfe\n".to_vec()].concat(), "line 2"),
        ];
        for (bytes, want) in cases {
            let e = parse::<V>(&bytes, &base).unwrap_err();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("secret"), "{e}");
        }
    }

    #[test]
    fn append_cuts_a_torn_line_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orgs.journal");
        let base = BaseId::of(b"{}");
        let head = start::<V>(&base, &[("a", Some(&v(1)))]).unwrap();
        std::fs::write(&path, [&head[..], b"{\"key\":\"a\""].concat()).unwrap();
        append(
            &path,
            head.len() as u64,
            &lines(&[("b", Some(&v(2)))]).unwrap(),
        )
        .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let Parsed::Applies { entries, .. } = parse::<V>(&bytes, &base).unwrap() else {
            panic!("applies");
        };
        assert_eq!(entries.len(), 2);
        assert!(bytes.ends_with(b"\n"));
    }

    #[test]
    fn compaction_is_due_past_a_quarter_of_the_base() {
        assert!(!due(25, 100));
        assert!(due(26, 100));
        assert!(!due(1_500_000, 6_000_000));
        assert!(due(1_500_001, 6_000_000));
    }
}
