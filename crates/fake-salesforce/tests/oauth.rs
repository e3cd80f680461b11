//! Protocol tests over real HTTP: every grant, rotation and replay, the half-life rule, the
//! five-approval limit, PKCE, device flow, introspection, revocation and the API endpoints.

mod support;

use fake_salesforce::*;
use serde_json::json;
use support::*;

const TOKEN: &str = "/services/oauth2/token";

fn password_grant(sf: &FakeSalesforce) -> Resp {
    let pw = format!("{DEFAULT_PASSWORD}{DEFAULT_SECURITY_TOKEN}");
    token(
        sf,
        &[
            ("grant_type", "password"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("username", DEFAULT_USERNAME),
            ("password", &pw),
        ],
    )
}

fn refresh(sf: &FakeSalesforce, rt: &str) -> Resp {
    token(
        sf,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("refresh_token", rt),
        ],
    )
}

fn check_signature(j: &serde_json::Value) {
    let id = j["id"].as_str().unwrap();
    let issued = j["issued_at"].as_str().unwrap();
    assert_eq!(issued.len(), 13, "issued_at must be 13-digit ms");
    assert!(issued.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(
        j["signature"].as_str().unwrap(),
        signature(DEFAULT_CLIENT_SECRET, id, issued)
    );
}

#[test]
fn password_grant_shape_and_headers() {
    let sf = FakeSalesforce::start();
    let r = password_grant(&sf);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("application/json;charset=UTF-8")
    );
    assert_eq!(
        r.header("cache-control"),
        Some("no-cache,must-revalidate,max-age=0,no-store,private")
    );
    assert_eq!(
        r.keys(),
        [
            "access_token",
            "signature",
            "instance_url",
            "id",
            "token_type",
            "issued_at"
        ]
    );
    let j = r.json();
    check_signature(&j);
    assert_eq!(j["instance_url"], sf.url());
    assert_eq!(j["token_type"], "Bearer");
    let id = j["id"].as_str().unwrap();
    assert!(
        id.starts_with(&format!("https://login.salesforce.com/id/{ORG_ID}/005")),
        "{id}"
    );
    assert!(
        j["access_token"]
            .as_str()
            .unwrap()
            .starts_with("00D5g000004FAKE!")
    );
    assert!(j.get("expires_in").is_none());

    // Wrong password, wrong secret, unknown client.
    let bad = token(
        &sf,
        &[
            ("grant_type", "password"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("username", DEFAULT_USERNAME),
            ("password", DEFAULT_PASSWORD),
        ],
    );
    assert_eq!(
        bad.err(),
        (400, "invalid_grant".into(), "authentication failure".into())
    );
    let bad = token(
        &sf,
        &[
            ("grant_type", "password"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", "nope"),
        ],
    );
    assert_eq!(
        bad.err(),
        (
            400,
            "invalid_client".into(),
            "invalid client credentials".into()
        )
    );
    let bad = token(&sf, &[("grant_type", "password"), ("client_id", "nobody")]);
    assert_eq!(
        bad.err(),
        (
            400,
            "invalid_client_id".into(),
            "client identifier invalid".into()
        )
    );
    let bad = token(&sf, &[("grant_type", "magic")]);
    assert_eq!(
        bad.err(),
        (
            400,
            "unsupported_grant_type".into(),
            "grant type not supported".into()
        )
    );
    let bad = token(&sf, &[]);
    assert_eq!(bad.err().1, "unsupported_grant_type");
}

#[test]
fn basic_auth_and_query_string_params() {
    use base64::Engine;
    let sf = FakeSalesforce::start();
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{DEFAULT_CLIENT_ID}:{DEFAULT_CLIENT_SECRET}"));
    let auth = format!("Basic {basic}");
    let r = raw(
        &sf,
        "POST",
        "/services/oauth2/token?grant_type=client_credentials&device_id=xyz",
        &[("Authorization", &auth)],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.keys(),
        [
            "access_token",
            "signature",
            "scope",
            "instance_url",
            "id",
            "token_type",
            "issued_at",
            "api_instance_url"
        ]
    );
    check_signature(&r.json());
    assert_eq!(sf.count_grant("client_credentials"), 1);
}

#[test]
fn web_server_flow_with_pkce() {
    let sf = FakeSalesforce::start();
    let verifier = "v".repeat(171); // jsforce-length verifier, above RFC 7636's 128 cap
    let challenge = pkce_s256(&verifier);
    let redirect = "http://localhost:1717/OauthRedirect";
    let target = format!(
        "/services/oauth2/authorize?response_type=code&client_id={PUBLIC_CLIENT_ID}&redirect_uri={}&scope={}&state=abc123&code_challenge={challenge}",
        enc(redirect),
        enc("refresh_token api web")
    );
    let r = get(&sf, &target, None);
    assert_eq!(r.status, 302);
    let p = location_params(&r);
    assert!(r.header("location").unwrap().starts_with(redirect));
    assert_eq!(param(&p, "state"), Some("abc123"));
    let code = param(&p, "code").unwrap().to_string();

    // Wrong verifier burns nothing but fails... and the code is single use.
    let ex = |v: &str, c: &str| {
        token(
            &sf,
            &[
                ("grant_type", "authorization_code"),
                ("code", c),
                ("client_id", PUBLIC_CLIENT_ID),
                ("redirect_uri", redirect),
                ("code_verifier", v),
            ],
        )
    };
    let r = ex(&verifier, &code);
    assert_eq!(r.status, 200, "{}", r.body);
    // Public client: no signature (no secret).
    assert_eq!(
        r.keys(),
        [
            "access_token",
            "refresh_token",
            "scope",
            "instance_url",
            "id",
            "token_type",
            "issued_at"
        ]
    );
    let j = r.json();
    assert!(j["refresh_token"].as_str().unwrap().starts_with("5Aep861"));
    assert_eq!(j["scope"], "refresh_token api web");
    let again = ex(&verifier, &code);
    assert_eq!(
        again.err(),
        (
            400,
            "invalid_grant".into(),
            "invalid authorization code".into()
        )
    );

    // New code, wrong verifier.
    let r = get(&sf, &target, None);
    let code = param(&location_params(&r), "code").unwrap().to_string();
    assert_eq!(ex("wrong", &code).err().2, "invalid code verifier");

    // Hex-encoded challenge with explicit S256 does not match.
    let r = get(
        &sf,
        &target
            .replace(&challenge, "abcdef0123")
            .replace("&state", "&code_challenge_method=S256&state"),
        None,
    );
    let code = param(&location_params(&r), "code").unwrap().to_string();
    assert_eq!(ex(&verifier, &code).err().2, "invalid code verifier");
}

#[test]
fn authorize_errors() {
    let sf = FakeSalesforce::start();
    let r = get(
        &sf,
        "/services/oauth2/authorize?response_type=code&client_id=PlatformCLI&redirect_uri=http%3A%2F%2Fevil.example%2Fcb",
        None,
    );
    assert_eq!(r.status, 400);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.body.contains("redirect_uri_mismatch"));

    let r = get(
        &sf,
        "/services/oauth2/authorize?response_type=code&client_id=nobody&redirect_uri=http%3A%2F%2Flocalhost%3A1717%2FOauthRedirect&state=s",
        None,
    );
    assert_eq!(r.status, 302);
    assert!(
        r.header("location")
            .unwrap()
            .contains("error=invalid_client_id&error_description=client%20identifier%20invalid")
    );

    sf.set_authorize_deny(true);
    let r = get(
        &sf,
        "/services/oauth2/authorize?response_type=code&client_id=PlatformCLI&redirect_uri=http%3A%2F%2Flocalhost%3A1717%2FOauthRedirect&state=s",
        None,
    );
    let p = location_params(&r);
    assert_eq!(param(&p, "error"), Some("access_denied"));
    assert_eq!(param(&p, "state"), Some("s"));

    sf.set_authorize_deny(false);
    sf.set_authorize_user(None);
    let r = get(
        &sf,
        "/services/oauth2/authorize?response_type=code&client_id=PlatformCLI&redirect_uri=http%3A%2F%2Flocalhost%3A1717%2FOauthRedirect",
        None,
    );
    assert_eq!(r.status, 200);
    assert!(r.header("location").is_none());
}

#[test]
fn auth_code_requires_secret_without_pkce_and_matching_redirect() {
    let sf = FakeSalesforce::start();
    let redirect = "http://localhost:5555/OauthRedirect";
    let target = format!(
        "/services/oauth2/authorize?response_type=code&client_id={DEFAULT_CLIENT_ID}&redirect_uri={}",
        enc(redirect)
    );
    let code = || {
        param(&location_params(&get(&sf, &target, None)), "code")
            .unwrap()
            .to_string()
    };
    let c = code();
    let r = token(
        &sf,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("client_id", DEFAULT_CLIENT_ID),
            ("redirect_uri", redirect),
        ],
    );
    assert_eq!(r.err().1, "invalid_client");
    let c = code();
    let r = token(
        &sf,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("redirect_uri", "http://localhost:1/OauthRedirect"),
        ],
    );
    assert_eq!(r.err().1, "invalid_grant");
    let c = code();
    let r = token(
        &sf,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("redirect_uri", redirect),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    check_signature(&r.json());
    // Codes expire after 15 minutes.
    let c = code();
    sf.advance_clock(15 * 60 + 1);
    let r = token(
        &sf,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("redirect_uri", redirect),
        ],
    );
    assert_eq!(r.err().2, "expired authorization code");
}

