//! The org metadata file reader: any bytes give a store or an error, never a
//! panic; an accepted file is used (expiry from metadata alone) without a panic
//! and writes back to the same store.
//! The body is `sfx::fuzzing::metadata`, compiled and run on seeds by the normal tests.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sfx::fuzzing::metadata(data));
