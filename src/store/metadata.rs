//! The org metadata file: everything about stored orgs except secrets.
//!
//! One JSON file, `orgs.json`, under the sfx home (`$SFX_HOME`, else the XDG-style
//! config dir `~/.config/sfx`). It holds alias, username, ids, URLs, client id,
//! flow, `issued_at`, the last known expiry and its source, the masked access
//! token, which store holds the secrets, and the default mark — enough for
//! `sfx orgs` and `sfx expires --offline` to answer without opening the keychain.
//! Reads need no lock (writes are atomic renames); read-modify-write cycles hold
//! `orgs.lock` so two processes never lose each other's updates.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::Error;

pub const FILE_NAME: &str = "orgs.json";

/// The name the environment org goes by in output.
pub const ENV_ORG: &str = "env";

/// Aliases name files (locks) and keychain entries: keep them plain.
pub fn check_alias(alias: &str, what: &str) -> Result<(), Error> {
    let ok = !alias.is_empty()
        && alias.len() <= 100
        && alias != ENV_ORG
        && alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+'));
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "{what} `{}` is not a valid alias: use 1–100 letters, digits and . _ - @ + (and not `env`)",
            crate::text::sanitize(alias, 100)
        )))
    }
}

/// How the org was logged in; decides how it can be refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    AuthUrl,
    RefreshToken,
    AccessToken,
    Web,
    Device,
    Jwt,
    ClientCredentials,
    Password,
    /// Taken from the Salesforce CLI's files (`login --from-sf`).
    Sf,
}

impl Flow {
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::AuthUrl => "auth_url",
            Flow::RefreshToken => "refresh_token",
            Flow::AccessToken => "access_token",
            Flow::Web => "web",
            Flow::Device => "device",
            Flow::Jwt => "jwt",
            Flow::ClientCredentials => "client_credentials",
            Flow::Password => "password",
            Flow::Sf => "sf",
        }
    }
}

/// Where an org's secrets live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    Keychain,
    File,
    Env,
    /// A shared Redis/Valkey store (`--store redis://…`, issue #13).
    Shared,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Keychain => "keychain",
            StoreKind::File => "file",
            StoreKind::Env => "env",
            StoreKind::Shared => "shared",
        }
    }
}

/// An expiry learned exactly (not estimated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownExpiry {
    /// Unix seconds.
    pub exp: i64,
    /// Unix seconds of `iat`, when known.
    #[serde(default)]
    pub iat: Option<i64>,
    /// `jwt` or `introspection`.
    pub source: ExactSource,
    /// When it was learned (Unix seconds).
    pub checked_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExactSource {
    Jwt,
    Introspection,
}

fn default_timeout() -> u64 {
    7200
}

/// One stored org.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrgRecord {
    pub alias: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub org_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    pub instance_url: String,
    #[serde(default)]
    pub login_url: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    pub flow: Flow,
    pub store: StoreKind,
    /// Unix seconds of the current access token's `issued_at`.
    #[serde(default)]
    pub issued_at: Option<i64>,
    #[serde(default = "default_timeout")]
    pub session_timeout_secs: u64,
    /// The last exact expiry learned (JWT `exp` or introspection).
    #[serde(default)]
    pub expiry: Option<KnownExpiry>,
    #[serde(default)]
    pub access_token_masked: Option<String>,
    #[serde(default)]
    pub has_refresh_token: bool,
    #[serde(default)]
    pub has_client_secret: bool,
    /// Unix seconds of the last use of the refresh token (for `watch --keepalive`).
    #[serde(default)]
    pub refresh_token_used_at: Option<i64>,
    /// Salesforce rotated this org's refresh token at least once.
    #[serde(default)]
    pub rotates_refresh_token: bool,
    /// JWT bearer: path of the private key file (the key itself is never copied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// The org's latest REST API version (`62.0`), learned once from
    /// `/services/data` by `sfx api` for `{version}` in a path. Optional: files
    /// written before it existed read the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Linked to a login of the Salesforce CLI (see `sfcli::link`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sf_link: Option<SfLink>,
}

/// A REST API version as Salesforce writes it: `62.0` (digits, a dot, digits).
pub fn is_api_version(v: &str) -> bool {
    v.len() <= 12
        && v.split_once('.').is_some_and(|(major, minor)| {
            !major.is_empty()
                && !minor.is_empty()
                && major.bytes().all(|b| b.is_ascii_digit())
                && minor.bytes().all(|b| b.is_ascii_digit())
        })
}

/// An org shared with the Salesforce CLI: sf's auth file, and a fingerprint of
/// the refresh token that file held when sfx last read or wrote it (never the
/// token): a different one there means sf rotated it since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SfLink {
    /// Absolute path of sf's `<username>.json`.
    pub file: String,
    /// The username the file must name.
    pub username: String,
    /// The first 16 hex digits of the SHA-256 of that refresh token.
    pub refresh_token_fingerprint: String,
}

