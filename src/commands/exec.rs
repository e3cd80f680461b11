//! `sfx exec`: run a command with a valid access token in its environment — never
//! on its command line, so it shows neither in `ps` nor in `/proc/<pid>/cmdline`.
//!
//! The child gets `SFX_ORG` plus the variables of [`super::token_vars`] (sfx's and
//! the Salesforce CLI's names), and none of [`super::child::WITHHELD`]; its standard streams are sfx's. SIGINT and SIGTERM
//! sent to sfx are passed on to it (a terminal's Ctrl-C already reaches the child,
//! which shares sfx's process group, so a signal sent by the kernel is not sent a
//! second time). sfx then exits with the child's code: its own exit code, 128 + N
//! when signal N ended it, 127 when it cannot be found, 126 when it cannot be run.
//! A failure before the command starts (no org, a refused refresh, the store) keeps
//! sfx's own exit codes, and its message says that the command was not run.

use crate::cli::ExecArgs;
use crate::context::Context;
use crate::error::Error;
use crate::exit::Exit;
use crate::output::Mode;
use crate::text::sanitize;

pub fn run(args: &ExecArgs, ctx: &Context) -> Result<Exit, Error> {
    let not_run = |e: Error| e.map_message(|m| format!("{m} (the command was not run)"));
    if ctx.mode == Mode::Json {
        return Err(not_run(Error::usage(
            "--json does not apply to `sfx exec`: the command's own output is passed through",
        )));
    }
    let Some((program, rest)) = args.command.split_first() else {
        return Err(Error::usage(
            "give the command to run after `--`, e.g. `sfx exec -- sf org display` (the command was not run)",
        ));
    };
    let v = super::valid_token(ctx, args.min_valid).map_err(not_run)?;
    for n in &v.notes {
        crate::messages::say(&sanitize(n, 2000));
    }
    let mut cmd = super::child::command(program);
    cmd.args(rest).env("SFX_ORG", v.org.name());
    for (name, value) in super::token_vars(&v.token, &v.org.record.instance_url) {
        cmd.env(name, value);
    }
    #[cfg(unix)]
    let forwarder = signals::Forwarder::start().map_err(not_run)?;
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            let (code, why) = match e.kind() {
                std::io::ErrorKind::NotFound => (127, "command not found".to_string()),
                std::io::ErrorKind::PermissionDenied => (126, "permission denied".to_string()),
                _ => (126, sanitize(&e.to_string(), 200)),
            };
            crate::messages::say(&format!(
                "error: cannot run `{}`: {why}",
                sanitize(&program.to_string_lossy(), 200)
            ));
            return Ok(Exit::Child(code));
        }
    };
    #[cfg(unix)]
    {
        let forwarder = forwarder.forward_to(child.id());
        // Stop forwarding before the child is reaped: its pid stays its own (a
        // zombie) until `wait` below, so a signal can never reach a recycled pid.
        signals::wait_unreaped(child.id());
        forwarder.stop();
    }
    let status = child.wait();
    let status = status.map_err(|e| {
        Error::Other(format!(
            "lost track of `{}` while waiting for it: {e}",
            sanitize(&program.to_string_lossy(), 200)
        ))
    })?;
    Ok(Exit::Child(code_of(status)))
}

/// The shell's rule: the exit code, or 128 + the number of the signal that ended it.
fn code_of(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code & 0xff).unwrap_or(1);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return u8::try_from(128 + (sig & 0x7f)).unwrap_or(255);
        }
    }
    1
}

#[cfg(unix)]
mod signals {
    //! Passing SIGINT and SIGTERM on to the child.

    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::iterator::SignalsInfo;
    use signal_hook::iterator::exfiltrator::WithOrigin;
    use signal_hook::low_level::siginfo::Cause;

    use crate::error::Error;

    /// Catches the signals from before the child starts (so none is lost, and none
    /// kills sfx and orphans the child), and sends each to the child once it runs.
    pub struct Forwarder {
        handle: signal_hook::iterator::Handle,
        pid: std::sync::mpsc::Sender<u32>,
        thread: std::thread::JoinHandle<()>,
    }

    /// Block until the child `pid` has ended, leaving it unreaped (`WNOWAIT`).
    pub fn wait_unreaped(pid: u32) {
        let pid: libc::id_t = pid;
        loop {
            // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid(2).
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: waitid on our own child with a valid pointer; WNOWAIT leaves
            // it for `Child::wait` to reap.
            let r =
                unsafe { libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT) };
            if r == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return;
            }
        }
    }

    impl Forwarder {
        pub fn start() -> Result<Forwarder, Error> {
            let mut signals = SignalsInfo::<WithOrigin>::new([SIGINT, SIGTERM])
                .map_err(|e| Error::Other(format!("cannot set up signal handling: {e}")))?;
            let handle = signals.handle();
            let (pid, rx) = std::sync::mpsc::channel::<u32>();
            let thread = std::thread::spawn(move || {
                // Signals caught before the child started wait in the iterator.
                let Ok(pid) = rx.recv() else { return };
                let Ok(pid) = i32::try_from(pid) else { return };
                for origin in signals.forever() {
                    // Ctrl-C on a terminal: the kernel sent it to the whole process
                    // group, the child included.
                    if origin.cause == Cause::Kernel {
                        continue;
                    }
                    // SAFETY: kill(2) has no memory effects; `pid` is our child,
                    // not reaped before this thread has stopped (see `wait_unreaped`).
                    unsafe {
                        libc::kill(pid, origin.signal);
                    }
                }
            });
            Ok(Forwarder {
                handle,
                pid,
                thread,
            })
        }

        pub fn forward_to(self, pid: u32) -> Forwarder {
            let _ = self.pid.send(pid);
            self
        }

        pub fn stop(self) {
            self.handle.close();
            drop(self.pid);
            let _ = self.thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    #[test]
    fn exit_codes_follow_the_shell() {
        use std::os::unix::process::ExitStatusExt;
        let s = |raw| std::process::ExitStatus::from_raw(raw);
        assert_eq!(super::code_of(s(0)), 0);
        assert_eq!(super::code_of(s(3 << 8)), 3);
        assert_eq!(super::code_of(s(255 << 8)), 255);
        assert_eq!(super::code_of(s(15)), 143);
        assert_eq!(super::code_of(s(9)), 137);
    }
}
