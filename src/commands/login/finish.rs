//! The end of every `sfx login` flow: learn the user (one userinfo request),
//! build the org's record, check that it reads back, and store it — secrets
//! first, the record last — through the store's one interface.

use super::Login;
use crate::commands::TokenSummary;
use crate::context::check_alias;
use crate::error::Error;
use crate::lifecycle;
use crate::salesforce::TokenProbe;
use crate::salesforce::types::TokenResponse;
use crate::salesforce::types::Userinfo;
use crate::secret::Secret;
use crate::store::SecretKind;
use crate::store::metadata::{Flow, OrgRecord};

/// What a flow obtained besides the token response: what the record and the
/// store need to know about how the org was logged in.
pub(super) struct Obtained {
    pub flow: Flow,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    pub refresh_token: Option<Secret>,
    pub login_url: Option<String>,
    /// JWT bearer: the key's path (never the key), to sign again on refresh.
    pub key_file: Option<String>,
}

/// Learn the user, then store everything: secrets first, metadata last.
pub(super) fn finish(
    l: &Login<'_>,
    got: Obtained,
    resp: &TokenResponse,
) -> Result<TokenSummary, Error> {
    let Login {
        ctx,
        args,
        store,
        now,
    } = *l;
    let Obtained {
        flow,
        client_id,
        client_secret,
        refresh_token,
        login_url,
        key_file,
    } = got;
    let instance_url = resp.checked_instance_url()?;
    let mut notes = Vec::new();
    let mut unknown_user = false;
    let info = match ctx.client().userinfo(&instance_url, &resp.access_token) {
        Ok(TokenProbe::Alive(info)) => info,
        // The token request worked and brought a refresh token (under rotation,
        // the pasted one is spent now): a failed userinfo must not lose the
        // login. Stored without the username, named by --alias or the user id.
        Err(e) if refresh_token.is_some() => {
            let (org_id, user_id) = resp
                .id
                .as_deref()
                .and_then(crate::salesforce::types::ids_from_identity_url)
                .unzip();
            if args.alias.is_none() && user_id.is_none() {
                return Err(e);
            }
            unknown_user = true;
            notes.push(format!(
                "warning: the login worked but sfx could not learn the user ({}), so the org is stored without its username",
                crate::text::sanitize(&e.to_string(), 300)
            ));
            Userinfo {
                preferred_username: None,
                user_id,
                organization_id: org_id,
                sub: None,
            }
        }
        Err(e) => return Err(e),
        Ok(TokenProbe::Dead(status)) => {
            return Err(Error::relogin(
                format!(
                    "Salesforce does not accept the access token (userinfo answered HTTP {status}); it is expired, revoked, or for another org"
                ),
                "get a fresh token and import it again",
            ));
        }
    };
    let username = info.preferred_username.clone();
    let alias = match (&args.alias, &username, &info.user_id) {
        (Some(a), _, _) => a.clone(),
        (None, Some(u), _) => {
            check_alias(u, "the username (used as the alias)")?;
            u.clone()
        }
        // Userinfo failed after a token request (see above): the user id.
        (None, None, Some(id)) if unknown_user => {
            check_alias(id, "the user id (used as the alias)")?;
            notes.push(format!(
                "note: stored as `{id}` (the user id); `sfx login --alias NAME …` stores it under a name of your choice"
            ));
            id.clone()
        }
        (None, None, _) => {
            return Err(Error::usage(
                "Salesforce did not say the username; give the org a name with --alias",
            ));
        }
    };
    let mut record = OrgRecord {
        username,
        org_id: info.organization_id.clone(),
        user_id: info.user_id.clone(),
        login_url,
        client_id,
        session_timeout_secs: args.session_timeout.as_secs().max(60),
        has_refresh_token: refresh_token.is_some(),
        has_client_secret: client_secret.is_some(),
        key_file,
        ..OrgRecord::new(alias.clone(), instance_url, flow, store)
    };
    lifecycle::apply_token(&mut record, resp, now);
    // A refresh-token grant that returns a refresh token is rotation: remember it,
    // so later refreshes are never retried once they may have been delivered.
    record.rotates_refresh_token =
        matches!(flow, Flow::AuthUrl | Flow::RefreshToken) && resp.refresh_token.is_some();
    if refresh_token.is_some() {
        record.refresh_token_used_at = Some(now.timestamp());
    }

    // Never store an org sfx would refuse to read back: check before any write.
    record.readable().map_err(|why| {
        Error::Other(format!(
            "sfx did not store org {alias}: its record would not read back ({why}); nothing was stored"
        ))
    })?;
    let changes = [
        (SecretKind::RefreshToken, refresh_token.as_ref()),
        (SecretKind::AccessToken, Some(&resp.access_token)),
        (SecretKind::ClientSecret, client_secret.as_ref()),
    ];
    // Secrets first, then the record; an org moved between stores leaves no
    // copy behind in the old one (a failure to delete it is a warning).
    notes.extend(
        ctx.stored_orgs()
            .save_org(&record, &changes, args.set_default)?,
    );
    let expiry = lifecycle::expiry::after_mint(&record, now);
    Ok(TokenSummary {
        verb: "Logged in to",
        record,
        expiry,
        rotated: false,
        now,
        access_token: resp.access_token.clone(),
        refresh_token,
        show_token: args.show_token,
        notes,
    })
}

/// Store an org from an interactive flow that should bring a refresh token
/// (web, device), and say so when Salesforce gave none.
pub(super) fn finish_with_refresh_token(
    l: &Login<'_>,
    flow: Flow,
    client_id: String,
    secret: Option<Secret>,
    resp: &TokenResponse,
    login_url: Option<String>,
) -> Result<TokenSummary, Error> {
    let refresh_token = resp.refresh_token.clone();
    let mut summary = finish(
        l,
        Obtained {
            flow,
            client_id: Some(client_id),
            client_secret: secret,
            refresh_token: refresh_token.clone(),
            login_url,
            key_file: None,
        },
        resp,
    )?;
    if refresh_token.is_none() {
        summary.notes.push("note: Salesforce returned no refresh token (the app's scopes lack `refresh_token`/`offline_access`, or --scope left it out), so this org cannot be refreshed: log in again when the session ends".into());
    }
    Ok(summary)
}
