//! The authorize endpoint: the web flow's login page, consent and redirect.

use super::*;

pub(super) fn redirect_to(uri: &str, pairs: &[(&str, &str)]) -> HttpResponse {
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

pub(super) fn authorize(st: &mut State, req: &Req) -> HttpResponse {
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
