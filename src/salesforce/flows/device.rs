//! Device flow, Salesforce's variant: the code request
//! goes to the token endpoint with `response_type=device_code`; polls send
//! `grant_type=device&code=<device_code>`. While the user has not approved, the
//! answer is HTTP 400 `authorization_pending`; `slow_down` adds 5 s to the poll
//! interval (RFC 8628 §3.5); `access_denied` and `expired_token` end the login.
//!
//! Salesforce does not say how long a device code lives (no `expires_in` in the
//! sf CLI's type); approval must happen within about 10 minutes, so that is the
//! limit unless the server names one or the caller sets a shorter wait.

use std::time::Duration;

use crate::error::Error;
use crate::salesforce::http::Retry;
use crate::salesforce::types::TokenResponse;
use crate::salesforce::{Client, ClientCreds, errors, token_response};
use crate::secret::Secret;
use crate::text::sanitize;

/// How long a device code lives when the server does not say.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// Never poll faster than this, whatever the server announces.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// Never wait longer than this between polls, whatever the server announces or
/// `slow_down` adds up to (issue #11: server-sent numbers are clamped).
const MAX_INTERVAL: Duration = Duration::from_secs(60);
/// The longest code lifetime believed from the server (Salesforce's are 10 minutes).
const MAX_LIFETIME: Duration = Duration::from_secs(3_600);

/// What the device-code request answered (the parts a person needs, and the code to poll with).
pub struct DeviceCode {
    device_code: Secret,
    /// The code the user types (about 8 characters), made safe to print.
    pub user_code: String,
    /// Where the user types it, made safe to print.
    pub verification_uri: String,
    /// The announced poll interval.
    pub interval: Duration,
    /// The code's lifetime, if the server said.
    pub expires_in: Option<Duration>,
}

/// A device login's inputs.
pub struct DeviceLogin<'a> {
    pub base: &'a str,
    pub creds: ClientCreds<'a>,
    pub scope: Option<&'a str>,
    /// Stop waiting earlier than the code's expiry.
    pub wait: Option<Duration>,
}

/// Ask for a device code.
pub fn request(client: &Client<'_>, p: &DeviceLogin<'_>) -> Result<DeviceCode, Error> {
    let mut form = vec![("response_type", "device_code".to_string())];
    if let Some(scope) = p.scope {
        form.push(("scope", scope.to_string()));
    }
    let reply = client.token_endpoint(p.base, form, Some(p.creds), Retry::Transient)?;
    let map = match reply.body {
        Ok(map) => map,
        Err(oauth) => return Err(errors::explain(&oauth, "the device-code request")),
    };
    let text = |k: &str| {
        map.get(k)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let secs = |k: &str| {
        map.get(k).and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        })
    };
    let missing = |what: &str| {
        Error::network(format!(
            "{} answered the device-code request without a {what}; that is not what Salesforce sends",
            reply.host
        ))
    };
    let device_code = text("device_code").ok_or_else(|| missing("device_code"))?;
    let user_code = text("user_code").ok_or_else(|| missing("user_code"))?;
    let verification_uri = text("verification_uri")
        .or_else(|| text("verification_url"))
        .ok_or_else(|| missing("verification_uri"))?;
    Ok(DeviceCode {
        device_code: Secret::new(device_code),
        user_code: sanitize(&user_code, 40),
        verification_uri: sanitize(&verification_uri, 200),
        interval: secs("interval")
            .map_or(DEFAULT_INTERVAL, Duration::from_secs)
            .clamp(MIN_INTERVAL, MAX_INTERVAL),
        expires_in: secs("expires_in")
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(s).min(MAX_LIFETIME)),
    })
}

