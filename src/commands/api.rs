//! `sfx api`: call the org's REST API with a valid token — Salesforce's own advice
//! ("try the call; on a 401 refresh; if that fails, log in again") as one command.
//!
//! The ladder: a token known to outlive `--min-valid` (else one refresh, under the
//! org's lock); the request; on a 401, the org read again under its lock (another
//! process may have stored a new token) or refreshed, and the request sent once
//! more with the same body bytes; a second 401 or a refused refresh is exit 4.
//! Only GET and HEAD are retried on 429/503 (and on connection failures); other
//! methods only when the request cannot have left this machine.
//!
//! The answer is streamed: status line and headers first with `-i`, then the body
//! to stdout as it arrives, bytes untouched, with no size cap. Only on a terminal is
//! a JSON body buffered and pretty-printed. This command writes its own stdout (like
//! `watch`): a body of any size cannot wait in a report.

use std::io::{IsTerminal, Read, Write};

use crate::cli::ApiArgs;
use crate::context::Context;
use crate::error::Error;
use crate::exit::Exit;
use crate::output::Mode;
use crate::salesforce::http::{Request, Retry, StreamRequest, Streamed};
use crate::salesforce::url::host_of;
use crate::secret::{Secret, redact_text};
use crate::store::Org;
use crate::store::metadata::is_api_version;
use crate::text::sanitize;

/// The most `--data` reads from a file or stdin. Salesforce's REST API takes
/// bodies of up to about 50 MB; more belongs in the Bulk API.
pub const DATA_LIMIT: u64 = 64 * 1024 * 1024;
/// How much of an error body is kept to quote its `errorCode: message`.
const ERROR_HEAD: usize = 64 * 1024;
/// The largest JSON body pretty-printed on a terminal; a larger one is shown as received.
const PRETTY_LIMIT: usize = 16 * 1024 * 1024;
/// Where the org's API versions are listed (Salesforce serves it without a token).
pub const VERSIONS_PATH: &str = "/services/data";

