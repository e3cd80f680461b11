//! Redaction and sanitising of text sfx quotes: total, and sanitised text has no
//! control or bidi characters.
//! The body is `sfx::fuzzing::redact`, compiled and run on seeds by the normal tests.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sfx::fuzzing::redact(data));
