//! Reading `exp`/`iat`/`nbf` from a JWT access token: never panics, whether the
//! input is any string or three base64url parts of arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfx::salesforce::jwt;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = jwt::times(s);
    }
    // Also as the payload of a well-formed token, so the JSON layer is reached.
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let token = format!("{}.{}.sig", b64(br#"{"alg":"RS256"}"#), b64(data));
    let _ = jwt::times(&token);
});
