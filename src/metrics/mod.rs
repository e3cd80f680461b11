//! What `sfx watch --listen` exposes (issue #16; contract: "`sfx watch --listen`"):
//! the per-org state behind `GET /metrics`, `GET /healthz` and `GET /readyz`.
//!
//! The watch feeds this module at the few points where it learns something (an
//! outcome handled, an org picked up again, an `--exec` hook that failed, one pass
//! of its loop); the HTTP side ([`server`]) only reads. Both sides take the one
//! lock for a few microseconds per update, and a scrape copies what it needs under
//! it and renders afterwards, so a scrape never holds the scheduler up for longer
//! than a copy of the per-org numbers.
//!
//! The state of one watch lives in a process-wide [`Metrics`] installed by
//! [`install`]: the watch's scheduler and worker threads reach it through the free
//! functions below, which do nothing when `--listen` was not given. (One watch per
//! process; a global keeps the watch's own code free of plumbing.)
//!
//! Exposition: the Prometheus text format (0.0.4). Per-org state is one compact
//! record per org (not a registered series per label set); at scrape time its
//! nine series an org are written straight to text (90,000 lines for 10,000
//! orgs, where building the `prometheus` crate's model of each sample first cost
//! ten times the time and memory), and the refresh-duration histogram and the
//! single series are encoded by the `prometheus` crate. `promtool check metrics`
//! and a real Prometheus check the result in the tests. Labels are the org's
//! alias and a fixed result word: never a token, secret or username.

mod readers;
pub mod server;

pub use readers::Served;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::clock::{Clock, SystemClock};

use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, Histogram, HistogramOpts, TextEncoder};

/// How a check (introspection of the access token) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Salesforce says the token is active.
    Active,
    /// Salesforce says the token is no longer active (expired or revoked).
    Inactive,
    /// The check failed (network, server, store): it will be retried.
    Error,
}

impl Check {
    const ALL: [Check; 3] = [Check::Active, Check::Inactive, Check::Error];
    fn label(self) -> &'static str {
        match self {
            Check::Active => "active",
            Check::Inactive => "inactive",
            Check::Error => "error",
        }
    }
}

/// How a refresh ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// A new access token (minted here, or found already minted by another sfx).
    Success,
    /// A transient failure: it will be retried with back-off.
    Error,
    /// Salesforce refused the grant (`invalid_grant`): a human must log in again.
    NeedsLogin,
}

impl Refresh {
    const ALL: [Refresh; 3] = [Refresh::Success, Refresh::Error, Refresh::NeedsLogin];
    fn label(self) -> &'static str {
        match self {
            Refresh::Success => "success",
            Refresh::Error => "error",
            Refresh::NeedsLogin => "needs_login",
        }
    }
}

/// What the watch knows about one org's access token right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenState {
    /// Best-known expiry, unix seconds.
    pub expires_at: Option<i64>,
    /// Not known to be dead (introspection did not say inactive).
    pub active: bool,
    /// The watch gave up on this org until someone logs in again.
    pub needs_login: bool,
}

#[derive(Debug, Clone, Default)]
struct OrgStat {
    token: TokenState,
    checks: [u64; 3],
    refreshes: [u64; 3],
    last_refresh: Option<i64>,
    exec_failures: u64,
}

/// Refresh duration buckets, in seconds: a refresh is one HTTPS request (plus a
/// store write), normally 0.1–2 s; the tail covers retries and time-outs.
const REFRESH_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How long past its own planned wake-up the scheduler may be late before
/// `/healthz` says it is stuck.
pub const HEALTH_GRACE: Duration = Duration::from_secs(30);

/// A rendered `/metrics` body is reused for this long: concurrent scrapes share
/// one rendering (and its memory) instead of each building their own.
const RENDER_REUSE: Duration = Duration::from_millis(500);

/// The state of one watch, as the HTTP endpoints see it.
pub struct Metrics {
    version: String,
    /// The watch's clock: its readings date the series and judge `/healthz`
    /// (a fake one in tests, so a wedged scheduler is seen without waiting).
    clock: Arc<dyn Clock>,
    started: Instant,
    orgs: Mutex<BTreeMap<String, OrgStat>>,
    refresh_duration: Histogram,
    readers: readers::Readers,
    /// Milliseconds since `started` by which the scheduler promised to run again.
    heartbeat_deadline_ms: AtomicU64,
    /// The last rendered `/metrics` body (see [`RENDER_REUSE`]).
    rendered: Mutex<Option<(Instant, Arc<Vec<u8>>)>>,
}

/// A clock for readiness (unix seconds); tests pass their own.
pub type Now = i64;

