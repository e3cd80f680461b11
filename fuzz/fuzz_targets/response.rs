//! The response decoders: classifying a reply (status, content type, body,
//! redirect, Retry-After) and decoding token, OAuth error and userinfo bodies.
//! Never panics, and no message carries a control character.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfx::salesforce::errors::{explain, json_or_oauth_error};
use sfx::salesforce::http::{Reply, redacted_body};
use sfx::salesforce::types::{TokenResponse, Userinfo};
use sfx::salesforce::url::is_unsafe_char;
use sfx::secret::Secret;

fuzz_target!(|data: &[u8]| {
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
            let e = explain(&oauth, "the refresh of org fuzz", "log in again");
            assert!(!e.to_string().chars().any(is_unsafe_char));
        }
        Err(e) => assert!(!e.to_string().chars().any(is_unsafe_char)),
    }
});
