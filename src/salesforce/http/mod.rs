//! HTTP transport: blocking ureq agents, per-attempt timeouts, retries with
//! jittered exponential back-off, a 1 MiB body cap, no redirects, and a `-v` trace
//! with every secret redacted.
//!
//! Retries (contract, "Safety rules"): connection errors, timeouts, 5xx and 429 are
//! tried again, 3 attempts in all, honouring `Retry-After` (seconds or an HTTP
//! date); a 4xx never. A `Retry-After` longer than [`RETRY_AFTER_CAP`] is not
//! waited out: the answer is returned at once and the error says how long the
//! server asked to wait. A request that must not be repeated once it may have
//! reached the server (a refresh with a rotating refresh token: a replay revokes
//! the whole family) asks for [`Retry::OnlyUnsent`].
//!
//! Proxies: `ALL_PROXY`, `HTTPS_PROXY`, `HTTP_PROXY` (and lower-case forms), first
//! one set wins, whatever the target's scheme (ureq 3.5's rule, which sends every
//! request through an HTTP `CONNECT` tunnel), and `NO_PROXY` (exact hosts,
//! `.suffix`, `*.suffix`, `*`). Loopback targets (`127.0.0.0/8`, `::1`,
//! `localhost`) always go direct, as in Go's `net/http`: ureq itself does not
//! exempt them, and a corporate proxy cannot reach a fake on the runner anyway.

use std::time::Duration;

use crate::clock::BootInstant;

use crate::error::Error;
use crate::secret::{SECRET_KEYS, Secret, redact_text};
use crate::text::sanitize;

mod failure;
mod html;
mod retry;
#[cfg(test)]
mod tests;
mod trace;

use failure::Failure;
use retry::retry_after;
pub use trace::redacted_body;
use trace::sent_secrets;

/// Bodies larger than this are refused.
pub const BODY_LIMIT: u64 = 1024 * 1024;
/// Attempts in all, the first included.
pub const ATTEMPTS: u32 = 3;
/// The longest `Retry-After` sfx waits out before trying again.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(10);

/// Which failures may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Connection errors, timeouts, 5xx, 429.
    Transient,
    /// Only failures where the request cannot have reached the server
    /// (connection refused, host not found), and 429/503 answers.
    OnlyUnsent,
    /// [`Retry::OnlyUnsent`], and no attempt starts at or after this instant
    /// (a rotating refresh journaled in a shared store: another host waits for
    /// its attempt window, so it must not send once the window is closing). On
    /// the clock that counts suspended time ([`BootInstant`]): a machine that
    /// slept through the window must not wake and send.
    OnlyUnsentBy(BootInstant),
    /// A request that is safe to repeat (`sfx api` GET/HEAD): any connection
    /// failure or timeout, and 429/503 answers; no other status.
    Idempotent,
    /// A request that must not be repeated once sent (`sfx api` POST, PATCH, …):
    /// only failures where it cannot have reached the server; no status at all.
    ConnectOnly,
}

/// Whether a request that did not succeed may have taken effect at the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// It certainly did not: it was never sent, or the server refused it (4xx,
    /// 429, 503) or redirected it.
    NotProcessed,
    /// It may have: no answer (timeout, dropped or cut-off connection), a 5xx
    /// other than 503, or a success answer sfx could not use.
    InDoubt,
}

impl Delivery {
    fn of_status(status: u16) -> Delivery {
        match status {
            300..=499 | 503 => Delivery::NotProcessed,
            _ => Delivery::InDoubt,
        }
    }
}

/// What to send.
pub struct Request<'a> {
    pub method: &'static str,
    pub url: String,
    pub form: Vec<(&'static str, String)>,
    pub bearer: Option<&'a Secret>,
    pub basic: Option<(&'a str, &'a str)>,
    pub retry: Retry,
}

/// What came back. `Debug` shows the body redacted, like a `-vv` trace.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
    pub url: String,
    pub retry_after: Option<String>,
    /// The `Location` of a redirect that was not followed.
    pub location: Option<String>,
    /// When the answer arrived, by the client's clock.
    pub received_at: chrono::DateTime<chrono::Utc>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("body", &redacted_body(&self.body))
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Reply {
    pub fn is_json(&self) -> bool {
        self.content_type.to_ascii_lowercase().contains("json")
            || self.body.trim_start().starts_with(['{', '['])
    }
}

