//! Secrets are sealed on the machine before they reach the shared store.
//!
//! AES-256-GCM (the `aes-gcm` crate) with the key from `SFX_STORE_KEY` (32 random
//! bytes, base64: `head -c32 /dev/urandom | base64`). Each write draws a fresh
//! 96-bit nonce from the OS. The associated data binds a value to its org and
//! its kind (`sfx-shared-v1\0<alias>\0<kind>`), so a ciphertext copied to another
//! org, or from the refresh-token field to the access-token field, fails to open.
//!
//! Stored form: `v1:` + base64(nonce ‖ ciphertext ‖ tag).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::Error;
use crate::secret::Secret;

/// The variable that holds the key.
pub const KEY_VAR: &str = "SFX_STORE_KEY";

const PREFIX: &str = "v1:";
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
            })?;
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| Error::StoreUnavailable {
            message: format!("{KEY_VAR} is not a usable AES-256 key"),
            hint: Some(key_hint()),
        })?;
        Ok(StoreKey(cipher))
    }

    /// Seal `plain` for `alias`'s `kind` with a fresh nonce.
    pub fn seal(&self, alias: &str, kind: &str, plain: &[u8]) -> Result<String, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| {
            Error::Other(format!(
                "cannot draw random bytes for encryption from the OS: {e}"
            ))
        })?;
        let aad = aad(alias, kind);
        let sealed = self
            .0
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .map_err(|_| Error::Other("AES-GCM encryption failed".into()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", STANDARD.encode(out)))
    }

    /// Open a sealed value; `None` when it is not ours to open (another key, another
    /// org or kind, or altered).
    pub fn open(&self, alias: &str, kind: &str, stored: &[u8]) -> Option<Vec<u8>> {
        let text = std::str::from_utf8(stored).ok()?;
        let raw = STANDARD.decode(text.strip_prefix(PREFIX)?).ok()?;
        if raw.len() < NONCE_LEN + 16 {
            return None;
        }
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        self.0
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: body,
                    aad: &aad(alias, kind),
                },
            )
            .ok()
    }

    /// Seal a secret.
    pub fn seal_secret(&self, alias: &str, kind: &str, s: &Secret) -> Result<String, Error> {
        self.seal(alias, kind, s.expose().as_bytes())
    }

    /// Open a secret.
    pub fn open_secret(&self, alias: &str, kind: &str, stored: &[u8]) -> Option<Secret> {
        self.open(alias, kind, stored)
            .and_then(|b| String::from_utf8(b).ok())
            .map(Secret::new)
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
