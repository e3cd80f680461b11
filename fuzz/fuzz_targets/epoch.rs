//! Epoch parsing (`issued_at`, `exp`, numbers or numeric strings, seconds or
//! milliseconds) and the formatters that print the result: never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfx::timefmt;

fuzz_target!(|data: &[u8]| {
    let now = chrono::DateTime::from_timestamp(1_795_290_067, 0).unwrap();
    let s = String::from_utf8_lossy(data);
    let mut found = vec![timefmt::parse_epoch(&s)];
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        found.push(timefmt::parse_epoch_value(&v));
    }
    for at in found.into_iter().flatten() {
        let _ = timefmt::relative(at, now);
        let _ = timefmt::expiry_phrase(at, now);
        let _ = timefmt::rfc3339(at);
        let _ = timefmt::local(at);
    }
    let _ = timefmt::parse_duration(&s);
});
