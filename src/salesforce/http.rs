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

use std::time::{Duration, Instant};

use crate::error::Error;
use crate::secret::{SECRET_KEYS, Secret, redact_text};
use crate::text::sanitize;

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
    /// its attempt window, so it must not send once the window is closing).
    OnlyUnsentBy(Instant),
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

    /// The retry loop shared by buffered ([`Http::send_tracked`]) and streamed
    /// ([`Http::send_stream`]) requests: `once` makes one attempt, `head` tells
    /// its status, and the rules of [`Retry`] decide whether to try again.
    fn with_retries<T>(
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
            let started = Instant::now();
            if let Retry::OnlyUnsentBy(by) = retry
                && started >= by
            {
                // Checked right before each attempt: a process paused past its
                // window (SIGSTOP, a VM pause) never sends on waking.
                self.trace_line("! not sent: its attempt window has closed");
                return (
                    Err(Error::network(format!(
                        "the request was not sent: its attempt window closed before it could go (the process was paused or slowed for {} or more), and another process may already be waiting to check the token",
                        humantime::format_duration(Duration::from_secs(
                            started.saturating_duration_since(by).as_secs().max(1)
                        ))
                    ))),
                    doubt,
                );
            }
            trace_attempt(attempt);
            match once() {
                Ok(answer) => {
                    trace_answer(&answer, started.elapsed());
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
                        std::thread::sleep(wait);
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
                        std::thread::sleep(wait);
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

    fn trace_line(&self, line: &str) {
        if self.verbose > 0 {
            crate::messages::trace(line);
        }
    }

    /// The first lines of a request's trace: `> METHOD URL`, which attempt, the
    /// proxy, and a redacted bearer (shared by [`Http::send`] and [`Http::send_stream`]).
    fn trace_request_line(&self, method: &str, url: &str, attempt: u32, bearer: bool) {
        let n = if attempt > 1 {
            format!(" (attempt {attempt})")
        } else {
            String::new()
        };
        let via = self
            .proxy_for(url)
            .map(|p| format!(" (via proxy {p})"))
            .unwrap_or_default();
        self.trace_line(&format!(
            "> {} {}{n}{via}",
            sanitize(method, 20),
            sanitize(&redact_text(url), 300)
        ));
        if bearer {
            self.trace_line(">   Authorization: Bearer <redacted>");
        }
    }

    fn trace_request(&self, req: &Request<'_>, attempt: u32) {
        if self.verbose == 0 {
            return;
        }
        self.trace_request_line(req.method, &req.url, attempt, req.bearer.is_some());
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
                        format!("{k}={}", sanitize(&redact_text(v), 200))
                    }
                })
                .collect();
            self.trace_line(&format!(">   {}", fields.join("&")));
        }
    }

    fn trace_stream_request(&self, req: &StreamRequest<'_>, attempt: u32) {
        if self.verbose == 0 {
            return;
        }
        self.trace_request_line(req.method, &req.url, attempt, req.bearer.is_some());
        for (name, value) in &req.headers {
            // A header the user added may carry a credential of its own.
            let lower = name.to_ascii_lowercase();
            let secret = [
                "auth", "cookie", "token", "secret", "key", "session", "password",
            ]
            .iter()
            .any(|w| lower.contains(w));
            let shown = if secret {
                "<redacted>".to_string()
            } else {
                sanitize(&redact_text(value), 200)
            };
            self.trace_line(&format!(">   {}: {shown}", sanitize(name, 80)));
        }
        if let Some(body) = req.body {
            self.trace_line(&format!(">   ({} bytes of body)", body.len()));
            if self.verbose > 1 {
                self.trace_line(&format!(
                    ">   {}",
                    redacted_body(&String::from_utf8_lossy(body))
                ));
            }
        }
    }

    fn trace_stream_reply(&self, s: &Streamed, elapsed: Duration) {
        if self.verbose == 0 {
            return;
        }
        self.trace_line(&format!(
            "< {} {} ({} ms to the headers)",
            s.status,
            sanitize(s.header("content-type").unwrap_or(""), 80),
            elapsed.as_millis()
        ));
        if self.verbose > 1 {
            for (name, value) in &s.headers {
                self.trace_line(&format!(
                    "<   {}: {}",
                    sanitize(name, 80),
                    sanitize(&redact_text(value), 200)
                ));
            }
        }
    }

    fn trace_reply(&self, reply: &Reply, elapsed: Duration, sent: &[&str]) {
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
            self.trace_line(&format!(
                "<   {}",
                redacted_body(&crate::secret::scrub(&reply.body, sent))
            ));
        }
    }
}

