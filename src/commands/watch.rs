//! `sfx watch`: keep access tokens fresh and refresh tokens alive, and say when an
//! org needs a human (issue #4; contract: "`sfx watch`").
//!
//! Shape: one scheduler — this thread — holds every watched org's state and the
//! time its next action is due, and sleeps on one channel until then. A small pool
//! of worker threads makes the requests (a *check* is introspection through
//! [`expiry::ask_server_only`]; a *refresh* is [`refresh::refresh_now`] under the
//! org's lock, as `sfx refresh` does) and sends each outcome back on that channel.
//! `--exec` hooks run on threads of their own (`exec.rs`), with a timeout, so a
//! hung hook never holds up a refresh. A signal thread forwards SIGINT/SIGTERM
//! there too, so a signal is handled in the loop, never in the middle of a store
//! write: the loop waits for the requests in flight (a second signal stops at
//! once), gives running hooks a short grace, and returns 130 for SIGINT, 0 for
//! SIGTERM. Another thread waits for stdout's reader to go away, so a closed
//! stdout ends the watch at once, not at the next event.
//!
//! Pace, per org (the pure functions `refresh_at`, `next_due` and
//! `retry_delay`, unit-tested below): refresh when the access token's
//! best-known expiry is within `--refresh-before` — at most half the token's
//! lifetime, so a window longer than the session refreshes half-way through it
//! rather than in a loop — or when the refresh token has been idle for
//! `--keepalive`. In between, re-check by introspection after half the time left
//! until that refresh point, bounded by 30 s and 15 min. Those bounds apply to
//! *checks* only: the refresh and keep-alive points are kept to the second
//! whatever the lifetime, so an 8-second session is refreshed as surely as a
//! two-hour one. A two-hour session costs about six introspections an hour and
//! one refresh every 1 h 50 min. A fresh token's expiry is an estimate; the
//! shortest lifetime seen by introspection caps it, so short sessions keep their
//! pace after the first refresh. Transient failures back off exponentially
//! (jittered, from 30 s up to 5 min), but never past half the time the token has
//! left while it is alive, so retries fit before expiry; `invalid_grant`
//! (Error::Relogin) ends the watch of that org, and once no watched org is left
//! the command exits 4. Nothing is done to one org more than once a second.

mod cache;
mod exec;
mod feed;

use exec::{Handoff, Hooks};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};

use crate::cli::WatchArgs;
use crate::context::{Context, Org};
use crate::error::Error;
use crate::exit::Exit;
use crate::lifecycle::expiry::{self, Expiry, Source};
use crate::lifecycle::{refresh, relogin_hint};
use crate::output::events::{Event, Kind, Printer, Row};
use crate::secret::Secret;
use crate::store::SecretKind;
use crate::timefmt::humanize;

/// Requests in flight at once, whatever the number of orgs.
const WORKERS: usize = 4;
/// Orgs handed to the workers and not yet done, at most: the rest stay due in
/// the scheduler, so a stop waits for a few requests, not for every due org of
/// ten thousand (issue #16).
const MAX_QUEUED: usize = 2 * WORKERS;
/// The longest back-off after repeated failures.
const BACKOFF_CAP: Duration = Duration::from_secs(300);
/// The longest single sleep. The channel's timeout runs on the monotonic clock,
/// which stands still while the machine is suspended: waking this often notices
/// a resume (and a changed wall clock) within a minute.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// Durations beyond this are treated as "never" (keeps date arithmetic in range).
const FOREVER_DAYS: i64 = 365 * 100;
/// The shortest pause between two actions on one org, whatever the rules below
/// say, so nothing can spin (not even a token that arrives already expired
/// because of a skewed clock). Realistic sessions never come near it.
const MIN_GAP_MS: i64 = 1000;
/// How long a stopping watch waits for running `--exec` hooks before killing them.
const HOOK_GRACE: Duration = Duration::from_secs(2);

fn min_gap() -> chrono::Duration {
    chrono::Duration::milliseconds(MIN_GAP_MS)
}

/// `t + d`, saturating instead of overflowing the calendar.
fn plus(t: DateTime<Utc>, d: chrono::Duration) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The schedule's knobs, resolved.
#[derive(Debug, Clone, Copy)]
struct Pace {
    refresh_before: chrono::Duration,
    keepalive: chrono::Duration,
    min_check: chrono::Duration,
    max_check: chrono::Duration,
    /// When the watch began (stands in for an unknown last use of a refresh token).
    started: DateTime<Utc>,
}

fn span(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d)
        .unwrap_or(chrono::Duration::MAX)
        .min(chrono::Duration::days(FOREVER_DAYS))
}

impl Pace {
    fn new(args: &WatchArgs, started: DateTime<Utc>) -> Pace {
        let min_check = span(args.min_check);
        Pace {
            refresh_before: span(args.refresh_before),
            keepalive: span(args.keepalive),
            min_check,
            max_check: span(args.max_check).max(min_check),
            started,
        }
    }
}

/// Why a refresh is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    NoToken,
    Unknown,
    Dead,
    Expiring,
    Keepalive,
}

/// When the refresh token should be used to keep it alive (orgs that have one).
fn keepalive_at(org: &Org, p: &Pace) -> Option<DateTime<Utc>> {
    if !org.record.has_refresh_token {
        return None;
    }
    let used = org
        .record
        .refresh_token_used_at
        .and_then(crate::timefmt::from_unix)
        .unwrap_or(p.started);
    used.checked_add_signed(p.keepalive)
}

/// The moment to refresh ahead of `exp`: `--refresh-before` earlier, but never
/// earlier than half-way through the token's known life (a window longer than
/// half the session would otherwise refresh in a loop, or leave no time to
/// retry). So an 8 s session with `--refresh-before 5s` is refreshed 4 s before
/// it expires, a two-hour one with the default `10m` at 1 h 50 min.
fn refresh_at(e: &Expiry, p: &Pace) -> Option<DateTime<Utc>> {
    let exp = e.exp?;
    let mut window = p.refresh_before;
    if let Some(iat) = e.iat.filter(|i| *i < exp) {
        window = window.min((exp - iat) / 2);
    }
    Some(exp.checked_sub_signed(window).unwrap_or(exp))
}

