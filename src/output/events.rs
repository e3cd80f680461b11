//! The event stream of `sfx watch`: one [`Event`] per thing that happened to a
//! watched org, printed as JSON Lines (`--json`), as one plain line each (stdout
//! not a terminal), or as a live table redrawn in place (a terminal).
//!
//! # JSON Lines (`sfx watch --json`)
//!
//! One object per line, stable keys (more may be added, none renamed):
//!
//! ```json
//! {"at":"2026-11-21T21:31:07Z","org":"prod","event":"refreshed",
//!  "expires_at":"2026-11-21T23:31:07Z","seconds_remaining":7200,
//!  "message":"new access token, expires in 2h (estimated); the old one had 9m 58s left",
//!  "needs_login":false}
//! ```
//!
//! - `at`: when it happened (RFC 3339, UTC);
//! - `org`: the org's alias (`env` for credentials from the environment);
//! - `event`: `checked` (an expiry check found the token alive), `refreshed` (a new
//!   access token: minted by this watch, or by another sfx process), `expiring`
//!   (inside `--refresh-before` and not refreshed yet: a refresh failed), `expired`
//!   (past its expiry and not refreshed yet), `revoked` (Salesforce says a token that
//!   should be alive is not; a refresh follows at once), `error` (a failure; with
//!   `needs_login` the org is no longer watched);
//! - `expires_at` / `seconds_remaining`: the best known expiry of the current access
//!   token, `null` when unknown (negative seconds when past);
//! - `message`: one human sentence (never a token value);
//! - `needs_login`: `true` only on the `error` that ends the watch of an org because
//!   a human must log in again.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use chrono::{DateTime, Local, Utc};
use serde_json::{Value, json};

use crate::output::{Mode, Style};
use crate::timefmt;

/// What happened (the contract's `event` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Checked,
    Refreshed,
    Expiring,
    Expired,
    Revoked,
    Error,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Checked => "checked",
            Kind::Refreshed => "refreshed",
            Kind::Expiring => "expiring",
            Kind::Expired => "expired",
            Kind::Revoked => "revoked",
            Kind::Error => "error",
        }
    }
}

/// One line of the stream.
#[derive(Debug, Clone)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub org: String,
    pub kind: Kind,
    pub expires_at: Option<DateTime<Utc>>,
    pub message: String,
    pub needs_login: bool,
}

impl Event {
    /// The JSON Lines object (keys documented in the module doc).
    pub fn json(&self) -> Value {
        json!({
            "at": timefmt::rfc3339(self.at),
            "org": self.org,
            "event": self.kind.as_str(),
            "expires_at": self.expires_at.map(timefmt::rfc3339),
            "seconds_remaining": self.expires_at.map(|e| e.signed_duration_since(self.at).num_seconds()),
            "message": self.message,
            "needs_login": self.needs_login,
        })
    }

    /// `2026-11-21T21:31:07Z prod refreshed: new access token, …` (stdout not a terminal).
    pub fn line(&self) -> String {
        format!(
            "{} {} {}: {}",
            timefmt::rfc3339(self.at),
            self.org,
            self.kind.as_str(),
            self.message
        )
    }
}

/// One org in the live table.
pub struct Row {
    pub org: String,
    pub username: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub estimated: bool,
    /// Inside the refresh window.
    pub due: bool,
    pub last: Option<(DateTime<Utc>, Kind)>,
    pub needs_login: bool,
}

/// Where events go: JSON Lines, plain lines, a live table, or (`-q`) only the
/// errors, on stderr. Writing to a closed stdout returns an error of kind
/// `BrokenPipe`; the caller then stops quietly.
pub enum Printer {
    Json,
    Lines,
    Quiet,
    Live(Live),
}

