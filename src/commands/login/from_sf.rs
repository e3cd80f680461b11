//! `sfx login --from-sf [ALIAS|USERNAME]`: take a login of the Salesforce CLI
//! without a new login (no approval slot, no token request; one userinfo request
//! checks the access token), and keep it linked (see `sfcli::link`). Without a
//! value: list sf's logins from its files, reading no secret.

use serde_json::{Value, json};

use crate::cli::LoginArgs;
use crate::commands::TokenSummary;
use crate::context::{Context, check_alias};
use crate::error::Error;
use crate::output::{Report, Style};
use crate::salesforce::TokenProbe;
use crate::sfcli::{files, link};
use crate::store::SecretKind;
use crate::store::metadata::{ExactSource, Flow, KnownExpiry, OrgRecord};
use crate::{lifecycle, salesforce::jwt};

pub enum FromSf {
    Imported(Box<TokenSummary>),
    Listed {
        dir: String,
        rows: Vec<files::Listed>,
    },
}

impl Report for FromSf {
    fn human(&self, style: &Style) -> String {
        match self {
            FromSf::Imported(s) => s.human(style),
            FromSf::Listed { dir, rows } if rows.is_empty() => format!(
                "The Salesforce CLI has no logins in {dir}. Log sf in (`sf org login web --alias prod`), or log sfx in directly with `sfx login`."
            ),
            FromSf::Listed { rows, .. } => {
                let mut t = crate::output::table(&["ALIAS", "USERNAME", "INSTANCE", "NOTE"], style);
                for r in rows {
                    t.add_row(vec![
                        r.aliases.join(", "),
                        r.username.clone(),
                        r.instance_url.clone().unwrap_or_default(),
                        r.problem.clone().unwrap_or_default(),
                    ]);
                }
                t.to_string()
            }
        }
    }

    /// Imported: the login summary plus `"linked_sf_file"`. Listed:
    /// `[{"aliases","username","instance_url","org_id","problem"}]`.
    fn json(&self) -> Value {
        match self {
            FromSf::Imported(s) => {
                let mut v = s.json();
                v["linked_sf_file"] = json!(s.record.sf_link.as_ref().map(|l| l.file.clone()));
                v
            }
            FromSf::Listed { rows, .. } => Value::Array(
                rows.iter()
                    .map(|r| {
                        json!({
                            "aliases": r.aliases,
                            "username": r.username,
                            "instance_url": r.instance_url,
                            "org_id": r.org_id,
                            "problem": r.problem,
                        })
                    })
                    .collect(),
            ),
        }
    }

    fn notes(&self) -> Vec<String> {
        match self {
            FromSf::Imported(s) => s.notes.clone(),
            FromSf::Listed { .. } => vec![],
        }
    }
}

