//! What a token opens: introspect, revoke, userinfo and the identity URL.

use super::*;

pub(super) fn introspect(st: &mut State, req: &Req) -> HttpResponse {
    let unauthorized = || oauth_error_status(401, "invalid_client", "invalid client credentials");
    let (id, secret) = req.creds();
    let Some(client) = id.and_then(|id| st.clients.get(&id).cloned()) else {
        return unauthorized();
    };
    if secret.as_deref() != client.secret_str() {
        return unauthorized();
    }
    let token = req.get("token").unwrap_or("");
    json_ok(st.introspect(token, &client))
}

pub(super) fn revoke(st: &mut State, req: &Req) -> HttpResponse {
    let token = req.get("token").unwrap_or("");
    if st.revoke_any(token) {
        oauth_response(200, JSON_CT, "")
    } else {
        oauth_error("invalid_token", "Token was invalid")
    }
}

// ----- userinfo / identity / data API -----------------------------------------------------

pub(super) fn user_doc(st: &State, username: &str, identity_shape: bool) -> String {
    let user_id = st.user_id(username);
    let base = &st.base_url;
    let urls = json!({
        "enterprise": format!("{base}/services/Soap/c/{{version}}/{ORG_ID}"),
        "metadata": format!("{base}/services/Soap/m/{{version}}/{ORG_ID}"),
        "partner": format!("{base}/services/Soap/u/{{version}}/{ORG_ID}"),
        "rest": format!("{base}/services/data/v{{version}}/"),
        "sobjects": format!("{base}/services/data/v{{version}}/sobjects/"),
        "search": format!("{base}/services/data/v{{version}}/search/"),
        "query": format!("{base}/services/data/v{{version}}/query/"),
        "profile": format!("{base}/{user_id}"),
        "custom_domain": base,
    });
    let local = username.split('@').next().unwrap_or(username);
    if identity_shape {
        ordered(&[
            ("id", json!(st.identity_url(username))),
            ("asserted_user", json!(true)),
            ("user_id", json!(user_id)),
            ("organization_id", json!(ORG_ID)),
            ("username", json!(username)),
            ("nick_name", json!(local)),
            ("display_name", json!(local)),
            ("email", json!(username)),
            ("email_verified", json!(true)),
            ("first_name", json!("Demo")),
            ("last_name", json!(local)),
            ("timezone", json!("Europe/Paris")),
            ("urls", urls),
            ("active", json!(true)),
            ("user_type", json!("STANDARD")),
            ("language", json!("en_US")),
            ("locale", json!("en_US")),
            ("utcOffset", json!(3_600_000)),
            ("is_app_installed", json!(true)),
        ])
    } else {
        ordered(&[
            ("sub", json!(st.identity_url(username))),
            ("user_id", json!(user_id)),
            ("organization_id", json!(ORG_ID)),
            ("preferred_username", json!(username)),
            ("nickname", json!(local)),
            ("name", json!(format!("Demo {local}"))),
            ("email", json!(username)),
            ("email_verified", json!(true)),
            ("given_name", json!("Demo")),
            ("family_name", json!(local)),
            ("zoneinfo", json!("Europe/Paris")),
            ("urls", urls),
            ("active", json!(true)),
            ("user_type", json!("STANDARD")),
            ("language", json!("en_US")),
            ("locale", json!("en_US")),
            ("utcOffset", json!(3_600_000)),
            ("is_app_installed", json!(true)),
        ])
    }
}

pub(super) fn userinfo(st: &mut State, req: &Req) -> HttpResponse {
    let Some(token) = req.bearer() else {
        return bad_token_403();
    };
    if !st.activity(&token) {
        return bad_token_403();
    }
    let username = st
        .sessions
        .get(&token)
        .map(|s| s.username.clone())
        .unwrap_or_default();
    json_ok(user_doc(st, &username, false))
}

pub(super) fn identity(st: &mut State, req: &Req) -> HttpResponse {
    let segs: Vec<&str> = req.http.path.trim_matches('/').split('/').collect();
    let Some(token) = req.bearer() else {
        return bad_token_403();
    };
    if !st.activity(&token) {
        return bad_token_403();
    }
    let (org, user_id) = match segs.as_slice() {
        ["id", org, user] => (*org, *user),
        _ => return oauth_response(404, "text/plain;charset=UTF-8", "Bad_Id"),
    };
    let user = st
        .users
        .values()
        .find(|u| u.user_id == user_id || u.user_id.get(..15) == Some(user_id));
    match user {
        Some(u) if org == ORG_ID || org == &ORG_ID[..15] => {
            let name = u.username.clone();
            json_ok(user_doc(st, &name, true))
        }
        _ => oauth_response(404, "text/plain;charset=UTF-8", "Bad_Id"),
    }
}
