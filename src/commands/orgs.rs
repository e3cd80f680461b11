//! `sfx orgs`: the stored orgs from the metadata file alone — no keychain, no
//! network. `--check` asks each org (concurrently) whether its token is alive.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::cli::OrgsArgs;
use crate::context::{Context, Org};
use crate::error::Error;
use crate::exit::Exit;
use crate::lifecycle::expiry::{self, Expiry};
use crate::output::table::{Grid, State, col, notes_below, terminal_width};
use crate::output::{Report, Style};
use crate::salesforce::Introspected;
use crate::store::SecretKind;
use crate::timefmt;

pub struct OrgRow {
    pub org: Org,
    pub is_default: bool,
    pub expiry: Option<Expiry>,
    /// With `--check`: `ok|expired|login_required|unreachable` (or `error`).
    pub status: Option<(&'static str, Exit, Option<String>)>,
}

pub struct OrgsReport {
    pub rows: Vec<OrgRow>,
    pub now: DateTime<Utc>,
    /// The shared store the orgs come from, as shown (`None`: the local store).
    pub shared: Option<String>,
    /// `--aliases`: the aliases alone, one a line (shell completion).
    pub aliases_only: bool,
}

impl Report for OrgsReport {
    fn human(&self, style: &Style) -> String {
        if self.aliases_only {
            let names: Vec<String> = self
                .rows
                .iter()
                .map(|r| crate::text::sanitize(&r.org.record.alias, 200))
                .collect();
            return names.join("\n");
        }
        let shared = self
            .shared
            .as_deref()
            .map(|s| format!("Shared store: {s}\n"))
            .unwrap_or_default();
        if self.rows.is_empty() {
            return format!(
                "{shared}No orgs are stored. Add one with `sfx login` (e.g. `sfx login --auth-url - < auth-url.txt`)."
            );
        }
        let check = self.rows.iter().any(|r| r.status.is_some());
        let mut cols = vec![
            col("", 0),
            col("ORG", 0),
            col("USERNAME", 1),
            col("EXPIRES", 0),
            col("AT", 3),
            col("SOURCE", 5),
            col("INSTANCE", 4),
            col("STORE", 6),
            col("TOKEN", 7),
        ];
        if check {
            cols.insert(4, col("STATUS", 0));
        }
        let mut g = Grid::new(&cols);
        let mut messages = Vec::new();
        for r in &self.rows {
            let rec = &r.org.record;
            let exp = r.expiry.as_ref().and_then(|e| e.exp);
            let (expires, at) = match exp {
                Some(exp) => (
                    timefmt::table_phrase(exp, self.now),
                    timefmt::table_time(exp, self.now, style.tty),
                ),
                None => ("unknown".to_string(), String::new()),
            };
            let state = exp.map(|x| State::of(x, self.now, None));
            let instance = if style.tty {
                url::Url::parse(&rec.instance_url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_string))
                    .unwrap_or_else(|| rec.instance_url.clone())
            } else {
                rec.instance_url.clone()
            };
            let mut row = vec![
                (if r.is_default { "*" } else { "" }.to_string(), None),
                (rec.alias.clone(), None),
                (rec.username.clone().unwrap_or_default(), None),
                (expires, state),
                (at, None),
                (
                    r.expiry
                        .as_ref()
                        .map(|e| e.source.as_str().to_string())
                        .unwrap_or_default(),
                    None,
                ),
                (instance, None),
                (
                    match &rec.sf_link {
                        // Shared with the Salesforce CLI (`login --from-sf`).
                        Some(_) => format!("{} + sf", rec.store.as_str()),
                        None => rec.store.as_str().to_string(),
                    },
                    None,
                ),
                (rec.access_token_masked.clone().unwrap_or_default(), None),
            ];
            if let Some((status, exit, msg)) = &r.status {
                let state = match exit {
                    Exit::Ok => State::Ok,
                    Exit::Expired => State::Expired,
                    Exit::Relogin => State::NeedsLogin,
                    _ => State::Unknown,
                };
                let word = match *status {
                    "login_required" => "needs login",
                    s => s,
                };
                // A token Salesforce calls inactive is not "in 1h 59m", whatever
                // was last known offline: the row tells one story in one colour.
                if matches!(state, State::Expired | State::NeedsLogin) {
                    if exp.is_some_and(|x| x > self.now) {
                        row[3].0 = "inactive".to_string();
                    }
                    row[3].1 = Some(state);
                }
                row.insert(4, (word.to_string(), Some(state)));
                if let Some(m) = msg.as_ref().filter(|_| *exit != Exit::Ok) {
                    messages.push(format!("{}: {m}", rec.alias));
                }
            }
            g.row(row);
        }
        let width = terminal_width(style);
        let t = g.render(style, width);
        let messages = notes_below(&messages, width);
        format!("{shared}{t}{messages}")
    }

