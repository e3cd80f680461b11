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

use crate::cli::ApiArgs;
use crate::context::Context;
use crate::error::Error;
use crate::exit::Exit;
use crate::output::Mode;
use crate::salesforce::http::{Request, Retry, StreamRequest, Streamed};
use crate::salesforce::url::host_of;
use crate::secret::Secret;
use crate::store::Org;
use crate::store::metadata::is_api_version;
use crate::text::sanitize;

mod answer;
mod request;

use answer::{error_summary, write_answer};
pub use request::DATA_LIMIT;
use request::{Call, check};

/// Where the org's API versions are listed (Salesforce serves it without a token).
pub const VERSIONS_PATH: &str = "/services/data";

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

#[cfg(test)]
mod tests {
    use super::answer::*;
    use super::request::*;
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
