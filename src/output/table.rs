//! Tables for people, designed for an 80-column terminal first, and the one
//! palette every command uses for a token's state.
//!
//! # Colours (the same in `orgs`, `orgs --check`, `expires --all`, `watch`, `doctor`)
//!
//! - green: **ok** — the token outlives the window;
//! - yellow: **expiring** — it expires within `--within` when given, else within
//!   [`EXPIRING_SOON`] (10 minutes, `sfx watch`'s default `--refresh-before`), so
//!   `expires in 13s` is never green;
//! - red: **expired** (or inactive);
//! - bold red: **needs login** — no refresh can help, a human must log in;
//! - no colour: unknown, unreachable or another error (nothing to tell by colour).
//!
//! # Layout
//!
//! On a terminal a [`Grid`] measures each column's content and, while the table is
//! wider than the terminal, drops the least useful column (each column says how
//! soon it goes); the columns that remain are never wrapped, so an alias, a
//! username or a time is never broken inside its cell. Colour is applied by the
//! table after measuring, so escape codes never count as width. Piped, every
//! column stays, without borders and without trailing spaces.

use std::time::Duration;

use chrono::{DateTime, Utc};
use comfy_table::{Attribute, Cell, Color, ColumnConstraint, Table};

use super::Style;

/// "Expiring" without `--within`: `sfx watch`'s default `--refresh-before`.
pub const EXPIRING_SOON: Duration = Duration::from_secs(600);

/// A token's state, as every command colours it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Ok,
    Expiring,
    Expired,
    NeedsLogin,
    /// Unknown, unreachable, or another error: not coloured.
    Unknown,
}

impl State {
    /// The state of a token expiring at `exp`, against `--within` (or [`EXPIRING_SOON`]).
    pub fn of(exp: DateTime<Utc>, now: DateTime<Utc>, within: Option<Duration>) -> State {
        let window = within.unwrap_or(EXPIRING_SOON);
        if exp <= now {
            State::Expired
        } else if exp.signed_duration_since(now).to_std().unwrap_or_default() <= window {
            State::Expiring
        } else {
            State::Ok
        }
    }

    fn color(self) -> Option<(Color, bool)> {
        match self {
            State::Ok => Some((Color::Green, false)),
            State::Expiring => Some((Color::Yellow, false)),
            State::Expired => Some((Color::Red, false)),
            State::NeedsLogin => Some((Color::Red, true)),
            State::Unknown => None,
        }
    }

    /// `text` in this state's colour when colour is on (for text outside tables).
    pub fn paint(self, text: &str, style: &Style) -> String {
        match self.color().filter(|_| style.color) {
            Some((c, bold)) => {
                let code = match c {
                    Color::Green => 32,
                    Color::Yellow => 33,
                    _ => 31,
                };
                let bold = if bold { "1;" } else { "" };
                format!("\x1b[{bold}{code}m{text}\x1b[0m")
            }
            None => text.to_string(),
        }
    }
}

/// A column: its header, and how soon it is dropped when the terminal is too
/// narrow (0: never; the highest goes first).
#[derive(Debug, Clone, Copy)]
pub struct Col {
    pub name: &'static str,
    pub drop: u8,
}

pub const fn col(name: &'static str, drop: u8) -> Col {
    Col { name, drop }
}

/// A table's content before it is laid out.
pub struct Grid {
    cols: Vec<Col>,
    rows: Vec<Vec<(String, Option<State>)>>,
}

impl Grid {
    pub fn new(cols: &[Col]) -> Grid {
        Grid {
            cols: cols.to_vec(),
            rows: Vec::new(),
        }
    }

    /// A row of plain cells (text from outside must be sanitized by the caller).
    pub fn row(&mut self, cells: Vec<(String, Option<State>)>) {
        debug_assert_eq!(cells.len(), self.cols.len());
        self.rows.push(cells);
    }

