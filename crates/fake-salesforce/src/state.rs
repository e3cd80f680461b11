//! The org's mutable state and its token semantics: sessions (access tokens) with the half-life
//! sliding rule, refresh-token families with rotation / replay detection / the five-approval
//! limit, authorization codes, device requests, the request log and the fault queues.
//! Everything here is plain data behind one mutex; the HTTP layer lives in `routes`.

use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::{Value, json};

use crate::model::{Client, Fault, RecordedRequest, User};
use crate::util;

/// 15-char org id; access tokens start with `ORG_ID_15!`.
pub const ORG_ID_15: &str = "00D5g000004FAKE";
/// 18-char org id (with the case-safety suffix).
pub const ORG_ID: &str = "00D5g000004FAKEEA4";
/// Host of the `id` URL in token responses (a faithful quirk: not the fake itself).
pub const ID_HOST: &str = "https://login.salesforce.com";
/// Scope granted when a flow does not ask for one.
pub const DEFAULT_SCOPE: &str = "refresh_token web api";
/// Five approvals per user per app.
pub const MAX_APPROVALS: usize = 5;

/// An access token = a session.
#[derive(Debug, Clone)]
pub struct Session {
    pub client_id: String,
    pub username: String,
    pub scope: String,
    pub iat: i64,
    pub last_activity: i64,
    pub exp: i64,
    pub timeout: i64,
    pub revoked: bool,
    /// The refresh-token family it was minted from.
    pub family: Option<u64>,
    /// Creation order.
    pub seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtState {
    Active,
    Rotated,
}

#[derive(Debug, Clone)]
pub struct RefreshToken {
    pub family: u64,
    pub state: RtState,
    pub issued: i64,
}

/// One approval: a chain of refresh tokens (one current, older ones rotated).
#[derive(Debug, Clone)]
pub struct Family {
    pub client_id: String,
    pub username: String,
    pub scope: String,
    pub current: String,
    pub revoked: bool,
    pub seq: u64,
    pub last_used: i64,
}

#[derive(Debug, Clone)]
pub struct AuthCode {
    pub client_id: String,
    pub username: String,
    pub redirect_uri: String,
    pub scope: String,
    pub challenge: Option<String>,
    pub expires_ms: i64,
    pub used: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceStatus {
    Pending,
    Approved(String),
    Denied,
    Consumed,
}

#[derive(Debug, Clone)]
pub struct Device {
    pub device_code: String,
    pub user_code: String,
    pub client_id: String,
    pub scope: String,
    pub expires_ms: i64,
    pub interval: u64,
    pub last_poll_ms: Option<i64>,
    pub status: DeviceStatus,
}

/// Why a refresh token is unusable.
#[derive(Debug, PartialEq, Eq)]
pub enum RefreshError {
    /// Unknown, revoked, idle-expired, or belongs to another client.
    Invalid,
    /// A rotated token was replayed; its family has been revoked.
    Replayed,
    InactiveUser,
}

pub struct State {
    pub base_url: String,
    pub clients: HashMap<String, Client>,
    pub users: HashMap<String, User>,
    pub preauthorized: HashSet<String>,
    pub sessions: HashMap<String, Session>,
    pub refresh: HashMap<String, RefreshToken>,
    pub families: HashMap<u64, Family>,
    pub codes: HashMap<String, AuthCode>,
    pub devices: Vec<Device>,
    pub requests: Vec<RecordedRequest>,
    /// Every path ever requested, with its count: unlike `requests`, never cleared
    /// (the drop check reads it).
    pub ever: HashMap<String, usize>,
    /// Rotated refresh tokens presented again (each revoked its family).
    pub replays: usize,
    pub faults: HashMap<String, VecDeque<Fault>>,
    pub authorize_user: Option<String>,
    pub authorize_deny: bool,
    /// Authorize redirects with this error code and description (`set_authorize_refusal`).
    pub authorize_refusal: Option<(String, Option<String>)>,
    pub device_interval: u64,
    pub device_expiry_secs: i64,
    pub global_delay_ms: u64,
    pub clock_offset_ms: i64,
    pub latest_access: Option<String>,
    pub seq: u64,
    pub logging: bool,
    pub api_calls: u64,
    /// Accounts created through `POST …/sobjects/Account`: (id, Name).
    pub accounts: Vec<(String, String)>,
}

impl State {
    pub fn new(base_url: String) -> State {
        State {
            base_url,
            clients: HashMap::new(),
            users: HashMap::new(),
            preauthorized: HashSet::new(),
            sessions: HashMap::new(),
            refresh: HashMap::new(),
            families: HashMap::new(),
            codes: HashMap::new(),
            devices: Vec::new(),
            requests: Vec::new(),
            ever: HashMap::new(),
            replays: 0,
            faults: HashMap::new(),
            authorize_user: None,
            authorize_deny: false,
            authorize_refusal: None,
            device_interval: 5,
            device_expiry_secs: 600,
            global_delay_ms: 0,
            clock_offset_ms: 0,
            latest_access: None,
            seq: 0,
            logging: false,
            api_calls: 0,
            accounts: Vec::new(),
        }
    }

