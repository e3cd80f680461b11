//! The threads that turn the outside world into messages for the scheduler:
//! SIGINT/SIGTERM, and stdout's reader going away.

#[allow(unused_imports)]
use super::*;

/// Tell the loop when stdout's reader goes away (`sfx watch --json | head -1`),
/// at once rather than at the next event, which may be many minutes off. `poll`
/// with no events asked reports only hang-up and error, which a pipe or socket
/// gives when its reader is gone; a file or a terminal never wakes it.
#[cfg(unix)]
pub(super) fn watch_stdout(tx: Sender<Msg>) {
    let spawned = std::thread::Builder::new()
        .name("sfx-stdout".into())
        .spawn(move || {
            loop {
                let mut fd = libc::pollfd {
                    fd: libc::STDOUT_FILENO,
                    events: 0,
                    revents: 0,
                };
                // SAFETY: one valid pollfd, for the duration of the call.
                let n = unsafe { libc::poll(&mut fd, 1, -1) };
                if n < 0 {
                    if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    return;
                }
                if fd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                    let _ = tx.send(Msg::StdoutClosed);
                }
                return;
            }
        });
    // Without the thread, a closed stdout is still noticed at the next write.
    drop(spawned);
}

#[cfg(not(unix))]
pub(super) fn watch_stdout(_tx: Sender<Msg>) {}

/// Forward SIGINT (→ 130) and SIGTERM/SIGHUP (→ 0) to the loop.
#[cfg(unix)]
pub(super) fn listen_for_signals(tx: Sender<Msg>) -> Result<(), Error> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| Error::Other(format!("cannot listen for signals: {e}")))?;
    std::thread::Builder::new()
        .name("sfx-signals".into())
        .spawn(move || {
            for s in signals.forever() {
                let code = if s == SIGINT {
                    Exit::Interrupted
                } else {
                    Exit::Ok
                };
                if tx.send(Msg::Signal(code)).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| Error::Other(format!("cannot start the signal thread: {e}")))?;
    Ok(())
}

/// Elsewhere Ctrl-C ends the process the platform's way.
#[cfg(not(unix))]
pub(super) fn listen_for_signals(_tx: Sender<Msg>) -> Result<(), Error> {
    Ok(())
}
