//! The Salesforce-facing endpoints: token (every grant + device request), authorize,
//! introspect, revoke, userinfo, identity URL, REST data API stubs, discovery and JWKS.
//! Each handler takes the locked [`State`] and returns the exact wire response.

use serde_json::{Value, json};

use crate::form::{self, Params};
use crate::http::{HttpRequest, HttpResponse};
use crate::state::{DEFAULT_SCOPE, DeviceStatus, ORG_ID, RefreshError, State};
use crate::util::{self, pct};

mod authorize;
mod data;
mod discovery;
mod session;
mod token;

use authorize::*;
use data::*;
pub use data::{API_VERSIONS, BLOB_LEN, blob};
use discovery::*;
use session::*;
use token::*;

pub const JSON_CT: &str = "application/json;charset=UTF-8";
pub(super) const HTML_CT: &str = "text/html;charset=UTF-8";

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

pub(super) fn oauth_error_status(status: u16, error: &str, description: &str) -> HttpResponse {
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

pub(super) fn bad_token_403() -> HttpResponse {
    oauth_response(403, "text/plain;charset=UTF-8", "Bad_OAuth_Token")
}

pub(super) fn invalid_session_401() -> HttpResponse {
    HttpResponse::new(
        401,
        JSON_CT,
        "[{\"message\":\"Session expired or invalid\",\"errorCode\":\"INVALID_SESSION_ID\"}]",
    )
    .with_header("WWW-Authenticate", "Token")
}

pub(super) fn invalid_client_id() -> HttpResponse {
    oauth_error("invalid_client_id", "client identifier invalid")
}

pub(super) fn invalid_client() -> HttpResponse {
    oauth_error("invalid_client", "invalid client credentials")
}

pub(super) fn expired_refresh() -> HttpResponse {
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
