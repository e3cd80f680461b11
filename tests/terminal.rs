//! The human output on a real terminal (issue #21): sfx runs on a pty of 80×24
//! (openpty, its controlling terminal, `TERM=xterm-256color`, colour left on
//! `auto`), and the tests read what the terminal received: no table row wraps, no
//! alias, username or time is broken inside a cell, escape codes never shift a
//! border, one state has one colour in every command, and `sfx watch --all`'s live
//! table keeps one line per org with its event area (and an `--exec` hook's
//! output) on the screen.

#![cfg(unix)]

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

const LONG_USER: &str = "integration.user@example-company.com.uat";

/// A process on a pty of `cols`×`rows`, and everything the terminal received.
struct Pty {
    child: Child,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Pty {
    fn spawn(mut cmd: std::process::Command, cols: u16, rows: u16) -> Pty {
        let (mut master, mut slave) = (0, 0);
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two fds into the given ints; the size is read only.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both fds were just opened by openpty and are owned here only.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave))
            .env("TERM", "xterm-256color");
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                // A session of its own with the pty as its controlling terminal.
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn sfx on a pty");
        drop(cmd); // our copies of the slave side: EOF comes when the child is gone
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let mut master = std::fs::File::from(master);
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            // EIO once the last slave fd is closed.
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty { child, seen }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// Wait (bounded) until the terminal has received something `f` accepts.
    fn wait_for(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let t = self.text();
            if f(&t) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} on the terminal within 60 s; its last screen:\n{}",
                strip(t.rsplit("\x1b[1;1H").next().unwrap_or_default())
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait for the process to end; everything it printed.
    fn finish(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "sfx did not exit");
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader drains what is left once the slave side is closed.
        let t0 = Instant::now();
        let mut last = 0;
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let n = self.seen.lock().unwrap().len();
            if n == last || t0.elapsed() > Duration::from_secs(5) {
                break;
            }
            last = n;
        }
        (status.code(), self.text())
    }
}

/// The text without escape sequences (CSI and the two-byte ones).
fn strip(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out
}

/// Lines as the terminal shows them (CR LF from the pty's output processing).
fn lines(s: &str) -> Vec<String> {
    strip(s)
        .split('\n')
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect()
}

/// Run `sfx ARGS` on an 80×24 pty and return its exit code and output.
fn on_terminal(t: &T, args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = t.std_sfx();
    cmd.args(args);
    Pty::spawn(cmd, 80, 24).finish()
}

/// Four orgs: `ok` (2 h left), `soon` (30 s left), `dead` (its access token
/// expired) and `gone` (both tokens revoked: only a new login helps); `ok` belongs
/// to a user with a long name and `org-number-5` to the default user.
fn four_orgs(t: &T) {
    t.fake
        .add_user(fake_salesforce::User::new(LONG_USER, "pw", "tok"));
    t.sfx()
        .args(["login", "--auth-url", "-", "--alias", "org-number-5"])
        .write_stdin(t.fake.auth_url(DEFAULT_CLIENT_ID, LONG_USER))
        .assert()
        .success();
    t.login("soon");
    let soon = t.access_token("soon");
    t.fake.set_session_exp(&soon, t.fake.now() + 30);
    t.login("dead");
    t.fake.expire_session(&t.access_token("dead"));
    t.login("gone");
    t.fake.expire_session(&t.access_token("gone"));
    t.fake.revoke_token(&t.refresh_token("gone"));
}

