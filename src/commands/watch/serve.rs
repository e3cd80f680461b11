//! A watching refresher serves readers (issue #20): besides its schedule, a
//! `sfx watch` on a shared store with the refresher key reads the readers'
//! requests for a fresher token (one blocking read for every watched org, see
//! `store::shared::ask`) and answers each org's within a second or two, with at
//! most one refresh however many readers ask at once.
//!
//! Threads: one reads the requests and queues them by org; [`SERVERS`] serve
//! them, each taking one org with everything queued for it. An org is served by
//! one thread at a time, and requests that arrive while it is served wait for
//! that answer and are judged against the token it stored — so 30 readers racing
//! on an expired token cost one refresh. A refresh happens under the org's lease
//! (as every refresh), so a scheduled refresh or another host's watch in the
//! same moment is not repeated either: the token it stored answers the requests.

use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, Mutex};

#[allow(unused_imports)]
use super::*;
use crate::clock::Clock;
use crate::metrics::{self, Served};
use crate::store::{Answer, OrgStore, Request, ServesReaders};

/// Orgs served at once.
const SERVERS: usize = 4;
/// The longest a read of requests blocks (the org list is refreshed between reads).
const READ_BLOCK: Duration = Duration::from_secs(1);
/// How often `--all` looks for orgs added to the store.
const RELIST: Duration = Duration::from_secs(5);

