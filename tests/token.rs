//! `sfx token`: no request while fresh; one refresh when not; racing callers
//! make one request and print the same token.

use crate::common::*;

#[test]
fn a_fresh_token_is_printed_with_no_request() {
    let t = T::new();
    let token = t.login("prod");
    t.fake.clear_requests();
    t.sfx()
        .args(["token"])
        .assert()
        .success()
        .stdout(format!("{token}\n"));
    assert_eq!(t.fake.requests().len(), 0);
}

#[test]
fn a_token_with_less_than_min_valid_left_is_refreshed_first() {
    let t = T::new();
    let old = t.login("prod");
    t.fake.clear_requests();
    let out = t
        .sfx()
        .args(["token", "--min-valid", "3h"])
        .output()
        .unwrap();
    let printed = text(&out.stdout).trim().to_string();
    assert_ne!(printed, old);
    assert_eq!(printed, t.access_token("prod"));
    assert!(t.fake.is_active(&printed));
    assert_eq!(t.token_requests(), 1);
}

#[test]
fn twenty_racing_calls_on_an_expired_token_make_one_request_and_agree() {
    let t = T::new();
    t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    t.login("prod");
    t.edit_org("prod", |o| o["issued_at"] = (now() - 3 * 3600).into());
    t.fake.clear_requests();
    let children: Vec<_> = (0..20)
        .map(|_| {
            t.std_sfx()
                .arg("token")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for o in &outs {
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    let first = text(&outs[0].stdout);
    assert!(
        outs.iter().all(|o| text(&o.stdout) == first),
        "all print the same token"
    );
    assert_eq!(t.token_requests(), 1, "exactly one token request");
    assert_eq!(first.trim(), t.access_token("prod"));
}
