//! The `/__fake/…` control API: the library's test hooks over HTTP for standalone use
//! (requests log, clients, users, grants, faults, revoke/expire, sessions, device approval,
//! global delay). Control requests are never recorded, delayed or faulted.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::form;
use crate::http::{HttpRequest, HttpResponse};
use crate::model::{Client, Fault, User};
use crate::routes::JSON_CT;
use crate::state::{DEFAULT_SCOPE, DeviceStatus, State};

fn ok(v: Value) -> HttpResponse {
    HttpResponse::new(200, JSON_CT, v.to_string())
}

fn bad(msg: &str) -> HttpResponse {
    HttpResponse::new(400, JSON_CT, json!({"error": msg}).to_string())
}

fn parse<T: for<'de> Deserialize<'de>>(req: &HttpRequest) -> Result<T, HttpResponse> {
    serde_json::from_slice(&req.body).map_err(|e| bad(&format!("invalid JSON body: {e}")))
}

#[derive(Deserialize)]
struct GrantReq {
    client_id: String,
    username: String,
}

#[derive(Deserialize)]
struct TokenReq {
    token: String,
}

#[derive(Deserialize)]
struct FaultReq {
    path: String,
    #[serde(flatten)]
    fault: Fault,
}

#[derive(Deserialize)]
struct ApproveReq {
    user_code: String,
    username: Option<String>,
}

#[derive(Deserialize)]
struct DelayReq {
    ms: u64,
}

/// Handle one `/__fake/…` request.
pub fn handle(st: &mut State, req: &HttpRequest) -> HttpResponse {
    let route = req.path.trim_start_matches("/__fake").trim_end_matches('/');
    let result = match (req.method.as_str(), route) {
        // For the fake's own tests: proves that a handler panic fails the test
        // (see `FakeSalesforce::verify`) instead of dying in a detached thread.
        ("POST", "/panic") => panic!("requested by POST /__fake/panic"),
        ("GET", "/requests") => Ok(ok(serde_json::to_value(&st.requests).unwrap_or(json!([])))),
        ("DELETE", "/requests") => {
            st.requests.clear();
            Ok(ok(json!({})))
        }
        ("POST", "/clients") => parse::<Client>(req).map(|c| {
            if c.id.is_empty() {
                return bad("client id is required");
            }
            let v = serde_json::to_value(&c).unwrap_or(json!({}));
            st.clients.insert(c.id.clone(), c);
            ok(v)
        }),
        ("POST", "/users") => parse::<User>(req).map(|mut u| {
            if u.username.is_empty() {
                return bad("username is required");
            }
            if u.user_id.len() != 18 {
                u.user_id = crate::util::user_id_for(&u.username);
            }
            let v = serde_json::to_value(&u).unwrap_or(json!({}));
            st.users.insert(u.username.clone(), u);
            ok(v)
        }),
        ("POST", "/grant") => parse::<GrantReq>(req).map(|g| {
            let (rt, fam) = st.new_family(&g.client_id, &g.username, DEFAULT_SCOPE);
            let at = st.mint_session(&g.client_id, &g.username, DEFAULT_SCOPE, Some(fam));
            let secret = st
                .clients
                .get(&g.client_id)
                .and_then(|c| c.secret.clone())
                .unwrap_or_default();
            let host = st.base_url.trim_start_matches("http://").to_string();
            ok(json!({
                "refresh_token": rt,
                "access_token": at,
                "auth_url": format!("force://{}:{}:{}@{}", g.client_id, secret, rt, host),
            }))
        }),
        ("POST", "/faults") => parse::<FaultReq>(req).map(|f| {
            st.faults.entry(f.path).or_default().push_back(f.fault);
            ok(json!({}))
        }),
        ("DELETE", "/faults") => {
            st.faults.clear();
            Ok(ok(json!({})))
        }
        ("POST", "/revoke") => parse::<TokenReq>(req).map(|t| {
            let revoked = st.revoke_any(&t.token);
            ok(json!({ "revoked": revoked }))
        }),
        ("POST", "/expire") => parse::<TokenReq>(req).map(|t| {
            let now = st.now();
            match st.sessions.get_mut(&t.token) {
                Some(s) => {
                    s.exp = now - 1;
                    ok(json!({"expired": true}))
                }
                None => ok(json!({"expired": false})),
            }
        }),
        ("GET", "/session") => {
            let q = form::parse_urlencoded(req.query.as_bytes());
            let token = form::get(&q, "token").unwrap_or("");
            Ok(ok(st.session_json(token)))
        }
        ("POST", "/device/approve") => parse::<ApproveReq>(req).map(|a| {
            let username = a
                .username
                .or_else(|| st.authorize_user.clone())
                .unwrap_or_default();
            let approved = st.set_device_status(&a.user_code, DeviceStatus::Approved(username));
            ok(json!({ "approved": approved }))
        }),
        ("POST", "/device/deny") => parse::<ApproveReq>(req).map(|a| {
            let denied = st.set_device_status(&a.user_code, DeviceStatus::Denied);
            ok(json!({ "denied": denied }))
        }),
        ("POST", "/delay") => parse::<DelayReq>(req).map(|d| {
            st.global_delay_ms = d.ms;
            ok(json!({"ms": d.ms}))
        }),
        _ => Ok(HttpResponse::new(
            404,
            JSON_CT,
            json!({"error": "unknown control endpoint"}).to_string(),
        )),
    };
    result.unwrap_or_else(|e| e)
}