/// The shortest time between two refreshes of one org that requests cause (as
/// the schedule's "nothing is done to one org more than once a second"): a
/// reader, who may write requests, cannot make a refresher hammer Salesforce.
const REQUESTED_REFRESH_GAP: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Queue {
    pending: HashMap<String, Vec<Request>>,
    busy: HashSet<String>,
    /// When requests last caused a refresh of each org, or an attempt that failed.
    refreshed: HashMap<String, Instant>,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

/// The scheduler's handle on the serve threads: a stopping watch serves no
/// new org and waits for those being served (a refresh is never abandoned
/// half-way by a clean stop).
#[derive(Clone, Default)]
pub(super) struct Serving(Option<Arc<Shared>>, Arc<std::sync::atomic::AtomicBool>);

impl Serving {
    /// Orgs being served right now.
    pub(super) fn in_flight(&self) -> usize {
        self.0.as_ref().map_or(0, |s| {
            s.queue.lock().unwrap_or_else(|p| p.into_inner()).busy.len()
        })
    }

    pub(super) fn stop(&self) {
        self.1.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn stopping(&self) -> bool {
        self.1.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// On a shared store with the refresher key (a reader key cannot refresh),
/// start serving readers for `orgs` (and, with `all`, every org stored later).
/// The threads run until the process ends. Each answer is also sent to the
/// scheduler (`Msg::Served`), which shows it and re-reads the org.
pub(super) fn start(
    ctx: &Arc<Context>,
    orgs: &[Org],
    all: bool,
    tx: &Sender<Msg>,
) -> Result<Serving, Error> {
    if ctx.orgs().serves_readers().is_none() {
        return Ok(Serving::default());
    }
    let aliases: Vec<String> = orgs.iter().map(|o| o.name().to_string()).collect();
    let state = Arc::new(Shared {
        queue: Mutex::new(Queue::default()),
        ready: Condvar::new(),
    });
    let serving = Serving(Some(state.clone()), Default::default());
    for i in 0..SERVERS {
        let (ctx, state, tx, serving) = (ctx.clone(), state.clone(), tx.clone(), serving.clone());
        std::thread::Builder::new()
            .name(format!("sfx-serve-{i}"))
            .spawn(move || server(&ctx, &state, &tx, &serving))
            .map_err(|e| Error::Other(format!("cannot start a thread: {e}")))?;
    }
    let ctx = ctx.clone();
    std::thread::Builder::new()
        .name("sfx-requests".into())
        .spawn(move || {
            if let Some(shared) = ctx.orgs().serves_readers() {
                reader_loop(ctx.orgs(), shared, aliases, all, &state, ctx.clock());
            }
        })
        .map_err(|e| Error::Other(format!("cannot start a thread: {e}")))?;
    Ok(serving)
}

fn reader_loop(
    store: &dyn OrgStore,
    shared: &dyn ServesReaders,
    aliases: Vec<String>,
    all: bool,
    state: &Shared,
    clock: &dyn Clock,
) {
    let mut from: HashMap<String, String> = HashMap::new();
    let mut listed: Option<Instant> = None;
    let mut said = false;
    let mut wanted = aliases;
    loop {
        if all
            && listed.is_none_or(|t| clock.instant().saturating_duration_since(t) >= RELIST)
            && let Ok(listing) = store.list()
        {
            wanted = listing.orgs.into_iter().map(|o| o.record.alias).collect();
            listed = Some(clock.instant());
        }
        let new: Vec<&String> = wanted.iter().filter(|a| !from.contains_key(*a)).collect();
        if !new.is_empty() {
            match shared.requests_since_backlog() {
                Ok(base) => {
                    for a in new {
                        from.insert(a.clone(), base.clone());
                    }
                }
                Err(e) => {
                    trouble(&mut said, &e);
                    clock.sleep(READ_BLOCK);
                    continue;
                }
            }
        }
        if all {
            from.retain(|a, _| wanted.contains(a));
        }
        // A blocking read at the server (XREAD BLOCK): real time, as it bounds a
        // socket read; only the pauses around it are the watch's clock.
        match shared.read_requests(&mut from, READ_BLOCK) {
            Ok(reqs) => {
                said = false;
                if reqs.is_empty() {
                    continue;
                }
                let mut q = state.queue.lock().unwrap_or_else(|p| p.into_inner());
                for r in reqs {
                    q.pending.entry(r.alias.clone()).or_default().push(r);
                }
                state.ready.notify_all();
            }
            Err(e) => {
                trouble(&mut said, &e);
                clock.sleep(READ_BLOCK);
            }
        }
    }
}

/// The store failed: said once until it works again.
fn trouble(said: &mut bool, e: &Error) {
    if !*said {
        *said = true;
        crate::messages::warning(&format!(
            "cannot read readers' requests: {}; trying again every second",
            e.to_string().trim_end_matches('.')
        ));
    }
}

fn server(ctx: &Context, state: &Shared, tx: &Sender<Msg>, serving: &Serving) {
    loop {
        let (alias, reqs) = {
            let mut q = state.queue.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if serving.stopping() {
                    // Readers still waiting time out (exit 5) or another refresher answers.
                    q = state.ready.wait(q).unwrap_or_else(|p| p.into_inner());
                    continue;
                }
                let next = q.pending.keys().find(|a| !q.busy.contains(*a)).cloned();
                if let Some(a) = next {
                    let reqs = q.pending.remove(&a).unwrap_or_default();
                    q.busy.insert(a.clone());
                    break (a, reqs);
                }
                q = state.ready.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        let last = state
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .refreshed
            .get(&alias)
            .copied();
        let answer = answer(ctx, &alias, &reqs, last).unwrap_or_else(|e| Answer::Failed {
            relogin: matches!(e, Error::Relogin { .. }),
            message: e.to_string(),
        });
        if let Some(shared) = ctx.orgs().serves_readers()
            && let Err(e) = shared.notify(&alias, &answer)
        {
            crate::messages::warning(&format!(
                "cannot tell readers of org {alias} the answer: {}",
                e.to_string().trim_end_matches('.')
            ));
        }
        let result = match &answer {
            Answer::Refreshed => Served::Refreshed,
            Answer::Fresh => Served::Fresh,
            Answer::Failed { .. } => Served::Failed,
        };
        let now_ms = u64::try_from(ctx.now().timestamp_millis()).unwrap_or(0);
        for r in &reqs {
            let waited = Duration::from_millis(now_ms.saturating_sub(r.made_ms()));
            metrics::reader_served(&alias, result, waited);
        }
        {
            // Done before the scheduler hears of it: a stopping watch then sees
            // nothing in flight.
            let mut q = state.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.busy.remove(&alias);
            // A failed attempt counts too: a reader's requests must not make
            // the refresher retry a failing refresh at Salesforce at once.
            if answer != Answer::Fresh {
                q.refreshed.insert(alias.clone(), ctx.clock().instant());
            }
            state.ready.notify_all();
        }
        let _ = tx.send(Msg::Served(alias.clone(), answer, reqs.len()));
    }
}

/// Answer one org's requests: a notice when the stored token satisfies them
/// all, else one refresh under the org's lease (re-judged once the lease is
/// held: another refresher may have just stored a token that does).
fn answer(
    ctx: &Context,
    alias: &str,
    reqs: &[Request],
    last: Option<Instant>,
) -> Result<Answer, Error> {
    let shared = ctx
        .orgs()
        .serves_readers()
        .ok_or_else(|| Error::Other("no shared store".into()))?;
    let gone = || {
        Error::relogin(
            format!("org {alias} is not stored (logged out?)"),
            format!("log in to it again with the refresher key: `sfx login --alias {alias} …`"),
        )
    };
    let all_satisfied =
        |exp: Option<i64>, fp: Option<&str>| reqs.iter().all(|r| r.satisfied_by(exp, fp));
    let (record, exp, fp) = shared.token_state(alias)?.ok_or_else(gone)?;
    if all_satisfied(exp, fp.as_deref()) {
        return Ok(Answer::Fresh);
    }
    let clock = ctx.clock();
    keep_the_gap(clock, last, record.issued_at);
    let org = Org { record, env: None };
    let Some((org, lock)) = ctx.locked(&org)? else {
        return Err(gone());
    };
    let (_, exp, fp) = shared.token_state(alias)?.ok_or_else(gone)?;
    if all_satisfied(exp, fp.as_deref()) {
        return Ok(Answer::Fresh);
    }
    let t0 = clock.instant();
    let r = refresh::refresh_now(ctx.orgs(), &ctx.client(), clock, &org);
    drop(lock);
    metrics::refresh_took(clock.instant().saturating_duration_since(t0));
    metrics::refreshed(
        alias,
        match &r {
            Ok(_) => crate::metrics::Refresh::Success,
            Err(Error::Relogin { .. }) => crate::metrics::Refresh::NeedsLogin,
            Err(_) => crate::metrics::Refresh::Error,
        },
    );
    r.map(|_| Answer::Refreshed)
}

/// Wait until a refresh that requests cause keeps [`REQUESTED_REFRESH_GAP`]
/// after this refresher's `last` one and after the stored token's `issued_at`.
fn keep_the_gap(clock: &dyn Clock, last: Option<Instant>, issued_at: Option<i64>) {
    if let Some(wait) = last.and_then(|t| {
        REQUESTED_REFRESH_GAP
            .checked_sub(clock.instant().saturating_duration_since(t))
            .filter(|w| !w.is_zero())
    }) {
        clock.sleep(wait);
    }
    // Another host's watch may have refreshed just now: the stored token's
    // issue time (whole seconds, so +2 s is at least 1 s after the refresh)
    // keeps the gap across refreshers too, capped at the gap for clock skew.
    if let Some(i) = issued_at {
        let now = Duration::from_millis(u64::try_from(clock.now().timestamp_millis()).unwrap_or(0));
        let after = Duration::from_secs(u64::try_from(i.saturating_add(2)).unwrap_or(0));
        if let Some(wait) = after.checked_sub(now) {
            clock.sleep(wait.min(REQUESTED_REFRESH_GAP));
        }
    }
}

impl Scheduler {
    /// A serve thread answered `n` requests for `alias`: show it, and after a
    /// refresh take the org's new token into the schedule.
    pub(super) fn served(&mut self, alias: &str, answer: Answer, n: usize) {
        let now = self.ctx.now();
        let Some(idx) = self.orgs.iter().position(|w| w.org.name() == alias) else {
            return;
        };
        let asked = if n == 1 {
            "a reader's request".to_string()
        } else {
            format!("{n} readers' requests")
        };
        match answer {
            Answer::Refreshed => {
                let p = self.pace;
                let w = &mut self.orgs[idx];
                if !w.busy
                    && let Ok(Some(org)) = worker::reread(&self.ctx, alias)
                {
                    w.org = org;
                    w.failures = 0;
                    w.needs_login = false;
                    w.new_token();
                    w.expiry =
                        expiry::offline(&w.org.record, now).map(|e| assume_lifetime(e, w.lifetime));
                    w.due =
                        next_due(&w.org, w.expiry.as_ref(), now, &p).min(plus(now, p.min_check));
                }
                let m = format!(
                    "new access token for {asked}: {}",
                    expiry_text(self.orgs[idx].expiry.as_ref(), now)
                );
                self.emit(idx, Kind::Refreshed, m, false);
            }
            Answer::Fresh => {
                let m = format!("answered {asked}: the stored access token already satisfied it");
                self.emit(idx, Kind::Checked, m, false);
            }
            Answer::Failed { message, .. } => {
                let m = format!(
                    "could not answer {asked}: {}",
                    message.trim_end_matches('.')
                );
                self.emit(idx, Kind::Error, m, false);
            }
        }
        feed::report(&self.orgs[idx], false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;

    /// A fake clock at T0 + `ms` milliseconds (wall time).
    fn at_ms(ms: i64) -> FakeClock {
        FakeClock::at(DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap())
    }

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn requested_refreshes_of_one_org_keep_a_second_apart_on_the_watch_clock() {
        // This refresher refreshed 300 ms ago; the stored token is old: 700 ms.
        let c = at_ms(0);
        let last = c.instant();
        c.advance(MS(300));
        keep_the_gap(&c, Some(last), Some(1_800_000_000 - 3600));
        assert_eq!(c.slept(), [MS(700)]);
        // A second or more ago: at once.
        let c = at_ms(0);
        let last = c.instant();
        c.advance(MS(1000));
        keep_the_gap(&c, Some(last), None);
        assert!(c.slept().is_empty());
    }

    #[test]
    fn another_refreshers_token_keeps_the_gap_by_its_issue_time_capped_for_skew() {
        // Issued in this whole second (by another host): at least a second more.
        let c = at_ms(500);
        keep_the_gap(&c, None, Some(1_800_000_000));
        assert_eq!(c.slept(), [MS(1000)]);
        // Issued in the second before, now half-way through this one: 500 ms.
        let c = at_ms(500);
        keep_the_gap(&c, None, Some(1_800_000_000 - 1));
        assert_eq!(c.slept(), [MS(500)]);
        // Long ago: at once. From the future (a skewed clock): one second at most.
        let c = at_ms(0);
        keep_the_gap(&c, None, Some(1_800_000_000 - 10));
        assert!(c.slept().is_empty());
        let c = at_ms(0);
        keep_the_gap(&c, None, Some(1_800_000_000 + 3600));
        assert_eq!(c.slept(), [MS(1000)]);
        // Both: this refresher's gap first, then what is left of the token's.
        let c = at_ms(0);
        let last = c.instant();
        c.advance(MS(200));
        keep_the_gap(&c, Some(last), Some(1_800_000_000));
        assert_eq!(c.slept(), [MS(800), MS(1000)]);
    }
}
