//! Getting a new access token and storing it.
//!
//! Entry points, by what they cost:
//! - [`refresh_if_needed`]: takes the org's lock; 0 requests when the stored
//!   token is known to outlive the window, else one refresh;
//! - [`refresh_unless_replaced`]: takes the org's lock after a 401; 0 requests
//!   when another process stored a different token meanwhile, else one refresh;
//! - [`refresh_now`]: always one refresh (the caller holds the org's lock).
//!
//! Rules: an org refreshes by its refresh token; JWT bearer and client
//! credentials orgs re-run their grant; username-password orgs cannot (exit 4).
//! A rotating refresh is journaled (see [`crate::store::journal`]) so a refresh
//! token an interrupted refresh may have spent is never replayed. New tokens are
//! stored by compare-and-set: if another writer won, its token is used.
//!
//! A store opened with a reader key (the shared store, issue #20) never
//! refreshes: where the others would refresh, it asks the refreshers through
//! the store ([`OrgStore::ask_refreshers`]) and uses the token they store —
//! `for_reader`, the one place a reader's path branches off.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::expiry::offline;
use super::{apply_token, relogin_hint, secret, vouched_for};
use crate::clock::Clock;
use crate::error::Error;
use crate::salesforce::flows::{client_credentials, jwt_bearer};
use crate::salesforce::http::Delivery;
use crate::salesforce::types::TokenResponse;
use crate::salesforce::{Client, ClientCreds, Failed, Introspected};
use crate::secret::Secret;
use crate::store::metadata::Flow;
use crate::store::{Cas, NewTokens, Org, OrgStore, SecretKind, Version};

/// The result of a refresh.
#[derive(Debug)]
pub struct Refreshed {
    /// The org as stored afterwards.
    pub org: Org,
    pub access_token: Secret,
    /// Salesforce handed out a new refresh token.
    pub rotated: bool,
    /// Another writer stored newer tokens first; these are its.
    pub by_other: bool,
}

/// What [`refresh_if_needed`] hands back.
#[derive(Debug)]
pub struct Fresh {
    pub org: Org,
    pub access_token: Secret,
    /// `None`: the stored token was good enough.
    pub refreshed: Option<Refreshed>,
}

/// Under the org's lock, with the org read again (another process may have
/// just refreshed): the stored access token if it is known to be valid for at
/// least `min_valid` more (0 requests), else [`refresh_now`]. `Ok(None)` when
/// the org was removed meanwhile.
pub fn refresh_if_needed(
    store: &dyn OrgStore,
    sf: &Client<'_>,
    clock: &dyn Clock,
    alias: &str,
    min_valid: Duration,
) -> Result<Option<Fresh>, Error> {
    if store.is_reader() {
        let now = clock.now();
        return for_reader(store, alias, |org| {
            let ok = offline(&org.record, now).is_some_and(|e| e.outlives(now, min_valid));
            (!ok).then(|| need(now, min_valid, None))
        });
    }
    let _lock = store.lock(alias)?;
    let Some(current) = store.read(alias)? else {
        return Ok(None);
    };
    let now = clock.now();
    let fresh = offline(&current.org.record, now).is_some_and(|e| e.outlives(now, min_valid));
    if fresh && let Some(token) = secret(store, &current.org, SecretKind::AccessToken)? {
        return Ok(Some(Fresh {
            org: current.org,
            access_token: token,
            refreshed: None,
        }));
    }
    let r = refresh_now(store, sf, clock, &current.org)?;
    Ok(Some(Fresh {
        org: r.org.clone(),
        access_token: r.access_token.clone(),
        refreshed: Some(r),
    }))
}

