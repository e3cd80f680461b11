//! The Salesforce CLI's encryption of secrets in its auth files (sfdx-core
//! `src/crypto/crypto.ts`), both key versions:
//!
//! - **v1** (the default when sf creates its key): the key is 32 hex characters
//!   whose 32 ASCII bytes are the AES-256 key; each value gets 6 random bytes
//!   written as 12 hex characters, and those 12 ASCII characters are the 12-byte
//!   GCM nonce.
//! - **v2** (`SF_CRYPTO_V2=true` when sf created the key): 64 hex characters
//!   decoded to the 32-byte key; a 12-byte random nonce written as 24 hex characters.
//!
//! The version follows from the key's length, as in sf. A value is stored as
//! `<ivHex><ciphertextHex>:<tagHex>` with a 16-byte tag (32 hex characters).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::secret::Secret;

/// sf's key, by version.
#[derive(Clone)]
pub enum Key {
    V1([u8; 32]),
    V2([u8; 32]),
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Key::V1(_) => "Key::V1(<redacted>)",
            Key::V2(_) => "Key::V2(<redacted>)",
        })
    }
}

const TAG_HEX: usize = 32;

impl Key {
    /// The key as sf stores it (keychain item or `key.json`): 32 or 64 hex characters.
    pub fn parse(text: &str) -> Result<Key, String> {
        let t = text.trim();
        if !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("it is not hexadecimal".into());
        }
        match t.len() {
            32 => {
                let mut k = [0u8; 32];
                k.copy_from_slice(t.as_bytes());
                Ok(Key::V1(k))
            }
            64 => {
                let bytes = hex_decode(t).ok_or("it is not hexadecimal")?;
                let mut k = [0u8; 32];
                k.copy_from_slice(&bytes);
                Ok(Key::V2(k))
            }
            n => Err(format!(
                "it has {n} characters, where sf's keys have 32 (v1) or 64 (v2)"
            )),
        }
    }

    pub fn version(&self) -> &'static str {
        match self {
            Key::V1(_) => "v1",
            Key::V2(_) => "v2",
        }
    }

    fn iv_hex_len(&self) -> usize {
        match self {
            Key::V1(_) => 12,
            Key::V2(_) => 24,
        }
    }

    fn cipher(&self) -> Aes256Gcm {
        let (Key::V1(k) | Key::V2(k)) = self;
        // A 32-byte key is always accepted by AES-256.
        Aes256Gcm::new(k.into())
    }

    /// The 12-byte nonce of an IV as written in the file.
    fn nonce(&self, iv_hex: &str) -> Option<[u8; 12]> {
        let mut n = [0u8; 12];
        match self {
            Key::V1(_) => n.copy_from_slice(iv_hex.as_bytes()),
            Key::V2(_) => n.copy_from_slice(&hex_decode(iv_hex)?),
        }
        Some(n)
    }

    /// Encrypt as sf does, with a fresh random IV.
    pub fn encrypt(&self, plain: &str) -> Result<String, String> {
        let mut raw = [0u8; 12];
        getrandom::fill(&mut raw).map_err(|e| format!("no random numbers: {e}"))?;
        let iv_hex = match self {
            // v1: 6 random bytes as 12 hex characters.
            Key::V1(_) => hex_encode(&raw[..6]),
            Key::V2(_) => hex_encode(&raw),
        };
        self.encrypt_with_iv(plain, &iv_hex)
    }

    /// Encrypt with a given IV (hex, as written): for tests that pin sf's output.
    pub fn encrypt_with_iv(&self, plain: &str, iv_hex: &str) -> Result<String, String> {
        if iv_hex.len() != self.iv_hex_len() {
            return Err("wrong IV length".into());
        }
        let nonce = self.nonce(iv_hex).ok_or("the IV is not hexadecimal")?;
        let out = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: &[],
                },
            )
            .map_err(|_| "encryption failed".to_string())?;
        let (ct, tag) = out.split_at(out.len() - 16);
        Ok(format!("{iv_hex}{}:{}", hex_encode(ct), hex_encode(tag)))
    }

    /// Decrypt a value written by sf with this key.
    pub fn decrypt(&self, text: &str) -> Result<Secret, String> {
        let (body, tag) = text
            .split_once(':')
            .ok_or("it is not in sf's `<iv><ciphertext>:<tag>` form")?;
        if tag.len() != TAG_HEX || tag.contains(':') {
            return Err("its authentication tag is not 16 bytes".into());
        }
        let ivl = self.iv_hex_len();
        if body.len() < ivl || !body.is_char_boundary(ivl) {
            return Err(format!("it is too short for a {} value", self.version()));
        }
        let (iv_hex, ct_hex) = body.split_at(ivl);
        let nonce = self.nonce(iv_hex).ok_or("its IV is not hexadecimal")?;
        let mut ct = hex_decode(ct_hex).ok_or("its ciphertext is not hexadecimal")?;
        ct.extend(hex_decode(tag).ok_or("its tag is not hexadecimal")?);
        let plain = self
            .cipher()
            .decrypt(Nonce::from_slice(&nonce), Payload { msg: &ct, aad: &[] })
            .map_err(|_| {
                "it does not decrypt with sf's key (another key encrypted it, or it was changed)"
                    .to_string()
            })?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| "it decrypts to something that is not text".to_string())
    }
}

