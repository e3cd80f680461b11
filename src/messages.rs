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

/// The conversation's state: one per process ([`OWNER`]); tests make their own.
struct Owner(Mutex<State>);

static OWNER: Owner = Owner::new();

impl Owner {
    const fn new() -> Owner {
        Owner(Mutex::new(State {
            live: false,
            queue: VecDeque::new(),
            shown: VecDeque::new(),
            dropped: 0,
        }))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A thread that panicked while holding the lock left plain data behind.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue `text` while live (`true`), or write it with `write` under the lock.
    fn raw(&self, text: &str, write: impl FnOnce(&str)) {
        let mut st = self.state();
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
        write(text);
    }

    fn live_begin(&self) {
        self.state().live = true;
    }

    fn take_queued(&self) -> Vec<String> {
        let mut st = self.state();
        let new: Vec<String> = st.queue.drain(..).collect();
        st.shown.extend(new.iter().cloned());
        new
    }

    /// Leave live mode; what was held, in order (a count of dropped ones first).
    fn live_end(&self, write: impl FnOnce(&[String])) {
        let mut st = self.state();
        if !st.live {
            return;
        }
        st.live = false;
        let dropped = std::mem::take(&mut st.dropped);
        let st = &mut *st;
        let mut held: Vec<String> = Vec::new();
        if dropped > 0 {
            held.push(format!(
                "sfx: note: {dropped} earlier messages were dropped while the live table was shown"
            ));
        }
        held.extend(st.shown.drain(..).chain(st.queue.drain(..)));
        write(&held);
    }
}

fn write_stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
    let _ = err.flush();
}

/// Write `text` (one or more whole lines, without the final newline) to stderr,
/// or queue it while the live table is up.
pub fn raw(text: &str) {
    OWNER.raw(text, write_stderr);
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
    let _st = OWNER.state();
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
/// `--exec` hooks), as `(stdout, stderr)`: our stderr. While the live table owns
/// the terminal, a pipe instead, whose lines a thread passes on as messages
/// (`{label}: {line}`, made safe to show), so the table lists them with its
/// events instead of having them painted over (and stderr gets them at the end).
pub fn child_streams(label: &str) -> (std::process::Stdio, std::process::Stdio) {
    let direct = || {
        (
            std::process::Stdio::from(std::io::stderr()),
            std::process::Stdio::inherit(),
        )
    };
    if !OWNER.state().live {
        return direct();
    }
    let Ok((reader, writer)) = std::io::pipe() else {
        return direct();
    };
    let Ok(second) = writer.try_clone() else {
        return direct();
    };
    let label = crate::text::sanitize(label, 100);
    let started = std::thread::Builder::new()
        .name("sfx-child-output".into())
        .spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(reader).split(b'\n') {
                let Ok(line) = line else { break };
                let line = String::from_utf8_lossy(&line);
                raw(&format!(
                    "{label}: {}",
                    crate::text::sanitize(line.trim_end(), 500)
                ));
            }
        });
    match started {
        Ok(_) => (writer.into(), second.into()),
        Err(_) => direct(),
    }
}

/// The live table takes the terminal: from now on messages are queued.
pub fn live_begin() {
    OWNER.live_begin();
}

/// Messages queued since the last call, for the live table to show. They are
/// still written to stderr by [`live_end`].
pub fn take_queued() -> Vec<String> {
    OWNER.take_queued()
}

/// The live table is gone: write every held message to stderr, in order, and
/// write directly again from now on.
pub fn live_end() {
    OWNER.live_end(|held| {
        let mut err = std::io::stderr().lock();
        for m in held {
            let _ = writeln!(err, "{m}");
        }
        let _ = err.flush();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An owner of its own (the process's is shared by every test thread).
    #[test]
    fn while_live_messages_are_queued_shown_once_and_written_in_order_after() {
        let o = Owner::new();
        let mut written = Vec::new();
        o.raw("before", |t| written.push(t.to_string()));
        assert_eq!(written, ["before"], "not live: written at once");
        o.live_begin();
        o.raw("sfx: one", |_| panic!("written while live"));
        o.raw("sfx: warning: two", |_| panic!("written while live"));
        assert_eq!(o.take_queued(), ["sfx: one", "sfx: warning: two"]);
        assert!(
            o.take_queued().is_empty(),
            "taken messages are not shown twice"
        );
        o.raw("sfx: note: three", |_| panic!("written while live"));
        let mut after = Vec::new();
        o.live_end(|held| after = held.to_vec());
        assert_eq!(after, ["sfx: one", "sfx: warning: two", "sfx: note: three"]);
        o.live_end(|_| panic!("not live: nothing held"));
        o.raw("later", |t| written.push(t.to_string()));
        assert_eq!(written, ["before", "later"]);
    }

    #[test]
    fn a_long_live_table_holds_at_most_the_cap_and_says_how_many_were_dropped() {
        let o = Owner::new();
        o.live_begin();
        for i in 0..QUEUE_MAX + 5 {
            o.raw(&format!("{i}"), |_| panic!("written while live"));
        }
        let shown = o.take_queued();
        assert_eq!(shown.len(), QUEUE_MAX);
        assert_eq!(shown[0], "5");
        let mut after = Vec::new();
        o.live_end(|held| after = held.to_vec());
        assert_eq!(after.len(), QUEUE_MAX + 1);
        assert_eq!(
            after[0],
            "sfx: note: 5 earlier messages were dropped while the live table was shown"
        );
        assert_eq!(after.last().unwrap(), &format!("{}", QUEUE_MAX + 4));
    }
}
