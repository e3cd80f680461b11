//! `Secret`: a token or client secret that cannot be printed by accident.
//!
//! `Debug` is redacted and there is no `Display`; [`Secret::expose`] marks each
//! place a value leaves its wrapper (a request body, `sfx token`, `--format env`).
//! [`mask`] gives the table form: at most the first 5 and last 4 characters.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself. Every call site is a place where a secret leaves sfx.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The masked form shown in tables and human output.
    pub fn mask(&self) -> String {
        mask(&self.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// `00D5g…Q9f2`: the first 5 and last 4 characters of a long value; short values
/// (where 9 characters would be most of it) show only `…` and the last 2.
pub fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    if n >= 20 {
        let head: String = chars[..5].iter().collect();
        let tail: String = chars[n - 4..].iter().collect();
        format!("{head}…{tail}")
    } else if n >= 6 {
        let tail: String = chars[n - 2..].iter().collect();
        format!("…{tail}")
    } else {
        "…".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("00D5g000004ABCD!AQ0AQsecret");
        assert!(!format!("{s:?}").contains("AQ0AQ"));
    }

    #[test]
    fn mask_keeps_at_most_five_and_four() {
        assert_eq!(mask("00D5g000004ABCD!AQ0AQxxxxQ9f2"), "00D5g…Q9f2");
        assert_eq!(mask("short-secret"), "…et");
        assert_eq!(mask("abc"), "…");
        assert_eq!(mask(""), "…");
    }
}
