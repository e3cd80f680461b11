//! `sfx token`: print a valid access token, refreshing first only if the best
//! known expiry is within `--min-valid` (no request otherwise). Serialised per
//! org, so racing callers make one token request and print the same token.

use serde_json::{Value, json};

use crate::cli::TokenArgs;
use crate::context::Context;
use crate::error::Error;
use crate::lifecycle::{expiry, refresh};
use crate::output::{Report, Style};
use crate::secret::Secret;
use crate::store::SecretKind;

pub struct TokenReport {
    pub token: Secret,
    pub org: String,
    pub instance_url: String,
    pub refreshed: bool,
    pub notes: Vec<String>,
}

impl Report for TokenReport {
    fn human(&self, _style: &Style) -> String {
        self.token.expose().to_string()
    }

    fn json(&self) -> Value {
        json!({"org": self.org, "instance_url": self.instance_url, "access_token": self.token.expose(), "refreshed": self.refreshed})
    }

    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }
}

pub fn run(args: &TokenArgs, ctx: &Context) -> Result<TokenReport, Error> {
    let org = ctx.org()?;
    // An environment access token with no way to refresh is handed out as it is,
    // unless it is known to be dead (then the refresh below says "log in again").
    if org.is_env() && !org.record.has_refresh_token {
        let now = ctx.now();
        let known = expiry::offline(&org.record, now);
        if known.is_none_or(|e| e.active)
            && let Some(token) = ctx.secret(&org, SecretKind::AccessToken)?
        {
            return Ok(TokenReport {
                token,
                org: org.name().to_string(),
                instance_url: org.record.instance_url.clone(),
                refreshed: false,
                notes: vec![],
            });
        }
    }
    // Under the lock, with the record read again: another process may have
    // just refreshed.
    let fresh = refresh::refresh_if_needed(
        ctx.orgs(),
        &ctx.client(),
        ctx.clock(),
        org.name(),
        args.min_valid,
    )?
    .ok_or_else(|| {
        Error::relogin(
            "the org was logged out while sfx waited for its lock",
            "`sfx login` again",
        )
    })?;
    let mut notes = vec![];
    if fresh.refreshed.as_ref().is_some_and(|r| r.rotated) && fresh.org.is_env() {
        notes.push("warning: Salesforce rotated the refresh token, so the one in the environment is now dead; use `sfx refresh --format env` in CI to capture the new SFX_AUTH_URL, or turn rotation off for this app".to_string());
    }
    Ok(TokenReport {
        token: fresh.access_token,
        org: fresh.org.name().to_string(),
        instance_url: fresh.org.record.instance_url.clone(),
        refreshed: fresh.refreshed.is_some(),
        notes,
    })
}
