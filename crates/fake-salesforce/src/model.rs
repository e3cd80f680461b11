//! Public configuration and record types: connected apps ([`Client`]), users ([`User`]),
//! injected faults ([`Fault`]), recorded requests ([`RecordedRequest`]) and start [`Options`].

use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// A connected app. Missing fields in JSON (control API) take the defaults of [`Client::new`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Client {
    /// Consumer key.
    pub id: String,
    /// Consumer secret; `None` (or empty) for a public client such as `PlatformCLI`.
    pub secret: Option<String>,
    /// "Require Secret for Refresh Token Flow".
    pub require_secret_for_refresh: bool,
    /// Refresh token rotation.
    pub rotate_refresh_tokens: bool,
    /// Issue RS256 JWT access tokens (token response carries `"token_format":"jwt"`).
    pub jwt_access_tokens: bool,
    /// Session idle timeout in seconds (default 7200).
    pub session_timeout_secs: i64,
    /// "Expire refresh token if not used for N" seconds.
    pub refresh_token_idle_ttl_secs: Option<i64>,
    /// May introspect tokens of other apps.
    pub introspect_all: bool,
    /// Registered callback URLs, exact match; a `*` matches a port number.
    pub redirect_uris: Vec<String>,
    /// Public key / certificate (PEM) for JWT-bearer verification.
    pub jwt_cert_pem: Option<String>,
    /// Username-password flow allowed (default true).
    pub allow_password_flow: bool,
    /// Client-credentials flow allowed (default false for `Client::new`).
    pub allow_client_credentials: bool,
    /// Run-as username for the client-credentials flow.
    pub run_as: Option<String>,
    /// Device flow allowed (default true).
    pub allow_device_flow: bool,
}

impl Client {
    /// A client with the documented defaults.
    pub fn new(id: &str, secret: Option<&str>) -> Client {
        Client {
            id: id.to_string(),
            secret: secret.map(str::to_string),
            require_secret_for_refresh: false,
            rotate_refresh_tokens: false,
            jwt_access_tokens: false,
            session_timeout_secs: 7200,
            refresh_token_idle_ttl_secs: None,
            introspect_all: false,
            redirect_uris: vec!["http://localhost:1717/OauthRedirect".to_string()],
            jwt_cert_pem: None,
            allow_password_flow: true,
            allow_client_credentials: false,
            run_as: None,
            allow_device_flow: true,
        }
    }

    /// The secret if it is set and non-empty.
    pub fn secret_str(&self) -> Option<&str> {
        self.secret.as_deref().filter(|s| !s.is_empty())
    }

    /// Does `uri` match one of the registered callbacks (exact, or `*` = any port digits)?
    pub fn redirect_uri_allowed(&self, uri: &str) -> bool {
        self.redirect_uris
            .iter()
            .any(|pat| match pat.split_once('*') {
                None => pat == uri,
                Some((pre, post)) => uri
                    .strip_prefix(pre)
                    .and_then(|rest| rest.strip_suffix(post))
                    .is_some_and(|mid| !mid.is_empty() && mid.bytes().all(|b| b.is_ascii_digit())),
            })
    }
}

impl Default for Client {
    fn default() -> Self {
        Client::new("", None)
    }
}

/// An org user.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct User {
    pub username: String,
    pub password: String,
    pub security_token: String,
    pub active: bool,
    /// 18-char `005…` id (derived from the username by [`User::new`]).
    pub user_id: String,
}

impl User {
    /// An active user; `user_id` is derived deterministically from the username.
    pub fn new(username: &str, password: &str, security_token: &str) -> User {
        User {
            username: username.to_string(),
            password: password.to_string(),
            security_token: security_token.to_string(),
            active: true,
            user_id: crate::util::user_id_for(username),
        }
    }
}

impl Default for User {
    fn default() -> Self {
        User::new("", "", "")
    }
}

/// What a faulted response carries.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum FaultBody {
    /// `application/json;charset=UTF-8` with this text (need not be valid JSON).
    Json(String),
    /// `text/html;charset=UTF-8` with this text.
    Html(String),
    /// `text/plain;charset=UTF-8` with this text.
    Text(String),
    /// 2 MiB of JSON (a token-looking object with a huge padding field).
    Oversized,
    /// Headers announce a longer `Content-Length` than the bytes sent, then the connection closes.
    Truncated,
    /// Close the connection without sending anything.
    Drop,
}

/// A fault to inject on one path. `status == 0` means "answer normally" (after `delay_ms`),
/// unless the body is `Drop` or `Truncated`, which act whatever the status.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Fault {
    pub status: u16,
    pub body: FaultBody,
    pub delay_ms: u64,
    pub retry_after: Option<u64>,
    /// A `Location` header (for redirects).
    pub location: Option<String>,
    /// How many matching requests this fault applies to; `None` = forever.
    pub times: Option<u32>,
}

