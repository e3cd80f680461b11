//! `--exec` hooks, run off the refresh workers (issue #11).
//!
//! Each new access token is handed to [`Hooks::submit`]; the hook runs on a thread
//! of its own, so a slow or hung hook never holds up a check or a refresh. Per
//! org, hooks run one at a time and in order; when tokens arrive faster than the
//! hook finishes, only the newest waiting one is handed on (an older token is of
//! no use once a newer one exists). Every hook gets `--exec-timeout`: past it the
//! hook is killed (SIGKILL) together with its process group — every process it
//! started that did not leave the group — and the failure is reported like any
//! other failed hook. When the watch stops, hooks get a short grace
//! ([`Hooks::stop`]) and are then killed the same way.

use std::collections::{HashMap, HashSet};
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::clock::{self, Clock};
use crate::secret::Secret;

/// A new token to hand to `--exec`.
pub(super) struct Handoff {
    pub org: String,
    pub instance_url: String,
    pub token: Secret,
}

/// What is reported back: the org's index and one sentence.
type Report = Box<dyn Fn(usize, String) + Send + Sync>;

/// How long to wait for a killed hook's process to be reaped.
const REAP_WAIT: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Slot {
    running: bool,
    pending: Option<Handoff>,
}

#[derive(Default)]
struct State {
    /// Per org (by index): is a hook running, and the newest token waiting for it.
    slots: HashMap<usize, Slot>,
    /// Process ids (= process group ids) of the hooks running now.
    pids: HashSet<u32>,
    /// Hook threads alive (running or about to).
    threads: usize,
    /// Set by [`Hooks::stop`]: no new token is taken.
    stopping: bool,
    /// Set when the grace is over: no hook process starts any more.
    killing: bool,
}

struct Inner {
    cmd: String,
    timeout: Duration,
    /// The watch's clock: the timeout, the grace and the reaping wait run on it.
    clock: Arc<dyn Clock>,
    report: Report,
    state: Mutex<State>,
    /// Notified whenever a hook process ends or a hook thread finishes.
    changed: Condvar,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `--exec` runner shared by the scheduler.
#[derive(Clone)]
pub(super) struct Hooks {
    inner: Arc<Inner>,
}

impl Hooks {
    pub fn new(
        cmd: String,
        timeout: Duration,
        clock: Arc<dyn Clock>,
        report: impl Fn(usize, String) + Send + Sync + 'static,
    ) -> Hooks {
        Hooks {
            inner: Arc::new(Inner {
                cmd,
                timeout,
                clock,
                report: Box::new(report),
                state: Mutex::new(State::default()),
                changed: Condvar::new(),
            }),
        }
    }

    /// Run the hook for org `idx` with this token: now, or after the hook that is
    /// running for that org (replacing any token already waiting).
    pub fn submit(&self, idx: usize, h: Handoff) {
        let mut st = self.inner.lock();
        if st.stopping {
            return;
        }
        let slot = st.slots.entry(idx).or_default();
        if slot.running {
            slot.pending = Some(h);
            return;
        }
        slot.running = true;
        st.threads += 1;
        drop(st);
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("sfx-exec-{idx}"))
            .spawn(move || hook_thread(&inner, idx, h));
        if let Err(e) = spawned {
            let mut st = self.inner.lock();
            st.threads -= 1;
            if let Some(s) = st.slots.get_mut(&idx) {
                s.running = false;
            }
            drop(st);
            (self.inner.report)(idx, format!("the --exec command could not be started: {e}"));
        }
    }

    /// Stop: no new token is taken; the hooks already handed a token may run
    /// for `grace`, then whatever still runs is killed with its process group
    /// (and reaped, briefly waited for) and nothing more starts.
    pub fn stop(&self, grace: Duration) {
        let inner = &*self.inner;
        let c = &*inner.clock;
        let mut st = inner.lock();
        st.stopping = true;
        let deadline = c.instant() + grace;
        while st.threads > 0 {
            let left = deadline.saturating_duration_since(c.instant());
            if left.is_zero() {
                break;
            }
            st = clock::wait_timeout(c, &inner.changed, st, left).0;
        }
        st.killing = true;
        for pid in &st.pids {
            kill_group(*pid);
        }
        let deadline = c.instant() + REAP_WAIT;
        while !st.pids.is_empty() {
            let left = deadline.saturating_duration_since(c.instant());
            if left.is_zero() {
                break;
            }
            st = clock::wait_timeout(c, &inner.changed, st, left).0;
        }
    }
}