impl Printer {
    /// `clock` paces the live table's redraws (the context's).
    pub fn new(
        mode: Mode,
        style: Style,
        header: String,
        clock: std::sync::Arc<dyn crate::clock::Clock>,
    ) -> Printer {
        match mode {
            Mode::Json => Printer::Json,
            Mode::Quiet => Printer::Quiet,
            Mode::Human if style.tty => Printer::Live(Live {
                style,
                header,
                recent: VecDeque::new(),
                last_draw: None,
                entered: false,
                last_frame: Vec::new(),
                clock,
            }),
            Mode::Human => Printer::Lines,
        }
    }

    pub fn event(&mut self, e: &Event) -> io::Result<()> {
        match self {
            Printer::Json => write_line(&e.json().to_string()),
            Printer::Lines => write_line(&e.line()),
            Printer::Quiet => {
                if e.kind == Kind::Error {
                    crate::messages::say(&format!("{}: {}", e.org, e.message));
                }
                Ok(())
            }
            Printer::Live(l) => {
                l.remember(e);
                Ok(())
            }
        }
    }

    /// When the live table wants redrawing next (once a second, for the countdown).
    pub fn next_draw(&self) -> Option<Instant> {
        match self {
            Printer::Live(l) => Some(
                l.last_draw
                    .map_or_else(|| l.clock.instant(), |t| t + Duration::from_secs(1)),
            ),
            _ => None,
        }
    }

    /// Whether [`Printer::draw`] would draw now: only then are the rows worth
    /// making (10,000 orgs are 20,000 strings, and the watch loops at every
    /// event; issue #23).
    pub fn wants_frame(&self) -> bool {
        matches!(self, Printer::Live(l)
            if l.last_draw.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)))
    }

    /// Redraw the live table if it is time (at most once a second).
    pub fn draw(&mut self, rows: &[Row], now: DateTime<Utc>) -> io::Result<()> {
        match self {
            Printer::Live(l)
                if l.last_draw.is_none_or(|t| {
                    l.clock.instant().saturating_duration_since(t) >= Duration::from_secs(1)
                }) =>
            {
                l.draw(rows, now)
            }
            _ => Ok(()),
        }
    }

    /// Last frame, and the terminal as it was (cursor shown).
    pub fn finish(&mut self, rows: &[Row], now: DateTime<Utc>) {
        if let Printer::Live(l) = self {
            let _ = l.draw(rows, now);
            l.restore();
        }
    }
}