impl Reply {
    /// What to quote of a body that is not JSON: an HTML page's `<title>` (what a
    /// maintenance page says in one line), else its text with the tags removed
    /// (`<br>` and block tags read as spaces, so sentences stay apart); other
    /// bodies by their first non-empty line, as sent. Made safe to print (control
    /// characters and anything that looks like a secret removed) and cut short.
    pub fn first_line(&self) -> String {
        let mut cut = self.body.len().min(8192);
        while !self.body.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut head = &self.body[..cut];
        let html = self.content_type.to_ascii_lowercase().contains("html")
            || head.trim_start().starts_with('<');
        if html && cut < self.body.len() {
            // Cut inside a tag (`… shortly. <table bord`): that tag is markup,
            // not text, so it goes before the tags are stripped.
            head = drop_unfinished_tag(head);
        }
        let line = match html_title(head) {
            Some(title) => html_text(title),
            None if html => html_text(head),
            None => head
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or_default()
                .to_string(),
        };
        let cut: String = line.chars().take(400).collect();
        sanitize(&redact_text(&cut), 120)
    }

    /// How long the server asked to wait (`Retry-After`), when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        retry_after(self)
    }
}

/// `html` without a tag (or comment) that opens at its end and never closes.
fn drop_unfinished_tag(html: &str) -> &str {
    let Some(lt) = html.rfind('<') else {
        return html;
    };
    let after = &html[lt + 1..];
    let opens_tag = after
        .chars()
        .next()
        .is_none_or(|c| c.is_ascii_alphabetic() || matches!(c, '/' | '!' | '?'));
    let unfinished = if after.starts_with("!--") {
        !after.contains("-->")
    } else {
        !after.contains('>')
    };
    if opens_tag && unfinished {
        &html[..lt]
    } else {
        html
    }
}

/// The `<title>` of an HTML page (what a maintenance page says in one line).
fn html_title(body: &str) -> Option<&str> {
    let head = body.get(..body.len().min(8192)).unwrap_or(body);
    let lower = head.to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let end = open_end + lower[open_end..].find("</title")?;
    let title = head[open_end..end].trim();
    (!title.is_empty()).then_some(title)
}

/// The text of an HTML fragment: tags removed, `<br>` and block-level tags read
/// as spaces, `<script>`/`<style>` contents and comments dropped, a few entities
/// decoded, runs of white space collapsed. A `<` that does not open a tag (`a < b`,
/// `<3`) is text and stays.
fn html_text(html: &str) -> String {
    const BLOCK: &[&str] = &[
        "br",
        "p",
        "div",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "li",
        "ul",
        "ol",
        "tr",
        "td",
        "th",
        "table",
        "hr",
        "pre",
        "blockquote",
        "section",
        "article",
        "header",
        "footer",
        "body",
        "html",
        "head",
        "title",
        "center",
        "main",
        "nav",
        "dd",
        "dt",
        "dl",
        "form",
    ];
    let mut out = String::new();
    let mut rest = html;
    let mut skip_until: Option<&str> = None;
    while let Some(lt) = rest.find('<') {
        if skip_until.is_none() {
            out.push_str(&rest[..lt]);
        }
        let after = &rest[lt + 1..];
        let opens_tag = after
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '/' | '!' | '?'));
        let end = if after.starts_with("!--") {
            after.find("-->").map(|e| e + 3)
        } else {
            after.find('>').map(|e| e + 1)
        };
        // `x<y but <b>`: a "tag" that holds another `<` is text.
        let end = end.filter(|e| !after[..e - 1].contains('<'));
        let (true, Some(end)) = (opens_tag, end) else {
            if skip_until.is_none() {
                out.push('<');
            }
            rest = after;
            continue;
        };
        let tag = &after[..end - 1];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        match skip_until {
            Some(closing) if tag.starts_with('/') && name == closing => skip_until = None,
            Some(_) => {}
            None if !tag.starts_with('/') && (name == "script" || name == "style") => {
                skip_until = Some(if name == "script" { "script" } else { "style" });
            }
            None if BLOCK.contains(&name.as_str()) => out.push(' '),
            None => {}
        }
        rest = &after[end..];
    }
    if skip_until.is_none() {
        out.push_str(rest);
    }
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3).
fn retry_after(reply: &Reply) -> Option<Duration> {
    parse_retry_after(reply.retry_after.as_deref()?, reply.received_at)
}

