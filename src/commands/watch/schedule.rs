//! When to act on a watched org (pure functions, unit-tested below with fixed
//! instants): the refresh point inside `--refresh-before`, the keep-alive point,
//! the next check, the back-off after a failure, and the lifetime that caps an
//! estimated expiry. See the parent module for the rules in words.

#[allow(unused_imports)]
use super::*;

/// The longest back-off after repeated failures.
pub(super) const BACKOFF_CAP: Duration = Duration::from_secs(300);

/// Durations beyond this are treated as "never" (keeps date arithmetic in range).
pub(super) const FOREVER_DAYS: i64 = 365 * 100;

/// The shortest pause between two actions on one org, whatever the rules below
/// say, so nothing can spin (not even a token that arrives already expired
/// because of a skewed clock). Realistic sessions never come near it.
pub(super) const MIN_GAP_MS: i64 = 1000;

pub(super) fn min_gap() -> chrono::Duration {
    chrono::Duration::milliseconds(MIN_GAP_MS)
}

/// `t + d`, saturating instead of overflowing the calendar.
pub(super) fn plus(t: DateTime<Utc>, d: chrono::Duration) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The schedule's knobs, resolved.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pace {
    pub(super) refresh_before: chrono::Duration,
    pub(super) keepalive: chrono::Duration,
    pub(super) min_check: chrono::Duration,
    pub(super) max_check: chrono::Duration,
    /// When the watch began (stands in for an unknown last use of a refresh token).
    pub(super) started: DateTime<Utc>,
}

pub(super) fn span(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d)
        .unwrap_or(chrono::Duration::MAX)
        .min(chrono::Duration::days(FOREVER_DAYS))
}

impl Pace {
    pub(super) fn new(args: &WatchArgs, started: DateTime<Utc>) -> Pace {
        let min_check = span(args.min_check);
        Pace {
            refresh_before: span(args.refresh_before),
            keepalive: span(args.keepalive),
            min_check,
            max_check: span(args.max_check).max(min_check),
            started,
        }
    }
}

/// Why a refresh is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reason {
    NoToken,
    Unknown,
    Dead,
    Expiring,
    Keepalive,
}

/// When the refresh token should be used to keep it alive (orgs that have one).
pub(super) fn keepalive_at(org: &Org, p: &Pace) -> Option<DateTime<Utc>> {
    if !org.record.has_refresh_token {
        return None;
    }
    let used = org
        .record
        .refresh_token_used_at
        .and_then(crate::timefmt::from_unix)
        .unwrap_or(p.started);
    used.checked_add_signed(p.keepalive)
}

/// The moment to refresh ahead of `exp`: `--refresh-before` earlier, but never
/// earlier than half-way through the token's known life (a window longer than
/// half the session would otherwise refresh in a loop, or leave no time to
/// retry). So an 8 s session with `--refresh-before 5s` is refreshed 4 s before
/// it expires, a two-hour one with the default `10m` at 1 h 50 min.
pub(super) fn refresh_at(e: &Expiry, p: &Pace) -> Option<DateTime<Utc>> {
    let exp = e.exp?;
    let mut window = p.refresh_before;
    if let Some(iat) = e.iat.filter(|i| *i < exp) {
        window = window.min((exp - iat) / 2);
    }
    Some(exp.checked_sub_signed(window).unwrap_or(exp))
}

/// Whether (and why) the org should be refreshed now.
pub(super) fn refresh_reason(
    org: &Org,
    expiry: Option<&Expiry>,
    has_token: bool,
    now: DateTime<Utc>,
    p: &Pace,
) -> Option<Reason> {
    if !has_token {
        return Some(Reason::NoToken);
    }
    if keepalive_at(org, p).is_some_and(|k| k <= now) {
        return Some(Reason::Keepalive);
    }
    let Some(e) = expiry else {
        return Some(Reason::Unknown);
    };
    if !e.active {
        return Some(Reason::Dead);
    }
    match refresh_at(e, p) {
        None => Some(Reason::Unknown),
        Some(at) if at <= now => Some(Reason::Expiring),
        Some(_) => None,
    }
}

