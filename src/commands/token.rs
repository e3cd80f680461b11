//! `sfx token`: print a valid access token, refreshing first only if the best
//! known expiry is within `--min-valid` (no request otherwise). Serialised per
//! org, so racing callers make one token request and print the same token.
//! `--format env` prints the same `NAME=value` lines as `sfx refresh --format env`.

use std::io::{BufRead, IsTerminal};

use serde_json::{Value, json};

use crate::cli::{RefreshFormat, TokenArgs};
use crate::context::Context;
use crate::error::Error;
use crate::output::{Report, Style};
use crate::secret::Secret;
use crate::store::SecretKind;

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

/// `sfx token --auth-url`: the org's SFDX auth URL.
pub struct AuthUrlReport {
    pub org: String,
    pub url: Secret,
    pub notes: Vec<String>,
}

impl Report for AuthUrlReport {
    fn human(&self, _style: &Style) -> String {
        self.url.expose().to_string()
    }

    fn json(&self) -> Value {
        json!({"org": self.org, "auth_url": self.url.expose()})
    }

    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }
}

/// Either a token or, with `--auth-url`, the auth URL.
pub enum Printed {
    Token(TokenReport),
    AuthUrl(AuthUrlReport),
}

impl Report for Printed {
    fn human(&self, style: &Style) -> String {
        match self {
            Printed::Token(r) => r.human(style),
            Printed::AuthUrl(r) => r.human(style),
        }
    }
    fn json(&self) -> Value {
        match self {
            Printed::Token(r) => r.json(),
            Printed::AuthUrl(r) => r.json(),
        }
    }
    fn notes(&self) -> Vec<String> {
        match self {
            Printed::Token(r) => r.notes(),
            Printed::AuthUrl(r) => r.notes(),
        }
    }
}

/// The warning `--auth-url` gives when the org's app rotates refresh tokens.
pub const ROTATION_WARNING: &str = "warning: this org's connected app rotates refresh tokens. This auth URL holds the current one: the first refresh made with it elsewhere (in CI) spends it, and the next refresh here then sends a spent token, which makes Salesforce revoke the whole login (the same happens the other way round). Give CI its own login (e.g. `sfx login --jwt` there), or turn rotation off for the app";

/// Print the org's SFDX auth URL, with its newest refresh token (sf's, for a
/// linked org that sf rotated). On a terminal only after a confirmation.
pub fn auth_url(ctx: &Context) -> Result<AuthUrlReport, Error> {
    ctx.refuse_reader("print an SFDX auth URL (it holds the refresh token)")?;
    let (org, _lock) = ctx
        .locked(&ctx.org()?)?
        .ok_or_else(crate::commands::logged_out_meanwhile)?;
    let rec = &org.record;
    let Some(rt) = ctx.secret(&org, SecretKind::RefreshToken)? else {
        if crate::lifecycle::handed_access_token(&org) {
            return Err(Error::relogin(
                "the access token in SFX_ACCESS_TOKEN has no refresh token with it, so there is no SFDX auth URL to print",
                crate::lifecycle::HANDED_HINT,
            ));
        }
        return Err(Error::relogin(
            format!(
                "org {} has no refresh token ({} login), so it has no SFDX auth URL",
                org.name(),
                rec.flow.as_str().replace('_', " ")
            ),
            "an auth URL needs a login that gives a refresh token: `sfx login --web`, `--device`, `--auth-url` or `--from-sf`",
        ));
    };
    let Some(client_id) = rec.client_id.as_deref() else {
        return Err(Error::relogin(
            format!(
                "org {} has no client id, so it has no SFDX auth URL",
                org.name()
            ),
            crate::lifecycle::relogin_hint(&org),
        ));
    };
    let rt = crate::sfcli::link::current_refresh_token(ctx.orgs(), &org, rt, ctx.clock())?;
    let secret = ctx.secret(&org, SecretKind::ClientSecret)?;
    let url = crate::salesforce::auth_url::AuthUrl::format(
        client_id,
        secret.as_ref(),
        &rt,
        &rec.instance_url,
    );
    if ctx.mode != crate::output::Mode::Quiet && std::io::stdout().is_terminal() {
        confirm(org.name())?;
    }
    let mut notes = Vec::new();
    if rec.rotates_refresh_token {
        notes.push(ROTATION_WARNING.to_string());
    }
    Ok(AuthUrlReport {
        org: org.name().to_string(),
        url,
        notes,
    })
}

/// Ask on stderr before a refresh token is shown on a terminal.
fn confirm(org: &str) -> Result<(), Error> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() || std::env::var_os("SFX_NO_INPUT").is_some() {
        return Err(Error::usage(format!(
            "stdout is a terminal, and sfx shows an SFDX auth URL (a refresh token: anyone who sees it can use the org) there only after a confirmation, which it cannot ask for here; send it where it is needed instead, e.g. `sfx token --auth-url -o {org} | gh secret set SFX_AUTH_URL`"
        )));
    }
    crate::messages::prompt(&format!(
        "sfx: the SFDX auth URL of org {org} holds its refresh token: anyone who sees it can use the org. Print it on this terminal? [y/N] "
    ));
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::usage(format!("cannot read the answer: {e}")))?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(Error::Other("not confirmed: nothing was printed".into()))
    }
}

pub fn run_any(args: &TokenArgs, ctx: &Context) -> Result<Printed, Error> {
    if args.auth_url {
        return auth_url(ctx).map(Printed::AuthUrl);
    }
    run(args, ctx).map(Printed::Token)
}

pub fn run(args: &TokenArgs, ctx: &Context) -> Result<TokenReport, Error> {
    let v = super::valid_token(ctx, args.min_valid)?;
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