/// Salesforce rejected `sent` (HTTP 401) although it looked valid. Under the
/// org's lock, with the org read again: if the store now holds a different
/// access token (another process refreshed meanwhile), that one (0 requests);
/// otherwise [`refresh_now`] (1). `Ok(None)` when the org was removed meanwhile.
pub fn refresh_unless_replaced(
    store: &dyn OrgStore,
    sf: &Client<'_>,
    clock: &dyn Clock,
    alias: &str,
    sent: &Secret,
) -> Result<Option<Fresh>, Error> {
    if store.is_reader() {
        let now = clock.now();
        let dead = crate::store::shared::token_fingerprint(sent);
        return for_reader_by_token(store, alias, |token| {
            (token.expose() == sent.expose()).then(|| need(now, Duration::ZERO, Some(dead.clone())))
        });
    }
    let _lock = store.lock(alias)?;
    let Some(current) = store.read(alias)? else {
        return Ok(None);
    };
    if let Some(stored) = secret(store, &current.org, SecretKind::AccessToken)?
        && stored.expose() != sent.expose()
    {
        return Ok(Some(Fresh {
            org: current.org,
            access_token: stored,
            refreshed: None,
        }));
    }
    let r = refresh_now(store, sf, clock, &current.org)?;
    Ok(Some(Fresh {
        org: r.org.clone(),
        access_token: r.access_token.clone(),
        refreshed: Some(r),
    }))
}