/// The longest session timeout a record may carry (Salesforce's maximum is 24 h).
pub const MAX_SESSION_TIMEOUT_SECS: u64 = 366 * 86_400;

impl OrgRecord {
    /// Check a record read from the file (which a person may have edited): the
    /// alias is a plain name matching its key, URLs obey the transport rule
    /// (`https://`, `http://` only to loopback) and are reduced to their origin,
    /// numbers are in range, and display text carries no control characters.
    pub(crate) fn check(&mut self, key: &str) -> Result<(), String> {
        use crate::salesforce::url::base_url;
        use crate::text::sanitize;
        let name = sanitize(key, 60);
        if key != self.alias {
            return Err(format!(
                "entry `{name}` has alias `{}`",
                sanitize(&self.alias, 60)
            ));
        }
        check_alias(key, "the alias").map_err(|_| {
            format!("entry `{name}` is not a valid alias (letters, digits and . _ - @ + only)")
        })?;
        let url_problem = |field: &str, e: crate::error::Error| {
            format!("entry `{name}` has an unusable {field}: {e}")
        };
        self.instance_url = base_url(&self.instance_url, "instance_url")
            .map_err(|e| url_problem("instance_url", e))?;
        if let Some(l) = &self.login_url {
            self.login_url =
                Some(base_url(l, "login_url").map_err(|e| url_problem("login_url", e))?);
        }
        if self.session_timeout_secs == 0 || self.session_timeout_secs > MAX_SESSION_TIMEOUT_SECS {
            return Err(format!(
                "entry `{name}` has session_timeout_secs {} (it must be between 1 and {MAX_SESSION_TIMEOUT_SECS})",
                self.session_timeout_secs
            ));
        }
        if let Some(id) = &self.client_id
            && (id.is_empty() || id.chars().any(char::is_control))
        {
            return Err(format!(
                "entry `{name}` has an empty client_id or one with control characters"
            ));
        }
        for text in [&mut self.username, &mut self.org_id, &mut self.user_id] {
            if let Some(t) = text.as_mut()
                && t.chars().any(crate::text::is_unsafe_char)
            {
                *t = sanitize(t, 200);
            }
        }
        if self
            .api_version
            .as_deref()
            .is_some_and(|v| !is_api_version(v))
        {
            // Only a cache: a damaged one is asked again rather than refused.
            self.api_version = None;
        }
        if let Some(link) = &self.sf_link {
            let path_ok = std::path::Path::new(&link.file).is_absolute()
                && link.file.ends_with(".json")
                && !link.file.chars().any(char::is_control);
            let fp_ok = link.refresh_token_fingerprint.len() == 16
                && link
                    .refresh_token_fingerprint
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit());
            if !path_ok || !fp_ok || link.username.chars().any(char::is_control) {
                return Err(format!(
                    "entry `{name}` has an sf_link sfx did not write (an absolute path to a .json file, a username, a 16-hex-digit fingerprint)"
                ));
            }
        }
        if let Some(m) = &self.access_token_masked
            && m.chars().count() > 20
        {
            // Only a masked form belongs here, never a token.
            return Err(format!(
                "entry `{name}` has an access_token_masked that is not masked"
            ));
        }
        Ok(())
    }
}

impl OrgRecord {
    /// A record with what every org has — its alias, instance, how it logged
    /// in and where its secrets are — and nothing else yet: no username or
    /// ids, no token (nor its issue time or expiry), no refresh token or
    /// client secret, the default session timeout (2 h). Set the rest on it.
    pub fn new(
        alias: impl Into<String>,
        instance_url: impl Into<String>,
        flow: Flow,
        store: StoreKind,
    ) -> OrgRecord {
        OrgRecord {
            alias: alias.into(),
            username: None,
            org_id: None,
            user_id: None,
            instance_url: instance_url.into(),
            login_url: None,
            client_id: None,
            flow,
            store,
            issued_at: None,
            session_timeout_secs: default_timeout(),
            expiry: None,
            access_token_masked: None,
            has_refresh_token: false,
            has_client_secret: false,
            refresh_token_used_at: None,
            rotates_refresh_token: false,
            key_file: None,
            api_version: None,
            sf_link: None,
        }
    }

    /// Whether [`Metadata::parse`] would accept this record: sfx never writes a
    /// record it would refuse to read back (issue #11).
    pub fn readable(&self) -> Result<(), String> {
        self.clone().check(&self.alias)
    }
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub version: u32,
    #[serde(default)]
    pub default: Option<String>,
    /// Each record behind an `Arc`: a change copies the map, not every record,
    /// and the parse and its journal's view share the records they have in
    /// common (issue #23: 10,000 orgs).
    #[serde(default)]
    pub orgs: BTreeMap<String, Arc<OrgRecord>>,
}

