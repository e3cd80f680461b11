//! Limits on input (contract, "Limits on input"; issue #11): the range of every
//! duration a user can give, and the size of every file or stream sfx reads.
//!
//! A duration outside its range, one that overflows, or one that is not a duration
//! is a usage error (exit 2) naming the flag (and its variable) and the range, so
//! no later arithmetic on it can overflow. Files are read through [`read_capped`]:
//! a device such as `/dev/zero`, a FIFO or a huge file is refused with a sentence
//! instead of hanging or filling memory.

use std::io::{BufRead, Read};
use std::path::Path;
use std::time::Duration;

const MIN: u64 = 60;
const HOUR: u64 = 3_600;
const DAY: u64 = 86_400;

/// The accepted range of one duration flag or variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationRange {
    /// How the value is named in errors: `--timeout (or SFX_TIMEOUT)`.
    pub name: &'static str,
    pub min: Duration,
    pub max: Duration,
}

/// `--timeout` / `SFX_TIMEOUT`: one HTTP attempt.
pub const TIMEOUT: DurationRange = DurationRange {
    name: "--timeout (or SFX_TIMEOUT)",
    min: Duration::from_millis(100),
    max: Duration::from_secs(HOUR),
};
/// `--login-timeout` / `SFX_LOGIN_TIMEOUT`: waiting for a browser or a device approval.
pub const LOGIN_TIMEOUT: DurationRange = DurationRange {
    name: "--login-timeout (or SFX_LOGIN_TIMEOUT)",
    min: Duration::from_secs(1),
    max: Duration::from_secs(HOUR),
};
/// `--session-timeout`: the org's session length (Salesforce's longest is 24 h).
pub const SESSION_TIMEOUT: DurationRange = DurationRange {
    name: "--session-timeout",
    min: Duration::from_secs(MIN),
    max: Duration::from_secs(366 * DAY),
};
/// `--wait` / `SFX_WAIT`: how long a reader waits for a refresher (issue #20).
pub const WAIT: DurationRange = DurationRange {
    name: "--wait (or SFX_WAIT)",
    min: Duration::from_secs(1),
    max: Duration::from_secs(HOUR),
};
/// `expires --within`.
pub const WITHIN: DurationRange = window("--within");
/// `refresh --if-expiring-within`.
pub const IF_EXPIRING_WITHIN: DurationRange = window("--if-expiring-within");
/// `token --min-valid`.
pub const MIN_VALID: DurationRange = window("--min-valid");
/// `watch --refresh-before`.
pub const REFRESH_BEFORE: DurationRange = window("--refresh-before");
/// `watch --keepalive`.
pub const KEEPALIVE: DurationRange = DurationRange {
    name: "--keepalive",
    min: Duration::from_secs(1),
    max: Duration::from_secs(366 * DAY),
};
/// `watch --exec-timeout`: how long an `--exec` hook may run.
pub const EXEC_TIMEOUT: DurationRange = DurationRange {
    name: "--exec-timeout",
    min: Duration::from_secs(1),
    max: Duration::from_secs(DAY),
};
/// `watch`'s hidden check-pace knobs (`SFX_WATCH_MIN_CHECK`, `SFX_WATCH_MAX_CHECK`).
pub const WATCH_MIN_CHECK: DurationRange = DurationRange {
    name: "SFX_WATCH_MIN_CHECK",
    min: Duration::from_millis(100),
    max: Duration::from_secs(DAY),
};
pub const WATCH_MAX_CHECK: DurationRange = DurationRange {
    name: "SFX_WATCH_MAX_CHECK",
    min: Duration::from_millis(100),
    max: Duration::from_secs(DAY),
};

/// A window before expiry: from 0 to 366 days.
const fn window(name: &'static str) -> DurationRange {
    DurationRange {
        name,
        min: Duration::ZERO,
        max: Duration::from_secs(366 * DAY),
    }
}

/// Every range, for the README's table and the tests.
pub const DURATIONS: &[DurationRange] = &[
    TIMEOUT,
    LOGIN_TIMEOUT,
    WAIT,
    SESSION_TIMEOUT,
    WITHIN,
    IF_EXPIRING_WITHIN,
    MIN_VALID,
    REFRESH_BEFORE,
    KEEPALIVE,
    EXEC_TIMEOUT,
    WATCH_MIN_CHECK,
    WATCH_MAX_CHECK,
];