/// What the retry loop needs to know about an answer.
struct Head {
    status: u16,
    retry_after: Option<String>,
}

/// A request whose answer is streamed ([`Http::send_stream`]).
pub struct StreamRequest<'a> {
    /// Any method (`GET`, `PATCH`, …); the caller checks it.
    pub method: &'a str,
    pub url: String,
    /// Headers as given, checked by the caller (no `Authorization`: see `bearer`).
    pub headers: Vec<(String, String)>,
    /// The exact bytes to send, the same on every attempt.
    pub body: Option<&'a [u8]>,
    pub bearer: Option<&'a Secret>,
    pub retry: Retry,
}

/// An answer whose body has not been read yet.
pub struct Streamed {
    pub status: u16,
    /// The status's standard reason phrase (`OK`), or empty.
    pub reason: String,
    /// `HTTP/1.1`.
    pub version: String,
    /// Response headers in the order received (names lower case).
    pub headers: Vec<(String, String)>,
    /// The body, unlimited, bytes as received (no decoding of any kind).
    pub body: ureq::BodyReader<'static>,
    pub url: String,
}

impl Streamed {
    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The HTTP client. Build one per run, lazily (commands without network never do).
pub struct Http {
    /// Through the proxy from the environment, if one is set.
    agent: ureq::Agent,
    /// Never through a proxy: for loopback targets.
    direct: ureq::Agent,
    proxy: Option<ureq::Proxy>,
    timeout: Duration,
    verbose: u8,
    /// Where "now" comes from (an HTTP-date `Retry-After` is relative to it).
    clock: std::sync::Arc<dyn crate::clock::Clock>,
}

impl Http {
    /// The bound of one attempt (`--timeout`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The clock this client waits on (back-off, `Retry-After`, the attempt
    /// window) and that login flows pace their deadlines by.
    pub fn clock(&self) -> &dyn crate::clock::Clock {
        &*self.clock
    }

    pub fn new(timeout: Duration, verbose: u8) -> Http {
        Http::with_clock(
            timeout,
            verbose,
            std::sync::Arc::new(crate::clock::SystemClock),
        )
    }

    pub fn with_clock(
        timeout: Duration,
        verbose: u8,
        clock: std::sync::Arc<dyn crate::clock::Clock>,
    ) -> Http {
        let proxy = ureq::Proxy::try_from_env();
        let agent = |proxy: Option<ureq::Proxy>| {
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                // Never follow a redirect: an OAuth request carries secrets in its
                // body, and a 30x from a token endpoint means a wrong URL.
                .max_redirects(0)
                .max_redirects_will_error(false)
                .timeout_global(Some(timeout))
                .user_agent(concat!("sfx/", env!("CARGO_PKG_VERSION")))
                .proxy(proxy)
                .tls_config(
                    ureq::tls::TlsConfig::builder()
                        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                        .build(),
                )
                .build()
                .new_agent()
        };
        Http {
            agent: agent(proxy.clone()),
            direct: agent(None),
            proxy,
            timeout,
            verbose,
            clock,
        }
    }

    /// The proxy a request to `url` goes through (`host:port`), if any.
    pub fn proxy_for(&self, url: &str) -> Option<String> {
        let proxy = self.proxy.as_ref()?;
        let parsed = url::Url::parse(url).ok()?;
        if parsed
            .host()
            .is_some_and(|h| crate::salesforce::url::is_loopback(&h))
        {
            return None;
        }
        let uri: ureq::http::Uri = url.parse().ok()?;
        if proxy.is_no_proxy(&uri) {
            return None;
        }
        Some(format!("{}:{}", proxy.host(), proxy.port()))
    }

    /// Send with retries; returns the final reply, or a network error (exit 5).
    pub fn send(&self, req: &Request<'_>) -> Result<Reply, Error> {
        self.send_tracked(req).0
    }