    /// The natural width of each column (its widest cell or header). An empty
    /// column (the default marker when no org is the default) still takes one
    /// character on screen.
    fn widths(&self) -> Vec<usize> {
        (0..self.cols.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| width(&r[i].0))
                    .chain([width(self.cols[i].name), 1])
                    .max()
                    .unwrap_or(1)
            })
            .collect()
    }

    /// Which columns fit in `room` characters (borders and padding included).
    fn fitting(&self, room: usize) -> Vec<bool> {
        let widths = self.widths();
        let mut keep = vec![true; self.cols.len()];
        loop {
            let total: usize = widths
                .iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(w, _)| w + 3)
                .sum::<usize>()
                + 1;
            if total <= room {
                break;
            }
            let next = (0..self.cols.len())
                .filter(|&i| keep[i] && self.cols[i].drop > 0)
                .max_by_key(|&i| (self.cols[i].drop, i));
            match next {
                Some(i) => keep[i] = false,
                None => break,
            }
        }
        keep
    }

    /// The table as text: on a terminal `width` columns wide at most (columns
    /// dropped as needed, none wrapped); piped, every column, plain.
    pub fn render(&self, style: &Style, width: Option<u16>) -> String {
        let keep = match (style.tty, width) {
            (true, Some(w)) => self.fitting(w as usize),
            _ => vec![true; self.cols.len()],
        };
        let header: Vec<&str> = self
            .cols
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(c, _)| c.name)
            .collect();
        let mut t = super::table(&header, style);
        for r in &self.rows {
            t.add_row(
                r.iter()
                    .zip(&keep)
                    .filter(|(_, k)| **k)
                    .map(|((text, state), _)| cell(text, *state, style)),
            );
        }
        for c in t.column_iter_mut() {
            c.set_constraint(ColumnConstraint::ContentWidth);
        }
        trimmed(&t)
    }
}

/// A cell in its state's colour (applied by the table, after measuring).
pub fn cell(text: &str, state: Option<State>, style: &Style) -> Cell {
    let mut c = Cell::new(text);
    if let Some((color, bold)) = state.and_then(State::color).filter(|_| style.color) {
        c = c.fg(color);
        if bold {
            c = c.add_attribute(Attribute::Bold);
        }
    }
    c
}

/// The table's lines without trailing spaces (a piped table ends its last cell
/// with padding otherwise).
pub fn trimmed(t: &Table) -> String {
    t.lines()
        .map(|l| l.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The terminal's width when stdout is one.
pub fn terminal_width(style: &Style) -> Option<u16> {
    if !style.tty {
        return None;
    }
    crossterm::terminal::size()
        .ok()
        .map(|(w, _)| w)
        .filter(|w| *w > 0)
}

/// Lines under a table (`ORG: why`), each wrapped at spaces to `width` on a
/// terminal (continued with an indent), so a long reason never breaks mid-word.
pub fn notes_below(notes: &[String], width: Option<u16>) -> String {
    let mut out = String::new();
    for n in notes {
        out.push('\n');
        match width {
            Some(w) => out.push_str(&wrap(n, (w as usize).saturating_sub(1).max(20), "  ")),
            None => out.push_str(n),
        }
    }
    out
}

/// `text` cut into lines of at most `width` characters at spaces; lines after the
/// first start with `indent`. A word longer than a line stays whole.
pub fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let lead = if lines.is_empty() { 0 } else { indent.len() };
        if !line.is_empty() && lead + width_of(&line) + 1 + width_of(word) > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines.join(&format!("\n{indent}"))
}

fn width_of(s: &str) -> usize {
    s.chars().count()
}

/// Display width of plain text (escape codes never reach a cell).
fn width(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tty() -> Style {
        Style {
            color: true,
            tty: true,
        }
    }

    #[test]
    fn columns_are_dropped_least_useful_first_and_colour_does_not_count() {
        let mut g = Grid::new(&[col("ORG", 0), col("USER", 2), col("TOKEN", 5)]);
        g.row(vec![
            ("org-number-5".into(), None),
            ("someone@example.com".into(), Some(State::Ok)),
            ("00D5g…abcd".into(), Some(State::Expired)),
        ]);
        let wide = g.render(&tty(), Some(80));
        assert!(wide.contains("TOKEN") && wide.contains("\x1b["), "{wide}");
        let narrow = g.render(&tty(), Some(40));
        assert!(!narrow.contains("TOKEN") && narrow.contains("org-number-5"));
        for l in narrow.lines() {
            let plain = regex_free_strip(l);
            assert!(plain.chars().count() <= 40, "{l:?}");
        }
    }

    fn regex_free_strip(s: &str) -> String {
        let mut out = String::new();
        let mut esc = false;
        for c in s.chars() {
            match (esc, c) {
                (false, '\x1b') => esc = true,
                (true, 'm') => esc = false,
                (true, _) => {}
                (false, c) => out.push(c),
            }
        }
        out
    }

    #[test]
    fn states_follow_the_window_or_ten_minutes() {
        let now = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let at = |s: i64| now + chrono::Duration::seconds(s);
        assert_eq!(State::of(at(13), now, None), State::Expiring);
        assert_eq!(State::of(at(601), now, None), State::Ok);
        assert_eq!(
            State::of(at(601), now, Some(Duration::from_secs(3600))),
            State::Expiring
        );
        assert_eq!(State::of(at(0), now, None), State::Expired);
    }
}