/// One refresh of `org`, its answer stored. The caller holds the org's lock.
pub fn refresh_now(
    store: &dyn OrgStore,
    sf: &Client<'_>,
    clock: &dyn Clock,
    org: &Org,
) -> Result<Refreshed, Error> {
    if store.is_reader() {
        // A forced refresh: a token that outlives the one stored now.
        let now = clock.now();
        let until = offline(&org.record, now)
            .and_then(|e| e.exp)
            .map(|e| e.timestamp())
            .unwrap_or(now.timestamp())
            .max(now.timestamp())
            + 1;
        let need = crate::store::shared::FreshNeed {
            valid_until: until,
            dead_token_fp: None,
        };
        store.ask_refreshers(org.name(), &need)?;
        let f = read_for_reader(store, org.name())?.ok_or_else(|| {
            Error::relogin(
                format!("org {} was logged out meanwhile", org.name()),
                relogin_hint(org),
            )
        })?;
        return Ok(Refreshed {
            org: f.org,
            access_token: f.access_token,
            rotated: false,
            by_other: true,
        });
    }
    // The version this refresh replaces (and the freshest record, with it).
    let current = store.read(org.name())?.ok_or_else(|| {
        Error::relogin(
            format!("org {} was logged out meanwhile", org.name()),
            relogin_hint(org),
        )
    })?;
    let (org, version) = (&current.org, current.version);
    let rec = &org.record;
    match rec.flow {
        Flow::Jwt => {
            vouched_for(store, org)?;
            return regrant_jwt(store, sf, clock, org, version);
        }
        Flow::ClientCredentials => {
            // The flow is in the clear record: a record switched to this grant
            // by someone else would spend the client secret on a token of the
            // app's run-as user.
            vouched_for(store, org)?;
            return regrant_client_credentials(store, sf, clock, org, version);
        }
        _ => {}
    }
    let hint = relogin_hint(org);
    let Some(mut refresh_token) = secret(store, org, SecretKind::RefreshToken)? else {
        if rec.flow == Flow::Password {
            return Err(Error::relogin(
                format!(
                    "org {} was logged in with the username-password flow, which gives no refresh token, so it cannot be refreshed",
                    org.name()
                ),
                format!(
                    "log in again: `sfx login --password --alias {} --username {} …`",
                    org.name(),
                    rec.username.as_deref().unwrap_or("<USERNAME>")
                ),
            ));
        }
        if super::handed_access_token(org) {
            return Err(Error::relogin(
                "the access token in SFX_ACCESS_TOKEN cannot be refreshed: no refresh token came with it",
                hint,
            ));
        }
        return Err(Error::relogin(
            format!(
                "org {} has no refresh token ({} login), so it cannot be refreshed",
                org.name(),
                rec.flow.as_str().replace('_', " ")
            ),
            hint,
        ));
    };
    let Some(client_id) = rec.client_id.as_deref() else {
        return Err(Error::relogin(
            format!(
                "org {} has no client id, so its refresh token cannot be used",
                org.name()
            ),
            hint,
        ));
    };
    // Linked to the Salesforce CLI: hold sf's lock and send the newer of the two
    // tools' refresh tokens (sf may have rotated it).
    let sf_link = crate::sfcli::link::before_refresh(store, org, &mut refresh_token, clock)?;
    let client_secret = secret(store, org, SecretKind::ClientSecret)?;
    let creds = ClientCreds {
        id: client_id,
        secret: client_secret.as_ref(),
    };
    let base = rec.login_url.as_deref().unwrap_or(&rec.instance_url);
    let doing = format!("the refresh of org {}", org.name());
    // Rotating orgs: never replay a refresh token an interrupted refresh may
    // have spent (see `store::journal`).
    let mut send_by = None;
    let journaled = if rec.rotates_refresh_token {
        if store.journal_pending(&rec.alias, &refresh_token)? {
            // An earlier attempt (a holder that stalled past its lease, or died)
            // may still reach Salesforce: wait until it no longer can, then see
            // whether its answer was stored, and only then ask introspection.
            if let Some(left) = store.attempt_in_flight(&rec.alias)? {
                // No sfx records a longer window than its longest --timeout allows:
                // a longer one was written by someone else, and waiting it out
                // would hang this process (holding the lease) for as long as they like.
                let longest = crate::limits::TIMEOUT
                    .max
                    .saturating_mul(2)
                    .saturating_add(ATTEMPT_MARGIN);
                if left > longest {
                    return Err(Error::StoreUnavailable {
                        message: format!(
                            "the shared store records an attempt window of {} for the refresh of org {}, longer than any sfx records (at most {}): it was written by something else; nothing was sent",
                            crate::timefmt::humanize(left),
                            org.name(),
                            crate::timefmt::humanize(longest)
                        ),
                        hint: Some(format!(
                            "check who else writes to this Redis; once no sfx is refreshing org {0}, remove the key `<namespace>:inflight:{0}` (the namespace is `sfx` unless SFX_STORE_NAMESPACE says otherwise)",
                            org.name()
                        )),
                        source: None,
                    });
                }
                crate::messages::say(&format!(
                    "an earlier refresh of org {} may still reach Salesforce; waiting {} for its attempt window to close before checking its refresh token…",
                    org.name(),
                    crate::timefmt::humanize(left)
                ));
                clock.sleep(left + Duration::from_millis(100));
                if let Some(now) = store.read(&rec.alias)?
                    && now.version != version
                {
                    return winner(store, org);
                }
            }
            check_unsettled(sf, org, &refresh_token, creds, &hint)?;
        }
        let recorded = store.journal_begin(&rec.alias, &refresh_token)?;
        if recorded {
            // No attempt starts after one --timeout; each ends within another;
            // the margin covers Salesforce finishing a request sfx gave up on.
            let timeout = sf.http.timeout();
            let window = timeout.saturating_mul(2).saturating_add(ATTEMPT_MARGIN);
            send_by = Some(clock.boot() + timeout);
            if !store.attempt_begin(&rec.alias, window)? {
                // The journal stays: whoever holds the lease now may be sending
                // this very token, and its entry is the same.
                return Err(lease_lost(org));
            }
        }
        recorded
    } else {
        false
    };
    let sent = sf
        .refresh_by(
            base,
            &refresh_token,
            creds,
            rec.rotates_refresh_token,
            send_by,
            &doing,
        )
        .map_err(|f| Failed {
            error: f.error.with_relogin_hint(|| hint.clone()),
            delivery: f.delivery,
        });
    let resp = match sent {
        Ok(resp) => resp,
        // It may have spent the refresh token: keep the journal.
        Err(Failed {
            error,
            delivery: Delivery::InDoubt,
        }) if journaled => {
            return Err(match error {
                Error::Network { message: m, source } => Error::network_from(
                    format!(
                        "{m}; the refresh may have reached Salesforce, so the next one first checks that the refresh token is unspent"
                    ),
                    source,
                ),
                other => other,
            });
        }
        Err(Failed { error, .. }) => {
            // Certainly not processed (or nothing journaled): nothing is in doubt.
            if journaled {
                store.journal_settle(&rec.alias);
            }
            return Err(error);
        }
    };
    // The lease may have lapsed while the answer was on its way (a pause). The
    // answer is still written — a rotated refresh token may exist nowhere else —
    // but only by compare-and-set on the version this refresh read: if anyone
    // stored tokens since, theirs are kept and these are dropped.
    if journaled && !store.lease_held(&rec.alias).unwrap_or(true) {
        crate::messages::say(&format!(
            "the shared store's lease on org {} lapsed while this refresh ran (was the process paused?); its answer is stored only if no other process stored tokens meanwhile",
            org.name()
        ));
    }
    let saved = save(
        store,
        clock.now(),
        org,
        version,
        &resp,
        Some(&refresh_token),
    )?;
    if journaled {
        store.journal_settle(&rec.alias);
    }
    // Linked to the Salesforce CLI: hand a rotated refresh token back to sf.
    crate::sfcli::link::after_refresh(store, org, sf_link, &resp, &refresh_token)?;
    Ok(saved)
}

