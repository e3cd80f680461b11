//! The Salesforce-facing endpoints: token (every grant + device request), authorize,
//! introspect, revoke, userinfo, identity URL, REST data API stubs, discovery and JWKS.
//! Each handler takes the locked [`State`] and returns the exact wire response.

use serde_json::{Value, json};

use crate::form::{self, Params};
use crate::http::{HttpRequest, HttpResponse};
use crate::state::{DEFAULT_SCOPE, DeviceStatus, ORG_ID, RefreshError, State};
use crate::util::{self, pct};

pub const JSON_CT: &str = "application/json;charset=UTF-8";
const HTML_CT: &str = "text/html;charset=UTF-8";

/// Serialize fields in the given order (serde_json's map would sort them).
pub fn ordered(fields: &[(&str, Value)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::from(*k).to_string());
        out.push(':');
        out.push_str(&v.to_string());
    }
    out.push('}');
    out
}

/// A response with the headers captured from Salesforce's OAuth endpoints.
pub fn oauth_response(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> HttpResponse {
    HttpResponse::new(status, content_type, body)
        .with_header(
            "Cache-Control",
            "no-cache,must-revalidate,max-age=0,no-store,private",
        )
        .with_header(
            "Strict-Transport-Security",
            "max-age=63072000; includeSubDomains",
        )
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("X-XSS-Protection", "1; mode=block")
        .with_header("X-Robots-Tag", "none")
        .with_header("Vary", "Accept-Encoding")
        .with_header("Expires", "Thu, 01 Jan 1970 00:00:00 GMT")
}

pub fn json_ok(body: String) -> HttpResponse {
    oauth_response(200, JSON_CT, body)
}

/// HTTP 400 `{"error","error_description"}`.
pub fn oauth_error(error: &str, description: &str) -> HttpResponse {
    oauth_error_status(400, error, description)
}

fn oauth_error_status(status: u16, error: &str, description: &str) -> HttpResponse {
    oauth_response(
        status,
        JSON_CT,
        ordered(&[
            ("error", json!(error)),
            ("error_description", json!(description)),
        ]),
    )
}

pub fn html_page(status: u16, title: &str, text: &str) -> HttpResponse {
    let body = format!(
        "<!DOCTYPE html>\n<html><head><title>{t}</title></head>\n<body><h1>{t}</h1>\n<p>{x}</p>\n</body></html>\n",
        t = util::html_escape(title),
        x = util::html_escape(text)
    );
    oauth_response(status, HTML_CT, body)
}

pub fn not_found() -> HttpResponse {
    html_page(
        404,
        "URL No Longer Exists",
        "You have attempted to reach a URL that no longer exists on salesforce.com.",
    )
}

fn bad_token_403() -> HttpResponse {
    oauth_response(403, "text/plain;charset=UTF-8", "Bad_OAuth_Token")
}

fn invalid_session_401() -> HttpResponse {
    HttpResponse::new(
        401,
        JSON_CT,
        "[{\"message\":\"Session expired or invalid\",\"errorCode\":\"INVALID_SESSION_ID\"}]",
    )
    .with_header("WWW-Authenticate", "Token")
}

fn invalid_client_id() -> HttpResponse {
    oauth_error("invalid_client_id", "client identifier invalid")
}

fn invalid_client() -> HttpResponse {
    oauth_error("invalid_client", "invalid client credentials")
}

fn expired_refresh() -> HttpResponse {
    oauth_error("invalid_grant", "expired access/refresh token")
}

/// Parameters of a request: body first, then query string.
pub struct Req<'a> {
    pub http: &'a HttpRequest,
    pub params: Params,
}

impl Req<'_> {
    pub fn get(&self, name: &str) -> Option<&str> {
        form::get(&self.params, name)
    }
    /// Non-empty value.
    fn val(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }
    /// Client credentials from Basic (preferred) or the body. Empty strings count as absent.
    fn creds(&self) -> (Option<String>, Option<String>) {
        if let Some((id, secret)) = form::basic_auth(self.http) {
            let secret = (!secret.is_empty()).then_some(secret);
            return ((!id.is_empty()).then_some(id), secret);
        }
        (
            self.val("client_id").map(str::to_string),
            self.val("client_secret").map(str::to_string),
        )
    }
    fn bearer(&self) -> Option<String> {
        form::bearer(self.http).or_else(|| self.val("oauth_token").map(str::to_string))
    }
}

