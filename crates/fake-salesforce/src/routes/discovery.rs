//! OpenID discovery (`/.well-known/openid-configuration`).

use super::*;

pub(super) fn discovery(st: &State) -> HttpResponse {
    let b = &st.base_url;
    json_ok(ordered(&[
        ("issuer", json!(b)),
        (
            "authorization_endpoint",
            json!(format!("{b}/services/oauth2/authorize")),
        ),
        (
            "token_endpoint",
            json!(format!("{b}/services/oauth2/token")),
        ),
        (
            "revocation_endpoint",
            json!(format!("{b}/services/oauth2/revoke")),
        ),
        (
            "userinfo_endpoint",
            json!(format!("{b}/services/oauth2/userinfo")),
        ),
        ("jwks_uri", json!(format!("{b}/id/keys"))),
        (
            "introspection_endpoint",
            json!(format!("{b}/services/oauth2/introspect")),
        ),
        (
            "scopes_supported",
            json!([
                "id",
                "api",
                "web",
                "full",
                "refresh_token",
                "offline_access",
                "openid",
                "profile",
                "email",
                "address",
                "phone"
            ]),
        ),
        (
            "response_types_supported",
            json!(["code", "token", "token id_token"]),
        ),
        ("subject_types_supported", json!(["public"])),
        ("id_token_signing_alg_values_supported", json!(["RS256"])),
        (
            "display_values_supported",
            json!(["page", "popup", "touch"]),
        ),
        (
            "token_endpoint_auth_methods_supported",
            json!([
                "client_secret_post",
                "client_secret_basic",
                "private_key_jwt"
            ]),
        ),
        (
            "claims_supported",
            json!([
                "active",
                "address",
                "email",
                "email_verified",
                "family_name",
                "given_name",
                "is_app_installed",
                "language",
                "locale",
                "name",
                "nickname",
                "organization_id",
                "phone_number",
                "phone_number_verified",
                "photos",
                "picture",
                "preferred_username",
                "profile",
                "sub",
                "updated_at",
                "urls",
                "user_id",
                "user_type",
                "zoneinfo"
            ]),
        ),
    ]))
}
