//! The worker threads: each takes a [`Task`] (check or refresh one org) from the
//! shared queue, makes the request through the lifecycle, and sends the
//! [`Outcome`] back to the scheduler as a [`Msg`].

#[allow(unused_imports)]
use super::*;

pub(super) enum Job {
    Check,
    Refresh(Reason),
}

pub(super) struct Task {
    pub(super) idx: usize,
    /// The org as the scheduler last knew it (env orgs: with their tokens).
    pub(super) org: Org,
    pub(super) job: Job,
}

pub(super) enum Outcome {
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

pub(super) enum Msg {
    /// Stop with this exit code (SIGTERM → 0, SIGINT → 130).
    Signal(Exit),
    /// A worker's outcome, with the new token for `--exec` if there is one.
    Done(usize, Box<Outcome>, Option<Handoff>),
    /// An `--exec` hook failed or timed out.
    ExecFailed(usize, String),
    /// Nobody reads stdout any more.
    StdoutClosed,
    /// Readers' requests for an org were answered (alias, how, how many).
    Served(String, crate::store::Answer, usize),
}

pub(super) fn reread(ctx: &Context, alias: &str) -> Result<Option<Org>, Error> {
    Ok(ctx.orgs().read(alias)?.map(|v| v.org))
}

pub(super) fn handoff(org: &Org, token: Secret) -> Handoff {
    Handoff {
        org: org.name().to_string(),
        instance_url: org.record.instance_url.clone(),
        token,
    }
}

pub(super) fn check(
    ctx: &Context,
    task: Task,
    p: &Pace,
) -> Result<(Outcome, Option<Handoff>), Error> {
    let Some(fresh) = reread(ctx, task.org.name())? else {
        return Ok((Outcome::Gone, None));
    };
    let changed = fresh.record.access_token_masked != task.org.record.access_token_masked;
    // Several watchers on one shared store: the first to claim the check asks
    // Salesforce; the others take the answer it left in the shared record
    // (issue #13: checks are not multiplied by the number of hosts).
    if let Some(known) = expiry::offline(&fresh.record, ctx.now())
        && !ctx.orgs().claim_check(
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
    if ctx.orgs().shared_at().is_some() {
        // Watchers on other hosts take this answer instead of asking (see the
        // claim above): it must be in the store now, not at the next batch
        // (a write to Redis is one small compare-and-set, not a file rewrite).
        expiry::remember(ctx.orgs(), &[(&fresh, &token, &expiry)]);
    }
    let h = (changed && expiry.active).then(|| handoff(&fresh, token));
    Ok((
        Outcome::Checked {
            org: fresh,
            expiry,
            changed,
        },
        h,
    ))
}

pub(super) fn refresh(
    ctx: &Context,
    task: Task,
    reason: Reason,
    p: &Pace,
) -> Result<(Outcome, Option<Handoff>), Error> {
    let now = ctx.now();
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
            // Nothing is stored for an org from the environment: a rotated
            // refresh token is said (the one there is dead).
            rotated_env: r.rotated && !ctx.orgs().persistent(),
        },
        Some(h),
    ))
}

/// Makes one request for the scheduler, on a worker thread.
pub(super) type Work =
    Arc<dyn Fn(&Context, Task, &Pace) -> Result<(Outcome, Option<Handoff>), Error> + Send + Sync>;

/// What a test of the loop in process replaces; the binary runs [`Seams::real`].
pub(super) struct Seams {
    /// The requests: the binary's go to Salesforce ([`work`]).
    pub(super) work: Work,
    /// Forward SIGINT/SIGTERM to the loop.
    pub(super) signals: bool,
    /// Called on the scheduler's thread at every pass of the loop; `true` stops
    /// the watch as SIGTERM does. (Tests watch the schedule, wedge it and end it.)
    pub(super) on_pass: Option<OnPass>,
}

pub(super) type OnPass = Box<dyn FnMut(&Scheduler) -> bool + Send>;

impl Seams {
    pub(super) fn real() -> Seams {
        Seams {
            work: Arc::new(work),
            signals: true,
            on_pass: None,
        }
    }
}

/// One request to Salesforce: a check or a refresh of the task's org.
pub(super) fn work(
    ctx: &Context,
    task: Task,
    p: &Pace,
) -> Result<(Outcome, Option<Handoff>), Error> {
    match task.job {
        Job::Check => check(ctx, task, p),
        Job::Refresh(reason) => refresh(ctx, task, reason, p),
    }
}

pub(super) fn worker(
    ctx: Arc<Context>,
    jobs: Arc<Mutex<Receiver<Task>>>,
    tx: Sender<Msg>,
    p: Pace,
    work: Work,
) {
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
            ctx.clock().instant(),
        );
        let result = work(&ctx, task, &p);
        let (outcome, h) = result.unwrap_or_else(|e| (Outcome::Failed(e), None));
        let took = ctx.clock().instant().saturating_duration_since(t0);
        feed::observe(&name, is_refresh, &outcome, took);
        if tx.send(Msg::Done(idx, Box::new(outcome), h)).is_err() {
            return;
        }
    }
}