fn hook_thread(inner: &Inner, idx: usize, mut h: Handoff) {
    loop {
        if let Err(why) = run_one(inner, &h) {
            (inner.report)(idx, why);
        }
        let mut st = inner.lock();
        let next = if st.killing {
            None
        } else {
            st.slots.get_mut(&idx).and_then(|s| s.pending.take())
        };
        match next {
            Some(n) => h = n,
            None => {
                if let Some(s) = st.slots.get_mut(&idx) {
                    s.running = false;
                }
                st.threads -= 1;
                inner.changed.notify_all();
                return;
            }
        }
    }
}

/// Run `--exec` once through the shell with the new token in its environment
/// (never in its arguments, and without what could mint another: see
/// [`crate::commands::child`]); its stdout goes to our stderr so it cannot corrupt
/// the event stream. It runs in a process group of its own, so a timeout can end
/// everything it started.
fn run_one(inner: &Inner, h: &Handoff) -> Result<(), String> {
    let mut c = crate::commands::child::shell(&inner.cmd);
    c.env("SFX_ORG", &h.org)
        .env("SFX_ACCESS_TOKEN", h.token.expose())
        .env("SFX_INSTANCE_URL", &h.instance_url)
        .stdin(Stdio::null());
    let (out, err) = crate::messages::child_streams(&format!("{} --exec", h.org));
    c.stdout(out).stderr(err);
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut c, 0);
    let mut child = {
        // Registered under the lock, so `stop` never misses a hook it started.
        let mut st = inner.lock();
        if st.killing {
            return Ok(());
        }
        let child = c
            .spawn()
            .map_err(|e| format!("the --exec command could not be started: {e}"))?;
        st.pids.insert(child.id());
        child
    };
    let pid = child.id();
    let (tx, rx) = mpsc::channel::<std::io::Result<ExitStatus>>();
    let waiter = std::thread::Builder::new()
        .name("sfx-exec-wait".into())
        .spawn(move || {
            let _ = tx.send(child.wait());
        });
    let result = match waiter {
        Err(e) => {
            kill_group(pid);
            Err(format!("the --exec command could not be waited for: {e}"))
        }
        Ok(_) => match clock::recv_timeout(&*inner.clock, &rx, inner.timeout) {
            Ok(Ok(s)) if s.success() => Ok(()),
            Ok(Ok(s)) => Err(format!("the --exec command failed ({s})")),
            Ok(Err(e)) => Err(format!("the --exec command could not be waited for: {e}")),
            Err(RecvTimeoutError::Timeout) => {
                kill_group(pid);
                // Reaping a SIGKILLed group is the kernel's business: a real
                // wait, bounded (a fake clock would not wait for it at all).
                let _ = rx.recv_timeout(REAP_WAIT);
                Err(format!(
                    "the --exec command did not finish within {} (--exec-timeout), so it was killed with every process it started; the watch goes on",
                    crate::timefmt::flag_duration(inner.timeout)
                ))
            }
            // The waiter ended without a word: the child is gone.
            Err(RecvTimeoutError::Disconnected) => Ok(()),
        },
    };
    let mut st = inner.lock();
    st.pids.remove(&pid);
    inner.changed.notify_all();
    drop(st);
    result
}

/// SIGKILL to the hook's process group (its id is the hook's pid). Called only
/// while the hook's own process is not yet reaped, so the id cannot be reused.
#[cfg(unix)]
fn kill_group(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: killpg has no memory-safety preconditions.
        unsafe {
            libc::killpg(pid, libc::SIGKILL);
        }
    }
}

