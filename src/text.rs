//! Text from outside (a server, a file, the environment) made safe to print.
//! A small utility every layer may use (as fd keeps `sanitize.rs`).

/// Characters that must not reach a terminal from outside text: C0/C1 controls
/// (ESC starts terminal escape sequences, BEL, CR and backspace rewrite lines) and
/// the Unicode bidirectional overrides and isolates, which reorder what is shown.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Text from outside (the server, a file) made safe to print: control characters
/// and bidi overrides become spaces and the result is cut to `max` characters.
pub fn sanitize(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if is_unsafe_char(c) { ' ' } else { c })
        .take(max)
        .collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

/// Text from outside shown in full but inert: each unsafe character (see
/// [`is_unsafe_char`]; a tab is kept) written as an escape, `\x1b` or
/// `\u{202e}`, so it can be seen but never acts on the terminal.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\t' || !is_unsafe_char(c) {
            out.push(c);
        } else if (c as u32) < 0x100 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_shows_unsafe_characters_as_escapes_and_keeps_the_rest() {
        assert_eq!(
            escape("a\x1b[31mb\u{202E}c\u{9b}d\te é"),
            "a\\x1b[31mb\\u{202e}c\\x9bd\te é"
        );
    }

    #[test]
    fn controls_and_bidi_overrides_become_spaces_and_long_text_is_cut() {
        assert_eq!(sanitize("a\x1b[31mb\u{202E}c", 50), "a [31mb c");
        assert_eq!(sanitize("abcdef", 3), "abc…");
        assert_eq!(sanitize("abc", 3), "abc");
    }
}
