//! URL rules: `https://` only, except `http://` to a loopback address.
//!
//! A value without a scheme gets one by the same rule the SFDX auth URL uses:
//! loopback hosts (`127.0.0.0/8`, `::1`, `localhost`) are reached over `http://`,
//! every other host over `https://`. The result is the origin (no path, no slash).

use std::net::IpAddr;

use url::{Host, Url};

use crate::error::Error;

/// True for `localhost`, `127.0.0.0/8` and `::1`.
pub fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

/// Check a base URL given for `what` (e.g. "--instance-url") and return its origin,
/// e.g. `https://acme.my.salesforce.com` or `http://127.0.0.1:8080`.
pub fn base_url(input: &str, what: &str) -> Result<String, Error> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(Error::usage(format!(
            "{what} is empty; give a URL such as https://acme.my.salesforce.com"
        )));
    }
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_string()
    } else {
        let probe = Url::parse(&format!("http://{trimmed}"))
            .map_err(|e| bad(what, trimmed, &e.to_string()))?;
        let loopback = probe.host().is_some_and(|h| is_loopback(&h));
        format!("{}://{trimmed}", if loopback { "http" } else { "https" })
    };
    let url = Url::parse(&with_scheme).map_err(|e| bad(what, trimmed, &e.to_string()))?;
    let host = url
        .host()
        .ok_or_else(|| bad(what, trimmed, "it has no host"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&host) => {}
        "http" => {
            return Err(Error::usage(format!(
                "{what} `{}` uses http:// to a non-loopback host; sfx sends tokens only over https:// (http:// is allowed for 127.0.0.1, ::1 and localhost)",
                sanitize_for_message(trimmed)
            )));
        }
        other => {
            return Err(bad(
                what,
                trimmed,
                &format!("the scheme `{other}` is not https"),
            ));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            what,
            trimmed,
            "it must not carry a user name or password",
        ));
    }
    Ok(url.origin().ascii_serialization())
}

fn bad(what: &str, input: &str, why: &str) -> Error {
    Error::usage(format!(
        "{what} `{}` is not a valid URL: {why}; give a URL such as https://acme.my.salesforce.com",
        sanitize_for_message(input)
    ))
}

// Kept here too for callers written before it moved to [`crate::text`].
pub use crate::text::{is_unsafe_char, sanitize};

/// `host[:port]` of a URL, for messages (the input, sanitised, if it does not parse).
pub fn host_of(url: &str) -> String {
    Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
        })
        .unwrap_or_else(|| sanitize(url, 80))
}

fn sanitize_for_message(s: &str) -> String {
    sanitize(s, 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_and_loopback_http_are_accepted() {
        assert_eq!(
            base_url("https://acme.my.salesforce.com/", "x").unwrap(),
            "https://acme.my.salesforce.com"
        );
        assert_eq!(
            base_url("https://acme.my.salesforce.com/some/path", "x").unwrap(),
            "https://acme.my.salesforce.com"
        );
        assert_eq!(
            base_url("http://127.0.0.1:8080", "x").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            base_url("http://127.1.2.3", "x").unwrap(),
            "http://127.1.2.3"
        );
        assert_eq!(base_url("http://[::1]:99", "x").unwrap(), "http://[::1]:99");
        assert_eq!(
            base_url("http://localhost:1717", "x").unwrap(),
            "http://localhost:1717"
        );
    }

    #[test]
    fn scheme_is_added_by_the_loopback_rule() {
        assert_eq!(
            base_url("acme.my.salesforce.com", "x").unwrap(),
            "https://acme.my.salesforce.com"
        );
        assert_eq!(
            base_url("127.0.0.1:5000", "x").unwrap(),
            "http://127.0.0.1:5000"
        );
        assert_eq!(base_url("localhost", "x").unwrap(), "http://localhost");
    }

    #[test]
    fn plain_http_elsewhere_and_other_schemes_are_refused() {
        for bad in [
            "http://acme.my.salesforce.com",
            "http://10.0.0.1",
            "ftp://x.com",
            "https://",
            "",
            "https://u:p@x.com",
        ] {
            let e = base_url(bad, "--instance-url").unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{bad}: {e}");
        }
    }

    #[test]
    fn sanitize_strips_control_characters() {
        assert_eq!(sanitize("a\x1b[31mb\nc", 100), "a [31mb c");
        assert_eq!(sanitize("abcdef", 3), "abc…");
        assert_eq!(sanitize("a\u{9b}b\u{202E}c\u{7}", 100), "a b c ");
    }
}