    /// Server time in ms (real clock + test offset).
    pub fn now_ms(&self) -> i64 {
        util::real_now_ms() + self.clock_offset_ms
    }

    /// Server time in seconds.
    pub fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub fn user_id(&self, username: &str) -> String {
        self.users
            .get(username)
            .map(|u| u.user_id.clone())
            .unwrap_or_else(|| util::user_id_for(username))
    }

    /// `https://login.salesforce.com/id/<org18>/<user18>`.
    pub fn identity_url(&self, username: &str) -> String {
        format!("{ID_HOST}/id/{ORG_ID}/{}", self.user_id(username))
    }

    pub fn user_active(&self, username: &str) -> bool {
        self.users.get(username).is_some_and(|u| u.active)
    }

    // ----- sessions -------------------------------------------------------------------

    /// Create a session and return its access token (opaque, or a JWT if the client says so).
    pub fn mint_session(
        &mut self,
        client_id: &str,
        username: &str,
        scope: &str,
        family: Option<u64>,
    ) -> String {
        let now = self.now();
        let (timeout, jwt) = self
            .clients
            .get(client_id)
            .map(|c| (c.session_timeout_secs, c.jwt_access_tokens))
            .unwrap_or((7200, false));
        let exp = now + timeout;
        let seq = self.next_seq();
        let token = if jwt {
            let claims = json!({
                "scp": scope,
                "aud": [self.base_url],
                "sub": format!("uid:{}", self.user_id(username)),
                "nbf": now,
                "mty": "oauth",
                "sfi": util::random_hex(32),
                "roles": [],
                "iss": self.base_url,
                "hsc": false,
                "exp": exp,
                "iat": now,
                "client_id": client_id,
            });
            let header = [
                ("tnk", json!(format!("core/fake/{ORG_ID}"))),
                ("ver", json!("1.0")),
                ("tty", json!("sfdc-core-token")),
            ];
            crate::keys::sign(&claims, &header)
                .unwrap_or_else(|| format!("{ORG_ID_15}!AQ{}", util::random_token_chars(96)))
        } else {
            format!("{ORG_ID_15}!AQ{}", util::random_token_chars(96))
        };
        self.sessions.insert(
            token.clone(),
            Session {
                client_id: client_id.to_string(),
                username: username.to_string(),
                scope: scope.to_string(),
                iat: now,
                last_activity: now,
                exp,
                timeout,
                revoked: false,
                family,
                seq,
            },
        );
        self.latest_access = Some(token.clone());
        token
    }

    /// The session if it is usable right now.
    pub fn live_session(&self, token: &str) -> Option<&Session> {
        let now = self.now();
        self.sessions
            .get(token)
            .filter(|s| !s.revoked && s.exp > now && self.user_active(&s.username))
    }

    /// API activity on a session: half-life rule. Returns false if the session is dead.
    pub fn activity(&mut self, token: &str) -> bool {
        if self.live_session(token).is_none() {
            return false;
        }
        let now = self.now();
        if let Some(s) = self.sessions.get_mut(token)
            && (now - s.last_activity) * 2 > s.timeout
        {
            s.last_activity = now;
            s.exp = now + s.timeout;
        }
        true
    }

    // ----- refresh tokens -------------------------------------------------------------

    fn new_refresh_string() -> String {
        format!("5Aep861{}", util::random_token_chars(80))
    }

