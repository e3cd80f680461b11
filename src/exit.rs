//! Exit codes: the contract's numbers as a type (`docs/reference.md`, "Exit codes").

use std::process::ExitCode;

/// How `sfx` ends. Scripts branch on these numbers; a test pins each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// 0: success; for `expires`/`introspect`/`token`, the token is valid.
    Ok,
    /// 1: any other error.
    Error,
    /// 2: usage error (unknown flag, bad duration, bad URL, missing input).
    Usage,
    /// 3: the token is expired, inactive, revoked, or expires within `--within`.
    Expired,
    /// 4: a human must log in again (refresh refused, no way to refresh, org unknown).
    Relogin,
    /// 5: network or server trouble (unreachable, timeout, 5xx/429, unexpected body).
    Network,
    /// 6: the credential store is unavailable or locked.
    StoreUnavailable,
    /// 130: interrupted by SIGINT.
    Interrupted,
    /// The exit status of the command `sfx exec` ran, passed through as it is:
    /// its own code, 128 + N when a signal N ended it, 127 when it was not found,
    /// 126 when it could not be run.
    Child(u8),
}

impl Exit {
    /// The process exit status.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Error => 1,
            Exit::Usage => 2,
            Exit::Expired => 3,
            Exit::Relogin => 4,
            Exit::Network => 5,
            Exit::StoreUnavailable => 6,
            Exit::Interrupted => 130,
            Exit::Child(code) => code,
        }
    }

    /// The more severe of two outcomes, for commands that answer for many orgs:
    /// an error outranks "expired", which outranks success.
    pub fn worst(self, other: Exit) -> Exit {
        fn rank(e: Exit) -> u8 {
            match e {
                Exit::Ok => 0,
                Exit::Expired => 1,
                Exit::Relogin => 2,
                Exit::Network => 3,
                Exit::StoreUnavailable => 4,
                Exit::Error => 5,
                Exit::Usage => 6,
                Exit::Child(_) => 5,
                Exit::Interrupted => 7,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::Exit;

    #[test]
    fn exit_codes_match_the_contract() {
        let pinned = [
            (Exit::Ok, 0),
            (Exit::Error, 1),
            (Exit::Usage, 2),
            (Exit::Expired, 3),
            (Exit::Relogin, 4),
            (Exit::Network, 5),
            (Exit::StoreUnavailable, 6),
            (Exit::Interrupted, 130),
            (Exit::Child(0), 0),
            (Exit::Child(3), 3),
            (Exit::Child(127), 127),
            (Exit::Child(143), 143),
        ];
        for (exit, code) in pinned {
            assert_eq!(exit.code(), code, "{exit:?}");
        }
    }

    #[test]
    fn worst_prefers_errors_over_expiry_over_success() {
        assert_eq!(Exit::Ok.worst(Exit::Expired), Exit::Expired);
        assert_eq!(Exit::Expired.worst(Exit::Ok), Exit::Expired);
        assert_eq!(Exit::Expired.worst(Exit::Relogin), Exit::Relogin);
        assert_eq!(Exit::Network.worst(Exit::Relogin), Exit::Network);
    }
}
