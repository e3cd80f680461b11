//! Reading `exp`/`iat`/`nbf` from a JWT access token, locally and without verifying.
//!
//! Salesforce can issue JWT access tokens (RS256). To learn when one expires the
//! signature is not needed: the claims are base64url JSON. Opaque tokens
//! (`00D…!…`) are not JWTs and yield `None`.

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};

use crate::timefmt::parse_epoch_value;

/// The time claims of a JWT access token.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtTimes {
    pub exp: DateTime<Utc>,
    pub iat: Option<DateTime<Utc>>,
    pub nbf: Option<DateTime<Utc>>,
}

fn decode_part(part: &str) -> Option<serde_json::Value> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .or_else(|_| URL_SAFE.decode(part))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The time claims, if `token` is a JWT whose payload has an `exp`.
pub fn times(token: &str) -> Option<JwtTimes> {
    let mut parts = token.split('.');
    let (header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || header.len() > 4096 || payload.len() > 65536 {
        return None;
    }
    let header = decode_part(header)?;
    header.get("alg")?.as_str()?;
    let claims = decode_part(payload)?;
    let claims = claims.as_object()?;
    Some(JwtTimes {
        exp: parse_epoch_value(claims.get("exp")?)?,
        iat: claims.get("iat").and_then(parse_epoch_value),
        nbf: claims.get("nbf").and_then(parse_epoch_value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(v: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn reads_exp_iat_nbf_from_a_salesforce_jwt() {
        let h = b64(&serde_json::json!({"alg":"RS256","typ":"JWT","tty":"sfdc-core-token"}));
        let p = b64(
            &serde_json::json!({"exp":1730386695,"iat":1730386635,"nbf":1730386620,"aud":["x"]}),
        );
        let t = times(&format!("{h}.{p}.sig")).unwrap();
        assert_eq!(t.exp.timestamp(), 1730386695);
        assert_eq!(t.iat.unwrap().timestamp(), 1730386635);
        assert_eq!(t.nbf.unwrap().timestamp(), 1730386620);
    }

    #[test]
    fn opaque_and_broken_tokens_are_not_jwts() {
        assert_eq!(times("00D5g000004ABCD!AQ0AQxyz"), None);
        assert_eq!(times("a.b.c"), None);
        assert_eq!(times(""), None);
        let h = b64(&serde_json::json!({"alg":"RS256"}));
        let no_exp = b64(&serde_json::json!({"iat":1}));
        assert_eq!(times(&format!("{h}.{no_exp}.s")), None);
        assert_eq!(times(&format!("{h}.{no_exp}.s.extra")), None);
    }
}