    /// [`Http::send`], also telling whether an attempt may have taken effect
    /// (for the final reply: judged by its status).
    pub fn send_tracked(&self, req: &Request<'_>) -> (Result<Reply, Error>, Delivery) {
        let sent = sent_secrets(req);
        self.with_retries(
            req.retry,
            |attempt| self.trace_request(req, attempt),
            || {
                // A server quoting back a secret sfx sent (a refresh token, a
                // client secret, bare in `error_description`): never shown,
                // whatever its shape (issue #24). A token response is kept as it is.
                self.once(req).map(|mut r| {
                    if r.status >= 400 || !r.body.contains("\"access_token\"") {
                        r.body = crate::secret::scrub(&r.body, &sent);
                    }
                    r
                })
            },
            |reply| Head {
                status: reply.status,
                retry_after: reply.retry_after.clone(),
            },
            |reply, elapsed| self.trace_reply(reply, elapsed, &sent),
        )
    }

    /// Send a request whose answer is read as it arrives (`sfx api`): any method,
    /// the caller's headers and body bytes, no body cap, and the same retry rules
    /// and redacted trace as every other request. Each attempt sends the same bytes.
    pub fn send_stream(&self, req: &StreamRequest<'_>) -> (Result<Streamed, Error>, Delivery) {
        self.with_retries(
            req.retry,
            |attempt| self.trace_stream_request(req, attempt),
            || self.stream_once(req),
            |s| Head {
                status: s.status,
                retry_after: s.header("retry-after").map(str::to_string),
            },
            |s, elapsed| self.trace_stream_reply(s, elapsed),
        )
    }

    fn stream_once(&self, req: &StreamRequest<'_>) -> Result<Streamed, Failure> {
        let via = self.proxy_for(&req.url);
        let agent = if via.is_some() {
            &self.agent
        } else {
            &self.direct
        };
        let fail = |e| Failure::from_ureq(e, &req.url, self.timeout, via.as_deref());
        let mut builder = ureq::http::Request::builder()
            .method(req.method)
            .uri(req.url.as_str());
        for (name, value) in &req.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(token) = req.bearer {
            builder = builder.header("Authorization", format!("Bearer {}", token.expose()));
        }
        let result = match req.body {
            Some(bytes) => builder
                .body(bytes)
                .map_err(|e| fail(ureq::Error::Http(e)))
                .and_then(|r| agent.run(r).map_err(fail)),
            None => builder
                .body(())
                .map_err(|e| fail(ureq::Error::Http(e)))
                .and_then(|r| agent.run(r).map_err(fail)),
        };
        let resp = result?;
        let (parts, body) = resp.into_parts();
        let headers = parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        Ok(Streamed {
            status: parts.status.as_u16(),
            reason: parts.status.canonical_reason().unwrap_or("").to_string(),
            version: format!("{:?}", parts.version),
            headers,
            body: body.into_reader(),
            url: req.url.clone(),
        })
    }

    fn once(&self, req: &Request<'_>) -> Result<Reply, Failure> {
        let auth = if let Some(token) = req.bearer {
            Some(format!("Bearer {}", token.expose()))
        } else {
            req.basic.map(|(id, secret)| {
                use base64::Engine;
                let raw = format!("{id}:{secret}");
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )
            })
        };
        let via = self.proxy_for(&req.url);
        let agent = if via.is_some() {
            &self.agent
        } else {
            &self.direct
        };
        let result = if req.method == "GET" {
            let mut r = agent.get(&req.url).header("Accept", "application/json");
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.call()
        } else {
            let mut r = agent.post(&req.url).header("Accept", "application/json");
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.send_form(req.form.iter().map(|(k, v)| (*k, v.as_str())))
        };
        let mut resp =
            result.map_err(|e| Failure::from_ureq(e, &req.url, self.timeout, via.as_deref()))?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .lossy_utf8(true)
            .read_to_string()
            .map_err(|e| Failure::in_body(e, &req.url, self.timeout, via.as_deref()))?;
        Ok(Reply {
            status,
            content_type,
            body,
            url: req.url.clone(),
            retry_after,
            location,
            received_at: self.clock.now(),
        })
    }
}
