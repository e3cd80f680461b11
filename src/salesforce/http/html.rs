//! What to quote of a body that is not JSON: an HTML page's title or text, else the
//! first line, made safe to print.

use std::time::Duration;

use super::*;

impl Reply {
    /// What to quote of a body that is not JSON: an HTML page's `<title>` (what a
    /// maintenance page says in one line), else its text with the tags removed
    /// (`<br>` and block tags read as spaces, so sentences stay apart); other
    /// bodies by their first non-empty line, as sent. Made safe to print (control
    /// characters and anything that looks like a secret removed) and cut short.
    pub fn first_line(&self) -> String {
        let mut cut = self.body.len().min(8192);
        while !self.body.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut head = &self.body[..cut];
        let html = self.content_type.to_ascii_lowercase().contains("html")
            || head.trim_start().starts_with('<');
        if html && cut < self.body.len() {
            // Cut inside a tag (`… shortly. <table bord`): that tag is markup,
            // not text, so it goes before the tags are stripped.
            head = drop_unfinished_tag(head);
        }
        let line = match html_title(head) {
            Some(title) => html_text(title),
            None if html => html_text(head),
            None => head
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or_default()
                .to_string(),
        };
        let cut: String = line.chars().take(400).collect();
        sanitize(&redact_text(&cut), 120)
    }

    /// How long the server asked to wait (`Retry-After`), when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        retry_after(self)
    }
}

/// `html` without a tag (or comment) that opens at its end and never closes.
pub(super) fn drop_unfinished_tag(html: &str) -> &str {
    let Some(lt) = html.rfind('<') else {
        return html;
    };
    let after = &html[lt + 1..];
    let opens_tag = after
        .chars()
        .next()
        .is_none_or(|c| c.is_ascii_alphabetic() || matches!(c, '/' | '!' | '?'));
    let unfinished = if after.starts_with("!--") {
        !after.contains("-->")
    } else {
        !after.contains('>')
    };
    if opens_tag && unfinished {
        &html[..lt]
    } else {
        html
    }
}

/// The `<title>` of an HTML page (what a maintenance page says in one line).
pub(super) fn html_title(body: &str) -> Option<&str> {
    let head = body.get(..body.len().min(8192)).unwrap_or(body);
    let lower = head.to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let end = open_end + lower[open_end..].find("</title")?;
    let title = head[open_end..end].trim();
    (!title.is_empty()).then_some(title)
}

/// The text of an HTML fragment: tags removed, `<br>` and block-level tags read
/// as spaces, `<script>`/`<style>` contents and comments dropped, a few entities
/// decoded, runs of white space collapsed. A `<` that does not open a tag (`a < b`,
/// `<3`) is text and stays.
pub(super) fn html_text(html: &str) -> String {
    const BLOCK: &[&str] = &[
        "br",
        "p",
        "div",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "li",
        "ul",
        "ol",
        "tr",
        "td",
        "th",
        "table",
        "hr",
        "pre",
        "blockquote",
        "section",
        "article",
        "header",
        "footer",
        "body",
        "html",
        "head",
        "title",
        "center",
        "main",
        "nav",
        "dd",
        "dt",
        "dl",
        "form",
    ];
    let mut out = String::new();
    let mut rest = html;
    let mut skip_until: Option<&str> = None;
    while let Some(lt) = rest.find('<') {
        if skip_until.is_none() {
            out.push_str(&rest[..lt]);
        }
        let after = &rest[lt + 1..];
        let opens_tag = after
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '/' | '!' | '?'));
        let end = if after.starts_with("!--") {
            after.find("-->").map(|e| e + 3)
        } else {
            after.find('>').map(|e| e + 1)
        };
        // `x<y but <b>`: a "tag" that holds another `<` is text.
        let end = end.filter(|e| !after[..e - 1].contains('<'));
        let (true, Some(end)) = (opens_tag, end) else {
            if skip_until.is_none() {
                out.push('<');
            }
            rest = after;
            continue;
        };
        let tag = &after[..end - 1];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        match skip_until {
            Some(closing) if tag.starts_with('/') && name == closing => skip_until = None,
            Some(_) => {}
            None if !tag.starts_with('/') && (name == "script" || name == "style") => {
                skip_until = Some(if name == "script" { "script" } else { "style" });
            }
            None if BLOCK.contains(&name.as_str()) => out.push(' '),
            None => {}
        }
        rest = &after[end..];
    }
    if skip_until.is_none() {
        out.push_str(rest);
    }
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}