/// Run the flow: `on_code` shows the user code and URL; the client's clock
/// paces the polls and bounds the wait. Returns the token response once the
/// user has approved.
pub fn login(
    client: &Client<'_>,
    p: &DeviceLogin<'_>,
    on_code: impl FnOnce(&DeviceCode),
) -> Result<TokenResponse, Error> {
    let clock = client.http.clock();
    let code = request(client, p)?;
    on_code(&code);
    let lifetime = code.expires_in.unwrap_or(DEFAULT_LIFETIME);
    let limit = p.wait.map_or(lifetime, |w| w.min(lifetime));
    let started = clock.instant();
    // `limit` is at most an hour (clamped above and by --login-timeout's range),
    // yet checked: no input may make this overflow.
    let deadline = started.checked_add(limit).unwrap_or(started);
    let mut interval = code.interval.max(MIN_INTERVAL);
    let not_approved = |why: &str| Error::LoginTimeout {
        message: format!("the device login was not approved in time: {why}; nothing was stored"),
        hint: None,
    };
    loop {
        let Some(left) = deadline
            .checked_duration_since(clock.instant())
            .filter(|l| !l.is_zero())
        else {
            return Err(not_approved(&format!(
                "sfx stopped waiting after {}{}",
                humantime::format_duration(limit),
                if limit < lifetime {
                    " (--login-timeout)"
                } else {
                    ", when the code expired"
                }
            )));
        };
        clock.sleep(interval.min(left));
        let form = vec![
            ("grant_type", "device".to_string()),
            ("code", code.device_code.expose().to_string()),
        ];
        let reply = client.token_endpoint(p.base, form, Some(p.creds), Retry::Transient)?;
        match reply.body {
            Ok(map) => return token_response(map, &reply.host, "the device login", p.creds.secret),
            Err(e) if e.error == "authorization_pending" => {}
            Err(e) if e.error == "slow_down" => {
                interval = interval.saturating_add(SLOW_DOWN_STEP).min(MAX_INTERVAL)
            }
            Err(e) if e.error == "expired_token" => {
                return Err(not_approved("Salesforce says the device code expired"));
            }
            Err(e) => return Err(errors::explain(&e, "the device login")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fake_salesforce::{DEFAULT_CLIENT_ID, DEFAULT_USERNAME, FakeSalesforce, Fault};

    use super::*;
    use crate::clock::FakeClock;
    use crate::salesforce::http::Http;

    fn setup() -> (FakeSalesforce, Arc<FakeClock>, Http) {
        let sf = FakeSalesforce::start();
        // The fake's own slow_down (real time between polls) off; its 0 s
        // interval is sfx's 1 s minimum.
        sf.set_device_interval(0);
        let clock = Arc::new(FakeClock::at(chrono::Utc::now()));
        let http = Http::with_clock(Duration::from_secs(5), 0, clock.clone());
        (sf, clock, http)
    }

    /// `slow_down` makes every later poll wait 5 s more (RFC 8628 §3.5): the
    /// polls are paced on the client's clock, so this takes milliseconds.
    #[test]
    fn slow_down_adds_five_seconds_to_the_interval() {
        let (sf, clock, http) = setup();
        let url = sf.url();
        let p = DeviceLogin {
            base: &url,
            creds: ClientCreds {
                id: DEFAULT_CLIENT_ID,
                secret: None,
            },
            scope: None,
            wait: None,
        };
        let resp = login(&Client { http: &http }, &p, |code| {
            // The first poll is told to slow down; the user approves meanwhile.
            sf.inject(
                "/services/oauth2/token",
                Fault::json(400, r#"{"error":"slow_down"}"#).times(1),
            );
            assert!(sf.approve_device(code.user_code.as_str(), DEFAULT_USERNAME));
        })
        .unwrap();
        assert!(sf.is_active(resp.access_token.expose()));
        assert_eq!(sf.count_grant("device"), 2);
        assert_eq!(
            clock.slept(),
            [Duration::from_secs(1), Duration::from_secs(6)],
            "one interval, then the interval plus 5 s"
        );
    }

    /// Unapproved: sfx polls every interval and stops after exactly
    /// --login-timeout, saying so (exit 4).
    #[test]
    fn an_unapproved_login_stops_after_exactly_the_login_timeout() {
        let (sf, clock, http) = setup();
        let url = sf.url();
        let p = DeviceLogin {
            base: &url,
            creds: ClientCreds {
                id: DEFAULT_CLIENT_ID,
                secret: None,
            },
            scope: None,
            wait: Some(Duration::from_secs(30)),
        };
        let err = login(&Client { http: &http }, &p, |_| {}).unwrap_err();
        assert_eq!(err.exit(), crate::exit::Exit::Relogin, "{err}");
        assert!(
            err.to_string().contains("after 30s (--login-timeout)"),
            "{err}"
        );
        assert_eq!(clock.elapsed(), Duration::from_secs(30));
        assert_eq!(clock.slept(), vec![Duration::from_secs(1); 30]);
        assert_eq!(sf.count_grant("device"), 30);
    }
}