/// What a reader asks for: a token valid until `now + min_valid` (and, after a
/// 401, not the token with that fingerprint).
fn need(
    now: DateTime<Utc>,
    min_valid: Duration,
    dead: Option<String>,
) -> crate::store::shared::FreshNeed {
    crate::store::shared::FreshNeed {
        valid_until: now.timestamp() + i64::try_from(min_valid.as_secs()).unwrap_or(i64::MAX / 2),
        dead_token_fp: dead,
    }
}

/// A reader's refresh: no lease (a reader's Redis user may not write one), no
/// request to Salesforce. The stored token if `satisfies` accepts the org; else
/// ask the refreshers once for what `satisfies` names, read again and use what
/// they stored.
fn for_reader(
    store: &dyn OrgStore,
    alias: &str,
    satisfies: impl FnOnce(&Org) -> Option<crate::store::shared::FreshNeed>,
) -> Result<Option<Fresh>, Error> {
    let Some(current) = store.read(alias)? else {
        return Ok(None);
    };
    match satisfies(&current.org) {
        None => read_for_reader(store, alias),
        Some(need) => asked(store, alias, &need),
    }
}

/// Ask the refreshers, then read what they stored.
fn asked(
    store: &dyn OrgStore,
    alias: &str,
    need: &crate::store::shared::FreshNeed,
) -> Result<Option<Fresh>, Error> {
    store.ask_refreshers(alias, need)?;
    let fresh = read_for_reader(store, alias)?;
    Ok(fresh.map(|f| Fresh {
        refreshed: Some(Refreshed {
            org: f.org.clone(),
            access_token: f.access_token.clone(),
            rotated: false,
            by_other: true,
        }),
        ..f
    }))
}

/// As [`for_reader`], deciding by the stored access token.
fn for_reader_by_token(
    store: &dyn OrgStore,
    alias: &str,
    satisfies: impl FnOnce(&Secret) -> Option<crate::store::shared::FreshNeed>,
) -> Result<Option<Fresh>, Error> {
    let Some(current) = read_for_reader(store, alias)? else {
        return Ok(None);
    };
    match satisfies(&current.access_token) {
        None => Ok(Some(current)),
        Some(need) => asked(store, alias, &need),
    }
}

/// The org and its stored access token, for a reader (`Ok(None)`: logged out).
fn read_for_reader(store: &dyn OrgStore, alias: &str) -> Result<Option<Fresh>, Error> {
    let Some(current) = store.read(alias)? else {
        return Ok(None);
    };
    let token = secret(store, &current.org, SecretKind::AccessToken)?.ok_or_else(|| {
        Error::relogin(
            format!(
                "org {alias} in the shared store holds no access token, and a reader key cannot get one by itself"
            ),
            "a `sfx watch` with the refresher key stores one; or log in to the org again where the refresher key is".to_string(),
        )
    })?;
    Ok(Some(Fresh {
        org: current.org,
        access_token: token,
        refreshed: None,
    }))
}