#[test]
fn refresh_shape_secret_rules_and_coexisting_sessions() {
    let sf = FakeSalesforce::start();
    let rt = sf.grant_refresh_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    let r1 = refresh(&sf, &rt);
    assert_eq!(r1.status, 200, "{}", r1.body);
    assert_eq!(
        r1.keys(),
        [
            "access_token",
            "signature",
            "scope",
            "instance_url",
            "id",
            "token_type",
            "issued_at"
        ]
    );
    check_signature(&r1.json());
    let a1 = r1.json()["access_token"].as_str().unwrap().to_string();
    let a2 = refresh(&sf, &rt).json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        sf.is_active(&a1) && sf.is_active(&a2),
        "refresh must not revoke earlier sessions"
    );
    assert_eq!(sf.access_tokens_of(&rt), vec![a1.clone(), a2.clone()]);
    assert_eq!(sf.latest_access_token().as_deref(), Some(a2.as_str()));

    let wrong = token(
        &sf,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", "bad"),
            ("refresh_token", &rt),
        ],
    );
    assert_eq!(
        wrong.err(),
        (
            400,
            "invalid_client".into(),
            "invalid client credentials".into()
        )
    );
    sf.update_client(DEFAULT_CLIENT_ID, |c| c.require_secret_for_refresh = true);
    assert_eq!(refresh(&sf, &rt).err().1, "invalid_client");
    let ok = token(
        &sf,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("refresh_token", &rt),
        ],
    );
    assert_eq!(ok.status, 200);
    sf.update_client(DEFAULT_CLIENT_ID, |c| c.require_secret_for_refresh = false);

    let unknown = token(
        &sf,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "nobody"),
            ("refresh_token", &rt),
        ],
    );
    assert_eq!(unknown.err().1, "invalid_client_id");
    assert_eq!(
        refresh(&sf, "5Aep861bogus").err(),
        (
            400,
            "invalid_grant".into(),
            "expired access/refresh token".into()
        )
    );

    // Admin revoke kills the refresh token and its sessions.
    sf.revoke_token(&rt);
    assert!(!sf.is_active(&a1) && !sf.is_active(&a2));
    assert_eq!(refresh(&sf, &rt).err().2, "expired access/refresh token");

    // Inactive user.
    let rt = sf.grant_refresh_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    sf.update_user(DEFAULT_USERNAME, |u| u.active = false);
    assert_eq!(refresh(&sf, &rt).err().2, "inactive user");
}

