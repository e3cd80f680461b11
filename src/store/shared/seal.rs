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
//!
//! **Readers and refreshers** (`v3:`, issue #20). `SFX_STORE_KEY` holds a
//! refresher key R (32 bytes, base64, as before) or a reader key
//! (`sfxr1:` + base64 of HKDF-SHA256(R, "sfx reader key v1")). From the reader
//! key's bytes both kinds derive the ACCESS key (HKDF, "sfx access v1"), which
//! seals access tokens; only R yields the REFRESH key ("sfx refresh v1"), which
//! seals refresh tokens and client secrets. HKDF is one way: the reader key gives
//! away neither R nor the REFRESH key. A `v3:` value is sealed with the derived
//! key of its kind and the binding; `v1:`/`v2:` values (earlier sfx) were sealed
//! with R itself and open only for a refresher, whose first write converts them.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::Error;

/// The variable that holds the key.
pub const KEY_VAR: &str = "SFX_STORE_KEY";

const PREFIX: &str = "v1:";
const PREFIX_BOUND: &str = "v2:";
const PREFIX_DERIVED: &str = "v3:";
/// The prefix that marks a reader key.
pub const READER_PREFIX: &str = "sfxr1:";
const NONCE_LEN: usize = 12;

/// The hint that says how to make a key.
pub fn key_hint() -> String {
    format!(
        "every machine that shares the store needs the same {KEY_VAR}: 32 random bytes in base64, made once with `head -c32 /dev/urandom | base64`"
    )
}

/// An AES-256-GCM key.
pub struct StoreKey(Aes256Gcm);

/// Which kind of key `SFX_STORE_KEY` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Opens everything; may refresh.
    Refresher,
    /// Opens metadata checks and access tokens only.
    Reader,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Refresher => "refresher",
            KeyKind::Reader => "reader",
        }
    }
}

/// The keys one `SFX_STORE_KEY` yields.
pub struct Keys {
    pub kind: KeyKind,
    /// R itself (refresher only): the store's key check and values of earlier sfx.
    pub root: Option<StoreKey>,
    /// Seals access tokens and the reader check.
    pub access: StoreKey,
    /// Seals refresh tokens and client secrets (refresher only).
    pub refresh: Option<StoreKey>,
    /// The reader key, as `sfx store reader-key` prints it.
    pub reader_key: String,
    /// A public name of the key (one way from the reader key): written with an
    /// org's secrets, so a writer with another key never mixes its seals in.
    pub id: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({}, <redacted>)", self.kind.as_str())
    }
}

fn hkdf32(ikm: &[u8], label: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's limit of 255 × 32: expand cannot fail.
    let _ = hkdf::Hkdf::<sha2::Sha256>::new(None, ikm).expand(label.as_bytes(), &mut out);
    out
}

fn malformed(what: &str) -> Error {
    Error::StoreUnavailable {
        message: format!("{KEY_VAR} is not {what}"),
        hint: Some(key_hint()),
        source: None,
    }
}

impl Keys {
    /// The keys in `SFX_STORE_KEY`; missing or malformed → exit 6 naming the variable.
    pub fn from_env(store: &str) -> Result<Keys, Error> {
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
        Keys::from_text(&value)
    }

    /// A refresher key (32 bytes, base64) or a reader key (`sfxr1:` + base64).
    pub fn from_text(value: &str) -> Result<Keys, Error> {
        let value = value.trim();
        if let Some(rest) = value.strip_prefix(READER_PREFIX) {
            let bytes = STANDARD
                .decode(rest)
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or_else(|| malformed("a reader key (sfxr1: and 32 bytes in base64)"))?;
            return Keys::derive(KeyKind::Reader, None, &bytes);
        }
        let root = STANDARD
            .decode(value)
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| malformed("32 bytes in base64"))?;
        let reader = hkdf32(&root, "sfx reader key v1");
        Keys::derive(KeyKind::Refresher, Some(&root), &reader)
    }

    fn derive(kind: KeyKind, root: Option<&[u8]>, reader: &[u8]) -> Result<Keys, Error> {
        let access = StoreKey::from_bytes(&hkdf32(reader, "sfx access v1"))?;
        let id: String = hkdf32(reader, "sfx key id v1")[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let (root_key, refresh) = match root {
            Some(r) => (
                Some(StoreKey::from_bytes(r)?),
                Some(StoreKey::from_bytes(&hkdf32(r, "sfx refresh v1"))?),
            ),
            None => (None, None),
        };
        Ok(Keys {
            kind,
            root: root_key,
            access,
            refresh,
            reader_key: format!("{READER_PREFIX}{}", STANDARD.encode(reader)),
            id,
        })
    }

    /// The key that seals `kind` (`None`: this key may not hold it).
    fn for_kind(&self, kind: &str) -> Option<&StoreKey> {
        if kind == "access-token" {
            Some(&self.access)
        } else {
            self.refresh.as_ref()
        }
    }

    /// Seal a secret of `kind` bound to where it may go, with the derived key of
    /// its kind (`v3:`).
    pub fn seal_bound(&self, b: &Binding, kind: &str, plain: &[u8]) -> Result<String, Error> {
        let key = self.for_kind(kind).ok_or_else(|| {
            Error::usage(format!(
                "a reader key cannot seal the {} (only the refresher key can)",
                kind.replace('-', " ")
            ))
        })?;
        let sealed = key.encrypt(&b.aad_v3(kind), plain)?;
        Ok(format!("{PREFIX_DERIVED}{sealed}"))
    }

    /// Open a stored secret: `v3:` with the derived key of its kind and the
    /// binding; `v1:`/`v2:` (earlier sfx) with R, for a refresher only.
    pub fn open_bound(&self, b: &Binding, kind: &str, stored: &[u8]) -> Option<(Vec<u8>, Form)> {
        let text = std::str::from_utf8(stored).ok()?;
        if let Some(rest) = text.strip_prefix(PREFIX_DERIVED) {
            return self
                .for_kind(kind)?
                .decrypt(&b.aad_v3(kind), rest)
                .map(|p| (p, Form::Derived));
        }
        self.root.as_ref()?.open_bound(b, kind, stored)
    }

    /// Whether a stored value is in the form this version writes.
    pub fn is_current(stored: &[u8]) -> bool {
        stored.starts_with(PREFIX_DERIVED.as_bytes())
    }
}

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKey(<redacted>)")
    }
}

