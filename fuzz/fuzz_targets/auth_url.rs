//! The SFDX auth URL parser: never panics; what it accepts formats back to a URL
//! that parses to the same parts.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfx::salesforce::auth_url::AuthUrl;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    for input in [s.to_string(), format!("force://{s}")] {
        if let Ok(a) = AuthUrl::parse(&input) {
            let again = AuthUrl::format(
                &a.client_id,
                a.client_secret.as_ref(),
                &a.refresh_token,
                &a.instance_url,
            );
            let b = AuthUrl::parse(&again).expect("a formatted auth URL parses");
            assert_eq!(a, b);
        }
    }
});
