//! The org metadata file reader: any bytes give a store or an error, never a
//! panic; an accepted file is used (expiry from metadata alone) without a panic
//! and writes back to the same store.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfx::context::Org;
use sfx::store::metadata::Metadata;

fuzz_target!(|data: &[u8]| {
    let Ok(meta) = Metadata::parse(data) else {
        return;
    };
    let now = chrono::DateTime::from_timestamp(1_795_290_067, 0).unwrap();
    let again = Metadata::parse(&meta.to_bytes()).expect("a written store reads back");
    assert_eq!(again, meta);
    let _ = meta.find("prod");
    for rec in meta.orgs.into_values() {
        let _ = sfx::tokens::after_mint(&rec, now);
        let org = Org {
            record: (*rec).clone(),
            env: None,
        };
        if let Some(e) = sfx::tokens::offline(&org, now) {
            let _ = e.seconds_remaining(now);
            let _ = e.outlives(now, std::time::Duration::from_secs(600));
        }
    }
});