    /// A new approval (refresh-token family) for (user, client); enforces the five-approval
    /// limit by revoking the oldest. Returns (refresh token, family id).
    pub fn new_family(&mut self, client_id: &str, username: &str, scope: &str) -> (String, u64) {
        loop {
            let mut active: Vec<(u64, u64)> = self
                .families
                .iter()
                .filter(|(_, f)| !f.revoked && f.client_id == client_id && f.username == username)
                .map(|(id, f)| (f.seq, *id))
                .collect();
            if active.len() < MAX_APPROVALS {
                break;
            }
            active.sort();
            self.revoke_family(active[0].1);
        }
        let seq = self.next_seq();
        let token = Self::new_refresh_string();
        let now = self.now();
        self.families.insert(
            seq,
            Family {
                client_id: client_id.to_string(),
                username: username.to_string(),
                scope: scope.to_string(),
                current: token.clone(),
                revoked: false,
                seq,
                last_used: now,
            },
        );
        self.refresh.insert(
            token.clone(),
            RefreshToken {
                family: seq,
                state: RtState::Active,
                issued: now,
            },
        );
        (token, seq)
    }

    /// Revoke an approval: its refresh tokens and every access token minted from it.
    pub fn revoke_family(&mut self, family: u64) {
        if let Some(f) = self.families.get_mut(&family) {
            f.revoked = true;
        }
        for s in self.sessions.values_mut() {
            if s.family == Some(family) {
                s.revoked = true;
            }
        }
    }

    fn idle_expired(&self, f: &Family) -> bool {
        let ttl = self
            .clients
            .get(&f.client_id)
            .and_then(|c| c.refresh_token_idle_ttl_secs);
        ttl.is_some_and(|ttl| self.now() - f.last_used > ttl)
    }

    /// The family of a currently valid refresh token (no side effects).
    pub fn live_refresh(&self, token: &str) -> Option<(u64, &Family)> {
        let rt = self.refresh.get(token)?;
        let f = self.families.get(&rt.family)?;
        (rt.state == RtState::Active
            && !f.revoked
            && !self.idle_expired(f)
            && self.user_active(&f.username))
        .then_some((rt.family, f))
    }

    /// Check a refresh token presented by `client_id` for the refresh grant. A replayed
    /// (rotated) token revokes its whole family.
    pub fn use_refresh(&mut self, token: &str, client_id: &str) -> Result<u64, RefreshError> {
        let Some(rt) = self.refresh.get(token).cloned() else {
            return Err(RefreshError::Invalid);
        };
        let Some(f) = self.families.get(&rt.family).cloned() else {
            return Err(RefreshError::Invalid);
        };
        if f.client_id != client_id || f.revoked {
            return Err(RefreshError::Invalid);
        }
        if rt.state == RtState::Rotated {
            self.replays += 1;
            self.revoke_family(rt.family);
            return Err(RefreshError::Replayed);
        }
        if self.idle_expired(&f) {
            return Err(RefreshError::Invalid);
        }
        match self.users.get(&f.username) {
            None => return Err(RefreshError::Invalid),
            Some(u) if !u.active => return Err(RefreshError::InactiveUser),
            _ => {}
        }
        let now = self.now();
        if let Some(f) = self.families.get_mut(&rt.family) {
            f.last_used = now;
        }
        Ok(rt.family)
    }

    /// Rotate: the family's current token becomes "rotated" and a new one is returned.
    pub fn rotate(&mut self, family: u64) -> Option<String> {
        let now = self.now();
        let f = self.families.get_mut(&family)?;
        let new = Self::new_refresh_string();
        let old = std::mem::replace(&mut f.current, new.clone());
        if let Some(rt) = self.refresh.get_mut(&old) {
            rt.state = RtState::Rotated;
        }
        self.refresh.insert(
            new.clone(),
            RefreshToken {
                family,
                state: RtState::Active,
                issued: now,
            },
        );
        Some(new)
    }

    /// Revoke any token: a refresh token revokes its family, an access token its session.
    /// Returns false if the token is unknown or already revoked.
    pub fn revoke_any(&mut self, token: &str) -> bool {
        if let Some(s) = self.sessions.get_mut(token) {
            if s.revoked {
                return false;
            }
            s.revoked = true;
            return true;
        }
        if let Some(rt) = self.refresh.get(token) {
            let fam = rt.family;
            if self.families.get(&fam).is_none_or(|f| f.revoked) {
                return false;
            }
            self.revoke_family(fam);
            return true;
        }
        false
    }

