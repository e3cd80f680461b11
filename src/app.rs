//! Glue: build the [`Context`], dispatch to the command, render its report, and
//! turn an error into one message on stderr and the contract's exit code.

use std::io::Write;

use crate::cli::{Cli, Command};
use crate::commands;
use crate::context::Context;
use crate::error::Error;
use crate::exit::Exit;
use crate::output::emit;

pub fn run(cli: Cli) -> Result<Exit, Error> {
    no_core_dumps();
    // Needs no org, no store, no network.
    if let Command::Completions(args) = &cli.command {
        let text = commands::completions::run(args);
        let mut out = std::io::stdout().lock();
        return Ok(match out.write_all(text.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Exit::Error,
            _ => Exit::Ok,
        });
    }
    let ctx = Context::new(&cli.global)?;
    let (mode, style) = (ctx.mode, ctx.style);
    Ok(match &cli.command {
        Command::Login(a) if a.from_sf.is_some() => {
            emit(&commands::login::from_sf::run(a, &ctx)?, mode, &style)
        }
        Command::Login(a) if commands::login::default::only_set_default(a, &ctx) => {
            emit(&commands::login::default::run(a, &ctx)?, mode, &style)
        }
        Command::Login(a) if a.migrate => {
            emit(&commands::login::migrate::run(a, &ctx)?, mode, &style)
        }
        Command::Login(a) => emit(&commands::login::run(a, &ctx)?, mode, &style),
        Command::Introspect(a) => emit(&commands::introspect::run(a, &ctx)?, mode, &style),
        Command::Expires(a) => emit(&commands::expires::run(a, &ctx)?, mode, &style),
        Command::Refresh(a) => emit(&commands::refresh::run(a, &ctx)?, mode, &style),
        // Long-running: prints its own event stream; its worker threads share the context.
        Command::Watch(a) => commands::watch::run(a, std::sync::Arc::new(ctx))?,
        Command::Token(a) => emit(&commands::token::run_any(a, &ctx)?, mode, &style),
        Command::Orgs(a) => emit(&commands::orgs::run(a, &ctx)?, mode, &style),
        Command::Logout(a) => emit(&commands::logout::run(a, &ctx)?, mode, &style),
        Command::Doctor(a) => emit(&commands::doctor::run(a, &ctx)?, mode, &style),
        // They write their own stdout: a streamed body, a child's output.
        Command::Api(a) => commands::api::run(a, &ctx)?,
        Command::Exec(a) => commands::exec::run(a, &ctx)?,
        Command::Store(a) => emit(&commands::store::run(a, &ctx)?, mode, &style),
        Command::Completions(_) => Exit::Ok,
    })
}

/// Print the error once (`sfx: error: …`, then a hint) and give its exit code.
pub fn report_error(err: &Error) -> Exit {
    // One line each, whatever a server or a file put into the text.
    let one_line = |s: &str| crate::text::sanitize(s, 2000);
    crate::messages::error(
        &one_line(&err.to_string()),
        err.hint()
            .or_else(|| crate::commands::way_out(err))
            .map(one_line)
            .as_deref(),
    );
    err.exit()
}

/// clap's own errors (exit 2) and `--help`/`--version` (exit 0).
///
/// clap quotes an invalid value as typed; the value may carry escape sequences or
/// bidi overrides (issue #11), so errors are printed as plain text with those
/// characters replaced, like every other message.
pub fn clap_exit(err: clap::Error) -> std::process::ExitCode {
    if err.exit_code() == 0 {
        let _ = err.print();
        return Exit::Ok.into();
    }
    let text = err.render().to_string();
    let safe: Vec<String> = text
        .lines()
        .map(|l| crate::text::sanitize(l, 4000))
        .collect();
    crate::messages::raw(&in_our_words(&safe));
    Exit::Usage.into()
}

/// clap's error (`error: …`, `  tip: …`, `Usage: …`, `For more information…`)
/// in sfx's own shape, so every error has one prefix (issue #21): `sfx: error:`
/// with clap's continuation lines joined, then `sfx: hint:` lines — clap's tips,
/// and the usage with where to read more. Anything else (the help that `sfx`
/// alone prints) is passed on as it is.
fn in_our_words(lines: &[String]) -> String {
    let Some(first) = lines.first().and_then(|l| l.strip_prefix("error: ")) else {
        return lines.join("\n").trim_end().to_string();
    };
    let mut error = first.trim_end().to_string();
    let mut hints: Vec<String> = Vec::new();
    let mut usage: Option<String> = None;
    let mut in_error = true;
    for l in &lines[1..] {
        let t = l.trim();
        if t.is_empty() {
            in_error = false;
        } else if let Some(tip) = t.strip_prefix("tip: ") {
            hints.push(tip.to_string());
        } else if let Some(u) = t.strip_prefix("Usage: ") {
            usage = Some(u.to_string());
        } else if t.starts_with("For more information") {
        } else if in_error {
            error.push(' ');
            error.push_str(t);
        } else {
            hints.push(t.to_string());
        }
    }
    // `sfx expires [OPTIONS]` → `sfx expires --help`.
    let command: Vec<&str> = usage
        .as_deref()
        .unwrap_or("sfx")
        .split_whitespace()
        .take_while(|w| !w.starts_with(['[', '<', '-']))
        .collect();
    let more = format!("`{} --help` says more", command.join(" "));
    hints.push(match &usage {
        Some(u) => format!("usage: {u}; {more}"),
        None => more,
    });
    let mut out = format!("sfx: error: {error}");
    for h in hints {
        out.push_str(&format!("\nsfx: hint: {h}"));
    }
    out
}

/// sfx holds tokens in memory: on Linux it is made non-dumpable, so no core
/// dump writes them to disk and no other process of the same user can read its
/// memory (ptrace, `/proc/<pid>/mem`, `environ`) (issue #24). A program sfx
/// starts (`exec`, hooks) is dumpable again, as exec makes it. Best effort.
fn no_core_dumps() {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    // SAFETY: PR_SET_DUMPABLE takes one integer argument; the rest are ignored.
    let _ = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
}
