//! The token endpoint: every grant (authorization code, refresh, password, client
//! credentials, JWT bearer, device) and the device request.

use super::*;

pub(super) fn token(st: &mut State, req: &Req) -> HttpResponse {
    if req.http.method != "POST" {
        return oauth_error("invalid_request", "must use HTTP POST");
    }
    if req.get("response_type") == Some("device_code") {
        return device_request(st, req);
    }
    match req.get("grant_type").unwrap_or("") {
        "authorization_code" => grant_authorization_code(st, req),
        "refresh_token" => grant_refresh(st, req),
        "password" => grant_password(st, req),
        "client_credentials" => grant_client_credentials(st, req),
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => grant_jwt_bearer(st, req),
        "device" => grant_device(st, req),
        _ => oauth_error("unsupported_grant_type", "grant type not supported"),
    }
}

/// Look up the client named by the request and check its secret. `secret_required`: a client
/// that has a secret must present it. A presented secret is always checked.
pub(super) fn authenticate(
    st: &State,
    req: &Req,
    secret_required: bool,
) -> Result<crate::model::Client, HttpResponse> {
    let (id, secret) = req.creds();
    let client = id
        .and_then(|id| st.clients.get(&id).cloned())
        .ok_or_else(invalid_client_id)?;
    match (secret, client.secret_str()) {
        (Some(given), Some(real)) if given == real => Ok(client),
        (Some(_), _) => Err(invalid_client()),
        (None, Some(_)) if secret_required => Err(invalid_client()),
        (None, _) => Ok(client),
    }
}

/// What kind of token response to build.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// web server, device, refresh: scope + signature + issued_at
    Full,
    /// username-password: no scope
    Password,
    /// client credentials: + api_instance_url
    ClientCredentials,
    /// JWT bearer: no signature, no issued_at
    JwtBearer,
}

pub(super) fn token_response(
    st: &State,
    client: &crate::model::Client,
    username: &str,
    access: &str,
    refresh: Option<&str>,
    scope: &str,
    shape: Shape,
) -> HttpResponse {
    let id = st.identity_url(username);
    let issued_at = st.now_ms().to_string();
    let with_issued = shape != Shape::JwtBearer;
    let mut f: Vec<(&str, Value)> = vec![("access_token", json!(access))];
    if let Some(rt) = refresh {
        f.push(("refresh_token", json!(rt)));
    }
    if with_issued && let Some(secret) = client.secret_str() {
        f.push(("signature", json!(util::signature(secret, &id, &issued_at))));
    }
    if shape != Shape::Password {
        f.push(("scope", json!(scope)));
    }
    if scope.split_whitespace().any(|s| s == "openid")
        && let Some(idt) = id_token(st, client, username)
    {
        f.push(("id_token", json!(idt)));
    }
    f.push(("instance_url", json!(st.base_url)));
    f.push(("id", json!(id)));
    f.push(("token_type", json!("Bearer")));
    if with_issued {
        f.push(("issued_at", json!(issued_at)));
    }
    if shape == Shape::ClientCredentials {
        f.push(("api_instance_url", json!("https://api.salesforce.com")));
    }
    if client.jwt_access_tokens {
        f.push(("token_format", json!("jwt")));
    }
    json_ok(ordered(&f))
}

pub(super) fn id_token(
    st: &State,
    client: &crate::model::Client,
    username: &str,
) -> Option<String> {
    let now = st.now();
    let claims = json!({
        "at_hash": util::random_alnum(22),
        "sub": st.identity_url(username),
        "aud": client.id,
        "iss": st.base_url,
        "name": username,
        "preferred_username": username,
        "exp": now + 300,
        "iat": now,
    });
    crate::keys::sign(&claims, &[])
}

pub(super) fn wants_refresh(scope: &str) -> bool {
    scope
        .split_whitespace()
        .any(|s| s == "refresh_token" || s == "offline_access")
}

/// Normalize a requested scope (deduplicated, space separated); empty → the default.
pub(super) fn normalize_scope(scope: Option<&str>) -> String {
    let mut out: Vec<&str> = Vec::new();
    for s in scope.unwrap_or("").split([' ', '+', ',']) {
        if !s.is_empty() && !out.contains(&s) {
            out.push(s);
        }
    }
    if out.is_empty() {
        DEFAULT_SCOPE.to_string()
    } else {
        out.join(" ")
    }
}

