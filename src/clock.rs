//! Time as an input: every "now", every deadline and every wait in sfx goes
//! through a [`Clock`], so the token lifecycle's rules, locks, leases, back-off
//! and `sfx watch`'s schedule can be tested at any instant and without waiting.
//!
//! A clock has three readings and one way to wait:
//! - [`Clock::now`]: wall time (token expiry, `issued_at`, what users see);
//! - [`Clock::instant`]: a monotonic [`Instant`] for deadlines and elapsed time
//!   inside one process (locks, retries, server deadlines);
//! - [`Clock::boot`]: a [`BootInstant`] that keeps counting while the machine is
//!   suspended, for deadlines other hosts rely on (the attempt window);
//! - [`Clock::sleep`]: wait. [`recv_timeout`] and [`wait_timeout`] wait on a
//!   channel or a condition variable through the clock.
//!
//! The binary uses [`SystemClock`]. Tests use [`FakeClock`], whose sleeps
//! return at once after moving all three readings forward together, so an
//! hour of schedule runs in milliseconds. **Test-only:** `SFX_TEST_NOW`
//! (RFC 3339 or Unix seconds) makes the wall clock stand still at that instant
//! (monotonic time and sleeps stay real), so golden files can pin times exactly.
//! It is for the integration tests only; users have no reason to set it.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// Where "now" comes from, and how to wait.
pub trait Clock: Send + Sync {
    /// Wall time.
    fn now(&self) -> DateTime<Utc>;

    /// Monotonic time, for deadlines inside this process.
    fn instant(&self) -> Instant {
        Instant::now()
    }

    /// Monotonic time that counts suspended time, for deadlines other hosts
    /// rely on.
    fn boot(&self) -> BootInstant {
        BootInstant::now()
    }

    /// Wait `d`.
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }

    /// Whether waits are real (threads block in the kernel). A fake clock's
    /// waits return at once; [`recv_timeout`] and [`wait_timeout`] use this to
    /// poll instead of blocking.
    fn waits_are_real(&self) -> bool {
        true
    }
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A wall clock that stands still until moved (`SFX_TEST_NOW`, golden tests);
/// monotonic time and sleeps are real.
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

/// A clock for tests where time passes only when something sleeps (or the
/// test calls [`FakeClock::advance`]): a sleep moves wall, monotonic and boot
/// time forward together by exactly its length and returns at once. Shared by
/// threads; each sleep advances the one clock, so two threads sleeping 1 s each
/// move it 2 s (tests of concurrent waiters should reason in "at least").
#[derive(Debug)]
pub struct FakeClock {
    start_wall: DateTime<Utc>,
    start_instant: Instant,
    start_boot: BootInstant,
    elapsed: Mutex<Duration>,
    /// Every sleep asked for, in order (tests assert the pacing).
    slept: Mutex<Vec<Duration>>,
}

impl FakeClock {
    /// A fake clock whose wall time starts at `t`.
    pub fn at(t: DateTime<Utc>) -> FakeClock {
        FakeClock {
            start_wall: t,
            start_instant: Instant::now(),
            start_boot: BootInstant::now(),
            elapsed: Mutex::new(Duration::ZERO),
            slept: Mutex::new(Vec::new()),
        }
    }

    /// Move time forward by `d` without recording a sleep.
    pub fn advance(&self, d: Duration) {
        let mut e = self.elapsed.lock().unwrap_or_else(|e| e.into_inner());
        *e = e.saturating_add(d);
    }