#[test]
fn public_client_refresh_without_secret() {
    let sf = FakeSalesforce::start();
    let url = sf.auth_url(PUBLIC_CLIENT_ID, DEFAULT_USERNAME);
    assert!(url.starts_with("force://PlatformCLI::5Aep861"), "{url}");
    assert!(url.ends_with(&format!("@{}", sf.host())));
    let rt = url
        .split(':')
        .nth(3)
        .unwrap()
        .split('@')
        .next()
        .unwrap()
        .to_string();
    let r = token(
        &sf,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", PUBLIC_CLIENT_ID),
            ("refresh_token", &rt),
        ],
    );
    assert_eq!(r.status, 200);
    assert!(r.json().get("signature").is_none());
    assert!(r.json().get("issued_at").is_some());
}

#[test]
fn rotation_and_replay_revokes_family() {
    let sf = FakeSalesforce::start();
    sf.update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    let rt0 = sf.grant_refresh_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    let r = refresh(&sf, &rt0);
    assert_eq!(
        r.keys(),
        [
            "access_token",
            "refresh_token",
            "signature",
            "scope",
            "instance_url",
            "id",
            "token_type",
            "issued_at"
        ]
    );
    let rt1 = r.json()["refresh_token"].as_str().unwrap().to_string();
    let a1 = r.json()["access_token"].as_str().unwrap().to_string();
    assert_ne!(rt0, rt1);
    let r = refresh(&sf, &rt1);
    let rt2 = r.json()["refresh_token"].as_str().unwrap().to_string();
    let a2 = r.json()["access_token"].as_str().unwrap().to_string();
    assert!(sf.is_active(&rt2) && !sf.is_active(&rt1));

    // Replay of rt1: error, and the current token + every session of the family die.
    assert_eq!(
        refresh(&sf, &rt1).err(),
        (
            400,
            "invalid_grant".into(),
            "expired access/refresh token".into()
        )
    );
    assert!(!sf.is_active(&rt2));
    assert!(!sf.is_active(&a1) && !sf.is_active(&a2));
    assert_eq!(refresh(&sf, &rt2).err().2, "expired access/refresh token");
}

