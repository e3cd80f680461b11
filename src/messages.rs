//! The one owner of stderr (architecture rule 16, as ripgrep's `messages.rs`):
//! every note, warning, prompt, lock-wait line, insecure-storage notice, `-v`
//! trace, watch's own remarks and the final error go through here. Nothing else
//! in `src/` writes to stderr (`tests/layers.rs` fails if something does).
//!
//! Why one owner:
//! - **Lines never interleave.** Each message is written whole under one lock, so
//!   two threads (watch's workers, a `-v` trace) cannot mix their bytes.
//! - **The live table is not torn.** While `sfx watch` draws its live table on the
//!   terminal ([`live_begin`]), messages are queued instead of written; the table
//!   takes them ([`take_queued`]) and lists them with its recent events, and
//!   [`live_end`] writes whatever is still queued, in order, to stderr once the
//!   terminal is restored — so stderr keeps the whole conversation.
//! - **`-q` in one place.** `-q` silences stdout only: the contract says errors
//!   still go to stderr, and so do notes, warnings, prompts and `-v` traces (a
//!   quiet script must still learn that secrets went to insecure storage). That
//!   rule lives here: no caller checks the mode before writing to stderr.
//!
//! A small utility every layer may use (layer 0 in `tests/layers.rs`).

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Mutex, MutexGuard};

/// How many messages are held while the live table is up; older ones are dropped
/// (and counted) so a long watch with `-v` cannot grow without bound.
const QUEUE_MAX: usize = 1000;

struct State {
    /// The live table owns the terminal: queue instead of writing.
    live: bool,
    queue: VecDeque<String>,
    /// Messages already taken by the table but not yet written to stderr.
    shown: VecDeque<String>,
    dropped: usize,
}

static STATE: Mutex<State> = Mutex::new(State {
    live: false,
    queue: VecDeque::new(),
    shown: VecDeque::new(),
    dropped: 0,
});

fn state() -> MutexGuard<'static, State> {
    // A thread that panicked while holding the lock left plain data behind.
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Write `text` (one or more whole lines, without the final newline) to stderr,
/// or queue it while the live table is up.
pub fn raw(text: &str) {
    let mut st = state();
    if st.live {
        if st.queue.len() + st.shown.len() >= QUEUE_MAX {
            if st.shown.pop_front().is_none() {
                st.queue.pop_front();
            }
            st.dropped += 1;
        }
        st.queue.push_back(text.to_string());
        return;
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
    let _ = err.flush();
}

/// One line of the conversation: `sfx: {line}`.
pub fn say(line: &str) {
    raw(&format!("sfx: {line}"));
}

/// `sfx: note: {text}`.
pub fn note(text: &str) {
    raw(&format!("sfx: note: {text}"));
}

/// `sfx: warning: {text}`.
pub fn warning(text: &str) {
    raw(&format!("sfx: warning: {text}"));
}

/// A `-v` trace line (`sfx: {line}`); the caller decides whether `-v` is on.
pub fn trace(line: &str) {
    say(line);
}

/// A question without a line end, flushed, before reading the answer from the
/// terminal. Prompts are never queued: only commands that are not watching ask.
pub fn prompt(text: &str) {
    let _st = state();
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{text}");
    let _ = err.flush();
}

/// The final error and its hint (`sfx: error: …`, `sfx: hint: …`), written at
/// once: by then any live table is gone.
pub fn error(message: &str, hint: Option<&str>) {
    let mut text = format!("sfx: error: {message}");
    if let Some(h) = hint {
        text.push_str(&format!("\nsfx: hint: {h}"));
    }
    live_end();
    raw(&text);
}

/// Where a child process's output that must stay off stdout goes (watch's
/// `--exec` hooks): our stderr.
pub fn child_output() -> std::process::Stdio {
    std::process::Stdio::from(std::io::stderr())
}

/// The live table takes the terminal: from now on messages are queued.
pub fn live_begin() {
    state().live = true;
}

/// Messages queued since the last call, for the live table to show. They are
/// still written to stderr by [`live_end`].
pub fn take_queued() -> Vec<String> {
    let mut st = state();
    let new: Vec<String> = st.queue.drain(..).collect();
    st.shown.extend(new.iter().cloned());
    new
}

/// The live table is gone: write every held message to stderr, in order, and
/// write directly again from now on.
pub fn live_end() {
    let mut st = state();
    if !st.live {
        return;
    }
    st.live = false;
    let dropped = std::mem::take(&mut st.dropped);
    let st = &mut *st;
    let held: Vec<String> = st.shown.drain(..).chain(st.queue.drain(..)).collect();
    let mut err = std::io::stderr().lock();
    if dropped > 0 {
        let _ = writeln!(
            err,
            "sfx: note: {dropped} earlier messages were dropped while the live table was shown"
        );
    }
    for m in held {
        let _ = writeln!(err, "{m}");
    }
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test: the state is global, and tests run in parallel threads.
    #[test]
    fn while_live_messages_are_queued_shown_once_and_kept_in_order() {
        live_begin();
        say("one");
        warning("two");
        assert_eq!(take_queued(), ["sfx: one", "sfx: warning: two"]);
        assert!(
            take_queued().is_empty(),
            "taken messages are not shown twice"
        );
        note("three");
        {
            let st = state();
            assert_eq!(st.shown, ["sfx: one", "sfx: warning: two"]);
            assert_eq!(st.queue, ["sfx: note: three"]);
        }
        for i in 0..QUEUE_MAX + 5 {
            raw(&format!("{i}"));
        }
        {
            let st = state();
            assert_eq!(st.queue.len() + st.shown.len(), QUEUE_MAX);
            assert_eq!(st.dropped, 8);
            assert_eq!(st.queue.back().unwrap(), &format!("{}", QUEUE_MAX + 4));
        }
        live_end();
        let st = state();
        assert!(!st.live && st.queue.is_empty() && st.shown.is_empty() && st.dropped == 0);
    }
}