pub fn run(args: &LoginArgs, ctx: &Context) -> Result<FromSf, Error> {
    let name = args.from_sf.as_deref().unwrap_or_default();
    if name.is_empty() {
        let dir = files::sf_dir()?;
        let rows = files::list(&dir)?;
        return Ok(FromSf::Listed {
            dir: dir.display().to_string(),
            rows,
        });
    }
    if let Some(alias) = &args.alias {
        check_alias(alias, "--alias")?;
    }
    if ctx.env_org.is_some() {
        return Err(Error::usage(
            "credentials are set in the environment (SFX_AUTH_URL, SFX_REFRESH_TOKEN or SFX_ACCESS_TOKEN), which override the store; unset them to take an org from sf",
        ));
    }
    if let Some(shared) = ctx.stored_orgs().shared_at() {
        // The link is sf's files on this machine, which other machines can
        // neither read nor update; unlinked, sf and the fleet would hold one
        // refresh token, and under rotation the first to refresh spends the
        // other's (a replay revokes the login). Refused before anything is read,
        // sent or written.
        return Err(Error::usage(format!(
            "`sfx login --from-sf` takes sf's login into this machine's local store only: it stays linked to sf's files here, which other machines cannot read or update, and the shared store at {shared} would share sf's refresh token (under rotation, the first to refresh spends the other's). Nothing was stored. To use sf's login on this machine, run it without --store / SFX_STORE; to give the shared store a login of its own, run `sfx login --web --alias <ALIAS>` (or --device, --jwt) with the store set"
        )));
    }
    let store = crate::commands::login::store_for(ctx, args)?;
    // Before the one request: can the login be saved here?
    crate::commands::login::check_store(ctx, store)?;
    let now = ctx.now();
    let sf = link::import(name)?;
    let alias = match (&args.alias, &sf.sf_alias) {
        (Some(a), _) => a.clone(),
        (None, Some(a)) if check_alias(a, "sf's alias").is_ok() => a.clone(),
        _ => {
            check_alias(&sf.username, "the username (used as the alias)")?;
            sf.username.clone()
        }
    };
    let kind = kind_of(&sf)?;
    let mut notes = vec![match &kind {
        Kind::Linked => format!(
            "linked to sf's login {} ({}, key {}): refreshes read sf's refresh token first and write rotated tokens back, so sf keeps working",
            sf.username,
            sf.path.display(),
            sf.key_version
        ),
        Kind::Jwt(key) => format!(
            "sf's login of {} is a JWT bearer login (no refresh token): sfx signs its own assertions with the same key file, {key} (its path is stored, never the key), so it does not depend on sf's file",
            sf.username
        ),
        Kind::AccessTokenOnly => format!(
            "note: sf's login of {} holds only an access token (`sf org login access-token`): sfx can tell when it expires but cannot refresh it; when it expires, log in with a refresh-capable flow (`sfx login --web --alias {alias}`)",
            sf.username
        ),
    }];
    // The one request: does sf's access token still work? (Its refresh token is
    // not spent to find out.)
    let (user_id, org_id) = match ctx.client().userinfo(&sf.instance_url, &sf.access_token)? {
        TokenProbe::Alive(info) => (info.user_id, info.organization_id.or(sf.org_id.clone())),
        TokenProbe::Dead(_) if matches!(kind, Kind::AccessTokenOnly) => {
            return Err(Error::relogin(
                format!(
                    "sf's login of {} holds only an access token, and it no longer works (expired or revoked), so there is nothing to take; sfx wrote nothing",
                    sf.username
                ),
                format!(
                    "log in with a flow that can be refreshed: `sfx login --web --alias {alias}` (or `sf org login web`, then `sfx login --from-sf`)"
                ),
            ));
        }
        TokenProbe::Dead(_) => {
            notes.push(match kind {
                Kind::Linked => "note: sf's access token has expired; sfx gets a new one (through the link) when one is first needed".into(),
                _ => "note: sf's access token has expired; sfx signs a new assertion when a token is first needed".into(),
            });
            (None, sf.org_id.clone())
        }
    };
    let flow = match kind {
        Kind::Linked => Flow::Sf,
        Kind::Jwt(_) => Flow::Jwt,
        Kind::AccessTokenOnly => Flow::AccessToken,
    };
    let record = OrgRecord {
        username: Some(sf.username.clone()),
        org_id,
        user_id,
        login_url: sf.login_url.clone(),
        client_id: Some(sf.client_id.clone()),
        session_timeout_secs: args.session_timeout.as_secs().max(60),
        expiry: jwt::times(sf.access_token.expose()).map(|t| KnownExpiry {
            exp: t.exp.timestamp(),
            iat: t.iat.map(|i| i.timestamp()),
            source: ExactSource::Jwt,
            checked_at: now.timestamp(),
        }),
        access_token_masked: Some(sf.access_token.mask()),
        has_refresh_token: sf.refresh_token.is_some(),
        has_client_secret: sf.client_secret.is_some(),
        key_file: match &kind {
            Kind::Jwt(key) => Some(key.clone()),
            _ => None,
        },
        sf_link: sf.link(),
        ..OrgRecord::new(alias.clone(), sf.instance_url.clone(), flow, store)
    };
    // Secrets first, metadata last, old copies in another backend deleted: the
    // save path of every login.
    notes.extend(ctx.stored_orgs().save_org(
        &record,
        &[
            (SecretKind::RefreshToken, sf.refresh_token.as_ref()),
            (SecretKind::AccessToken, Some(&sf.access_token)),
            (SecretKind::ClientSecret, sf.client_secret.as_ref()),
        ],
        args.set_default,
    )?);
    let expiry = lifecycle::expiry::after_mint(&record, now);
    Ok(FromSf::Imported(Box::new(TokenSummary {
        verb: "Took sf's login into",
        record,
        expiry,
        rotated: false,
        now,
        access_token: sf.access_token,
        refresh_token: sf.refresh_token,
        show_token: args.show_token,
        notes,
    })))
}

/// What sf's login becomes in sfx (issue #21): with a refresh token, a linked
/// org; without one, a JWT bearer org when sf's record names a key file sfx can
/// read (`sf org login jwt`), else an org with only an access token (`sf org
/// login access-token`), as `sfx login --access-token` makes.
enum Kind {
    Linked,
    /// The key file's absolute path.
    Jwt(String),
    AccessTokenOnly,
}

fn kind_of(sf: &link::Imported) -> Result<Kind, Error> {
    if sf.refresh_token.is_some() {
        return Ok(Kind::Linked);
    }
    let Some(key) = &sf.private_key else {
        return Ok(Kind::AccessTokenOnly);
    };
    let shown = key.display();
    let again = format!(
        "log sfx in the same way with a key it can read: `sfx login --jwt --client-id {} --username {} --key-file <KEY>`",
        sf.client_id, sf.username
    );
    if let Err(why) = crate::salesforce::flows::jwt_bearer::load_key(key) {
        return Err(Error::relogin(
            format!(
                "sf's login of {} is a JWT bearer login, and its key file {shown} is not usable: {why}; sfx wrote nothing",
                sf.username
            ),
            again,
        ));
    }
    let absolute = std::path::absolute(key).map_err(|e| {
        Error::relogin(
            format!("sf's key file {shown} has no absolute path ({e}); sfx wrote nothing"),
            again.clone(),
        )
    })?;
    Ok(Kind::Jwt(absolute.display().to_string()))
}
