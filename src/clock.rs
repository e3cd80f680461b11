//! Time as an input: every "now" in sfx comes from a [`Clock`] held by the
//! context, so the token lifecycle's rules can be tested at any instant.
//!
//! The binary uses [`SystemClock`]. **Test-only:** `SFX_TEST_NOW` (RFC 3339 or
//! Unix seconds) makes the clock stand still at that instant, so golden files
//! can pin times exactly. It is for the integration tests only (a clock that
//! never moves would stall `sfx watch`); users have no reason to set it.

use std::sync::Mutex;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_moves_only_when_told() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let c = FixedClock::at(t0);
        assert_eq!(c.now(), t0);
        c.advance(90);
        assert_eq!(c.now().timestamp(), 1_700_000_090);
    }
}
