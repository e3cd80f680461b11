//! One file per command, each with `run(args, ctx) -> Result<Report>`; results are
//! rendered by `app.rs`. Shared here: the summary that `login` and `refresh` print.

pub mod completions;
pub mod doctor;
pub mod expires;
pub mod from_sf;
pub mod introspect;
pub mod login;
pub mod logout;
pub mod migrate;
pub mod orgs;
pub mod refresh;
pub mod token;
pub mod watch;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::error::Error;
use crate::lifecycle::Expiry;
use crate::output::{Report, Style};
use crate::secret::Secret;
use crate::store::metadata::OrgRecord;
use crate::timefmt;

/// The org was logged out while this run waited for its refresh lock.
pub fn logged_out_meanwhile() -> Error {
    Error::relogin(
        "the org was logged out while sfx waited for its lock",
        "`sfx login` again",
    )
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
        let rotated = if self.rotated {
            "; refresh token rotated and stored"
        } else {
            ""
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