/// Added to two `--timeout`s to make an attempt's window: how late Salesforce may
/// still process a request sfx stopped waiting for.
const ATTEMPT_MARGIN: Duration = Duration::from_secs(10);

fn lease_lost(org: &Org) -> Error {
    Error::StoreUnavailable {
        message: format!(
            "the shared store's lease on org {} lapsed before its refresh could be sent (was the process paused?); nothing was sent",
            org.name()
        ),
        hint: Some("run the command again: it waits for whoever holds the lease now".into()),
        source: None,
    }
}

/// An earlier rotating refresh with this token was never settled: ask introspection
/// whether the token is still active before sending it (a spent one would revoke
/// the whole login).
fn check_unsettled(
    sf: &Client<'_>,
    org: &Org,
    refresh_token: &Secret,
    creds: ClientCreds<'_>,
    hint: &str,
) -> Result<(), Error> {
    let answer = sf.introspect(
        &org.record.instance_url,
        refresh_token,
        "refresh_token",
        creds,
    )?;
    match answer {
        Introspected::Answer(map) if map.get("active").and_then(|a| a.as_bool()) == Some(false) => {
            Err(Error::relogin(
                format!(
                    "an earlier refresh of org {} was interrupted and its refresh token is no longer active: Salesforce most likely rotated it and the new one never arrived (or it was revoked); sfx did not send it again, since a spent refresh token would revoke every token of this login",
                    org.name()
                ),
                hint,
            ))
        }
        // Active (the earlier request never took effect), or introspection
        // cannot tell: go ahead.
        _ => Ok(()),
    }
}

/// JWT bearer orgs: sign a new assertion with the stored key path and run the grant again.
fn regrant_jwt(
    store: &dyn OrgStore,
    sf: &Client<'_>,
    clock: &dyn Clock,
    org: &Org,
    version: Version,
) -> Result<Refreshed, Error> {
    let rec = &org.record;
    let hint = format!(
        "log in again: `sfx login --jwt --alias {} --client-id <ID> --username <USERNAME> --key-file <PEM>`",
        org.name()
    );
    let (Some(client_id), Some(username), Some(key_file)) = (
        rec.client_id.as_deref(),
        rec.username.as_deref(),
        rec.key_file.as_deref(),
    ) else {
        return Err(Error::relogin(
            format!(
                "org {} was logged in with the JWT bearer flow, but its client id, username or key file is not stored, so the grant cannot be re-run",
                org.name()
            ),
            hint,
        ));
    };
    if let Some(w) = jwt_bearer::loose_key_warning(std::path::Path::new(key_file)) {
        crate::messages::warning(&w);
    }
    let key = jwt_bearer::load_key(std::path::Path::new(key_file)).map_err(|why| {
        Error::relogin(
            format!(
                "cannot re-run the JWT bearer grant for org {}: the key file {key_file}: {why}",
                org.name()
            ),
            hint.clone(),
        )
    })?;
    let base = rec.login_url.as_deref().unwrap_or(&rec.instance_url);
    let doing = format!("the JWT bearer grant for org {}", org.name());
    let resp = jwt_bearer::grant(
        sf,
        &jwt_bearer::JwtLogin {
            base,
            client_id,
            username,
            key: &key,
            doing: &doing,
        },
        clock.now().timestamp(),
    )
    .map_err(|e| e.with_relogin_hint(|| hint))?;
    save(store, clock.now(), org, version, &resp, None)
}

