//! Secrets are sealed on the machine before they reach the shared store.
//!
//! AES-256-GCM (the `aes-gcm` crate) with the key from `SFX_STORE_KEY` (32 random
//! bytes, base64: `head -c32 /dev/urandom | base64`). Each write draws a fresh
//! 96-bit nonce from the OS. The associated data binds a value to its org and
//! its kind (`sfx-shared-v1\0<alias>\0<kind>`), so a ciphertext copied to another
//! org, or from the refresh-token field to the access-token field, fails to open.
//!
//! Stored form: `v1:` + base64(nonce ‖ ciphertext ‖ tag).
//!
//! **Where a secret may go is sealed with it** (`v2:`, issue #19). The org record
//! stays in clear, so anyone who can write to the Redis server could change the
//! URLs in it and have the next refresh post the refresh token elsewhere. A
//! secret is therefore sealed with a [`Binding`] as associated data: the store's
//! namespace, the alias, the kind, and every record field that decides where a
//! secret is sent or for whom (login URL, instance URL, client id, user name).
//! A record whose fields no longer match fails to open its secrets, so sfx
//! refuses it before anything is sent. Opening an access token checks where the
//! access token goes; opening a refresh token or client secret checks where they
//! go. `v1:` values (written before #19) open without that check until the first
//! write of their org converts them (see `docs/security.md`).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::Error;

/// The variable that holds the key.
pub const KEY_VAR: &str = "SFX_STORE_KEY";

const PREFIX: &str = "v1:";
const PREFIX_BOUND: &str = "v2:";
const NONCE_LEN: usize = 12;

/// The hint that says how to make a key.
pub fn key_hint() -> String {
    format!(
        "every machine that shares the store needs the same {KEY_VAR}: 32 random bytes in base64, made once with `head -c32 /dev/urandom | base64`"
    )
}

/// An AES-256-GCM key.
pub struct StoreKey(Aes256Gcm);

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKey(<redacted>)")
    }
}

impl StoreKey {
    /// The key in `SFX_STORE_KEY`; missing or malformed → exit 6 naming the variable.
    pub fn from_env(store: &str) -> Result<StoreKey, Error> {
        let value = std::env::var(KEY_VAR).unwrap_or_default();
        if value.trim().is_empty() {
            return Err(Error::StoreUnavailable {
                message: format!(
                    "{KEY_VAR} is not set, and the secrets in the shared store at {store} are encrypted with it"
                ),
                hint: Some(key_hint()),
                source: None,
            });
        }
        StoreKey::from_base64(&value)
    }

    pub fn from_base64(value: &str) -> Result<StoreKey, Error> {
        let bytes = STANDARD
            .decode(value.trim())
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| Error::StoreUnavailable {
                message: format!("{KEY_VAR} is not 32 bytes in base64"),
                hint: Some(key_hint()),
                source: None,
            })?;
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| Error::StoreUnavailable {
            message: format!("{KEY_VAR} is not a usable AES-256 key"),
            hint: Some(key_hint()),
            source: None,
        })?;
        Ok(StoreKey(cipher))
    }

    /// Seal `plain` for `alias`'s `kind` with a fresh nonce (the `v1:` form, kept
    /// for the store's key check).
    pub fn seal(&self, alias: &str, kind: &str, plain: &[u8]) -> Result<String, Error> {
        Ok(format!(
            "{PREFIX}{}",
            self.encrypt(&aad(alias, kind), plain)?
        ))
    }

    /// Open a `v1:` value; `None` when it is not ours to open (another key,
    /// another org or kind, or altered).
    pub fn open(&self, alias: &str, kind: &str, stored: &[u8]) -> Option<Vec<u8>> {
        let text = std::str::from_utf8(stored).ok()?;
        self.decrypt(&aad(alias, kind), text.strip_prefix(PREFIX)?)
    }
}

/// What a sealed secret authenticates besides itself: the record fields that
/// decide where it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub namespace: String,
    pub alias: String,
    pub login_url: Option<String>,
    pub instance_url: String,
    pub client_id: Option<String>,
    pub username: Option<String>,
}

impl Binding {
    pub fn of(namespace: &str, rec: &crate::store::metadata::OrgRecord) -> Binding {
        Binding {
            namespace: namespace.to_string(),
            alias: rec.alias.clone(),
            login_url: rec.login_url.clone(),
            instance_url: rec.instance_url.clone(),
            client_id: rec.client_id.clone(),
            username: rec.username.clone(),
        }
    }

    /// `sfx-shared-v2\0` + a JSON array: one unambiguous encoding.
    fn aad(&self, kind: &str) -> Vec<u8> {
        let fields = serde_json::json!([
            self.namespace,
            self.alias,
            kind,
            self.login_url,
            self.instance_url,
            self.client_id,
            self.username,
        ]);
        let mut out = b"sfx-shared-v2\0".to_vec();
        out.extend_from_slice(fields.to_string().as_bytes());
        out
    }
}

/// How a stored value opened.
#[derive(Debug, PartialEq, Eq)]
pub enum Form {
    /// Sealed with its binding (`v2:`).
    Bound,
    /// Sealed before bindings existed (`v1:`): nothing but the alias and kind checked.
    Legacy,
}

impl StoreKey {
    /// Seal a secret of `kind` bound to where it may go.
    pub fn seal_bound(&self, b: &Binding, kind: &str, plain: &[u8]) -> Result<String, Error> {
        let sealed = self.encrypt(&b.aad(kind), plain)?;
        Ok(format!("{PREFIX_BOUND}{sealed}"))
    }

