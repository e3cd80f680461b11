//! Epoch parsing (`issued_at`, `exp`, numbers or numeric strings, seconds or
//! milliseconds) and the formatters that print the result: never panic.
//! The body is `sfx::fuzzing::epoch`, compiled and run on seeds by the normal tests.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sfx::fuzzing::epoch(data));