/// When to act on the org next. A *check* comes after half the time left until
/// the refresh point, bounded by the check limits (`min_check`, `max_check`); the
/// refresh point and the keep-alive point themselves are never postponed by
/// those bounds, whatever the token's lifetime. Nothing comes sooner than one
/// second from now (so nothing can spin).
pub(super) fn next_due(
    org: &Org,
    expiry: Option<&Expiry>,
    now: DateTime<Utc>,
    p: &Pace,
) -> DateTime<Utc> {
    let refresh = expiry.and_then(|e| refresh_at(e, p));
    let check = match refresh {
        Some(at) => plus(now, ((at - now) / 2).clamp(p.min_check, p.max_check)),
        None => plus(now, p.max_check),
    };
    let due = [Some(check), refresh, keepalive_at(org, p)]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(check);
    due.max(plus(now, min_gap()))
}

/// How long to wait before trying again after the `failures`-th transient
/// failure in a row: exponential from the shortest check pause (30 s), capped
/// (5 min, and the longest check pause), spread by `jitter` (0..1 → ±25 %). While
/// the access token is alive (`left` until it expires), the wait is at most half
/// of that, so the next try — and one after it — still fits before expiry; at
/// least one second, always.
pub(super) fn retry_delay(
    failures: u32,
    left: Option<chrono::Duration>,
    p: &Pace,
    jitter: f64,
) -> chrono::Duration {
    let base = p.min_check.to_std().unwrap_or(Duration::from_secs(30));
    let cap = BACKOFF_CAP
        .min(p.max_check.to_std().unwrap_or(BACKOFF_CAP))
        .max(base);
    let mut d = span(crate::backoff::delay(failures, base, cap, 0.25, jitter));
    if let Some(left) = left.filter(|l| *l > chrono::Duration::zero()) {
        d = d.min(left / 2);
    }
    d.max(min_gap())
}

/// A fresh token's expiry is often an estimate (`issued_at` + the stored session
/// timeout, which may be longer than the org's real one). The shortest lifetime
/// seen by introspection (or in a JWT) is a better bound: cap the estimate by it.
pub(super) fn assume_lifetime(mut e: Expiry, lifetime: Option<chrono::Duration>) -> Expiry {
    if e.source == Source::Estimate
        && let (Some(iat), Some(l)) = (e.iat, lifetime)
    {
        let capped = iat.checked_add_signed(l);
        if let Some(c) = capped
            && e.exp.is_none_or(|x| c < x)
        {
            e.exp = Some(c);
        }
    }
    e
}