#[test]
fn five_approvals_limit() {
    let sf = FakeSalesforce::start();
    let rts: Vec<String> = (0..5)
        .map(|_| sf.grant_refresh_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME))
        .collect();
    assert!(rts.iter().all(|t| sf.is_active(t)));
    let a0 = refresh(&sf, &rts[0]).json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    // Another app's approvals do not count.
    sf.grant_refresh_token(PUBLIC_CLIENT_ID, DEFAULT_USERNAME);
    assert!(sf.is_active(&rts[0]));
    // Sixth approval via the device flow... or any way: here, grant.
    let sixth = sf.grant_refresh_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    assert!(!sf.is_active(&rts[0]) && !sf.is_active(&a0));
    assert!(rts[1..].iter().all(|t| sf.is_active(t)) && sf.is_active(&sixth));
    assert_eq!(
        refresh(&sf, &rts[0]).err().2,
        "expired access/refresh token"
    );
}

#[test]
fn half_life_rule_and_introspection() {
    let sf = FakeSalesforce::start();
    sf.update_client(DEFAULT_CLIENT_ID, |c| c.session_timeout_secs = 1800);
    let rt = sf.grant_refresh_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    let at = refresh(&sf, &rt).json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let t0 = sf.now();
    let exp0 = sf.session_exp(&at).unwrap();
    assert!((exp0 - (t0 + 1800)).abs() <= 1);

    let intro = introspect(&sf, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, &at);
    assert_eq!(
        intro.keys(),
        [
            "active",
            "scope",
            "client_id",
            "username",
            "sub",
            "token_type",
            "exp",
            "iat",
            "nbf"
        ]
    );
    let j = intro.json();
    assert_eq!(j["active"], true);
    assert_eq!(j["token_type"], "access_token");
    assert_eq!(j["exp"], exp0);
    assert!(
        j["sub"]
            .as_str()
            .unwrap()
            .starts_with("https://login.salesforce.com/id/")
    );

    // Minute 10: activity does not extend.
    sf.advance_clock(600);
    assert_eq!(get(&sf, "/services/oauth2/userinfo", Some(&at)).status, 200);
    assert_eq!(sf.session_exp(&at), Some(exp0));
    // Minute 20: it does (logout at 50).
    sf.advance_clock(600);
    assert_eq!(
        get(&sf, "/services/data/v63.0/limits", Some(&at)).status,
        200
    );
    let exp1 = sf.session_exp(&at).unwrap();
    assert!((exp1 - (exp0 + 1200)).abs() <= 1, "{exp0} {exp1}");
    // Introspection is not activity.
    sf.advance_clock(1000);
    introspect(&sf, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, &at);
    assert_eq!(sf.session_exp(&at), Some(exp1));
    sf.use_session(&at);
    assert!(sf.session_exp(&at).unwrap() > exp1);

    // Expired → {"active":false}, 401 on the API, 403 on userinfo.
    sf.expire_session(&at);
    assert_eq!(
        introspect(&sf, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, &at).body,
        r#"{"active":false}"#
    );
    let api = get(&sf, "/services/data/v63.0/", Some(&at));
    assert_eq!(api.status, 401);
    assert_eq!(api.json()[0]["errorCode"], "INVALID_SESSION_ID");
    assert_eq!(api.json()[0]["message"], "Session expired or invalid");
    let ui = get(&sf, "/services/oauth2/userinfo", Some(&at));
    assert_eq!((ui.status, ui.body.as_str()), (403, "Bad_OAuth_Token"));
}

