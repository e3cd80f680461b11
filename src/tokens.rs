//! The token lifecycle shared by `expires`, `introspect`, `token`, `refresh`,
//! `orgs --check` and `watch`: what is known about expiry, how to learn it exactly,
//! and how to refresh and save — the one place these rules live.
//!
//! Expiry, in the contract's order: a JWT access token's own `exp` (no request);
//! introspection (one request; when it says inactive, one userinfo probe tells a
//! dead token from a live one this app cannot see); offline, the cached
//! introspection result; last, `issued_at` + the org's session timeout.

use chrono::{DateTime, Utc};

use crate::context::{Context, Org};
use crate::error::Error;
use crate::salesforce::flows::{client_credentials, jwt_bearer};
use crate::salesforce::http::Delivery;
use crate::salesforce::types::TokenResponse;
use crate::salesforce::url::base_url;
use crate::salesforce::{Introspected, TokenProbe, jwt};
use crate::secret::Secret;
use crate::store::SecretKind;
use crate::store::metadata::{ExactSource, Flow, KnownExpiry, OrgRecord};
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

    fn estimate(rec: &OrgRecord, note: Option<String>, now: DateTime<Utc>) -> Expiry {
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
}

/// What the metadata alone says: JWT `exp`, cached introspection, estimate.
/// Opens neither the keychain nor the network. `None` when nothing is known.
pub fn offline(org: &Org, now: DateTime<Utc>) -> Option<Expiry> {
    if let Some(token) = org.env.as_ref().and_then(|e| e.access_token.as_ref())
        && let Some(t) = jwt::times(token.expose())
    {
        return Some(from_jwt(&t, now));
    }
    let rec = &org.record;
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

/// The exact answer, asking Salesforce when the token itself cannot tell, and
/// remembered for `--offline` when it came from introspection.
pub fn check(ctx: &Context, org: &Org, token: &Secret) -> Result<Expiry, Error> {
    let e = measure(ctx, org, token)?;
    remember(ctx, &[(org, token, &e)]);
    Ok(e)
}

/// [`check`] without remembering: for callers that answer for many orgs and then
/// [`remember`] all results in one metadata write.
pub fn measure(ctx: &Context, org: &Org, token: &Secret) -> Result<Expiry, Error> {
    if let Some(t) = jwt::times(token.expose()) {
        return Ok(from_jwt(&t, ctx.now()));
    }
    ask_server(ctx, org, token)
}

/// Like [`check`], but asks introspection even about a JWT access token when a
/// client id is known: its `exp` can be read locally, yet only the server knows
/// whether it was revoked (`sfx watch` re-checks to notice revocation). Where
/// the server cannot answer, a JWT's own `exp` beats the estimate.
pub fn check_with_server(ctx: &Context, org: &Org, token: &Secret) -> Result<Expiry, Error> {
    let e = measure_with_server(ctx, org, token)?;
    remember(ctx, &[(org, token, &e)]);
    Ok(e)
}

/// [`check_with_server`] without remembering: `sfx watch` over many orgs caches
/// the results in one metadata write a minute rather than one per check (a
/// store of 10,000 orgs is a 6 MB file; issue #16).
pub fn measure_with_server(ctx: &Context, org: &Org, token: &Secret) -> Result<Expiry, Error> {
    let Some(t) = jwt::times(token.expose()) else {
        return measure(ctx, org, token);
    };
    if org.record.client_id.is_none() {
        return Ok(from_jwt(&t, ctx.now()));
    }
    let e = ask_server(ctx, org, token)?;
    if e.source == Source::Estimate {
        return Ok(from_jwt(&t, ctx.now()));
    }
    Ok(e)
}

fn ask_server(ctx: &Context, org: &Org, token: &Secret) -> Result<Expiry, Error> {
    let now = ctx.now();
    let rec = &org.record;
    let Some(client_id) = rec.client_id.as_deref() else {
        return probe_only(
            ctx,
            org,
            token,
            "no client id is known for this org, so introspection is not possible",
        );
    };
    let secret = ctx.secret(org, SecretKind::ClientSecret)?;
    let creds = crate::salesforce::ClientCreds {
        id: client_id,
        secret: secret.as_ref(),
    };
    match ctx
        .client()
        .introspect(&rec.instance_url, token, "access_token", creds)?
    {
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
            match ctx.client().userinfo(&rec.instance_url, token)? {
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
fn probe_only(ctx: &Context, org: &Org, token: &Secret, why: &str) -> Result<Expiry, Error> {
    let now = ctx.now();
    if org.record.issued_at.is_some() {
        return Ok(Expiry::estimate(
            &org.record,
            Some(format!("{why}; this is an estimate")),
            now,
        ));
    }
    let alive = matches!(
        ctx.client().userinfo(&org.record.instance_url, token)?,
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

/// Remember introspection answers for `--offline` and `sfx orgs`: stored orgs only,
/// and only if the stored token is still the one that was asked about. One
/// metadata write for all of them.
pub fn remember(ctx: &Context, results: &[(&Org, &Secret, &Expiry)]) {
    let masked: Vec<(&Org, String, &Expiry)> = results
        .iter()
        .map(|(org, token, e)| (*org, token.mask(), *e))
        .collect();
    remember_masked(
        ctx,
        &masked
            .iter()
            .map(|(o, m, e)| (*o, m.as_str(), *e))
            .collect::<Vec<_>>(),
    );
}

/// [`remember`] with each token already in its masked form (as the metadata
/// holds it): the result is kept only while that token is still the stored one.
pub fn remember_masked(ctx: &Context, results: &[(&Org, &str, &Expiry)]) {
    let fresh: Vec<(&str, String, KnownExpiry)> = results
        .iter()
        .filter(|(org, _, e)| !org.is_env() && e.active && e.source == Source::Introspection)
        .filter_map(|(org, masked, e)| {
            Some((
                org.name(),
                masked.to_string(),
                KnownExpiry {
                    exp: e.exp?.timestamp(),
                    iat: e.iat.map(|i| i.timestamp()),
                    source: ExactSource::Introspection,
                    checked_at: e.checked_at?.timestamp(),
                },
            ))
        })
        .collect();
    if fresh.is_empty() {
        return;
    }
    // A failure to cache is not worth failing the command for.
    let _ = ctx.store.update(|meta| {
        for (alias, masked, known) in &fresh {
            if let Some(rec) = meta.orgs.get_mut(*alias)
                && rec.access_token_masked.as_deref() == Some(masked.as_str())
            {
                rec.expiry = Some(*known);
            }
        }
        Ok(())
    });
}

/// The result of a refresh.
pub struct Refreshed {
    pub org: Org,
    pub access_token: Secret,
    pub rotated: bool,
    /// Env mode with a rotated refresh token: the new `SFX_AUTH_URL`.
    pub new_auth_url: Option<String>,
}

/// The command that fixes a refused refresh.
pub fn relogin_hint(org: &Org) -> String {
    if org.is_env() {
        "the credentials in the environment are dead: mint a new SFDX auth URL (`sfx token --auth-url -o <ORG>`, or `sf org auth show-sfdx-auth-url -o <ORG> --json`) and update the CI secret".to_string()
    } else if let Some(link) = &org.record.sf_link {
        format!(
            "if sf itself still works for this org, take its login again: `sfx login --from-sf {} --alias {}`; otherwise log in again: `sfx login --web --alias {}`",
            link.username,
            org.name(),
            org.name()
        )
    } else {
        format!(
            "log in again: `sfx login --alias {} …` (for an imported org: `sfx login --auth-url - --alias {}`)",
            org.name(),
            org.name()
        )
    }
}

/// Get a new access token by the org's way of refreshing, and save it.
/// The caller holds the org lock for stored orgs.
///
/// Refresh token if there is one; JWT bearer and client credentials orgs re-run
/// their grant (they never get a refresh token); username-password orgs cannot
/// refresh (exit 4, "log in again").
pub fn refresh(ctx: &Context, org: &Org) -> Result<Refreshed, Error> {
    let rec = &org.record;
    match rec.flow {
        Flow::Jwt if !org.is_env() => return regrant_jwt(ctx, org),
        Flow::ClientCredentials if !org.is_env() => return regrant_client_credentials(ctx, org),
        _ => {}
    }
    let hint = relogin_hint(org);
    let refresh_token = ctx.secret(org, SecretKind::RefreshToken)?;
    let Some(mut refresh_token) = refresh_token else {
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
    let sf_link = crate::sfcli::link::before_refresh(ctx, org, &mut refresh_token)?;
    let secret = ctx.secret(org, SecretKind::ClientSecret)?;
    let creds = crate::salesforce::ClientCreds {
        id: client_id,
        secret: secret.as_ref(),
    };
    let base = rec.login_url.as_deref().unwrap_or(&rec.instance_url);
    let doing = format!("the refresh of org {}", org.name());
    // Rotating stored orgs: never replay a refresh token an interrupted refresh
    // may have spent (see `store::journal`).
    let journal =
        (!org.is_env() && rec.rotates_refresh_token).then(|| ctx.store.refresh_journal(&rec.alias));
    if let Some(j) = &journal {
        if j.pending_for(&refresh_token) {
            check_unsettled(ctx, org, &refresh_token, creds, &hint)?;
        }
        j.begin(&refresh_token)?;
    }
    let sent = ctx.client().refresh_tracked(
        base,
        &refresh_token,
        creds,
        rec.rotates_refresh_token,
        &doing,
        &hint,
    );
    let resp = match (sent, &journal) {
        (Ok(resp), _) => resp,
        // It may have spent the refresh token: keep the journal.
        (Err((e, Delivery::InDoubt)), Some(_)) => {
            return Err(match e {
                Error::Network(m) => Error::Network(format!(
                    "{m}; the refresh may have reached Salesforce, so the next one first checks that the refresh token is unspent"
                )),
                other => other,
            });
        }
        (Err((e, _)), j) => {
            // Certainly not processed: nothing is in doubt.
            if let Some(j) = j {
                j.end();
            }
            return Err(e);
        }
    };
    let saved = save(ctx, org, &resp, secret.as_ref())?;
    if let Some(j) = &journal {
        j.end();
    }
    // Linked to the Salesforce CLI: hand a rotated refresh token back to sf.
    crate::sfcli::link::after_refresh(ctx, org, sf_link, &resp, &refresh_token)?;
    Ok(saved)
}

/// An earlier rotating refresh with this token was never settled: ask introspection
/// whether the token is still active before sending it (a spent one would revoke
/// the whole login).
fn check_unsettled(
    ctx: &Context,
    org: &Org,
    refresh_token: &Secret,
    creds: crate::salesforce::ClientCreds<'_>,
    hint: &str,
) -> Result<(), Error> {
    let answer = ctx.client().introspect(
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
fn regrant_jwt(ctx: &Context, org: &Org) -> Result<Refreshed, Error> {
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
        &ctx.client(),
        &jwt_bearer::JwtLogin {
            base,
            client_id,
            username,
            key: &key,
            hint: &hint,
            doing: &doing,
        },
        ctx.now().timestamp(),
    )?;
    save(ctx, org, &resp, None)
}

/// Client credentials orgs: run the grant again with the stored secret.
fn regrant_client_credentials(ctx: &Context, org: &Org) -> Result<Refreshed, Error> {
    let rec = &org.record;
    let hint = format!(
        "log in again: `sfx login --client-credentials --alias {} --client-id <ID> --login-url https://<MyDomain>.my.salesforce.com` with SFX_CLIENT_SECRET set",
        org.name()
    );
    let secret = ctx.secret(org, SecretKind::ClientSecret)?;
    let (Some(client_id), Some(secret)) = (rec.client_id.as_deref(), secret) else {
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
        &ctx.client(),
        base,
        crate::salesforce::ClientCreds {
            id: client_id,
            secret: Some(&secret),
        },
        &doing,
        &hint,
    )?;
    save(ctx, org, &resp, Some(&secret))
}

/// Store a token response for an existing org: a rotated refresh token first,
/// then the access token, then the metadata. Env orgs change only in memory.
pub fn save(
    ctx: &Context,
    org: &Org,
    resp: &TokenResponse,
    client_secret: Option<&Secret>,
) -> Result<Refreshed, Error> {
    let now = ctx.now();
    let instance_url = base_url(
        &resp.instance_url,
        "the instance_url in Salesforce's answer",
    )
    .map_err(|e| {
        Error::Network(format!(
            "Salesforce answered with an unusable instance_url: {e}"
        ))
    })?;
    let rotated = resp.refresh_token.is_some();
    let mut record = org.record.clone();
    record.instance_url = instance_url;
    apply_token(&mut record, resp, now);
    if rotated {
        record.rotates_refresh_token = true;
        record.has_refresh_token = true;
    }
    if let Some(env) = &org.env {
        let mut env = env.clone();
        env.access_token = Some(resp.access_token.clone());
        let mut new_auth_url = None;
        if let Some(rt) = &resp.refresh_token {
            env.refresh_token = Some(rt.clone());
            if env.from_auth_url {
                new_auth_url = Some(crate::salesforce::auth_url::AuthUrl::format(
                    record.client_id.as_deref().unwrap_or(""),
                    client_secret,
                    rt,
                    &record.instance_url,
                ));
            }
        }
        return Ok(Refreshed {
            org: Org {
                record,
                env: Some(env),
            },
            access_token: resp.access_token.clone(),
            rotated,
            new_auth_url,
        });
    }
    let backend = ctx.store.backend(record.store);
    let mut changes: Vec<(SecretKind, Option<&Secret>)> = Vec::new();
    if let Some(rt) = &resp.refresh_token {
        changes.push((SecretKind::RefreshToken, Some(rt)));
    }
    changes.push((SecretKind::AccessToken, Some(&resp.access_token)));
    backend.put(&record.alias, &changes)?;
    let saved = record.clone();
    ctx.store.update(|meta| {
        let default_keep = meta.default.clone();
        meta.orgs.insert(saved.alias.clone(), saved.clone());
        meta.default = default_keep;
        Ok(())
    })?;
    Ok(Refreshed {
        org: Org { record, env: None },
        access_token: resp.access_token.clone(),
        rotated,
        new_auth_url: None,
    })
}

/// Put what a token response says about the new access token into a record.
pub fn apply_token(record: &mut OrgRecord, resp: &TokenResponse, now: DateTime<Utc>) {
    let issued = resp.issued_at_time().unwrap_or(now);
    record.issued_at = Some(issued.timestamp());
    record.access_token_masked = Some(resp.access_token.mask());
    record.expiry = jwt::times(resp.access_token.expose()).map(|t| KnownExpiry {
        exp: t.exp.timestamp(),
        iat: t.iat.map(|i| i.timestamp()),
        source: ExactSource::Jwt,
        checked_at: now.timestamp(),
    });
    if resp.refresh_token.is_some() || record.has_refresh_token {
        record.refresh_token_used_at = Some(now.timestamp());
    }
    if let Some((org_id, user_id)) = resp.org_and_user() {
        record.org_id = Some(org_id);
        record.user_id = Some(user_id);
    }
}

/// The best expiry right after a token was minted: JWT `exp`, else the estimate.
pub fn after_mint(record: &OrgRecord, now: DateTime<Utc>) -> Expiry {
    let org = Org {
        record: record.clone(),
        env: None,
    };
    offline(&org, now).unwrap_or_else(|| Expiry::estimate(record, None, now))
}