    /// `[{"org","username","instance_url","default","flow","store","expires_at","expires_at_unix","source","linked_sf_file"}]`
    /// (`linked_sf_file`: the Salesforce CLI's file of a linked org, else null)
    /// plus `"status"` with `--check`.
    fn json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|r| {
                    let rec = &r.org.record;
                    let exp = r.expiry.as_ref().and_then(|e| e.exp);
                    let mut v = json!({
                        "org": rec.alias,
                        "username": rec.username,
                        "instance_url": rec.instance_url,
                        "default": r.is_default,
                        "flow": rec.flow.as_str(),
                        "store": rec.store.as_str(),
                        "expires_at": exp.map(timefmt::rfc3339),
                        "expires_at_unix": exp.map(|e| e.timestamp()),
                        "source": r.expiry.as_ref().map(|e| e.source.as_str()),
                        "linked_sf_file": rec.sf_link.as_ref().map(|l| l.file.clone()),
                    });
                    if let Some((status, _, msg)) = &r.status {
                        v["status"] = json!(status);
                        if let Some(m) = msg {
                            v["message"] = json!(m);
                        }
                    }
                    v
                })
                .collect(),
        )
    }

    fn exit(&self) -> Exit {
        self.rows
            .iter()
            .filter_map(|r| r.status.as_ref().map(|s| s.1))
            .fold(Exit::Ok, Exit::worst)
    }
}

fn status_of(
    result: Result<Expiry, Error>,
    now: DateTime<Utc>,
) -> (&'static str, Exit, Option<String>) {
    match result {
        Ok(e) if e.active && e.exp.is_none_or(|x| x > now) => ("ok", Exit::Ok, e.note),
        Ok(_) => ("expired", Exit::Expired, None),
        Err(err) => {
            let exit = err.exit();
            let status = match exit {
                Exit::Expired => "expired",
                Exit::Relogin => "login_required",
                Exit::Network => "unreachable",
                _ => "error",
            };
            (status, exit, Some(err.to_string()))
        }
    }
}

/// `Some(error)` when introspection says the org's refresh token is inactive;
/// `None` when it is alive, the org has none, or nothing can be told.
fn refresh_token_dead(ctx: &Context, org: &Org) -> Option<Error> {
    let rec = &org.record;
    let has_rt = match &org.env {
        Some(env) => env.refresh_token.is_some(),
        None => rec.has_refresh_token,
    };
    let client_id = rec.client_id.as_deref().filter(|_| has_rt)?;
    let rt = ctx.secret(org, SecretKind::RefreshToken).ok()??;
    let secret = ctx.secret(org, SecretKind::ClientSecret).ok()?;
    let creds = crate::salesforce::ClientCreds {
        id: client_id,
        secret: secret.as_ref(),
    };
    match ctx
        .client()
        .introspect(&rec.instance_url, &rt, "refresh_token", creds)
        .ok()?
    {
        Introspected::Answer(map) if map.get("active").and_then(|a| a.as_bool()) == Some(false) => {
            Some(Error::relogin(
                format!(
                    "the access token is inactive and so is the refresh token of org {} (revoked, or expired by the connected app's policy): a refresh cannot help",
                    org.name()
                ),
                crate::lifecycle::relogin_hint(org),
            ))
        }
        _ => None,
    }
}

pub fn run(args: &OrgsArgs, ctx: &Context) -> Result<OrgsReport, Error> {
    let now = ctx.now();
    let listing = ctx.orgs().list()?;
    let default = if ctx.env_org.is_some() {
        None
    } else {
        listing.default
    };
    let orgs = listing.orgs;
    let mut checks = if args.check {
        crate::commands::expires::answer_all(ctx, &orgs, false)
            .into_iter()
            .map(Some)
            .collect()
    } else {
        Vec::new()
    };
    checks.resize_with(orgs.len(), || None);
    // An inactive access token is only "expired" if the refresh token can mint a
    // new one: ask introspection about the refresh token (one more request), and
    // call a dead one what it is — a new login is needed (issue #11).
    std::thread::scope(|scope| {
        for (org, check) in orgs.iter().zip(checks.iter_mut()) {
            if matches!(check, Some(Ok(e)) if !e.active || e.exp.is_some_and(|x| x <= now)) {
                scope.spawn(move || {
                    if let Some(dead) = refresh_token_dead(ctx, org) {
                        *check = Some(Err(dead));
                    }
                });
            }
        }
    });
    // Offline knowledge after the checks, so a fresh introspection shows up.
    let meta: Option<std::collections::BTreeMap<String, crate::store::metadata::OrgRecord>> =
        if args.check && ctx.env_org.is_none() {
            Some(
                ctx.orgs()
                    .list()?
                    .orgs
                    .into_iter()
                    .map(|o| (o.record.alias.clone(), o.record))
                    .collect(),
            )
        } else {
            None
        };
    let rows = orgs
        .into_iter()
        .zip(checks)
        .map(|(org, check)| {
            let org = match meta.as_ref().and_then(|m| m.get(org.name())) {
                Some(rec) => Org {
                    record: rec.clone(),
                    env: None,
                },
                None => org,
            };
            OrgRow {
                is_default: default.as_deref() == Some(org.name()),
                expiry: expiry::offline(&org.record, now),
                status: check.map(|c| status_of(c, now)),
                org,
            }
        })
        .collect();
    Ok(OrgsReport {
        rows,
        now,
        shared: ctx.orgs().shared_at(),
        aliases_only: args.aliases,
    })
}
