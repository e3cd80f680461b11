//! Time as an input: every "now" in sfx comes from a [`Clock`] held by the
//! context, so the token lifecycle's rules can be tested at any instant.
//!
//! The binary uses [`SystemClock`]. **Test-only:** `SFX_TEST_NOW` (RFC 3339 or
//! Unix seconds) makes the clock stand still at that instant, so golden files
//! can pin times exactly. It is for the integration tests only (a clock that
//! never moves would stall `sfx watch`); users have no reason to set it.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Where "now" comes from.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until moved: for unit tests.
#[derive(Debug)]
pub struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    pub fn at(t: DateTime<Utc>) -> FixedClock {
        FixedClock(Mutex::new(t))
    }
    /// Move the clock by `secs` (negative moves it back).
    pub fn advance(&self, secs: i64) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t += chrono::Duration::seconds(secs);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The clock of this run: `SFX_TEST_NOW` if set (test-only), else the system
/// clock. An unparsable value is a usage error rather than silently ignored.
pub fn from_env() -> Result<Box<dyn Clock>, String> {
    let Some(v) = std::env::var("SFX_TEST_NOW")
        .ok()
        .filter(|v| !v.trim().is_empty())
    else {
        return Ok(Box::new(SystemClock));
    };
    let v = v.trim();
    let start = DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            v.parse::<i64>()
                .ok()
                .and_then(|s| DateTime::from_timestamp(s, 0))
        })
        .ok_or_else(|| {
            "SFX_TEST_NOW (test-only) takes an RFC 3339 time or Unix seconds".to_string()
        })?;
    Ok(Box::new(FixedClock::at(start)))
}

/// A point on a monotonic clock that keeps counting while the machine is
/// suspended, for deadlines other hosts rely on (the attempt window of a
/// journaled refresh, issue #19): `std::time::Instant` is `CLOCK_MONOTONIC` on
/// Linux, which stops during suspend, so a laptop that sleeps through its window
/// would wake believing the window still open.
///
/// - Linux and Android: `CLOCK_BOOTTIME` (counts suspended time).
/// - Elsewhere: `std::time::Instant`. On macOS that is `CLOCK_UPTIME_RAW`, which
///   does not count time asleep; on the BSDs (`CLOCK_MONOTONIC`) and Windows
///   (`QueryPerformanceCounter`) it depends on the system. There a suspend during
///   the window may not be seen by this check (see `docs/security.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BootInstant(Duration);

impl BootInstant {
    /// Now, on the clock that counts suspended time.
    pub fn now() -> BootInstant {
        BootInstant(boot_now())
    }

    /// The time from `earlier` to `self` (zero if `earlier` is later).
    pub fn saturating_duration_since(self, earlier: BootInstant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl std::ops::Add<Duration> for BootInstant {
    type Output = BootInstant;
    fn add(self, d: Duration) -> BootInstant {
        BootInstant(self.0.saturating_add(d))
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn boot_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_BOOTTIME exists since
    // Linux 2.6.39, and clock_gettime writes nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        // Not expected on any supported kernel; fall back rather than fail.
        return instant_now();
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn boot_now() -> Duration {
    instant_now()
}

/// `Instant` as a duration since the first call (the fallback).
fn instant_now() -> Duration {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    BASE.get_or_init(std::time::Instant::now).elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_instants_move_forward_with_real_time() {
        let a = BootInstant::now();
        std::thread::sleep(Duration::from_millis(30));
        let b = BootInstant::now();
        assert!(b > a);
        let d = b.saturating_duration_since(a);
        assert!(d >= Duration::from_millis(30), "{d:?}");
        assert!(d < Duration::from_secs(5), "{d:?}");
        assert_eq!(a.saturating_duration_since(b), Duration::ZERO);
        assert!(a + Duration::from_millis(10) > a);
        assert!(a + d >= b);
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn on_linux_boot_instants_are_clock_boottime() {
        let raw = || {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            assert_eq!(
                unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) },
                0
            );
            Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
        };
        let before = raw();
        let b = BootInstant::now();
        let after = raw();
        assert!(before <= b.0 && b.0 <= after, "{before:?} {b:?} {after:?}");
        // Not the process-relative fallback: boot time is far from zero for any
        // process started after the machine has been up a while, and never
        // smaller than CLOCK_MONOTONIC, which stops during suspend.
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        assert_eq!(
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) },
            0
        );
        let mono = Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
        assert!(BootInstant::now().0 >= mono);
    }

    #[test]
    fn a_fixed_clock_moves_only_when_told() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let c = FixedClock::at(t0);
        assert_eq!(c.now(), t0);
        c.advance(90);
        assert_eq!(c.now().timestamp(), 1_700_000_090);
    }
}