pub(super) fn grant_authorization_code(st: &mut State, req: &Req) -> HttpResponse {
    let Some(code) = req.val("code") else {
        return oauth_error("invalid_grant", "invalid authorization code");
    };
    let entry = st.codes.get(code).cloned();
    let secret_required = entry.as_ref().is_none_or(|c| c.challenge.is_none());
    let client = match authenticate(st, req, secret_required) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let Some(entry) = entry else {
        return oauth_error("invalid_grant", "invalid authorization code");
    };
    if entry.used || entry.client_id != client.id {
        return oauth_error("invalid_grant", "invalid authorization code");
    }
    if let Some(c) = st.codes.get_mut(code) {
        c.used = true;
    }
    if st.now_ms() > entry.expires_ms {
        return oauth_error("invalid_grant", "expired authorization code");
    }
    if req.get("redirect_uri").unwrap_or("") != entry.redirect_uri {
        return oauth_error("invalid_grant", "redirect_uri mismatch");
    }
    if let Some(challenge) = &entry.challenge {
        match req.val("code_verifier") {
            Some(v) if util::pkce_s256(v) == *challenge => {}
            _ => return oauth_error("invalid_grant", "invalid code verifier"),
        }
    }
    if !st.user_active(&entry.username) {
        return oauth_error("invalid_grant", "inactive user");
    }
    issue_user_tokens(st, &client, &entry.username, &entry.scope)
}

/// Web-server-shape tokens for an approval (auth code, device): refresh token if the scope
/// asks for one (uses an approval slot), plus a session.
pub(super) fn issue_user_tokens(
    st: &mut State,
    client: &crate::model::Client,
    username: &str,
    scope: &str,
) -> HttpResponse {
    let (refresh, family) = if wants_refresh(scope) {
        let (rt, fam) = st.new_family(&client.id, username, scope);
        (Some(rt), Some(fam))
    } else {
        (None, None)
    };
    let access = st.mint_session(&client.id, username, scope, family);
    token_response(
        st,
        client,
        username,
        &access,
        refresh.as_deref(),
        scope,
        Shape::Full,
    )
}

pub(super) fn grant_refresh(st: &mut State, req: &Req) -> HttpResponse {
    let (id, _) = req.creds();
    let Some(client) = id.and_then(|id| st.clients.get(&id).cloned()) else {
        return invalid_client_id();
    };
    let client = match authenticate(st, req, client.require_secret_for_refresh) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let Some(token) = req.val("refresh_token") else {
        return expired_refresh();
    };
    let family = match st.use_refresh(token, &client.id) {
        Ok(f) => f,
        Err(RefreshError::InactiveUser) => return oauth_error("invalid_grant", "inactive user"),
        Err(_) => return expired_refresh(),
    };
    let Some(fam) = st.families.get(&family).cloned() else {
        return expired_refresh();
    };
    let new_rt = if client.rotate_refresh_tokens {
        st.rotate(family)
    } else {
        None
    };
    let access = st.mint_session(&client.id, &fam.username, &fam.scope, Some(family));
    token_response(
        st,
        &client,
        &fam.username,
        &access,
        new_rt.as_deref(),
        &fam.scope,
        Shape::Full,
    )
}

pub(super) fn grant_password(st: &mut State, req: &Req) -> HttpResponse {
    let client = match authenticate(st, req, true) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let auth_failure = || oauth_error("invalid_grant", "authentication failure");
    if !client.allow_password_flow {
        return auth_failure();
    }
    let (Some(username), Some(password)) = (req.val("username"), req.get("password")) else {
        return auth_failure();
    };
    let Some(user) = st.users.get(username).cloned() else {
        return auth_failure();
    };
    if format!("{}{}", user.password, user.security_token) != password {
        return auth_failure();
    }
    if !user.active {
        return oauth_error("invalid_grant", "inactive user");
    }
    let scope = normalize_scope(req.get("scope"))
        .split_whitespace()
        .filter(|s| *s != "refresh_token" && *s != "offline_access")
        .collect::<Vec<_>>()
        .join(" ");
    let scope = if scope.is_empty() {
        "web api".to_string()
    } else {
        scope
    };
    let access = st.mint_session(&client.id, &user.username, &scope, None);
    token_response(
        st,
        &client,
        &user.username,
        &access,
        None,
        &scope,
        Shape::Password,
    )
}

pub(super) fn grant_client_credentials(st: &mut State, req: &Req) -> HttpResponse {
    let client = match authenticate(st, req, true) {
        Ok(c) => c,
        Err(e) => return e,
    };
    if client.secret_str().is_none() {
        return invalid_client();
    }
    let run_as = client
        .run_as
        .clone()
        .filter(|_| client.allow_client_credentials);
    let Some(username) = run_as.filter(|u| st.users.contains_key(u)) else {
        return oauth_error("invalid_grant", "no client credentials user enabled");
    };
    if !st.user_active(&username) {
        return oauth_error("invalid_grant", "inactive user");
    }
    let scope = "web api";
    let access = st.mint_session(&client.id, &username, scope, None);
    token_response(
        st,
        &client,
        &username,
        &access,
        None,
        scope,
        Shape::ClientCredentials,
    )
}

