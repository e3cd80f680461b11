//! `sfx token`: print a valid access token, refreshing first only if the best
//! known expiry is within `--min-valid` (no request otherwise). Serialised per
//! org, so racing callers make one token request and print the same token.

use serde_json::{Value, json};

use crate::cli::TokenArgs;
use crate::context::Context;
use crate::error::Error;
use crate::output::{Report, Style};
use crate::secret::Secret;
use crate::store::SecretKind;
use crate::tokens;

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
    // Under the lock, with the record read again: another process may have
    // just refreshed.
    let (org, _lock) = ctx.locked(&ctx.org()?)?.ok_or_else(|| {
        Error::relogin(
            "the org was logged out while sfx waited for its lock",
            "`sfx login` again",
        )
    })?;
    let now = ctx.now();
    let known = tokens::offline(&org, now);
    let fresh = known
        .as_ref()
        .is_some_and(|e| e.outlives(now, args.min_valid));
    // An environment access token with no way to refresh is handed out as it is,
    // unless it is known to be dead (then the refresh below says "log in again").
    let usable_as_is =
        org.is_env() && !org.record.has_refresh_token && known.is_none_or(|e| e.active);
    if (fresh || usable_as_is)
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
    let r = tokens::refresh(ctx, &org)?;
    let mut notes = vec![];
    if r.rotated && org.is_env() {
        notes.push("warning: Salesforce rotated the refresh token, so the one in the environment is now dead; use `sfx refresh --format env` in CI to capture the new SFX_AUTH_URL, or turn rotation off for this app".to_string());
    }
    Ok(TokenReport {
        token: r.access_token,
        org: r.org.name().to_string(),
        instance_url: r.org.record.instance_url.clone(),
        refreshed: true,
        notes,
    })
}