#[test]
fn introspection_visibility_and_client_auth() {
    let sf = FakeSalesforce::start();
    let at = sf.grant_access_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    // Foreign token reads as inactive.
    let mut other = Client::new("3MVG9other", Some("other-secret"));
    sf.add_client(other.clone());
    assert_eq!(
        introspect(&sf, "3MVG9other", "other-secret", &at).body,
        r#"{"active":false}"#
    );
    other.introspect_all = true;
    sf.add_client(other);
    assert_eq!(
        introspect(&sf, "3MVG9other", "other-secret", &at).json()["active"],
        true
    );
    // Bad client credentials → 401.
    let r = introspect(&sf, DEFAULT_CLIENT_ID, "wrong", &at);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.body,
        r#"{"error":"invalid_client","error_description":"invalid client credentials"}"#
    );
    assert_eq!(introspect(&sf, "nobody", "", &at).status, 401);
    // Public client with its id alone.
    let pat = sf.grant_access_token(PUBLIC_CLIENT_ID, DEFAULT_USERNAME);
    let r = post(
        &sf,
        "/services/oauth2/introspect",
        &[("token", &pat), ("client_id", PUBLIC_CLIENT_ID)],
    );
    assert_eq!(r.json()["active"], true);
    // Unknown token.
    assert_eq!(
        introspect(&sf, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, "junk").body,
        r#"{"active":false}"#
    );
    // Refresh tokens: token_type refresh_token, exp only with an idle TTL.
    let rt = sf.grant_refresh_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    let j = introspect(&sf, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, &rt).json();
    assert_eq!(j["token_type"], "refresh_token");
    assert!(j.get("exp").is_none());
    sf.update_client(DEFAULT_CLIENT_ID, |c| {
        c.refresh_token_idle_ttl_secs = Some(100)
    });
    let j = introspect(&sf, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, &rt).json();
    assert!(j["exp"].as_i64().unwrap() > sf.now());
    sf.advance_clock(101);
    assert!(!sf.is_active(&rt));
    assert_eq!(refresh(&sf, &rt).err().2, "expired access/refresh token");
}

