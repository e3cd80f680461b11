//! The words of watch's events: an expiry and the reason for a refresh, as
//! the event messages and the live table show them.

#[allow(unused_imports)]
use super::*;

/// `expires in 1h 52m (introspection)`.
pub(super) fn expiry_text(e: Option<&Expiry>, now: DateTime<Utc>) -> String {
    match e.and_then(|e| e.exp.map(|x| (x, e.source))) {
        Some((exp, source)) => format!(
            "{} ({})",
            crate::timefmt::expiry_phrase(exp, now),
            match source {
                Source::Estimate => "estimated",
                s => s.as_str(),
            }
        ),
        None => "expiry unknown".to_string(),
    }
}

pub(super) fn reason_text(
    r: Reason,
    old: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    p: &Pace,
) -> String {
    match r {
        Reason::NoToken => "there was no access token yet".into(),
        Reason::Unknown => "the old one's expiry was unknown".into(),
        Reason::Dead => match old {
            Some(e) if e <= now => "the old one had expired".into(),
            _ => "the old one was no longer active".into(),
        },
        Reason::Expiring => match old {
            Some(e) if e > now => format!(
                "the old one had {} left",
                humanize(e.signed_duration_since(now).to_std().unwrap_or_default())
            ),
            _ => "the old one had expired".into(),
        },
        Reason::Keepalive => format!(
            "keep-alive: the refresh token had not been used for {}",
            crate::timefmt::flag_duration(p.keepalive.to_std().unwrap_or_default())
        ),
    }
}