/// Whether (and why) the org should be refreshed now.
fn refresh_reason(
    org: &Org,
    expiry: Option<&Expiry>,
    has_token: bool,
    now: DateTime<Utc>,
    p: &Pace,
) -> Option<Reason> {
    if !has_token {
        return Some(Reason::NoToken);
    }
    if keepalive_at(org, p).is_some_and(|k| k <= now) {
        return Some(Reason::Keepalive);
    }
    let Some(e) = expiry else {
        return Some(Reason::Unknown);
    };
    if !e.active {
        return Some(Reason::Dead);
    }
    match refresh_at(e, p) {
        None => Some(Reason::Unknown),
        Some(at) if at <= now => Some(Reason::Expiring),
        Some(_) => None,
    }
}

/// When to act on the org next. A *check* comes after half the time left until
/// the refresh point, bounded by the check limits (`min_check`, `max_check`); the
/// refresh point and the keep-alive point themselves are never postponed by
/// those bounds, whatever the token's lifetime. Nothing comes sooner than one
/// second from now (so nothing can spin).
fn next_due(org: &Org, expiry: Option<&Expiry>, now: DateTime<Utc>, p: &Pace) -> DateTime<Utc> {
    let refresh = expiry.and_then(|e| refresh_at(e, p));
    let check = match refresh {
        Some(at) => plus(now, ((at - now) / 2).clamp(p.min_check, p.max_check)),
        None => plus(now, p.max_check),
    };
    let due = [Some(check), refresh, keepalive_at(org, p)]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(check);
    due.max(plus(now, min_gap()))
}

/// How long to wait before trying again after the `failures`-th transient
/// failure in a row: exponential from the shortest check pause (30 s), capped
/// (5 min, and the longest check pause), spread by `jitter` (0..1 → ±25 %). While
/// the access token is alive (`left` until it expires), the wait is at most half
/// of that, so the next try — and one after it — still fits before expiry; at
/// least one second, always.
fn retry_delay(
    failures: u32,
    left: Option<chrono::Duration>,
    p: &Pace,
    jitter: f64,
) -> chrono::Duration {
    let base = p.min_check.to_std().unwrap_or(Duration::from_secs(30));
    let cap = BACKOFF_CAP
        .min(p.max_check.to_std().unwrap_or(BACKOFF_CAP))
        .max(base);
    let d = base
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(cap);
    let mut d = span(d.mul_f64(0.75 + jitter.clamp(0.0, 1.0) / 2.0));
    if let Some(left) = left.filter(|l| *l > chrono::Duration::zero()) {
        d = d.min(left / 2);
    }
    d.max(min_gap())
}

/// A random fraction in 0..1 for [`retry_delay`]'s jitter.
fn jitter() -> f64 {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    f64::from(u16::from_le_bytes(b) % 1000) / 1000.0
}

/// A fresh token's expiry is often an estimate (`issued_at` + the stored session
/// timeout, which may be longer than the org's real one). The shortest lifetime
/// seen by introspection (or in a JWT) is a better bound: cap the estimate by it.
fn assume_lifetime(mut e: Expiry, lifetime: Option<chrono::Duration>) -> Expiry {
    if e.source == Source::Estimate
        && let (Some(iat), Some(l)) = (e.iat, lifetime)
    {
        let capped = iat.checked_add_signed(l);
        if let Some(c) = capped
            && e.exp.is_none_or(|x| c < x)
        {
            e.exp = Some(c);
        }
    }
    e
}

/// The lifetime an exact expiry shows (`exp - iat`), if it shows one.
fn lifetime_of(e: &Expiry) -> Option<chrono::Duration> {
    if e.source == Source::Estimate {
        return None;
    }
    let (iat, exp) = (e.iat?, e.exp?);
    (exp > iat).then(|| exp - iat)
}

// ----- the worker side -----------------------------------------------------------

enum Job {
    Check,
    Refresh(Reason),
}

struct Task {
    idx: usize,
    /// The org as the scheduler last knew it (env orgs: with their tokens).
    org: Org,
    job: Job,
}

enum Outcome {
    Checked {
        org: Org,
        expiry: Expiry,
        /// Another sfx process put a new access token in the store since last time.
        changed: bool,
    },
    /// The store holds no access token for the org.
    NoToken {
        org: Org,
    },
    Refreshed {
        org: Org,
        expiry: Option<Expiry>,
        reason: Reason,
        /// Another sfx process had refreshed it already (found under the lock).
        by_other: bool,
        /// Salesforce rotated the refresh token of an environment org.
        rotated_env: bool,
    },
    /// The org is no longer in the store (logged out).
    Gone,
    Failed(Error),
}

enum Msg {
    /// Stop with this exit code (SIGTERM → 0, SIGINT → 130).
    Signal(Exit),
    /// A worker's outcome, with the new token for `--exec` if there is one.
    Done(usize, Box<Outcome>, Option<Handoff>),
    /// An `--exec` hook failed or timed out.
    ExecFailed(usize, String),
    /// Nobody reads stdout any more.
    StdoutClosed,
}

fn reread(ctx: &Context, alias: &str) -> Result<Option<Org>, Error> {
    Ok(ctx.orgs().read(alias)?.map(|v| v.org))
}

fn handoff(org: &Org, token: Secret) -> Handoff {
    Handoff {
        org: org.name().to_string(),
        instance_url: org.record.instance_url.clone(),
        token,
    }
}

