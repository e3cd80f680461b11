//! `fake-salesforce`: a stateful fake of Salesforce's OAuth 2.0 server for `sfx`'s tests, demo
//! and benchmarks, following Salesforce's documented OAuth behaviour (its README lists what is reproduced).
//!
//! This file owns the public handle [`FakeSalesforce`] (start/stop, test hooks), the request
//! dispatcher (record → global delay → fault → route) and the standalone [`cli_main`].
//! Protocol behaviour lives in `routes` (wire) and `state` (semantics).
//!
//! ```no_run
//! let sf = fake_salesforce::FakeSalesforce::start();
//! let url = sf.auth_url(fake_salesforce::DEFAULT_CLIENT_ID, fake_salesforce::DEFAULT_USERNAME);
//! # let _ = url;
//! ```

mod cli;
mod control;
mod form;
mod http;
mod keys;
mod model;
pub mod published;
mod routes;
mod state;
mod util;

use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

pub use cli::cli_main;
pub use keys::{
    ACCESS_TOKEN_SIGNING_KEY_PEM, SIGNING_KID, TEST_JWT_CERT_PEM, TEST_JWT_PRIVATE_KEY_PEM,
    TEST_JWT_PRIVATE_KEY_PKCS1_PEM, TEST_JWT_PUBLIC_KEY_PEM, make_assertion,
};
pub use model::{Client, Fault, FaultBody, MAINTENANCE_HTML, Options, RecordedRequest, User};
pub use routes::{API_VERSIONS, BLOB_LEN};
pub use state::{ID_HOST, MAX_APPROVALS, ORG_ID, ORG_ID_15};

/// The bytes the fake serves as a binary ContentVersion body ([`BLOB_LEN`] of them),
/// for tests that check a download byte for byte.
pub fn blob_bytes() -> Vec<u8> {
    routes::blob(BLOB_LEN)
}
pub use util::{pkce_s256, signature};

use http::{HttpRequest, HttpServer, Outcome};
use state::{DEFAULT_SCOPE, DeviceStatus, State};

/// Consumer key of the default connected app.
pub const DEFAULT_CLIENT_ID: &str = "3MVG9fake.sfx.demo";
/// Consumer secret of the default connected app.
pub const DEFAULT_CLIENT_SECRET: &str = "fake-demo-secret-5Aep";
/// The default user.
pub const DEFAULT_USERNAME: &str = "demo@example.com";
pub const DEFAULT_PASSWORD: &str = "demo-password";
pub const DEFAULT_SECURITY_TOKEN: &str = "SECTOKEN123";
/// A public client without secret, like the sf CLI's.
pub const PUBLIC_CLIENT_ID: &str = "PlatformCLI";

/// A running fake org. Dropping it stops the server and closes its connections.
pub struct FakeSalesforce {
    state: Arc<Mutex<State>>,
    server: HttpServer,
    url: String,
    /// What the test said it expects (see [`Expectations`]).
    expected: Mutex<Expectations>,
}

/// What a test declared about the requests it expects. Checked when the fake is dropped
/// (unless the test is already failing), so a test cannot forget to check it:
///
/// - every path given to [`FakeSalesforce::expect_hit`] — and every path a fault was
///   [injected](FakeSalesforce::inject) on (a fault that never fired tested nothing) —
///   must have been requested at least once;
/// - a fake that received no request at all fails the test, unless the test said so with
///   [`FakeSalesforce::expect_no_requests`] (then any request fails it);
/// - [`FakeSalesforce::expect_no_hit`] paths must not have been requested.
///
/// [`FakeSalesforce::no_expectations`] turns the check off (the standalone demo server).
#[derive(Default, Debug)]
struct Expectations {
    hit: Vec<String>,
    not_hit: Vec<String>,
    no_requests: bool,
    off: bool,
}

