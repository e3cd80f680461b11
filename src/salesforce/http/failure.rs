//! How a failed attempt is classified: retryable or not, sent or not, and the
//! sentence that names the host, the proxy and the timeout.

use std::time::Duration;

use super::*;

pub(super) struct Failure {
    pub(super) message: String,
    pub(super) retryable: bool,
    /// The request cannot have reached the server.
    pub(super) unsent: bool,
    /// ureq's own error, kept as the cause of the final [`Error::Network`].
    pub(super) source: Option<ureq::Error>,
}

impl Failure {
    /// A failure while reading the body: the answer had begun, so the request was
    /// delivered; a cut connection here is a truncated answer.
    pub(super) fn in_body(
        e: ureq::Error,
        url: &str,
        timeout: Duration,
        via: Option<&str>,
    ) -> Failure {
        let host = crate::salesforce::url::host_of(url);
        let f = match &e {
            ureq::Error::Io(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::BrokenPipe
                ) =>
            {
                Failure {
                    message: format!(
                        "the answer from {host} was cut off before its end (the connection closed early)"
                    ),
                    retryable: true,
                    unsent: false,
                    source: None,
                }
            }
            ureq::Error::Protocol(_) => Failure {
                message: format!("the answer from {host} was cut off or malformed"),
                retryable: true,
                unsent: false,
                source: None,
            },
            _ => return Failure::from_ureq(e, url, timeout, via),
        };
        Failure {
            source: Some(e),
            ..f
        }
    }

    pub(super) fn from_ureq(
        e: ureq::Error,
        url: &str,
        timeout: Duration,
        via: Option<&str>,
    ) -> Failure {
        let host = crate::salesforce::url::host_of(url);
        if let Some(proxy) = via {
            // Connection-level trouble is the proxy's: say so, or the message would
            // send the user looking at the wrong host.
            let unreachable = match &e {
                ureq::Error::ConnectionFailed => true,
                ureq::Error::Io(io) => matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable
                ),
                _ => false,
            };
            if unreachable {
                return Failure {
                    message: format!(
                        "could not connect to the proxy {proxy} (from HTTPS_PROXY, HTTP_PROXY or ALL_PROXY) to reach {host}; check the proxy, or add the host to NO_PROXY"
                    ),
                    retryable: true,
                    unsent: true,
                    source: None,
                };
            }
            if let ureq::Error::ConnectProxyFailed(why) = &e {
                return Failure {
                    message: format!(
                        "the proxy {proxy} (from HTTPS_PROXY, HTTP_PROXY or ALL_PROXY) did not open a connection to {host}: {}",
                        sanitize(why, 120)
                    ),
                    retryable: true,
                    unsent: true,
                    source: None,
                };
            }
        }
        let f = match &e {
            ureq::Error::Timeout(_) => Failure {
                message: format!(
                    "{host} did not answer within {} (raise it with --timeout)",
                    humantime::format_duration(timeout)
                ),
                retryable: true,
                unsent: false,
                source: None,
            },
            ureq::Error::HostNotFound => Failure {
                message: format!("the host {host} was not found (check the instance or login URL)"),
                retryable: true,
                unsent: true,
                source: None,
            },
            ureq::Error::ConnectionFailed => Failure {
                message: format!("could not connect to {host}"),
                retryable: true,
                unsent: true,
                source: None,
            },
            ureq::Error::BodyExceedsLimit(_) => Failure {
                message: format!(
                    "{host} sent a response larger than 1 MiB; that is not what Salesforce sends (check the URL)"
                ),
                retryable: false,
                unsent: false,
                source: None,
            },
            // std reports a failed name lookup as an uncategorised I/O error.
            ureq::Error::Io(io) if io.to_string().starts_with("failed to lookup address") => {
                Failure {
                    message: format!(
                        "the host {host} was not found (check the instance or login URL): {}",
                        sanitize(
                            io.to_string()
                                .trim_start_matches("failed to lookup address information: "),
                            120
                        )
                    ),
                    retryable: true,
                    unsent: true,
                    source: None,
                }
            }
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => Failure {
                message: format!("{host} closed the connection without answering"),
                retryable: true,
                unsent: false,
                source: None,
            },
            ureq::Error::Io(io) => {
                let unsent = matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable
                );
                Failure {
                    message: if unsent {
                        format!(
                            "could not connect to {host}: {}",
                            sanitize(&io.to_string(), 200)
                        )
                    } else {
                        format!(
                            "the connection to {host} failed: {}",
                            sanitize(&io.to_string(), 200)
                        )
                    },
                    retryable: true,
                    unsent,
                    source: None,
                }
            }
            other => Failure {
                message: format!(
                    "the request to {host} failed: {}",
                    sanitize(&redact_text(&other.to_string()), 200)
                ),
                retryable: true,
                unsent: false,
                source: None,
            },
        };
        Failure {
            source: Some(e),
            ..f
        }
    }
}