fn check(ctx: &Context, task: Task, p: &Pace) -> Result<(Outcome, Option<Handoff>), Error> {
    let org = if task.org.is_env() {
        task.org
    } else {
        let Some(fresh) = reread(ctx, task.org.name())? else {
            return Ok((Outcome::Gone, None));
        };
        let changed = fresh.record.access_token_masked != task.org.record.access_token_masked;
        // Several watchers on one shared store: the first to claim the check asks
        // Salesforce; the others take the answer it left in the shared record
        // (issue #13: checks are not multiplied by the number of hosts).
        if let Some(shared) = &ctx.shared
            && let Some(known) = expiry::offline(&fresh.record, ctx.now())
            && !shared.claim_check(
                fresh.name(),
                p.min_check.to_std().unwrap_or(Duration::from_secs(30)),
            )?
        {
            let h = if changed && known.active {
                ctx.secret(&fresh, SecretKind::AccessToken)?
                    .map(|t| handoff(&fresh, t))
            } else {
                None
            };
            return Ok((
                Outcome::Checked {
                    org: fresh,
                    expiry: known,
                    changed,
                },
                h,
            ));
        }
        let Some(token) = ctx.secret(&fresh, SecretKind::AccessToken)? else {
            return Ok((Outcome::NoToken { org: fresh }, None));
        };
        let expiry = expiry::ask_server_only(ctx.orgs(), &ctx.client(), ctx.now(), &fresh, &token)?;
        if ctx.shared.is_some() {
            // Watchers on other hosts take this answer instead of asking (see the
            // claim above): it must be in the store now, not at the next batch
            // (a write to Redis is one small compare-and-set, not a file rewrite).
            expiry::remember(ctx.orgs(), &[(&fresh, &token, &expiry)]);
        }
        let h = (changed && expiry.active).then(|| handoff(&fresh, token));
        return Ok((
            Outcome::Checked {
                org: fresh,
                expiry,
                changed,
            },
            h,
        ));
    };
    let Some(token) = ctx.secret(&org, SecretKind::AccessToken)? else {
        return Ok((Outcome::NoToken { org }, None));
    };
    let expiry = expiry::ask_server_only(ctx.orgs(), &ctx.client(), ctx.now(), &org, &token)?;
    Ok((
        Outcome::Checked {
            org,
            expiry,
            changed: false,
        },
        None,
    ))
}

fn refresh(
    ctx: &Context,
    task: Task,
    reason: Reason,
    p: &Pace,
) -> Result<(Outcome, Option<Handoff>), Error> {
    let now = ctx.now();
    if task.org.is_env() {
        // Env orgs live in memory only: no lock, nothing written.
        let r = refresh::refresh_now(ctx.orgs(), &ctx.client(), ctx.clock(), &task.org)?;
        let h = handoff(&r.org, r.access_token);
        return Ok((
            Outcome::Refreshed {
                expiry: Some(expiry::after_mint(&r.org.record, now)),
                org: r.org,
                reason,
                by_other: false,
                rotated_env: r.rotated,
            },
            Some(h),
        ));
    }
    // The same lock as `sfx refresh`, then re-read: another process may have
    // refreshed while this one was deciding.
    let Some((org, lock)) = ctx.locked(&task.org)? else {
        return Ok((Outcome::Gone, None));
    };
    if org.record.access_token_masked.is_some()
        && org.record.access_token_masked != task.org.record.access_token_masked
    {
        let e = expiry::offline(&org.record, now);
        if refresh_reason(&org, e.as_ref(), true, now, p).is_none() {
            let h = ctx
                .secret(&org, SecretKind::AccessToken)?
                .map(|t| handoff(&org, t));
            return Ok((
                Outcome::Refreshed {
                    org,
                    expiry: e,
                    reason,
                    by_other: true,
                    rotated_env: false,
                },
                h,
            ));
        }
    }
    let r = refresh::refresh_now(ctx.orgs(), &ctx.client(), ctx.clock(), &org)?;
    drop(lock);
    let h = handoff(&r.org, r.access_token);
    Ok((
        Outcome::Refreshed {
            expiry: Some(expiry::after_mint(&r.org.record, now)),
            org: r.org,
            reason,
            by_other: false,
            rotated_env: false,
        },
        Some(h),
    ))
}

fn worker(ctx: Arc<Context>, jobs: Arc<Mutex<Receiver<Task>>>, tx: Sender<Msg>, p: Pace) {
    loop {
        let task = {
            let rx = jobs.lock().unwrap_or_else(|e| e.into_inner());
            match rx.recv() {
                Ok(t) => t,
                Err(_) => return,
            }
        };
        let idx = task.idx;
        let (name, is_refresh, t0) = (
            task.org.name().to_string(),
            matches!(task.job, Job::Refresh(_)),
            Instant::now(),
        );
        let result = match task.job {
            Job::Check => check(&ctx, task, &p),
            Job::Refresh(reason) => refresh(&ctx, task, reason, &p),
        };
        let (outcome, h) = result.unwrap_or_else(|e| (Outcome::Failed(e), None));
        feed::observe(&name, is_refresh, &outcome, t0.elapsed());
        if tx.send(Msg::Done(idx, Box::new(outcome), h)).is_err() {
            return;
        }
    }
}

/// Tell the loop when stdout's reader goes away (`sfx watch --json | head -1`),
/// at once rather than at the next event, which may be many minutes off. `poll`
/// with no events asked reports only hang-up and error, which a pipe or socket
/// gives when its reader is gone; a file or a terminal never wakes it.
#[cfg(unix)]
fn watch_stdout(tx: Sender<Msg>) {
    let spawned = std::thread::Builder::new()
        .name("sfx-stdout".into())
        .spawn(move || {
            loop {
                let mut fd = libc::pollfd {
                    fd: libc::STDOUT_FILENO,
                    events: 0,
                    revents: 0,
                };
                // SAFETY: one valid pollfd, for the duration of the call.
                let n = unsafe { libc::poll(&mut fd, 1, -1) };
                if n < 0 {
                    if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    return;
                }
                if fd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                    let _ = tx.send(Msg::StdoutClosed);
                }
                return;
            }
        });
    // Without the thread, a closed stdout is still noticed at the next write.
    drop(spawned);
}

#[cfg(not(unix))]
fn watch_stdout(_tx: Sender<Msg>) {}