/// On drop (unless the test is already failing): the test's expectations must hold
/// (by default: some request came, and every path a fault was injected on was hit), and no
/// request handler may have panicked — the connection threads are detached, so their panics
/// would otherwise never reach the test (issue #11; xh's `tests/server/mod.rs`).
impl Drop for FakeSalesforce {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        if let Err(why) = self.verify() {
            panic!("{why}");
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeSalesforce {
    /// Start on `127.0.0.1:0` with the default clients and user. Panics only if no loopback
    /// port can be bound (a test environment problem).
    pub fn start() -> FakeSalesforce {
        match FakeSalesforce::start_with(Options::default()) {
            Ok(f) => f,
            Err(e) => panic!("fake-salesforce: cannot listen on 127.0.0.1:0: {e}"),
        }
    }

    /// Start with options.
    pub fn start_with(opts: Options) -> std::io::Result<FakeSalesforce> {
        let listener = TcpListener::bind(&opts.bind)?;
        let addr = listener.local_addr()?;
        let host = if addr.ip().is_unspecified() {
            format!("127.0.0.1:{}", addr.port())
        } else {
            addr.to_string()
        };
        let url = format!("http://{host}");
        let mut st = State::new(url.clone());
        if opts.defaults {
            install_defaults(&mut st);
        }
        let state = Arc::new(Mutex::new(st));
        let shared = state.clone();
        let server = HttpServer::start(listener, Arc::new(move |req| dispatch(&shared, req)))?;
        Ok(FakeSalesforce {
            state,
            server,
            url,
            expected: Mutex::new(Expectations::default()),
        })
    }

    fn st(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// `http://127.0.0.1:PORT` — instance URL and login URL.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.server.addr().port()
    }

    /// Add a client (replaces one with the same id).
    pub fn add_client(&self, c: Client) {
        self.st().clients.insert(c.id.clone(), c);
    }

    /// Change a client in place (no-op if unknown).
    pub fn update_client(&self, id: &str, f: impl FnOnce(&mut Client)) {
        if let Some(c) = self.st().clients.get_mut(id) {
            f(c);
        }
    }

    /// A copy of a client's configuration.
    pub fn client(&self, id: &str) -> Option<Client> {
        self.st().clients.get(id).cloned()
    }

    /// Add a user (replaces one with the same username).
    pub fn add_user(&self, u: User) {
        self.st().users.insert(u.username.clone(), u);
    }

    /// Change a user in place (e.g. deactivate); no-op if unknown.
    pub fn update_user(&self, username: &str, f: impl FnOnce(&mut User)) {
        if let Some(u) = self.st().users.get_mut(username) {
            f(u);
        }
    }

    /// Admin pre-authorization of a client for the JWT bearer flow (the default client is).
    pub fn set_preauthorized(&self, client_id: &str, yes: bool) {
        let mut st = self.st();
        if yes {
            st.preauthorized.insert(client_id.to_string());
        } else {
            st.preauthorized.remove(client_id);
        }
    }

    /// A new refresh token, as if the user approved the app (uses an approval slot; the
    /// sixth approval revokes the oldest). Scope `refresh_token web api`.
    pub fn grant_refresh_token(&self, client_id: &str, username: &str) -> String {
        self.st().new_family(client_id, username, DEFAULT_SCOPE).0
    }

    /// A fresh session without refresh token.
    pub fn grant_access_token(&self, client_id: &str, username: &str) -> String {
        self.st()
            .mint_session(client_id, username, DEFAULT_SCOPE, None)
    }

    /// `force://<id>:<secret or empty>:<new refresh token>@127.0.0.1:PORT` (uses a slot).
    pub fn auth_url(&self, client_id: &str, username: &str) -> String {
        let rt = self.grant_refresh_token(client_id, username);
        let secret = self
            .st()
            .clients
            .get(client_id)
            .and_then(|c| c.secret.clone())
            .unwrap_or_default();
        format!("force://{client_id}:{secret}:{rt}@{}", self.host())
    }

    /// Admin revoke: a refresh token also kills every access token of its approval.
    pub fn revoke_token(&self, token: &str) {
        self.st().revoke_any(token);
    }

    /// Session exp = now - 1.
    pub fn expire_session(&self, access_token: &str) {
        let mut st = self.st();
        let now = st.now();
        if let Some(s) = st.sessions.get_mut(access_token) {
            s.exp = now - 1;
        }
    }

    /// Set a session's expiry (Unix seconds).
    pub fn set_session_exp(&self, access_token: &str, exp_unix: i64) {
        if let Some(s) = self.st().sessions.get_mut(access_token) {
            s.exp = exp_unix;
        }
    }

    /// The expiry the server holds for a known, unrevoked session (even if already past).
    pub fn session_exp(&self, access_token: &str) -> Option<i64> {
        self.st()
            .sessions
            .get(access_token)
            .filter(|s| !s.revoked)
            .map(|s| s.exp)
    }

    /// Is this access token (live session) or refresh token usable right now?
    pub fn is_active(&self, token: &str) -> bool {
        let st = self.st();
        st.live_session(token).is_some() || st.live_refresh(token).is_some()
    }

    /// Simulate API activity on a session (half-life rule).
    pub fn use_session(&self, access_token: &str) {
        self.st().activity(access_token);
    }

    /// Every recorded request, in arrival order (faulted ones included, control ones not).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.st().requests.clone()
    }

