//! Reading `exp`/`iat`/`nbf` from a JWT access token: never panics, whether the
//! input is any string or three base64url parts of arbitrary bytes.
//! The body is `sfx::fuzzing::jwt`, compiled and run on seeds by the normal tests.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sfx::fuzzing::jwt(data));
