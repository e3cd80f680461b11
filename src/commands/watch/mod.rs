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
//! Files: this one is the loop ([`run`]); `scheduler.rs` the scheduler's state and
//! decisions; `schedule.rs` the pace (pure
//! functions, unit-tested there), `worker.rs` the worker threads, `signals.rs`
//! the signal and closed-stdout threads, `render.rs` the words of events,
//! `exec.rs` the `--exec` hooks, `cache.rs` the batched introspection results,
//! `feed.rs` what `--listen`'s metrics are told.
//!
//! Pace, per org (the pure functions `refresh_at`, `next_due` and
//! `retry_delay` in `schedule.rs`): refresh when the access token's
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
//! a watch of one org exits 4, while `--all` (a daemon) says so and looks for a
//! login every second (`IDLE_RESCAN`) — as it does on an empty store. Nothing is done
//! to one org more than once a second.

mod cache;
mod exec;
mod feed;
mod render;
mod schedule;
mod scheduler;
mod serve;
mod signals;
#[cfg(test)]
mod tests;
mod worker;

use exec::{Handoff, Hooks};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};

use crate::cli::WatchArgs;
use crate::clock;
use crate::context::{Context, Org};
use crate::error::Error;
use crate::exit::Exit;
use crate::lifecycle::expiry::{self, Expiry, Source};
use crate::lifecycle::{refresh, relogin_hint};
use crate::output::events::{Event, Kind, Printer, Row};
use crate::secret::Secret;
use crate::store::SecretKind;
use crate::timefmt::humanize;
use render::*;
use schedule::*;
use scheduler::*;
use signals::*;
use worker::*;

/// Requests in flight at once, whatever the number of orgs.
const WORKERS: usize = 4;
/// Orgs handed to the workers and not yet done, at most: the rest stay due in
/// the scheduler, so a stop waits for a few requests, not for every due org of
/// ten thousand (issue #16).
const MAX_QUEUED: usize = 2 * WORKERS;
/// The longest single sleep. The channel's timeout runs on the monotonic clock,
/// which stands still while the machine is suspended: waking this often notices
/// a resume (and a changed wall clock) within a minute.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// How long a stopping watch waits for running `--exec` hooks before killing them.
const HOOK_GRACE: Duration = Duration::from_secs(2);
/// How often `--all` looks for a login while no org is watchable (an empty
/// store, or every org needing a login): one `stat` of the metadata file (a
/// shared store is listed at most once per `--min-check`), so a daemon started
/// on a fresh machine picks up the first login within a second or two.
const IDLE_RESCAN: Duration = Duration::from_secs(1);

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

pub fn run(args: &WatchArgs, ctx: Arc<Context>) -> Result<Exit, Error> {
    // Before anything else: a busy or invalid --listen address is a usage error.
    let _listener = args
        .listen
        .map(|a| crate::metrics::serve(a, ctx.clock_handle()))
        .transpose()?;
    let orgs = if args.all {
        ctx.all_orgs()?
    } else {
        vec![ctx.org()?]
    };
    // `--all` is a daemon (contract: "`sfx watch`"): an empty store is not the
    // end, it waits for the first login (the loop below says so).
    run_with(args, ctx, orgs, Seams::real())
}

