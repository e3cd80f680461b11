//! The store's key: which kind `SFX_STORE_KEY` holds, whether it is the store's
//! (the key check for a refresher, the reader check for a reader), and the
//! errors that say what is wrong with it.

use super::seal::{self, KeyKind, Keys};
use super::{KeyState, SharedStore};
use crate::error::Error;

const KEYCHECK_TEXT: &[u8] = b"sfx shared store key check";
const READERCHECK_TEXT: &[u8] = b"sfx shared store reader key check";

impl SharedStore {
    // ----- key -----------------------------------------------------------

    /// Use this key (a refresher key, or a reader key) rather than reading
    /// `SFX_STORE_KEY`: for programs that embed the library, and tests that
    /// cannot set a process-wide variable. Has no effect once a key was read.
    pub fn set_key(&self, key: &str) -> Result<(), Error> {
        let _ = self.inner.key.set(Keys::from_text(key)?);
        Ok(())
    }

    /// Whether `SFX_STORE_KEY` holds a reader key. A missing or malformed key
    /// is no reader: whatever needs the key then says what is wrong with it.
    pub fn is_reader(&self) -> bool {
        self.key().is_ok_and(|k| k.kind == KeyKind::Reader)
    }

    /// The keys, read from `SFX_STORE_KEY` on first use (orgs and offline expiry
    /// never need them).
    pub(super) fn key(&self) -> Result<&Keys, Error> {
        if let Some(k) = self.inner.key.get() {
            return Ok(k);
        }
        let k = Keys::from_env(&self.display())?;
        let _ = self.inner.key.set(k);
        self.inner
            .key
            .get()
            .ok_or_else(|| Error::Other("the store key was lost".into()))
    }

    /// Before the first write: make sure this machine's key is the store's key
    /// (a machine with another key must not seal secrets nobody else can open).
    pub(super) fn verify_key_for_write(&self) -> Result<&Keys, Error> {
        let keys = self.key()?;
        let Some(key) = keys.root.as_ref() else {
            return Err(reader_refused("write secrets to the shared store"));
        };
        if self.verified_check().is_some() {
            return Ok(keys);
        }
        let kc = self.k(&["keycheck"]);
        let sealed = key.seal("", "keycheck", KEYCHECK_TEXT)?;
        let current: Option<Vec<u8>> = self.run(|c| {
            let set: Option<String> = redis::cmd("SET").arg(&kc).arg(&sealed).arg("NX").query(c)?;
            if set.is_some() {
                return Ok(None);
            }
            redis::cmd("GET").arg(&kc).query(c)
        })?;
        let mut check = current
            .clone()
            .unwrap_or_else(|| sealed.clone().into_bytes());
        if let Some(stored) = current
            && key.open("", "keycheck", &stored).is_none()
        {
            // Another key's check. With no org left in the namespace nothing is
            // sealed with that key any more (a key rotation: every org moved out
            // and now back in), so the new key takes over; else refuse.
            let orgs_key = self.k(&["orgs"]);
            let replaced: i64 = self.run(|c| {
                redis::Script::new(REPLACE_KEYCHECK_SCRIPT)
                    .key(&kc)
                    .key(&orgs_key)
                    .arg(&sealed)
                    .invoke(c)
            })?;
            if replaced != 1 {
                return Err(self.wrong_key("the store's key check"));
            }
            check = sealed.into_bytes();
        }
        // The reader check: sealed with the ACCESS key this refresher key
        // yields (written when missing, or left by a key rotated away).
        let rc = self.k(&["readercheck"]);
        let stored: Option<Vec<u8>> = self.run(|c| redis::cmd("GET").arg(&rc).query(c))?;
        if stored.is_none_or(|s| keys.access.open("", "readercheck", &s).is_none()) {
            let sealed = keys.access.seal("", "readercheck", READERCHECK_TEXT)?;
            self.run(|c| redis::cmd("SET").arg(&rc).arg(&sealed).query::<()>(c))?;
        }
        *self
            .inner
            .key_verified
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(check);
        Ok(keys)
    }

