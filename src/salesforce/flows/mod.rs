//! The protocol side of `sfx login`'s OAuth flows: one
//! module per flow, each sending its grant through [`crate::salesforce::Client`]
//! and returning the checked [`crate::salesforce::types::TokenResponse`].
//!
//! Nothing here prints or prompts: what a person must see (the authorize URL, the
//! device code) is handed to a callback, and secrets come in as values. The
//! command glue in `commands/login/` does the talking and the storing.
//!
//! | flow | module | refresh afterwards |
//! |---|---|---|
//! | authorization code + PKCE | [`web_pkce`] | refresh token |
//! | device | [`device`] | refresh token |
//! | JWT bearer | [`jwt_bearer`] | the grant again (no refresh token) |
//! | client credentials | [`client_credentials`] | the grant again (no refresh token) |
//! | username-password | [`password`] | none: log in again |

pub mod callback;
pub mod client_credentials;
pub mod device;
pub mod jwt_bearer;
pub mod password;
pub mod web_pkce;

use base64::Engine;

use crate::error::Error;

/// `n` random bytes from the OS, as base64url without padding.
pub(crate) fn random_urlsafe(n: usize) -> Result<String, Error> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| {
        Error::Other(format!(
            "the operating system's random number generator failed: {e}"
        ))
    })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// True for the generic login hosts (`login.salesforce.com`, `test.salesforce.com`),
/// as opposed to an org's own My Domain.
pub fn is_generic_login_host(base: &str) -> bool {
    url::Url::parse(base)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .is_some_and(|h| h == "login.salesforce.com" || h == "test.salesforce.com")
}
