//! `sfx api`'s request as the command line gives it: method, path, headers and
//! body, checked before the token or the network is touched.

use std::io::Read;

use crate::cli::ApiArgs;
use crate::error::Error;
use crate::text::sanitize;

/// The most `--data` reads from a file or stdin. Salesforce's REST API takes
/// bodies of up to about 50 MB; more belongs in the Bulk API.
pub const DATA_LIMIT: u64 = 64 * 1024 * 1024;

/// Headers sfx sets itself: giving them with `-H` is a usage error, never a
/// silent override (an `Authorization` of the user's would send a credential sfx
/// does not manage, and the framing headers would corrupt the request).
pub(super) const RESERVED: &[(&str, &str)] = &[
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

pub(super) const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// A request as checked from the command line, before any work.
pub(super) struct Call {
    pub(super) method: &'static str,
    pub(super) path: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Option<Vec<u8>>,
}

/// Everything the command line says, checked before the token or network is touched.
pub(super) fn check(args: &ApiArgs) -> Result<Call, Error> {
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
pub(super) fn check_path(path: &str) -> Result<(), Error> {
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
pub(super) fn unknown_placeholder(path: &str) -> Result<(), Error> {
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
pub(super) fn parse_header(h: &str) -> Result<(String, String), Error> {
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
pub(super) fn read_data(data: Option<&str>) -> Result<Option<Vec<u8>>, Error> {
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
