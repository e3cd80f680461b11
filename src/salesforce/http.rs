//! HTTP transport: one blocking ureq agent, per-attempt timeouts, retries with
//! jittered exponential back-off, a 1 MiB body cap, no redirects, and a `-v` trace
//! with every secret redacted.
//!
//! Retries (contract, "Safety rules"): connection errors, timeouts, 5xx and 429 are
//! tried again, 3 attempts in all, honouring `Retry-After` (capped); a 4xx never.
//! A request that must not be repeated once it may have reached the server (a
//! refresh with a rotating refresh token: a replay revokes the whole family) asks
//! for [`Retry::OnlyUnsent`].

use std::io::Write;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::salesforce::url::sanitize;
use crate::secret::Secret;

/// Bodies larger than this are refused.
pub const BODY_LIMIT: u64 = 1024 * 1024;
const ATTEMPTS: u32 = 3;
const RETRY_AFTER_CAP: Duration = Duration::from_secs(10);

/// Form fields and JSON keys whose values are never traced.
const SECRET_KEYS: &[&str] = &[
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "password",
    "assertion",
    "code",
    "code_verifier",
    "device_code",
    "signature",
];

/// Which failures may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Connection errors, timeouts, 5xx, 429.
    Transient,
    /// Only failures where the request cannot have reached the server
    /// (connection refused, host not found), and 429/503 answers.
    OnlyUnsent,
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

/// What came back.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
    pub url: String,
    pub retry_after: Option<String>,
    /// The `Location` of a redirect that was not followed.
    pub location: Option<String>,
}

impl Reply {
    pub fn is_json(&self) -> bool {
        self.content_type.to_ascii_lowercase().contains("json")
            || self.body.trim_start().starts_with(['{', '['])
    }
}

/// The HTTP client. Build one per run, lazily (commands without network never do).
pub struct Http {
    agent: ureq::Agent,
    timeout: Duration,
    verbose: u8,
}

impl Http {
    pub fn new(timeout: Duration, verbose: u8) -> Http {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_global(Some(timeout))
            .user_agent(concat!("sfx/", env!("CARGO_PKG_VERSION")))
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                    .build(),
            )
            .build();
        Http {
            agent: config.new_agent(),
            timeout,
            verbose,
        }
    }

    /// Send with retries; returns the final reply, or a network error (exit 5).
    pub fn send(&self, req: &Request<'_>) -> Result<Reply, Error> {
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            self.trace_request(req, attempt);
            let outcome = self.once(req);
            match outcome {
                Ok(reply) => {
                    self.trace_reply(&reply, started.elapsed());
                    let transient = reply.status == 429 || reply.status >= 500;
                    let may_retry = match req.retry {
                        Retry::Transient => transient,
                        Retry::OnlyUnsent => reply.status == 429 || reply.status == 503,
                    };
                    if may_retry && attempt < ATTEMPTS {
                        let wait = retry_after(&reply).unwrap_or_else(|| backoff(attempt));
                        self.trace_line(&format!(
                            "retrying in {} ms (HTTP {})",
                            wait.as_millis(),
                            reply.status
                        ));
                        std::thread::sleep(wait);
                        attempt += 1;
                        continue;
                    }
                    return Ok(reply);
                }
                Err(failure) => {
                    self.trace_line(&format!("! {}", failure.message));
                    let may_retry = match req.retry {
                        Retry::Transient => failure.retryable,
                        Retry::OnlyUnsent => failure.retryable && failure.unsent,
                    };
                    if may_retry && attempt < ATTEMPTS {
                        let wait = backoff(attempt);
                        self.trace_line(&format!("retrying in {} ms", wait.as_millis()));
                        std::thread::sleep(wait);
                        attempt += 1;
                        continue;
                    }
                    let tries = if attempt > 1 {
                        format!(" (after {attempt} attempts)")
                    } else {
                        String::new()
                    };
                    return Err(Error::Network(format!("{}{tries}", failure.message)));
                }
            }
        }
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
        let result = if req.method == "GET" {
            let mut r = self
                .agent
                .get(&req.url)
                .header("Accept", "application/json");
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.call()
        } else {
            let mut r = self
                .agent
                .post(&req.url)
                .header("Accept", "application/json");
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.send_form(req.form.iter().map(|(k, v)| (*k, v.as_str())))
        };
        let mut resp = result.map_err(|e| Failure::from_ureq(e, &req.url, self.timeout))?;
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
            .map_err(|e| Failure::from_ureq(e, &req.url, self.timeout))?;
        Ok(Reply {
            status,
            content_type,
            body,
            url: req.url.clone(),
            retry_after,
            location,
        })
    }

    fn trace_line(&self, line: &str) {
        if self.verbose > 0 {
            let _ = writeln!(std::io::stderr(), "sfx: {line}");
        }
    }

    fn trace_request(&self, req: &Request<'_>, attempt: u32) {
        if self.verbose == 0 {
            return;
        }
        let n = if attempt > 1 {
            format!(" (attempt {attempt})")
        } else {
            String::new()
        };
        self.trace_line(&format!("> {} {}{n}", req.method, req.url));
        if req.bearer.is_some() {
            self.trace_line(">   Authorization: Bearer <redacted>");
        }
        if let Some((id, _)) = req.basic {
            self.trace_line(&format!(">   Authorization: Basic <{id}:redacted>"));
        }
        if !req.form.is_empty() {
            let fields: Vec<String> = req
                .form
                .iter()
                .map(|(k, v)| {
                    if SECRET_KEYS.contains(k) {
                        format!("{k}=<redacted>")
                    } else {
                        format!("{k}={}", sanitize(v, 200))
                    }
                })
                .collect();
            self.trace_line(&format!(">   {}", fields.join("&")));
        }
    }

    fn trace_reply(&self, reply: &Reply, elapsed: Duration) {
        if self.verbose == 0 {
            return;
        }
        self.trace_line(&format!(
            "< {} {} ({} bytes, {} ms)",
            reply.status,
            sanitize(&reply.content_type, 80),
            reply.body.len(),
            elapsed.as_millis()
        ));
        if self.verbose > 1 {
            self.trace_line(&format!("<   {}", redacted_body(&reply.body)));
        }
    }
}

