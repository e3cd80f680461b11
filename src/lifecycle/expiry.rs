//! What is known about an access token's expiry, and how to learn it exactly.
//!
//! In the contract's order: a JWT access token's own `exp` (no request);
//! introspection (one request; when it says inactive, one userinfo probe tells a
//! dead token from a live one this app cannot see); offline, the cached
//! introspection result; last, `issued_at` + the org's session timeout.
//!
//! Entry points, by what they cost:
//! - [`offline`]: 0 requests, no secrets — the record alone;
//! - [`read_or_ask`]: 0 requests for a JWT access token, else introspection;
//! - [`ask_server`]: introspection even for a JWT (only the server knows about
//!   revocation), remembered for `--offline`.

use chrono::{DateTime, Utc};

use super::secret;
use crate::salesforce::{Client, ClientCreds, Introspected, TokenProbe, jwt};
use crate::secret::Secret;
use crate::store::metadata::{ExactSource, KnownExpiry, OrgRecord};
use crate::store::{Org, OrgStore, Remembered, SecretKind};
use crate::timefmt::from_unix;

/// Where an expiry answer came from (the contract's `source` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Jwt,
    Introspection,
    Cached,
    Estimate,
}

impl Source {
    /// The word for human output: `estimated` says plainly that it is a guess.
    pub fn label(self) -> &'static str {
        match self {
            Source::Estimate => "estimated",
            other => other.as_str(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Jwt => "jwt",
            Source::Introspection => "introspection",
            Source::Cached => "cached",
            Source::Estimate => "estimate",
        }
    }
}

/// What is known about the access token's life.
#[derive(Debug, Clone)]
pub struct Expiry {
    pub active: bool,
    /// `None` when nothing at all is known.
    pub exp: Option<DateTime<Utc>>,
    pub iat: Option<DateTime<Utc>>,
    pub source: Source,
    /// For `cached`: when introspection answered.
    pub checked_at: Option<DateTime<Utc>>,
    /// Why the answer is weaker than it could be.
    pub note: Option<String>,
}

impl Expiry {
    pub fn seconds_remaining(&self, now: DateTime<Utc>) -> Option<i64> {
        self.exp.map(|e| e.signed_duration_since(now).num_seconds())
    }

    /// Valid now and for at least `window` more.
    pub fn outlives(&self, now: DateTime<Utc>, window: std::time::Duration) -> bool {
        self.active
            && self
                .seconds_remaining(now)
                .is_some_and(|s| s > 0 && s as u128 >= window.as_secs() as u128)
    }

    /// `issued_at` + the session timeout: a guess, and said to be one.
    pub fn estimate(rec: &OrgRecord, note: Option<String>, now: DateTime<Utc>) -> Expiry {
        let iat = rec.issued_at.and_then(from_unix);
        // Checked: a hand-edited session timeout must not overflow the clock.
        let timeout = i64::try_from(rec.session_timeout_secs)
            .ok()
            .and_then(chrono::Duration::try_seconds);
        let exp = iat.and_then(|i| timeout.and_then(|t| i.checked_add_signed(t)));
        Expiry {
            active: exp.is_none_or(|e| e > now),
            exp,
            iat,
            source: Source::Estimate,
            checked_at: None,
            note,
        }
    }

    fn from_jwt(t: &jwt::JwtTimes, now: DateTime<Utc>) -> Expiry {
        Expiry {
            active: t.exp > now,
            exp: Some(t.exp),
            iat: t.iat,
            source: Source::Jwt,
            checked_at: None,
            note: None,
        }
    }
}