    /// Recorded requests to `path`, in arrival order.
    pub fn requests_to(&self, path: &str) -> Vec<RecordedRequest> {
        self.st()
            .requests
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Declare that this test expects at least one request to `path`: dropping
    /// the fake fails the test if none came.
    pub fn expect_hit(&self, path: &str) {
        self.expectations().hit.push(path.to_string());
    }

    /// [`FakeSalesforce::expect_hit`] for each path.
    pub fn expect_hits(&self, paths: &[&str]) {
        let mut e = self.expectations();
        e.hit.extend(paths.iter().map(|p| p.to_string()));
    }

    /// Declare that this test expects no request to `path`: dropping the fake fails the
    /// test if one came.
    pub fn expect_no_hit(&self, path: &str) {
        self.expectations().not_hit.push(path.to_string());
    }

    /// Declare that this test expects no request at all (an offline command, a refusal
    /// before any network): dropping the fake fails the test if one came. Without this, a
    /// fake that saw no request fails the test.
    pub fn expect_no_requests(&self) {
        self.expectations().no_requests = true;
    }

    /// Turn the drop check off: for the standalone server, whose clients are people.
    pub fn no_expectations(&self) {
        self.expectations().off = true;
    }

    fn expectations(&self) -> MutexGuard<'_, Expectations> {
        self.expected.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The drop check, callable early: the test's expectations hold and no handler
    /// panicked. `Err` says what is wrong.
    pub fn verify(&self) -> Result<(), String> {
        let panics = self.server.panics();
        if !panics.is_empty() {
            return Err(format!(
                "fake-salesforce: a request handler panicked: {}",
                panics.join("; ")
            ));
        }
        let e = self.expectations();
        if e.off {
            return Ok(());
        }
        let ever = self.st().ever.clone();
        let seen = |p: &str| ever.contains_key(p);
        let mut wrong = Vec::new();
        if e.no_requests {
            if !ever.is_empty() {
                let mut paths: Vec<&str> = ever.keys().map(String::as_str).collect();
                paths.sort_unstable();
                wrong.push(format!(
                    "the test expected no request but some came (to {})",
                    paths.join(", ")
                ));
            }
        } else if ever.is_empty() {
            wrong.push(
                "no request came: say what the test expects (expect_hit) or that it expects \
                 none (expect_no_requests)"
                    .to_string(),
            );
        }
        let missed: Vec<&str> = e
            .hit
            .iter()
            .map(String::as_str)
            .filter(|p| !seen(p))
            .collect();
        if !missed.is_empty() {
            wrong.push(format!(
                "the test expected requests to {} but none came",
                missed.join(", ")
            ));
        }
        let unwanted: Vec<&str> = e
            .not_hit
            .iter()
            .map(String::as_str)
            .filter(|p| seen(p))
            .collect();
        if !unwanted.is_empty() {
            wrong.push(format!(
                "the test expected no request to {} but one came",
                unwanted.join(", ")
            ));
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(format!("fake-salesforce: {}", wrong.join("; ")))
        }
    }

    /// How many times a rotated (spent) refresh token was sent again; each one
    /// revoked its whole login, as Salesforce does.
    pub fn replays(&self) -> usize {
        self.st().replays
    }

    /// Number of recorded requests to `path`.
    pub fn count(&self, path: &str) -> usize {
        self.st().requests.iter().filter(|r| r.path == path).count()
    }

    /// Number of token-endpoint requests with this `grant_type`.
    pub fn count_grant(&self, grant_type: &str) -> usize {
        self.st()
            .requests
            .iter()
            .filter(|r| {
                r.path == "/services/oauth2/token" && r.param("grant_type") == Some(grant_type)
            })
            .count()
    }

    pub fn clear_requests(&self) {
        self.st().requests.clear();
    }

    /// Queue a fault for requests to exactly `path`. The test then expects `path` to be
    /// hit ([`FakeSalesforce::expect_hit`]): a fault that never fired tested nothing.
    pub fn inject(&self, path: &str, fault: Fault) {
        self.expect_hit(path);
        self.st()
            .faults
            .entry(path.to_string())
            .or_default()
            .push_back(fault);
    }

    pub fn clear_faults(&self) {
        self.st().faults.clear();
    }

    /// Approve a pending device request as `username`. False if no such pending code.
    pub fn approve_device(&self, user_code: &str, username: &str) -> bool {
        self.st()
            .set_device_status(user_code, DeviceStatus::Approved(username.to_string()))
    }

    /// Deny a pending device request.
    pub fn deny_device(&self, user_code: &str) -> bool {
        self.st().set_device_status(user_code, DeviceStatus::Denied)
    }

    /// User codes of pending, unexpired device requests, oldest first.
    pub fn pending_user_codes(&self) -> Vec<String> {
        let st = self.st();
        let now = st.now_ms();
        st.devices
            .iter()
            .filter(|d| d.status == DeviceStatus::Pending && d.expires_ms > now)
            .map(|d| d.user_code.clone())
            .collect()
    }

    /// Poll interval announced by new device requests (default 5 s; 0 disables `slow_down`).
    pub fn set_device_interval(&self, secs: u64) {
        self.st().device_interval = secs;
    }

    /// Lifetime of new device requests (default 600 s).
    pub fn set_device_expiry(&self, secs: i64) {
        self.st().device_expiry_secs = secs;
    }

    /// Who is logged in to the "browser" for `/services/oauth2/authorize`. `None`: the
    /// authorize endpoint shows a login page (200 HTML) and never redirects.
    pub fn set_authorize_user(&self, username: Option<&str>) {
        self.st().authorize_user = username.map(str::to_string);
    }

    /// Make authorize redirect with `error=access_denied`.
    pub fn set_authorize_deny(&self, deny: bool) {
        self.st().authorize_deny = deny;
    }

    /// Make authorize redirect with this `error` (and `error_description`), as
    /// Salesforce does for refusals such as `OAUTH_APP_ACCESS_DENIED` (see
    /// [`published`]). `None`: back to normal.
    pub fn set_authorize_refusal(&self, refusal: Option<(&str, Option<&str>)>) {
        self.st().authorize_refusal = refusal.map(|(e, d)| (e.to_string(), d.map(str::to_string)));
    }

    /// Access tokens minted from the approval `refresh_token` belongs to, oldest first.
    pub fn access_tokens_of(&self, refresh_token: &str) -> Vec<String> {
        self.st().access_tokens_of(refresh_token)
    }

    /// The most recently minted access token.
    pub fn latest_access_token(&self) -> Option<String> {
        self.st().latest_access.clone()
    }

    /// A delay added to every non-control request (benchmarks).
    pub fn set_global_delay(&self, d: Duration) {
        self.st().global_delay_ms = d.as_millis() as u64;
    }

    /// Move the server's clock forward (or back) by `secs`; affects every expiry check.
    pub fn advance_clock(&self, secs: i64) {
        self.st().clock_offset_ms += secs * 1000;
    }

    /// The server's notion of now (Unix seconds, including [`advance_clock`](Self::advance_clock)).
    pub fn now(&self) -> i64 {
        self.st().now()
    }

    /// Log one line per request to stderr.
    pub fn set_logging(&self, on: bool) {
        self.st().logging = on;
    }
}

fn install_defaults(st: &mut State) {
    let mut c = Client::new(DEFAULT_CLIENT_ID, Some(DEFAULT_CLIENT_SECRET));
    c.redirect_uris = vec!["http://localhost:*/OauthRedirect".to_string()];
    c.jwt_cert_pem = Some(TEST_JWT_PUBLIC_KEY_PEM.to_string());
    c.allow_client_credentials = true;
    c.run_as = Some(DEFAULT_USERNAME.to_string());
    st.clients.insert(c.id.clone(), c);
    st.preauthorized.insert(DEFAULT_CLIENT_ID.to_string());

    let mut p = Client::new(PUBLIC_CLIENT_ID, None);
    p.redirect_uris = vec!["http://localhost:*/OauthRedirect".to_string()];
    st.clients.insert(p.id.clone(), p);

    let u = User::new(DEFAULT_USERNAME, DEFAULT_PASSWORD, DEFAULT_SECURITY_TOKEN);
    st.users.insert(u.username.clone(), u);
    st.authorize_user = Some(DEFAULT_USERNAME.to_string());
}

/// record → global delay → fault → route.
fn dispatch(state: &Mutex<State>, req: HttpRequest) -> Outcome {
    if req.path == "/__fake" || req.path.starts_with("/__fake/") {
        return Outcome::Respond(control::handle(&mut lock(state), &req));
    }
    let query = form::parse_urlencoded(req.query.as_bytes());
    let body = form::parse_body(&req);
    let (delay, fault, logging) = {
        let mut st = lock(state);
        *st.ever.entry(req.path.clone()).or_default() += 1;
        st.requests.push(RecordedRequest {
            method: req.method.clone(),
            path: req.path.clone(),
            query: query.clone(),
            form: body.clone(),
            headers: req.headers.clone(),
            body: req.body.clone(),
            at: SystemTime::now(),
        });
        let fault = st.take_fault(&req.path);
        (st.global_delay_ms, fault, st.logging)
    };
    let total_delay = delay + fault.as_ref().map_or(0, |f| f.delay_ms);
    if total_delay > 0 {
        std::thread::sleep(Duration::from_millis(total_delay));
    }
    let outcome = match fault {
        Some(f) if f.body == FaultBody::Drop => Outcome::Drop,
        Some(f) if f.body == FaultBody::Truncated => {
            let status = if f.status == 0 { 200 } else { f.status };
            let resp = http::HttpResponse::new(
                status,
                routes::JSON_CT,
                "{\"access_token\":\"00D5g000004FAKE!AQ",
            );
            Outcome::Truncated(with_retry_after(resp, f.retry_after), 4096)
        }
        Some(f) if f.status != 0 => Outcome::Respond(fault_response(&f)),
        _ => {
            let mut params = body;
            params.extend(query);
            let r = routes::Req { http: &req, params };
            let mut resp = routes::handle(&mut lock(state), &r);
            if req.method == "HEAD" {
                resp.body.clear();
            }
            Outcome::Respond(resp)
        }
    };
    if logging {
        let status = match &outcome {
            Outcome::Respond(r) => r.status.to_string(),
            Outcome::Drop => "dropped".to_string(),
            Outcome::Truncated(r, _) => format!("{} (truncated)", r.status),
        };
        eprintln!("{} {} {}", req.method, req.path, status);
    }
    outcome
}

fn with_retry_after(resp: http::HttpResponse, retry_after: Option<u64>) -> http::HttpResponse {
    match retry_after {
        Some(s) => resp.with_header("Retry-After", &s.to_string()),
        None => resp,
    }
}

fn fault_response(f: &Fault) -> http::HttpResponse {
    let (ct, body): (&str, Vec<u8>) = match &f.body {
        FaultBody::Json(s) => (routes::JSON_CT, s.clone().into_bytes()),
        FaultBody::Html(s) => ("text/html;charset=UTF-8", s.clone().into_bytes()),
        FaultBody::Text(s) => ("text/plain;charset=UTF-8", s.clone().into_bytes()),
        FaultBody::Oversized => {
            let pad = "x".repeat(2 * 1024 * 1024);
            (
                routes::JSON_CT,
                format!("{{\"access_token\":\"00D5g000004FAKE!AQ\",\"padding\":\"{pad}\"}}")
                    .into_bytes(),
            )
        }
        FaultBody::Drop | FaultBody::Truncated => (routes::JSON_CT, Vec::new()),
    };
    let resp = with_retry_after(http::HttpResponse::new(f.status, ct, body), f.retry_after);
    match &f.location {
        Some(url) => resp.with_header("Location", url),
        None => resp,
    }
}