/// `0s`, `100ms`, `1m`, `1h`, `366d`: the bounds as a user would type them.
fn show(d: Duration) -> String {
    let secs = d.as_secs();
    if d.is_zero() {
        return "0s".to_string();
    }
    if d.subsec_nanos() != 0 {
        return format!("{}ms", d.as_millis());
    }
    for (size, unit) in [(DAY, "d"), (HOUR, "h"), (MIN, "m")] {
        if secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

impl DurationRange {
    /// `from 100ms to 1h`.
    pub fn describe(&self) -> String {
        format!("from {} to {}", show(self.min), show(self.max))
    }

    /// Parse a typed duration and check it against the range.
    pub fn parse(&self, s: &str) -> Result<Duration, String> {
        let shown = crate::text::sanitize(s, 40);
        let range = self.describe();
        let d = humantime::parse_duration(s.trim()).map_err(|e| {
            let why = match e {
                humantime::DurationError::NumberOverflow => "it is far too long".to_string(),
                e => crate::text::sanitize(&e.to_string(), 80),
            };
            format!(
                "`{shown}` is not a usable duration ({why}); {} takes forms like 90s, 10m or 1h30m, {range}",
                self.name
            )
        })?;
        if d < self.min || d > self.max {
            return Err(format!(
                "`{shown}` is out of range: {} takes a duration {range}",
                self.name
            ));
        }
        Ok(d)
    }
}

/// The largest key file sfx reads (an RSA-4096 PEM is about 3.3 KB).
pub const KEY_FILE_MAX: u64 = 64 * 1024;
/// The largest store file (`orgs.json`, `secrets.json`): thousands of orgs fit.
pub const STORE_FILE_MAX: u64 = 32 * 1024 * 1024;
/// The longest line sfx reads from stdin (a token, an SFDX auth URL, a secret).
pub const STDIN_LINE_MAX: u64 = 64 * 1024;

fn kib(n: u64) -> String {
    if n >= 1024 * 1024 {
        format!("{} MiB", n / (1024 * 1024))
    } else {
        format!("{} KiB", n / 1024)
    }
}

/// Read a whole file of at most `max` bytes. A missing file keeps its
/// `NotFound` kind; a device, FIFO or directory, and a file larger than `max`,
/// are `InvalidData` errors whose text says what is wrong.
pub fn read_capped(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "it is not a regular file (a device, a pipe or a directory)",
        ));
    }
    let too_big = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "it is larger than {}, far more than it should hold",
                kib(max)
            ),
        )
    };
    if meta.len() > max {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(too_big());
    }
    Ok(bytes)
}

/// Read one line of at most [`STDIN_LINE_MAX`] bytes (without its line end
/// handling: the caller trims). A longer line is an error, not a hang.
pub fn read_line_capped(r: &mut impl BufRead, what: &str) -> Result<String, String> {
    let mut buf = Vec::new();
    r.take(STDIN_LINE_MAX + 1)
        .read_until(b'\n', &mut buf)
        .map_err(|e| format!("cannot read the {what} from stdin: {e}"))?;
    if buf.len() as u64 > STDIN_LINE_MAX && !buf.ends_with(b"\n") {
        return Err(format!(
            "stdin carries more than {} without a line end; the {what} is one line (is stdin the right file?)",
            kib(STDIN_LINE_MAX)
        ));
    }
    String::from_utf8(buf).map_err(|_| format!("the {what} on stdin is not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_accept_their_bounds_and_refuse_beyond() {
        for r in DURATIONS {
            assert!(r.min <= r.max, "{}", r.name);
            assert_eq!(r.parse(&show(r.min)), Ok(r.min), "{}", r.name);
            assert_eq!(r.parse(&show(r.max)), Ok(r.max), "{}", r.name);
            let over = r.parse(&show(r.max + Duration::from_secs(1))).unwrap_err();
            assert!(
                over.contains(r.name) && over.contains("out of range"),
                "{over}"
            );
        }
        let huge = TIMEOUT.parse("300000000000y").unwrap_err();
        assert!(
            huge.contains("--timeout") && huge.contains("to 1h"),
            "{huge}"
        );
        let junk = SESSION_TIMEOUT.parse("soon\u{202e}").unwrap_err();
        assert!(!junk.contains('\u{202e}'), "{junk}");
        assert!(SESSION_TIMEOUT.parse("400d").is_err());
        assert!(SESSION_TIMEOUT.parse("30s").is_err());
        assert_eq!(WITHIN.parse("0s"), Ok(Duration::ZERO));
        assert!(WITHIN.parse("-5m").is_err());
    }

    #[test]
    fn capped_reads_refuse_devices_and_long_lines() {
        #[cfg(unix)]
        {
            let e = read_capped(Path::new("/dev/zero"), 10).unwrap_err();
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789ab").unwrap();
        assert!(
            read_capped(&p, 10)
                .unwrap_err()
                .to_string()
                .contains("larger than")
        );
        assert_eq!(read_capped(&p, 12).unwrap(), b"0123456789ab");
        let zeros = std::io::repeat(0).take(10 * STDIN_LINE_MAX);
        let e = read_line_capped(&mut std::io::BufReader::new(zeros), "token").unwrap_err();
        assert!(e.contains("without a line end"), "{e}");
        let mut ok = std::io::Cursor::new(b"abc\nrest".to_vec());
        assert_eq!(read_line_capped(&mut ok, "token").unwrap(), "abc\n");
    }
}
