//! The SFDX auth URL parser: never panics; what it accepts formats back to a URL
//! that parses to the same parts.
//! The body is `sfx::fuzzing::auth_url`, compiled and run on seeds by the normal tests.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sfx::fuzzing::auth_url(data));