    /// How much fake time has passed since the clock was made.
    pub fn elapsed(&self) -> Duration {
        *self.elapsed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every sleep so far, in order.
    pub fn slept(&self) -> Vec<Duration> {
        self.slept.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        let e = chrono::Duration::from_std(self.elapsed()).unwrap_or(chrono::Duration::MAX);
        self.start_wall
            .checked_add_signed(e)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
    fn instant(&self) -> Instant {
        self.start_instant + self.elapsed()
    }
    fn boot(&self) -> BootInstant {
        self.start_boot + self.elapsed()
    }
    fn sleep(&self, d: Duration) {
        self.slept.lock().unwrap_or_else(|e| e.into_inner()).push(d);
        self.advance(d);
        // Let other threads run: a fake sleep must not turn a wait loop into a
        // busy loop that starves the thread it is waiting for.
        std::thread::yield_now();
    }
    fn waits_are_real(&self) -> bool {
        false
    }
}

/// `rx.recv_timeout(d)` through `clock`: on a real clock it blocks; on a fake
/// one it takes what is there, else sleeps `d` on the clock and looks again.
pub fn recv_timeout<T>(
    clock: &dyn Clock,
    rx: &Receiver<T>,
    d: Duration,
) -> Result<T, RecvTimeoutError> {
    if clock.waits_are_real() {
        return rx.recv_timeout(d);
    }
    use std::sync::mpsc::TryRecvError;
    match rx.try_recv() {
        Ok(v) => return Ok(v),
        Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
        Err(TryRecvError::Empty) => {}
    }
    clock.sleep(d);
    match rx.try_recv() {
        Ok(v) => Ok(v),
        Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
        Err(TryRecvError::Empty) => Err(RecvTimeoutError::Timeout),
    }
}

/// `cv.wait_timeout(guard, d)` through `clock`: on a real clock it blocks; on
/// a fake one it releases the lock for a real millisecond and, if nobody
/// notified, sleeps `d` on the clock. Returns the guard and whether it timed
/// out; callers re-check their condition as with any condition variable.
pub fn wait_timeout<'a, T>(
    clock: &dyn Clock,
    cv: &Condvar,
    guard: MutexGuard<'a, T>,
    d: Duration,
) -> (MutexGuard<'a, T>, bool) {
    if clock.waits_are_real() {
        let (g, r) = cv.wait_timeout(guard, d).unwrap_or_else(|e| e.into_inner());
        return (g, r.timed_out());
    }
    // Release the lock for a moment (so the thread that would notify can run),
    // then, if nobody did, let the fake time pass.
    let (g, r) = cv
        .wait_timeout(guard, Duration::from_millis(1))
        .unwrap_or_else(|e| e.into_inner());
    if !r.timed_out() {
        return (g, false);
    }
    clock.sleep(d);
    (g, true)
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
    fn a_fake_clock_sleeps_at_once_and_moves_every_reading_together() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let c = FakeClock::at(t0);
        let (i0, b0) = (c.instant(), c.boot());
        let real = std::time::Instant::now();
        c.sleep(Duration::from_secs(3600));
        assert!(real.elapsed() < Duration::from_secs(5));
        assert_eq!(c.now().timestamp(), 1_700_003_600);
        assert_eq!(c.instant() - i0, Duration::from_secs(3600));
        assert_eq!(
            c.boot().saturating_duration_since(b0),
            Duration::from_secs(3600)
        );
        assert_eq!(c.slept(), vec![Duration::from_secs(3600)]);
        c.advance(Duration::from_secs(1));
        assert_eq!(c.elapsed(), Duration::from_secs(3601));
        assert_eq!(c.slept().len(), 1);
    }

    #[test]
    fn waits_through_a_fake_clock_take_what_is_there_else_advance() {
        let c = FakeClock::at(DateTime::from_timestamp(0, 0).unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        tx.send(7).unwrap();
        assert_eq!(recv_timeout(&c, &rx, Duration::from_secs(60)), Ok(7));
        assert_eq!(c.elapsed(), Duration::ZERO);
        assert_eq!(
            recv_timeout(&c, &rx, Duration::from_secs(60)),
            Err(RecvTimeoutError::Timeout)
        );
        assert_eq!(c.elapsed(), Duration::from_secs(60));
        drop(tx);
        assert_eq!(
            recv_timeout(&c, &rx, Duration::from_secs(60)),
            Err(RecvTimeoutError::Disconnected)
        );
        let m = Mutex::new(1);
        let cv = Condvar::new();
        let (g, timed_out) = wait_timeout(&c, &cv, m.lock().unwrap(), Duration::from_secs(5));
        assert!(timed_out);
        assert_eq!(*g, 1);
        assert_eq!(c.elapsed(), Duration::from_secs(65));
    }

    #[test]
    fn real_waits_block_for_their_time() {
        let c = SystemClock;
        let (_tx, rx) = std::sync::mpsc::channel::<()>();
        let t = c.instant();
        assert_eq!(
            recv_timeout(&c, &rx, Duration::from_millis(20)),
            Err(RecvTimeoutError::Timeout)
        );
        assert!(c.instant() - t >= Duration::from_millis(20));
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
