//! One file per command, each with `run(args, ctx) -> Result<Report>`; results are
//! rendered by `app.rs`. Exceptions: `watch` runs until stopped and prints its own
//! event stream; `completions` returns its script as text; `login --from-sf` and
//! `login --migrate` are modes of `login` with files of their own (`login/from_sf.rs`,
//! `login/migrate.rs`). Shared here: the summary that `login` and `refresh` print, and
//! [`for_each`], which runs a check over many orgs concurrently.

pub mod api;
pub mod child;
pub mod completions;
pub mod doctor;
pub mod exec;
pub mod expires;
pub mod introspect;
pub mod login;
pub mod logout;
pub mod orgs;
pub mod refresh;
pub mod store;
pub mod token;
pub mod watch;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::error::{Error, Refusal};
use crate::lifecycle::Expiry;
use crate::output::{Report, Style};
use crate::secret::Secret;
use crate::store::metadata::OrgRecord;
use crate::timefmt;

/// The org was logged out while this run waited for its refresh lock.
/// The way out of a refusal the layers below typed ([`Error::Refused`]): the
/// `sfx …` advice is worded here, in the command layer, like every hint.
pub fn way_out(err: &Error) -> Option<&'static str> {
    match err {
        Error::Refused {
            refusal: Refusal::DeviceFlowBlocked,
            ..
        } => Some(
            "log in with the browser instead: `sfx login --web` (on a machine without one: `sfx login --web --no-browser` and open the URL where you are, with `ssh -L 1717:localhost:1717` to the callback); or use an External Client App installed in the org with the device flow enabled (`sfx login --device --client-id <KEY>`); or ask an admin to install the app or grant \"Approve Uninstalled Connected Apps\" — see docs/login.md",
        ),
        _ => None,
    }
}

pub fn logged_out_meanwhile() -> Error {
    Error::relogin(
        "the org was logged out while sfx waited for its lock",
        "`sfx login` again",
    )
}

/// An access token handed to a caller that will use it (`token`, `api`, `exec`).
pub struct ValidToken {
    /// The org as it stands afterwards (a refresh may have moved its instance).
    pub org: crate::store::Org,
    pub token: Secret,
    /// Whether a token request was made to get it.
    pub refreshed: bool,
    /// Warnings for stderr (a rotated refresh token in the environment).
    pub notes: Vec<String>,
}

const ROTATED_IN_ENV: &str = "warning: Salesforce rotated the refresh token, so the one in the environment is now dead; use `sfx refresh --format env` in CI to capture the new SFX_AUTH_URL, or turn rotation off for this app";

/// The "token with --min-valid" path of `sfx token`, shared by `api` and `exec`:
/// the stored token when it is known to stay valid for `min_valid` (0 requests),
/// else one refresh — under the org's lock, so racing callers make one request.
pub fn valid_token(
    ctx: &crate::context::Context,
    min_valid: std::time::Duration,
) -> Result<ValidToken, crate::error::Error> {
    use crate::lifecycle::{expiry, refresh};
    let org = ctx.org()?;
    // An environment access token with no way to refresh is handed out as it is,
    // unless it is known to be dead (then the refresh below says "log in again").
    if !ctx.orgs().persistent() && !org.record.has_refresh_token {
        let known = expiry::offline(&org.record, ctx.now());
        if known.is_none_or(|e| e.active)
            && let Some(token) = ctx.secret(&org, crate::store::SecretKind::AccessToken)?
        {
            return Ok(ValidToken {
                org,
                token,
                refreshed: false,
                notes: vec![],
            });
        }
    }
    let fresh = refresh::refresh_if_needed(
        ctx.orgs(),
        &ctx.client(),
        ctx.clock(),
        org.name(),
        min_valid,
    )?
    .ok_or_else(logged_out_meanwhile)?;
    Ok(from_fresh(fresh, ctx.orgs().persistent()))
}

/// After Salesforce answered 401 to `sent` (revoked, or its session ended
/// early): the token another process stored meanwhile, else a refreshed one
/// ([`crate::lifecycle::refresh::refresh_unless_replaced`]).
pub fn after_rejection(
    ctx: &crate::context::Context,
    org: &crate::store::Org,
    sent: &Secret,
) -> Result<ValidToken, crate::error::Error> {
    let fresh = crate::lifecycle::refresh::refresh_unless_replaced(
        ctx.orgs(),
        &ctx.client(),
        ctx.clock(),
        org.name(),
        sent,
    )?
    .ok_or_else(logged_out_meanwhile)?;
    Ok(from_fresh(fresh, ctx.orgs().persistent()))
}

/// `persistent`: whether the org's store keeps what is written (else a rotated
/// refresh token is dead wherever the caller keeps the old one).
fn from_fresh(fresh: crate::lifecycle::Fresh, persistent: bool) -> ValidToken {
    let rotated = fresh.refreshed.as_ref().is_some_and(|r| r.rotated);
    let notes = if rotated && !persistent {
        vec![ROTATED_IN_ENV.to_string()]
    } else {
        vec![]
    };
    ValidToken {
        refreshed: fresh.refreshed.is_some(),
        org: fresh.org,
        token: fresh.access_token,
        notes,
    }
}