/// Headers sfx sets itself: giving them with `-H` is a usage error, never a
/// silent override (an `Authorization` of the user's would send a credential sfx
/// does not manage, and the framing headers would corrupt the request).
const RESERVED: &[(&str, &str)] = &[
    (
        "authorization",
        "sfx sends the org's access token itself; to send another credential, use curl",
    ),
    (
        "host",
        "sfx sends requests only to the org's instance URL, which sets Host",
    ),
    ("content-length", "sfx sets it from --data"),
    ("transfer-encoding", "sfx sets it from --data"),
    ("connection", "sfx manages its own connections"),
];

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// A request as checked from the command line, before any work.
struct Call {
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

pub fn run(args: &ApiArgs, ctx: &Context) -> Result<Exit, Error> {
    if ctx.mode == Mode::Json {
        return Err(Error::usage(
            "--json does not apply to `sfx api`: the body is printed as Salesforce sent it (JSON for the REST API)",
        ));
    }
    let call = check(args)?;
    let v = super::valid_token(ctx, args.min_valid)?;
    notes(&v.notes);
    let (mut org, mut token) = (v.org, v.token);
    let path = with_version(ctx, &org, &call.path)?;
    let retry = if matches!(call.method, "GET" | "HEAD") {
        Retry::Idempotent
    } else {
        Retry::ConnectOnly
    };
    let mut answer = send(ctx, &org, &token, &call, &path, retry)?;
    if answer.status == 401 {
        let why = error_summary(&mut answer);
        drop(answer);
        let again = super::after_rejection(ctx, &org, &token).map_err(|e| {
            e.map_message(|m| {
                format!("Salesforce rejected the access token (HTTP 401{why}), and no new one could be had: {m}")
            })
        })?;
        notes(&again.notes);
        (org, token) = (again.org, again.token);
        answer = send(ctx, &org, &token, &call, &path, retry)?;
        if answer.status == 401 {
            let why = error_summary(&mut answer);
            return Err(Error::relogin(
                format!(
                    "Salesforce rejected the access token of org {} again (HTTP 401{why}), right after {}",
                    org.name(),
                    if again.refreshed {
                        "a refresh"
                    } else {
                        "taking the one another sfx process had stored"
                    }
                ),
                crate::lifecycle::relogin_hint(&org),
            ));
        }
    }
    write_answer(answer, args, ctx, call.method == "HEAD")
}

fn notes(notes: &[String]) {
    for n in notes {
        crate::messages::say(&sanitize(n, 2000));
    }
}

/// Everything the command line says, checked before the token or network is touched.
fn check(args: &ApiArgs) -> Result<Call, Error> {
    check_path(&args.path)?;
    let body = read_data(args.data.as_deref())?;
    let method = match args.method.as_deref() {
        None if body.is_some() => "POST",
        None => "GET",
        Some(m) => METHODS
            .iter()
            .find(|k| k.eq_ignore_ascii_case(m.trim()))
            .copied()
            .ok_or_else(|| {
                Error::usage(format!(
                    "-X `{}` is not a method sfx sends; use one of {}",
                    sanitize(m, 40),
                    METHODS.join(", ")
                ))
            })?,
    };
    if body.is_some() && matches!(method, "GET" | "HEAD") {
        return Err(Error::usage(format!(
            "--data cannot go with -X {method}: Salesforce ignores a {method} body; put parameters in the PATH's query string (`?q=…`), or use -X POST"
        )));
    }
    let mut headers = Vec::new();
    for h in &args.headers {
        headers.push(parse_header(h)?);
    }
    let has = |name: &str, headers: &[(String, String)]| {
        headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
    };
    if !has("accept", &headers) {
        headers.push(("Accept".into(), "application/json".into()));
    }
    if body.is_some() && !has("content-type", &headers) {
        headers.push(("Content-Type".into(), "application/json".into()));
    }
    Ok(Call {
        method,
        path: args.path.clone(),
        headers,
        body,
    })
}

/// PATH is a path on the org's own instance: it starts with one `/`, and holds no
/// scheme, host, control character, backslash or fragment — so the token can go
/// nowhere but the instance URL.
fn check_path(path: &str) -> Result<(), Error> {
    let shown = sanitize(path, 120);
    let problem = if !path.starts_with('/') {
        Some(
            "it must start with `/` and is relative to the org's instance URL (a full URL is not accepted: sfx sends the token only to the org's own instance)",
        )
    } else if path.starts_with("//") {
        Some("`//` at its start would name another host")
    } else if path.chars().any(char::is_control) {
        Some("it holds control characters")
    } else if path.contains('\\') {
        Some("it holds a backslash, which some servers read as `/`")
    } else if path.contains('#') {
        Some("a `#fragment` is never sent; write `#` as %23")
    } else {
        None
    };
    match problem {
        Some(why) => Err(Error::usage(format!(
            "PATH `{shown}` is not usable: {why}; e.g. /services/data/{{version}}/limits"
        ))),
        None => unknown_placeholder(path),
    }
}

/// A `{…}` in the path (before any `?`) other than `{version}`, the one sfx
/// fills in, is a typo (`{verison}`), not a path: sent as it is it would be
/// `%7Bverison%7D` and a 404 that says nothing about the placeholder.
fn unknown_placeholder(path: &str) -> Result<(), Error> {
    let before_query = path.split('?').next().unwrap_or_default();
    let mut rest = before_query;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        let name = &after[..close];
        if name != "version" {
            let shown = sanitize(name, 40);
            let guess = if crate::context::closest(name, ["version"].into_iter()).is_some() {
                " (did you mean `{version}`?)"
            } else {
                ""
            };
            return Err(Error::usage(format!(
                "PATH holds `{{{shown}}}`, which sfx does not fill in{guess}: the one placeholder is `{{version}}`, the org's latest API version (e.g. /services/data/{{version}}/limits); write a literal brace as %7B / %7D"
            )));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

/// `Name: value`, with a valid header name and a value without control characters.
fn parse_header(h: &str) -> Result<(String, String), Error> {
    let shown = sanitize(h, 120);
    let Some((name, value)) = h.split_once(':') else {
        return Err(Error::usage(format!(
            "-H `{shown}` is not a header; write it as `Name: value`"
        )));
    };
    let name = name.trim();
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(tchar) {
        return Err(Error::usage(format!(
            "-H `{shown}`: `{}` is not a valid header name",
            sanitize(name, 60)
        )));
    }
    let value = value.trim();
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Error::usage(format!(
            "-H `{shown}`: a header value cannot hold control characters (line breaks would start another header)"
        )));
    }
    if let Some((_, why)) = RESERVED.iter().find(|(r, _)| name.eq_ignore_ascii_case(r)) {
        return Err(Error::usage(format!("-H {name} is not accepted: {why}")));
    }
    Ok((name.to_string(), value.to_string()))
}

/// `--data`: `@FILE`, `-` (stdin) or the text itself; at most [`DATA_LIMIT`] bytes.
fn read_data(data: Option<&str>) -> Result<Option<Vec<u8>>, Error> {
    let Some(data) = data else { return Ok(None) };
    let limit_msg = |from: &str| {
        Error::usage(format!(
            "--data {from} is larger than {} MiB, the most sfx sends in one request (Salesforce's REST API takes about 50 MB; use the Bulk API for more)",
            DATA_LIMIT / (1024 * 1024)
        ))
    };
    let bounded = |r: &mut dyn Read, from: &str| -> Result<Vec<u8>, Error> {
        let mut buf = Vec::new();
        r.take(DATA_LIMIT + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::usage(format!("cannot read --data {from}: {e}")))?;
        if buf.len() as u64 > DATA_LIMIT {
            return Err(limit_msg(from));
        }
        Ok(buf)
    };
    if data == "-" {
        return bounded(&mut std::io::stdin().lock(), "- (stdin)").map(Some);
    }
    if let Some(path) = data.strip_prefix('@') {
        if path.is_empty() {
            return Err(Error::usage(
                "--data @ needs a file name after the @ (or `-` for stdin)",
            ));
        }
        let from = format!("@{}", sanitize(path, 200));
        let mut f = std::fs::File::open(path)
            .map_err(|e| Error::usage(format!("cannot read --data {from}: {e}")))?;
        if f.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(Error::usage(format!(
                "--data {from} is a directory, not a file"
            )));
        }
        return bounded(&mut f, &from).map(Some);
    }
    if data.len() as u64 > DATA_LIMIT {
        return Err(limit_msg("TEXT"));
    }
    Ok(Some(data.as_bytes().to_vec()))
}

