//! The retry rules: the loop shared by buffered and streamed requests, `Retry-After`
//! (seconds or an HTTP date) and the jittered exponential back-off between attempts.

use std::time::Duration;

use super::*;

impl Http {
    /// The retry loop shared by buffered ([`Http::send_tracked`]) and streamed
    /// ([`Http::send_stream`]) requests: `once` makes one attempt, `head` tells
    /// its status, and the rules of [`Retry`] decide whether to try again.
    pub(super) fn with_retries<T>(
        &self,
        retry: Retry,
        trace_attempt: impl Fn(u32),
        mut once: impl FnMut() -> Result<T, Failure>,
        head: impl Fn(&T) -> Head,
        trace_answer: impl Fn(&T, Duration),
    ) -> (Result<T, Error>, Delivery) {
        let mut attempt = 1;
        let mut doubt = Delivery::NotProcessed;
        loop {
            let started = self.clock.instant();
            let now = self.clock.boot();
            if let Retry::OnlyUnsentBy(by) = retry
                && now >= by
            {
                // Checked right before each attempt: a process paused past its
                // window (SIGSTOP, a VM pause, a suspended laptop) never sends on
                // waking.
                self.trace_line("! not sent: its attempt window has closed");
                return (
                    Err(Error::network(format!(
                        "the request was not sent: its attempt window closed before it could go (the process was paused or slowed for {} or more), and another process may already be waiting to check the token",
                        humantime::format_duration(Duration::from_secs(
                            now.saturating_duration_since(by).as_secs().max(1)
                        ))
                    ))),
                    doubt,
                );
            }
            trace_attempt(attempt);
            match once() {
                Ok(answer) => {
                    trace_answer(
                        &answer,
                        self.clock.instant().saturating_duration_since(started),
                    );
                    let Head {
                        status,
                        retry_after: asked,
                    } = head(&answer);
                    if Delivery::of_status(status) == Delivery::InDoubt {
                        doubt = Delivery::InDoubt;
                    }
                    let may_retry = match retry {
                        Retry::Transient => status == 429 || status >= 500,
                        Retry::OnlyUnsent | Retry::OnlyUnsentBy(_) | Retry::Idempotent => {
                            status == 429 || status == 503
                        }
                        Retry::ConnectOnly => false,
                    };
                    let asked = asked
                        .as_deref()
                        .and_then(|v| parse_retry_after(v, self.clock.now()));
                    if may_retry && asked.is_some_and(|w| w > RETRY_AFTER_CAP) {
                        // Retrying sooner than asked would only be refused again.
                        self.trace_line(&format!(
                            "not retrying: the server asks to wait {}",
                            humantime::format_duration(asked.unwrap_or_default())
                        ));
                        return (Ok(answer), doubt);
                    }
                    if may_retry && attempt < ATTEMPTS {
                        let wait = asked.unwrap_or_else(|| backoff(attempt));
                        self.trace_line(&format!(
                            "retrying in {} ms (HTTP {status})",
                            wait.as_millis(),
                        ));
                        // The unread answer is dropped here, closing its connection.
                        drop(answer);
                        self.clock.sleep(wait);
                        attempt += 1;
                        continue;
                    }
                    return (Ok(answer), doubt);
                }
                Err(failure) => {
                    if !failure.unsent {
                        doubt = Delivery::InDoubt;
                    }
                    self.trace_line(&format!("! {}", failure.message));
                    let may_retry = match retry {
                        Retry::Transient | Retry::Idempotent => failure.retryable,
                        Retry::OnlyUnsent | Retry::OnlyUnsentBy(_) | Retry::ConnectOnly => {
                            failure.retryable && failure.unsent
                        }
                    };
                    if may_retry && attempt < ATTEMPTS {
                        let wait = backoff(attempt);
                        self.trace_line(&format!("retrying in {} ms", wait.as_millis()));
                        self.clock.sleep(wait);
                        attempt += 1;
                        continue;
                    }
                    let tries = if attempt > 1 {
                        format!(" (after {attempt} attempts)")
                    } else {
                        String::new()
                    };
                    return (
                        Err(Error::network_from(
                            format!("{}{tries}", failure.message),
                            failure.source.map(|e| Box::new(e) as crate::error::Cause),
                        )),
                        doubt,
                    );
                }
            }
        }
    }
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub(super) fn retry_after(reply: &Reply) -> Option<Duration> {
    parse_retry_after(reply.retry_after.as_deref()?, reply.received_at)
}

/// `Retry-After` received at `received_at` (an HTTP date counts from then).
pub(super) fn parse_retry_after(
    value: &str,
    received_at: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let secs = at.timestamp().saturating_sub(received_at.timestamp());
    Some(Duration::from_secs(secs.max(0) as u64))
}

/// 250 ms, 500 ms, … doubled per attempt, capped at 2 s, with ±50 % jitter.
pub(super) fn backoff(attempt: u32) -> Duration {
    crate::backoff::delay(
        attempt,
        Duration::from_millis(250),
        Duration::from_secs(2),
        0.5,
        crate::backoff::jitter(),
    )
}