/// The lifetime an exact expiry shows (`exp - iat`), if it shows one.
pub(super) fn lifetime_of(e: &Expiry) -> Option<chrono::Duration> {
    if e.source == Source::Estimate {
        return None;
    }
    let (iat, exp) = (e.iat?, e.exp?);
    (exp > iat).then(|| exp - iat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::metadata::{Flow, OrgRecord, StoreKind};

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_290_000 + s, 0).unwrap()
    }

    fn pace() -> Pace {
        Pace {
            refresh_before: chrono::Duration::minutes(10),
            keepalive: chrono::Duration::hours(24),
            min_check: chrono::Duration::seconds(30),
            max_check: chrono::Duration::minutes(15),
            started: t(0),
        }
    }

    fn org(used: Option<i64>) -> Org {
        Org {
            record: OrgRecord {
                client_id: Some("id".into()),
                issued_at: Some(t(0).timestamp()),
                access_token_masked: Some("00D…abcd".into()),
                has_refresh_token: true,
                refresh_token_used_at: used.map(|u| t(u).timestamp()),
                ..OrgRecord::new(
                    "prod",
                    "https://a.example.com",
                    Flow::AuthUrl,
                    StoreKind::File,
                )
            },
            env: None,
        }
    }

    fn exp(iat: i64, exp: i64) -> Expiry {
        Expiry {
            active: true,
            exp: Some(t(exp)),
            iat: Some(t(iat)),
            source: Source::Introspection,
            checked_at: None,
            note: None,
        }
    }

    #[test]
    fn a_two_hour_session_costs_a_handful_of_checks_then_one_refresh() {
        let p = pace();
        let o = org(Some(0));
        let e = exp(0, 7200);
        let mut now = t(0);
        let mut checks = 0;
        let at = refresh_at(&e, &p).unwrap();
        while refresh_reason(&o, Some(&e), true, now, &p).is_none() {
            let due = next_due(&o, Some(&e), now, &p);
            assert!(due - now >= p.min_check || due == at, "{now} → {due}");
            assert!(due - now <= p.max_check);
            now = due;
            checks += 1;
            assert!(checks < 50, "runaway schedule");
        }
        // Refresh 10 minutes ahead to the second, after about eleven checks in 110 minutes.
        assert_eq!(now, t(7200 - 600));
        assert!((8..=13).contains(&checks), "{checks}");
        assert_eq!(
            refresh_reason(&o, Some(&e), true, now, &p),
            Some(Reason::Expiring)
        );
    }

    #[test]
    fn a_window_longer_than_the_session_refreshes_half_way_not_in_a_loop() {
        let p = Pace {
            refresh_before: chrono::Duration::hours(3),
            ..pace()
        };
        let e = exp(0, 7200);
        assert_eq!(refresh_at(&e, &p), Some(t(3600)));
        assert_eq!(
            refresh_reason(&org(Some(0)), Some(&e), true, t(10), &p),
            None
        );
    }

    #[test]
    fn keepalive_refreshes_an_idle_refresh_token_and_bounds_the_sleep() {
        let p = pace();
        let e = exp(86_000, 86_000 + 7200);
        let o = org(Some(0));
        assert_eq!(
            refresh_reason(&o, Some(&e), true, t(86_400), &p),
            Some(Reason::Keepalive)
        );
        // The keep-alive point is kept exactly; the 30 s check floor does not push it.
        assert_eq!(next_due(&o, Some(&e), t(86_390), &p), t(86_400));
        // No refresh token: no keep-alive.
        let mut no_rt = org(None);
        no_rt.record.has_refresh_token = false;
        assert_eq!(refresh_reason(&no_rt, Some(&e), true, t(86_400), &p), None);
    }

    #[test]
    fn dead_unknown_and_missing_tokens_refresh_at_once() {
        let p = pace();
        let o = org(Some(0));
        let dead = Expiry {
            active: false,
            exp: None,
            ..exp(0, 7200)
        };
        assert_eq!(
            refresh_reason(&o, Some(&dead), true, t(1), &p),
            Some(Reason::Dead)
        );
        assert_eq!(
            refresh_reason(&o, None, true, t(1), &p),
            Some(Reason::Unknown)
        );
        assert_eq!(
            refresh_reason(&o, Some(&exp(0, 7200)), false, t(1), &p),
            Some(Reason::NoToken)
        );
    }

    fn secs(s: i64) -> chrono::Duration {
        chrono::Duration::seconds(s)
    }

    #[test]
    fn the_refresh_point_is_inside_the_window_whatever_the_lifetime() {
        // (lifetime, --refresh-before) → seconds before expiry that the refresh falls.
        let cases = [
            (4, 5, 2),              // a window longer than the whole session: half-way
            (8, 5, 4),              // longer than half the session: half-way
            (8, 3, 3),              // a short session, a shorter window: the window
            (60, 10, 10),           // one minute
            (7200, 600, 600),       // the usual two hours, the default window
            (7200, 3 * 3600, 3600), // a window of 3 h on a 2 h session: half-way
            (86_400 * 3, 600, 600), // days
            (86_400 * 3, 86_400 * 5, 86_400 * 3 / 2),
        ];
        for (life, before, expect) in cases {
            let p = Pace {
                refresh_before: secs(before),
                ..pace()
            };
            let e = exp(0, life);
            let at = refresh_at(&e, &p).unwrap();
            assert_eq!(
                t(life) - at,
                secs(expect),
                "lifetime {life}s, window {before}s"
            );
            assert!(at > t(0) && at < t(life));
        }
    }

    #[test]
    fn the_check_floor_never_postpones_a_refresh_or_keepalive_point() {
        // (lifetime, --refresh-before, now, keep-alive) → next action, seconds from the start.
        let p = pace(); // 30 s floor, 15 min ceiling on the pause between checks
        let cases = [
            // 8 s session, 5 s window: the refresh at 4 s, not a check at 30 s.
            (8, 5, 0, 86_400, 4),
            (8, 5, 3, 86_400, 4),
            // Past the refresh point already: no sooner than the one-second gap.
            (8, 5, 4, 86_400, 5),
            (8, 5, 7, 86_400, 8),
            // One minute, 10 s window: the refresh point at 50 s beats a check at 30 s.
            (60, 10, 0, 86_400, 30),
            (60, 10, 30, 86_400, 50),
            // Two hours: half the run-up, at most 15 min.
            (7200, 600, 0, 86_400, 900),
            (7200, 600, 6000, 86_400, 6300),
            (7200, 600, 6580, 86_400, 6600),
            // A keep-alive point 2 s off comes first, floor or not.
            (7200, 600, 0, 2, 2),
            (8, 5, 0, 2, 2),
        ];
        for (life, before, now, keep, expect) in cases {
            let p = Pace {
                refresh_before: secs(before),
                keepalive: secs(keep),
                ..p
            };
            let due = next_due(&org(Some(0)), Some(&exp(0, life)), t(now), &p);
            assert_eq!(
                due,
                t(expect),
                "lifetime {life}s, window {before}s, now {now}s, keep-alive {keep}s"
            );
        }
    }

    #[test]
    fn retries_back_off_but_fit_before_expiry() {
        let p = pace();
        // (failures, seconds the token has left, delay in ms, spread by jitter?)
        let cases: [(u32, Option<i64>, i64, bool); 13] = [
            (1, None, 30_000, true),
            (2, None, 60_000, true),
            (3, None, 120_000, true),
            (4, None, 240_000, true),
            (5, None, 300_000, true),
            (20, None, 300_000, true),
            (1, Some(-5), 30_000, true),    // expired: the plain back-off
            (3, Some(600), 120_000, true),  // plenty of time: the plain back-off
            (5, Some(400), 200_000, false), // capped by half the time left
            (1, Some(8), 4_000, false),     // an 8 s session: a try at 4 s left…
            (1, Some(3), 1_500, false),     // …at 1.5 s left…
            (1, Some(1), 1_000, false),     // …never under a second
            (u32::MAX, Some(1), 1_000, false),
        ];
        for (n, left, ms, spread) in cases {
            let (lo, hi) = if spread {
                (ms * 3 / 4, ms * 5 / 4)
            } else {
                (ms, ms)
            };
            for jitter in [0.0, 0.5, 1.0] {
                let d = retry_delay(n, left.map(secs), &p, jitter).num_milliseconds();
                assert!(
                    d >= lo && d <= hi,
                    "{n} failures, {left:?} s left, jitter {jitter}: {d} ms"
                );
            }
        }
        // The middle of the jitter is the base.
        assert_eq!(retry_delay(2, None, &p, 0.5), secs(60));
    }

    #[test]
    fn a_seen_lifetime_caps_an_estimated_expiry_only() {
        let est = Expiry {
            source: Source::Estimate,
            ..exp(100, 100 + 7200)
        };
        let capped = assume_lifetime(est.clone(), Some(secs(8)));
        assert_eq!(capped.exp, Some(t(108)));
        // A longer lifetime, no lifetime, or an exact expiry: unchanged.
        assert_eq!(
            assume_lifetime(est.clone(), Some(secs(9000))).exp,
            Some(t(7300))
        );
        assert_eq!(assume_lifetime(est, None).exp, Some(t(7300)));
        assert_eq!(
            assume_lifetime(exp(100, 7300), Some(secs(8))).exp,
            Some(t(7300))
        );
        // Lifetimes come from exact answers only.
        assert_eq!(lifetime_of(&exp(100, 108)), Some(secs(8)));
        let est = Expiry {
            source: Source::Estimate,
            ..exp(0, 8)
        };
        assert_eq!(lifetime_of(&est), None);
    }

    #[test]
    fn huge_durations_do_not_overflow_the_calendar() {
        let p = Pace {
            keepalive: span(Duration::from_secs(u64::MAX / 4)),
            refresh_before: span(Duration::from_secs(u64::MAX / 4)),
            ..pace()
        };
        let o = org(Some(0));
        let _ = refresh_reason(&o, Some(&exp(0, 7200)), true, t(1), &p);
        let _ = next_due(&o, Some(&exp(0, 7200)), t(1), &p);
        let _ = retry_delay(u32::MAX, Some(chrono::Duration::MAX), &p, 1.0);
        let _ = assume_lifetime(exp(0, 7200), Some(chrono::Duration::MAX));
    }
}
