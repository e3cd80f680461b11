//! Response types, exactly as Salesforce sends them.
//!
//! `issued_at` is a string of milliseconds; introspection times are integer
//! seconds; there is never an `expires_in`. JWT-bearer responses lack
//! `issued_at`, `signature` and `refresh_token`; password responses lack `scope`.

use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;

use crate::secret::Secret;
use crate::timefmt::parse_epoch;

/// A successful token-endpoint answer (every grant).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: Secret,
    #[serde(default)]
    pub refresh_token: Option<Secret>,
    #[serde(default)]
    pub signature: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub id_token: Option<Secret>,
    pub instance_url: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default)]
    pub issued_at: Option<String>,
    #[serde(default)]
    pub api_instance_url: Option<String>,
    #[serde(default)]
    pub token_format: Option<String>,
}

impl TokenResponse {
    /// The answer's `instance_url` checked by the transport rule and reduced to
    /// its origin (the one check every caller that stores it makes).
    pub fn checked_instance_url(&self) -> Result<String, crate::error::Error> {
        super::url::base_url(
            &self.instance_url,
            "the instance_url in Salesforce's answer",
        )
        .map_err(|e| {
            crate::error::Error::network(format!(
                "Salesforce answered with an unusable instance_url: {e}"
            ))
        })
    }

    /// `issued_at` as an instant (absent from JWT-bearer responses).
    pub fn issued_at_time(&self) -> Option<DateTime<Utc>> {
        self.issued_at.as_deref().and_then(parse_epoch)
    }

    /// The 18-character org and user ids: the last two path segments of `id`.
    pub fn org_and_user(&self) -> Option<(String, String)> {
        ids_from_identity_url(self.id.as_deref()?)
    }

    /// Check `signature` = base64(HMAC-SHA256(client_secret, id + issued_at)).
    /// `None` when it cannot be checked (no secret, or a field is missing).
    pub fn signature_valid(&self, client_secret: Option<&Secret>) -> Option<bool> {
        let secret = client_secret.filter(|s| !s.is_empty())?;
        let (sig, id, issued) = (
            self.signature.as_deref()?,
            self.id.as_deref()?,
            self.issued_at.as_deref()?,
        );
        let given = base64::engine::general_purpose::STANDARD.decode(sig).ok();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.expose().as_bytes()).ok()?;
        mac.update(id.as_bytes());
        mac.update(issued.as_bytes());
        Some(given.is_some_and(|g| mac.verify_slice(&g).is_ok()))
    }
}

/// `https://login.salesforce.com/id/00D…/005…` → (org id, user id).
pub fn ids_from_identity_url(id: &str) -> Option<(String, String)> {
    let mut segs = id.trim_end_matches('/').rsplit('/');
    let user = segs.next()?;
    let org = segs.next()?;
    let plain = |s: &str| s.len() <= 18 && s.chars().all(|c| c.is_ascii_alphanumeric());
    (org.starts_with("00D") && user.starts_with("005") && plain(org) && plain(user))
        .then(|| (org.to_string(), user.to_string()))
}

/// An `{"error","error_description"}` body.
#[derive(Debug, Clone, Deserialize)]
pub struct OAuthError {
    pub error: String,
    #[serde(default)]
    pub error_description: Option<String>,
    #[serde(skip)]
    pub status: u16,
}

/// The parts of `/services/oauth2/userinfo` sfx uses. Text fields are stored and
/// shown on terminals, so control characters are removed as they arrive.
#[derive(Debug, Clone, Deserialize)]
pub struct Userinfo {
    #[serde(default, deserialize_with = "clean_text")]
    pub preferred_username: Option<String>,
    #[serde(default, deserialize_with = "clean_text")]
    pub user_id: Option<String>,
    #[serde(default, deserialize_with = "clean_text")]
    pub organization_id: Option<String>,
    #[serde(default, deserialize_with = "clean_text")]
    pub sub: Option<String>,
}

/// An optional string from the server with control characters (and bidi
/// overrides) removed; any other JSON type reads as absent.
fn clean_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::String(s)) => Some(crate::text::sanitize(&s, 200)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TokenResponse {
        serde_json::from_str(r#"{"access_token":"00D5g000004ABCD!AQ0AQ","refresh_token":"5Aep861T",
            "signature":"","scope":"refresh_token web api","instance_url":"https://acme.my.salesforce.com",
            "id":"https://login.salesforce.com/id/00D5g000004ABCDEAA/0055g00000XYZ12AAA",
            "token_type":"Bearer","issued_at":"1714560000123"}"#)
        .unwrap()
    }

    #[test]
    fn parses_the_documented_shape() {
        let t = sample();
        assert_eq!(
            t.issued_at_time().unwrap().timestamp_millis(),
            1714560000123
        );
        assert_eq!(
            t.org_and_user().unwrap(),
            ("00D5g000004ABCDEAA".into(), "0055g00000XYZ12AAA".into())
        );
    }

    #[test]
    fn jwt_bearer_shape_without_issued_at_parses() {
        let t: TokenResponse = serde_json::from_str(r#"{"access_token":"x","scope":"web api","instance_url":"https://a","id":"https://login.salesforce.com/id/00D/005","token_type":"Bearer"}"#).unwrap();
        assert!(t.issued_at_time().is_none());
        assert!(t.signature_valid(Some(&Secret::new("s"))).is_none());
    }

    #[test]
    fn signature_is_hmac_sha256_of_id_and_issued_at() {
        let mut t = sample();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"shh").unwrap();
        mac.update(
            format!(
                "{}{}",
                t.id.as_ref().unwrap(),
                t.issued_at.as_ref().unwrap()
            )
            .as_bytes(),
        );
        t.signature =
            Some(base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
        assert_eq!(t.signature_valid(Some(&Secret::new("shh"))), Some(true));
        assert_eq!(t.signature_valid(Some(&Secret::new("other"))), Some(false));
        assert_eq!(t.signature_valid(None), None);
    }
}