/// Route one non-control request.
pub fn handle(st: &mut State, req: &Req) -> HttpResponse {
    let path = req.http.path.as_str();
    let method = req.http.method.as_str();
    match path {
        "/services/oauth2/token" => token(st, req),
        "/services/oauth2/authorize" => authorize(st, req),
        "/services/oauth2/introspect" => introspect(st, req),
        "/services/oauth2/revoke" => revoke(st, req),
        "/services/oauth2/userinfo" => userinfo(st, req),
        "/.well-known/openid-configuration" => discovery(st),
        "/id/keys" => json_ok(crate::keys::jwks().to_string()),
        "/setup/connect" => html_page(
            200,
            "Connect Your Device",
            "Enter the code displayed on your device (the fake approves via approve_device).",
        ),
        _ if path.starts_with("/id/") => identity(st, req),
        _ if path == "/services/data" || path.starts_with("/services/data/") => {
            if matches!(method, "GET" | "HEAD" | "POST" | "PATCH" | "DELETE") {
                data_api(st, req)
            } else {
                not_found()
            }
        }
        _ if path.starts_with("/services/apexrest/") => apex_rest(st, req),
        _ => not_found(),
    }
}

// ----- token endpoint -------------------------------------------------------------------

fn token(st: &mut State, req: &Req) -> HttpResponse {
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
fn authenticate(
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
enum Shape {
    /// web server, device, refresh: scope + signature + issued_at
    Full,
    /// username-password: no scope
    Password,
    /// client credentials: + api_instance_url
    ClientCredentials,
    /// JWT bearer: no signature, no issued_at
    JwtBearer,
}

fn token_response(
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

fn id_token(st: &State, client: &crate::model::Client, username: &str) -> Option<String> {
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

fn wants_refresh(scope: &str) -> bool {
    scope
        .split_whitespace()
        .any(|s| s == "refresh_token" || s == "offline_access")
}

/// Normalize a requested scope (deduplicated, space separated); empty → the default.
fn normalize_scope(scope: Option<&str>) -> String {
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

fn grant_authorization_code(st: &mut State, req: &Req) -> HttpResponse {
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
fn issue_user_tokens(
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

fn grant_refresh(st: &mut State, req: &Req) -> HttpResponse {
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

fn grant_password(st: &mut State, req: &Req) -> HttpResponse {
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

fn grant_client_credentials(st: &mut State, req: &Req) -> HttpResponse {
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
fn exp_seconds(v: &Value) -> Option<i64> {
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

fn grant_jwt_bearer(st: &mut State, req: &Req) -> HttpResponse {
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

fn device_request(st: &mut State, req: &Req) -> HttpResponse {
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

fn grant_device(st: &mut State, req: &Req) -> HttpResponse {
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

// ----- authorize ------------------------------------------------------------------------

fn redirect_to(uri: &str, pairs: &[(&str, &str)]) -> HttpResponse {
    let mut loc = uri.to_string();
    let mut sep = if uri.contains('?') { '&' } else { '?' };
    for (k, v) in pairs {
        loc.push(sep);
        loc.push_str(k);
        loc.push('=');
        loc.push_str(&pct(v));
        sep = '&';
    }
    oauth_response(302, HTML_CT, "").with_header("Location", &loc)
}

fn authorize(st: &mut State, req: &Req) -> HttpResponse {
    let redirect_uri = req.get("redirect_uri").unwrap_or("").to_string();
    let state_param = req.get("state").map(str::to_string);
    let with_state = |mut v: Vec<(&'static str, String)>| {
        if let Some(s) = &state_param {
            v.push(("state", s.clone()));
        }
        v
    };
    let redirect_error = |error: &str, desc: &str| {
        let pairs = with_state(vec![
            ("error", error.to_string()),
            ("error_description", desc.to_string()),
        ]);
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        redirect_to(&redirect_uri, &refs)
    };
    let client = req
        .val("client_id")
        .and_then(|id| st.clients.get(id).cloned());
    let Some(client) = client else {
        if redirect_uri.is_empty() {
            return html_page(
                400,
                "Error",
                "error=invalid_client_id&error_description=client identifier invalid",
            );
        }
        return redirect_error("invalid_client_id", "client identifier invalid");
    };
    if !client.redirect_uri_allowed(&redirect_uri) {
        return html_page(
            400,
            "Error",
            "error=redirect_uri_mismatch&error_description=redirect_uri must match configuration",
        );
    }
    match req.get("response_type") {
        Some("code") => {}
        _ => return redirect_error("unsupported_response_type", "response type not supported"),
    }
    let challenge = req.val("code_challenge").map(str::to_string);
    if challenge.is_some()
        && req
            .val("code_challenge_method")
            .is_some_and(|m| m != "S256")
    {
        return redirect_error("invalid_request", "invalid code challenge method");
    }
    if st.authorize_deny {
        return redirect_error("access_denied", "end-user denied authorization");
    }
    let Some(username) = st.authorize_user.clone() else {
        // Nobody is logged in the "browser": show the login page, never redirect.
        return html_page(
            200,
            "Login | Salesforce",
            "Username / Password — nobody is logged in to the fake.",
        );
    };
    // A refusal after the user logged in (published::CALLBACK_*): the app may not
    // be used, or is not installed in this org.
    if let Some((error, desc)) = st.authorize_refusal.clone() {
        let mut pairs = vec![("error", error)];
        if let Some(d) = desc {
            pairs.push(("error_description", d));
        }
        let pairs = with_state(pairs);
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        return redirect_to(&redirect_uri, &refs);
    }
    let code = format!("aPrx{}==", util::random_token_chars(80));
    let expires_ms = st.now_ms() + 15 * 60 * 1000;
    st.codes.insert(
        code.clone(),
        crate::state::AuthCode {
            client_id: client.id.clone(),
            username,
            redirect_uri: redirect_uri.clone(),
            scope: normalize_scope(req.get("scope")),
            challenge,
            expires_ms,
            used: false,
        },
    );
    let pairs = with_state(vec![("code", code)]);
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    redirect_to(&redirect_uri, &refs)
}

// ----- introspect / revoke ----------------------------------------------------------------

fn introspect(st: &mut State, req: &Req) -> HttpResponse {
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

fn revoke(st: &mut State, req: &Req) -> HttpResponse {
    let token = req.get("token").unwrap_or("");
    if st.revoke_any(token) {
        oauth_response(200, JSON_CT, "")
    } else {
        oauth_error("invalid_token", "Token was invalid")
    }
}

// ----- userinfo / identity / data API -----------------------------------------------------

fn user_doc(st: &State, username: &str, identity_shape: bool) -> String {
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

fn userinfo(st: &mut State, req: &Req) -> HttpResponse {
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

fn identity(st: &mut State, req: &Req) -> HttpResponse {
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

/// The API versions the fake org offers (`GET /services/data`), oldest first.
pub const API_VERSIONS: &[(&str, &str)] = &[
    ("Winter '25", "62.0"),
    ("Spring '25", "63.0"),
    ("Summer '25", "64.0"),
];

/// Length of the binary body of `GET …/sobjects/ContentVersion/<id>/VersionData`:
/// more than sfx's 1 MiB cap for OAuth answers, and not a multiple of any buffer.
pub const BLOB_LEN: usize = 3 * 1024 * 1024 + 7;

/// The bytes of that binary body: every byte value, in a pattern that a lost,
/// repeated or re-encoded chunk would change (see [`crate::blob_bytes`]).
pub fn blob(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9E37_79B9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

fn rest_error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::new(
        status,
        JSON_CT,
        format!(
            "[{}]",
            ordered(&[("message", json!(message)), ("errorCode", json!(code))])
        ),
    )
}

/// The REST data API: the versions list (no token needed, as on Salesforce); then,
/// with a live session: the version root, limits, `sobjects/Account/describe`,
/// `query?q=`, `POST sobjects/Account` (the body is kept in the request log and
/// the account in the org), `sobjects/User/<id>`, and a binary ContentVersion body.
fn data_api(st: &mut State, req: &Req) -> HttpResponse {
    let segs: Vec<&str> = req
        .http
        .path
        .trim_matches('/')
        .split('/')
        .skip(2)
        .filter(|s| !s.is_empty())
        .collect();
    let method = req.http.method.as_str();
    if segs.is_empty() && matches!(method, "GET" | "HEAD") {
        let list: Vec<Value> = API_VERSIONS
            .iter()
            .map(|(label, v)| json!({"label": label, "url": format!("/services/data/v{v}"), "version": v}))
            .collect();
        return HttpResponse::new(200, JSON_CT, Value::Array(list).to_string());
    }
    let Some(token) = form::bearer(req.http) else {
        return invalid_session_401();
    };
    if !st.activity(&token) {
        return invalid_session_401();
    }
    st.api_calls += 1;
    let username = st
        .sessions
        .get(&token)
        .map(|s| s.username.clone())
        .unwrap_or_default();
    if let Some(v) = segs.first()
        && !API_VERSIONS
            .iter()
            .any(|(_, known)| v.strip_prefix('v') == Some(*known))
    {
        return rest_error(404, "NOT_FOUND", "The requested resource does not exist");
    }
    let body = match (method, segs.as_slice()) {
        (_, [v]) => {
            let p = format!("/services/data/{v}");
            json!({
                "sobjects": format!("{p}/sobjects"),
                "query": format!("{p}/query"),
                "limits": format!("{p}/limits"),
            })
            .to_string()
        }
        ("GET" | "HEAD", [_, "sobjects", "User", id]) => match st
            .users
            .values()
            .find(|u| u.user_id == *id || u.user_id.get(..15) == Some(*id))
        {
            Some(u) => ordered(&[
                ("attributes", json!({"type": "User"})),
                ("Id", json!(u.user_id)),
                ("Username", json!(u.username)),
                ("IsActive", json!(u.active)),
            ]),
            None => return rest_error(404, "NOT_FOUND", "The requested resource does not exist"),
        },
        ("GET" | "HEAD", [_, "limits", ..]) => json!({
            "DailyApiRequests": {"Max": 15000, "Remaining": 15000u64.saturating_sub(st.api_calls)},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
            "DataStorageMB": {"Max": 5, "Remaining": 5},
            "FileStorageMB": {"Max": 20, "Remaining": 20}
        })
        .to_string(),
        ("GET" | "HEAD", [_, "sobjects", "Account", "describe"]) => json!({
            "name": "Account",
            "label": "Account",
            "keyPrefix": "001",
            "createable": true,
            "queryable": true,
            "fields": [
                {"name": "Id", "type": "id", "label": "Account ID", "length": 18},
                {"name": "Name", "type": "string", "label": "Account Name", "length": 255},
                {"name": "Industry", "type": "picklist", "label": "Industry", "length": 255}
            ],
            "urls": {"sobject": format!("/services/data/{}/sobjects/Account", segs[0])}
        })
        .to_string(),
        ("GET" | "HEAD", [_, "query"]) => {
            let q = req.get("q").unwrap_or("").trim();
            if !q.to_ascii_uppercase().starts_with("SELECT ") {
                return rest_error(
                    400,
                    "MALFORMED_QUERY",
                    "unexpected token: the query must start with SELECT",
                );
            }
            let records: Vec<Value> = st
                .accounts
                .iter()
                .map(|(id, name)| {
                    json!({
                        "attributes": {"type": "Account", "url": format!("/services/data/{}/sobjects/Account/{id}", segs[0])},
                        "Id": id,
                        "Name": name
                    })
                })
                .collect();
            json!({"totalSize": records.len(), "done": true, "records": records}).to_string()
        }
        ("POST", [_, "sobjects", "Account"]) => {
            let parsed: Option<Value> = serde_json::from_slice(&req.http.body).ok();
            let Some(name) = parsed
                .as_ref()
                .and_then(|v| v.get("Name"))
                .and_then(|n| n.as_str())
            else {
                return rest_error(
                    400,
                    "REQUIRED_FIELD_MISSING",
                    "Required fields are missing: [Name]",
                );
            };
            let id = format!("001{}", util::random_alnum(15));
            st.accounts.push((id.clone(), name.to_string()));
            return HttpResponse::new(
                201,
                JSON_CT,
                ordered(&[
                    ("id", json!(id)),
                    ("success", json!(true)),
                    ("errors", json!([])),
                ]),
            );
        }
        ("GET" | "HEAD", [_, "sobjects", "ContentVersion", _, "VersionData"]) => {
            return HttpResponse::new(200, "application/octet-stream", blob(BLOB_LEN));
        }
        ("GET" | "HEAD", _) => json!({"user": username}).to_string(),
        _ => return rest_error(404, "NOT_FOUND", "The requested resource does not exist"),
    };
    HttpResponse::new(200, JSON_CT, body).with_header(
        "Sforce-Limit-Info",
        &format!("api-usage={}/15000", st.api_calls),
    )
}

/// `/services/apexrest/echo`: with a live session, answers any method with the
/// request body as received, byte for byte, under the request's content type.
fn apex_rest(st: &mut State, req: &Req) -> HttpResponse {
    let Some(token) = form::bearer(req.http) else {
        return invalid_session_401();
    };
    if !st.activity(&token) {
        return invalid_session_401();
    }
    st.api_calls += 1;
    if req.http.path.trim_end_matches('/') != "/services/apexrest/echo" {
        return rest_error(404, "NOT_FOUND", "Could not find a match for URL");
    }
    let ct = req
        .http
        .header("content-type")
        .unwrap_or("application/octet-stream")
        .to_string();
    HttpResponse::new(200, &ct, req.http.body.clone())
}

fn discovery(st: &State) -> HttpResponse {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_forms() {
        assert_eq!(exp_seconds(&json!(1_700_000_000)), Some(1_700_000_000));
        assert_eq!(exp_seconds(&json!("1700000000")), Some(1_700_000_000));
        assert_eq!(
            exp_seconds(&json!(1_700_000_000_300i64)),
            Some(1_700_000_000_300)
        );
        assert_eq!(exp_seconds(&json!("soon")), None);
        assert_eq!(exp_seconds(&json!(null)), None);
    }

    #[test]
    fn ordered_keeps_order() {
        assert_eq!(
            ordered(&[("b", json!(1)), ("a", json!("x"))]),
            "{\"b\":1,\"a\":\"x\"}"
        );
    }
}
