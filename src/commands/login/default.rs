//! `sfx login --set-default` with no flow: mark a stored org as the default
//! (contract: "Never lose a login"). Nothing is sent to Salesforce and nothing
//! of the org changes but the store's default.

use serde_json::json;

use crate::cli::LoginArgs;
use crate::context::{Context, select};
use crate::error::Error;
use crate::output::{Report, Style};

/// `--set-default -o ORG` (or SFX_ORG) and none of the flags that choose a
/// login flow or mode, nor `--alias` (which names a new login: `sfx login
/// --alias prod --set-default` on a terminal is a browser login).
pub fn only_set_default(a: &LoginArgs, ctx: &Context) -> bool {
    a.set_default
        && ctx.org_flag.is_some()
        && a.alias.is_none()
        && !(a.web
            || a.device
            || a.jwt
            || a.client_credentials
            || a.password
            || a.migrate
            || a.auth_url.is_some()
            || a.refresh_token.is_some()
            || a.access_token.is_some()
            || a.from_sf.is_some())
}

/// The org that is now the default.
pub struct DefaultSet {
    alias: String,
    was: Option<String>,
}

impl Report for DefaultSet {
    fn human(&self, _style: &Style) -> String {
        match &self.was {
            Some(w) if *w == self.alias => {
                format!("{} is the default org (it already was)", self.alias)
            }
            _ => format!("{} is now the default org", self.alias),
        }
    }

    fn json(&self) -> serde_json::Value {
        json!({ "org": self.alias, "default": true })
    }
}

/// Mark the org named by `-o`/SFX_ORG as the default: no request. A login
/// option given with it (`--port`, `--sandbox`, `--insecure-storage`, …) has
/// nothing to act on, so it is refused rather than silently dropped.
pub fn run(a: &LoginArgs, ctx: &Context) -> Result<DefaultSet, Error> {
    if let Some(flag) = a.given.iter().find(|f| *f != "--set-default") {
        return Err(Error::usage(format!(
            "{flag} does not apply to marking a stored org as the default (`sfx login --set-default -o <ALIAS>` sends nothing and changes only which org is the default); drop {flag}, or name a login flow (e.g. --web) to log in again"
        )));
    }
    if ctx.env_org.is_some() {
        return Err(Error::usage(
            "credentials are set in the environment (SFX_AUTH_URL, SFX_REFRESH_TOKEN or SFX_ACCESS_TOKEN), which override the store; unset them to choose the default stored org",
        ));
    }
    let store = ctx.stored_orgs();
    let listing = store.list()?;
    let was = listing.default.clone();
    let wanted = ctx.wanted().ok_or_else(|| {
        Error::usage("--set-default without a login flow needs -o <ALIAS> (`sfx orgs` lists them)")
    })?;
    let org = select(listing, Some(wanted))?;
    store.set_default(Some(org.name()))?;
    Ok(DefaultSet {
        alias: org.name().to_string(),
        was,
    })
}
