//! `sfx logout`: remove an org's stored credentials; `--revoke` revokes at
//! Salesforce first (the refresh token, which ends its access tokens too, or the
//! access token when there is none): one request.

use serde_json::{Value, json};

use crate::cli::LogoutArgs;
use crate::context::{Context, Org};
use crate::error::Error;
use crate::output::{Report, Style};
use crate::salesforce::Revoked;
use crate::store::SecretKind;

pub struct LoggedOut {
    pub org: String,
    pub revoked: Option<Revoked>,
    pub removed: bool,
}

pub struct LogoutReport {
    pub done: Vec<LoggedOut>,
    pub all: bool,
}

impl Report for LogoutReport {
    fn human(&self, _style: &Style) -> String {
        if self.done.is_empty() {
            return "No orgs are stored; nothing to log out of.".to_string();
        }
        self.done
            .iter()
            .map(|d| {
                let rev = match d.revoked {
                    Some(Revoked::Done) => " (tokens revoked at Salesforce)",
                    Some(Revoked::AlreadyInvalid) => {
                        " (the token was already invalid at Salesforce)"
                    }
                    None => "",
                };
                if d.removed {
                    format!("Logged out of {}{rev}", d.org)
                } else {
                    format!(
                        "Revoked the tokens of {}{rev}; nothing stored to remove",
                        d.org
                    )
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn json(&self) -> Value {
        let items: Vec<Value> = self
            .done
            .iter()
            .map(|d| json!({"org": d.org, "revoked": d.revoked.is_some(), "removed": d.removed}))
            .collect();
        if self.all {
            Value::Array(items)
        } else {
            items.into_iter().next().unwrap_or(Value::Null)
        }
    }
}

fn revoke(ctx: &Context, org: &Org) -> Result<Revoked, Error> {
    let token = match ctx.secret(org, SecretKind::RefreshToken)? {
        Some(t) => t,
        None => ctx
            .secret(org, SecretKind::AccessToken)?
            .ok_or_else(|| Error::Other(format!("org {} has no token to revoke", org.name())))?,
    };
    ctx.client().revoke(&org.record.instance_url, &token).map_err(|e| match e {
        Error::Network { message: m, source } => Error::network_from(
            format!("{m}; nothing was removed — run `sfx logout` without --revoke to remove the local credentials anyway"),
            source,
        ),
        other => other,
    })
}

pub fn run(args: &LogoutArgs, ctx: &Context) -> Result<LogoutReport, Error> {
    if args.revoke {
        ctx.refuse_reader("revoke tokens at Salesforce")?;
    }
    if let Some(org) = &ctx.env_org {
        if !args.revoke {
            return Err(Error::usage(
                "the org comes from the environment (SFX_AUTH_URL, SFX_REFRESH_TOKEN or SFX_ACCESS_TOKEN) and nothing is stored; unset those variables, or use --revoke to revoke its tokens",
            ));
        }
        let revoked = revoke(ctx, org)?;
        return Ok(LogoutReport {
            done: vec![LoggedOut {
                org: org.name().to_string(),
                revoked: Some(revoked),
                removed: false,
            }],
            all: false,
        });
    }
    let orgs = if args.all {
        ctx.all_orgs()?
    } else {
        vec![ctx.org()?]
    };
    let mut done = Vec::new();
    for org in orgs {
        // Not while a refresh of this org is under way: it would store the org again.
        let _lock = ctx.orgs().lock(org.name())?;
        let revoked = if args.revoke {
            Some(revoke(ctx, &org)?)
        } else {
            None
        };
        let rec = &org.record;
        ctx.orgs().delete_org(&rec.alias)?;
        done.push(LoggedOut {
            org: rec.alias.clone(),
            revoked,
            removed: true,
        });
    }
    Ok(LogoutReport {
        done,
        all: args.all,
    })
}