impl Metadata {
    /// Read the file; a missing file is an empty store, a broken one a clear error.
    pub fn read(path: &Path) -> Result<Metadata, Error> {
        let bytes = match crate::limits::read_capped(path, crate::limits::STORE_FILE_MAX) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Metadata::default()),
            Err(e) => return Err(Metadata::unreadable(path, e)),
        };
        Metadata::parse(&bytes).map_err(|why| Metadata::damaged(path, &why))
    }

    /// The error for a metadata file that cannot be read.
    pub fn unreadable(path: &Path, e: std::io::Error) -> Error {
        Error::io(
            format!("cannot read the org metadata file {}", path.display()),
            e,
        )
    }

    /// The error for a metadata file that does not parse.
    pub fn damaged(path: &Path, why: &str) -> Error {
        Error::Other(format!(
            "the org metadata file {} is damaged ({why}); fix it by hand, or move it away and log in again",
            path.display()
        ))
    }

    /// Parse file contents (no panics on any input; used by the fuzz target too).
    pub fn parse(bytes: &[u8]) -> Result<Metadata, String> {
        // Straight into the records, with no `serde_json::Value` tree in between:
        // for 10,000 orgs that tree was tens of MB (issue #16). A derived struct
        // would take an array too, so the top level is checked first.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|e| e.to_string())?;
            return Err("it is not a JSON object".into());
        }
        let mut meta: Metadata = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        for (key, rec) in meta.orgs.iter_mut() {
            // Just parsed: not shared, so changed in place.
            Arc::make_mut(rec).check(key)?;
        }
        Ok(meta)
    }

    /// The file's bytes, read back before they are returned: a record that
    /// [`Metadata::parse`] would refuse is never written.
    pub fn to_checked_bytes(&self) -> Result<Vec<u8>, String> {
        let bytes = self.to_bytes();
        Metadata::parse(&bytes).map(|_| bytes)
    }

    /// [`Metadata::to_checked_bytes`] for a change to `before` (a parse of the
    /// file, so its records already read back): only the records that differ
    /// are checked, not the whole file parsed again — a watch over 10,000 orgs
    /// writes every 30 s (issue #16). Write the result with [`Metadata::write_to`].
    pub fn check_since(&self, before: &Metadata) -> Result<(), String> {
        for (key, rec) in &self.orgs {
            if before.orgs.get(key) != Some(rec) {
                OrgRecord::clone(rec).check(key)?;
            }
        }
        Ok(())
    }

    /// Stream the file's bytes (as [`Metadata::to_bytes`]) to `w`; refused
    /// before the end when they grow past what sfx reads back.
    pub fn write_to(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        struct Capped<'a>(&'a mut dyn std::io::Write, u64);
        impl std::io::Write for Capped<'_> {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.1 += buf.len() as u64;
                if self.1 > crate::limits::STORE_FILE_MAX {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "the file would be larger than sfx reads back",
                    ));
                }
                self.0.write(buf)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                self.0.flush()
            }
        }
        let mut capped = Capped(w, 0);
        serde_json::to_writer_pretty(&mut capped, self)?;
        std::io::Write::write_all(&mut capped, b"\n")
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Find an org by alias, then by username.
    pub fn find(&self, name: &str) -> Option<&OrgRecord> {
        self.orgs.get(name).map(Arc::as_ref).or_else(|| {
            self.orgs
                .values()
                .map(Arc::as_ref)
                .find(|o| o.username.as_deref() == Some(name))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [&b""[..], b"{", b"[]", b"{\"orgs\":{\"a\":{}}}", b"\xff\xfe", b"{\"orgs\":{\"a\":{\"alias\":\"b\",\"instance_url\":\"x\",\"flow\":\"web\",\"store\":\"file\"}}}"] {
            assert!(Metadata::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Metadata::parse(b"{}").is_ok());
    }

    #[test]
    fn a_record_that_would_not_read_back_is_not_written() {
        let mut meta: Metadata = Metadata::parse(
            br#"{"orgs":{"a":{"alias":"a","instance_url":"https://a.my.salesforce.com","flow":"web","store":"file"}}}"#,
        )
        .unwrap();
        assert!(meta.to_checked_bytes().is_ok());
        let rec = Arc::make_mut(meta.orgs.get_mut("a").unwrap());
        rec.session_timeout_secs = 400 * 86_400;
        assert!(rec.readable().is_err());
        let why = meta.to_checked_bytes().unwrap_err();
        assert!(why.contains("session_timeout_secs"), "{why}");
        let before = Metadata::parse(
            br#"{"orgs":{"a":{"alias":"a","instance_url":"https://a.my.salesforce.com","flow":"web","store":"file"}}}"#,
        )
        .unwrap();
        let why = meta.check_since(&before).unwrap_err();
        assert!(why.contains("session_timeout_secs"), "{why}");
        // A new entry under a key that is not its alias is refused too.
        let mut meta = before.clone();
        let mut b = OrgRecord::clone(&meta.orgs["a"]);
        b.alias = "c".into();
        meta.orgs.insert("b".into(), Arc::new(b));
        assert!(meta.check_since(&before).is_err());
        assert!(before.check_since(&before).is_ok());
        let mut streamed = Vec::new();
        before.write_to(&mut streamed).unwrap();
        assert_eq!(streamed, before.to_bytes());
    }
}
