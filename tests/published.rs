//! Salesforce as it is in 2025–26 (issue #21), replayed from published answers
//! (`fake_salesforce::published`, each with its source): the device flow blocked
//! for uninstalled apps, External Client Apps that are not installed or refuse a
//! flow, refusals at the web login's callback, automatic containment, refresh-token
//! IP allowlists — and `sf`, which no longer prints tokens since 2026-05-27. Each
//! test asserts that the fake was asked (the refusal really came from it), the
//! exit code, and that sfx names the cause and the way out.

use fake_salesforce::Fault;
use fake_salesforce::published::*;
use predicates::prelude::*;

use crate::common::*;
use crate::flows::{
    AUTHORIZE, TOKEN, authorize_url, browse, jwt_login, key, nothing_stored, password_login, query,
    spawn_device, spawn_web,
};

#[test]
fn a_device_login_blocked_for_an_uninstalled_app_names_the_2025_change_and_the_way_out() {
    let t = T::new();
    t.fake.inject(TOKEN, Fault::json(400, DEVICE_FLOW_BLOCKED));
    let (out, stderr) = spawn_device(&t, &["--alias", "dev"]).finish();
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert_eq!(
        t.fake.count(TOKEN),
        1,
        "the device code request was refused"
    );
    assert!(
        stderr.contains("device flow is not enabled for the app"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Since 2025-08-28") && stderr.contains("not installed in the org"),
        "{stderr}"
    );
    assert!(
        stderr.contains("sfx: hint: log in with the browser instead: `sfx login --web`"),
        "{stderr}"
    );
    nothing_stored(&t);
}

/// The refusals that arrive at the web login's callback, after the user logged in.
#[test]
fn refusals_at_the_web_callback_name_the_app_install_or_approval_and_exchange_no_code() {
    for (refusal, cause, way_out) in [
        (
            CALLBACK_EC_APP_NOT_FOUND,
            "External Client App is not installed in this org",
            "ask an admin of this org to install the External Client App",
        ),
        (
            CALLBACK_APP_ACCESS_DENIED,
            "Admin approved users are pre-authorized",
            "assign your profile or a permission set to the app",
        ),
    ] {
        let t = T::new();
        t.fake.set_authorize_user(Some(DEFAULT_USERNAME));
        t.fake.set_authorize_refusal(Some(refusal));
        let mut run = spawn_web(&t, &["--client-id", DEFAULT_CLIENT_ID]);
        let url = authorize_url(&mut run);
        let (callback, status, page) = browse(&url);
        assert_eq!(query(&callback)["error"], refusal.0);
        assert_eq!(status, 400);
        assert!(page.contains(refusal.0), "{page}");
        let (out, stderr) = run.finish();
        assert_eq!(out.status.code(), Some(4), "{stderr}");
        assert!(stderr.contains(refusal.0), "{stderr}");
        assert!(stderr.contains(cause), "{stderr}");
        assert!(stderr.contains(way_out), "{stderr}");
        assert_eq!(t.fake.count(AUTHORIZE), 1);
        assert_eq!(t.fake.count(TOKEN), 0, "no code to exchange");
        nothing_stored(&t);
    }
}

/// Refusals of a refresh: each names its cause; the ones a new login does not fix
/// say what does.
#[test]
fn refused_refreshes_name_the_2026_causes() {
    let t = T::new();
    t.login("prod");
    let cases: [(&str, &[&str], &str); 3] = [
        (
            ECA_NOT_INSTALLED,
            &["External Client App exists where it was created but is not installed in this org"],
            "sfx: hint: ask an admin of this org to install the External Client App",
        ),
        (
            REFRESH_TOKEN_REVOKED,
            &[
                "automatic containment",
                "anonymising VPN",
                "until an admin unfreezes them",
            ],
            "sfx: hint: log in again",
        ),
        (
            IP_RESTRICTED,
            &["Refresh Token IP Allowlist", "this machine's address"],
            "sfx: hint: run sfx from a network",
        ),
    ];
    for (body, causes, hint) in cases {
        t.fake.clear_requests();
        t.fake.inject(TOKEN, Fault::json(400, body));
        let out = t.sfx().args(["refresh", "-o", "prod"]).output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{err}");
        assert_eq!(t.fake.count(TOKEN), 1, "{body}");
        for c in causes {
            assert!(err.contains(c), "{body}: {c:?} missing from {err}");
        }
        assert!(err.contains(hint), "{body}: {err}");
    }
}

#[test]
fn a_jwt_audience_refusal_points_at_the_sandbox_login_url() {
    let t = T::new();
    t.fake.inject(TOKEN, Fault::json(400, AUDIENCE_INVALID));
    jwt_login(&t, &key("jwt-bearer-test-key.pem"), "ci")
        .code(4)
        .stderr(predicate::str::contains("audience is invalid"))
        .stderr(predicate::str::contains(
            "https://test.salesforce.com for sandboxes (`--sandbox`)",
        ));
    assert_eq!(t.fake.count(TOKEN), 1);
    nothing_stored(&t);
}

#[test]
fn a_refused_password_login_says_external_client_apps_have_no_such_flow() {
    let t = T::new();
    t.fake
        .inject(TOKEN, Fault::json(400, PASSWORD_FLOW_REFUSED));
    password_login(&t, "pw-and-token\n")
        .code(4)
        .stderr(predicate::str::contains("authentication failure"))
        .stderr(predicate::str::contains(
            "External Client Apps have no username-password flow",
        ));
    assert_eq!(t.fake.count(TOKEN), 1);
    nothing_stored(&t);
}

/// Since 2026-05-27 `sf org display` prints no token: a pipeline written before
/// hands sfx `null` or JSON. sfx says where the secret is now, and sends nothing.
#[test]
fn what_sf_prints_instead_of_a_token_since_2026_05_27_is_refused_with_the_new_commands() {
    let t = T::new();
    t.fake.expect_no_requests();
    let url = t.fake.url();
    for (args, stdin, command) in [
        (
            vec!["login", "--auth-url", "-"],
            "null\n",
            "sf org auth show-sfdx-auth-url",
        ),
        (
            vec![
                "login",
                "--access-token",
                "-",
                "--instance-url",
                url.as_str(),
            ],
            "{\"status\":0,\"result\":{\"username\":\"u@example.com\"}}\n",
            "sf org auth show-access-token",
        ),
    ] {
        let out = t.sfx().args(&args).write_stdin(stdin).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains("since 2026-05-27"), "{err}");
        assert!(err.contains(command), "{err}");
        assert!(err.contains("sfx login --from-sf"), "{err}");
        assert!(
            !err.contains("u@example.com"),
            "stdin is never quoted: {err}"
        );
    }
    assert_eq!(t.fake.requests().len(), 0);
    nothing_stored(&t);
}