/// `{version}` in the path becomes `v` + the org's latest API version.
fn with_version(ctx: &Context, org: &Org, path: &str) -> Result<String, Error> {
    if !path.contains("{version}") {
        return Ok(path.to_string());
    }
    let v = api_version(ctx, org)?;
    Ok(path.replace("{version}", &format!("v{v}")))
}

/// The org's latest REST API version: remembered in the metadata after the first
/// answer from `/services/data` (environment orgs, which store nothing, ask each run).
fn api_version(ctx: &Context, org: &Org) -> Result<String, Error> {
    if let Some(v) = org
        .record
        .api_version
        .as_deref()
        .filter(|v| is_api_version(v))
    {
        return Ok(v.to_string());
    }
    let url = format!(
        "{}{VERSIONS_PATH}",
        org.record.instance_url.trim_end_matches('/')
    );
    // The versions list needs no token: none is sent.
    let reply = ctx.http().send(&Request {
        method: "GET",
        url,
        form: vec![],
        bearer: None,
        basic: None,
        retry: Retry::Transient,
    })?;
    let host = host_of(&reply.url);
    #[derive(serde::Deserialize)]
    struct Version {
        version: String,
    }
    let latest = if reply.status == 200 {
        serde_json::from_str::<Vec<Version>>(&reply.body)
            .ok()
            .and_then(|list| {
                list.into_iter()
                    .map(|v| v.version)
                    .filter(|v| is_api_version(v))
                    .max_by_key(|v| {
                        let (a, b) = v.split_once('.').unwrap_or((v, "0"));
                        (a.parse::<u64>().unwrap_or(0), b.parse::<u64>().unwrap_or(0))
                    })
            })
    } else {
        None
    };
    let Some(latest) = latest else {
        return Err(Error::network(format!(
            "{host} answered {VERSIONS_PATH} with HTTP {} and no list of API versions{}, so {{version}} cannot be filled in; write the version in the PATH (e.g. /services/data/v62.0/…)",
            reply.status,
            if reply.body.trim().is_empty() {
                String::new()
            } else {
                format!(" (\"{}\")", reply.first_line())
            }
        )));
    };
    // Only a cache: failing to remember it is not worth failing the call for
    // (an org from the environment keeps it in memory only).
    let _ = ctx.orgs().update_record(org.name(), &mut |rec| {
        rec.api_version = Some(latest.clone())
    });
    Ok(latest)
}

/// The full URL of `path` on the org's instance; its origin must stay the instance's.
fn full_url(instance: &str, path: &str) -> Result<String, Error> {
    let joined = format!("{}{path}", instance.trim_end_matches('/'));
    let bad = |why: &str| {
        Error::usage(format!(
            "PATH `{}` is not usable: {why}",
            sanitize(path, 120)
        ))
    };
    let url = url::Url::parse(&joined).map_err(|e| bad(&e.to_string()))?;
    let base = url::Url::parse(instance).map_err(|e| bad(&e.to_string()))?;
    if url.origin() != base.origin() {
        return Err(bad("it leads away from the org's instance URL"));
    }
    Ok(url.to_string())
}