/// `Retry-After` received at `received_at` (an HTTP date counts from then).
fn parse_retry_after(value: &str, received_at: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let secs = at.timestamp().saturating_sub(received_at.timestamp());
    Some(Duration::from_secs(secs.max(0) as u64))
}

/// 250 ms, 500 ms, … doubled per attempt, capped at 2 s, with ±50 % jitter.
fn backoff(attempt: u32) -> Duration {
    crate::backoff::delay(
        attempt,
        Duration::from_millis(250),
        Duration::from_secs(2),
        0.5,
        crate::backoff::jitter(),
    )
}

/// The secret values a request carries: its secret form fields, its bearer
/// token, its basic-auth password.
fn sent_secrets<'r>(req: &'r Request<'_>) -> Vec<&'r str> {
    let mut out: Vec<&str> = req
        .form
        .iter()
        .filter(|(k, _)| SECRET_KEYS.contains(k))
        .map(|(_, v)| v.as_str())
        .collect();
    out.extend(req.bearer.map(Secret::expose));
    out.extend(req.basic.map(|(_, p)| p));
    out
}

/// A JSON body with secret-valued keys replaced; other bodies cut to one line,
/// with anything that looks like a secret replaced.
pub fn redacted_body(body: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(mut v) => {
            redact_value(&mut v);
            sanitize(&redact_text(&v.to_string()), 2000)
        }
        Err(_) => {
            let line: String = body
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(400)
                .collect();
            sanitize(&redact_text(&line), 200)
        }
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
    /// ureq's own error, kept as the cause of the final [`Error::Network`].
    source: Option<ureq::Error>,
}

