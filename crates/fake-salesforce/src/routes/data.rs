//! The REST data API stubs (versions, limits, query, sObjects, blobs) and Apex REST.

use super::*;

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

pub(super) fn rest_error(status: u16, code: &str, message: &str) -> HttpResponse {
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
pub(super) fn data_api(st: &mut State, req: &Req) -> HttpResponse {
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
pub(super) fn apex_rest(st: &mut State, req: &Req) -> HttpResponse {
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
