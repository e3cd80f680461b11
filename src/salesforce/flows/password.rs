//! Username-password grant, legacy: the password is
//! the user's password **immediately followed by the security token** (unless the
//! caller's IP is trusted). Blocked by default in orgs created since Summer '23
//! ("Allow OAuth Username-Password Flows"), not offered by External Client Apps,
//! and a blocked flow answers exactly like a wrong password: `invalid_grant` /
//! `authentication failure`. No refresh token: when the session ends, log in again.

use crate::error::Error;
use crate::salesforce::http::Retry;
use crate::salesforce::types::TokenResponse;
use crate::salesforce::{Client, ClientCreds};
use crate::secret::Secret;

pub const GRANT_TYPE: &str = "password";

/// What to tell a person before using this flow.
pub const WARNING: &str = "the username-password flow is legacy: Salesforce blocks it by default in orgs created since Summer '23 (Setup → OAuth and OpenID Connect Settings → \"Allow OAuth Username-Password Flows\"), and a blocked flow answers exactly like a wrong password (\"authentication failure\"). It gives no refresh token: when the session ends, log in again";

/// The password with the security token appended, as Salesforce wants it.
pub fn with_security_token(password: &Secret, security_token: &Secret) -> Secret {
    Secret::new(format!("{}{}", password.expose(), security_token.expose()))
}

/// One username-password grant; `password` already carries the security token.
pub fn grant(
    client: &Client<'_>,
    base: &str,
    creds: ClientCreds<'_>,
    username: &str,
    password: &Secret,
) -> Result<TokenResponse, Error> {
    let form = vec![
        ("grant_type", GRANT_TYPE.to_string()),
        ("username", username.to_string()),
        ("password", password.expose().to_string()),
    ];
    // A retried wrong password counts twice against the lockout limit: only
    // retry when the request cannot have arrived.
    client
        .grant(
            base,
            form,
            Some(creds),
            Retry::OnlyUnsent,
            "the username-password login",
        )
        .map_err(Error::from)
}
