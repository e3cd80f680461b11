//! Rendering: a command that answers once returns a [`Report`], and [`emit`]
//! prints it in the mode the user chose (`sfx watch` prints its own event stream
//! through [`events`]; `sfx completions` writes its script as it is). stdout is
//! the answer, stderr the conversation (through [`crate::messages`]): `--json`
//! puts exactly one document on stdout, `-q` nothing, and a closed stdout ends
//! quietly.

pub mod events;
pub mod table;

use std::io::{IsTerminal, Write};

use crate::exit::Exit;

/// How results are printed. `-q` wins over `--json`, which wins over `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Human,
    Json,
    Quiet,
}

/// What a renderer may know about the terminal.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
    pub tty: bool,
}

/// A command's result.
pub trait Report {
    /// Text for stdout in human mode (may end without a newline).
    fn human(&self, style: &Style) -> String;
    /// The `--json` document.
    fn json(&self) -> serde_json::Value;
    /// The exit code this result means.
    fn exit(&self) -> Exit {
        Exit::Ok
    }
    /// Remarks for stderr (printed in every mode).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Print a report; a closed stdout is not an error.
pub fn emit(report: &dyn Report, mode: Mode, style: &Style) -> Exit {
    for n in report.notes() {
        crate::messages::say(&crate::text::sanitize(&n, 2000));
    }
    let text = match mode {
        Mode::Quiet => return report.exit(),
        Mode::Json => {
            let mut s = terminal_safe_json(&report.json().to_string());
            s.push('\n');
            s
        }
        Mode::Human => {
            let mut s = report.human(style);
            if !s.is_empty() && !s.ends_with('\n') {
                s.push('\n');
            }
            s
        }
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => report.exit(),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Exit::Ok,
        Err(_) => Exit::Error,
    }
}

/// JSON text with the characters serde_json leaves raw but a terminal would act
/// on (C1 controls, bidi overrides) written as `\uXXXX` escapes: the same JSON
/// value, safe to show. They can only occur inside strings, where escapes are valid.
pub fn terminal_safe_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if crate::text::is_unsafe_char(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Colour decision: `--color`, then `NO_COLOR`, then whether stdout is a terminal.
pub fn style(choice: crate::cli::ColorChoice) -> Style {
    let tty = std::io::stdout().is_terminal();
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let color = match choice {
        crate::cli::ColorChoice::Always => true,
        crate::cli::ColorChoice::Never => false,
        crate::cli::ColorChoice::Auto => tty && !no_color,
    };
    Style { color, tty }
}

/// A table for human output, sized to the terminal when there is one.
pub fn table(header: &[&str], style: &Style) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    if style.tty {
        t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
        t.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    } else {
        t.load_preset(comfy_table::presets::NOTHING);
        t.set_content_arrangement(comfy_table::ContentArrangement::Disabled);
    }
    if style.color {
        // Styling is applied after the widths are measured (also when piped
        // with `--color always`): escape codes never count as width.
        t.enforce_styling();
    } else {
        t.force_no_tty();
    }
    t.set_header(header.iter().map(comfy_table::Cell::new));
    t
}

/// Paint text in a colour when colour is on.
pub fn paint(text: &str, color: comfy_table::Color, style: &Style) -> String {
    if !style.color {
        return text.to_string();
    }
    let code = match color {
        comfy_table::Color::Red => 31,
        comfy_table::Color::Green => 32,
        comfy_table::Color::Yellow => 33,
        _ => 0,
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}
