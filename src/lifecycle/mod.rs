//! The token lifecycle shared by `expires`, `introspect`, `token`, `refresh`,
//! `orgs --check` and `watch`: what is known about expiry ([`expiry`]) and how
//! to refresh and store ([`refresh`]) — the one place these rules live.
//!
//! Every function takes what it uses — an [`OrgStore`], a Salesforce
//! [`Client`](crate::salesforce::Client), a [`Clock`](crate::clock::Clock) or
//! just `now` — never the whole run context, and never asks which store backend
//! it has. So each rule is unit-tested directly, with a fake clock.

pub mod expiry;
pub mod refresh;

#[cfg(test)]
mod tests;

pub use expiry::{Expiry, Source};
pub use refresh::{Fresh, Refreshed};

use chrono::{DateTime, Utc};

use crate::error::Error;
use crate::salesforce::jwt;
use crate::salesforce::types::TokenResponse;
use crate::secret::Secret;
use crate::store::metadata::{ExactSource, KnownExpiry, OrgRecord, StoreKind};
use crate::store::{Org, OrgStore, SecretKind, describe_kind};

/// The org is an access token alone from the environment: what `sfx exec` and
/// `watch --exec` hand a child (which gets nothing that can mint another token).
pub fn handed_access_token(org: &Org) -> bool {
    org.record.store == StoreKind::Env
        && org.record.flow == crate::store::metadata::Flow::AccessToken
}

/// What a program holding only `SFX_ACCESS_TOKEN` can do about it.
pub const HANDED_HINT: &str = "the org comes from SFX_ACCESS_TOKEN alone (as in a program started by `sfx exec` or `sfx watch --exec`, which get no refresh token), and only whoever holds the refresh token can mint a new access token: have the parent hand on a longer-lived one (`sfx exec --min-valid 1h -- …`) or start the program again; outside sfx, set SFX_AUTH_URL instead";

/// The command that fixes a refused refresh.
pub fn relogin_hint(org: &Org) -> String {
    if handed_access_token(org) {
        HANDED_HINT.to_string()
    } else if org.record.store == StoreKind::Env {
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

/// One secret of an org. `Ok(None)` when the record says there is none (the
/// store is not even asked: no keychain opened for nothing); a relogin error
/// when the record says one was stored and the store has none (removed by
/// hand, a reset keychain, another machine's metadata — only a login helps).
pub fn secret(store: &dyn OrgStore, org: &Org, kind: SecretKind) -> Result<Option<Secret>, Error> {
    let rec = &org.record;
    let expected = match kind {
        SecretKind::AccessToken => rec.access_token_masked.is_some(),
        SecretKind::RefreshToken => rec.has_refresh_token,
        SecretKind::ClientSecret => rec.has_client_secret,
    };
    if !expected {
        return Ok(None);
    }
    match store.secret(org, kind)? {
        Some(s) => Ok(Some(s)),
        None => Err(Error::relogin(
            format!(
                "the {} has no {} for org {}, although sfx stored one there (was the entry removed, or the keychain reset?)",
                describe_kind(rec.store),
                kind.as_str().replace('-', " "),
                rec.alias
            ),
            relogin_hint(org),
        )),
    }
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

/// Before re-running a grant: the record (where the grant is sent, for whom,
/// which grant, with which key file) is the one a refresher key holder stored
/// (issues #19, #20: readers can seal access tokens, so in the shared store an
/// access token vouches for nothing; see `SharedStore::vouched`).
pub(crate) fn vouched_for(store: &dyn OrgStore, org: &Org) -> Result<(), Error> {
    let rec = &org.record;
    if rec.store != StoreKind::Shared {
        // Only this machine writes its own stores.
        return Ok(());
    }
    if !store.vouched(org)? {
        // A record with nothing sealed in it may have been written by anyone
        // who can write to the server: never sign or grant for it.
        return Err(Error::StoreUnavailable {
            message: format!(
                "org {} in the shared store holds no sealed value that vouches for its record, so sfx cannot tell it was stored by a holder of the store's key; nothing was sent",
                org.name()
            ),
            hint: Some(if rec.flow == crate::store::metadata::Flow::Jwt {
                hint_jwt_login(org)
            } else {
                relogin_hint(org)
            }),
            source: None,
        });
    }
    Ok(())
}

fn hint_jwt_login(org: &Org) -> String {
    format!(
        "log in again: `sfx login --jwt --alias {} --client-id <ID> --username <USERNAME> --key-file <PEM>`",
        org.name()
    )
}
