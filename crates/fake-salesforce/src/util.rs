//! Small helpers: randomness, Salesforce-style ids and tokens, the `signature` HMAC, and
//! percent/base64 coding. Nothing here knows about HTTP or server state.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const TOKEN_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._";

/// Random bytes from the OS; falls back to a time-seeded hash if the OS refuses (never panics).
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    if getrandom::fill(&mut buf).is_err() {
        let mut seed = Sha256::digest(format!("{:?}", std::time::SystemTime::now()).as_bytes());
        for (i, b) in buf.iter_mut().enumerate() {
            if i % 32 == 0 && i > 0 {
                seed = Sha256::digest(seed);
            }
            *b = seed[i % 32];
        }
    }
    buf
}

/// A random string of `n` characters drawn from `alphabet` (alphabet length ≤ 256).
pub fn random_from(alphabet: &[u8], n: usize) -> String {
    random_bytes(n)
        .into_iter()
        .map(|b| alphabet[(b as usize) % alphabet.len()] as char)
        .collect()
}

/// `n` random characters from `[A-Za-z0-9._]` (the refresh/access token alphabet).
pub fn random_token_chars(n: usize) -> String {
    random_from(TOKEN_CHARS, n)
}

/// `n` random characters from `[A-Za-z0-9]`.
pub fn random_alnum(n: usize) -> String {
    random_from(ALNUM, n)
}

/// Lower-case hex of `n` random bytes.
pub fn random_hex(n: usize) -> String {
    random_bytes(n).iter().map(|b| format!("{b:02x}")).collect()
}

/// The 3-character case-safety suffix that turns a 15-char Salesforce id into its 18-char form.
pub fn id18(id15: &str) -> String {
    const MAP: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let bytes = id15.as_bytes();
    let mut suffix = String::new();
    for chunk in bytes.chunks(5).take(3) {
        let mut v = 0usize;
        for (i, c) in chunk.iter().enumerate() {
            if c.is_ascii_uppercase() {
                v |= 1 << i;
            }
        }
        suffix.push(MAP[v] as char);
    }
    format!("{id15}{suffix}")
}

/// A deterministic 18-char user id (`005…`) derived from the username.
pub fn user_id_for(username: &str) -> String {
    let digest = Sha256::digest(username.as_bytes());
    let tail: String = digest
        .iter()
        .take(7)
        .map(|b| ALNUM[(*b as usize) % ALNUM.len()] as char)
        .collect();
    id18(&format!("0055g00{tail}0"))
}

/// Salesforce's `signature`: base64(HMAC-SHA256(key = client_secret, msg = id + issued_at)).
pub fn signature(secret: &str, id: &str, issued_at: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(), // HMAC accepts any key length; unreachable in practice
    };
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// PKCE S256: BASE64URL-NOPAD(SHA-256(verifier)).
pub fn pkce_s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Percent-encode for a query string component (RFC 3986 unreserved stay as-is).
pub fn pct(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Current time in milliseconds since the Unix epoch (real clock).
pub fn real_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Minimal HTML escaping for error pages.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id18_checksum() {
        // Known example: 15-char id with no upper-case letters gets "AAA".
        assert_eq!(id18("00d000000000000"), "00d000000000000AAA");
        assert_eq!(id18("00D5g000004FAKE"), "00D5g000004FAKEEA4");
        assert_eq!(user_id_for("a@b.c").len(), 18);
        assert!(user_id_for("a@b.c").starts_with("005"));
    }

    #[test]
    fn pkce_rfc_example() {
        // RFC 7636 appendix B.
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
