//! Redaction and sanitising of text sfx quotes: total, and sanitised text has no
//! control or bidi characters.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfx::salesforce::url::{is_unsafe_char, sanitize};
use sfx::secret::{mask, redact_text};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let r = redact_text(&s);
    let out = sanitize(&r, 200);
    assert!(!out.chars().any(is_unsafe_char));
    let _ = mask(&s);
});
