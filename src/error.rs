//! The one error type of every layer (`salesforce/`, `store/`, `lifecycle/`,
//! commands); there is no anyhow.
//!
//! Variants follow what the user does next, and each maps to one exit code in
//! [`Error::exit`]. Messages are whole sentences; `hint` names the command or
//! flag that fixes the problem. The layers below the commands return "log in
//! again" errors without a hint (they do not know which `sfx login` fits); the
//! command layer adds it ([`Error::with_relogin_hint`]). Where a library error
//! lies behind a failure (ureq, keyring, an I/O error) it is kept as the
//! `source`. `app::report_error` prints the message and hint once and returns
//! [`Error::exit`].

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
    /// Network or server trouble; trying later may help (exit 5). `source` is
    /// the transport's own error when there is one.
    #[error("{message}")]
    Network {
        message: String,
        #[source]
        source: Option<Cause>,
    },
    /// The keychain or secrets file cannot be used (exit 6). `source` is the
    /// keychain library's own error when there is one.
    #[error("{message}")]
    StoreUnavailable {
        message: String,
        hint: Option<String>,
        #[source]
        source: Option<Cause>,
    },
    /// An interactive login (browser, device code) was not finished in time
    /// (exit 4, like every "log in again"). `salesforce/` leaves `hint` empty;
    /// the login command names the way to try again.
    #[error("{message}")]
    LoginTimeout {
        message: String,
        hint: Option<String>,
    },
    /// A refusal whose way out is not "log in again" as before (exit 4, like every
    /// login problem). The layers below name the cause; the command layer words
    /// the way out (`commands::way_out`), as it does every `sfx …` hint.
    #[error("{message}")]
    Refused { message: String, refusal: Refusal },
    /// Salesforce answered with an OAuth error that is not a login problem (exit 1).
    #[error("{message}")]
    Server {
        message: String,
        hint: Option<String>,
    },
    /// Anything else (exit 1).
    #[error("{0}")]
    Other(String),
    /// Anything else, with the library error that caused it kept (exit 1).
    #[error("{message}")]
    Failed {
        message: String,
        #[source]
        source: Cause,
    },
    /// A file operation failed (exit 1): `what` says which ("cannot write
    /// /…/orgs.json"), the I/O error is kept as the cause.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// The error of a library below sfx (ureq, keyring), kept as the cause.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    /// Network or server trouble with no library error behind it.
    pub fn network(msg: impl Into<String>) -> Error {
        Error::Network {
            message: msg.into(),
            source: None,
        }
    }

    /// Network trouble, its cause kept.
    pub fn network_from(msg: impl Into<String>, source: Option<Cause>) -> Error {
        Error::Network {
            message: msg.into(),
            source,
        }
    }

    /// A "log in again" error as the layers below return it, with no hint yet,
    /// gets the caller's (which names the `sfx login` that fixes it). `salesforce/`
    /// does not know the org's alias or flow, so the command layer adds this.
    pub fn with_relogin_hint(self, hint: impl FnOnce() -> String) -> Error {
        match self {
            Error::Relogin {
                message,
                hint: None,
            } => Error::Relogin {
                message,
                hint: Some(hint()),
            },
            other => other,
        }
    }

    /// A login that timed out gets the caller's way to try again.
    pub fn with_timeout_hint(self, hint: impl FnOnce() -> String) -> Error {
        match self {
            Error::LoginTimeout {
                message,
                hint: None,
            } => Error::LoginTimeout {
                message,
                hint: Some(hint()),
            },
            other => other,
        }
    }

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
            Error::Network { message, source } => Error::Network {
                message: f(message),
                source,
            },
            Error::StoreUnavailable {
                message,
                hint,
                source,
            } => Error::StoreUnavailable {
                message: f(message),
                hint,
                source,
            },
            Error::LoginTimeout { message, hint } => Error::LoginTimeout {
                message: f(message),
                hint,
            },
            Error::Failed { message, source } => Error::Failed {
                message: f(message),
                source,
            },
            Error::Server { message, hint } => Error::Server {
                message: f(message),
                hint,
            },
            Error::Refused { message, refusal } => Error::Refused {
                message: f(message),
                refusal,
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
            Error::Relogin { .. } | Error::LoginTimeout { .. } | Error::Refused { .. } => {
                Exit::Relogin
            }
            Error::Network { .. } => Exit::Network,
            Error::StoreUnavailable { .. } => Exit::StoreUnavailable,
            Error::Server { .. } | Error::Other(_) | Error::Failed { .. } | Error::Io { .. } => {
                Exit::Error
            }
        }
    }

    /// The "what to do next" line, if there is one.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::Relogin { hint, .. }
            | Error::LoginTimeout { hint, .. }
            | Error::StoreUnavailable { hint, .. }
            | Error::Server { hint, .. } => hint.as_deref(),
            _ => None,
        }
    }
}

/// Why a refusal needs another way in, as a type: the wording is the command layer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Salesforce blocks the device flow for this app (uninstalled apps since
    /// 2025-08-28, or an app without "Enable for Device Flow").
    DeviceFlowBlocked,
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