/// Each table row is one terminal line no wider than 80 that holds its alias
/// and username whole; every bordered line has the same width (so colour codes
/// did not shift a border).
fn assert_table_fits(out: &str, aliases: &[&str], what: &str) {
    let shown = lines(out);
    for l in &shown {
        assert!(
            l.chars().count() <= 80,
            "{what}: a line wider than 80 columns wraps: {l:?}\n{}",
            shown.join("\n")
        );
    }
    for a in aliases {
        let row: Vec<&String> = shown
            .iter()
            .filter(|l| l.contains(&format!(" {a} ")))
            .collect();
        assert_eq!(
            row.len(),
            1,
            "{what}: `{a}` is not on exactly one row:\n{}",
            shown.join("\n")
        );
        if *a == "org-number-5" && row[0].contains('@') {
            assert!(
                row[0].contains(LONG_USER),
                "{what}: username broken:\n{}",
                shown.join("\n")
            );
        }
    }
    let widths: Vec<usize> = shown
        .iter()
        .filter(|l| l.starts_with(['┌', '│', '╞', '└']))
        .map(|l| l.chars().count())
        .collect();
    assert!(
        widths.len() > aliases.len(),
        "{what}: no bordered table:\n{out}"
    );
    assert!(
        widths.iter().all(|w| *w == widths[0]),
        "{what}: borders shift (colour codes counted as width?): {widths:?}\n{}",
        shown.join("\n")
    );
}

/// The SGR sequence right before the first cell that starts with `word` on the
/// row of `alias` (what colour the terminal shows it in).
fn colour_of(out: &str, alias: &str, word: &str) -> String {
    let row = out
        .split('\n')
        .find(|l| strip(l).contains(&format!(" {alias} ")))
        .unwrap_or_else(|| panic!("no row for {alias} in\n{}", strip(out)));
    let at = row
        .find(&format!(" {word}"))
        .unwrap_or_else(|| panic!("no `{word}` on the row of {alias}: {row:?}"));
    let before = &row[..at];
    let Some(esc) = before.rfind("\x1b[") else {
        return "none".into();
    };
    let code = &before[esc..];
    // A reset, or a border's plain text between the code and the cell: no colour.
    if code.contains("[39m") || code.contains("[0m") || code.contains('┆') || code.contains('│')
    {
        "none".into()
    } else {
        code.to_string()
    }
}

#[test]
fn tables_fit_80_columns_with_one_colour_per_state() {
    let t = T::new();
    four_orgs(&t);
    let aliases = ["org-number-5", "soon", "dead", "gone"];

    let (code, orgs) = on_terminal(&t, &["orgs"]);
    assert_eq!(code, Some(0), "{orgs}");
    assert_table_fits(&orgs, &aliases, "sfx orgs");
    let (_, expires) = on_terminal(&t, &["expires", "--all"]);
    assert_table_fits(&expires, &aliases, "sfx expires --all");
    let (code, check) = on_terminal(&t, &["orgs", "--check"]);
    assert_eq!(code, Some(4), "{check}");
    assert_table_fits(&check, &aliases, "sfx orgs --check");

    // One palette: the same state is the same colour in every command.
    let expired_all = colour_of(&expires, "dead", "expired");
    let expired_check = colour_of(&check, "dead", "expired");
    assert_eq!(
        expired_all, expired_check,
        "`expired` differs between commands"
    );
    assert_ne!(expired_all, "none");
    let ok_all = colour_of(&expires, "org-number-5", "in ");
    let ok_check = colour_of(&check, "org-number-5", "ok");
    assert_eq!(ok_all, ok_check, "`ok` differs between commands");
    // 30 s left without --within is not painted as safe.
    let soon = colour_of(&expires, "soon", "in ");
    assert_ne!(
        soon, ok_all,
        "`expires in 30s` is coloured like a safe token"
    );
    assert_ne!(soon, "none");
    let gone = colour_of(&check, "gone", "needs login");
    assert_ne!(gone, "none");
    assert_ne!(gone, ok_check);

    // `orgs` shows local time, as `expires` does (the tests run in +01:00).
    let piped = t.sfx().args(["orgs"]).output().unwrap();
    let piped = text(&piped.stdout);
    assert!(piped.contains("+01:00"), "sfx orgs shows UTC:\n{piped}");
    for l in piped.lines() {
        assert_eq!(l, l.trim_end(), "trailing spaces in a piped table: {l:?}");
    }
    let piped = t.sfx().args(["expires", "--all"]).output().unwrap();
    for l in text(&piped.stdout).lines() {
        assert_eq!(l, l.trim_end(), "trailing spaces in a piped table: {l:?}");
    }
}

