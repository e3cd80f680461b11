//! `Secret`: a token or client secret that cannot be printed by accident.
//!
//! `Debug` is redacted and there is no `Display`; [`Secret::expose`] marks each
//! place a value leaves its wrapper (a request body, `sfx token`, `--format env`).
//! [`mask`] gives the table form: at most the first 5 and last 4 characters.

use std::fmt;

use serde::{Deserialize, Deserializer};

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

// No `Serialize` on purpose (issue #12): a report deriving it would print a
// token in `--json`. A store that must write a secret does so through
// `expose()`, where it can be seen.

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// Whether `s` could be a token: printable ASCII only, no spaces (every token
/// and secret Salesforce issues is). What is not is never stored from a server.
pub fn is_token_text(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic())
}

/// `00D5g…Q9f2`: the first 5 and last 4 characters of a long value; short values
/// (where 9 characters would be most of it) show only `…` and the last 2.
/// Characters that could drive a terminal show as `?` (issue #24).
pub fn mask(value: &str) -> String {
    let chars: Vec<char> = value
        .chars()
        .map(|c| {
            if crate::text::is_unsafe_char(c) {
                '?'
            } else {
                c
            }
        })
        .collect();
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

/// Field names whose values are secrets, in forms, JSON bodies, URLs and traces.
pub const SECRET_KEYS: &[&str] = &[
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "password",
    "assertion",
    "code",
    "code_verifier",
    "device_code",
    "signature",
];

const REDACTED: &str = "<redacted>";

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn ends_value(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '&' | '"' | '\'' | ',' | ';' | '}' | ']' | '<' | '>' | '#'
        )
}

/// Text that may hold secrets (a URL, a line of a body that is not JSON, a
/// message quoting a server) with them replaced by `<redacted>`: the values of
/// [`SECRET_KEYS`] written `key=value` or `"key":"value"`, `Bearer` credentials,
/// and anything shaped like a Salesforce access token (`00D…!…`). Used where sfx
/// quotes text it does not control, so that a token never leaks through a quote.
pub fn redact_text(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let boundary = i == 0 || !is_word(chars[i - 1]);
        if boundary && let Some(after) = secret_assignment(&chars, i) {
            out.extend(&chars[i..after]);
            out.push_str(REDACTED);
            i = skip_value(&chars, after);
            continue;
        }
        if boundary
            && let Some(after) =
                access_token_shape(&chars, i).or_else(|| long_token_shape(&chars, i))
        {
            out.push_str(REDACTED);
            i = after;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// At `i`, `key = "` or `"key": "` for a secret key (or `Bearer `): the index
/// where the value starts.
fn secret_assignment(chars: &[char], i: usize) -> Option<usize> {
    let rest = |from: usize| chars.get(from..).unwrap_or(&[]);
    let starts = |from: usize, word: &str| {
        let r = rest(from);
        r.len() >= word.len()
            && r.iter()
                .zip(word.chars())
                .all(|(a, b)| a.eq_ignore_ascii_case(&b))
    };
    if starts(i, "bearer ") {
        let mut j = i + 7;
        while chars.get(j) == Some(&' ') {
            j += 1;
        }
        return (j < chars.len() && !ends_value(chars[j])).then_some(j);
    }
    // The longest key that matches here (`access_token` rather than `token`).
    let key = SECRET_KEYS
        .iter()
        .filter(|k| starts(i, k) && chars.get(i + k.len()).is_none_or(|c| !is_word(*c)))
        .max_by_key(|k| k.len())?;
    let mut j = i + key.len();
    if chars.get(j) == Some(&'"') {
        j += 1;
    }
    while chars.get(j).is_some_and(|c| *c == ' ') {
        j += 1;
    }
    if !matches!(chars.get(j), Some('=') | Some(':')) {
        return None;
    }
    j += 1;
    while chars.get(j).is_some_and(|c| *c == ' ') {
        j += 1;
    }
    if chars.get(j) == Some(&'"') {
        j += 1;
    }
    (j < chars.len() && !ends_value(chars[j])).then_some(j)
}

fn skip_value(chars: &[char], mut j: usize) -> usize {
    while j < chars.len() && !ends_value(chars[j]) {
        j += 1;
    }
    j
}

/// A bare token quoted by a server (issue #24): a refresh token (`5Aep861…`, 20
/// characters or more), or any run of 32 or more token characters (letters,
/// digits, `. _ ~ + = ! -`) holding both letters and digits — a refresh token,
/// a client secret, a session id. Words and URLs are never that long without
/// a `/`, `:` or space.
fn long_token_shape(chars: &[char], i: usize) -> Option<usize> {
    let is_tok = |c: &char| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '+' | '=' | '!' | '-')
    };
    let run = chars.get(i..)?.iter().take_while(|c| is_tok(c)).count();
    let word = &chars[i..i + run];
    let refresh = run >= 20 && word.starts_with(&['5', 'A', 'e', 'p', '8', '6', '1']);
    let mixed = word.iter().any(char::is_ascii_digit) && word.iter().any(char::is_ascii_alphabetic);
    (refresh || (run >= 32 && mixed)).then_some(i + run)
}

