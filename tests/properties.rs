//! Hostile input (issue #5, item 5), property-tested in the normal suite: the
//! SFDX auth URL parser, epoch parsing, the JWT and token-response decoders, the
//! reply classifier and the metadata reader never panic on any input, round-trip
//! what they should, and never echo secrets. (The same entry points are fuzzed by
//! the targets in `fuzz/`.) The binary is also run on corrupted store files.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::json;

use sfx::context::Org;
use sfx::salesforce::auth_url::AuthUrl;
use sfx::salesforce::errors::json_or_oauth_error;
use sfx::salesforce::http::Reply;
use sfx::salesforce::jwt;
use sfx::salesforce::types::TokenResponse;
use sfx::secret::redact_text;
use sfx::store::metadata::Metadata;
use sfx::text::{is_unsafe_char, sanitize};
use sfx::timefmt::{parse_epoch, parse_epoch_value};

use crate::common::*;

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_290_067, 0).unwrap()
}

/// Parts of an auth URL as sfdx-core accepts them.
fn part(min: usize) -> impl Strategy<Value = String> {
    (
        proptest::string::string_regex(&format!("[A-Za-z0-9._-]{{{min},40}}")).unwrap(),
        0..=2usize,
    )
        .prop_map(|(s, pad)| format!("{s}{}", "=".repeat(if s.is_empty() { 0 } else { pad })))
}