    /// Access tokens minted from the family of `refresh_token`, oldest first.
    pub fn access_tokens_of(&self, refresh_token: &str) -> Vec<String> {
        let Some(rt) = self.refresh.get(refresh_token) else {
            return Vec::new();
        };
        let mut v: Vec<(u64, &String)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.family == Some(rt.family))
            .map(|(t, s)| (s.seq, t))
            .collect();
        v.sort();
        v.into_iter().map(|(_, t)| t.clone()).collect()
    }

    /// Does (user, client) hold an active approval?
    pub fn has_approval(&self, client_id: &str, username: &str) -> bool {
        self.families
            .values()
            .any(|f| !f.revoked && f.client_id == client_id && f.username == username)
    }

    // ----- introspection --------------------------------------------------------------

    /// RFC 7662-style answer, as Salesforce orders it, for a token as seen by `client`.
    pub fn introspect(&self, token: &str, client: &Client) -> String {
        let inactive = "{\"active\":false}".to_string();
        let visible = |owner: &str| client.introspect_all || owner == client.id;
        if let Some(s) = self.live_session(token) {
            if !visible(&s.client_id) {
                return inactive;
            }
            return crate::routes::ordered(&[
                ("active", json!(true)),
                ("scope", json!(s.scope)),
                ("client_id", json!(s.client_id)),
                ("username", json!(s.username)),
                ("sub", json!(self.identity_url(&s.username))),
                ("token_type", json!("access_token")),
                ("exp", json!(s.exp)),
                ("iat", json!(s.iat)),
                ("nbf", json!(s.iat)),
            ]);
        }
        if let Some((_, f)) = self.live_refresh(token) {
            if !visible(&f.client_id) {
                return inactive;
            }
            let issued = self.refresh.get(token).map(|r| r.issued).unwrap_or(0);
            let ttl = self
                .clients
                .get(&f.client_id)
                .and_then(|c| c.refresh_token_idle_ttl_secs);
            let mut fields = vec![
                ("active", json!(true)),
                ("scope", json!(f.scope)),
                ("client_id", json!(f.client_id)),
                ("username", json!(f.username)),
                ("sub", json!(self.identity_url(&f.username))),
                ("token_type", json!("refresh_token")),
            ];
            if let Some(ttl) = ttl {
                fields.push(("exp", json!(f.last_used + ttl)));
            }
            fields.push(("iat", json!(issued)));
            fields.push(("nbf", json!(issued)));
            return crate::routes::ordered(&fields);
        }
        inactive
    }

    // ----- devices ---------------------------------------------------------------------

    pub fn new_device(&mut self, client_id: &str, scope: &str) -> Device {
        const UC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let d = Device {
            device_code: util::random_alnum(64),
            user_code: util::random_from(UC, 8),
            client_id: client_id.to_string(),
            scope: scope.to_string(),
            expires_ms: self.now_ms() + self.device_expiry_secs * 1000,
            interval: self.device_interval,
            last_poll_ms: None,
            status: DeviceStatus::Pending,
        };
        self.devices.push(d.clone());
        d
    }

    pub fn set_device_status(&mut self, user_code: &str, status: DeviceStatus) -> bool {
        let now = self.now_ms();
        match self.devices.iter_mut().find(|d| {
            d.user_code.eq_ignore_ascii_case(user_code)
                && d.status == DeviceStatus::Pending
                && d.expires_ms > now
        }) {
            Some(d) => {
                d.status = status;
                true
            }
            None => false,
        }
    }

    /// Take one fault for `path` from its queue.
    pub fn take_fault(&mut self, path: &str) -> Option<Fault> {
        let q = self.faults.get_mut(path)?;
        loop {
            let front = q.front_mut()?;
            match front.times {
                None => return Some(front.clone()),
                Some(0) => {
                    q.pop_front();
                }
                Some(n) => {
                    front.times = Some(n - 1);
                    let f = front.clone();
                    if n == 1 {
                        q.pop_front();
                    }
                    return Some(f);
                }
            }
        }
    }

    /// Session facts for the control API.
    pub fn session_json(&self, token: &str) -> Value {
        match self.sessions.get(token) {
            Some(s) => json!({
                "active": self.live_session(token).is_some(),
                "exp": s.exp,
                "iat": s.iat,
                "last_activity": s.last_activity,
                "client_id": s.client_id,
                "username": s.username,
            }),
            None => json!({"active": self.live_refresh(token).is_some(), "exp": null, "iat": null}),
        }
    }
}