/// 0 requests: what the record alone says — the JWT `exp` learned when the
/// token was stored, the cached introspection, else the estimate. Opens neither
/// a keychain nor the network. `None` when nothing is known.
pub fn offline(rec: &OrgRecord, now: DateTime<Utc>) -> Option<Expiry> {
    if let Some(k) = rec.expiry {
        let exp = from_unix(k.exp)?;
        return Some(Expiry {
            active: exp > now,
            exp: Some(exp),
            iat: k.iat.and_then(from_unix),
            source: match k.source {
                ExactSource::Jwt => Source::Jwt,
                ExactSource::Introspection => Source::Cached,
            },
            checked_at: match k.source {
                ExactSource::Jwt => None,
                ExactSource::Introspection => from_unix(k.checked_at),
            },
            note: None,
        });
    }
    rec.issued_at.map(|_| Expiry::estimate(rec, None, now))
}

/// The best expiry right after a token was minted: JWT `exp`, else the estimate.
pub fn after_mint(rec: &OrgRecord, now: DateTime<Utc>) -> Expiry {
    offline(rec, now).unwrap_or_else(|| Expiry::estimate(rec, None, now))
}

/// 0 requests for a JWT access token (its own `exp`); otherwise introspection
/// (1 request, +1 userinfo probe when it says inactive). Not remembered: callers
/// answering for many orgs [`remember`] all results in one write.
pub fn read_or_ask(
    store: &dyn OrgStore,
    sf: &Client<'_>,
    now: DateTime<Utc>,
    org: &Org,
    token: &Secret,
) -> Result<Expiry, crate::error::Error> {
    if let Some(t) = jwt::times(token.expose()) {
        return Ok(Expiry::from_jwt(&t, now));
    }
    introspect(store, sf, now, org, token)
}

/// Asks the server even about a JWT access token when a client id is known:
/// its `exp` can be read locally, yet only the server knows whether it was
/// revoked (`sfx watch` re-checks to notice revocation). Where the server cannot
/// answer, a JWT's own `exp` beats the estimate. Introspection answers are
/// remembered for `--offline`.
pub fn ask_server(
    store: &dyn OrgStore,
    sf: &Client<'_>,
    now: DateTime<Utc>,
    org: &Org,
    token: &Secret,
) -> Result<Expiry, crate::error::Error> {
    let e = ask_server_only(store, sf, now, org, token)?;
    remember(store, &[(org, token, &e)]);
    Ok(e)
}

/// [`ask_server`] without remembering: `sfx watch` over many orgs writes its
/// answers in one update every 30 s rather than one per check (a store of
/// 10,000 orgs is a 6 MB metadata file; issue #16).
pub fn ask_server_only(
    store: &dyn OrgStore,
    sf: &Client<'_>,
    now: DateTime<Utc>,
    org: &Org,
    token: &Secret,
) -> Result<Expiry, crate::error::Error> {
    Ok(match jwt::times(token.expose()) {
        None => introspect(store, sf, now, org, token)?,
        Some(t) if org.record.client_id.is_none() => Expiry::from_jwt(&t, now),
        Some(t) => {
            let e = introspect(store, sf, now, org, token)?;
            if e.source == Source::Estimate {
                Expiry::from_jwt(&t, now)
            } else {
                e
            }
        }
    })
}

