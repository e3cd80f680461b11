//! The words of watch's events: an expiry and the reason for a refresh, as
//! the event messages and the live table show them; and what the watch says
//! when no watched org can be kept fresh.

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
            humanize(p.keepalive.to_std().unwrap_or_default())
        ),
    }
}

/// What `--all` says when no org is watchable: the store is empty, or every org
/// needs a login. It keeps running (and `--listen` keeps answering, `/readyz` 503).
pub(super) fn nothing_watchable(orgs: &[Watched]) -> String {
    match orgs {
        [] => "no org is stored yet, so there is nothing to refresh; still running, and an org \
               logged in later (`sfx login`, e.g. `sfx login --auth-url - < auth-url.txt`) is \
               picked up"
            .to_string(),
        _ => {
            let names: Vec<&str> = orgs.iter().map(|w| w.org.name()).collect();
            format!(
                "no watched org can be kept fresh now: {} need{} a new login; still running, and \
                 an org is picked up again once it is logged in ({})",
                names.join(", "),
                if names.len() == 1 { "s" } else { "" },
                match orgs {
                    [one] => relogin_hint(&one.org),
                    _ => "`sfx login --alias <ALIAS> …`".to_string(),
                }
            )
        }
    }
}

pub(super) fn all_need_login(orgs: &[Watched]) -> Error {
    let names: Vec<&str> = orgs.iter().map(|w| w.org.name()).collect();
    let hint = match orgs {
        [one] => relogin_hint(&one.org),
        _ => "log in again (`sfx login --alias <ALIAS> …`), then start sfx watch again".to_string(),
    };
    Error::Relogin {
        message: format!(
            "no watched org can be kept fresh any more: {} need{} a new login",
            names.join(", "),
            if names.len() == 1 { "s" } else { "" }
        ),
        hint: Some(hint),
    }
}
