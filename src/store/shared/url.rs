//! `--store <URL>` / `SFX_STORE`: which store, checked before any work.
//!
//! `redis://[user:password@]host[:port][/db]` or `rediss://…` (TLS), a Redis or
//! Valkey server; unset, empty or `local`: the local store. A malformed URL is a
//! usage error (exit 2) whose message never repeats the URL (it may hold a
//! password). [`StoreUrl::display`] is the only form that reaches output: scheme,
//! user, host, port and db, never the password.

use crate::error::Error;
use crate::secret::Secret;

/// The default Redis port.
pub const DEFAULT_PORT: u16 = 6379;

/// Which store the run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// The local store (metadata file + keychain or secrets file).
    Local,
    /// A shared Redis/Valkey store.
    Shared(StoreUrl),
}

/// A checked shared-store URL.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub db: u32,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

impl StoreUrl {
    /// The store as shown to people: `rediss://ci@redis.internal:6380/2`, never the
    /// password.
    pub fn display(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let user = self
            .username
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let db = if self.db == 0 {
            String::new()
        } else {
            format!("/{}", self.db)
        };
        format!("{scheme}://{user}{host}:{}{db}", self.port)
    }

    /// `host:port`, for short messages.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Parse `--store` / `SFX_STORE`. `what` names where the value came from.
pub fn parse(value: Option<&str>, what: &str) -> Result<StoreChoice, Error> {
    let Some(raw) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(StoreChoice::Local);
    };
    if raw == "local" {
        return Ok(StoreChoice::Local);
    }
    // Never echo the value: it may carry a password.
    let bad = |why: &str| {
        Error::usage(format!(
            "{what} is not a usable store: {why}. It takes `local`, or redis://[USER:PASSWORD@]HOST[:PORT][/DB] (rediss:// for TLS)"
        ))
    };
    if raw.len() > 2048 {
        return Err(bad("it is longer than 2048 characters"));
    }
    if raw.chars().any(|c| c.is_control() || c == ' ') {
        return Err(bad("it contains spaces or control characters"));
    }
    let parsed = url::Url::parse(raw).map_err(|e| bad(&format!("it is not a URL ({e})")))?;
    let tls = match parsed.scheme() {
        "redis" => false,
        "rediss" => true,
        "unix" | "redis+unix" => {
            return Err(bad(
                "Unix sockets are not supported; use redis:// or rediss://",
            ));
        }
        _ => return Err(bad("the scheme must be redis:// or rediss://")),
    };
    let host = match parsed.host() {
        Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => a.to_string(),
        _ => return Err(bad("it names no host")),
    };
    let port = parsed.port().unwrap_or(DEFAULT_PORT);
    if port == 0 {
        return Err(bad("port 0 is not a port"));
    }
    let db = match parsed.path().trim_start_matches('/') {
        "" => 0,
        p => p
            .parse::<u32>()
            .ok()
            .filter(|_| !p.starts_with('+'))
            .ok_or_else(|| bad("the path must be a database number, like /0 or /2"))?,
    };
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("it must have no ?query or #fragment"));
    }
    let decode = |s: &str, part: &str| -> Result<String, Error> {
        percent_decode(s)
            .ok_or_else(|| bad(&format!("its {part} is not valid percent-encoded UTF-8")))
    };
    let username = match parsed.username() {
        "" => None,
        u => Some(decode(u, "user name")?),
    };
    let password = parsed
        .password()
        .map(|p| decode(p, "password"))
        .transpose()?
        .filter(|p| !p.is_empty())
        .map(Secret::new);
    if username.is_some() && password.is_none() {
        return Err(bad(
            "it names a user but no password (redis://USER:PASSWORD@HOST)",
        ));
    }
    Ok(StoreChoice::Shared(StoreUrl {
        tls,
        host,
        port,
        db,
        username,
        password,
    }))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Remove the password from a message, in case a library or server ever echoes