#[cfg(not(unix))]
fn kill_group(pid: u32) {
    let _ = crate::commands::child::command("taskkill")
        .args(["/T", "/F", "/PID", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn handoff(token: &str) -> Handoff {
        Handoff {
            org: "prod".into(),
            instance_url: "https://a.example.com".into(),
            token: Secret::new(token),
        }
    }

    fn reports() -> (
        Arc<Mutex<Vec<String>>>,
        impl Fn(usize, String) + Send + Sync,
    ) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        (got, move |_, why| sink.lock().unwrap().push(why))
    }

    #[test]
    fn hooks_of_one_org_run_in_order_and_only_the_newest_waiting_token_is_handed_on() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let cmd = format!(
            "printf '%s\\n' \"$SFX_ACCESS_TOKEN\" >> '{}'; sleep 0.3",
            out.display()
        );
        let (got, report) = reports();
        let hooks = Hooks::new(cmd, Duration::from_secs(10), real(), report);
        for t in ["one", "two", "three"] {
            hooks.submit(0, handoff(t));
        }
        hooks.stop(Duration::from_secs(5));
        let lines = std::fs::read_to_string(&out).unwrap();
        assert_eq!(lines, "one\nthree\n");
        assert!(got.lock().unwrap().is_empty(), "{:?}", got.lock().unwrap());
    }

    fn real() -> Arc<dyn Clock> {
        Arc::new(crate::clock::SystemClock)
    }

    /// Wait (real time, bounded) until `f` holds.
    fn eventually(what: &str, f: impl Fn() -> bool) {
        let t = std::time::Instant::now();
        while !f() {
            assert!(t.elapsed() < Duration::from_secs(20), "never: {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Processes whose command line holds `marker`.
    #[cfg(target_os = "linux")]
    fn running(marker: &str) -> usize {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .filter(|c| String::from_utf8_lossy(c).contains(marker))
            .count()
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_hook_that_never_exits_is_killed_after_its_timeout_on_the_watch_clock() {
        // A command line no other process has (the shell, then the sleep).
        let marker = format!("100000.{}1", std::process::id());
        let clock = Arc::new(crate::clock::FakeClock::at(
            chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        ));
        let (got, report) = reports();
        // The contract's default --exec-timeout: a minute, on the fake clock.
        let hooks = Hooks::new(
            format!("exec sleep {marker}"),
            Duration::from_secs(60),
            clock.clone(),
            report,
        );
        let started = std::time::Instant::now();
        hooks.submit(3, handoff("t"));
        eventually("the timeout reported", || !got.lock().unwrap().is_empty());
        let got = got.lock().unwrap().clone();
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].contains("did not finish within 1m (--exec-timeout)"),
            "{}",
            got[0]
        );
        // Killed after exactly its timeout of the watch's time, in real milliseconds.
        assert_eq!(clock.slept(), [Duration::from_secs(60)]);
        assert!(started.elapsed() < Duration::from_secs(20));
        // Killed with its group and reaped: nothing of it is left.
        assert!(hooks.inner.lock().pids.is_empty(), "reaped");
        eventually("the hook's processes gone", || running(&marker) == 0);
        hooks.stop(Duration::ZERO);
    }

    #[test]
    fn stop_kills_a_running_hook_after_the_grace() {
        let (got, report) = reports();
        // Real time: a fake clock's wait on a real process would pass the hook's
        // own timeout at once (the test above), so the grace is timed for real.
        let hooks = Hooks::new(
            "sleep 1000".into(),
            Duration::from_secs(600),
            real(),
            report,
        );
        hooks.submit(0, handoff("t"));
        let started = std::time::Instant::now();
        hooks.stop(Duration::from_millis(200));
        assert!(started.elapsed() >= Duration::from_millis(200), "the grace");
        assert!(started.elapsed() < Duration::from_secs(20));
        assert!(hooks.inner.lock().pids.is_empty(), "reaped");
        // A hook started after the stop never runs.
        let before = hooks.inner.lock().threads;
        hooks.submit(0, handoff("late"));
        assert!(hooks.inner.lock().threads <= before);
        drop(got);
    }
}