    /// Open a stored secret against the record it was read with: a `v2:` value
    /// only if the record's fields are those it was sealed with; a `v1:` value
    /// (older sfx) by alias and kind alone.
    pub fn open_bound(&self, b: &Binding, kind: &str, stored: &[u8]) -> Option<(Vec<u8>, Form)> {
        let text = std::str::from_utf8(stored).ok()?;
        if let Some(rest) = text.strip_prefix(PREFIX_BOUND) {
            return self.decrypt(&b.aad(kind), rest).map(|p| (p, Form::Bound));
        }
        self.open(&b.alias, kind, stored).map(|p| (p, Form::Legacy))
    }

    fn encrypt(&self, aad: &[u8], plain: &[u8]) -> Result<String, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| {
            Error::Other(format!(
                "cannot draw random bytes for encryption from the OS: {e}"
            ))
        })?;
        let sealed = self
            .0
            .encrypt(&Nonce::from(nonce), Payload { msg: plain, aad })
            .map_err(|_| Error::Other("AES-GCM encryption failed".into()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(STANDARD.encode(out))
    }

    fn decrypt(&self, aad: &[u8], b64: &str) -> Option<Vec<u8>> {
        let raw = STANDARD.decode(b64).ok()?;
        if raw.len() < NONCE_LEN + 16 {
            return None;
        }
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        self.0
            .decrypt(&Nonce::from(nonce), Payload { msg: body, aad })
            .ok()
    }
}

fn aad(alias: &str, kind: &str) -> Vec<u8> {
    format!("sfx-shared-v1\0{alias}\0{kind}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> StoreKey {
        StoreKey::from_base64(&STANDARD.encode([b; 32])).unwrap()
    }

    #[test]
    fn round_trip_with_a_fresh_nonce_each_time() {
        let k = key(7);
        let a = k.seal("prod", "refresh-token", b"5Aep861-secret").unwrap();
        let b = k.seal("prod", "refresh-token", b"5Aep861-secret").unwrap();
        assert_ne!(
            a, b,
            "the same secret sealed twice must differ (fresh nonce)"
        );
        assert!(!a.contains("5Aep861"));
        assert_eq!(
            k.open("prod", "refresh-token", a.as_bytes()).unwrap(),
            b"5Aep861-secret"
        );
    }

    #[test]
    fn a_ciphertext_cannot_move_to_another_org_kind_or_key() {
        let k = key(7);
        let s = k.seal("prod", "refresh-token", b"x").unwrap();
        assert!(k.open("dev", "refresh-token", s.as_bytes()).is_none());
        assert!(k.open("prod", "access-token", s.as_bytes()).is_none());
        assert!(key(8).open("prod", "refresh-token", s.as_bytes()).is_none());
        let mut altered = s.clone().into_bytes();
        let last = altered.len() - 3;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert!(k.open("prod", "refresh-token", &altered).is_none());
        for junk in [&b""[..], b"v1:", b"v1:!!!", b"v2:AAAA", b"\xff"] {
            assert!(k.open("prod", "refresh-token", junk).is_none());
        }
    }

    fn binding(login: Option<&str>, instance: &str) -> Binding {
        Binding {
            namespace: "sfx".into(),
            alias: "prod".into(),
            login_url: login.map(str::to_string),
            instance_url: instance.into(),
            client_id: Some("3MVG9".into()),
            username: Some("u@example.com".into()),
        }
    }

    #[test]
    fn a_bound_secret_opens_only_with_the_fields_it_was_sealed_with() {
        let k = key(7);
        let b = binding(
            Some("https://login.salesforce.com"),
            "https://a.my.salesforce.com",
        );
        let s = k.seal_bound(&b, "refresh-token", b"5Aep").unwrap();
        assert!(s.starts_with("v2:"));
        assert_eq!(
            k.open_bound(&b, "refresh-token", s.as_bytes()),
            Some((b"5Aep".to_vec(), Form::Bound))
        );
        let mut changed = vec![
            binding(Some("https://evil.example"), "https://a.my.salesforce.com"),
            binding(None, "https://a.my.salesforce.com"),
            binding(Some("https://login.salesforce.com"), "https://evil.example"),
        ];
        let mut c = b.clone();
        c.client_id = Some("3MVG9evil".into());
        changed.push(c);
        let mut c = b.clone();
        c.username = Some("other@example.com".into());
        changed.push(c);
        let mut c = b.clone();
        c.namespace = "other".into();
        changed.push(c);
        for c in &changed {
            assert!(
                k.open_bound(c, "refresh-token", s.as_bytes()).is_none(),
                "{c:?}"
            );
        }
        assert!(k.open_bound(&b, "access-token", s.as_bytes()).is_none());
        // A value written before bindings opens by alias and kind, and says so.
        let old = k.seal("prod", "refresh-token", b"5Aep").unwrap();
        assert_eq!(
            k.open_bound(&changed[0], "refresh-token", old.as_bytes()),
            Some((b"5Aep".to_vec(), Form::Legacy))
        );
    }

    #[test]
    fn malformed_keys_are_store_errors_naming_the_variable() {
        for bad in [
            "",
            "abc",
            &STANDARD.encode([1u8; 31]),
            &STANDARD.encode([1u8; 33]),
        ] {
            let e = StoreKey::from_base64(bad).unwrap_err();
            assert!(matches!(e, Error::StoreUnavailable { .. }));
            assert!(e.to_string().contains(KEY_VAR), "{e}");
        }
    }
}