/// Client credentials orgs: run the grant again with the stored secret.
fn regrant_client_credentials(
    store: &dyn OrgStore,
    sf: &Client<'_>,
    clock: &dyn Clock,
    org: &Org,
    version: Version,
) -> Result<Refreshed, Error> {
    let rec = &org.record;
    let hint = format!(
        "log in again: `sfx login --client-credentials --alias {} --client-id <ID> --login-url https://<MyDomain>.my.salesforce.com` with SFX_CLIENT_SECRET set",
        org.name()
    );
    let client_secret = secret(store, org, SecretKind::ClientSecret)?;
    let (Some(client_id), Some(client_secret)) = (rec.client_id.as_deref(), client_secret) else {
        return Err(Error::relogin(
            format!(
                "org {} was logged in with the client credentials flow, but its client id or secret is not stored, so the grant cannot be re-run",
                org.name()
            ),
            hint,
        ));
    };
    let base = rec.login_url.as_deref().unwrap_or(&rec.instance_url);
    let doing = format!("the client credentials grant for org {}", org.name());
    let resp = client_credentials::grant(
        sf,
        base,
        ClientCreds {
            id: client_id,
            secret: Some(&client_secret),
        },
        &doing,
    )
    .map_err(|e| e.with_relogin_hint(|| hint))?;
    save(store, clock.now(), org, version, &resp, None)
}

/// Store a token response for an existing org by compare-and-set against the
/// version the refresh started from. On a conflict the winner's tokens are
/// read back and used (this refresh's answer is dropped).
fn save(
    store: &dyn OrgStore,
    now: DateTime<Utc>,
    org: &Org,
    version: Version,
    resp: &TokenResponse,
    spent: Option<&Secret>,
) -> Result<Refreshed, Error> {
    let instance_url = resp.checked_instance_url()?;
    let rotated = resp.refresh_token.is_some();
    let (mut base, mut version) = (org.record.clone(), version);
    for _ in 0..16 {
        let mut record = base.clone();
        record.instance_url = instance_url.clone();
        apply_token(&mut record, resp, now);
        if rotated {
            record.rotates_refresh_token = true;
            record.has_refresh_token = true;
        }
        let new = NewTokens {
            record: &record,
            access_token: &resp.access_token,
            refresh_token: resp.refresh_token.as_ref(),
        };
        match store.write_tokens(version, &new)? {
            Cas::Written(_) => {
                let org = match store.read(&record.alias)? {
                    Some(v) => v.org,
                    None => Org {
                        record,
                        env: org.env.clone(),
                    },
                };
                return Ok(Refreshed {
                    org,
                    access_token: resp.access_token.clone(),
                    rotated,
                    by_other: false,
                });
            }
            Cas::Conflict => {
                // The record changed meanwhile. A rotated refresh token exists
                // nowhere else: if the store still holds the token this refresh
                // spent, nobody stored newer tokens (the change was to the record
                // alone — a remembered expiry or API version, written without
                // the lock), so store ours over the newer record; else theirs win.
                let Some((sent, _)) = spent.zip(resp.refresh_token.as_ref()) else {
                    return winner(store, org);
                };
                let Some(current) = store.read(org.name())? else {
                    return winner(store, org);
                };
                let stored = secret(store, &current.org, SecretKind::RefreshToken)?;
                if stored.is_none_or(|s| s.expose() != sent.expose()) {
                    return winner(store, org);
                }
                base = current.org.record;
                version = current.version;
            }
        }
    }
    winner(store, org)
}

/// Another writer stored the org first: use what it stored.
fn winner(store: &dyn OrgStore, org: &Org) -> Result<Refreshed, Error> {
    let gone = || {
        Error::relogin(
            format!(
                "org {} was logged out while it was being refreshed",
                org.name()
            ),
            relogin_hint(org),
        )
    };
    let current = store.read(org.name())?.ok_or_else(gone)?;
    let token = secret(store, &current.org, SecretKind::AccessToken)?.ok_or_else(gone)?;
    Ok(Refreshed {
        org: current.org,
        access_token: token,
        rotated: false,
        by_other: true,
    })
}
