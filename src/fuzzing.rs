//! The bodies of the fuzz targets in `fuzz/` (cargo-fuzz, nightly): each takes
//! any bytes and must not panic, and checks what it can about its parser (a
//! written value reads back, a message holds no unsafe character).
//!
//! They live here, not in `fuzz/`, so the normal build compiles them and the
//! unit tests below run each on seeds: a fuzz target cannot rot when the API
//! it calls changes (they did once: `fuzz/` calls only this module). Not part
//! of sfx's interface.

use std::time::Duration;

use base64::Engine;
use chrono::DateTime;

use crate::lifecycle::expiry;
use crate::salesforce::auth_url::AuthUrl;
use crate::salesforce::errors::{explain, json_or_oauth_error};
use crate::salesforce::http::{Reply, redacted_body};
use crate::salesforce::jwt;
use crate::salesforce::types::{TokenResponse, Userinfo};
use crate::secret::{Secret, mask, redact_text};
use crate::store::Org;
use crate::store::metadata::Metadata;
use crate::text::{is_unsafe_char, sanitize};
use crate::timefmt;

/// A fixed "now" for every target (2026-11-23T…).
fn now() -> chrono::DateTime<chrono::Utc> {
    DateTime::from_timestamp(1_795_290_067, 0).unwrap_or_default()
}

/// An SFDX auth URL: a parsed one formats and parses back to the same.
pub fn auth_url(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    for input in [s.to_string(), format!("force://{s}")] {
        if let Ok(a) = AuthUrl::parse(&input) {
            let again = AuthUrl::format(
                &a.client_id,
                a.client_secret.as_ref(),
                &a.refresh_token,
                &a.instance_url,
            );
            let b = AuthUrl::parse(again.expose()).expect("a formatted auth URL parses");
            assert_eq!(a, b);
        }
    }
}

/// Epoch times and durations as users and servers write them.
pub fn epoch(data: &[u8]) {
    let now = now();
    let s = String::from_utf8_lossy(data);
    let mut found = vec![timefmt::parse_epoch(&s)];
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        found.push(timefmt::parse_epoch_value(&v));
    }
    for at in found.into_iter().flatten() {
        let _ = timefmt::relative(at, now);
        let _ = timefmt::expiry_phrase(at, now);
        let _ = timefmt::rfc3339(at);
        let _ = timefmt::local(at);
    }
    let _ = timefmt::parse_duration(&s);
}

