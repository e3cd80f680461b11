//! The response decoders: classifying a reply (status, content type, body,
//! redirect, Retry-After) and decoding token, OAuth error and userinfo bodies.
//! Never panics, and no message carries a control character.
//! The body is `sfx::fuzzing::response`, compiled and run on seeds by the normal tests.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sfx::fuzzing::response(data));
