//! Committed TEST-ONLY RSA keys (NEVER use them for anything real), JWT signing of access
//! tokens / id_tokens, the JWKS served at `/id/keys`, and verification of JWT-bearer assertions.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, jwk::Jwk};
use serde_json::{Value, json};
use std::sync::OnceLock;

/// TEST-ONLY RSA private key (PKCS#8) for signing JWT-bearer assertions. Never use it for real.
pub const TEST_JWT_PRIVATE_KEY_PEM: &str = include_str!("../keys/jwt-bearer-test-key.pem");
/// The same TEST-ONLY key in PKCS#1 form (`BEGIN RSA PRIVATE KEY`).
pub const TEST_JWT_PRIVATE_KEY_PKCS1_PEM: &str =
    include_str!("../keys/jwt-bearer-test-key.pkcs1.pem");
/// Public half of [`TEST_JWT_PRIVATE_KEY_PEM`] (`BEGIN PUBLIC KEY`); the default client's
/// `jwt_cert_pem`.
pub const TEST_JWT_PUBLIC_KEY_PEM: &str = include_str!("../keys/jwt-bearer-test-pub.pem");
/// A self-signed TEST-ONLY certificate for [`TEST_JWT_PRIVATE_KEY_PEM`].
pub const TEST_JWT_CERT_PEM: &str = include_str!("../keys/jwt-bearer-test-cert.pem");
/// TEST-ONLY key the fake signs JWT access tokens and id_tokens with (public half at `/id/keys`).
pub const ACCESS_TOKEN_SIGNING_KEY_PEM: &str = include_str!("../keys/access-token-signing-key.pem");

/// `kid` of the fake's signing key, shaped like Salesforce's.
pub const SIGNING_KID: &str = "CORE_ATJWT.00D5g000004FAKE.1700000000000";

fn signing_key() -> Option<&'static EncodingKey> {
    static KEY: OnceLock<Option<EncodingKey>> = OnceLock::new();
    KEY.get_or_init(|| EncodingKey::from_rsa_pem(ACCESS_TOKEN_SIGNING_KEY_PEM.as_bytes()).ok())
        .as_ref()
}

/// The JWKS document served at `/id/keys`.
pub fn jwks() -> Value {
    let Some(key) = signing_key() else {
        return json!({"keys": []});
    };
    match Jwk::from_encoding_key(key, Algorithm::RS256) {
        Ok(jwk) => {
            let mut v = serde_json::to_value(jwk).unwrap_or_else(|_| json!({}));
            if let Some(o) = v.as_object_mut() {
                o.insert("kid".into(), json!(SIGNING_KID));
                o.insert("use".into(), json!("sig"));
                o.insert("alg".into(), json!("RS256"));
            }
            json!({ "keys": [v] })
        }
        Err(_) => json!({"keys": []}),
    }
}

/// Sign `claims` with the fake's key; `extra_header` fields are added to the JOSE header.
pub fn sign(claims: &Value, extra_header: &[(&str, Value)]) -> Option<String> {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(SIGNING_KID.to_string());
    for (k, v) in extra_header {
        header.extras.insert(*k, v.clone());
    }
    jsonwebtoken::encode(&header, claims, signing_key()?).ok()
}

/// Why an assertion was rejected.
#[derive(Debug, PartialEq, Eq)]
pub enum AssertionError {
    /// Not a JWT, not RS256, or the signature does not verify against the key.
    Invalid,
}

/// Split a compact JWS and return its (unverified) header and payload.
pub fn decode_unverified(token: &str) -> Option<(Value, Value)> {
    let mut parts = token.split('.');
    let (h, p, _s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    let payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()?;
    Some((header, payload))
}

/// Verify an RS256 assertion against a PEM public key / certificate; returns its claims.
pub fn verify_rs256(token: &str, pem: &str) -> Result<Value, AssertionError> {
    let (header, payload) = decode_unverified(token).ok_or(AssertionError::Invalid)?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(AssertionError::Invalid);
    }
    let key = DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| AssertionError::Invalid)?;
    let (message, sig) = token.rsplit_once('.').ok_or(AssertionError::Invalid)?;
    match jsonwebtoken::crypto::verify(sig, message.as_bytes(), &key, Algorithm::RS256) {
        Ok(true) => Ok(payload),
        _ => Err(AssertionError::Invalid),
    }
}

/// Sign a JWT-bearer assertion with the committed TEST-ONLY key (a test helper).
/// `exp` is written as given (number or string) so tests can mimic every client quirk.
pub fn make_assertion(client_id: &str, username: &str, aud: &str, exp: Value) -> String {
    let claims = json!({"iss": client_id, "sub": username, "aud": aud, "exp": exp});
    let header = Header::new(Algorithm::RS256);
    EncodingKey::from_rsa_pem(TEST_JWT_PRIVATE_KEY_PEM.as_bytes())
        .ok()
        .and_then(|k| jsonwebtoken::encode(&header, &claims, &k).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assertion_roundtrip_with_every_key_form() {
        let t = make_assertion("c", "u", "https://login.salesforce.com", json!(1));
        assert!(verify_rs256(&t, TEST_JWT_PUBLIC_KEY_PEM).is_ok());
        assert!(verify_rs256(&t, TEST_JWT_CERT_PEM).is_ok());
        assert!(verify_rs256(&t, ACCESS_TOKEN_SIGNING_KEY_PEM).is_err());
        assert!(verify_rs256("a.b.c", TEST_JWT_PUBLIC_KEY_PEM).is_err());
        let pkcs1 = EncodingKey::from_rsa_pem(TEST_JWT_PRIVATE_KEY_PKCS1_PEM.as_bytes()).unwrap();
        let t2 =
            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &json!({"a":1}), &pkcs1).unwrap();
        assert!(verify_rs256(&t2, TEST_JWT_PUBLIC_KEY_PEM).is_ok());
    }

    #[test]
    fn jwks_has_rsa_key() {
        let k = jwks();
        assert_eq!(k["keys"][0]["kty"], "RSA");
        assert_eq!(k["keys"][0]["kid"], SIGNING_KID);
        let token = sign(&json!({"x": 1}), &[]).unwrap();
        let dk = DecodingKey::from_rsa_components(
            k["keys"][0]["n"].as_str().unwrap(),
            k["keys"][0]["e"].as_str().unwrap(),
        )
        .unwrap();
        let (m, s) = token.rsplit_once('.').unwrap();
        assert!(jsonwebtoken::crypto::verify(s, m.as_bytes(), &dk, Algorithm::RS256).unwrap());
    }
}