impl Metrics {
    /// On the system clock.
    pub fn new(version: &str) -> Metrics {
        Metrics::with_clock(version, Arc::new(SystemClock))
    }

    /// On `clock` (the watch's: every reading here goes through it).
    pub fn with_clock(version: &str, clock: Arc<dyn Clock>) -> Metrics {
        let refresh_duration = Histogram::with_opts(
            HistogramOpts::new(
                "sfx_refresh_duration_seconds",
                "Time one refresh took (token request and store write), in seconds.",
            )
            .buckets(REFRESH_BUCKETS.to_vec()),
        )
        .expect("fixed, valid histogram options");
        Metrics {
            version: version.to_string(),
            started: clock.instant(),
            clock,
            orgs: Mutex::new(BTreeMap::new()),
            refresh_duration,
            readers: readers::Readers::new(),
            heartbeat_deadline_ms: AtomicU64::new(0),
            rendered: Mutex::new(None),
        }
    }

    fn orgs(&self) -> MutexGuard<'_, BTreeMap<String, OrgStat>> {
        // A panic elsewhere while holding the lock leaves plain numbers behind:
        // still fine to read.
        self.orgs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The org is watched (again) with this token state.
    pub fn set_token(&self, org: &str, token: TokenState) {
        let mut orgs = self.orgs();
        match orgs.get_mut(org) {
            Some(s) => s.token = token,
            None => {
                orgs.insert(
                    org.to_string(),
                    OrgStat {
                        token,
                        ..OrgStat::default()
                    },
                );
            }
        }
    }

    /// The org is no longer watched (logged out while the watch ran).
    pub fn remove(&self, org: &str) {
        self.orgs().remove(org);
    }

    pub fn checked(&self, org: &str, result: Check) {
        if let Some(s) = self.orgs().get_mut(org) {
            s.checks[result as usize] += 1;
        }
    }

    pub fn refreshed(&self, org: &str, result: Refresh, at: Now) {
        if let Some(s) = self.orgs().get_mut(org) {
            s.refreshes[result as usize] += 1;
            if result == Refresh::Success {
                s.last_refresh = Some(at);
            }
        }
    }

    /// Wall time now, unix seconds.
    pub fn now(&self) -> Now {
        self.clock.now().timestamp()
    }

    /// Monotonic time since the watch started.
    fn uptime(&self) -> Duration {
        self.clock.instant().saturating_duration_since(self.started)
    }

    pub fn refresh_took(&self, d: Duration) {
        self.refresh_duration.observe(d.as_secs_f64());
    }

    pub fn exec_failed(&self, org: &str) {
        if let Some(s) = self.orgs().get_mut(org) {
            s.exec_failures += 1;
        }
    }

