//! SFDX auth URLs: `force://<clientId>:<clientSecret>:<refreshToken>@<instance host[:port]>`.
//!
//! Accepted exactly as sfdx-core's parser accepts them: the client id and refresh
//! token are non-empty, the secret may be empty, each part may end in up to two `=`,
//! the host may carry a `:port`, and anything after the host is ignored. The host
//! has no scheme: loopback hosts are reached over `http://`, others over `https://`.
//! Errors never repeat the input (it holds a refresh token).

use crate::error::Error;
use crate::salesforce::url::base_url;
use crate::secret::Secret;

/// The parts of an SFDX auth URL.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthUrl {
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub refresh_token: Secret,
    /// Origin of the instance, with the scheme chosen by the loopback rule.
    pub instance_url: String,
}

const FORM: &str = "an SFDX auth URL has the form force://<clientId>:<clientSecret>:<refreshToken>@<instance host> (the secret may be empty)";

fn part_ok(s: &str, may_be_empty: bool) -> bool {
    let body = s.trim_end_matches('=');
    let pad = s.len() - body.len();
    (may_be_empty || !body.is_empty())
        && pad <= 2
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl AuthUrl {
    pub fn parse(input: &str) -> Result<AuthUrl, Error> {
        let bad =
            |why: &str| Error::usage(format!("the SFDX auth URL is not valid ({why}); {FORM}"));
        let s = input.trim();
        let rest = s
            .strip_prefix("force://")
            .ok_or_else(|| bad("it does not start with force://"))?;
        let (creds, host_part) = rest
            .split_once('@')
            .ok_or_else(|| bad("there is no @ before the host"))?;
        let mut it = creds.splitn(3, ':');
        let (Some(id), Some(secret), Some(rt)) = (it.next(), it.next(), it.next()) else {
            return Err(bad("it needs three parts separated by colons before the @"));
        };
        if !part_ok(id, false) {
            return Err(bad(
                "the client id is empty or has characters other than A-Z a-z 0-9 . _ -",
            ));
        }
        if !part_ok(secret, true) {
            return Err(bad(
                "the client secret has characters other than A-Z a-z 0-9 . _ -",
            ));
        }
        if !part_ok(rt, false) {
            return Err(bad(
                "the refresh token is empty or has characters other than A-Z a-z 0-9 . _ -",
            ));
        }
        let host: String = if let Some(v6) = host_part.strip_prefix('[') {
            let end = v6
                .find(']')
                .ok_or_else(|| bad("an IPv6 host lacks its closing ]"))?;
            let after = &v6[end + 1..];
            let port: String = after
                .strip_prefix(':')
                .map(|p| p.chars().take_while(|c| c.is_ascii_digit()).collect())
                .unwrap_or_default();
            if port.is_empty() {
                format!("[{}]", &v6[..end])
            } else {
                format!("[{}]:{port}", &v6[..end])
            }
        } else {
            host_part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '_' | '-'))
                .collect()
        };
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        let host = if host == "::1" {
            "[::1]".to_string()
        } else {
            host
        };
        let instance_url = base_url(&host, "the SFDX auth URL's host")
            .map_err(|_| bad("the host is not a valid host name"))?;
        Ok(AuthUrl {
            client_id: id.to_string(),
            client_secret: if secret.is_empty() {
                None
            } else {
                Some(Secret::new(secret))
            },
            refresh_token: Secret::new(rt),
            instance_url,
        })
    }

    /// The URL again, e.g. after Salesforce rotated the refresh token. It holds
    /// the refresh token (and the client secret), so it is a [`Secret`] too.
    pub fn format(
        client_id: &str,
        client_secret: Option<&Secret>,
        refresh_token: &Secret,
        instance_url: &str,
    ) -> Secret {
        let host = instance_url
            .split_once("://")
            .map(|(_, h)| h)
            .unwrap_or(instance_url)
            .trim_end_matches('/');
        Secret::new(format!(
            "force://{client_id}:{}:{}@{host}",
            client_secret.map(|s| s.expose()).unwrap_or(""),
            refresh_token.expose()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sfdx_core_examples_parse() {
        let a = AuthUrl::parse("force://PlatformCLI::5Aep861_OKMvio5gy8xCNsXxybPdupY9fVEZyeVOvb4kpOZx5Z1QLB7k7n5flEqEWKcwUQEX1I.O5DCFwjlYUB.@test.my.salesforce.com").unwrap();
        assert_eq!(a.client_id, "PlatformCLI");
        assert_eq!(a.client_secret, None);
        assert!(a.refresh_token.expose().starts_with("5Aep861_"));
        assert_eq!(a.instance_url, "https://test.my.salesforce.com");

        let b = AuthUrl::parse("force://3MVG9SemV5D80oBfQ2.4o=:438437816653243682==:5Aep861YU==@test.my.salesforce.com:6101").unwrap();
        assert_eq!(b.client_id, "3MVG9SemV5D80oBfQ2.4o=");
        assert_eq!(
            b.client_secret.as_ref().unwrap().expose(),
            "438437816653243682=="
        );
        assert_eq!(b.refresh_token.expose(), "5Aep861YU==");
        assert_eq!(b.instance_url, "https://test.my.salesforce.com:6101");
    }

    #[test]
    fn loopback_hosts_use_http_and_trailing_parts_are_ignored() {
        assert_eq!(
            AuthUrl::parse("force://id::rt@127.0.0.1:4000")
                .unwrap()
                .instance_url,
            "http://127.0.0.1:4000"
        );
        assert_eq!(
            AuthUrl::parse("force://id::rt@localhost")
                .unwrap()
                .instance_url,
            "http://localhost"
        );
        assert_eq!(
            AuthUrl::parse("force://id::rt@::1").unwrap().instance_url,
            "http://[::1]"
        );
        assert_eq!(
            AuthUrl::parse("force://id::rt@[::1]:81")
                .unwrap()
                .instance_url,
            "http://[::1]:81"
        );
        assert_eq!(
            AuthUrl::parse("force://id::rt@acme.my.salesforce.com/whatever")
                .unwrap()
                .instance_url,
            "https://acme.my.salesforce.com"
        );
    }

    #[test]
    fn malformed_urls_are_usage_errors_that_do_not_echo_the_token() {
        for bad in [
            "",
            "https://id:s:rt@host",
            "force://id:s:rt",
            "force://:s:rt@host",
            "force://id:s:@host",
            "force://id:s@host",
            "force://id:s:rt@",
            "force://id:s:r t@host",
            "force://id:s:rt===@host",
            "force://id:s:SECRETTOKEN!@host",
        ] {
            let e = AuthUrl::parse(bad).unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{bad}");
            assert!(!e.to_string().contains("SECRETTOKEN"), "{e}");
        }
    }

    #[test]
    fn format_round_trips() {
        let u = "force://id:sec:rt.x@127.0.0.1:4000";
        let a = AuthUrl::parse(u).unwrap();
        assert_eq!(
            AuthUrl::format(
                &a.client_id,
                a.client_secret.as_ref(),
                &a.refresh_token,
                &a.instance_url
            )
            .expose(),
            u
        );
    }
}