/// `exp` as a number of seconds, from a number or a numeric string. A millisecond value (the
/// sf CLI sends `Date.now() + 300`) is read as seconds too, i.e. far in the future, which is
/// how Salesforce treats it: accepted.
pub(super) fn exp_seconds(v: &Value) -> Option<i64> {
    let n = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    if !n.is_finite() {
        return None;
    }
    Some(n as i64)
}

pub(super) fn grant_jwt_bearer(st: &mut State, req: &Req) -> HttpResponse {
    let invalid = || oauth_error("invalid_grant", "invalid assertion");
    let Some(assertion) = req.val("assertion") else {
        return invalid();
    };
    let Some((_, claims)) = crate::keys::decode_unverified(assertion) else {
        return invalid();
    };
    let Some(client) = claims
        .get("iss")
        .and_then(Value::as_str)
        .and_then(|iss| st.clients.get(iss).cloned())
    else {
        return invalid_client_id();
    };
    let Some(pem) = client.jwt_cert_pem.as_deref() else {
        return invalid();
    };
    if crate::keys::verify_rs256(assertion, pem).is_err() {
        return invalid();
    }
    let allowed_aud = [
        st.base_url.as_str(),
        "https://login.salesforce.com",
        "https://test.salesforce.com",
    ];
    let aud_ok = |a: &str| allowed_aud.contains(&a.trim_end_matches('/'));
    let aud_valid = match claims.get("aud") {
        Some(Value::String(a)) => aud_ok(a),
        Some(Value::Array(v)) => v.iter().filter_map(Value::as_str).any(aud_ok),
        _ => false,
    };
    if !aud_valid {
        return oauth_error("invalid_grant", "audience is invalid");
    }
    let Some(exp) = claims.get("exp").and_then(exp_seconds) else {
        return invalid();
    };
    if exp <= st.now() {
        return oauth_error("invalid_grant", "expired authorization code");
    }
    let Some(username) = claims
        .get("sub")
        .or_else(|| claims.get("prn"))
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return invalid();
    };
    let Some(user) = st.users.get(&username).cloned() else {
        return oauth_error("invalid_grant", "user hasn't approved this consumer");
    };
    if !user.active {
        return oauth_error("invalid_grant", "inactive user");
    }
    if !st.preauthorized.contains(&client.id) && !st.has_approval(&client.id, &username) {
        return oauth_error("invalid_grant", "user hasn't approved this consumer");
    }
    let scope = "web api";
    let access = st.mint_session(&client.id, &username, scope, None);
    token_response(
        st,
        &client,
        &username,
        &access,
        None,
        scope,
        Shape::JwtBearer,
    )
}

pub(super) fn device_request(st: &mut State, req: &Req) -> HttpResponse {
    let client = match authenticate(st, req, false) {
        Ok(c) => c,
        Err(e) => return e,
    };
    if !client.allow_device_flow {
        return oauth_error(
            "invalid_request",
            "device flow is not enabled for this client",
        );
    }
    let scope = normalize_scope(req.get("scope"));
    let d = st.new_device(&client.id, &scope);
    json_ok(ordered(&[
        ("device_code", json!(d.device_code)),
        ("user_code", json!(d.user_code)),
        (
            "verification_uri",
            json!(format!("{}/setup/connect", st.base_url)),
        ),
        ("interval", json!(d.interval)),
    ]))
}

pub(super) fn grant_device(st: &mut State, req: &Req) -> HttpResponse {
    let client = match authenticate(st, req, false) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let code = req.val("code").unwrap_or("");
    let now = st.now_ms();
    let Some(d) = st
        .devices
        .iter_mut()
        .find(|d| d.device_code == code && d.client_id == client.id)
    else {
        return oauth_error("invalid_grant", "invalid device code");
    };
    if d.status == DeviceStatus::Consumed {
        return oauth_error("invalid_grant", "invalid device code");
    }
    if now > d.expires_ms {
        return oauth_error("expired_token", "device code expired");
    }
    let too_fast = d
        .last_poll_ms
        .is_some_and(|last| now - last < (d.interval as i64) * 1000);
    d.last_poll_ms = Some(now);
    match d.status.clone() {
        DeviceStatus::Denied => oauth_error("access_denied", "end-user denied authorization"),
        DeviceStatus::Pending if too_fast => oauth_error("slow_down", "polling too frequently"),
        DeviceStatus::Pending => {
            oauth_error("authorization_pending", "authorization pending for device")
        }
        DeviceStatus::Approved(username) => {
            d.status = DeviceStatus::Consumed;
            let scope = d.scope.clone();
            if !st.user_active(&username) {
                return oauth_error("invalid_grant", "inactive user");
            }
            issue_user_tokens(st, &client, &username, &scope)
        }
        DeviceStatus::Consumed => oauth_error("invalid_grant", "invalid device code"),
    }
}