fn host() -> impl Strategy<Value = (String, bool)> {
    prop_oneof![
        proptest::string::string_regex("[a-z][a-z0-9-]{0,20}(\\.[a-z][a-z0-9-]{0,20}){1,3}")
            .unwrap()
            .prop_map(|h| (h, false)),
        (0..=255u8, 0..=255u8, 1..=254u8).prop_map(|(a, b, c)| (format!("127.{a}.{b}.{c}"), true)),
        Just(("localhost".to_string(), true)),
        Just(("[::1]".to_string(), true)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn auth_url_parse_never_panics(s in any::<String>()) {
        let _ = AuthUrl::parse(&s);
        let _ = AuthUrl::parse(&format!("force://{s}"));
    }

    #[test]
    fn valid_auth_urls_parse_and_round_trip(
        id in part(1), secret in part(0), rt in part(1), (h, loopback) in host(),
        port in proptest::option::of(1..=65535u16),
    ) {
        let host = match port { Some(p) => format!("{h}:{p}"), None => h.clone() };
        let url = format!("force://{id}:{secret}:{rt}@{host}");
        let a = AuthUrl::parse(&url).unwrap();
        prop_assert_eq!(&a.client_id, &id);
        prop_assert_eq!(a.client_secret.as_ref().map(|s| s.expose().to_string()).unwrap_or_default(), secret.clone());
        prop_assert_eq!(a.refresh_token.expose(), rt.as_str());
        prop_assert_eq!(a.instance_url.starts_with("http://"), loopback);
        let again = AuthUrl::format(&a.client_id, a.client_secret.as_ref(), &a.refresh_token, &a.instance_url);
        prop_assert_eq!(again.expose(), url);
    }

    #[test]
    fn a_rejected_auth_url_never_repeats_its_secrets(
        id in "[ -~]{0,20}", secret in "[ -~]{8,30}", rt in "[ -~]{8,60}", host in "[ -~]{0,30}",
    ) {
        if let Err(e) = AuthUrl::parse(&format!("force://{id}:{secret}:{rt}@{host}")) {
            let msg = e.to_string();
            prop_assert!(!msg.contains(&rt) && !msg.contains(&secret), "{}", msg);
        }
    }

    #[test]
    fn epoch_parsing_never_panics(s in any::<String>(), f in any::<f64>(), i in any::<i64>()) {
        let _ = parse_epoch(&s);
        let _ = parse_epoch_value(&json!(f));
        let _ = parse_epoch_value(&json!(i));
        let _ = parse_epoch_value(&json!(i.to_string()));
    }

    #[test]
    fn epochs_in_seconds_and_milliseconds_are_told_apart(secs in 0i64..100_000_000_000, ms in 100_000_000_000i64..8_000_000_000_000_000) {
        prop_assert_eq!(parse_epoch(&secs.to_string()), DateTime::from_timestamp(secs, 0));
        prop_assert_eq!(parse_epoch_value(&json!(secs)), DateTime::from_timestamp(secs, 0));
        prop_assert_eq!(parse_epoch(&ms.to_string()), DateTime::from_timestamp_millis(ms));
        prop_assert_eq!(parse_epoch_value(&json!(ms.to_string())), DateTime::from_timestamp_millis(ms));
    }

    #[test]
    fn jwt_decoding_never_panics(s in any::<String>(), payload in any::<Vec<u8>>(), header in any::<Vec<u8>>()) {
        let _ = jwt::times(&s);
        let _ = jwt::times(&format!("{}.{}.sig", b64(&header), b64(&payload)));
        let _ = jwt::times(&format!("{}.{}.sig", b64(br#"{"alg":"RS256"}"#), b64(&payload)));
    }

    #[test]
    fn jwt_exp_is_read_exactly(exp in 0i64..100_000_000_000, iat in proptest::option::of(0i64..100_000_000_000), extra in "[a-z]{0,10}") {
        let mut claims = json!({"exp": exp, "aud": extra});
        if let Some(i) = iat { claims["iat"] = json!(i); }
        let token = format!("{}.{}.sig", b64(br#"{"alg":"RS256","typ":"JWT"}"#), b64(claims.to_string().as_bytes()));
        let t = jwt::times(&token).unwrap();
        prop_assert_eq!(t.exp.timestamp(), exp);
        prop_assert_eq!(t.iat.map(|i| i.timestamp()), iat);
    }

    #[test]
    fn replies_are_classified_without_panics_or_control_characters(
        status in 100u16..600, ct in "[ -~]{0,40}", body in any::<String>(), location in proptest::option::of(any::<String>()),
        retry_after in proptest::option::of("[ -~]{0,30}"),
    ) {
        let reply = Reply { status, content_type: ct, body, url: "https://acme.my.salesforce.com/services/oauth2/token".into(), retry_after, location, received_at: now() };
        let line = reply.first_line();
        prop_assert!(!line.chars().any(is_unsafe_char) && line.chars().count() <= 121);
        let _ = reply.retry_after();
        if let Err(e) = json_or_oauth_error(&reply) {
            prop_assert!(!e.to_string().chars().any(is_unsafe_char), "{}", e);
        }
    }

    #[test]
    fn quoted_bodies_never_carry_a_token(
        status in prop::sample::select(vec![200u16, 302, 400, 404, 429, 500, 503]),
        key in prop::sample::select(vec!["access_token", "refresh_token", "client_secret", "password", "code", "token"]),
        secret in "[A-Za-z0-9._]{12,40}", before in "[ -~]{0,40}", after in "[ -~]{0,40}", json_like in any::<bool>(),
    ) {
        let body = if json_like {
            format!("{{\"{key}\":\"{secret}\", {before}")
        } else {
            format!("{before} {key}={secret}&{after}")
        };
        let reply = Reply { status, content_type: "text/plain".into(), body: body.clone(), url: "https://h/x".into(), retry_after: None, location: Some(format!("https://h/cb?{key}={secret}")), received_at: now() };
        prop_assert!(!reply.first_line().contains(&secret));
        if let Err(e) = json_or_oauth_error(&reply) {
            prop_assert!(!e.to_string().contains(&secret), "{}", e);
        }
        prop_assert!(!sfx::salesforce::http::redacted_body(&body).contains(&secret));
    }

    #[test]
    fn token_responses_decode_without_panics(v in arb_json(3)) {
        if let Ok(t) = serde_json::from_value::<TokenResponse>(v) {
            let _ = t.issued_at_time();
            let _ = t.org_and_user();
            let _ = t.signature_valid(Some(&sfx::secret::Secret::new("s")));
        }
    }

    #[test]
    fn sanitize_and_redact_are_total(s in any::<String>(), max in 0usize..500) {
        let out = sanitize(&s, max);
        prop_assert!(!out.chars().any(is_unsafe_char));
        prop_assert!(out.chars().count() <= max + 1);
        let _ = redact_text(&s);
    }

    #[test]
    fn metadata_parsing_never_panics(bytes in any::<Vec<u8>>(), v in arb_json(4)) {
        let _ = Metadata::parse(&bytes);
        if let Ok(m) = Metadata::parse(v.to_string().as_bytes()) {
            for rec in m.orgs.into_values() {
                let org = Org { record: (*rec).clone(), env: None };
                let _ = sfx::lifecycle::expiry::offline(&org.record, now());
                let _ = sfx::lifecycle::expiry::after_mint(&org.record, now());
            }
        }
    }

    #[test]
    fn metadata_round_trips_and_survives_damage(
        recs in prop::collection::vec(arb_record(), 0..4), cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(), byte in any::<u8>(),
    ) {
        let mut m = Metadata { version: 1, default: recs.first().map(|r| r["alias"].as_str().unwrap().to_string()), ..Metadata::default() };
        for r in recs {
            let rec = serde_json::from_value(r).unwrap();
            let rec: sfx::store::metadata::OrgRecord = rec;
            m.orgs.insert(rec.alias.clone(), std::sync::Arc::new(rec));
        }
        let bytes = m.to_bytes();
        prop_assert_eq!(Metadata::parse(&bytes).unwrap(), m);
        // Damaged copies: a clear error or a valid store, never a panic.
        let truncated = &bytes[..cut.index(bytes.len())];
        let mut flipped = bytes.clone();
        let i = flip.index(flipped.len());
        flipped[i] = byte;
        for damaged in [truncated, &flipped[..]] {
            if let Ok(m) = Metadata::parse(damaged) {
                for rec in m.orgs.into_values() {
                    let _ = sfx::lifecycle::expiry::offline(&Org { record: (*rec).clone(), env: None }.record, now());
                }
            }
        }
    }
}

fn arb_json(depth: u32) -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        any::<String>().prop_map(serde_json::Value::from),
        "[0-9]{10,13}".prop_map(serde_json::Value::from),
        Just(json!(
            "https://login.salesforce.com/id/00D5g000004ABCDEAA/0055g00000XYZ12AAA"
        )),
        Just(json!("http://127.0.0.1:1")),
    ];
    let keys = prop::sample::select(vec![
        "access_token",
        "refresh_token",
        "instance_url",
        "id",
        "issued_at",
        "signature",
        "scope",
        "version",
        "default",
        "orgs",
        "alias",
        "flow",
        "store",
        "expiry",
        "exp",
        "iat",
        "session_timeout_secs",
        "username",
        "login_url",
        "client_id",
        "checked_at",
        "source",
        "access_token_masked",
        "x",
    ]);
    leaf.prop_recursive(depth, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(keys.clone().prop_map(str::to_string), inner, 0..8)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Any i64, often near the ends of chrono's range (where adding a timeout overflows).
fn edge_i64() -> impl Strategy<Value = i64> {
    const MAX_SECS: i64 = 8_210_266_876_799; // chrono's DateTime::MAX_UTC
    prop_oneof![
        any::<i64>(),
        (MAX_SECS - 40_000_000)..=MAX_SECS,
        (-MAX_SECS - 1_000)..=(-MAX_SECS + 40_000_000),
        0i64..4_000_000_000,
    ]
}

fn arb_record() -> impl Strategy<Value = serde_json::Value> {
    (
        "[a-z][a-z0-9._-]{0,12}",
        proptest::option::of("[a-z]{1,8}@example\\.com"),
        prop::sample::select(vec![
            "https://acme.my.salesforce.com",
            "http://127.0.0.1:8080",
        ]),
        prop::sample::select(vec!["auth_url", "web", "jwt", "access_token"]),
        prop::sample::select(vec!["file", "keychain"]),
        proptest::option::of(edge_i64()),
        1u64..=31_622_400,
        proptest::option::of((edge_i64(), edge_i64())),
        any::<bool>(),
    )
        .prop_map(
            |(alias, username, url, flow, store, issued, timeout, exp, rotates)| {
                let mut r = json!({
                    "alias": alias, "username": username, "instance_url": url, "flow": flow,
                    "store": store, "issued_at": issued, "session_timeout_secs": timeout,
                    "has_refresh_token": true, "rotates_refresh_token": rotates,
                    "access_token_masked": "00D5g…Q9f2", "org_id": null, "user_id": null,
                    "login_url": null, "client_id": "3MVG9x", "expiry": null,
                    "has_client_secret": false, "refresh_token_used_at": null,
                });
                if let Some((e, c)) = exp {
                    r["expiry"] =
                        json!({"exp": e, "iat": null, "source": "introspection", "checked_at": c});
                }
                r
            },
        )
}

/// The binary, on store files damaged in many ways: a clear error naming the
/// file (exit 1), never a panic.
#[test]
fn damaged_store_files_give_a_clear_error_naming_the_file() {
    let t = T::new();
    t.login("prod");
    let path = t.home().join("orgs.json");
    let good = std::fs::read(&path).unwrap();
    let mut cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\xff\xfe\x00".to_vec(),
        b"[]".to_vec(),
        b"{\"orgs\": 7}".to_vec(),
        b"{\"orgs\":{\"prod\":{\"alias\":\"prod\"}}}".to_vec(),
        String::from_utf8_lossy(&good)
            .replace("7200", "99999999999999999999")
            .into_bytes(),
        String::from_utf8_lossy(&good)
            .replace("7200", "9223372036854775807")
            .into_bytes(),
        String::from_utf8_lossy(&good)
            .replace("\"alias\": \"prod\"", "\"alias\": \"../../etc\"")
            .into_bytes(),
    ];
    for n in (1..good.len()).step_by(good.len() / 12 + 1) {
        cases.push(good[..n].to_vec());
    }
    for (i, bad) in cases.iter().enumerate() {
        std::fs::write(&path, bad).unwrap();
        for args in [&["orgs"][..], &["token"], &["expires", "--offline"]] {
            let out = t.sfx().args(args).output().unwrap();
            let err = text(&out.stderr);
            assert!(!err.contains("panicked"), "case {i}: {err}");
            assert_eq!(out.status.code(), Some(1), "case {i} {args:?}: {err}");
            assert!(
                err.contains(&format!(
                    "the org metadata file {} is damaged",
                    path.display()
                )),
                "case {i}: {err}"
            );
            assert!(err.lines().count() == 1, "case {i}: one line: {err}");
        }
    }
    std::fs::write(&path, &good).unwrap();
    // Valid but extreme numbers (issued at the end of time, a one-year session):
    // answered, not a panic (this overflowed the clock once).
    t.edit_org("prod", |o| {
        o["issued_at"] = 8_210_266_876_799i64.into();
        o["session_timeout_secs"] = 31_622_400.into();
    });
    for args in [
        &["orgs"][..],
        &["expires", "--offline"],
        &["expires", "--offline", "--json"],
    ] {
        let out = t.sfx().args(args).output().unwrap();
        assert!(
            !text(&out.stderr).contains("panicked"),
            "{args:?}: {}",
            text(&out.stderr)
        );
        // One of the contract's exit codes: not a panic (101), not a signal.
        assert!(
            out.status.code().is_some_and(|c| c <= 6),
            "{args:?}: {:?}",
            out.status
        );
    }
    std::fs::write(&path, &good).unwrap();
    let secrets = t.home().join("secrets.json");
    std::fs::write(&secrets, b"{\"prod\": {\"access-token\": 7").unwrap();
    let out = t.sfx().args(["token"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&format!(
        "the secrets file {} is damaged",
        secrets.display()
    )));
}