#[test]
fn revoke_endpoint() {
    let sf = FakeSalesforce::start();
    let rt = sf.grant_refresh_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    let a = refresh(&sf, &rt).json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let b = refresh(&sf, &rt).json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    // Access token: only that session.
    let r = post(&sf, "/services/oauth2/revoke", &[("token", &a)]);
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    assert!(!sf.is_active(&a) && sf.is_active(&b) && sf.is_active(&rt));
    // Refresh token via GET: everything.
    let r = get(
        &sf,
        &format!("/services/oauth2/revoke?token={}", enc(&rt)),
        None,
    );
    assert_eq!(r.status, 200);
    assert!(!sf.is_active(&b) && !sf.is_active(&rt));
    let r = post(&sf, "/services/oauth2/revoke", &[("token", "nope")]);
    assert_eq!(
        r.err(),
        (400, "invalid_token".into(), "Token was invalid".into())
    );
}

#[test]
fn jwt_bearer_flow() {
    let sf = FakeSalesforce::start();
    let now = sf.now();
    let ok = |exp: serde_json::Value, aud: &str| {
        let a = make_assertion(DEFAULT_CLIENT_ID, DEFAULT_USERNAME, aud, exp);
        token(
            &sf,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", &a),
            ],
        )
    };
    let r = ok(json!(now + 180), "https://login.salesforce.com");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.keys(),
        ["access_token", "scope", "instance_url", "id", "token_type"]
    );
    // String exp, millisecond exp (sf CLI), fake URL and test audience.
    assert_eq!(
        ok(
            json!((now + 180).to_string()),
            "https://test.salesforce.com"
        )
        .status,
        200
    );
    assert_eq!(ok(json!(now * 1000 + 300), &sf.url()).status, 200);
    assert_eq!(
        ok(json!(now - 10), "https://login.salesforce.com").err().2,
        "expired authorization code"
    );
    assert_eq!(
        ok(json!(now + 180), "https://evil.example").err().2,
        "audience is invalid"
    );

    // Wrong key → invalid assertion; unknown iss → invalid_client_id.
    let mut c = Client::new("3MVG9jwt", None);
    c.jwt_cert_pem = Some(TEST_JWT_CERT_PEM.to_string()); // a certificate works too
    sf.add_client(c);
    let a = make_assertion(
        "3MVG9jwt",
        DEFAULT_USERNAME,
        "https://login.salesforce.com",
        json!(now + 60),
    );
    let r = token(
        &sf,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &a),
        ],
    );
    assert_eq!(r.err().2, "user hasn't approved this consumer");
    sf.grant_refresh_token("3MVG9jwt", DEFAULT_USERNAME);
    let r = token(
        &sf,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &a),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    sf.update_client("3MVG9jwt", |c| {
        c.jwt_cert_pem = Some(ACCESS_TOKEN_SIGNING_KEY_PEM.to_string())
    });
    let r = token(
        &sf,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &a),
        ],
    );
    assert_eq!(r.err().2, "invalid assertion");
    let a = make_assertion(
        "nobody",
        DEFAULT_USERNAME,
        "https://login.salesforce.com",
        json!(now + 60),
    );
    let r = token(
        &sf,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &a),
        ],
    );
    assert_eq!(r.err().1, "invalid_client_id");
    let r = token(
        &sf,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", "not.a.jwt"),
        ],
    );
    assert_eq!(r.err().2, "invalid assertion");
}

