//! Time: parsing Salesforce's epochs and printing instants for people and scripts.
//!
//! Salesforce sends `issued_at` as a string of milliseconds and introspection's
//! `exp`/`iat`/`nbf` as integer seconds; JWT claims are seconds too. [`parse_epoch`]
//! accepts numbers and numeric strings and tells seconds from milliseconds by size.
//! Every formatter takes `now` so that tests pin the clock.

use std::time::Duration;

use chrono::{DateTime, Local, SecondsFormat, Utc};

/// Values above this are milliseconds: 1e11 seconds is the year 5138, while
/// 1e11 milliseconds is 1973, so no real timestamp sits on the wrong side.
const MILLIS_THRESHOLD: i64 = 100_000_000_000;

/// An epoch given as a JSON number or a numeric string, in seconds or milliseconds.
pub fn parse_epoch_value(v: &serde_json::Value) -> Option<DateTime<Utc>> {
    match v {
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                from_epoch_auto(i)
            } else {
                n.as_f64().and_then(|f| {
                    if f.is_finite() && f.abs() < 9.0e15 {
                        from_epoch_auto(f as i64)
                    } else {
                        None
                    }
                })
            }
        }
        serde_json::Value::String(s) => parse_epoch(s),
        _ => None,
    }
}

/// A numeric string (`"1589009375588"` or `"1589009375"`) as an instant.
pub fn parse_epoch(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let int_part = s.split('.').next().unwrap_or(s);
    let i: i64 = int_part.parse().ok()?;
    from_epoch_auto(i)
}

fn from_epoch_auto(i: i64) -> Option<DateTime<Utc>> {
    // `unsigned_abs`: `i64::MIN.abs()` overflows (a server may send anything).
    if i.unsigned_abs() >= MILLIS_THRESHOLD.unsigned_abs() {
        DateTime::from_timestamp_millis(i)
    } else {
        DateTime::from_timestamp(i, 0)
    }
}

/// Seconds since the epoch as an instant (`None` when out of chrono's range).
pub fn from_unix(secs: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(secs, 0)
}

/// `1h 52m`, `12m 5s`, `45s`, `2d 3h`: the two largest non-zero units.
pub fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut rest = secs;
    for (size, name) in units {
        let n = rest / size;
        rest %= size;
        if n > 0 || !parts.is_empty() {
            parts.push((n, name));
        }
        if parts.len() == 2 {
            break;
        }
    }
    let parts: Vec<String> = parts
        .iter()
        .enumerate()
        .filter(|(i, (n, _))| *i == 0 || *n > 0)
        .map(|(_, (n, name))| format!("{n}{name}"))
        .collect();
    if parts.is_empty() {
        "0s".to_string()
    } else {
        parts.join(" ")
    }
}

/// `in 1h 52m` or `3m ago` (or `now`).
pub fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let delta = at.signed_duration_since(now).num_seconds();
    if delta == 0 {
        "now".to_string()
    } else if delta > 0 {
        format!("in {}", humanize(Duration::from_secs(delta as u64)))
    } else {
        format!(
            "{} ago",
            humanize(Duration::from_secs(delta.unsigned_abs()))
        )
    }
}

/// `expires in 1h 52m` / `expired 3m ago`: the phrase `expires` prints first.
pub fn expiry_phrase(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if at > now {
        format!("expires {}", relative(at, now))
    } else {
        format!("expired {}", relative(at, now))
    }
}

/// A table's EXPIRES cell: `in 1h 52m`, `expired 3m ago`, `now`.
pub fn table_phrase(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if at > now {
        relative(at, now)
    } else {
        format!("expired {}", relative(at, now))
    }
}

/// A table's AT cell, in local time: on a terminal short (`22:41:07` today,
/// `2026-11-22 22:41` another day); piped, the full `2026-11-21 22:41:07 +01:00`.
pub fn table_time(at: DateTime<Utc>, now: DateTime<Utc>, short: bool) -> String {
    if !short {
        return local(at);
    }
    let (at, now) = (at.with_timezone(&Local), now.with_timezone(&Local));
    if at.date_naive() == now.date_naive() {
        at.format("%H:%M:%S").to_string()
    } else {
        at.format("%Y-%m-%d %H:%M").to_string()
    }
}

