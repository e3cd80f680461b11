//! `sfx api`'s answer: streamed to stdout as it arrives, pretty-printed only on a
//! terminal, and an error body quoted as Salesforce's `errorCode: message`.

use std::io::{IsTerminal, Read, Write};

use crate::cli::ApiArgs;
use crate::context::Context;
use crate::error::Error;
use crate::exit::Exit;
use crate::output::Mode;
use crate::salesforce::http::Streamed;
use crate::salesforce::url::host_of;
use crate::secret::redact_text;
use crate::text::sanitize;

/// How much of an error body is kept to quote its `errorCode: message`.
pub(super) const ERROR_HEAD: usize = 64 * 1024;
/// The largest JSON body pretty-printed on a terminal; a larger one is shown as received.
pub(super) const PRETTY_LIMIT: usize = 16 * 1024 * 1024;

/// `: errorCode: message` from a Salesforce error body (read, at most
/// [`ERROR_HEAD`] bytes), or its first line; empty when there is nothing to quote.
pub(super) fn error_summary(answer: &mut Streamed) -> String {
    let mut head = Vec::new();
    let _ = (&mut answer.body)
        .take(ERROR_HEAD as u64)
        .read_to_end(&mut head);
    let s = describe_error(&head);
    if s.is_empty() { s } else { format!(": {s}") }
}

/// Salesforce's REST errors are `[{"errorCode","message"}]` (sometimes one object,
/// and OAuth's `{"error","error_description"}`): `errorCode: message`, joined by
/// `; `. Anything else: its first line. Made safe to print, secrets redacted.
pub(super) fn describe_error(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one = |v: &serde_json::Value| -> Option<String> {
        let s = |k: &str| v.get(k).and_then(|x| x.as_str());
        match (
            s("errorCode").or(s("error")),
            s("message").or(s("error_description")),
        ) {
            (Some(c), Some(m)) => Some(format!("{c}: {m}")),
            (Some(c), None) => Some(c.to_string()),
            (None, Some(m)) => Some(m.to_string()),
            (None, None) => None,
        }
    };
    let said = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Array(items)) => {
            let parts: Vec<String> = items.iter().filter_map(one).take(5).collect();
            (!parts.is_empty()).then(|| parts.join("; "))
        }
        Ok(v) => one(&v),
        Err(_) => None,
    };
    let said = said.unwrap_or_else(|| {
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
            .chars()
            .take(400)
            .collect()
    });
    sanitize(&redact_text(&said), 300)
}

/// Write the answer (status line and headers with `-i`, then the body) and say
/// what it means.
pub(super) fn write_answer(
    mut answer: Streamed,
    args: &ApiArgs,
    ctx: &Context,
    head_only: bool,
) -> Result<Exit, Error> {
    let quiet = ctx.mode == Mode::Quiet;
    let status = answer.status;
    let failed = status >= 400;
    let mut out = std::io::stdout().lock();
    let mut kept = Vec::new();
    let written = (|| -> std::io::Result<Result<(), Error>> {
        if args.include && !quiet {
            let mut head = format!("{} {} {}\r\n", answer.version, status, answer.reason);
            for (k, v) in &answer.headers {
                // Values as sent, but a control or bidi character in one is
                // shown as an escape: it never reaches the terminal.
                head.push_str(&format!("{k}: {}\r\n", crate::text::escape(v)));
            }
            head.push_str("\r\n");
            out.write_all(head.as_bytes())?;
            out.flush()?;
        }
        if head_only {
            return Ok(Ok(()));
        }
        let json = answer
            .header("content-type")
            .is_some_and(|t| t.to_ascii_lowercase().contains("json"));
        if !quiet && json && std::io::stdout().is_terminal() {
            return pretty(&mut answer, &mut out, &mut kept, failed);
        }
        stream(&mut answer, &mut out, &mut kept, failed, quiet)
    })();
    drop(out);
    match written {
        Ok(Ok(())) => {}
        // A closed stdout (`sfx api … | head -1`) ends quietly.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(Exit::Ok),
        Err(e) => {
            return Err(Error::Other(format!(
                "cannot write the answer to stdout: {e}"
            )));
        }
        Ok(Err(e)) => return Err(e),
    }
    let host = host_of(&answer.url);
    let said = || {
        let s = describe_error(&kept);
        if s.is_empty() { s } else { format!(": {s}") }
    };
    match status {
        0..400 => Ok(Exit::Ok),
        429 => Err(Error::network(format!(
            "{host} answered HTTP 429 (too many requests){}; the org's API limits may be spent, try again later",
            said()
        ))),
        400..500 => Err(Error::Other(format!(
            "{host} answered HTTP {status}{}",
            said()
        ))),
        _ => Err(Error::network(format!(
            "{host} answered HTTP {status} (a server error){}; Salesforce may be busy or in maintenance, try again later",
            said()
        ))),
    }
}

/// Copy the body to stdout as it arrives (nothing with `-q`), keeping the first
/// [`ERROR_HEAD`] bytes of an error body to quote it. The outer error is stdout's,
/// the inner one the network's.
pub(super) fn stream(
    answer: &mut Streamed,
    out: &mut impl Write,
    kept: &mut Vec<u8>,
    failed: bool,
    quiet: bool,
) -> std::io::Result<Result<(), Error>> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = match answer.body.read(&mut buf) {
            Ok(0) => return Ok(Ok(())),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Ok(Err(cut_off(answer, total, &e))),
        };
        total += n as u64;
        if failed && kept.len() < ERROR_HEAD {
            let room = ERROR_HEAD - kept.len();
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        if !quiet {
            out.write_all(&buf[..n])?;
            out.flush()?;
        }
    }
}

pub(super) fn cut_off(answer: &Streamed, total: u64, e: &std::io::Error) -> Error {
    Error::network(format!(
        "the answer from {} was cut off after {total} bytes of its body ({}); the output is incomplete",
        host_of(&answer.url),
        sanitize(&e.to_string(), 120)
    ))
}

/// On a terminal: a JSON body read whole (up to [`PRETTY_LIMIT`]) and indented,
/// made safe to show; a larger or unparsable one is written as received.
pub(super) fn pretty(
    answer: &mut Streamed,
    out: &mut impl Write,
    kept: &mut Vec<u8>,
    failed: bool,
) -> std::io::Result<Result<(), Error>> {
    let mut body = Vec::new();
    if let Err(e) = (&mut answer.body)
        .take(PRETTY_LIMIT as u64 + 1)
        .read_to_end(&mut body)
    {
        out.write_all(&body)?;
        return Ok(Err(cut_off(answer, body.len() as u64, &e)));
    }
    if failed {
        kept.extend_from_slice(&body[..body.len().min(ERROR_HEAD)]);
    }
    if body.len() > PRETTY_LIMIT {
        out.write_all(&body)?;
        return stream(answer, out, kept, false, false);
    }
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v) => {
            let text = serde_json::to_string_pretty(&v).unwrap_or_default();
            // serde_json escapes C0 controls inside strings, so a raw line break is
            // the layout's; C1 controls and bidi overrides it leaves raw are escaped.
            let safe: String = text
                .lines()
                .map(crate::output::terminal_safe_json)
                .collect::<Vec<_>>()
                .join("\n");
            out.write_all(safe.as_bytes())?;
            out.write_all(b"\n")?;
        }
        Err(_) => out.write_all(&body)?,
    }
    out.flush()?;
    Ok(Ok(()))
}
