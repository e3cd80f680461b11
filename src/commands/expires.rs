//! `sfx expires`: when the access token expires, and how sure that answer is.
//!
//! One org: one line (or one value with `--format`, or one JSON object). `--all`:
//! every stored org, checked concurrently (see [`crate::commands::for_each`]), one
//! row each.
//! Exit 3 when any answer is expired, inactive or within `--within`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::cli::{ExpiresArgs, ExpiresFormat};
use crate::context::{Context, Org};
use crate::error::Error;
use crate::exit::Exit;
use crate::lifecycle::expiry::{self, Expiry, Source};
use crate::output::table::{Grid, State, col, notes_below, terminal_width};
use crate::output::{Report, Style};
use crate::secret::Secret;
use crate::store::SecretKind;
use crate::store::metadata::{ExactSource, Flow};
use crate::timefmt;

/// One org's answer (or why there is none).
pub struct Row {
    pub org: String,
    pub username: Option<String>,
    pub instance_url: String,
    pub outcome: Result<Expiry, (Exit, String)>,
    /// What to run once the token is dead (issue #21: "expired" alone left the
    /// user stuck).
    pub next_step: String,
}

/// The command that gets a live token for `org` again: a refresh when sfx can
/// make one (a refresh token, or a JWT / client-credentials grant), else a login
/// — unless the org's store has its own answer (the environment's org).
pub fn next_step(ctx: &Context, org: &Org) -> String {
    let rec = &org.record;
    let name = org.name();
    if let Some(hint) = ctx.orgs().renew_hint(org) {
        return hint;
    }
    if rec.has_refresh_token || matches!(rec.flow, Flow::Jwt | Flow::ClientCredentials) {
        format!("`sfx refresh -o {name}` gets a new one (it says so if a new login is needed)")
    } else {
        format!(
            "it cannot be refreshed ({} login, no refresh token): log in again, `sfx login --alias {name} …`",
            rec.flow.as_str().replace('_', " ")
        )
    }
}

pub struct ExpiresReport {
    pub rows: Vec<Row>,
    pub all: bool,
    pub format: ExpiresFormat,
    pub within: Option<Duration>,
    pub now: DateTime<Utc>,
}

impl Row {
    fn exit(&self, now: DateTime<Utc>, within: Option<Duration>) -> Exit {
        match &self.outcome {
            Err((exit, _)) => *exit,
            Ok(e) if !e.active => Exit::Expired,
            Ok(e) => match within {
                Some(w) if !e.outlives(now, w) => Exit::Expired,
                None if e.exp.is_some_and(|x| x <= now) => Exit::Expired,
                _ => Exit::Ok,
            },
        }
    }

    /// The stable JSON object (see the contract's `sfx expires --json`).
    pub fn json(&self, now: DateTime<Utc>) -> Value {
        match &self.outcome {
            Err((exit, msg)) => {
                json!({"org": self.org, "username": self.username, "instance_url": self.instance_url, "error": msg, "exit_code": exit.code()})
            }
            Ok(e) => {
                let (expires_at, expires_at_unix) = crate::commands::exp_json(e);
                let mut v = json!({
                    "org": self.org,
                    "username": self.username,
                    "instance_url": self.instance_url,
                    "active": e.active,
                    "expires_at": expires_at,
                    "expires_at_unix": expires_at_unix,
                    "issued_at": e.iat.map(timefmt::rfc3339),
                    "issued_at_unix": e.iat.map(|t| t.timestamp()),
                    "seconds_remaining": e.seconds_remaining(now),
                    "source": e.source.as_str(),
                });
                if let Some(c) = e.checked_at.filter(|_| e.source == Source::Cached) {
                    v["checked_at"] = json!(timefmt::rfc3339(c));
                }
                if let Some(n) = &e.note {
                    v["note"] = json!(n);
                }
                v
            }
        }
    }

