//! Every process sfx starts — `sfx exec`'s command, `watch --exec` hooks, the
//! browser a web login opens — is built here, so one list decides what a child
//! may inherit (contract: "What a child process gets").
//!
//! A child gets the access token it is handed and nothing that can mint another
//! one or read the store's secrets: [`WITHHELD`] is removed from its environment.
//! A nested `sfx` therefore runs in environment mode on the handed access token
//! and can never send a refresh token the parent has already spent (under
//! rotation, that revokes the whole login), nor read the shared store's secrets.

use std::ffi::OsStr;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The variables no child of sfx inherits.
pub const WITHHELD: [&str; 5] = [
    "SFX_AUTH_URL",
    "SFX_REFRESH_TOKEN",
    "SFX_CLIENT_SECRET",
    "SFX_STORE_KEY",
    "SFX_STORE",
];

/// A command for `program` whose environment is sfx's minus [`WITHHELD`].
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new(program);
    withhold(&mut c);
    c
}

fn withhold(c: &mut Command) {
    for name in WITHHELD {
        c.env_remove(name);
    }
}

/// `cmd` run through the platform's shell (`sh -c`, or `cmd /C`).
pub fn shell(cmd: &str) -> Command {
    #[cfg(unix)]
    let (sh, flag) = ("sh", "-c");
    #[cfg(not(unix))]
    let (sh, flag) = ("cmd", "/C");
    let mut c = command(sh);
    c.arg(flag).arg(cmd);
    c
}

/// How long a browser launcher is watched for an early failure before the next
/// one is tried (the `open` crate's own rule).
const LAUNCHER_CHECK: Duration = Duration::from_millis(250);

/// Open `url` in the desktop's browser, detached, through the `open` crate's
/// launchers with [`WITHHELD`] removed. True when a launcher started and did not
/// fail within a moment (on `clock`).
pub fn open_browser(url: &str, clock: &dyn crate::clock::Clock) -> bool {
    for mut c in open::commands(url) {
        withhold(&mut c);
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group: a Ctrl-C that ends the login leaves the
        // browser alone (the `open` crate detaches it the same way).
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        let Ok(mut child) = c.spawn() else { continue };
        let started = clock.instant();
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return true,
                Ok(Some(_)) | Err(_) => break,
                Ok(None)
                    if clock.instant().saturating_duration_since(started) >= LAUNCHER_CHECK =>
                {
                    // Still running (a browser in the foreground): reap it later,
                    // off the login's path.
                    std::thread::spawn(move || child.wait());
                    return true;
                }
                Ok(None) => clock.sleep(Duration::from_millis(10)),
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_withheld_variable_is_removed() {
        let c = super::shell("true");
        let removed: Vec<_> = c
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        for name in super::WITHHELD {
            assert!(removed.iter().any(|r| r == name), "{name} is not removed");
        }
    }
}