/// The watch of `orgs`; every wait and reading of time on `ctx`'s clock.
fn run_with(
    args: &WatchArgs,
    ctx: Arc<Context>,
    orgs: Vec<Org>,
    mut seams: Seams,
) -> Result<Exit, Error> {
    let started = ctx.now();
    let pace = Pace::new(args, started);
    let (tx, rx) = mpsc::channel::<Msg>();
    if seams.signals {
        listen_for_signals(tx.clone())?;
    }
    let (job_tx, job_rx) = mpsc::channel::<Task>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    // One org needs one worker; `--all` may gain orgs while it runs.
    let workers = if args.all { WORKERS } else { 1 };
    for i in 0..workers {
        let (ctx, jobs, tx) = (ctx.clone(), job_rx.clone(), tx.clone());
        let work = seams.work.clone();
        std::thread::Builder::new()
            .name(format!("sfx-watch-{i}"))
            .spawn(move || worker(ctx, jobs, tx, pace, work))
            .map_err(|e| Error::Other(format!("cannot start a worker thread: {e}")))?;
    }
    let hooks = args.exec.clone().map(|cmd| {
        let tx = Mutex::new(tx.clone());
        Hooks::new(
            cmd,
            args.exec_timeout,
            ctx.clock_handle(),
            move |idx, why| {
                let tx = tx.lock().unwrap_or_else(|e| e.into_inner());
                let _ = tx.send(Msg::ExecFailed(idx, why));
            },
        )
    });
    if ctx.mode != crate::output::Mode::Quiet {
        watch_stdout(tx.clone());
    }
    // A shared store: serve readers' requests for a fresher token (issue #20).
    let serving = serve::start(&ctx, &orgs, args.all, &tx)?;
    drop(tx);

    // At most 79 columns with the defaults: the live table's first line.
    let header = format!(
        "sfx watch: refresh {} before expiry, keep-alive {}{}; Ctrl-C stops",
        crate::timefmt::flag_duration(args.refresh_before),
        crate::timefmt::flag_duration(args.keepalive),
        if args.exec.is_some() {
            ", then --exec"
        } else {
            ""
        }
    );
    let mut s = Scheduler {
        printer: Printer::new(ctx.mode, ctx.style, header, ctx.clock_handle()),
        store_stamp: {
            let mut seen = None;
            ctx.orgs().changed_since(&mut seen);
            seen
        },
        shared_scan: Some(started),
        orgs: orgs.into_iter().map(|o| Watched::new(o, started)).collect(),
        ctx,
        pace,
        all: args.all,
        jobs: job_tx,
        hooks,
        closed: false,
        idle_said: false,
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
    let mut cache = cache::Cache::new(s.ctx.clock_handle());
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
        if stop.is_some() {
            serving.stop();
        }
        let busy = !s.busy().is_empty() || serving.in_flight() > 0;
        if let Some(code) = stop
            && !busy
        {
            break Ok(code);
        }
        if stop.is_none() && !busy && s.orgs.iter().all(|w| w.needs_login) {
            // One org (`sfx watch`, `-o ORG`) is a script's tool: exit 4. `--all`
            // is a daemon: it says so once and waits for a login.
            if !s.all {
                break Err(all_need_login(&s.orgs));
            }
            if !s.idle_said {
                s.idle_said = true;
                crate::messages::say(&nothing_watchable(&s.orgs));
            }
        } else if s.orgs.iter().any(|w| !w.needs_login) {
            s.idle_said = false;
        }
        if !s.closed && s.printer.wants_frame() && s.printer.draw(&s.rows(now), now).is_err() {
            s.closed = true;
            continue;
        }
        if let Some(f) = &mut seams.on_pass
            && f(&s)
            && stop.is_none()
        {
            stop = Some(Exit::Ok);
            continue;
        }
        let wait = if stop.is_some() {
            MAX_SLEEP
        } else if s.idle_said {
            IDLE_RESCAN
        } else {
            s.wait(now).min(cache.due_in().unwrap_or(MAX_SLEEP))
        };
        feed::heartbeat(wait);
        let clock = s.ctx.clock();
        let got = if busy && !clock.waits_are_real() {
            // A fake clock (tests in process): its time passes only while no
            // request is in flight, so an answer arrives at the instant its
            // request was made, however long it took in real time.
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            clock::recv_timeout(clock, &rx, wait)
        };
        match got {
            Ok(Msg::Signal(code)) => {
                if stop.is_some() {
                    // A second signal: stop now, whatever is in flight.
                    if let Some(h) = &s.hooks {
                        h.stop(Duration::ZERO);
                    }
                    let busy = s.busy();
                    if !busy.is_empty() {
                        // Not a clean stop (issue #24): a refresh was abandoned.
                        crate::messages::warning(&format!(
                            "stopped at once: the request in flight for {} was abandoned and its outcome is unknown (a rotating refresh is checked before its token is sent again)",
                            busy.join(", ")
                        ));
                        break Ok(Exit::Interrupted);
                    }
                    break Ok(code);
                }
                stop = Some(code);
                let busy = s.busy();
                if !busy.is_empty() {
                    crate::messages::say(&format!(
                        "stopping once the request in flight for {} is done (signal again to stop at once)",
                        busy.join(", ")
                    ));
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
            Ok(Msg::Served(alias, answer, n)) => s.served(&alias, answer, n),
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