impl Default for Fault {
    fn default() -> Self {
        Fault {
            status: 0,
            body: FaultBody::Text(String::new()),
            delay_ms: 0,
            retry_after: None,
            location: None,
            times: Some(1),
        }
    }
}

/// The HTML page the fake serves for maintenance faults.
pub const MAINTENANCE_HTML: &str = "<!DOCTYPE html>\n<html><head><title>Salesforce - Down for Maintenance</title></head>\n<body><h1>Down for Maintenance</h1>\n<p>Salesforce is currently undergoing scheduled maintenance. We apologize for the inconvenience. Please try again later.</p>\n</body></html>\n";

impl Fault {
    /// Answer with this status and an empty `text/plain` body, once.
    pub fn status(status: u16) -> Fault {
        Fault {
            status,
            ..Fault::default()
        }
    }
    /// Answer with this status and a JSON body (sent verbatim), once.
    pub fn json(status: u16, body: &str) -> Fault {
        Fault {
            status,
            body: FaultBody::Json(body.to_string()),
            ..Fault::default()
        }
    }
    /// A Salesforce-style maintenance HTML page with this status, once.
    pub fn html(status: u16) -> Fault {
        Fault {
            status,
            body: FaultBody::Html(MAINTENANCE_HTML.to_string()),
            ..Fault::default()
        }
    }
    /// HTTP 200 with `application/json` content type but a body that is not valid JSON.
    pub fn invalid_json() -> Fault {
        Fault::json(200, "{\"access_token\":\"00D5g000004FAKE!AQ")
    }
    /// Sleep `ms` milliseconds, then answer normally.
    pub fn delay(ms: u64) -> Fault {
        Fault {
            delay_ms: ms,
            ..Fault::default()
        }
    }
    /// Close the connection without a response.
    pub fn drop() -> Fault {
        Fault {
            body: FaultBody::Drop,
            ..Fault::default()
        }
    }
    /// A 200 whose body is cut short (Content-Length larger than the bytes sent).
    pub fn truncated() -> Fault {
        Fault {
            status: 200,
            body: FaultBody::Truncated,
            ..Fault::default()
        }
    }
    /// A 200 with 2 MiB of JSON.
    pub fn oversized() -> Fault {
        Fault {
            status: 200,
            body: FaultBody::Oversized,
            ..Fault::default()
        }
    }
    /// Apply to `n` requests.
    pub fn times(mut self, n: u32) -> Fault {
        self.times = Some(n);
        self
    }
    /// Apply to every matching request until cleared.
    pub fn forever(mut self) -> Fault {
        self.times = None;
        self
    }
    /// Add a `Retry-After: s` header.
    pub fn retry_after(mut self, s: u64) -> Fault {
        self.retry_after = Some(s);
        self
    }
    /// Add a `Location: url` header (a redirect that has somewhere to go).
    pub fn location(mut self, url: &str) -> Fault {
        self.location = Some(url.to_string());
        self
    }
    /// Sleep before answering.
    pub fn with_delay(mut self, ms: u64) -> Fault {
        self.delay_ms = ms;
        self
    }
}

/// One request as the fake received it (control requests are not recorded).
#[derive(Clone, Debug, Serialize)]
pub struct RecordedRequest {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Parsed body parameters (urlencoded or multipart).
    pub form: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    /// The raw body, as received (JSON: `body_base64`).
    #[serde(serialize_with = "ser_base64", rename = "body_base64")]
    pub body: Vec<u8>,
    #[serde(serialize_with = "ser_time_ms", rename = "at_ms")]
    pub at: SystemTime,
}

fn ser_base64<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    use base64::Engine;
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
}

fn ser_time_ms<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    s.serialize_u64(ms)
}

impl RecordedRequest {
    /// A body parameter, else a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .chain(self.query.iter())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// A header value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How to start a fake.
#[derive(Clone, Debug)]
pub struct Options {
    /// Address to listen on, e.g. `"127.0.0.1:0"`.
    pub bind: String,
    /// Create the default client, public client and user.
    pub defaults: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            bind: "127.0.0.1:0".to_string(),
            defaults: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_patterns() {
        let mut c = Client::new("x", None);
        c.redirect_uris = vec!["http://localhost:*/OauthRedirect".into()];
        assert!(c.redirect_uri_allowed("http://localhost:1717/OauthRedirect"));
        assert!(!c.redirect_uri_allowed("http://localhost:/OauthRedirect"));
        assert!(!c.redirect_uri_allowed("http://localhost:17x/OauthRedirect"));
        assert!(!c.redirect_uri_allowed("http://evil:1717/OauthRedirect"));
    }
}
