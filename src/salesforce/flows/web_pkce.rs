//! Authorization code with PKCE: the browser logs in
//! at `/services/oauth2/authorize`, Salesforce redirects it to a one-shot listener
//! on `http://localhost:<port>/OauthRedirect`, and the code is exchanged together
//! with the PKCE verifier.
//!
//! - PKCE: a 64-byte random verifier (86 base64url characters); the challenge is
//!   `BASE64URL-NOPAD(SHA-256(verifier))`, sent with `code_challenge_method=S256`
//!   explicitly (Salesforce assumes S256 when it is missing; some setups insist).
//! - `state`: 16 random bytes, checked on return. A callback with another (or
//!   no) `state` is not ours, an error included: it is answered 400 and ignored,
//!   and the login goes on waiting for its own (issue #24: any local process, or
//!   any web page through the browser, can send one).
//! - The listener ([`super::callback`]) binds `127.0.0.1` and `::1` on the same
//!   port (or refuses when another program holds `::1`), bounds every request
//!   head, answers stray requests (a favicon) with 404 and other methods with
//!   405, and gives up after the wait.
//! - The browser gets a small page saying how it ended, sent after the code
//!   exchange so that "logged in" is true when it is shown.

use std::time::{Duration, Instant};

use base64::Engine;
use sha2::{Digest, Sha256};

use super::callback::Request;
use crate::error::Error;
use crate::salesforce::flows::random_urlsafe;
use crate::salesforce::http::Retry;
use crate::salesforce::types::{OAuthError, TokenResponse};
use crate::salesforce::{Client, ClientCreds, errors};
use crate::secret::Secret;
use crate::secret::redact_text;
use crate::text::sanitize;

/// The callback path; Salesforce matches the whole callback URL exactly.
pub const CALLBACK_PATH: &str = "/OauthRedirect";
/// The default callback port (the sf CLI's, registered in its `PlatformCLI` app).
pub const DEFAULT_PORT: u16 = 1717;
/// How long to wait for the browser by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(120);

/// A PKCE verifier and its S256 challenge.
pub struct Pkce {
    pub verifier: Secret,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Result<Pkce, Error> {
        let verifier = random_urlsafe(64)?;
        let challenge = s256(&verifier);
        Ok(Pkce {
            verifier: Secret::new(verifier),
            challenge,
        })
    }
}

/// `BASE64URL-NOPAD(SHA-256(verifier))`.
pub fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// What goes into the authorize URL.
pub struct Authorize<'a> {
    pub login_url: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scope: Option<&'a str>,
    pub state: &'a str,
    pub challenge: &'a str,
    pub login_hint: Option<&'a str>,
}

/// `https://<login host>/services/oauth2/authorize?response_type=code&…`.
///
/// `prompt=login` shows the login form even when the browser already has a
/// session, as the sf CLI does: otherwise a browser logged in to another org
/// would silently log sfx in there. Without `scope`, Salesforce grants the
/// scopes selected on the connected app.
pub fn authorize_url(a: &Authorize<'_>) -> String {
    let base = format!(
        "{}/services/oauth2/authorize",
        a.login_url.trim_end_matches('/')
    );
    let mut url = match url::Url::parse(&base) {
        Ok(u) => u,
        // The login URL was checked by `base_url`; this cannot fail, but never panic.
        Err(_) => return base,
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", a.client_id)
            .append_pair("redirect_uri", a.redirect_uri)
            .append_pair("state", a.state)
            .append_pair("code_challenge", a.challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("prompt", "login");
        if let Some(scope) = a.scope {
            q.append_pair("scope", scope);
        }
        if let Some(hint) = a.login_hint {
            q.append_pair("login_hint", hint);
        }
    }
    url.into()
}

/// The one-shot loopback listener for the callback.
pub struct Listener {
    bound: super::callback::Bound,
}

impl Listener {
    /// Listen on `localhost:<port>` (0 = any free port).
    pub fn bind(port: u16) -> Result<Listener, Error> {
        super::callback::bind(port).map(|bound| Listener { bound })
    }

    pub fn port(&self) -> u16 {
        self.bound.port
    }

    /// `http://localhost:<port>/OauthRedirect`.
    pub fn redirect_uri(&self) -> String {
        format!("http://localhost:{}{CALLBACK_PATH}", self.bound.port)
    }

    /// Wait for the callback carrying `state`: the code, and the browser's
    /// request (to answer once the exchange is done).
    fn wait_for_code(
        &self,
        state: &str,
        clock: &dyn crate::clock::Clock,
        deadline: Instant,
        wait: Duration,
        doing: &str,
    ) -> Result<(Secret, Request), Error> {
        loop {
            let Some(req) = self.bound.next(clock, deadline) else {
                return Err(Error::LoginTimeout {
                    message: format!(
                        "no browser login came back to {} within {}; the login was not finished",
                        self.redirect_uri(),
                        humantime::format_duration(wait)
                    ),
                    hint: None,
                });
            };
            let target = req.target.clone();
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            if path != CALLBACK_PATH {
                respond(
                    req,
                    404,
                    "Not found",
                    "This is sfx's login callback; nothing else lives here.",
                );
                continue;
            }
            if req.method != "GET" {
                respond(
                    req,
                    405,
                    "Method not allowed",
                    "The login callback takes GET only.",
                );
                continue;
            }
            let param = |name: &str| {
                url::form_urlencoded::parse(query.as_bytes())
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned())
            };
            if param("state").as_deref() != Some(state) {
                // Not this login's: a stale tab, or anyone on this machine (or
                // any web page, through the browser) sending `?error=…`. It
                // neither ends the login nor gets its text shown (issue #24).
                respond(
                    req,
                    400,
                    "Not this login",
                    "sfx: this callback does not carry the `state` of the login in progress, so it was ignored; the login goes on waiting for its own.",
                );
                continue;
            }
            if let Some(error) = param("error") {
                let oauth = OAuthError {
                    error: sanitize(&redact_text(&error), 100),
                    error_description: param("error_description")
                        .map(|d| sanitize(&redact_text(&d), 300)),
                    status: 0,
                };
                let err = errors::explain(&oauth, doing);
                respond(req, 400, "Login failed", &format!("sfx: {err}"));
                return Err(err);
            }
            let Some(code) = param("code").filter(|c| !c.is_empty()) else {
                let err = Error::Server {
                    message: "the login callback carried neither a code nor an error".into(),
                    hint: None,
                };
                respond(req, 400, "Login failed", &format!("sfx: {err}"));
                return Err(err);
            };
            return Ok((Secret::new(code), req));
        }
    }
}