#[test]
fn device_flow_multipart() {
    let sf = FakeSalesforce::start();
    sf.set_device_interval(1);
    let body = "--XyZ\r\nContent-Disposition: form-data; name=\"response_type\"\r\n\r\ndevice_code\r\n--XyZ\r\nContent-Disposition: form-data; name=\"client_id\"\r\n\r\nPlatformCLI\r\n--XyZ\r\nContent-Disposition: form-data; name=\"scope\"\r\n\r\nrefresh_token web api\r\n--XyZ--\r\n";
    let r = raw(
        &sf,
        "POST",
        TOKEN,
        &[("Content-Type", "multipart/form-data; boundary=XyZ")],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.keys(),
        ["device_code", "user_code", "verification_uri", "interval"]
    );
    let j = r.json();
    let user_code = j["user_code"].as_str().unwrap().to_string();
    assert_eq!(user_code.len(), 8);
    assert!(
        user_code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    );
    assert_eq!(j["verification_uri"], format!("{}/setup/connect", sf.url()));
    assert_eq!(j["interval"], 1);
    assert_eq!(sf.pending_user_codes(), vec![user_code.clone()]);
    let dc = j["device_code"].as_str().unwrap().to_string();
    let poll = || {
        token(
            &sf,
            &[
                ("grant_type", "device"),
                ("client_id", PUBLIC_CLIENT_ID),
                ("code", &dc),
            ],
        )
    };
    assert_eq!(poll().err().1, "authorization_pending");
    assert_eq!(poll().err().1, "slow_down");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(sf.approve_device(&user_code, DEFAULT_USERNAME));
    let r = poll();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.keys(),
        [
            "access_token",
            "refresh_token",
            "scope",
            "instance_url",
            "id",
            "token_type",
            "issued_at"
        ]
    );
    assert!(sf.pending_user_codes().is_empty());

    // Denied and expired.
    sf.set_device_interval(0);
    let start = || {
        token(
            &sf,
            &[
                ("response_type", "device_code"),
                ("client_id", DEFAULT_CLIENT_ID),
            ],
        )
        .json()
    };
    let d = start();
    assert!(sf.deny_device(d["user_code"].as_str().unwrap()));
    let r = token(
        &sf,
        &[
            ("grant_type", "device"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("code", d["device_code"].as_str().unwrap()),
        ],
    );
    assert_eq!(r.err().1, "access_denied");
    let d = start();
    sf.advance_clock(601);
    let r = token(
        &sf,
        &[
            ("grant_type", "device"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("code", d["device_code"].as_str().unwrap()),
        ],
    );
    assert_eq!(r.err().1, "expired_token");
    assert!(!sf.approve_device(d["user_code"].as_str().unwrap(), DEFAULT_USERNAME));
}

#[test]
fn jwt_access_tokens_and_jwks() {
    let sf = FakeSalesforce::start();
    sf.update_client(DEFAULT_CLIENT_ID, |c| c.jwt_access_tokens = true);
    let rt = sf.grant_refresh_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    let r = refresh(&sf, &rt);
    let j = r.json();
    assert_eq!(j["token_format"], "jwt");
    let at = j["access_token"].as_str().unwrap();
    let parts: Vec<&str> = at.split('.').collect();
    assert_eq!(parts.len(), 3);
    use base64::Engine;
    let dec = |s: &str| -> serde_json::Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap(),
        )
        .unwrap()
    };
    let (h, p) = (dec(parts[0]), dec(parts[1]));
    assert_eq!(h["alg"], "RS256");
    assert_eq!(h["kid"], SIGNING_KID);
    assert_eq!(p["aud"], json!([sf.url()]));
    assert!(p["sub"].as_str().unwrap().starts_with("uid:005"));
    assert_eq!(p["exp"].as_i64(), sf.session_exp(at));
    let keys = get(&sf, "/id/keys", None).json();
    assert_eq!(keys["keys"][0]["kid"], SIGNING_KID);
    // The JWT works as a bearer token.
    assert_eq!(get(&sf, "/services/oauth2/userinfo", Some(at)).status, 200);
}

