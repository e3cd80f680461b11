//! Salesforce's answers as they were published in public issue trackers and help
//! articles, for replay: a test injects one (a [`crate::Fault`] at the token
//! endpoint, or an authorize refusal at the web login's callback) and checks that
//! sfx names the cause and the way out. Each constant cites where its wording was
//! seen; a wording not published verbatim says so.
//!
//! These are the 2025–26 refusals (issue #21): External Client Apps, the device
//! flow blocked for uninstalled apps, automatic containment.

/// `POST /services/oauth2/token` (device flow) since 2025-08-28 for an app not
/// installed in the org, the Salesforce CLI's own included.
/// forcedotcom/code-builder-feedback #263: "Error (SfError): Request Failed:
/// invalid_grant device flow is not enabled for the app"; forcedotcom/cli #3368.
pub const DEVICE_FLOW_BLOCKED: &str =
    r#"{"error":"invalid_grant","error_description":"device flow is not enabled for the app"}"#;

/// A token request for an External Client App that is not installed in the org.
/// forcedotcom/cli #3482 (2026-01): "External client app is not installed in this
/// org" (the description as sf printed it; the error code beside it is not shown
/// there — `invalid_grant` is assumed).
pub const ECA_NOT_INSTALLED: &str = r#"{"error":"invalid_grant","error_description":"External client app is not installed in this org"}"#;

/// A JWT bearer assertion signed for the wrong login URL.
/// omniphx/forrest #302: `{"error":"invalid_grant","error_description":"audience is invalid"}`;
/// forcedotcom/cli #3325 and #3482 (sandboxes, External Client Apps).
pub const AUDIENCE_INVALID: &str =
    r#"{"error":"invalid_grant","error_description":"audience is invalid"}"#;

/// The username-password flow against an External Client App (which has none), or
/// an org that blocks the flow. ForceCLI/force #780 and jsforce/jsforce #1785:
/// "invalid_grant: authentication failure".
pub const PASSWORD_FLOW_REFUSED: &str =
    r#"{"error":"invalid_grant","error_description":"authentication failure"}"#;

/// A refresh after the refresh token was revoked — by a user, an admin, or since
/// 2026-04-24 by automatic containment (help 005318944: a user seen on an
/// anonymising VPN or proxy is frozen and every refresh token granted to them
/// revoked). restforce/restforce #81, jsforce/jsforce #1656: "expired
/// access/refresh token".
pub const REFRESH_TOKEN_REVOKED: &str =
    r#"{"error":"invalid_grant","error_description":"expired access/refresh token"}"#;

/// A login or refresh from outside the user's allowed IP ranges ("ip restricted",
/// Salesforce's OAuth error table). A refresh blocked by an External Client App's
/// Refresh Token IP Allowlist is documented only as "blocked" (help
/// "set_ip_allowlist_for_refresh_tokens"); its wording is not published.
pub const IP_RESTRICTED: &str = r#"{"error":"invalid_grant","error_description":"ip restricted"}"#;

/// The web login's callback when the user may not use the app.
/// jetstreamapp/jetstream #656: "user is not admin approved to access this app";
/// abisek/salesforce-elf-browser #9: `OAUTH_APP_ACCESS_DENIED`.
pub const CALLBACK_APP_ACCESS_DENIED: (&str, Option<&str>) = (
    "OAUTH_APP_ACCESS_DENIED",
    Some("user is not admin approved to access this app"),
);

/// The web login's callback after a successful login when the External Client App
/// is not installed in the org. PipedreamHQ/pipedream #21557 (2026-07): the code
/// `OAUTH_EC_APP_NOT_FOUND`; no description was published with it.
pub const CALLBACK_EC_APP_NOT_FOUND: (&str, Option<&str>) = ("OAUTH_EC_APP_NOT_FOUND", None);
