//! The error type of the library layers (`salesforce/`, `store/`, commands).
//!
//! Variants follow what the user does next, and each maps to one exit code in
//! [`Error::exit`]. Messages are whole sentences; `hint` names the command or
//! flag that fixes the problem. Commands add context with `anyhow::Context`;
//! `app::report_error` finds the `Error` in the chain to pick the exit code.

use crate::exit::Exit;

/// What went wrong, by what the user should do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad flags, values or missing input: fix the command line (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The token is dead or too close to its end (exit 3).
    #[error("{0}")]
    Expired(String),
    /// Only a new login helps (exit 4).
    #[error("{message}")]
    Relogin {
        message: String,
        hint: Option<String>,
    },
    /// Network or server trouble; trying later may help (exit 5).
    #[error("{0}")]
    Network(String),
    /// The keychain or secrets file cannot be used (exit 6).
    #[error("{message}")]
    StoreUnavailable {
        message: String,
        hint: Option<String>,
    },
    /// Salesforce answered with an OAuth error that is not a login problem (exit 1).
    #[error("{message}")]
    Server {
        message: String,
        hint: Option<String>,
    },
    /// Anything else (exit 1).
    #[error("{0}")]
    Other(String),
    /// A file operation failed (exit 1): `what` says which ("cannot write
    /// /…/orgs.json"), the I/O error is kept as the cause.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn usage(msg: impl Into<String>) -> Error {
        Error::Usage(msg.into())
    }

    /// A failed file operation, its cause kept.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    pub fn relogin(msg: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Relogin {
            message: msg.into(),
            hint: Some(hint.into()),
        }
    }

    /// The same error with its message changed by `f` (its kind, exit code and
    /// hint kept): for a command that adds what the failure meant for it.
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> Error {
        match self {
            Error::Usage(m) => Error::Usage(f(m)),
            Error::Expired(m) => Error::Expired(f(m)),
            Error::Relogin { message, hint } => Error::Relogin {
                message: f(message),
                hint,
            },
            Error::Network(m) => Error::Network(f(m)),
            Error::StoreUnavailable { message, hint } => Error::StoreUnavailable {
                message: f(message),
                hint,
            },
            Error::Server { message, hint } => Error::Server {
                message: f(message),
                hint,
            },
            Error::Other(m) => Error::Other(f(m)),
            Error::Io { what, source } => Error::Io {
                what: f(what),
                source,
            },
        }
    }

    /// The exit code the contract assigns to this kind of failure.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage(_) => Exit::Usage,
            Error::Expired(_) => Exit::Expired,
            Error::Relogin { .. } => Exit::Relogin,
            Error::Network(_) => Exit::Network,
            Error::StoreUnavailable { .. } => Exit::StoreUnavailable,
            Error::Server { .. } | Error::Other(_) | Error::Io { .. } => Exit::Error,
        }
    }

    /// The "what to do next" line, if there is one.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::Relogin { hint, .. }
            | Error::StoreUnavailable { hint, .. }
            | Error::Server { hint, .. } => hint.as_deref(),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_keeps_its_cause_and_reads_as_one_sentence() {
        let cause = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e = Error::io("cannot write /h/orgs.json", cause);
        assert_eq!(e.to_string(), "cannot write /h/orgs.json: denied");
        let source = std::error::Error::source(&e).expect("the cause is kept");
        assert_eq!(
            source.downcast_ref::<std::io::Error>().map(|s| s.kind()),
            Some(std::io::ErrorKind::PermissionDenied)
        );
        assert_eq!(e.exit(), Exit::Error);
    }
}