    /// `expires in 1h 52m — 2026-11-21 22:41:07 +01:00 (introspection as of now, user@example.com)`
    fn line(&self, now: DateTime<Utc>) -> String {
        let who = self.username.as_deref().unwrap_or(&self.org);
        match &self.outcome {
            Err((_, msg)) => format!("error: {msg}"),
            Ok(e) => {
                let src = source_text(e, now);
                match e.exp {
                    Some(exp) if exp <= now => format!(
                        "{} — {} ({src}, {who}); {}",
                        timefmt::expiry_phrase(exp, now),
                        timefmt::local(exp),
                        self.next_step
                    ),
                    Some(exp) if e.active => format!(
                        "{} — {} ({src}, {who})",
                        timefmt::expiry_phrase(exp, now),
                        timefmt::local(exp)
                    ),
                    _ if !e.active => format!(
                        "expired — the token is no longer active ({src}, {who}); {}",
                        self.next_step
                    ),
                    _ => format!("expiry unknown — the token works ({src}, {who})"),
                }
            }
        }
    }
}

fn source_text(e: &Expiry, now: DateTime<Utc>) -> String {
    match e.source {
        Source::Introspection => "introspection as of now".to_string(),
        Source::Cached => match e.checked_at.map(|c| timefmt::relative(c, now)) {
            Some(rel) if rel == "now" => "introspection cached just now".to_string(),
            Some(rel) => format!("introspection cached {rel}"),
            None => "cached introspection".to_string(),
        },
        Source::Estimate => "estimated".to_string(),
        Source::Jwt => "jwt".to_string(),
    }
}

impl Report for ExpiresReport {
    fn human(&self, style: &Style) -> String {
        if !self.all {
            let row = &self.rows[0];
            let e = row.outcome.as_ref().ok();
            return match (self.format, e) {
                (ExpiresFormat::Human, _) | (_, None) => row.line(self.now),
                (ExpiresFormat::Iso, Some(e)) => e.exp.map(timefmt::rfc3339).unwrap_or_default(),
                (ExpiresFormat::Unix, Some(e)) => {
                    e.exp.map(|t| t.timestamp().to_string()).unwrap_or_default()
                }
                (ExpiresFormat::Seconds, Some(e)) => match e.seconds_remaining(self.now) {
                    Some(s) => s.to_string(),
                    None if !e.active => "0".to_string(),
                    None => String::new(),
                },
            };
        }
        if self.rows.is_empty() {
            return "no orgs are stored; `sfx login` adds one".to_string();
        }
        let mut g = Grid::new(&[
            col("ORG", 0),
            col("USERNAME", 1),
            col("EXPIRES", 0),
            col("AT", 2),
            col("SOURCE", 3),
        ]);
        let mut errors = Vec::new();
        for r in &self.rows {
            let (phrase, state, at, src) = match &r.outcome {
                Err((exit, msg)) => {
                    errors.push(format!("{}: {msg}", r.org));
                    let (word, state) = match exit {
                        Exit::Relogin => ("needs login", State::NeedsLogin),
                        Exit::Expired => ("expired", State::Expired),
                        Exit::Network => ("unreachable", State::Unknown),
                        _ => ("error", State::Unknown),
                    };
                    (word.to_string(), state, String::new(), String::new())
                }
                Ok(e) => {
                    let (phrase, state) = match e.exp {
                        Some(exp) if e.active || exp <= self.now => (
                            timefmt::table_phrase(exp, self.now),
                            State::of(exp, self.now, self.within),
                        ),
                        _ if !e.active => ("expired".to_string(), State::Expired),
                        _ => ("unknown".to_string(), State::Unknown),
                    };
                    let at = e
                        .exp
                        .map(|x| timefmt::table_time(x, self.now, style.tty))
                        .unwrap_or_default();
                    (phrase, state, at, e.source.as_str().to_string())
                }
            };
            g.row(vec![
                (r.org.clone(), None),
                (r.username.clone().unwrap_or_default(), None),
                (phrase, Some(state)),
                (at, None),
                (src, None),
            ]);
        }
        let width = terminal_width(style);
        let t = g.render(style, width);
        let errors = notes_below(&errors, width);
        format!("{t}{errors}")
    }

    fn json(&self) -> Value {
        if self.all {
            Value::Array(self.rows.iter().map(|r| r.json(self.now)).collect())
        } else {
            self.rows[0].json(self.now)
        }
    }