#[test]
fn userinfo_identity_discovery_and_404() {
    let sf = FakeSalesforce::start();
    let at = sf.grant_access_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    let ui = get(&sf, "/services/oauth2/userinfo", Some(&at)).json();
    assert_eq!(ui["preferred_username"], DEFAULT_USERNAME);
    assert_eq!(ui["organization_id"], ORG_ID);
    let uid = ui["user_id"].as_str().unwrap().to_string();
    let id = get(&sf, &format!("/id/{ORG_ID}/{uid}"), Some(&at));
    assert_eq!(id.status, 200);
    assert_eq!(id.json()["username"], DEFAULT_USERNAME);
    let user = get(
        &sf,
        &format!("/services/data/v63.0/sobjects/User/{uid}"),
        Some(&at),
    )
    .json();
    assert_eq!(user["Username"], DEFAULT_USERNAME);
    let d = get(&sf, "/.well-known/openid-configuration", None).json();
    assert_eq!(d["issuer"], sf.url());
    let nf = get(&sf, "/nope", None);
    assert_eq!(nf.status, 404);
    assert!(nf.header("content-type").unwrap().starts_with("text/html"));
    assert_eq!(get(&sf, "/services/data/v63.0/", None).status, 401);
    let g = get(&sf, "/services/oauth2/token", None);
    assert_eq!(g.err().1, "invalid_request");
}

#[test]
fn garbage_never_panics() {
    use std::io::{Read, Write};
    let sf = FakeSalesforce::start();
    for junk in [
        &b"\x00\x01\x02 garbage\r\n\r\n"[..],
        b"POST /services/oauth2/token HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        b"POST /services/oauth2/token HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
    ] {
        let mut s = std::net::TcpStream::connect(sf.host()).unwrap();
        s.write_all(junk).unwrap();
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        // Each is answered with a 400, never a dropped connection or a panic.
        let head = String::from_utf8_lossy(&out);
        assert!(
            head.starts_with("HTTP/1.1 400 "),
            "{:?} got {:?}",
            String::from_utf8_lossy(junk),
            head.lines().next()
        );
    }
    // No handler panicked (and none of the junk was a request that got recorded).
    assert!(sf.requests().is_empty());
    let v = sf.verify();
    assert!(
        v.as_ref().err().is_none_or(|e| !e.contains("panicked")),
        "{v:?}"
    );
    for (ct, body) in [
        ("multipart/form-data; boundary=", "--\r\n"),
        ("multipart/form-data; boundary=a", "--a\r\nno headers--a--"),
        (
            "application/x-www-form-urlencoded",
            "%%%=&&=%zz&grant_type=password&password",
        ),
        ("application/json", "{\"grant_type\":\"password\"}"),
    ] {
        let r = raw(&sf, "POST", TOKEN, &[("Content-Type", ct)], body.as_bytes()).unwrap();
        assert_eq!(r.status, 400, "{ct}: {}", r.body);
    }
    let r = raw(
        &sf,
        "POST",
        TOKEN,
        &[("Authorization", "Basic !!!")],
        b"grant_type=refresh_token",
    )
    .unwrap();
    assert_eq!(r.status, 400);
    let r = raw(
        &sf,
        "POST",
        "/services/oauth2/introspect",
        &[("Authorization", "Basic Og==")],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 401);
    // Chunked request bodies are understood.
    let mut s = std::net::TcpStream::connect(sf.host()).unwrap();
    let body = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", DEFAULT_CLIENT_ID),
        ("client_secret", DEFAULT_CLIENT_SECRET),
    ]);
    write!(s, "POST {TOKEN} HTTP/1.1\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n", body.len()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    assert_eq!(parse_response(&out).unwrap().status, 200);
    // Still serving.
    assert_eq!(password_grant(&sf).status, 200);
}