/// Every occurrence of the given secret values (what sfx itself sent: a
/// refresh token, a client secret) in `text` replaced by `<redacted>`: a server
/// that quotes one back, whatever its shape, never gets it printed (issue #24).
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 6) {
        if out.contains(*s) {
            out = out.replace(*s, REDACTED);
        }
    }
    out
}

/// `00D` + 12 or 15 more id characters + `!` + the rest: a Salesforce access token.
fn access_token_shape(chars: &[char], i: usize) -> Option<usize> {
    let r = chars.get(i..)?;
    if r.len() < 17 || r[0] != '0' || r[1] != '0' || r[2] != 'D' {
        return None;
    }
    let id_len = r[3..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric())
        .count();
    if !(12..=15).contains(&id_len) || r.get(3 + id_len) != Some(&'!') {
        return None;
    }
    Some(skip_value(chars, i + 3 + id_len + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_text_hides_assignments_bearers_and_token_shapes() {
        let cases = [
            (
                "grant_type=refresh_token&refresh_token=5Aep861.x&client_id=abc",
                "grant_type=refresh_token&refresh_token=<redacted>&client_id=abc",
            ),
            (
                "https://h/cb?code=aPrx.y%3D&state=1",
                "https://h/cb?code=<redacted>&state=1",
            ),
            (
                "{\"access_token\":\"00D5g000004FAKE!AQ",
                "{\"access_token\":\"<redacted>",
            ),
            (
                "{\"error\": \"x\", \"password\" : \"hunter2\"}",
                "{\"error\": \"x\", \"password\" : \"<redacted>\"}",
            ),
            (
                "Authorization: Bearer 00D5g000004ABCD!AQ0.x",
                "Authorization: Bearer <redacted>",
            ),
            (
                "token 00D5g000004ABCD!AQ0AQxyz leaked",
                "token <redacted> leaked",
            ),
            ("CLIENT_SECRET=abc", "CLIENT_SECRET=<redacted>"),
            (
                "no secrets: token expired, code 42",
                "no secrets: token expired, code 42",
            ),
            ("mytoken=keep&barcode=keep", "mytoken=keep&barcode=keep"),
            (
                "bad token 5Aep861TfAkE.x_yZ01234567 given",
                "bad token <redacted> given",
            ),
            (
                "secret A1B2C3D4E5F6A7B8C9D0E1F2A3B4C5D6E7F8 is wrong",
                "secret <redacted> is wrong",
            ),
            (
                "see https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_flows.htm",
                "see https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_flows.htm",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(redact_text(input), want, "{input}");
        }
    }

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
        assert_eq!(mask("\x1b]0;pwned\x07AAAAAAAAAAAAAAAAAAAAA"), "?]0;p…AAAA");
    }

    /// Issue #12: `Secret` has no `Serialize`, so no report can print a token
    /// by deriving it. (An inherent const wins over the blanket trait's when
    /// its bound holds: `true` would mean `Secret: Serialize`.)
    #[test]
    fn secret_does_not_implement_serialize() {
        use std::marker::PhantomData;
        trait Fallback {
            const SERIALIZE: bool = false;
        }
        struct Probe<T>(PhantomData<T>);
        impl<T> Fallback for Probe<T> {}
        impl<T: serde::Serialize> Probe<T> {
            const SERIALIZE: bool = true;
        }
        // Checked when the tests compile.
        const { assert!(Probe::<String>::SERIALIZE, "the probe sees Serialize") };
        const { assert!(!Probe::<Secret>::SERIALIZE) };
    }
}
