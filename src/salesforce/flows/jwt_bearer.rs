//! JWT bearer grant: an RS256 assertion with
//! `iss` = client id, `sub` = username, `aud` = the login audience and `exp` three
//! minutes ahead, signed with the private key whose certificate is uploaded to the
//! connected app. No client secret is sent, and no refresh token comes back: the
//! grant itself is re-run to get a new access token.
//!
//! Keys are PEM files, PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8
//! (`BEGIN PRIVATE KEY`); jsonwebtoken (rust_crypto backend) reads both.

use std::path::Path;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::error::Error;
use crate::salesforce::Client;
use crate::salesforce::http::Retry;
use crate::salesforce::types::TokenResponse;
use crate::secret::Secret;
use crate::text::sanitize;

pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Salesforce wants `exp` "within 3 minutes".
const ASSERTION_LIFETIME_SECS: i64 = 180;

/// Read an RSA private key; the error says what is wrong with the file.
pub fn load_key(path: &Path) -> Result<EncodingKey, String> {
    let bytes = crate::limits::read_capped(path, crate::limits::KEY_FILE_MAX)
        .map_err(|e| format!("cannot read it ({e})"))?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("ENCRYPTED") {
        return Err("it is an encrypted key, which sfx cannot use; write an unencrypted copy with `openssl pkey -in KEY -out KEY.plain.pem` and keep that one private".into());
    }
    if !text.contains("PRIVATE KEY-----") {
        return Err("it is not a PEM private key (expected `-----BEGIN PRIVATE KEY-----` or `-----BEGIN RSA PRIVATE KEY-----`)".into());
    }
    EncodingKey::from_rsa_pem(&bytes).map_err(|e| {
        format!(
            "it is not a usable RSA private key ({})",
            sanitize(&e.to_string(), 120)
        )
    })
}

/// A warning when the private key file can be read by other users (issue #24):
/// the key signs in as the user, as a password would. ssh refuses such a key;
/// sfx says so, with the fix. `None` when the file is private (or unknown).
pub fn loose_key_warning(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then(|| {
            format!(
                "the JWT key file {} can be read by other users (mode {mode:04o}): anyone who reads it can log in as this user; make it private: `chmod 600 {}`",
                path.display(),
                path.display()
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// The `aud` for a login URL, as the sf CLI chooses it: the generic hosts stand
/// for themselves; a sandbox or scratch My Domain means `https://test.salesforce.com`;
/// any other `*.my.salesforce.com` means `https://login.salesforce.com`; anything
/// else (an Experience Cloud site, a local fake) is its own audience.
pub fn audience(login_url: &str) -> String {
    let host = url::Url::parse(login_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    if host == "login.salesforce.com" || host == "test.salesforce.com" {
        return format!("https://{host}");
    }
    if let Some(name) = host.strip_suffix(".my.salesforce.com") {
        let sandbox =
            name.ends_with(".sandbox") || name.ends_with(".scratch") || name.contains("--");
        return if sandbox {
            "https://test.salesforce.com".into()
        } else {
            "https://login.salesforce.com".into()
        };
    }
    login_url.trim_end_matches('/').to_string()
}

/// The signed assertion.
pub fn assertion(
    client_id: &str,
    username: &str,
    aud: &str,
    key: &EncodingKey,
    now: i64,
) -> Result<Secret, String> {
    let claims = json!({
        "iss": client_id,
        "sub": username,
        "aud": aud,
        "exp": now.saturating_add(ASSERTION_LIFETIME_SECS),
    });
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, key)
        .map(Secret::new)
        .map_err(|e| {
            format!(
                "signing with the key failed ({})",
                sanitize(&e.to_string(), 120)
            )
        })
}

/// A JWT bearer grant's inputs.
pub struct JwtLogin<'a> {
    /// Where the token request goes (the login URL or My Domain).
    pub base: &'a str,
    pub client_id: &'a str,
    pub username: &'a str,
    pub key: &'a EncodingKey,
    /// Names the action in errors ("the JWT bearer login", "the refresh of org x").
    pub doing: &'a str,
}

/// Sign an assertion and exchange it for an access token.
pub fn grant(client: &Client<'_>, p: &JwtLogin<'_>, now: i64) -> Result<TokenResponse, Error> {
    let aud = audience(p.base);
    let assertion = assertion(p.client_id, p.username, &aud, p.key, now)
        .map_err(|why| Error::Other(format!("cannot build the JWT assertion: {why}")))?;
    let form = vec![
        ("grant_type", GRANT_TYPE.to_string()),
        ("assertion", assertion.expose().to_string()),
    ];
    client
        .grant(p.base, form, None, Retry::Transient, p.doing)
        .map_err(Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_follows_the_login_host() {
        for (login, aud) in [
            (
                "https://login.salesforce.com",
                "https://login.salesforce.com",
            ),
            (
                "https://test.salesforce.com/",
                "https://test.salesforce.com",
            ),
            (
                "https://acme.my.salesforce.com",
                "https://login.salesforce.com",
            ),
            (
                "https://acme-dev-ed.develop.my.salesforce.com",
                "https://login.salesforce.com",
            ),
            (
                "https://acme--uat.sandbox.my.salesforce.com",
                "https://test.salesforce.com",
            ),
            (
                "https://acme.scratch.my.salesforce.com",
                "https://test.salesforce.com",
            ),
            ("https://acme.my.site.com", "https://acme.my.site.com"),
            ("http://127.0.0.1:4000", "http://127.0.0.1:4000"),
        ] {
            assert_eq!(audience(login), aud, "{login}");
        }
    }
}
