//! The scheduler's state and its decisions: which org is due, what to start,
//! how an outcome changes the plan, how long to sleep (the loop that drives it
//! is `run_with` in mod.rs).

#[allow(unused_imports)]
use super::*;

pub(super) struct Scheduler {
    pub(super) ctx: Arc<Context>,
    pub(super) pace: Pace,
    pub(super) all: bool,
    pub(super) orgs: Vec<Watched>,
    pub(super) jobs: Sender<Task>,
    /// `--exec`, when given.
    pub(super) hooks: Option<Hooks>,
    pub(super) printer: Printer,
    /// stdout was closed: stop quietly.
    pub(super) closed: bool,
    /// The store's cheap reading when last looked at (the local metadata
    /// file's modification time; see `OrgStore::changed_since`).
    pub(super) store_stamp: Option<SystemTime>,
    /// With a store that cannot tell cheaply (a shared one): when it was last listed.
    pub(super) shared_scan: Option<DateTime<Utc>>,
    /// `--all` said that no org is watchable now (said once per spell).
    pub(super) idle_said: bool,
}

impl Scheduler {
    pub(super) fn emit(&mut self, idx: usize, kind: Kind, message: String, needs_login: bool) {
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
    pub(super) fn dispatch(&mut self, now: DateTime<Utc>) {
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

    pub(super) fn handle(&mut self, idx: usize, outcome: Outcome) {
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

    pub(super) fn failed(&mut self, idx: usize, err: Error, now: DateTime<Utc>) {
        let p = self.pace;
        if let Error::Relogin { message, hint } = &err {
            self.orgs[idx].needs_login = true;
            let hint = hint
                .clone()
                .unwrap_or_else(|| relogin_hint(&self.orgs[idx].org));
            self.emit(
                idx,
                Kind::Error,
                // The message may end a sentence ("… rotation."): no `.;`.
                format!(
                    "{}; stopped watching this org: {hint}",
                    message.trim_end_matches(['.', ' '])
                ),
                true,
            );
            return;
        }
        let w = &mut self.orgs[idx];
        w.failures = w.failures.saturating_add(1);
        let delay = retry_delay(
            w.failures,
            w.exp().map(|e| e - now),
            &p,
            crate::backoff::jitter(),
        );
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
    pub(super) fn rescan(&mut self, now: DateTime<Utc>) {
        if self.ctx.env_org.is_some() {
            return;
        }
        match self.ctx.orgs().changed_since(&mut self.store_stamp) {
            Some(false) => return,
            Some(true) => {}
            // A store that cannot tell cheaply (a shared one): at most one
            // listing per shortest pause.
            None => {
                if self
                    .shared_scan
                    .is_some_and(|at| now < schedule::plus(at, self.pace.min_check))
                {
                    return;
                }
                self.shared_scan = Some(now);
            }
        }
        // The local store's parse is shared (an `Arc`, issue #16): borrowed, not copied.
        let Ok(snapshot) = self.ctx.orgs().snapshot() else {
            return;
        };
        let meta = &snapshot.orgs;
        for w in self.orgs.iter_mut().filter(|w| w.needs_login && !w.busy) {
            if let Some(rec) = meta.get(w.org.name())
                && (rec.access_token_masked != w.org.record.access_token_masked
                    || rec.refresh_token_used_at != w.org.record.refresh_token_used_at)
            {
                *w = Watched::new(
                    Org {
                        record: crate::store::metadata::OrgRecord::clone(rec),
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
                            record: crate::store::metadata::OrgRecord::clone(rec),
                            env: None,
                        },
                        now,
                    ));
                    self.orgs.last().inspect(|w| feed::report(w, false));
                }
            }
        }
    }

    pub(super) fn rows(&self, now: DateTime<Utc>) -> Vec<Row> {
        self.orgs.iter().map(|w| w.row(now, &self.pace)).collect()
    }

    pub(super) fn busy(&self) -> Vec<&str> {
        self.orgs
            .iter()
            .filter(|w| w.busy)
            .map(|w| w.org.name())
            .collect()
    }

    /// How long to sleep: until the earliest due org, the next frame of the live
    /// table, or [`MAX_SLEEP`].
    pub(super) fn wait(&self, now: DateTime<Utc>) -> Duration {
        let mut wait = MAX_SLEEP;
        // With the queue full, a finished request wakes the loop, not a due org.
        if self.orgs.iter().filter(|w| w.busy).count() < MAX_QUEUED {
            for w in self.orgs.iter().filter(|w| !w.busy && !w.needs_login) {
                wait = wait.min((w.due - now).to_std().unwrap_or(Duration::ZERO));
            }
        }
        if let Some(t) = self.printer.next_draw() {
            // The live table's frames are paced by the terminal's real time (the
            // printer's own `Instant`s), not by the watch's clock.
            wait = wait.min(t.saturating_duration_since(Instant::now()));
        }
        wait
    }
}