    /// The scheduler is alive and will run again within `next` (plus
    /// [`HEALTH_GRACE`]).
    pub fn heartbeat(&self, next: Duration) {
        let ms = (self.uptime() + next + HEALTH_GRACE).as_millis();
        self.heartbeat_deadline_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// `Ok` while the scheduler keeps its promise to run again; else how long it
    /// is overdue.
    pub fn health(&self) -> Result<(), Duration> {
        let deadline = self.heartbeat_deadline_ms.load(Ordering::Relaxed);
        let up = self.uptime();
        let now = u64::try_from(up.as_millis()).unwrap_or(u64::MAX);
        if deadline == 0 {
            // Not yet run at all.
            return Err(up);
        }
        if now <= deadline {
            Ok(())
        } else {
            Err(Duration::from_millis(now - deadline) + HEALTH_GRACE)
        }
    }

    /// The orgs that are not ready, one sentence each (empty: all ready).
    pub fn not_ready(&self, now: Now) -> Vec<String> {
        let orgs = self.orgs();
        if orgs.is_empty() {
            return vec!["no org is watched yet".to_string()];
        }
        orgs.iter()
            .filter_map(|(name, s)| not_ready_reason(&s.token, now).map(|r| format!("{name}: {r}")))
            .collect()
    }

    /// The `/metrics` body (Prometheus text format 0.0.4).
    pub fn render(&self) -> Arc<Vec<u8>> {
        let mut cache = self.rendered.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.clock.instant();
        if let Some((at, body)) = cache.as_ref()
            && now.saturating_duration_since(*at) < RENDER_REUSE
        {
            return body.clone();
        }
        let body = Arc::new(self.encode(self.now()));
        *cache = Some((now, body.clone()));
        body
    }

    fn encode(&self, now: Now) -> Vec<u8> {
        // Copy under the lock, render after it.
        let orgs: Vec<(String, OrgStat)> = self
            .orgs()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // The per-org series (nine an org: 90,000 lines for 10,000 orgs) are
        // written straight to text: building the crate's model of each sample
        // first took ten times as long and as much memory as the text itself.
        let mut text = String::with_capacity(orgs.len() * 640 + 8192);
        let per_org = |out: &mut String,
                       name: &str,
                       help: &str,
                       kind: &str,
                       value: &dyn Fn(&OrgStat) -> Option<i64>| {
            if !orgs.iter().any(|(_, s)| value(s).is_some()) {
                return;
            }
            header(out, name, help, kind);
            for (org, s) in &orgs {
                if let Some(v) = value(s) {
                    line(out, name, &[("org", org)], v);
                }
            }
        };
        per_org(
            &mut text,
            "sfx_access_token_expiry_timestamp_seconds",
            "When the org's access token expires (best known), as a unix timestamp. Absent while unknown.",
            "gauge",
            &|s| s.token.expires_at,
        );
        per_org(
            &mut text,
            "sfx_org_needs_login",
            "1 when the org needs a human to log in again (its refresh failed for good), else 0.",
            "gauge",
            &|s| Some(i64::from(s.token.needs_login)),
        );
        per_org(
            &mut text,
            "sfx_org_ready",
            "1 when the org has a valid access token and needs no login (what /readyz checks), else 0.",
            "gauge",
            &|s| Some(i64::from(not_ready_reason(&s.token, now).is_none())),
        );
        per_org(
            &mut text,
            "sfx_last_refresh_timestamp_seconds",
            "When this watch last refreshed the org's access token, as a unix timestamp. Absent before the first refresh.",
            "gauge",
            &|s| s.last_refresh,
        );
        per_org(
            &mut text,
            "sfx_exec_failures_total",
            "--exec hooks that failed (non-zero exit, could not start) after a refresh of the org.",
            "counter",
            &|s| Some(s.exec_failures as i64),
        );
        if !orgs.is_empty() {
            header(
                &mut text,
                "sfx_refresh_total",
                "Refreshes of the org's access token by result (success, error = will retry, needs_login).",
                "counter",
            );
            for (org, s) in &orgs {
                for r in Refresh::ALL {
                    let labels = [("org", org.as_str()), ("result", r.label())];
                    line(
                        &mut text,
                        "sfx_refresh_total",
                        &labels,
                        s.refreshes[r as usize] as i64,
                    );
                }
            }
            header(
                &mut text,
                "sfx_check_total",
                "Introspections of the org's access token by result (active, inactive, error = will retry).",
                "counter",
            );
            for (org, s) in &orgs {
                for c in Check::ALL {
                    let labels = [("org", org.as_str()), ("result", c.label())];
                    line(
                        &mut text,
                        "sfx_check_total",
                        &labels,
                        s.checks[c as usize] as i64,
                    );
                }
            }
        }
        // The histogram and the single series through the crate's encoder.
        let mut fams = prometheus::core::Collector::collect(&self.refresh_duration);
        self.readers.encode(&mut text, &mut fams);
        let single = |name: &str, help: &str, labels: &[(&str, &str)], v: f64| {
            family(
                name,
                help,
                MetricType::GAUGE,
                vec![sample(MetricType::GAUGE, labels, v)],
            )
        };
        fams.push(single(
            "sfx_watched_orgs",
            "Orgs this watch keeps fresh (including those that need a login).",
            &[],
            orgs.len() as f64,
        ));
        fams.push(single(
            "sfx_orgs_needing_login",
            "Watched orgs that need a human to log in again.",
            &[],
            orgs.iter().filter(|(_, s)| s.token.needs_login).count() as f64,
        ));
        fams.push(single(
            "sfx_watch_start_time_seconds",
            "When this watch started, as a unix timestamp.",
            &[],
            (now - self.uptime().as_secs() as i64) as f64,
        ));
        fams.push(single(
            "sfx_build_info",
            "Always 1; the version label says which sfx is running.",
            &[("version", &self.version)],
            1.0,
        ));
        drop(orgs);
        let mut out = text.into_bytes();
        if let Err(e) = TextEncoder::new().encode(&fams, &mut out) {
            // Only an inconsistent family fails, which this module never builds;
            // should one slip through, say so rather than serve half an answer.
            out = format!("# sfx could not encode its metrics: {e}\n").into_bytes();
        }
        out
    }
}

/// `# HELP` and `# TYPE` lines of one family (help texts here hold no `\\` or newline).
fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One sample line, label values escaped as the text format wants (`\\`, `\"`, `\n`).
fn line(out: &mut String, name: &str, labels: &[(&str, &str)], v: i64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, val)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            for c in val.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {v}");
}