fn write_line(s: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

/// How many recent events the live view keeps; it lists as many of the latest
/// as fit under the table on the screen (at least [`RECENT_MIN`]).
const RECENT: usize = 200;
const RECENT_MIN: usize = 3;

/// The terminal view: a table with a countdown per org, then the latest events,
/// redrawn in place on the alternate screen. Meanwhile sfx's own stderr messages
/// are held by [`crate::messages`] and listed under the table instead (a child
/// process's stderr, e.g. an `--exec` hook's, is painted over at the next frame).
/// At the end the terminal is restored — main screen,
/// cursor shown — and the last frame is printed there, so it stays visible.
pub struct Live {
    style: Style,
    header: String,
    recent: VecDeque<String>,
    last_draw: Option<Instant>,
    /// The alternate screen is in use.
    entered: bool,
    last_frame: Vec<String>,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
}

impl Live {
    fn remember(&mut self, e: &Event) {
        let at = e.at.with_timezone(&Local).format("%H:%M:%S");
        self.recent
            .push_back(format!("{at} {} {}: {}", e.org, e.kind.as_str(), e.message));
        while self.recent.len() > RECENT {
            self.recent.pop_front();
        }
    }

    /// Messages other parts of sfx meant for stderr while the table owns the
    /// terminal ([`crate::messages`] queues them): listed with the recent events.
    fn take_messages(&mut self) {
        for m in crate::messages::take_queued() {
            for line in m.lines() {
                self.recent.push_back(line.to_string());
            }
        }
        while self.recent.len() > RECENT {
            self.recent.pop_front();
        }
    }

    /// One line per org at any width: the least useful columns go first (USER,
    /// then LAST EVENT, then EXPIRES AT), none is wrapped.
    fn frame(&self, rows: &[Row], now: DateTime<Utc>, width: u16, height: u16) -> Vec<String> {
        use crate::output::table::{Grid, State, col};
        let mut g = Grid::new(&[
            col("ORG", 0),
            col("USER", 4),
            col("EXPIRES AT", 2),
            col("LEFT", 0),
            col("LAST EVENT", 3),
        ]);
        // Room for the banner, the borders, a few events and the free last row:
        // with more orgs than that, the most urgent are shown (in their order).
        let room_rows = (height as usize)
            .saturating_sub(1 + 4 + RECENT_MIN + 1 + 1)
            .max(1);
        let hidden = rows.len().saturating_sub(room_rows);
        let shown: Vec<&Row> = if hidden == 0 {
            rows.iter().collect()
        } else {
            let mut by_urgency: Vec<usize> = (0..rows.len()).collect();
            by_urgency.sort_by_key(|&i| {
                let r = &rows[i];
                (!r.needs_login, !r.due, r.expires_at.is_some(), r.expires_at)
            });
            let mut keep: Vec<usize> = by_urgency.into_iter().take(room_rows).collect();
            keep.sort_unstable();
            keep.into_iter().map(|i| &rows[i]).collect()
        };
        for r in shown {
            let exp = r.expires_at.map_or("unknown".to_string(), |e| {
                let s = timefmt::table_time(e, now, true);
                if r.estimated {
                    format!("{s} (est.)")
                } else {
                    s
                }
            });
            let (left, state) = if r.needs_login {
                ("needs login".to_string(), Some(State::NeedsLogin))
            } else {
                match r.expires_at {
                    None => ("?".to_string(), None),
                    Some(e) if e <= now => ("expired".to_string(), Some(State::Expired)),
                    Some(e) => (
                        timefmt::humanize(
                            e.signed_duration_since(now).to_std().unwrap_or_default(),
                        ),
                        // Inside its --refresh-before: the watch's own window.
                        Some(if r.due { State::Expiring } else { State::Ok }),
                    ),
                }
            };
            let last = r.last.map_or(String::new(), |(at, k)| {
                format!(
                    "{} {}",
                    k.as_str(),
                    at.with_timezone(&Local).format("%H:%M:%S")
                )
            });
            g.row(vec![
                (crate::text::sanitize(&r.org, 100), None),
                (
                    crate::text::sanitize(r.username.as_deref().unwrap_or(""), 100),
                    None,
                ),
                (exp, None),
                (left, state),
                (last, None),
            ]);
        }
        let room = width as usize - 1;
        let mut lines = vec![cut(&self.header, room)];
        lines.extend(
            g.render(&self.style, Some(width - 1))
                .lines()
                .map(str::to_string),
        );
        if hidden > 0 {
            lines.push(cut(
                &format!("… and {hidden} more orgs, less urgent (`sfx orgs` lists every one)"),
                room,
            ));
        }
        // The last row stays free (writing past it would scroll).
        let fit = (height as usize)
            .saturating_sub(1 + lines.len())
            .max(RECENT_MIN);
        let skip = self.recent.len().saturating_sub(fit);
        lines.extend(self.recent.iter().skip(skip).map(|l| cut(l, room)));
        lines
    }

    fn draw(&mut self, rows: &[Row], now: DateTime<Utc>) -> io::Result<()> {
        use crossterm::{cursor, queue, terminal};
        let (width, height) = terminal::size().unwrap_or((100, 30));
        let (width, height) = (width.max(20), height.max(3));
        if !self.entered {
            // From here until `restore`, stderr waits: a note must not tear the table.
            crate::messages::live_begin();
        }
        self.take_messages();
        let lines = self.frame(rows, now, width, height);
        let mut out = io::stdout().lock();
        if !self.entered {
            self.entered = true;
            queue!(out, terminal::EnterAlternateScreen, cursor::Hide)?;
        }
        queue!(out, cursor::MoveTo(0, 0))?;
        // Leave the last row free: writing past it would scroll.
        for line in lines.iter().take(height as usize - 1) {
            out.write_all(line.as_bytes())?;
            queue!(out, terminal::Clear(terminal::ClearType::UntilNewLine))?;
            out.write_all(b"\n")?;
        }
        queue!(out, terminal::Clear(terminal::ClearType::FromCursorDown))?;
        out.flush()?;
        self.last_frame = lines;
        self.last_draw = Some(self.clock.instant());
        Ok(())
    }

    fn restore(&mut self) {
        if !std::mem::take(&mut self.entered) {
            return;
        }
        let mut out = io::stdout().lock();
        let _ = crossterm::execute!(
            out,
            crossterm::terminal::LeaveAlternateScreen,
            crossterm::cursor::Show
        );
        for line in &self.last_frame {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
        drop(out);
        // The terminal is back: what was held for stderr is written now, in order.
        crate::messages::live_end();
    }
}

/// At most `n` characters of `s`: a line of the live view must not wrap.
fn cut(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

impl Drop for Live {
    fn drop(&mut self) {
        self.restore();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_frame_fits_the_screen_with_many_orgs_most_urgent_first() {
        let now = DateTime::from_timestamp(1_795_290_067, 0).unwrap();
        let live = Live {
            style: Style {
                color: true,
                tty: true,
            },
            header: "sfx watch: refresh 10m before expiry, keep-alive 24h; Ctrl-C stops".into(),
            recent: (0..50).map(|i| format!("event {i}")).collect(),
            last_draw: None,
            entered: false,
            last_frame: Vec::new(),
            clock: std::sync::Arc::new(crate::clock::SystemClock),
        };
        let rows: Vec<Row> = (0..40)
            .map(|i| Row {
                org: format!("org-number-{i}"),
                username: Some(format!("user{i}@example-company.com")),
                expires_at: Some(now + chrono::Duration::seconds(3600 + i)),
                estimated: false,
                due: i == 33,
                last: Some((now, Kind::Checked)),
                needs_login: i == 37,
            })
            .collect();
        let lines = live.frame(&rows, now, 80, 24);
        assert!(
            lines.len() <= 23,
            "{} lines:\n{}",
            lines.len(),
            lines.join("\n")
        );
        let all = lines.join("\n");
        assert!(
            all.contains(" org-number-33 ") && all.contains(" org-number-37 "),
            "{all}"
        );
        assert!(
            all.contains("more orgs") && all.contains("event 49"),
            "{all}"
        );
        for l in &lines {
            let plain: String = {
                let mut out = String::new();
                let mut esc = false;
                for c in l.chars() {
                    match (esc, c) {
                        (false, '\x1b') => esc = true,
                        (true, 'm') => esc = false,
                        (true, _) => {}
                        (false, c) => out.push(c),
                    }
                }
                out
            };
            assert!(plain.chars().count() < 80, "{plain:?}");
        }
    }

    #[test]
    fn json_has_the_contract_keys_and_counts_seconds_from_the_event() {
        let at = DateTime::from_timestamp(1_795_290_067, 0).unwrap();
        let e = Event {
            at,
            org: "prod".into(),
            kind: Kind::Checked,
            expires_at: Some(at + chrono::Duration::seconds(6720)),
            message: "active".into(),
            needs_login: false,
        };
        let v = e.json();
        assert_eq!(v["at"], "2026-11-21T19:41:07Z");
        assert_eq!(v["event"], "checked");
        assert_eq!(v["expires_at"], "2026-11-21T21:33:07Z");
        assert_eq!(v["seconds_remaining"], 6720);
        assert_eq!(e.line(), "2026-11-21T19:41:07Z prod checked: active");
        let none = Event {
            expires_at: None,
            ..e
        };
        assert!(none.json()["expires_at"].is_null());
        assert!(none.json()["seconds_remaining"].is_null());
    }
}