/// sf's own test for "this value is encrypted" (`Crypto.isEncrypted`): one `:`,
/// a 32-character tag, hex characters. sf leaves other values as they are.
pub fn looks_encrypted(text: &str) -> bool {
    match text.split_once(':') {
        Some((body, tag)) => {
            tag.len() == TAG_HEX
                && !tag.contains(':')
                && body.len() >= 12
                && tag.bytes().all(|b| b.is_ascii_hexdigit())
                && body.bytes().all(|b| b.is_ascii_hexdigit())
        }
        None => false,
    }
}

pub fn hex_encode(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(D[(b >> 4) as usize] as char);
        s.push(D[(b & 15) as usize] as char);
    }
    s
}

pub fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|p| {
            let hi = (p[0] as char).to_digit(16)?;
            let lo = (p[1] as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values computed by Node 22's crypto exactly as sfdx-core's `encryptV1` and
    /// `encryptV2` do (`createCipheriv('aes-256-gcm', key, iv)`, v1 with the key and
    /// IV strings, v2 with the decoded bytes), pinned here.
    #[test]
    fn values_written_by_node_as_sf_writes_them_decrypt_and_reencrypt_identically() {
        let plain = "5Aep861_refresh.token!";
        let v1 = Key::parse("0123456789abcdef0123456789abcdef").unwrap();
        let node_v1 = "a1b2c3d4e5f6127d8a64048e317bf2f9d30ed49799fe63c6c3f51e54:6d0df6cfb8cbfc29120d78a0917eb143";
        assert_eq!(v1.decrypt(node_v1).unwrap().expose(), plain);
        assert_eq!(v1.encrypt_with_iv(plain, "a1b2c3d4e5f6").unwrap(), node_v1);
        let v2 = Key::parse(&format!("{}{}", "ab".repeat(16), "cd".repeat(16))).unwrap();
        let node_v2 = "00112233445566778899aabbaaa8b6b935614a8eb33163af948ac7f91b52dbe03584:31bd5ace9de7d507703448a67fe96722";
        assert_eq!(v2.decrypt(node_v2).unwrap().expose(), plain);
        assert_eq!(
            v2.encrypt_with_iv(plain, "00112233445566778899aabb")
                .unwrap(),
            node_v2
        );
    }

    #[test]
    fn both_versions_round_trip_and_keep_sfs_layout() {
        let v1 = Key::parse("0123456789abcdef0123456789abcdef").unwrap();
        let v2 = Key::parse(&"ab".repeat(32)).unwrap();
        for (k, ivl) in [(&v1, 12), (&v2, 24)] {
            let e = k.encrypt("00Dxx!token").unwrap();
            let (body, tag) = e.split_once(':').unwrap();
            assert_eq!(tag.len(), 32);
            assert_eq!(body.len(), ivl + "00Dxx!token".len() * 2);
            assert!(looks_encrypted(&e));
            assert_eq!(k.decrypt(&e).unwrap().expose(), "00Dxx!token");
        }
        // One key's value does not open with the other.
        let e = v1.encrypt("x").unwrap();
        assert!(
            Key::parse("fedcba9876543210fedcba9876543210")
                .unwrap()
                .decrypt(&e)
                .is_err()
        );
    }

    #[test]
    fn v1_uses_the_ascii_of_key_and_iv() {
        // The v1 nonce is the 12 ASCII characters of the IV, the key the 32 ASCII
        // characters of the key string: the same as a raw AES-GCM with those bytes.
        let k = Key::parse("0123456789abcdef0123456789abcdef").unwrap();
        let e = k.encrypt_with_iv("hello", "a1b2c3d4e5f6").unwrap();
        let raw = Aes256Gcm::new(b"0123456789abcdef0123456789abcdef".into())
            .encrypt(Nonce::from_slice(b"a1b2c3d4e5f6"), &b"hello"[..])
            .unwrap();
        let (ct, tag) = raw.split_at(raw.len() - 16);
        assert_eq!(
            e,
            format!("a1b2c3d4e5f6{}:{}", hex_encode(ct), hex_encode(tag))
        );
    }

    #[test]
    fn damaged_values_are_errors_not_panics() {
        let k = Key::parse("0123456789abcdef0123456789abcdef").unwrap();
        for bad in [
            "",
            ":",
            "abc",
            "zz:zz",
            &format!("é{}:{}", "a".repeat(20), "b".repeat(32)),
        ] {
            assert!(k.decrypt(bad).is_err(), "{bad}");
        }
        assert!(Key::parse("short").is_err());
        assert!(Key::parse(&"g".repeat(32)).is_err());
    }
}
