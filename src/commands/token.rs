//! `sfx token`: print a valid access token, refreshing first only if the best
//! known expiry is within `--min-valid` (no request otherwise). Serialised per
//! org, so racing callers make one token request and print the same token.
//! `--format env` prints the same `NAME=value` lines as `sfx refresh --format env`.

use serde_json::{Value, json};

use crate::cli::{RefreshFormat, TokenArgs};
use crate::context::Context;
use crate::error::Error;
use crate::output::{Report, Style};
use crate::secret::Secret;
use crate::tokens;

pub struct TokenReport {
    pub token: Secret,
    pub org: String,
    pub instance_url: String,
    pub refreshed: bool,
    pub format: RefreshFormat,
    pub notes: Vec<String>,
}

impl Report for TokenReport {
    fn human(&self, _style: &Style) -> String {
        match self.format {
            RefreshFormat::Human => self.token.expose().to_string(),
            RefreshFormat::Env => super::env_lines(&self.token, &self.instance_url, None),
        }
    }

    fn json(&self) -> Value {
        json!({"org": self.org, "instance_url": self.instance_url, "access_token": self.token.expose(), "refreshed": self.refreshed})
    }

    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }
}

pub fn run(args: &TokenArgs, ctx: &Context) -> Result<TokenReport, Error> {
    let v = tokens::valid_token(ctx, &ctx.org()?, args.min_valid)?;
    if args.format == RefreshFormat::Env {
        super::check_env_safe(&[v.token.expose(), &v.org.record.instance_url])?;
    }
    Ok(TokenReport {
        token: v.token,
        org: v.org.name().to_string(),
        instance_url: v.org.record.instance_url.clone(),
        refreshed: v.refreshed,
        format: args.format,
        notes: v.notes,
    })
}
