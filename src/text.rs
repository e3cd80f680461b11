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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_overrides_become_spaces_and_long_text_is_cut() {
        assert_eq!(sanitize("a\x1b[31mb\u{202E}c", 50), "a [31mb c");
        assert_eq!(sanitize("abcdef", 3), "abc…");
        assert_eq!(sanitize("abc", 3), "abc");
    }
}