/// A duration as a flag takes it and the docs write it: the largest unit that
/// divides it among h, m, s (`24h`, `10m`, `90s`, `1h30m` for 90 minutes).
pub fn flag_duration(d: Duration) -> String {
    let (s, ms) = (d.as_secs(), d.subsec_millis());
    if s == 0 {
        return if ms == 0 {
            "0s".to_string()
        } else {
            format!("{ms}ms")
        };
    }
    let (h, m, sec) = (s / 3600, s % 3600 / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 {
        out.push_str(&format!("{sec}s"));
    }
    if ms > 0 {
        out.push_str(&format!("{ms}ms"));
    }
    out
}

/// `2026-11-21 22:41:07 +01:00`: local time with its offset.
pub fn local(at: DateTime<Utc>) -> String {
    at.with_timezone(&Local)
        .format("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

/// `2026-11-21T21:41:07Z`: RFC 3339 in UTC, whole seconds.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A duration typed by the user (`90s`, `10m`, `1h30m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration ({e}); use forms like 90s, 10m or 1h30m"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn epochs_in_seconds_and_milliseconds() {
        assert_eq!(
            parse_epoch("1589009375588"),
            DateTime::from_timestamp_millis(1589009375588)
        );
        assert_eq!(parse_epoch("1589009375"), Some(t(1589009375)));
        assert_eq!(parse_epoch(" 1589009375 "), Some(t(1589009375)));
        assert_eq!(parse_epoch("1589009375.25"), Some(t(1589009375)));
        assert_eq!(parse_epoch(""), None);
        assert_eq!(parse_epoch("abc"), None);
        assert_eq!(parse_epoch("99999999999999999999999"), None);
        let v: serde_json::Value = serde_json::json!(1528502109);
        assert_eq!(parse_epoch_value(&v), Some(t(1528502109)));
        let v: serde_json::Value = serde_json::json!("1714560000123");
        assert_eq!(
            parse_epoch_value(&v),
            DateTime::from_timestamp_millis(1714560000123)
        );
        assert_eq!(parse_epoch_value(&serde_json::json!(null)), None);
        assert_eq!(parse_epoch_value(&serde_json::json!(1e300)), None);
        // Issue #11: the extremes a server may send are `None`, never a panic.
        assert_eq!(parse_epoch_value(&serde_json::json!(i64::MIN)), None);
        assert_eq!(parse_epoch_value(&serde_json::json!(i64::MAX)), None);
        assert_eq!(parse_epoch("-9223372036854775808"), None);
    }

    #[test]
    fn humanize_at_the_boundaries() {
        let cases = [
            (0, "0s"),
            (1, "1s"),
            (59, "59s"),
            (60, "1m"),
            (61, "1m 1s"),
            (3_599, "59m 59s"),
            (3_600, "1h"),
            (7_199, "1h 59m"),
            (6_720, "1h 52m"),
            (86_400, "1d"),
            (90_061, "1d 1h"),
            (86_400 * 400, "400d"),
        ];
        for (secs, want) in cases {
            assert_eq!(humanize(Duration::from_secs(secs)), want, "{secs}s");
        }
    }

    #[test]
    fn relative_future_past_and_now() {
        let now = t(1_795_290_067);
        assert_eq!(relative(t(1_795_290_067 + 6_720), now), "in 1h 52m");
        assert_eq!(relative(t(1_795_290_067 - 180), now), "3m ago");
        assert_eq!(relative(now, now), "now");
        assert_eq!(expiry_phrase(t(1_795_290_067 + 59), now), "expires in 59s");
        assert_eq!(expiry_phrase(t(1_795_290_067 - 1), now), "expired 1s ago");
        assert_eq!(expiry_phrase(now, now), "expired now");
    }

    #[test]
    fn rfc3339_is_utc_whole_seconds() {
        assert_eq!(rfc3339(t(1_795_297_267)), "2026-11-21T21:41:07Z");
    }

    #[test]
    fn durations_parse_humantime_forms() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn settings_are_written_as_flags_take_them() {
        let f = |s: u64| flag_duration(Duration::from_secs(s));
        assert_eq!(f(86_400), "24h");
        assert_eq!(f(600), "10m");
        assert_eq!(f(5400), "1h30m");
        assert_eq!(f(90), "1m30s");
        assert_eq!(flag_duration(Duration::from_millis(100)), "100ms");
        assert_eq!(flag_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(f(0), "0s");
    }
}