/// Forward SIGINT (→ 130) and SIGTERM/SIGHUP (→ 0) to the loop.
#[cfg(unix)]
fn listen_for_signals(tx: Sender<Msg>) -> Result<(), Error> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| Error::Other(format!("cannot listen for signals: {e}")))?;
    std::thread::Builder::new()
        .name("sfx-signals".into())
        .spawn(move || {
            for s in signals.forever() {
                let code = if s == SIGINT {
                    Exit::Interrupted
                } else {
                    Exit::Ok
                };
                if tx.send(Msg::Signal(code)).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| Error::Other(format!("cannot start the signal thread: {e}")))?;
    Ok(())
}

/// Elsewhere Ctrl-C ends the process the platform's way.
#[cfg(not(unix))]
fn listen_for_signals(_tx: Sender<Msg>) -> Result<(), Error> {
    Ok(())
}

// ----- the scheduler side ----------------------------------------------------------

struct Watched {
    org: Org,
    expiry: Option<Expiry>,
    has_token: bool,
    due: DateTime<Utc>,
    busy: bool,
    failures: u32,
    needs_login: bool,
    warned_expiring: bool,
    warned_expired: bool,
    last: Option<(DateTime<Utc>, Kind)>,
    /// The shortest access-token lifetime seen exactly (see [`assume_lifetime`]).
    lifetime: Option<chrono::Duration>,
}

fn has_access_token(org: &Org) -> bool {
    match &org.env {
        Some(env) => env.access_token.is_some(),
        None => org.record.access_token_masked.is_some(),
    }
}

impl Watched {
    fn new(org: Org, now: DateTime<Utc>) -> Watched {
        let expiry = expiry::offline(&org.record, now);
        Watched {
            lifetime: expiry.as_ref().and_then(lifetime_of),
            expiry,
            has_token: has_access_token(&org),
            org,
            due: now,
            busy: false,
            failures: 0,
            needs_login: false,
            warned_expiring: false,
            warned_expired: false,
            last: None,
        }
    }

    /// Remember the shortest exact lifetime seen.
    fn learn(&mut self, e: &Expiry) {
        if let Some(l) = lifetime_of(e) {
            self.lifetime = Some(self.lifetime.map_or(l, |old| old.min(l)));
        }
    }

    fn exp(&self) -> Option<DateTime<Utc>> {
        self.expiry.as_ref().and_then(|e| e.exp)
    }

    fn new_token(&mut self) {
        self.has_token = true;
        self.warned_expiring = false;
        self.warned_expired = false;
    }

    fn row(&self, now: DateTime<Utc>, p: &Pace) -> Row {
        Row {
            org: self.org.name().to_string(),
            username: self.org.record.username.clone(),
            expires_at: self.exp(),
            estimated: self
                .expiry
                .as_ref()
                .is_some_and(|e| e.source == Source::Estimate),
            due: self
                .expiry
                .as_ref()
                .and_then(|e| refresh_at(e, p))
                .is_some_and(|a| a <= now),
            last: self.last,
            needs_login: self.needs_login,
        }
    }
}

/// `expires in 1h 52m (introspection)`.
fn expiry_text(e: Option<&Expiry>, now: DateTime<Utc>) -> String {
    match e.and_then(|e| e.exp.map(|x| (x, e.source))) {
        Some((exp, source)) => format!(
            "{} ({})",
            crate::timefmt::expiry_phrase(exp, now),
            match source {
                Source::Estimate => "estimated",
                s => s.as_str(),
            }
        ),
        None => "expiry unknown".to_string(),
    }
}

fn reason_text(r: Reason, old: Option<DateTime<Utc>>, now: DateTime<Utc>, p: &Pace) -> String {
    match r {
        Reason::NoToken => "there was no access token yet".into(),
        Reason::Unknown => "the old one's expiry was unknown".into(),
        Reason::Dead => match old {
            Some(e) if e <= now => "the old one had expired".into(),
            _ => "the old one was no longer active".into(),
        },
        Reason::Expiring => match old {
            Some(e) if e > now => format!(
                "the old one had {} left",
                humanize(e.signed_duration_since(now).to_std().unwrap_or_default())
            ),
            _ => "the old one had expired".into(),
        },
        Reason::Keepalive => format!(
            "keep-alive: the refresh token had not been used for {}",
            humanize(p.keepalive.to_std().unwrap_or_default())
        ),
    }
}

struct Scheduler {
    ctx: Arc<Context>,
    pace: Pace,
    all: bool,
    orgs: Vec<Watched>,
    jobs: Sender<Task>,
    /// `--exec`, when given.
    hooks: Option<Hooks>,
    printer: Printer,
    /// stdout was closed: stop quietly.
    closed: bool,
    /// The metadata file's modification time when last looked at.
    store_stamp: Option<SystemTime>,
    /// With a shared store (no file to stat): when it was last listed.
    shared_scan: Option<DateTime<Utc>>,
}

impl Scheduler {
    fn emit(&mut self, idx: usize, kind: Kind, message: String, needs_login: bool) {
        let now = self.ctx.now();
        let w = &mut self.orgs[idx];
        w.last = Some((now, kind));
        let e = Event {
            at: now,
            org: w.org.name().to_string(),
            kind,
            expires_at: w.exp(),
            message,
            needs_login,
        };
        if !self.closed && self.printer.event(&e).is_err() {
            // A closed stdout (`sfx watch --json | head -1`) ends quietly; any other
            // write failure too: nobody is reading.
            self.closed = true;
        }
    }

    /// Hand every org whose time has come to the workers.
    fn dispatch(&mut self, now: DateTime<Utc>) {
        let mut queued = self.orgs.iter().filter(|w| w.busy).count();
        for (idx, w) in self.orgs.iter_mut().enumerate() {
            if queued >= MAX_QUEUED {
                break;
            }
            if w.busy || w.needs_login || w.due > now {
                continue;
            }
            let job = match refresh_reason(&w.org, w.expiry.as_ref(), w.has_token, now, &self.pace)
            {
                Some(r) => Job::Refresh(r),
                None => Job::Check,
            };
            let task = Task {
                idx,
                org: w.org.clone(),
                job,
            };
            if self.jobs.send(task).is_ok() {
                w.busy = true;
                queued += 1;
            }
        }
    }

    fn handle(&mut self, idx: usize, outcome: Outcome) {
        let now = self.ctx.now();
        let p = self.pace;
        self.orgs[idx].busy = false;
        match outcome {
            Outcome::Checked {
                org,
                expiry,
                changed,
            } => {
                let w = &mut self.orgs[idx];
                let expected_alive = w.exp().is_none_or(|e| e > now);
                w.org = org;
                w.failures = 0;
                w.learn(&expiry);
                if changed {
                    w.new_token();
                }
                w.has_token = true;
                w.expiry = Some(expiry.clone());
                if !expiry.active {
                    w.due = now;
                    let past = expiry.exp.is_some_and(|e| e <= now);
                    if past || !expected_alive {
                        w.warned_expired = true;
                        let m = format!(
                            "the access token {}; refreshing now",
                            expiry
                                .exp
                                .map(|e| crate::timefmt::expiry_phrase(e, now))
                                .unwrap_or_else(|| "has expired".into())
                        );
                        self.emit(idx, Kind::Expired, m, false);
                    } else {
                        self.emit(
                            idx,
                            Kind::Revoked,
                            "Salesforce says the access token is no longer active (revoked, or its session ended); refreshing now".into(),
                            false,
                        );
                    }
                    return;
                }
                // Inside the window already (the check learned a sooner expiry): refresh now.
                w.due = match refresh_reason(&w.org, w.expiry.as_ref(), true, now, &p) {
                    Some(_) => now,
                    None => next_due(&w.org, w.expiry.as_ref(), now, &p),
                };
                let mut m = format!("active, {}", expiry_text(Some(&expiry), now));
                if let Some(n) = &expiry.note {
                    m.push_str(&format!("; {n}"));
                }
                if changed {
                    m = format!("another sfx process refreshed it: {m}");
                    self.emit(idx, Kind::Refreshed, m, false);
                } else {
                    self.emit(idx, Kind::Checked, m, false);
                }
            }
            Outcome::NoToken { org } => {
                let w = &mut self.orgs[idx];
                w.org = org;
                w.has_token = false;
                w.expiry = None;
                w.due = now;
            }
            Outcome::Refreshed {
                org,
                expiry,
                reason,
                by_other,
                rotated_env,
            } => {
                let w = &mut self.orgs[idx];
                let old = w.exp();
                w.org = org;
                w.failures = 0;
                w.new_token();
                if let Some(e) = &expiry {
                    w.learn(e);
                }
                w.expiry = expiry.map(|e| assume_lifetime(e, w.lifetime));
                // A fresh opaque token's expiry is only an estimate (issued_at + the
                // stored session timeout, which may be longer than the org's real
                // one). Capped by a lifetime seen before, it keeps the usual pace,
                // confirmed by the next check; with no lifetime seen yet, learn the
                // exact one at once (one introspection per watch).
                let next = next_due(&w.org, w.expiry.as_ref(), now, &p);
                w.due = match &w.expiry {
                    Some(e) if e.source != Source::Estimate => next,
                    Some(_) if w.lifetime.is_some() => next.min(plus(now, p.min_check)),
                    _ => plus(now, min_gap()),
                };
                let mut m = if by_other {
                    format!(
                        "another sfx process refreshed it: {}",
                        expiry_text(w.expiry.as_ref(), now)
                    )
                } else {
                    format!(
                        "new access token, {}; {}",
                        expiry_text(w.expiry.as_ref(), now),
                        reason_text(reason, old, now, &p)
                    )
                };
                if rotated_env {
                    m.push_str("; Salesforce rotated the refresh token, so the one in the environment is now dead and this process holds the only live one");
                }
                self.emit(idx, Kind::Refreshed, m, false);
            }
            Outcome::Gone => {
                self.orgs[idx].needs_login = true;
                let name = self.orgs[idx].org.name().to_string();
                self.emit(
                    idx,
                    Kind::Error,
                    format!("org {name} is no longer stored (logged out?); stopped watching it"),
                    true,
                );
            }
            Outcome::Failed(err) => self.failed(idx, err, now),
        }
    }

    fn failed(&mut self, idx: usize, err: Error, now: DateTime<Utc>) {
        let p = self.pace;
        if let Error::Relogin { message, hint } = &err {
            self.orgs[idx].needs_login = true;
            let hint = hint
                .clone()
                .unwrap_or_else(|| relogin_hint(&self.orgs[idx].org));
            self.emit(
                idx,
                Kind::Error,
                format!("{message}; stopped watching this org: {hint}"),
                true,
            );
            return;
        }
        let w = &mut self.orgs[idx];
        w.failures = w.failures.saturating_add(1);
        let delay = retry_delay(w.failures, w.exp().map(|e| e - now), &p, jitter());
        w.due = plus(now, delay);
        let retry = humanize(delay.to_std().unwrap_or_default());
        let exp = w.exp();
        let in_window = w
            .expiry
            .as_ref()
            .and_then(|e| refresh_at(e, &p))
            .is_some_and(|a| a <= now);
        self.emit(
            idx,
            Kind::Error,
            format!(
                "{}; trying again in {retry}",
                err.to_string().trim_end_matches('.')
            ),
            false,
        );
        let w = &mut self.orgs[idx];
        match exp {
            Some(e) if e <= now && !w.warned_expired => {
                w.warned_expired = true;
                let m = format!(
                    "the access token {} and could not be refreshed yet",
                    crate::timefmt::expiry_phrase(e, now)
                );
                self.emit(idx, Kind::Expired, m, false);
            }
            Some(e) if e > now && in_window && !w.warned_expiring => {
                w.warned_expiring = true;
                let m = format!(
                    "the access token {} and could not be refreshed yet",
                    crate::timefmt::expiry_phrase(e, now)
                );
                self.emit(idx, Kind::Expiring, m, false);
            }
            _ => {}
        }
    }

    /// Pick up what changed in the store: orgs logged in again after needing a
    /// login, and (with `--all`) orgs added since the watch began. One `stat` per
    /// wake-up; the file is read only when it changed.
    fn rescan(&mut self, now: DateTime<Utc>) {
        if self.ctx.env_org.is_some() {
            return;
        }
        // The local store's parse is shared (an `Arc`, issue #16): borrowed, not copied.
        let local;
        let meta: std::borrow::Cow<
            '_,
            std::collections::BTreeMap<String, crate::store::metadata::OrgRecord>,
        > = if self.ctx.shared.is_some() {
            // At most one listing per shortest pause.
            if self
                .shared_scan
                .is_some_and(|at| now < at + self.pace.min_check)
            {
                return;
            }
            self.shared_scan = Some(now);
            let Ok(listing) = self.ctx.orgs().list() else {
                return;
            };
            std::borrow::Cow::Owned(
                listing
                    .orgs
                    .into_iter()
                    .map(|o| (o.record.alias.clone(), o.record))
                    .collect(),
            )
        } else {
            let stamp = std::fs::metadata(self.ctx.store.metadata_path())
                .and_then(|m| m.modified())
                .ok();
            if stamp == self.store_stamp {
                return;
            }
            self.store_stamp = stamp;
            let Ok(meta) = self.ctx.store.read() else {
                return;
            };
            local = meta;
            std::borrow::Cow::Borrowed(&local.orgs)
        };
        for w in self.orgs.iter_mut().filter(|w| w.needs_login && !w.busy) {
            if let Some(rec) = meta.get(w.org.name())
                && (rec.access_token_masked != w.org.record.access_token_masked
                    || rec.refresh_token_used_at != w.org.record.refresh_token_used_at)
            {
                *w = Watched::new(
                    Org {
                        record: rec.clone(),
                        env: None,
                    },
                    now,
                );
                feed::report(w, false);
            }
        }
        if self.all {
            // A set, not a scan per stored org: 10,000 orgs made that 10^8 compares.
            let known: std::collections::HashSet<String> =
                self.orgs.iter().map(|w| w.org.name().to_string()).collect();
            for rec in meta.values() {
                if !known.contains(&rec.alias) {
                    self.orgs.push(Watched::new(
                        Org {
                            record: rec.clone(),
                            env: None,
                        },
                        now,
                    ));
                    self.orgs.last().inspect(|w| feed::report(w, false));
                }
            }
        }
    }

    fn rows(&self, now: DateTime<Utc>) -> Vec<Row> {
        self.orgs.iter().map(|w| w.row(now, &self.pace)).collect()
    }

    fn busy(&self) -> Vec<&str> {
        self.orgs
            .iter()
            .filter(|w| w.busy)
            .map(|w| w.org.name())
            .collect()
    }

    /// How long to sleep: until the earliest due org, the next frame of the live
    /// table, or [`MAX_SLEEP`].
    fn wait(&self, now: DateTime<Utc>) -> Duration {
        let mut wait = MAX_SLEEP;
        // With the queue full, a finished request wakes the loop, not a due org.
        if self.orgs.iter().filter(|w| w.busy).count() < MAX_QUEUED {
            for w in self.orgs.iter().filter(|w| !w.busy && !w.needs_login) {
                wait = wait.min((w.due - now).to_std().unwrap_or(Duration::ZERO));
            }
        }
        if let Some(t) = self.printer.next_draw() {
            wait = wait.min(t.saturating_duration_since(Instant::now()));
        }
        wait
    }
}

pub fn run(args: &WatchArgs, ctx: Arc<Context>) -> Result<Exit, Error> {
    // Before anything else: a busy or invalid --listen address is a usage error.
    let _listener = args.listen.map(crate::metrics::serve).transpose()?;
    let started = ctx.now();
    let pace = Pace::new(args, started);
    let orgs = if args.all {
        ctx.all_orgs()?
    } else {
        vec![ctx.org()?]
    };
    if orgs.is_empty() {
        return Err(Error::relogin(
            "no org is stored, so there is nothing to watch",
            "run `sfx login` (e.g. `sfx login --auth-url - < auth-url.txt`), or set SFX_AUTH_URL",
        ));
    }

    let (tx, rx) = mpsc::channel::<Msg>();
    listen_for_signals(tx.clone())?;
    let (job_tx, job_rx) = mpsc::channel::<Task>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    // One org needs one worker; `--all` may gain orgs while it runs.
    let workers = if args.all { WORKERS } else { 1 };
    for i in 0..workers {
        let (ctx, jobs, tx) = (ctx.clone(), job_rx.clone(), tx.clone());
        std::thread::Builder::new()
            .name(format!("sfx-watch-{i}"))
            .spawn(move || worker(ctx, jobs, tx, pace))
            .map_err(|e| Error::Other(format!("cannot start a worker thread: {e}")))?;
    }
    let hooks = args.exec.clone().map(|cmd| {
        let tx = Mutex::new(tx.clone());
        Hooks::new(cmd, args.exec_timeout, move |idx, why| {
            let tx = tx.lock().unwrap_or_else(|e| e.into_inner());
            let _ = tx.send(Msg::ExecFailed(idx, why));
        })
    });
    if ctx.mode != crate::output::Mode::Quiet {
        watch_stdout(tx.clone());
    }
    drop(tx);

    let header = format!(
        "sfx watch: refresh {} before expiry, keep-alive {}{}; Ctrl-C stops",
        humanize(args.refresh_before),
        humanize(args.keepalive),
        if args.exec.is_some() {
            ", --exec after each refresh"
        } else {
            ""
        }
    );
    let mut s = Scheduler {
        printer: Printer::new(ctx.mode, ctx.style, header),
        store_stamp: std::fs::metadata(ctx.store.metadata_path())
            .and_then(|m| m.modified())
            .ok(),
        shared_scan: Some(started),
        orgs: orgs.into_iter().map(|o| Watched::new(o, started)).collect(),
        ctx,
        pace,
        all: args.all,
        jobs: job_tx,
        hooks,
        closed: false,
    };
    // Many orgs: spread their first checks (see feed::spread).
    let latest: Vec<_> = s
        .orgs
        .iter()
        .map(|w| {
            refresh_reason(&w.org, w.expiry.as_ref(), w.has_token, started, &pace)
                .is_none()
                .then(|| next_due(&w.org, w.expiry.as_ref(), started, &pace))
        })
        .collect();
    let first = feed::spread(started, &latest, feed::STARTUP_CHECKS_PER_SEC);
    for (w, due) in s.orgs.iter_mut().zip(first) {
        w.due = due;
        feed::report(w, false);
    }

    // Introspection results reach the metadata in batches (see cache.rs).
    let mut cache = cache::Cache::new();
    let mut stop: Option<Exit> = None;
    let outcome = loop {
        let now = s.ctx.now();
        if stop.is_none() && s.closed {
            stop = Some(Exit::Ok);
        }
        if stop.is_none() {
            s.rescan(now);
            s.dispatch(now);
            cache.tick(&s.ctx);
        }
        let busy = !s.busy().is_empty();
        if let Some(code) = stop
            && !busy
        {
            break Ok(code);
        }
        if stop.is_none() && !busy && s.orgs.iter().all(|w| w.needs_login) {
            break Err(all_need_login(&s.orgs));
        }
        if !s.closed && s.printer.draw(&s.rows(now), now).is_err() {
            s.closed = true;
            continue;
        }
        let wait = if stop.is_some() {
            MAX_SLEEP
        } else {
            s.wait(now).min(cache.due_in().unwrap_or(MAX_SLEEP))
        };
        feed::heartbeat(wait);
        match rx.recv_timeout(wait) {
            Ok(Msg::Signal(code)) => {
                if stop.is_some() {
                    // A second signal: stop now, whatever is in flight.
                    if let Some(h) = &s.hooks {
                        h.stop(Duration::ZERO);
                    }
                    break Ok(code);
                }
                stop = Some(code);
                let busy = s.busy();
                if !busy.is_empty() {
                    let _ = std::io::Write::write_fmt(
                        &mut std::io::stderr(),
                        format_args!(
                            "sfx: stopping once the request in flight for {} is done (signal again to stop at once)\n",
                            busy.join(", ")
                        ),
                    );
                }
            }
            Ok(Msg::Done(idx, outcome, h)) => {
                let gone = matches!(*outcome, Outcome::Gone);
                if let Outcome::Checked { org, expiry, .. } = &*outcome {
                    cache.add(org, expiry);
                }
                s.handle(idx, *outcome);
                feed::report(&s.orgs[idx], gone);
                if let (Some(hooks), Some(h)) = (&s.hooks, h) {
                    hooks.submit(idx, h);
                }
            }
            Ok(Msg::ExecFailed(idx, why)) => {
                feed::exec_failed(s.orgs[idx].org.name());
                s.emit(idx, Kind::Error, why, false);
            }
            Ok(Msg::StdoutClosed) => s.closed = true,
            Err(RecvTimeoutError::Timeout) => {}
            // Cannot happen while workers hold senders; stop rather than spin.
            Err(RecvTimeoutError::Disconnected) => break Ok(stop.unwrap_or(Exit::Error)),
        }
    };
    // Hooks still running get a short grace, then are killed with their groups.
    if let Some(h) = &s.hooks {
        h.stop(HOOK_GRACE);
    }
    cache.finish(&s.ctx);
    let now = s.ctx.now();
    if !s.closed {
        let rows = s.rows(now);
        s.printer.finish(&rows, now);
    }
    outcome
}

fn all_need_login(orgs: &[Watched]) -> Error {
    let names: Vec<&str> = orgs.iter().map(|w| w.org.name()).collect();
    let hint = match orgs {
        [one] => relogin_hint(&one.org),
        _ => "log in again (`sfx login --alias <ALIAS> …`), then start sfx watch again".to_string(),
    };
    Error::Relogin {
        message: format!(
            "no watched org can be kept fresh any more: {} need{} a new login",
            names.join(", "),
            if names.len() == 1 { "s" } else { "" }
        ),
        hint: Some(hint),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::metadata::{Flow, OrgRecord, StoreKind};

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_290_000 + s, 0).unwrap()
    }

    fn pace() -> Pace {
        Pace {
            refresh_before: chrono::Duration::minutes(10),
            keepalive: chrono::Duration::hours(24),
            min_check: chrono::Duration::seconds(30),
            max_check: chrono::Duration::minutes(15),
            started: t(0),
        }
    }

    fn org(used: Option<i64>) -> Org {
        Org {
            record: OrgRecord {
                alias: "prod".into(),
                username: None,
                org_id: None,
                user_id: None,
                instance_url: "https://a.example.com".into(),
                login_url: None,
                client_id: Some("id".into()),
                flow: Flow::AuthUrl,
                store: StoreKind::File,
                issued_at: Some(t(0).timestamp()),
                session_timeout_secs: 7200,
                expiry: None,
                access_token_masked: Some("00D…abcd".into()),
                has_refresh_token: true,
                has_client_secret: false,
                refresh_token_used_at: used.map(|u| t(u).timestamp()),
                rotates_refresh_token: false,
                key_file: None,
                api_version: None,
                sf_link: None,
            },
            env: None,
        }
    }

    fn exp(iat: i64, exp: i64) -> Expiry {
        Expiry {
            active: true,
            exp: Some(t(exp)),
            iat: Some(t(iat)),
            source: Source::Introspection,
            checked_at: None,
            note: None,
        }
    }

    #[test]
    fn a_two_hour_session_costs_a_handful_of_checks_then_one_refresh() {
        let p = pace();
        let o = org(Some(0));
        let e = exp(0, 7200);
        let mut now = t(0);
        let mut checks = 0;
        let at = refresh_at(&e, &p).unwrap();
        while refresh_reason(&o, Some(&e), true, now, &p).is_none() {
            let due = next_due(&o, Some(&e), now, &p);
            assert!(due - now >= p.min_check || due == at, "{now} → {due}");
            assert!(due - now <= p.max_check);
            now = due;
            checks += 1;
            assert!(checks < 50, "runaway schedule");
        }
        // Refresh 10 minutes ahead to the second, after about eleven checks in 110 minutes.
        assert_eq!(now, t(7200 - 600));
        assert!((8..=13).contains(&checks), "{checks}");
        assert_eq!(
            refresh_reason(&o, Some(&e), true, now, &p),
            Some(Reason::Expiring)
        );
    }

    #[test]
    fn a_window_longer_than_the_session_refreshes_half_way_not_in_a_loop() {
        let p = Pace {
            refresh_before: chrono::Duration::hours(3),
            ..pace()
        };
        let e = exp(0, 7200);
        assert_eq!(refresh_at(&e, &p), Some(t(3600)));
        assert_eq!(
            refresh_reason(&org(Some(0)), Some(&e), true, t(10), &p),
            None
        );
    }

    #[test]
    fn keepalive_refreshes_an_idle_refresh_token_and_bounds_the_sleep() {
        let p = pace();
        let e = exp(86_000, 86_000 + 7200);
        let o = org(Some(0));
        assert_eq!(
            refresh_reason(&o, Some(&e), true, t(86_400), &p),
            Some(Reason::Keepalive)
        );
        // The keep-alive point is kept exactly; the 30 s check floor does not push it.
        assert_eq!(next_due(&o, Some(&e), t(86_390), &p), t(86_400));
        // No refresh token: no keep-alive.
        let mut no_rt = org(None);
        no_rt.record.has_refresh_token = false;
        assert_eq!(refresh_reason(&no_rt, Some(&e), true, t(86_400), &p), None);
    }

    #[test]
    fn dead_unknown_and_missing_tokens_refresh_at_once() {
        let p = pace();
        let o = org(Some(0));
        let dead = Expiry {
            active: false,
            exp: None,
            ..exp(0, 7200)
        };
        assert_eq!(
            refresh_reason(&o, Some(&dead), true, t(1), &p),
            Some(Reason::Dead)
        );
        assert_eq!(
            refresh_reason(&o, None, true, t(1), &p),
            Some(Reason::Unknown)
        );
        assert_eq!(
            refresh_reason(&o, Some(&exp(0, 7200)), false, t(1), &p),
            Some(Reason::NoToken)
        );
    }

    fn secs(s: i64) -> chrono::Duration {
        chrono::Duration::seconds(s)
    }

    #[test]
    fn the_refresh_point_is_inside_the_window_whatever_the_lifetime() {
        // (lifetime, --refresh-before) → seconds before expiry that the refresh falls.
        let cases = [
            (4, 5, 2),              // a window longer than the whole session: half-way
            (8, 5, 4),              // longer than half the session: half-way
            (8, 3, 3),              // a short session, a shorter window: the window
            (60, 10, 10),           // one minute
            (7200, 600, 600),       // the usual two hours, the default window
            (7200, 3 * 3600, 3600), // a window of 3 h on a 2 h session: half-way
            (86_400 * 3, 600, 600), // days
            (86_400 * 3, 86_400 * 5, 86_400 * 3 / 2),
        ];
        for (life, before, expect) in cases {
            let p = Pace {
                refresh_before: secs(before),
                ..pace()
            };
            let e = exp(0, life);
            let at = refresh_at(&e, &p).unwrap();
            assert_eq!(
                t(life) - at,
                secs(expect),
                "lifetime {life}s, window {before}s"
            );
            assert!(at > t(0) && at < t(life));
        }
    }

    #[test]
    fn the_check_floor_never_postpones_a_refresh_or_keepalive_point() {
        // (lifetime, --refresh-before, now, keep-alive) → next action, seconds from the start.
        let p = pace(); // 30 s floor, 15 min ceiling on the pause between checks
        let cases = [
            // 8 s session, 5 s window: the refresh at 4 s, not a check at 30 s.
            (8, 5, 0, 86_400, 4),
            (8, 5, 3, 86_400, 4),
            // Past the refresh point already: no sooner than the one-second gap.
            (8, 5, 4, 86_400, 5),
            (8, 5, 7, 86_400, 8),
            // One minute, 10 s window: the refresh point at 50 s beats a check at 30 s.
            (60, 10, 0, 86_400, 30),
            (60, 10, 30, 86_400, 50),
            // Two hours: half the run-up, at most 15 min.
            (7200, 600, 0, 86_400, 900),
            (7200, 600, 6000, 86_400, 6300),
            (7200, 600, 6580, 86_400, 6600),
            // A keep-alive point 2 s off comes first, floor or not.
            (7200, 600, 0, 2, 2),
            (8, 5, 0, 2, 2),
        ];
        for (life, before, now, keep, expect) in cases {
            let p = Pace {
                refresh_before: secs(before),
                keepalive: secs(keep),
                ..p
            };
            let due = next_due(&org(Some(0)), Some(&exp(0, life)), t(now), &p);
            assert_eq!(
                due,
                t(expect),
                "lifetime {life}s, window {before}s, now {now}s, keep-alive {keep}s"
            );
        }
    }

    #[test]
    fn retries_back_off_but_fit_before_expiry() {
        let p = pace();
        // (failures, seconds the token has left, delay in ms, spread by jitter?)
        let cases: [(u32, Option<i64>, i64, bool); 13] = [
            (1, None, 30_000, true),
            (2, None, 60_000, true),
            (3, None, 120_000, true),
            (4, None, 240_000, true),
            (5, None, 300_000, true),
            (20, None, 300_000, true),
            (1, Some(-5), 30_000, true),    // expired: the plain back-off
            (3, Some(600), 120_000, true),  // plenty of time: the plain back-off
            (5, Some(400), 200_000, false), // capped by half the time left
            (1, Some(8), 4_000, false),     // an 8 s session: a try at 4 s left…
            (1, Some(3), 1_500, false),     // …at 1.5 s left…
            (1, Some(1), 1_000, false),     // …never under a second
            (u32::MAX, Some(1), 1_000, false),
        ];
        for (n, left, ms, spread) in cases {
            let (lo, hi) = if spread {
                (ms * 3 / 4, ms * 5 / 4)
            } else {
                (ms, ms)
            };
            for jitter in [0.0, 0.5, 1.0] {
                let d = retry_delay(n, left.map(secs), &p, jitter).num_milliseconds();
                assert!(
                    d >= lo && d <= hi,
                    "{n} failures, {left:?} s left, jitter {jitter}: {d} ms"
                );
            }
        }
        // The middle of the jitter is the base.
        assert_eq!(retry_delay(2, None, &p, 0.5), secs(60));
    }

    #[test]
    fn a_seen_lifetime_caps_an_estimated_expiry_only() {
        let est = Expiry {
            source: Source::Estimate,
            ..exp(100, 100 + 7200)
        };
        let capped = assume_lifetime(est.clone(), Some(secs(8)));
        assert_eq!(capped.exp, Some(t(108)));
        // A longer lifetime, no lifetime, or an exact expiry: unchanged.
        assert_eq!(
            assume_lifetime(est.clone(), Some(secs(9000))).exp,
            Some(t(7300))
        );
        assert_eq!(assume_lifetime(est, None).exp, Some(t(7300)));
        assert_eq!(
            assume_lifetime(exp(100, 7300), Some(secs(8))).exp,
            Some(t(7300))
        );
        // Lifetimes come from exact answers only.
        assert_eq!(lifetime_of(&exp(100, 108)), Some(secs(8)));
        let est = Expiry {
            source: Source::Estimate,
            ..exp(0, 8)
        };
        assert_eq!(lifetime_of(&est), None);
    }

    #[test]
    fn huge_durations_do_not_overflow_the_calendar() {
        let p = Pace {
            keepalive: span(Duration::from_secs(u64::MAX / 4)),
            refresh_before: span(Duration::from_secs(u64::MAX / 4)),
            ..pace()
        };
        let o = org(Some(0));
        let _ = refresh_reason(&o, Some(&exp(0, 7200)), true, t(1), &p);
        let _ = next_due(&o, Some(&exp(0, 7200)), t(1), &p);
        let _ = retry_delay(u32::MAX, Some(chrono::Duration::MAX), &p, 1.0);
        let _ = assume_lifetime(exp(0, 7200), Some(chrono::Duration::MAX));
    }
}
