//! The watch's introspection results, written to the metadata in batches (issue
//! #16). `sfx expires --offline` and `sfx token` in other processes read the last
//! introspected expiry from the metadata; writing it after every check rewrote
//! the whole metadata file (6 MB and an fsync for 10,000 orgs) several times a
//! second. The watch now keeps its results here and writes them in one update at
//! most every [`FLUSH_EVERY`], on a thread of its own, and once more when it stops.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::context::{Context, Org};
use crate::lifecycle::expiry::{self, Expiry};

/// The longest a check's result waits before it reaches the metadata.
pub(super) const FLUSH_EVERY: Duration = Duration::from_secs(30);

pub(super) struct Cache {
    pending: Vec<(Org, Expiry)>,
    /// The watch's clock: [`FLUSH_EVERY`] is measured on it.
    clock: Arc<dyn Clock>,
    last: Instant,
    writing: Option<JoinHandle<()>>,
}

impl Cache {
    pub(super) fn new(clock: Arc<dyn Clock>) -> Cache {
        Cache {
            pending: Vec::new(),
            last: clock.instant(),
            clock,
            writing: None,
        }
    }

    /// Keep a check's result (only stored orgs, only introspection answers are
    /// ever written; see [`expiry::remember_masked`]).
    pub(super) fn add(&mut self, org: &Org, expiry: &Expiry) {
        // (An org from the environment is remembered nowhere: its store's
        // `remember` keeps nothing.)
        if org.record.access_token_masked.is_some() {
            self.pending.push((org.clone(), expiry.clone()));
        }
    }

    /// How long until the next write is due (`None`: nothing waits).
    pub(super) fn due_in(&self) -> Option<Duration> {
        let since = self.clock.instant().saturating_duration_since(self.last);
        (!self.pending.is_empty()).then(|| FLUSH_EVERY.saturating_sub(since))
    }

    /// Start a write on its own thread when one is due and none is running.
    pub(super) fn tick(&mut self, ctx: &Arc<Context>) {
        if self.due_in().is_none_or(|d| !d.is_zero()) {
            return;
        }
        if self.writing.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        self.last = self.clock.instant();
        let ctx = ctx.clone();
        self.writing = std::thread::Builder::new()
            .name("sfx-watch-cache".into())
            .spawn(move || write(&ctx, &batch))
            .ok();
    }

    /// Write what is left and wait for it (the watch is stopping).
    pub(super) fn finish(&mut self, ctx: &Context) {
        if let Some(h) = self.writing.take() {
            let _ = h.join();
        }
        let batch = std::mem::take(&mut self.pending);
        write(ctx, &batch);
    }
}

fn write(ctx: &Context, batch: &[(Org, Expiry)]) {
    // The latest result per org wins; one metadata update for all of them.
    let mut latest: std::collections::HashMap<&str, (&Org, &Expiry)> =
        std::collections::HashMap::new();
    for (org, e) in batch {
        latest.insert(org.name(), (org, e));
    }
    let items: Vec<(&Org, &str, &Expiry)> = latest
        .values()
        .filter_map(|(o, e)| Some((*o, o.record.access_token_masked.as_deref()?, *e)))
        .collect();
    if !items.is_empty() {
        expiry::remember_masked(ctx.orgs(), &items);
    }
}