impl StoreKey {
    pub fn from_base64(value: &str) -> Result<StoreKey, Error> {
        let bytes = STANDARD
            .decode(value.trim())
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| malformed("32 bytes in base64"))?;
        StoreKey::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Result<StoreKey, Error> {
        let cipher = Aes256Gcm::new_from_slice(bytes).map_err(|_| Error::StoreUnavailable {
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

    fn aad_v3(&self, kind: &str) -> Vec<u8> {
        let mut out = b"sfx-shared-v3".to_vec();
        out.extend_from_slice(&self.aad(kind)[b"sfx-shared-v2".len()..]);
        out
    }
}

/// How a stored value opened.
#[derive(Debug, PartialEq, Eq)]
pub enum Form {
    /// Sealed with the derived key of its kind and its binding (`v3:`).
    Derived,
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
    fn a_reader_key_is_derived_one_way_and_opens_access_tokens_only() {
        let r = STANDARD.encode([7u8; 32]);
        let refresher = Keys::from_text(&r).unwrap();
        assert_eq!(refresher.kind, KeyKind::Refresher);
        let again = Keys::from_text(&format!(" {r}\n")).unwrap();
        assert_eq!(
            refresher.reader_key, again.reader_key,
            "the same every time"
        );
        assert!(refresher.reader_key.starts_with("sfxr1:"));
        assert!(!refresher.reader_key.contains(&r));
        let reader = Keys::from_text(&refresher.reader_key).unwrap();
        assert_eq!(reader.kind, KeyKind::Reader);
        assert_eq!(reader.reader_key, refresher.reader_key);
        assert_eq!(reader.id, refresher.id);
        assert!(reader.root.is_none() && reader.refresh.is_none());
        let b = binding(
            Some("https://login.salesforce.com"),
            "https://a.my.salesforce.com",
        );
        let at = refresher.seal_bound(&b, "access-token", b"00D!at").unwrap();
        let rt = refresher.seal_bound(&b, "refresh-token", b"5Aep").unwrap();
        assert!(at.starts_with("v3:") && rt.starts_with("v3:"));
        assert_eq!(
            reader.open_bound(&b, "access-token", at.as_bytes()),
            Some((b"00D!at".to_vec(), Form::Derived))
        );
        assert!(
            reader
                .open_bound(&b, "refresh-token", rt.as_bytes())
                .is_none()
        );
        assert!(reader.seal_bound(&b, "refresh-token", b"x").is_err());
        assert!(reader.seal_bound(&b, "client-secret", b"x").is_err());
        // The refresh key is not the access key: a value cannot change kind.
        assert!(
            refresher
                .open_bound(&b, "access-token", rt.as_bytes())
                .is_none()
        );
        assert_eq!(
            refresher
                .open_bound(&b, "refresh-token", rt.as_bytes())
                .unwrap()
                .0,
            b"5Aep"
        );
        // Values of earlier sfx: R opens them; a reader cannot.
        let old = key(7).seal_bound(&b, "access-token", b"old").unwrap();
        assert_eq!(
            refresher.open_bound(&b, "access-token", old.as_bytes()),
            Some((b"old".to_vec(), Form::Bound))
        );
        assert!(
            reader
                .open_bound(&b, "access-token", old.as_bytes())
                .is_none()
        );
        // Another refresher key: another reader key.
        let other = Keys::from_text(&STANDARD.encode([8u8; 32])).unwrap();
        assert_ne!(other.reader_key, refresher.reader_key);
        assert!(
            other
                .open_bound(&b, "access-token", at.as_bytes())
                .is_none()
        );
        for bad in [
            "sfxr1:",
            "sfxr1:abc",
            &format!("sfxr1:{}", STANDARD.encode([1u8; 31])),
        ] {
            let e = Keys::from_text(bad).unwrap_err();
            assert!(e.to_string().contains(KEY_VAR), "{e}");
        }
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
