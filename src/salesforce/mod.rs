//! The Salesforce OAuth client: token grants, introspection, revocation, userinfo.
//!
//! No clap, and no printing except the `-v` trace (through [`crate::messages`]);
//! no `sfx …` advice either: a refusal that needs a new login comes back without
//! a hint, for the command layer to add. Every endpoint is reached through a base URL that
//! comes from the org record or a flag, never a constant, so tests talk to the
//! in-repo fake. Secrets leave their [`Secret`] wrapper only in request bodies.

pub mod auth_url;
pub mod errors;
pub mod flows;
pub mod http;
pub mod jwt;
pub mod types;
pub mod url;

use crate::error::Error;
use crate::secret::Secret;
use http::{Delivery, Http, Reply, Request, Retry};
use types::{OAuthError, TokenResponse, Userinfo};

pub const TOKEN_PATH: &str = "/services/oauth2/token";
pub const INTROSPECT_PATH: &str = "/services/oauth2/introspect";
pub const REVOKE_PATH: &str = "/services/oauth2/revoke";
pub const USERINFO_PATH: &str = "/services/oauth2/userinfo";

/// A connected app's credentials.
#[derive(Debug, Clone, Copy)]
pub struct ClientCreds<'a> {
    pub id: &'a str,
    pub secret: Option<&'a Secret>,
}

/// What introspection said.
#[derive(Debug)]
pub enum Introspected {
    /// The endpoint's JSON object as received.
    Answer(serde_json::Map<String, serde_json::Value>),
    /// The endpoint rejected the client credentials (`invalid_client`).
    ClientRejected(String),
}

/// What userinfo said about a token.
#[derive(Debug)]
pub enum TokenProbe {
    Alive(Userinfo),
    /// 401/403: the token is dead.
    Dead(u16),
}

/// What revocation said.
#[derive(Debug, PartialEq, Eq)]
pub enum Revoked {
    Done,
    /// 400 `invalid_token`: it was already dead.
    AlreadyInvalid,
}

pub struct Client<'a> {
    pub http: &'a Http,
}