/// Introspection, with the inactive probe and the fallbacks.
fn introspect(
    store: &dyn OrgStore,
    sf: &Client<'_>,
    now: DateTime<Utc>,
    org: &Org,
    token: &Secret,
) -> Result<Expiry, crate::error::Error> {
    let rec = &org.record;
    let Some(client_id) = rec.client_id.as_deref() else {
        return probe_only(
            sf,
            now,
            org,
            token,
            "no client id is known for this org, so introspection is not possible",
        );
    };
    if rec.has_client_secret && store.is_reader() {
        // Introspection authenticates with the client secret, which a reader
        // key cannot open (issue #20): tell what the token itself and the
        // record can.
        return probe_only(
            sf,
            now,
            org,
            token,
            "a reader key cannot introspect (the introspection endpoint takes the client secret, which only the refresher key opens)",
        );
    }
    let client_secret = secret(store, org, SecretKind::ClientSecret)?;
    let creds = ClientCreds {
        id: client_id,
        secret: client_secret.as_ref(),
    };
    match sf.introspect(&rec.instance_url, token, "access_token", creds)? {
        Introspected::Answer(map) => {
            let active = map.get("active").and_then(|a| a.as_bool()).unwrap_or(false);
            if active {
                let exp = map.get("exp").and_then(crate::timefmt::parse_epoch_value);
                let iat = map.get("iat").and_then(crate::timefmt::parse_epoch_value);
                if let Some(exp) = exp {
                    return Ok(Expiry {
                        active: true,
                        exp: Some(exp),
                        iat,
                        source: Source::Introspection,
                        checked_at: Some(now),
                        note: None,
                    });
                }
                return Ok(Expiry::estimate(
                    rec,
                    Some("introspection said active but gave no exp".into()),
                    now,
                ));
            }
            // Inactive is checked once: a live token of another app also reads as inactive.
            match sf.userinfo(&rec.instance_url, token)? {
                TokenProbe::Dead(_) => Ok(Expiry { active: false, exp: None, iat: None, source: Source::Introspection, checked_at: Some(now), note: None }),
                TokenProbe::Alive(_) => Ok(Expiry::estimate(
                    rec,
                    Some("introspection answered inactive, but the token works (it belongs to another connected app, which this app's introspection cannot see); falling back to the estimate".into()),
                    now,
                )),
            }
        }
        Introspected::ClientRejected(why) => Ok(Expiry::estimate(
            rec,
            Some(format!(
                "the introspection endpoint rejected the client credentials ({why}); falling back to the estimate"
            )),
            now,
        )),
    }
}

/// No introspection possible: the estimate if `issued_at` is known, else ask
/// userinfo whether the token works at all.
fn probe_only(
    sf: &Client<'_>,
    now: DateTime<Utc>,
    org: &Org,
    token: &Secret,
    why: &str,
) -> Result<Expiry, crate::error::Error> {
    if org.record.issued_at.is_some() {
        return Ok(Expiry::estimate(
            &org.record,
            Some(format!("{why}; this is an estimate")),
            now,
        ));
    }
    let alive = matches!(
        sf.userinfo(&org.record.instance_url, token)?,
        TokenProbe::Alive(_)
    );
    Ok(Expiry {
        active: alive,
        exp: None,
        iat: None,
        source: Source::Estimate,
        checked_at: None,
        note: Some(format!(
            "{why}, and the token's issue time is unknown: its expiry cannot be told (userinfo says it is {})",
            if alive { "alive" } else { "dead" }
        )),
    })
}

/// Remember introspection answers for `--offline` and `sfx orgs`: only active
/// ones, and (the store checks) only if the token asked about is still the
/// stored one. One store write for all of them; a failure to cache is not worth
/// failing the command for.
pub fn remember(store: &dyn OrgStore, results: &[(&Org, &Secret, &Expiry)]) {
    let masked: Vec<(&Org, String, &Expiry)> = results
        .iter()
        .map(|(org, token, e)| (*org, token.mask(), *e))
        .collect();
    let refs: Vec<(&Org, &str, &Expiry)> = masked
        .iter()
        .map(|(o, m, e)| (*o, m.as_str(), *e))
        .collect();
    remember_masked(store, &refs);
}

/// [`remember`] with each token already in its masked form (as the metadata
/// holds it); a result is kept only while that token is still the stored one.
pub fn remember_masked(store: &dyn OrgStore, results: &[(&Org, &str, &Expiry)]) {
    let fresh: Vec<Remembered<'_>> = results
        .iter()
        .filter(|(_, _, e)| e.active && e.source == Source::Introspection)
        .filter_map(|(org, masked, e)| {
            Some(Remembered {
                alias: org.name(),
                masked: masked.to_string(),
                expiry: KnownExpiry {
                    exp: e.exp?.timestamp(),
                    iat: e.iat.map(|i| i.timestamp()),
                    source: ExactSource::Introspection,
                    checked_at: e.checked_at?.timestamp(),
                },
            })
        })
        .collect();
    let _ = store.remember(&fresh);
}
