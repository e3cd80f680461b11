//! `sfx refresh`: a new access token, stored (under the org's lock). A rotated
//! refresh token is stored before anything else. `--format env` prints
//! `NAME=value` lines for `$GITHUB_ENV`, `.env` files and `eval` (see
//! [`super::env_lines`]).

use serde_json::Value;

use crate::cli::{RefreshArgs, RefreshFormat};
use crate::commands::TokenSummary;
use crate::context::Context;
use crate::error::Error;
use crate::lifecycle::{self, Refreshed, expiry, refresh};
use crate::output::{Report, Style};

pub enum RefreshReport {
    /// A token was minted.
    Done {
        summary: Box<TokenSummary>,
        format: RefreshFormat,
        /// Holds a refresh token: printed only by `--format env`.
        new_auth_url: Option<crate::secret::Secret>,
        from_env: bool,
    },
    /// `--if-expiring-within` and the token outlives the window: no request made.
    Skipped {
        org: String,
        expiry: lifecycle::Expiry,
        now: chrono::DateTime<chrono::Utc>,
        window: std::time::Duration,
    },
}

impl Report for RefreshReport {
    fn human(&self, style: &Style) -> String {
        match self {
            RefreshReport::Done {
                summary,
                format: RefreshFormat::Env,
                new_auth_url,
                ..
            } => super::env_lines(
                &summary.access_token,
                &summary.record.instance_url,
                new_auth_url.as_ref().map(crate::secret::Secret::expose),
            ),
            RefreshReport::Done { summary, .. } => summary.human(style),
            RefreshReport::Skipped {
                org,
                expiry,
                now,
                window,
            } => format!(
                "Not refreshed: the token of {org} {} ({}), beyond the {} window",
                expiry
                    .exp
                    .map(|e| crate::timefmt::expiry_phrase(e, *now))
                    .unwrap_or_default(),
                expiry.source.label(),
                crate::timefmt::flag_duration(*window)
            ),
        }
    }

    fn json(&self) -> Value {
        match self {
            RefreshReport::Done { summary, .. } => summary.json(),
            RefreshReport::Skipped { org, expiry, .. } => {
                let (expires_at, expires_at_unix) = crate::commands::exp_json(expiry);
                serde_json::json!({"org": org, "refreshed": false, "expires_at": expires_at, "expires_at_unix": expires_at_unix, "source": expiry.source.as_str()})
            }
        }
    }

    fn notes(&self) -> Vec<String> {
        match self {
            RefreshReport::Done {
                summary,
                new_auth_url,
                from_env,
                ..
            } => {
                let mut n = summary.notes.clone();
                if summary.rotated && *from_env {
                    n.push(if new_auth_url.is_some() {
                        "warning: Salesforce rotated the refresh token: the SFX_AUTH_URL you gave is now dead. Update the CI secret with the new SFX_AUTH_URL (printed by --format env), or turn rotation off for this app".into()
                    } else {
                        "warning: Salesforce rotated the refresh token: the SFX_REFRESH_TOKEN you gave is now dead. Update the CI secret, or turn rotation off for this app".into()
                    });
                }
                n
            }
            RefreshReport::Skipped { .. } => vec![],
        }
    }
}

pub fn run(args: &RefreshArgs, ctx: &Context) -> Result<RefreshReport, Error> {
    // Under the lock, with the record read again: another process may have
    // just refreshed.
    let (org, _lock) = ctx
        .locked(&ctx.org()?)?
        .ok_or_else(crate::commands::logged_out_meanwhile)?;
    let now = ctx.now();
    if let Some(window) = args.if_expiring_within
        && let Some(e) =
            expiry::offline(&org.record, now).filter(|e| e.exp.is_some() && e.outlives(now, window))
    {
        return Ok(RefreshReport::Skipped {
            org: org.name().to_string(),
            expiry: e,
            now,
            window,
        });
    }
    // Nothing is stored for an org from the environment: a rotated refresh
    // token must be handed back.
    let from_env = !ctx.orgs().persistent();
    let r = refresh::refresh_now(ctx.orgs(), &ctx.client(), ctx.clock(), &org)?;
    let expiry = expiry::after_mint(&r.org.record, now);
    let new_auth_url = new_auth_url(&r);
    let refresh_token = if args.show_token && r.rotated {
        ctx.secret(&r.org, crate::store::SecretKind::RefreshToken)?
    } else {
        None
    };
    if args.format == RefreshFormat::Env {
        let mut values = vec![r.access_token.expose(), r.org.record.instance_url.as_str()];
        values.extend(new_auth_url.as_ref().map(crate::secret::Secret::expose));
        crate::commands::check_env_safe(&values)?;
    }
    Ok(RefreshReport::Done {
        summary: Box::new(TokenSummary {
            verb: "Refreshed",
            record: r.org.record,
            expiry,
            rotated: r.rotated,
            now,
            access_token: r.access_token,
            refresh_token,
            show_token: args.show_token,
            notes: vec![],
        }),
        format: args.format,
        new_auth_url,
        from_env,
    })
}

/// Credentials from `SFX_AUTH_URL` whose refresh token Salesforce rotated: the
/// new `SFX_AUTH_URL` to hand back (the old one is now dead).
fn new_auth_url(r: &Refreshed) -> Option<crate::secret::Secret> {
    let env = r
        .org
        .env
        .as_ref()
        .filter(|e| r.rotated && e.from_auth_url)?;
    let rt = env.refresh_token.as_ref()?;
    Some(crate::salesforce::auth_url::AuthUrl::format(
        r.org.record.client_id.as_deref().unwrap_or(""),
        env.client_secret.as_ref(),
        rt,
        &r.org.record.instance_url,
    ))
}