    fn exit(&self) -> Exit {
        self.rows
            .iter()
            .fold(Exit::Ok, |acc, r| acc.worst(r.exit(self.now, self.within)))
    }

    fn notes(&self) -> Vec<String> {
        if self.all {
            return vec![];
        }
        self.rows
            .iter()
            .filter_map(|r| r.outcome.as_ref().ok()?.note.clone())
            .map(|n| format!("note: {n}"))
            .collect()
    }
}

/// The answer for one org, by the contract's order (remembered for `--offline`).
pub fn answer(ctx: &Context, org: &Org, offline: bool) -> Result<Expiry, Error> {
    let (e, token) = answer_unremembered(ctx, org, offline)?;
    if let Some(token) = token {
        expiry::remember(ctx.orgs(), &[(org, &token, &e)]);
    }
    Ok(e)
}

/// Answers for many orgs, concurrently when the network is involved, remembered
/// in one metadata write.
pub fn answer_all(ctx: &Context, orgs: &[Org], offline: bool) -> Vec<Result<Expiry, Error>> {
    let results =
        crate::commands::for_each(orgs, !offline, |org| answer_unremembered(ctx, org, offline));
    let asked: Vec<(&Org, &Secret, &Expiry)> = results
        .iter()
        .zip(orgs)
        .filter_map(|(r, org)| match r {
            Ok((e, Some(token))) => Some((org, token, e)),
            _ => None,
        })
        .collect();
    expiry::remember(ctx.orgs(), &asked);
    results.into_iter().map(|r| r.map(|(e, _)| e)).collect()
}

/// The answer, and the token it was asked about when Salesforce was asked.
fn answer_unremembered(
    ctx: &Context,
    org: &Org,
    offline: bool,
) -> Result<(Expiry, Option<Secret>), Error> {
    let now = ctx.now();
    // A JWT's exp was read when it was minted: no keychain, no request.
    if org
        .record
        .expiry
        .is_some_and(|k| k.source == ExactSource::Jwt)
        || offline
    {
        if let Some(e) =
            expiry::offline(&org.record, now).filter(|e| offline || e.source == Source::Jwt)
        {
            return Ok((e, None));
        }
        if offline {
            return Err(none_yet(
                org,
                "nothing is known offline about its expiry (no JWT exp, no cached introspection, no issued_at)",
            ));
        }
    }
    let Some(token) = ctx.secret(org, SecretKind::AccessToken)? else {
        return Err(none_yet(org, "it has no access token yet"));
    };
    let e = expiry::read_or_ask(ctx.orgs(), &ctx.client(), now, org, &token)?;
    Ok((e, Some(token)))
}

fn none_yet(org: &Org, why: &str) -> Error {
    Error::Expired(format!(
        "org {}: {why}; `sfx token` or `sfx refresh` mints a token",
        org.name()
    ))
}

pub fn run(args: &ExpiresArgs, ctx: &Context) -> Result<ExpiresReport, Error> {
    let now = ctx.now();
    if !args.all {
        let org = ctx.org()?;
        let e = answer(ctx, &org, args.offline)?;
        return Ok(ExpiresReport {
            rows: vec![Row {
                org: org.name().to_string(),
                username: org.record.username.clone(),
                instance_url: org.record.instance_url.clone(),
                outcome: Ok(e),
                next_step: next_step(ctx, &org),
            }],
            all: false,
            format: args.format,
            within: args.within,
            now,
        });
    }
    let orgs = ctx.all_orgs()?;
    let rows = answer_all(ctx, &orgs, args.offline)
        .into_iter()
        .zip(&orgs)
        .map(|(outcome, org)| Row {
            org: org.name().to_string(),
            username: org.record.username.clone(),
            instance_url: org.record.instance_url.clone(),
            outcome: outcome.map_err(|e| (e.exit(), e.to_string())),
            next_step: next_step(ctx, org),
        })
        .collect();
    Ok(ExpiresReport {
        rows,
        all: true,
        format: args.format,
        within: args.within,
        now,
    })
}