impl Failure {
    /// A failure while reading the body: the answer had begun, so the request was
    /// delivered; a cut connection here is a truncated answer.
    fn in_body(e: ureq::Error, url: &str, timeout: Duration, via: Option<&str>) -> Failure {
        let host = super::url::host_of(url);
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

    fn from_ureq(e: ureq::Error, url: &str, timeout: Duration, via: Option<&str>) -> Failure {
        let host = super::url::host_of(url);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_failure_keeps_ureqs_error_as_its_cause() {
        // A port nothing listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let http = Http::new(Duration::from_secs(2), 0);
        let err = http
            .send(&Request {
                method: "POST",
                url: format!("http://127.0.0.1:{port}/services/oauth2/token"),
                form: Vec::new(),
                bearer: None,
                basic: None,
                retry: Retry::OnlyUnsent,
            })
            .unwrap_err();
        assert_eq!(err.exit(), crate::exit::Exit::Network, "{err}");
        assert!(err.to_string().contains("127.0.0.1"), "{err}");
        let cause = std::error::Error::source(&err).expect("the cause is kept");
        assert!(cause.downcast_ref::<ureq::Error>().is_some(), "{cause:?}");
    }

    #[test]
    fn a_rotating_refresh_whose_window_closed_is_never_sent() {
        // A process resumed (SIGCONT) after its attempt window: nothing leaves.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let http = Http::new(Duration::from_secs(2), 0);
        let (result, delivery) = http.send_tracked(&Request {
            method: "POST",
            url: format!("http://127.0.0.1:{port}/services/oauth2/token"),
            form: vec![("refresh_token", "5Aep-spent".into())],
            bearer: None,
            basic: None,
            retry: Retry::OnlyUnsentBy(Instant::now()),
        });
        let err = result.unwrap_err();
        assert!(err.to_string().contains("was not sent"), "{err}");
        assert_eq!(delivery, Delivery::NotProcessed);
        assert!(listener.accept().is_err(), "a connection was made");
    }

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
            received_at: chrono::Utc::now(),
        };
        assert_eq!(r.first_line(), "Salesforce - Down for Maintenance");
        r.body = "<!DOCTYPE html>\n<p>Bad \x1b[31mgateway</p>".into();
        assert_eq!(r.first_line(), "Bad  [31mgateway");
        r.content_type = "text/plain".into();
        r.body = "plain text\nsecond".into();
        assert_eq!(r.first_line(), "plain text");
        // Issue #11: sentences split by <br> and block tags stay apart; text
        // between < and > that is not a tag stays.
        r.content_type = "text/html".into();
        r.body = "<html><body><h1>Down for maintenance.</h1><p>We are sorry.<br>Back at 22:00.<br/>Thanks</p></body></html>".into();
        assert_eq!(
            r.first_line(),
            "Down for maintenance. We are sorry. Back at 22:00. Thanks"
        );
        r.body = "<p>load < 3 and x<y but <b>bold</b>ly <3</p><script>var a='<p>no</p>';</script><!-- hidden -->end".into();
        assert_eq!(r.first_line(), "load < 3 and x<y but boldly <3 end");
        r.body = "<title>Maintenance &amp; <b>upgrade</b></title>".into();
        assert_eq!(r.first_line(), "Maintenance & upgrade");
        r.content_type = "text/plain".into();
        r.body = "error: a<b and <c> kept".into();
        assert_eq!(r.first_line(), "error: a<b and <c> kept");
    }

    #[test]
    fn a_page_cut_inside_a_tag_is_quoted_without_the_cut_tag() {
        // The 8 KiB that are read end inside `<table border=…>`.
        let mut body = String::from("<html><head><style>");
        let text = "</style></head><body><p>We'll be back shortly. <table bord";
        body.push_str(&"x".repeat(8192 - body.len() - text.len()));
        body.push_str(text);
        body.push_str("er=\"0\"><tr><td>status</td></tr></table></body></html>");
        let r = Reply {
            status: 503,
            content_type: "text/html".into(),
            body,
            url: String::new(),
            retry_after: None,
            location: None,
            received_at: chrono::Utc::now(),
        };
        assert_eq!(r.first_line(), "We'll be back shortly.");
        assert_eq!(drop_unfinished_tag("a <3"), "a <3");
        assert_eq!(drop_unfinished_tag("a <b>c"), "a <b>c");
        assert_eq!(drop_unfinished_tag("a <!-- x"), "a ");
        assert_eq!(drop_unfinished_tag("a <"), "a ");
    }

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let mut r = Reply {
            status: 503,
            content_type: String::new(),
            body: String::new(),
            url: String::new(),
            retry_after: Some(" 7 ".into()),
            location: None,
            // Time is an input: the date is read against when the answer arrived.
            received_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        };
        assert_eq!(r.retry_after(), Some(Duration::from_secs(7)));
        let later = r.received_at + chrono::Duration::seconds(120);
        r.retry_after = Some(later.format("%a, %d %b %Y %H:%M:%S GMT").to_string());
        assert_eq!(r.retry_after(), Some(Duration::from_secs(120)));
        r.retry_after = Some("Wed, 21 Oct 2015 07:28:00 GMT".into());
        assert_eq!(
            r.retry_after(),
            Some(Duration::ZERO),
            "a date in the past: now"
        );
        r.retry_after = Some("soon".into());
        assert_eq!(r.retry_after(), None);
        r.body = r#"{"access_token":"00D5g000004ABCD!AQ0secret"}"#.into();
        assert!(!format!("{r:?}").contains("AQ0secret"));
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
