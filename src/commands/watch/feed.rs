//! What `sfx watch` tells [`crate::metrics`] (issue #16), kept out of the
//! scheduler's own code: the watch calls these few functions where it finishes a
//! request, handles its outcome, picks an org up again or loses it, and at each
//! pass of its loop. Each is one short lock in [`crate::metrics`]; without
//! `--listen` each is a no-op.
//!
//! Also here: how start-up spreads the first checks of many orgs ([`spread`]).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Outcome, Watched};
use crate::error::Error;
use crate::metrics::{self, Check, Refresh, TokenState};

/// After a worker finished a request for `org`: count it (and time a refresh).
pub(super) fn observe(org: &str, refresh: bool, outcome: &Outcome, took: Duration) {
    if refresh {
        metrics::refresh_took(took);
    }
    match outcome {
        Outcome::Checked { expiry, .. } => metrics::checked(
            org,
            if expiry.active {
                Check::Active
            } else {
                Check::Inactive
            },
        ),
        Outcome::Refreshed { .. } => metrics::refreshed(org, Refresh::Success),
        Outcome::Failed(e) => {
            if refresh {
                let r = match e {
                    Error::Relogin { .. } => Refresh::NeedsLogin,
                    _ => Refresh::Error,
                };
                metrics::refreshed(org, r);
            } else {
                metrics::checked(org, Check::Error);
            }
        }
        Outcome::NoToken { .. } | Outcome::Gone => {}
    }
}

/// The scheduler's view of one org after it changed (`gone`: logged out, no
/// longer watched).
pub(super) fn report(w: &Watched, gone: bool) {
    let name = w.org.name();
    if gone {
        metrics::remove(name);
        return;
    }
    metrics::set_token(
        name,
        TokenState {
            expires_at: if w.has_token {
                w.exp().map(|e| e.timestamp())
            } else {
                None
            },
            active: w.expiry.as_ref().is_none_or(|e| e.active),
            needs_login: w.needs_login,
        },
    );
}

/// The scheduler ran and will run again within `next`.
pub(super) fn heartbeat(next: Duration) {
    metrics::heartbeat(next);
}

pub(super) fn exec_failed(org: &str) {
    metrics::exec_failed(org);
}

/// First checks per second at start-up once many orgs are watched.
pub(super) const STARTUP_CHECKS_PER_SEC: u32 = 20;

/// When to first look at each org at start-up. `latest[i]` is the latest moment
/// org `i` may first be looked at (its usual next check from the last known
/// expiry in the metadata), or `None` when it needs a look (or a refresh) now.
/// Orgs that need it now go now; the others, soonest-due first, get one slot
/// each at `per_sec` a second — never later than their own latest moment. So a
/// handful of orgs start as before (all within the first second), and ten
/// thousand orgs with known, distant expiries cost twenty introspections a second
/// instead of ten thousand at once.
pub(super) fn spread(
    now: DateTime<Utc>,
    latest: &[Option<DateTime<Utc>>],
    per_sec: u32,
) -> Vec<DateTime<Utc>> {
    let mut order: Vec<usize> = (0..latest.len()).filter(|&i| latest[i].is_some()).collect();
    order.sort_by_key(|&i| latest[i]);
    let step = chrono::Duration::microseconds(1_000_000 / i64::from(per_sec.max(1)));
    let mut due = vec![now; latest.len()];
    for (slot, i) in order.into_iter().enumerate() {
        let at = step
            .checked_mul(i32::try_from(slot).unwrap_or(i32::MAX))
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(now);
        due[i] = latest[i].map_or(now, |l| at.min(l).max(now));
    }
    due
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_290_000 + s, 0).unwrap()
    }

    #[test]
    fn a_few_orgs_start_at_once() {
        let d = spread(t(0), &[Some(t(900)), None, Some(t(600))], 20);
        assert_eq!(d[1], t(0));
        assert!(d[0] - t(0) < chrono::Duration::seconds(1));
        assert!(d[2] - t(0) < chrono::Duration::seconds(1));
    }

    #[test]
    fn ten_thousand_orgs_are_spread_soonest_first_and_never_past_their_limit() {
        let n = 10_000;
        let mut latest: Vec<Option<DateTime<Utc>>> =
            (0..n).map(|i| Some(t(900 - (i % 7) as i64))).collect();
        latest[17] = None; // needs a refresh now
        latest[18] = Some(t(40)); // an org due soon keeps its limit
        let d = spread(t(0), &latest, 20);
        assert_eq!(d[17], t(0));
        assert!(d[18] <= t(40));
        for (i, due) in d.iter().enumerate() {
            if let Some(l) = latest[i] {
                assert!(*due <= l && *due >= t(0), "{i}");
            }
        }
        // No second holds more than 20 first checks (plus those due now).
        let mut per_sec = std::collections::HashMap::new();
        for due in &d {
            *per_sec.entry((*due - t(0)).num_seconds()).or_insert(0) += 1;
        }
        assert!(per_sec.values().all(|&c| c <= 21), "{per_sec:?}");
        // The last ones go within the 15-minute window, roughly n / 20 seconds in.
        let last = d.iter().max().unwrap();
        assert!(*last > t(400) && *last <= t(900), "{last}");
    }

    #[test]
    fn a_limit_in_the_past_or_a_zero_rate_cannot_schedule_before_now() {
        let d = spread(t(100), &[Some(t(0)), Some(t(1000))], 0);
        assert_eq!(d[0], t(100));
        assert!(d[1] >= t(100) && d[1] <= t(1000));
    }
}