fn url(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// A token-endpoint request that failed, and whether it may have taken effect
/// at Salesforce (a rotating refresh that may have spent its refresh token).
/// Converts into [`Error`] with `?` where the delivery does not matter.
#[derive(Debug)]
pub struct Failed {
    pub error: Error,
    pub delivery: Delivery,
}

impl From<Failed> for Error {
    fn from(f: Failed) -> Error {
        f.error
    }
}

impl Client<'_> {
    /// POST to the token endpoint (a grant, or the device-code request): the JSON
    /// object Salesforce answered, or its OAuth error. Client credentials, when
    /// given, go in the body; the JWT bearer grant sends none.
    pub fn token_endpoint(
        &self,
        base: &str,
        mut form: Vec<(&'static str, String)>,
        creds: Option<ClientCreds<'_>>,
        retry: Retry,
    ) -> Result<TokenEndpointReply, Failed> {
        if let Some(creds) = creds {
            form.push(("client_id", creds.id.to_string()));
            if let Some(s) = creds.secret.filter(|s| !s.is_empty()) {
                form.push(("client_secret", s.expose().to_string()));
            }
        }
        form.push(("format", "json".to_string()));
        let (sent, delivery) = self.http.send_tracked(&Request {
            method: "POST",
            url: url(base, TOKEN_PATH),
            form,
            bearer: None,
            basic: None,
            retry,
        });
        let failed = |error| Failed { error, delivery };
        let reply = sent.map_err(failed)?;
        Ok(TokenEndpointReply {
            host: errors::host_of(&reply.url),
            body: errors::json_or_oauth_error(&reply).map_err(failed)?,
            delivery,
        })
    }

    /// A grant on the token endpoint, its answer checked: a usable token
    /// response whose `signature` matches the client secret (when one is known).
    /// `doing` names the action for errors ("the refresh of org prod"); a
    /// refusal comes back without a hint, for the caller to add.
    pub fn grant(
        &self,
        base: &str,
        form: Vec<(&'static str, String)>,
        creds: Option<ClientCreds<'_>>,
        retry: Retry,
        doing: &str,
    ) -> Result<TokenResponse, Failed> {
        let reply = self.token_endpoint(base, form, creds, retry)?;
        let delivery = reply.delivery;
        let failed = |error| Failed { error, delivery };
        let map = match reply.body {
            Ok(map) => map,
            Err(oauth) => return Err(failed(errors::explain(&oauth, doing))),
        };
        token_response(map, &reply.host, doing, creds.and_then(|c| c.secret)).map_err(failed)
    }

    /// The refresh-token grant. A rotating one is never resent once it may
    /// have been delivered.
    pub fn refresh(
        &self,
        base: &str,
        refresh_token: &Secret,
        creds: ClientCreds<'_>,
        rotating: bool,
        doing: &str,
    ) -> Result<TokenResponse, Failed> {
        self.refresh_by(base, refresh_token, creds, rotating, None, doing)
    }

    /// [`Client::refresh`]; a rotating one starts no attempt at or after `send_by`.
    pub fn refresh_by(
        &self,
        base: &str,
        refresh_token: &Secret,
        creds: ClientCreds<'_>,
        rotating: bool,
        send_by: Option<crate::clock::BootInstant>,
        doing: &str,
    ) -> Result<TokenResponse, Failed> {
        let form = vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", refresh_token.expose().to_string()),
        ];
        // A rotated refresh token replayed revokes the whole family: once the
        // request may have been delivered, do not send it again.
        let retry = match (rotating, send_by) {
            (true, Some(by)) => Retry::OnlyUnsentBy(by),
            (true, None) => Retry::OnlyUnsent,
            (false, _) => Retry::Transient,
        };
        self.grant(base, form, Some(creds), retry, doing)
    }

    /// POST /services/oauth2/introspect with the client id (and secret, if known)
    /// in the form body.
    pub fn introspect(
        &self,
        base: &str,
        token: &Secret,
        hint: &str,
        creds: ClientCreds<'_>,
    ) -> Result<Introspected, Error> {
        let mut form = vec![
            ("token", token.expose().to_string()),
            ("token_type_hint", hint.to_string()),
            ("client_id", creds.id.to_string()),
        ];
        if let Some(s) = creds.secret.filter(|s| !s.is_empty()) {
            form.push(("client_secret", s.expose().to_string()));
        }
        let reply = self.http.send(&Request {
            method: "POST",
            url: url(base, INTROSPECT_PATH),
            form,
            bearer: None,
            basic: None,
            retry: Retry::Transient,
        })?;
        match errors::json_or_oauth_error(&reply)? {
            Ok(map) => {
                if !map.get("active").is_some_and(|a| a.is_boolean()) {
                    return Err(Error::network(format!(
                        "{} answered introspection without an `active` field; that is not what Salesforce sends",
                        errors::host_of(&reply.url)
                    )));
                }
                Ok(Introspected::Answer(map))
            }
            Err(OAuthError {
                error,
                error_description,
                ..
            }) if error.starts_with("invalid_client") => Ok(Introspected::ClientRejected(format!(
                "{error}{}",
                error_description
                    .map(|d| format!(" (\"{}\")", crate::secret::redact_text(&d)))
                    .unwrap_or_default()
            ))),
            Err(e) => Err(errors::explain(&e, "the introspection request")),
        }
    }

    /// GET /services/oauth2/userinfo with the token: alive, or dead (401/403).
    pub fn userinfo(&self, base: &str, token: &Secret) -> Result<TokenProbe, Error> {
        let reply = self.http.send(&Request {
            method: "GET",
            url: url(base, USERINFO_PATH),
            form: vec![],
            bearer: Some(token),
            basic: None,
            retry: Retry::Transient,
        })?;
        if reply.status == 401 || reply.status == 403 {
            return Ok(TokenProbe::Dead(reply.status));
        }
        let map = match errors::json_or_oauth_error(&reply)? {
            Ok(map) => map,
            Err(e) => return Err(errors::explain(&e, "the userinfo request")),
        };
        serde_json::from_value(serde_json::Value::Object(map))
            .map(TokenProbe::Alive)
            .map_err(|_| {
                Error::network(format!(
                    "{} answered userinfo with an unexpected body",
                    errors::host_of(&reply.url)
                ))
            })
    }

    /// POST /services/oauth2/revoke.
    pub fn revoke(&self, base: &str, token: &Secret) -> Result<Revoked, Error> {
        let reply: Reply = self.http.send(&Request {
            method: "POST",
            url: url(base, REVOKE_PATH),
            form: vec![("token", token.expose().to_string())],
            bearer: None,
            basic: None,
            retry: Retry::Transient,
        })?;
        if (200..300).contains(&reply.status) {
            return Ok(Revoked::Done);
        }
        if reply.status == 400
            && (reply.body.contains("invalid_token")
                || reply.body.contains("unsupported_token_type"))
        {
            return Ok(Revoked::AlreadyInvalid);
        }
        match errors::json_or_oauth_error(&reply)? {
            Ok(_) => Err(Error::network(format!(
                "{} answered the revocation with HTTP {}",
                errors::host_of(&reply.url),
                reply.status
            ))),
            Err(e) => Err(errors::explain(&e, "the revocation")),
        }
    }
}

/// What the token endpoint answered.
pub struct TokenEndpointReply {
    /// `host:port` of the endpoint, for messages.
    pub host: String,
    pub body: Result<serde_json::Map<String, serde_json::Value>, OAuthError>,
    /// Whether a failure judged from this reply may have taken effect.
    pub delivery: Delivery,
}

/// Turn a token endpoint's JSON object into a checked [`TokenResponse`].
pub fn token_response(
    map: serde_json::Map<String, serde_json::Value>,
    host: &str,
    doing: &str,
    secret: Option<&Secret>,
) -> Result<TokenResponse, Error> {
    let mut resp: TokenResponse = serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| {
        Error::network(format!(
            "{host} answered {doing} with a token response sfx cannot use ({}); that is not what Salesforce sends",
            crate::text::sanitize(&e.to_string(), 160)
        ))
    })?;
    if resp.access_token.is_empty() {
        return Err(Error::network(format!(
            "{host} answered {doing} with an empty access_token"
        )));
    }
    // An empty refresh token is none: taken as a rotation, it would replace
    // the stored one and the next refresh would send nothing.
    if resp.refresh_token.as_ref().is_some_and(|t| t.is_empty()) {
        resp.refresh_token = None;
    }
    // Stored, then shown masked in `refresh` and `orgs`: a token that carries
    // terminal escapes (or anything no Salesforce token has) is refused, so it
    // can never drive the user's terminal (issue #24).
    for (name, token) in [
        ("access_token", Some(&resp.access_token)),
        ("refresh_token", resp.refresh_token.as_ref()),
    ] {
        if let Some(t) = token
            && !crate::secret::is_token_text(t.expose())
        {
            return Err(Error::network(format!(
                "{host} answered {doing} with an {name} holding characters no Salesforce token has (control characters, spaces or non-ASCII); that is not what Salesforce sends, and sfx did not store it"
            )));
        }
    }
    if resp.signature_valid(secret) == Some(false) {
        return Err(Error::Server {
            message: format!(
                "the token response from {host} has a signature that does not match the client secret; the response may have been altered, or the stored client secret is wrong"
            ),
            hint: None,
        });
    }
    Ok(resp)
}