impl Reply {
    /// What to quote of a body that is not JSON: an HTML page's `<title>` (what
    /// a maintenance page says), else its first non-empty line without tags; made
    /// safe to print and cut short.
    pub fn first_line(&self) -> String {
        let lower = self.body.to_ascii_lowercase();
        if let (Some(a), Some(b)) = (lower.find("<title>"), lower.find("</title>"))
            && a + 7 <= b
        {
            let title = self.body[a + 7..b].trim();
            if !title.is_empty() {
                return sanitize(title, 120);
            }
        }
        let line = self
            .body
            .lines()
            .map(strip_tags)
            .map(|l| l.trim().to_string())
            .find(|l| !l.is_empty())
            .unwrap_or_default();
        sanitize(&line, 120)
    }
}

fn strip_tags(line: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in line.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

fn retry_after(reply: &Reply) -> Option<Duration> {
    let secs: u64 = reply.retry_after.as_deref()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(RETRY_AFTER_CAP))
}

/// 250 ms, 500 ms, … doubled per attempt, capped at 2 s, with ±50 % jitter.
fn backoff(attempt: u32) -> Duration {
    let base = 250u64.saturating_mul(1 << (attempt - 1).min(3)).min(2_000);
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    let frac = u16::from_le_bytes(b) as u64 % 1000; // 0..999
    Duration::from_millis(base / 2 + base * frac / 1000)
}

/// A JSON body with secret-valued keys replaced; other bodies cut to one line.
pub fn redacted_body(body: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(mut v) => {
            redact_value(&mut v);
            sanitize(&v.to_string(), 2000)
        }
        Err(_) => sanitize(body.lines().next().unwrap_or(""), 200),
    }
}

fn redact_value(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if SECRET_KEYS.contains(&k.as_str()) {
                    *val = serde_json::Value::String("<redacted>".into());
                } else {
                    redact_value(val);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_value),
        _ => {}
    }
}

struct Failure {
    message: String,
    retryable: bool,
    /// The request cannot have reached the server.
    unsent: bool,
}

impl Failure {
    fn from_ureq(e: ureq::Error, url: &str, timeout: Duration) -> Failure {
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| {
                u.host_str().map(|h| match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_string(),
                })
            })
            .unwrap_or_else(|| url.to_string());
        match e {
            ureq::Error::Timeout(_) => Failure {
                message: format!(
                    "{host} did not answer within {} (raise it with --timeout)",
                    humantime::format_duration(timeout)
                ),
                retryable: true,
                unsent: false,
            },
            ureq::Error::HostNotFound => Failure {
                message: format!("the host {host} was not found (check the instance or login URL)"),
                retryable: true,
                unsent: true,
            },
            ureq::Error::ConnectionFailed => Failure {
                message: format!("could not connect to {host}"),
                retryable: true,
                unsent: true,
            },
            ureq::Error::BodyExceedsLimit(_) => Failure {
                message: format!(
                    "{host} sent a response larger than 1 MiB; that is not what Salesforce sends (check the URL)"
                ),
                retryable: false,
                unsent: false,
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
                }
            }
            other => Failure {
                message: format!(
                    "the request to {host} failed: {}",
                    sanitize(&other.to_string(), 200)
                ),
                retryable: true,
                unsent: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_capped() {
        for attempt in 1..6 {
            let d = backoff(attempt).as_millis() as u64;
            let base = (250u64 << (attempt - 1).min(3)).min(2000);
            assert!(d >= base / 2 && d <= base + base / 2, "{attempt}: {d}");
        }
    }

    #[test]
    fn html_pages_are_quoted_by_their_title_or_first_text() {
        let mut r = Reply {
            status: 503,
            content_type: "text/html".into(),
            body: "<!DOCTYPE html>\n<html><head><title>Salesforce - Down for Maintenance</title></head>".into(),
            url: String::new(),
            retry_after: None,
            location: None,
        };
        assert_eq!(r.first_line(), "Salesforce - Down for Maintenance");
        r.body = "<!DOCTYPE html>\n<p>Bad \x1b[31mgateway</p>".into();
        assert_eq!(r.first_line(), "Bad  [31mgateway");
        r.body = "plain text\nsecond".into();
        assert_eq!(r.first_line(), "plain text");
    }

    #[test]
    fn bodies_are_redacted_in_traces() {
        let b = r#"{"access_token":"00D!x","refresh_token":"5Aep","instance_url":"https://a","nested":{"client_secret":"s"}}"#;
        let r = redacted_body(b);
        assert!(
            !r.contains("00D!x") && !r.contains("5Aep") && !r.contains("\"s\""),
            "{r}"
        );
        assert!(r.contains("https://a"));
    }
}
