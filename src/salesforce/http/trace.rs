//! The `-v` trace: request and reply lines with every secret redacted (form fields,
//! bearer tokens, basic-auth passwords, and secret-looking JSON keys in bodies).

use std::time::Duration;

use super::*;

impl Http {
    pub(super) fn trace_line(&self, line: &str) {
        if self.verbose > 0 {
            crate::messages::trace(line);
        }
    }

    /// The first lines of a request's trace: `> METHOD URL`, which attempt, the
    /// proxy, and a redacted bearer (shared by [`Http::send`] and [`Http::send_stream`]).
    pub(super) fn trace_request_line(&self, method: &str, url: &str, attempt: u32, bearer: bool) {
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

    pub(super) fn trace_request(&self, req: &Request<'_>, attempt: u32) {
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

    pub(super) fn trace_stream_request(&self, req: &StreamRequest<'_>, attempt: u32) {
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

    pub(super) fn trace_stream_reply(&self, s: &Streamed, elapsed: Duration) {
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

    pub(super) fn trace_reply(&self, reply: &Reply, elapsed: Duration, sent: &[&str]) {
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

/// The secret values a request carries: its secret form fields, its bearer
/// token, its basic-auth password.
pub(super) fn sent_secrets<'r>(req: &'r Request<'_>) -> Vec<&'r str> {
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

pub(super) fn redact_value(v: &mut serde_json::Value) {
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