/// Why an org is not ready, or `None` when it is.
fn not_ready_reason(t: &TokenState, now: Now) -> Option<String> {
    if t.needs_login {
        return Some("needs a login (`sfx login`)".to_string());
    }
    if !t.active {
        return Some("the access token is no longer active; refreshing".to_string());
    }
    match t.expires_at {
        None => Some("no access token with a known expiry yet".to_string()),
        Some(e) if e <= now => Some(format!("the access token expired {}s ago", now - e)),
        Some(_) => None,
    }
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

fn sample(kind: MetricType, labels: &[(&str, &str)], v: f64) -> Metric {
    let mut m = Metric::default();
    m.set_label(
        labels
            .iter()
            .map(|(k, val)| {
                let mut l = LabelPair::default();
                l.set_name(k.to_string());
                l.set_value(val.to_string());
                l
            })
            .collect(),
    );
    if kind == MetricType::COUNTER {
        let mut c = Counter::default();
        c.set_value(v);
        m.set_counter(c);
    } else {
        let mut g = Gauge::default();
        g.set_value(v);
        m.set_gauge(g);
    }
    m
}

// ----- the process-wide instance and what the watch calls ------------------------

static GLOBAL: OnceLock<Arc<Metrics>> = OnceLock::new();

/// Start `--listen`: bind `addr` (exit 2 when busy or unusable), make a fresh
/// [`Metrics`] on the watch's `clock` the process's instance and serve it until
/// the returned server is dropped.
pub fn serve(
    addr: std::net::SocketAddr,
    clock: Arc<dyn Clock>,
) -> Result<server::Server, crate::error::Error> {
    let m = Arc::new(Metrics::with_clock(env!("CARGO_PKG_VERSION"), clock));
    let srv = server::Server::start(addr, m.clone())?;
    install(m);
    crate::messages::say(&format!(
        "serving metrics on http://{}/metrics (and /healthz, /readyz)",
        srv.local_addr()
    ));
    Ok(srv)
}

/// Make `m` the instance the functions below feed (once per process).
pub fn install(m: Arc<Metrics>) {
    let _ = GLOBAL.set(m);
}

fn with(f: impl FnOnce(&Metrics)) {
    if let Some(m) = GLOBAL.get() {
        f(m);
    }
}

/// The `org` label of an alias. Labels never carry a username, and an org
/// logged in without `--alias` is named by its username: an alias with an `@`
/// in it is exported as `org-` and the first 12 hex digits of its SHA-256 —
/// stable across restarts and hosts, so alerts and dashboards keep working.
///
/// Distinct orgs never share a label: an alias spelled like such a digest
/// (`org-` and 12 lower-case hex digits) is exported as `alias:` and the alias,
/// a form no other alias can take (aliases hold no `:`).
pub fn label(alias: &str) -> std::borrow::Cow<'_, str> {
    if !alias.contains('@') {
        return if looks_hashed(alias) {
            std::borrow::Cow::Owned(format!("alias:{alias}"))
        } else {
            std::borrow::Cow::Borrowed(alias)
        };
    }
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(alias.as_bytes());
    let hex: String = d.iter().take(6).map(|b| format!("{b:02x}")).collect();
    std::borrow::Cow::Owned(format!("org-{hex}"))
}

/// `org-` and 12 lower-case hex digits: the form of a username's label.
fn looks_hashed(alias: &str) -> bool {
    alias.strip_prefix("org-").is_some_and(|h| {
        h.len() == 12
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

pub fn set_token(org: &str, token: TokenState) {
    with(|m| m.set_token(&label(org), token));
}

pub fn remove(org: &str) {
    with(|m| m.remove(&label(org)));
}

pub fn checked(org: &str, result: Check) {
    with(|m| m.checked(&label(org), result));
}

pub fn refreshed(org: &str, result: Refresh) {
    with(|m| m.refreshed(&label(org), result, m.now()));
}

pub fn refresh_took(d: Duration) {
    with(|m| m.refresh_took(d));
}

pub fn exec_failed(org: &str) {
    with(|m| m.exec_failed(&label(org)));
}

pub fn heartbeat(next: Duration) {
    with(|m| m.heartbeat(next));
}

/// A refresher answered a reader's request for `org` after `waited`.
pub fn reader_served(org: &str, result: Served, waited: Duration) {
    with(|m| m.readers.served(&label(org), result, waited));
}

#[cfg(test)]
mod tests;
