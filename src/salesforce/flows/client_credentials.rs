//! Client credentials grant: the connected app's id
//! and secret buy a session for the app's run-as user. The app needs "Enable
//! Client Credentials Flow" and a run-as user. The request must go to the org's
//! **My Domain** host: login.salesforce.com and test.salesforce.com refuse it. No
//! refresh token comes back: the grant itself is re-run to get a new token.

use crate::error::Error;
use crate::salesforce::flows::is_generic_login_host;
use crate::salesforce::http::Retry;
use crate::salesforce::types::TokenResponse;
use crate::salesforce::{Client, ClientCreds};

pub const GRANT_TYPE: &str = "client_credentials";

/// Refuse the generic login hosts up front (exit 2) rather than send a request
/// Salesforce will refuse with a vague error.
pub fn check_host(base: &str, flag: &str) -> Result<(), Error> {
    if is_generic_login_host(base) {
        return Err(Error::usage(format!(
            "the client credentials flow must be sent to the org's My Domain, not {base}; give it with {flag} https://<MyDomain>.my.salesforce.com (sandbox: https://<MyDomain>--<sandbox>.sandbox.my.salesforce.com)"
        )));
    }
    Ok(())
}

/// One client credentials grant. `creds` must carry the secret.
pub fn grant(
    client: &Client<'_>,
    base: &str,
    creds: ClientCreds<'_>,
    doing: &str,
) -> Result<TokenResponse, Error> {
    let form = vec![("grant_type", GRANT_TYPE.to_string())];
    client
        .grant(base, form, Some(creds), Retry::Transient, doing)
        .map_err(Error::from)
}