/// The live table of `sfx watch --all` at 80×24: one line per org, the banner
/// in the docs' words, an `--exec` hook's output in the event area while the
/// table is up, and the insecure-storage note there once, not at every refresh.
#[test]
fn watch_all_live_table_fits_a_24_line_screen_with_its_events() {
    let t = T::new();
    four_orgs(&t);
    let mut cmd = t.std_sfx();
    cmd.args(["watch", "--all", "--exec", "echo hook-said-hi"])
        .env("SFX_WATCH_MIN_CHECK", "1s");
    let pty = Pty::spawn(cmd, 80, 24);
    // `soon` is refreshed (30 s left), then the hook runs; `dead` too.
    let seen = pty.wait_for("the hook's output in the event area", |s| {
        s.rsplit("\x1b[1;1H").nth(1).is_some_and(|f| {
            f.contains("soon --exec: hook-said-hi") && f.contains("dead --exec: hook-said-hi")
        })
    });
    // The last whole frame on the alternate screen.
    let frames: Vec<&str> = seen.split("\x1b[1;1H").collect();
    let frame = frames[frames.len() - 2];
    let shown: Vec<String> = lines(frame).into_iter().filter(|l| !l.is_empty()).collect();
    let all = shown.join("\n");
    assert!(
        shown.len() <= 23,
        "the frame needs more than 23 lines:\n{all}"
    );
    for l in &shown {
        assert!(
            l.chars().count() < 80,
            "a line wraps at 80 columns: {l:?}\n{all}"
        );
    }
    assert!(
        shown[0].contains("keep-alive 24h") && shown[0].ends_with("Ctrl-C stops"),
        "banner: {}",
        shown[0]
    );
    for a in ["org-number-5", "soon", "dead", "gone"] {
        let rows = shown
            .iter()
            .filter(|l| l.starts_with('│') && l.contains(&format!(" {a} ")))
            .count();
        assert_eq!(rows, 1, "`{a}` is not one line of the table:\n{all}");
    }
    assert!(
        all.matches("storing secrets unencrypted").count() <= 1,
        "the insecure-storage note repeats in the event area:\n{all}"
    );
    // `needs login` for `gone`, in the same colour as `orgs --check` gives it.
    assert!(all.contains("needs login"), "{all}");
    // SIGTERM: the watch ends, the terminal is restored.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pty.child.id() as i32, libc::SIGTERM) };
    let (code, out) = pty.finish();
    assert_eq!(code, Some(0), "{}", strip(&out));
    assert!(out.contains("\x1b[?1049l"), "the alternate screen was left");
}

/// An alias just long enough that the table, as sfx measured it, is exactly 80
/// wide: the default-marker column is empty when no org is the default, yet it
/// takes a character on screen, so every line of `orgs --check` was 81 wide and
/// the terminal wrapped each one. Every alias length around that edge fits.
#[test]
fn a_table_at_the_edge_of_80_columns_does_not_wrap() {
    let t = T::new();
    for n in 26..=42 {
        let alias = format!("a{}", "x".repeat(n - 1));
        let home = t.dir.path().join(format!("home-{n}"));
        for a in [alias.as_str(), "b"] {
            t.sfx()
                .env("SFX_HOME", &home)
                .args(["login", "--auth-url", "-", "--alias", a])
                .write_stdin(t.auth_url())
                .assert()
                .success();
        }
        for args in [&["orgs"][..], &["orgs", "--check"], &["expires", "--all"]] {
            let mut cmd = t.std_sfx();
            cmd.env("SFX_HOME", &home).args(args);
            let (code, out) = Pty::spawn(cmd, 80, 24).finish();
            assert_eq!(code, Some(0), "{}", strip(&out));
            assert_table_fits(&out, &[&alias, "b"], &format!("sfx {args:?}, alias of {n}"));
        }
    }
}