/// A JWT's times: as the whole token, and as the payload of a well-formed one
/// (so the JSON layer is reached).
pub fn jwt(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = jwt::times(s);
    }
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let token = format!("{}.{}.sig", b64(br#"{"alg":"RS256"}"#), b64(data));
    let _ = jwt::times(&token);
}

/// The org metadata file: any bytes give a store or an error; an accepted file
/// writes back to the same store and is used (expiry from metadata alone).
pub fn metadata(data: &[u8]) {
    let Ok(meta) = Metadata::parse(data) else {
        return;
    };
    let now = now();
    let again = Metadata::parse(&meta.to_bytes()).expect("a written store reads back");
    assert_eq!(again, meta);
    let _ = meta.find("prod");
    for rec in meta.orgs.into_values() {
        let _ = expiry::after_mint(&rec, now);
        if let Some(e) = expiry::offline(&rec, now) {
            let _ = e.seconds_remaining(now);
            let _ = e.outlives(now, Duration::from_secs(600));
        }
        let _ = Org {
            record: (*rec).clone(),
            env: None,
        };
    }
}

/// Redaction and sanitising: what is shown holds no unsafe character.
pub fn redact(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let r = redact_text(&s);
    let out = sanitize(&r, 200);
    assert!(!out.chars().any(is_unsafe_char));
    let _ = mask(&s);
}

/// A server's answer (status, content type, body): parsed or explained, and
/// any message made of it holds no unsafe character.
pub fn response(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let status = 100 + (u16::from_le_bytes([data[0], data[1]]) % 500);
    let content_type = match data[2] % 4 {
        0 => "application/json;charset=UTF-8",
        1 => "text/html",
        2 => "text/plain",
        _ => "",
    };
    let body = String::from_utf8_lossy(&data[3..]).into_owned();
    let reply = Reply {
        status,
        content_type: content_type.into(),
        body: body.clone(),
        url: "https://acme.my.salesforce.com/services/oauth2/token".into(),
        retry_after: body.lines().next().map(str::to_string),
        location: body.lines().nth(1).map(str::to_string),
        received_at: now(),
    };
    let _ = reply.first_line();
    let _ = reply.retry_after();
    let _ = redacted_body(&body);
    match json_or_oauth_error(&reply) {
        Ok(Ok(map)) => {
            let v = serde_json::Value::Object(map);
            if let Ok(t) = serde_json::from_value::<TokenResponse>(v.clone()) {
                let _ = t.issued_at_time();
                let _ = t.org_and_user();
                let _ = t.signature_valid(Some(&Secret::new("secret")));
            }
            let _ = serde_json::from_value::<Userinfo>(v);
        }
        Ok(Err(oauth)) => {
            let e = explain(&oauth, "the refresh of org fuzz");
            assert!(!e.to_string().chars().any(is_unsafe_char));
        }
        Err(e) => assert!(!e.to_string().chars().any(is_unsafe_char)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeds each target starts from, plus bytes from a fixed generator: every
    /// body compiles, runs, and holds its own checks on them.
    fn inputs(seeds: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = seeds.iter().map(|s| s.to_vec()).collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in [0usize, 1, 2, 3, 7, 64, 300] {
            let mut v = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                v.push(x as u8);
            }
            out.push(v);
        }
        // Each seed cut short and with a byte flipped: near-valid input.
        for s in seeds {
            for cut in [s.len() / 2, s.len().saturating_sub(1)] {
                out.push(s[..cut].to_vec());
            }
            if !s.is_empty() {
                let mut v = s.to_vec();
                let i = v.len() / 3;
                v[i] ^= 0x5a;
                out.push(v);
            }
        }
        out
    }

    #[test]
    fn every_fuzz_body_runs_on_its_seeds() {
        let meta = br#"{"version":1,"default":"prod","orgs":{"prod":{"alias":"prod","instance_url":"https://acme.my.salesforce.com","flow":"auth_url","store":"file","issued_at":1795286467,"session_timeout_secs":7200,"has_refresh_token":true,"has_client_secret":false}}}"#;
        // The metadata seed must be accepted, or the target tests nothing past the parse.
        assert!(Metadata::parse(meta).is_ok(), "the metadata seed parses");
        for d in inputs(&[meta]) {
            metadata(&d);
        }
        let url: &[u8] = b"force://PlatformCLI::5Aep861.abc@acme.my.salesforce.com";
        assert!(AuthUrl::parse(std::str::from_utf8(url).unwrap()).is_ok());
        for d in inputs(&[url]) {
            auth_url(&d);
        }
        for d in inputs(&[b"1795290067", b"{\"exp\":1795290067}", b"10m", b"2h30m"]) {
            epoch(&d);
        }
        for d in inputs(&[br#"{"exp":1795290067,"iat":1795286467}"#]) {
            jwt(&d);
        }
        for d in inputs(&[b"00D5g000004ABCD!AQ0secretvalue\x1b[31m\r\n"]) {
            redact(&d);
        }
        let token = br#"{"access_token":"00D!AQ0x","instance_url":"https://acme.my.salesforce.com","id":"https://login.salesforce.com/id/00D5g000004ABCDEAU/0055g00000ABCDEAA4","issued_at":"1795286467000","signature":"x"}"#;
        let oauth =
            br#"{"error":"invalid_grant","error_description":"expired access/refresh token"}"#;
        let mut seeds: Vec<Vec<u8>> = Vec::new();
        for (st, ct, body) in [
            (200u16, 0u8, &token[..]),
            (400, 0, &oauth[..]),
            (503, 1, b"<html><body>Down for maintenance</body></html>"),
            (302, 2, b"\nhttps://evil.example/x"),
        ] {
            let mut v = (st - 100).to_le_bytes().to_vec();
            v.push(ct);
            v.extend_from_slice(body);
            seeds.push(v);
        }
        let seeds: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
        for d in inputs(&seeds) {
            response(&d);
        }
    }
}