/// The variables that hand an access token to another program — `sfx exec`'s
/// child environment and the `--format env` lines of `token` and `refresh`: sfx's
/// own names, and the Salesforce CLI's (`sf` takes an access token as its target
/// org, with the instance URL in `SF_ORG_INSTANCE_URL`). The one place this list lives.
pub fn token_vars(token: &Secret, instance_url: &str) -> [(&'static str, String); 6] {
    let t = token.expose();
    [
        ("SFX_ACCESS_TOKEN", t.to_string()),
        ("SFX_INSTANCE_URL", instance_url.to_string()),
        ("SF_ACCESS_TOKEN", t.to_string()),
        ("SF_INSTANCE_URL", instance_url.to_string()),
        ("SF_TARGET_ORG", t.to_string()),
        ("SF_ORG_INSTANCE_URL", instance_url.to_string()),
    ]
}

/// `--format env`: bare `NAME=value` lines (no quotes, no `export`), valid for
/// `$GITHUB_ENV`, `.env` files, `eval`, and `set -a; . FILE` — the values are
/// checked by [`check_env_safe`] first. `new_auth_url`: a rotated refresh token
/// in an environment org, as a new `SFX_AUTH_URL`.
pub fn env_lines(token: &Secret, instance_url: &str, new_auth_url: Option<&str>) -> String {
    let mut s = String::new();
    for (name, value) in token_vars(token, instance_url) {
        s.push_str(&format!("{name}={value}\n"));
    }
    if let Some(a) = new_auth_url {
        s.push_str(&format!("SFX_AUTH_URL={a}\n"));
    }
    s
}

/// Unquoted `NAME=value` lines are safe for a shell only when no value holds a
/// character the shell would act on (`$`, quotes, blanks, `;`, `~`, …). Salesforce's
/// tokens and URLs never do; a value that does is refused rather than printed.
pub fn check_env_safe(values: &[&str]) -> Result<(), crate::error::Error> {
    let safe = |c: char| c.is_ascii_alphanumeric() || "!._-:/@%+=,[]".contains(c);
    if values.iter().all(|v| !v.is_empty() && v.chars().all(safe)) {
        Ok(())
    } else {
        Err(crate::error::Error::network(
            "a token or URL from Salesforce holds characters that a shell would interpret, so it cannot be printed as a bare NAME=value line; use `sfx token --json` and quote it yourself",
        ))
    }
}

/// How many orgs `--all` / `--check` ask at once: fast over hundreds of orgs, yet
/// gentle on any one org's login-rate limits.
pub const CONCURRENCY: usize = 16;

/// What `login` and `refresh` report: the org, its new token's life, no token
/// values unless `--show-token`.
///
/// JSON keys (stable): `org`, `username`, `instance_url`, `issued_at`,
/// `expires_at`, `expires_at_unix`, `source`, `refresh_token_rotated`; with
/// `--show-token` also `access_token` (and `refresh_token` when one was issued).
pub struct TokenSummary {
    pub verb: &'static str,
    pub record: OrgRecord,
    pub expiry: Expiry,
    pub rotated: bool,
    pub now: DateTime<Utc>,
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    pub show_token: bool,
    pub notes: Vec<String>,
}

fn iso(t: Option<DateTime<Utc>>) -> serde_json::Value {
    t.map(|t| json!(timefmt::rfc3339(t)))
        .unwrap_or(serde_json::Value::Null)
}

/// `expires_at` and `expires_at_unix` as JSON values (null when unknown).
pub fn exp_json(e: &Expiry) -> (serde_json::Value, serde_json::Value) {
    (
        iso(e.exp),
        e.exp
            .map(|t| json!(t.timestamp()))
            .unwrap_or(serde_json::Value::Null),
    )
}

impl Report for TokenSummary {
    fn human(&self, _style: &Style) -> String {
        let r = &self.record;
        let who = r.username.as_deref().unwrap_or("unknown user");
        let when = match self.expiry.exp {
            Some(exp) => format!(
                "{} ({})",
                timefmt::expiry_phrase(exp, self.now),
                self.expiry.source.label()
            ),
            None => "expiry unknown".to_string(),
        };
        let rotated = match (self.rotated, r.store) {
            (false, _) => "",
            // The environment's org stores nothing: the note after this line
            // says where the new refresh token is.
            (true, crate::store::metadata::StoreKind::Env) => "; refresh token rotated",
            (true, _) => "; refresh token rotated and stored",
        };
        format!(
            "{} {} as {who} at {} — token {}, {when}{rotated}",
            self.verb,
            r.alias,
            r.instance_url,
            self.access_token.mask()
        )
    }

    fn json(&self) -> serde_json::Value {
        let r = &self.record;
        let (expires_at, expires_at_unix) = exp_json(&self.expiry);
        let mut v = json!({
            "org": r.alias,
            "username": r.username,
            "instance_url": r.instance_url,
            "issued_at": iso(r.issued_at.and_then(timefmt::from_unix)),
            "expires_at": expires_at,
            "expires_at_unix": expires_at_unix,
            "source": self.expiry.source.as_str(),
            "refresh_token_rotated": self.rotated,
        });
        if self.show_token {
            v["access_token"] = json!(self.access_token.expose());
            if let Some(rt) = &self.refresh_token {
                v["refresh_token"] = json!(rt.expose());
            }
        }
        v
    }

    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }
}

/// Run `f` over `items`, keeping the order: on at most [`CONCURRENCY`] threads when
/// each item may wait on the network, in this thread otherwise.
pub fn for_each<T: Sync, R: Send>(
    items: &[T],
    network: bool,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    if !network || items.len() < 2 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let workers = CONCURRENCY.min(items.len());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= items.len() {
                        break;
                    }
                    let r = f(&items[i]);
                    if let Ok(mut v) = results.lock() {
                        v[i] = Some(r);
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}