/// A web login's inputs.
pub struct WebLogin<'a> {
    pub login_url: &'a str,
    pub creds: ClientCreds<'a>,
    pub scope: Option<&'a str>,
    pub login_hint: Option<&'a str>,
    /// How long to wait for the browser.
    pub wait: Duration,
}

/// Run the flow on a bound listener: `on_url` gets the authorize URL to open (or
/// show); returns Salesforce's token response for the exchanged code.
pub fn login(
    client: &Client<'_>,
    listener: &Listener,
    p: &WebLogin<'_>,
    on_url: impl FnOnce(&str),
) -> Result<TokenResponse, Error> {
    let pkce = Pkce::new()?;
    let state = random_urlsafe(16)?;
    let redirect_uri = listener.redirect_uri();
    let url = authorize_url(&Authorize {
        login_url: p.login_url,
        client_id: p.creds.id,
        redirect_uri: &redirect_uri,
        scope: p.scope,
        state: &state,
        challenge: &pkce.challenge,
        login_hint: p.login_hint,
    });
    on_url(&url);
    let clock = client.http.clock();
    let started = clock.instant();
    // `wait` is bounded by --login-timeout's range; checked all the same.
    let deadline = started.checked_add(p.wait).unwrap_or(started);
    let (code, browser) =
        listener.wait_for_code(&state, clock, deadline, p.wait, "the browser login")?;
    let form = vec![
        ("grant_type", "authorization_code".to_string()),
        ("code", code.expose().to_string()),
        ("redirect_uri", redirect_uri),
        ("code_verifier", pkce.verifier.expose().to_string()),
    ];
    // A code is single-use: never send it twice.
    let result = client
        .grant(
            p.login_url,
            form,
            Some(p.creds),
            Retry::OnlyUnsent,
            "the authorization-code exchange",
        )
        .map_err(Error::from);
    match &result {
        Ok(_) => respond(
            browser,
            200,
            "Logged in",
            "sfx is logged in. You can close this tab and go back to the terminal.",
        ),
        Err(e) => respond(browser, 400, "Login failed", &format!("sfx: {e}")),
    }
    result
}

/// Answer the browser with a small HTML page.
fn respond(req: Request, status: u16, title: &str, text: &str) {
    let body = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>sfx: {t}</title></head>\n<body style=\"font-family: sans-serif; margin: 3em\"><h1>{t}</h1>\n<p>{x}</p>\n</body></html>\n",
        t = html_escape(title),
        x = html_escape(text)
    );
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Bad Request",
    };
    req.respond(status, reason, &body);
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nobody comes back from the browser: the wait ends after exactly
    /// --login-timeout on the login's clock (the real-time test through the
    /// binary is `flows::web_login_gives_up_when_no_browser_comes_back`).
    #[test]
    fn the_wait_for_the_browser_ends_after_exactly_the_login_timeout() {
        use crate::clock::Clock;
        let l = Listener::bind(0).unwrap();
        let clock = crate::clock::FakeClock::at(chrono::Utc::now());
        let wait = Duration::from_secs(120);
        let deadline = clock.instant() + wait;
        let Err(err) = l.wait_for_code("st", &clock, deadline, wait, "the browser login") else {
            panic!("a code came from nowhere")
        };
        assert_eq!(err.exit(), crate::exit::Exit::Relogin, "{err}");
        assert!(
            err.to_string().contains("no browser login came back")
                && err.to_string().contains("within 2m"),
            "{err}"
        );
        assert_eq!(clock.elapsed(), wait);
    }

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn verifiers_are_random_and_within_the_rfc_length() {
        let (a, b) = (Pkce::new().unwrap(), Pkce::new().unwrap());
        assert_ne!(a.verifier.expose(), b.verifier.expose());
        let n = a.verifier.expose().len();
        assert!((43..=128).contains(&n), "{n}");
        assert_eq!(a.challenge, s256(a.verifier.expose()));
    }

    #[test]
    fn the_authorize_url_carries_pkce_state_and_the_exact_callback() {
        let u = authorize_url(&Authorize {
            login_url: "https://login.salesforce.com",
            client_id: "3MVG9 x",
            redirect_uri: "http://localhost:1717/OauthRedirect",
            scope: Some("api refresh_token"),
            state: "st",
            challenge: "ch",
            login_hint: None,
        });
        let parsed = url::Url::parse(&u).unwrap();
        assert_eq!(parsed.path(), "/services/oauth2/authorize");
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "3MVG9 x");
        assert_eq!(q["redirect_uri"], "http://localhost:1717/OauthRedirect");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"], "ch");
        assert_eq!(q["state"], "st");
        assert_eq!(q["scope"], "api refresh_token");
        assert!(!q.contains_key("login_hint"));
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