fn send(
    ctx: &Context,
    org: &Org,
    token: &Secret,
    call: &Call,
    path: &str,
    retry: Retry,
) -> Result<Streamed, Error> {
    // Built from the org as it is now: a refresh may have moved the instance.
    let url = full_url(&org.record.instance_url, path)?;
    ctx.http()
        .send_stream(&StreamRequest {
            method: call.method,
            url,
            headers: call.headers.clone(),
            body: call.body.as_deref(),
            bearer: Some(token),
            retry,
        })
        .0
}

/// `: errorCode: message` from a Salesforce error body (read, at most
/// [`ERROR_HEAD`] bytes), or its first line; empty when there is nothing to quote.
fn error_summary(answer: &mut Streamed) -> String {
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
fn describe_error(body: &[u8]) -> String {
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
fn write_answer(
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
fn stream(
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

fn cut_off(answer: &Streamed, total: u64, e: &std::io::Error) -> Error {
    Error::network(format!(
        "the answer from {} was cut off after {total} bytes of its body ({}); the output is incomplete",
        host_of(&answer.url),
        sanitize(&e.to_string(), 120)
    ))
}

/// On a terminal: a JSON body read whole (up to [`PRETTY_LIMIT`]) and indented,
/// made safe to show; a larger or unparsable one is written as received.
fn pretty(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_on_the_instance() {
        for ok in [
            "/services/data/",
            "/services/data/{version}/limits",
            "/services/data/v62.0/query?q=SELECT Id FROM Account",
            "/services/apexrest/x/@y",
            "/services/data/{version}/query?q={literal}",
            "/services/apexrest/x{",
        ] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "services/data",
            "https://evil.example/x",
            "//evil.example/x",
            "/a\nb",
            "/a\u{1b}[31m",
            "/\\evil.example",
            "/x#frag",
            "",
            "/services/data/{verison}/limits",
            "/services/data/{version}/sobjects/{Account}",
            "/services/data/{}/limits",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        let base = "https://acme.my.salesforce.com";
        assert_eq!(
            full_url(base, "/services/data/v62.0/query?q=SELECT Id").unwrap(),
            "https://acme.my.salesforce.com/services/data/v62.0/query?q=SELECT%20Id"
        );
        assert_eq!(
            full_url(base, "/a/../../b").unwrap(),
            "https://acme.my.salesforce.com/b"
        );
        assert!(full_url(base, "/@evil.example").unwrap().starts_with(base));
    }

    #[test]
    fn headers_are_checked_and_authorization_is_refused() {
        assert_eq!(
            parse_header("X-Test:  a b ").unwrap(),
            ("X-Test".to_string(), "a b".to_string())
        );
        assert_eq!(
            parse_header("Sforce-Query-Options: batchSize=200")
                .unwrap()
                .1,
            "batchSize=200"
        );
        for bad in [
            "NoColon",
            ": empty name",
            "Bad Name: x",
            "X: a\r\nInjected: y",
            "Authorization: Bearer other",
            "authorization: x",
            "Host: evil.example",
            "Content-Length: 3",
        ] {
            assert!(parse_header(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn salesforce_errors_are_quoted_as_code_and_message() {
        assert_eq!(
            describe_error(
                br#"[{"message":"The requested resource does not exist","errorCode":"NOT_FOUND"}]"#
            ),
            "NOT_FOUND: The requested resource does not exist"
        );
        assert_eq!(
            describe_error(br#"{"error":"invalid_grant","error_description":"bad"}"#),
            "invalid_grant: bad"
        );
        assert_eq!(
            describe_error(b"[{\"errorCode\":\"X\",\"message\":\"a\\u001b[31mb\"}]"),
            "X: a [31mb"
        );
        assert_eq!(describe_error(b"\n plain words\nmore"), "plain words");
        assert!(
            !describe_error(
                br#"[{"errorCode":"E","message":"token 00D5g000004ABCD!AQ0secretvalue"}]"#
            )
            .contains("AQ0secret")
        );
    }

    #[test]
    fn versions_are_plain_numbers() {
        assert!(is_api_version("62.0"));
        assert!(!is_api_version("v62.0"));
        assert!(!is_api_version("62"));
        assert!(!is_api_version("62.0/../x"));
    }
}