    /// The key check this process verified, if it did.
    pub(super) fn verified_check(&self) -> Option<Vec<u8>> {
        self.inner
            .key_verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Before a login: the store answers and this machine's key is the store's.
    pub fn ready_for_write(&self) -> Result<(), Error> {
        self.verify_key_for_write().map(|_| ())
    }

    pub(super) fn wrong_key(&self, what: &str) -> Error {
        Error::StoreUnavailable {
            message: format!(
                "{} cannot open {what} in the shared store at {}: it is not the key the store's secrets were encrypted with (or the value was altered); nothing was changed",
                seal::KEY_VAR,
                self.display()
            ),
            hint: Some(seal::key_hint()),
            source: None,
        }
    }

    /// A sealed value did not open: with the store's own key (its key check
    /// opens), the record was changed by someone without the key; else the key
    /// is not the store's.
    pub(super) fn not_opened(&self, alias: &str, what: &str) -> Error {
        let ours = self.key_state_now() == KeyState::Works;
        self.key_verified_reset();
        if ours {
            self.tampered(alias)
        } else {
            self.wrong_key(what)
        }
    }

    /// Whether this machine's key opens the store's check (the key check for a
    /// refresher, the reader check for a reader).
    pub(super) fn key_state_now(&self) -> KeyState {
        let Ok(k) = self.key() else {
            return KeyState::Malformed;
        };
        let (name, text) = if k.kind == KeyKind::Reader {
            ("readercheck", READERCHECK_TEXT)
        } else {
            ("keycheck", KEYCHECK_TEXT)
        };
        let check = self.k(&[name]);
        match self.run(|c| redis::cmd("GET").arg(&check).query::<Option<Vec<u8>>>(c)) {
            Ok(Some(stored)) => {
                let opened = match (k.kind, k.root.as_ref()) {
                    (KeyKind::Refresher, Some(r)) => r.open("", name, &stored),
                    _ => k.access.open("", name, &stored),
                };
                if opened.as_deref() == Some(text) {
                    KeyState::Works
                } else {
                    KeyState::Wrong
                }
            }
            Ok(None) => KeyState::Unused,
            Err(_) => KeyState::Wrong,
        }
    }

    /// A reader met an org an earlier sfx stored, sealed with the refresher key.
    pub(super) fn unconverted(&self, alias: &str) -> Error {
        let alias = crate::text::sanitize(alias, 100);
        Error::StoreUnavailable {
            message: format!(
                "org {alias} in the shared store at {} was stored by an earlier sfx, with secrets only the refresher key opens; a reader key cannot use it until a refresher writes it in the current form",
                self.display()
            ),
            hint: Some(format!(
                "run `sfx refresh -o {alias}` once with the refresher key (or let a `sfx watch` with it refresh the org)"
            )),
            source: None,
        }
    }

    /// The error for a record whose sealed secrets no longer match it.
    pub(super) fn tampered(&self, alias: &str) -> Error {
        let alias = crate::text::sanitize(alias, 100);
        Error::StoreUnavailable {
            message: format!(
                "org {alias} in the shared store at {} was changed by someone without the store's key: its URLs, client id or user no longer match what its secrets were sealed with, so sfx sent nothing",
                self.display()
            ),
            hint: Some(format!(
                "check who can write to the Redis server; `sfx login --alias {alias} …` with SFX_STORE_KEY set stores the org again"
            )),
            source: None,
        }
    }

    /// Forget that the key was verified (it is checked again before the next write).
    pub(super) fn key_verified_reset(&self) {
        *self
            .inner
            .key_verified
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// What a reader key may not do (exit 2: the wrong key for the command).
pub fn reader_refused(what: &str) -> Error {
    Error::Usage(format!(
        "{} holds a reader key, which cannot {what}: only the refresher key opens refresh tokens and client secrets, and a reader never sends a token request or a revocation; run this where the refresher key is (the host running `sfx watch` with it)",
        seal::KEY_VAR
    ))
}

/// Replace the key check only while no org is stored: KEYS = keycheck, orgs set;
/// ARGV = the new check.
const REPLACE_KEYCHECK_SCRIPT: &str = r#"
if redis.call('SCARD', KEYS[2]) == 0 then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
"#;