/// it: as typed, percent-encoded (as in a URL) and lower/upper-case encoded. A
/// password so short that replacing it would leave the message meaningless (or
/// could match by chance) withholds the whole detail instead.
pub(super) fn scrub(msg: &str, url: &StoreUrl) -> String {
    let mut m = msg.to_string();
    if let Some(p) = &url.password {
        let raw = p.expose();
        let encoded: String = ::url::form_urlencoded::byte_serialize(raw.as_bytes()).collect();
        let strict: String = raw
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let forms = [
            raw.to_string(),
            encoded,
            strict.clone(),
            strict.to_ascii_lowercase(),
        ];
        for f in forms.iter().filter(|f| !f.is_empty()) {
            if f.chars().count() < 4 {
                if m.contains(f.as_str()) {
                    return "(details withheld: they could contain the store's password)".into();
                }
            } else {
                m = m.replace(f.as_str(), "<redacted>");
            }
        }
    }
    crate::text::sanitize(&m, 300)
}

#[cfg(test)]
mod scrub_tests {
    use super::*;
    use crate::secret::Secret;

    fn url(pw: &str) -> StoreUrl {
        StoreUrl {
            tls: false,
            host: "h".into(),
            port: 1,
            db: 0,
            username: None,
            password: Some(Secret::new(pw)),
        }
    }

    #[test]
    fn the_password_never_survives_in_any_form() {
        for (pw, msg) in [
            ("ab", "auth failed for ab"),
            ("x", "x"),
            ("p@ss w0rd/\u{e9}", "bad p@ss w0rd/\u{e9} here"),
            (
                "p@ss w0rd/\u{e9}",
                "bad redis://:p%40ss%20w0rd%2F%C3%A9@h here",
            ),
            (
                "p@ss w0rd/\u{e9}",
                "bad redis://:p%40ss+w0rd%2F%C3%A9@h here",
            ),
            ("p@ss w0rd/\u{e9}", "bad p%40ss%20w0rd%2f%c3%a9 here"),
        ] {
            let out = scrub(msg, &url(pw));
            let u = url(pw);
            let raw = u.password.as_ref().unwrap().expose();
            assert!(!out.contains(raw), "{pw:?}: {out}");
            assert!(!out.contains("p%40ss"), "{pw:?}: {out}");
            assert!(
                !out.to_ascii_lowercase().contains("p%40ss%20w0rd"),
                "{pw:?}: {out}"
            );
        }
        assert_eq!(
            scrub("no secret here", &url("longpassword")),
            "no secret here"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(s: &str) -> StoreUrl {
        match parse(Some(s), "--store").unwrap() {
            StoreChoice::Shared(u) => u,
            StoreChoice::Local => panic!("{s} parsed as local"),
        }
    }

    #[test]
    fn unset_empty_and_local_mean_the_local_store() {
        for v in [None, Some(""), Some("  "), Some("local")] {
            assert_eq!(parse(v, "SFX_STORE").unwrap(), StoreChoice::Local, "{v:?}");
        }
    }

    #[test]
    fn user_password_port_and_db_are_read_and_the_password_never_shown() {
        let u = shared("rediss://ci:p%40ss%3Aword@redis.example.com:6380/3");
        assert!(u.tls);
        assert_eq!(
            (u.host.as_str(), u.port, u.db),
            ("redis.example.com", 6380, 3)
        );
        assert_eq!(u.username.as_deref(), Some("ci"));
        assert_eq!(u.password.as_ref().unwrap().expose(), "p@ss:word");
        assert_eq!(u.display(), "rediss://ci@redis.example.com:6380/3");
        assert!(!format!("{u:?}").contains("p@ss"));
        let plain = shared("redis://:secret@127.0.0.1");
        assert_eq!(
            (plain.port, plain.db, plain.username.as_deref()),
            (6379, 0, None)
        );
        assert_eq!(plain.display(), "redis://127.0.0.1:6379");
        assert_eq!(shared("redis://[::1]:7000/").addr(), "[::1]:7000");
    }

    #[test]
    fn malformed_urls_are_usage_errors_that_do_not_repeat_the_url() {
        for bad in [
            "http://h",
            "redis://",
            "redis:///0",
            "redis://h/x",
            "redis://h/-1",
            "redis://h:0",
            "redis://h:99999",
            "redis://h/0?protocol=resp3",
            "redis://user@h",
            "redis://:s3cr%ZZet@h",
            "unix:///tmp/redis.sock",
            "redis://h /0",
            "s3cr3t-not-a-url",
        ] {
            let e = parse(Some(bad), "SFX_STORE").unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{bad}: {e:?}");
            let msg = e.to_string();
            assert!(msg.starts_with("SFX_STORE is not a usable store"), "{msg}");
            assert!(!msg.contains("s3cr"), "{bad}: {msg}");
        }
    }
}
