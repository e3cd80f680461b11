//! Generated documentation: shell completions (clap_complete) and man pages
//! (clap_mangen), both derived from [`Cli`](crate::cli::Cli)'s definition only. They are checked in
//! under `completions/` and `man/`; `tests/generated.rs` fails when they drift and
//! rewrites them with `SFX_UPDATE_GENERATED=1`. Undated, so a render is reproducible.

use clap_complete::Shell;

/// The command as documented: the plain package version (no commit), so generated
/// files do not change with every commit.
fn command() -> clap::Command {
    // Set on every command: the definition is already built (version propagated).
    crate::cli::command()
        .version(env!("CARGO_PKG_VERSION"))
        .mut_subcommands(|s| s.version(env!("CARGO_PKG_VERSION")))
}

/// `(file name, script)` for every supported shell.
pub fn completions() -> Vec<(String, String)> {
    [
        (Shell::Bash, "sfx.bash"),
        (Shell::Zsh, "_sfx"),
        (Shell::Fish, "sfx.fish"),
        (Shell::PowerShell, "_sfx.ps1"),
        (Shell::Elvish, "sfx.elv"),
    ]
    .into_iter()
    .map(|(shell, name)| (name.to_string(), completion(shell)))
    .collect()
}

/// One shell's completion script (what `sfx completions <shell>` prints).
pub fn completion(shell: Shell) -> String {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut command(), "sfx", &mut buf);
    let script = String::from_utf8_lossy(&buf).into_owned();
    complete_aliases(shell, &script)
}

/// The stored aliases, as the scripts ask for them: the local metadata file only
/// (no keychain, no network: `--store local` even when SFX_STORE names a server).
const ALIASES: &str = "sfx orgs --aliases --store local 2>/dev/null";

/// `-o`/`--org` completes the stored aliases instead of file names (bash, zsh,
/// fish; clap_complete knows only static values, so its script is adjusted).
fn complete_aliases(shell: Shell, script: &str) -> String {
    match shell {
        Shell::Bash => {
            let mut out = String::new();
            let mut org_case = false;
            for line in script.lines() {
                let t = line.trim();
                if org_case && t == r#"COMPREPLY=($(compgen -f "${cur}"))"# {
                    let indent = &line[..line.len() - line.trim_start().len()];
                    out.push_str(&format!(
                        r#"{indent}COMPREPLY=($(compgen -W "$({ALIASES})" -- "${{cur}}"))"#
                    ));
                } else {
                    out.push_str(line);
                }
                out.push('\n');
                org_case = t == "--org)" || t == "-o)";
            }
            out
        }
        Shell::Zsh => {
            script
                .lines()
                .map(|l| {
                    if l.starts_with("'-o+[") || l.starts_with("'--org=[") {
                        l.replace(
                            ":ALIAS|USERNAME:_default'",
                            &format!(r#":ALIAS|USERNAME:{{compadd -- ${{(f)"$({ALIASES})"}}}}'"#),
                        )
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        }
        Shell::Fish => {
            script
                .lines()
                .map(|l| {
                    if l.contains(" -s o -l org ") && l.ends_with(" -r") {
                        format!(r#"{l} -f -a "({ALIASES})""#)
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        }
        _ => script.to_string(),
    }
}

/// `(file name, roff)`: `sfx.1` and one `sfx-<command>.1` per command.
pub fn man_pages() -> Vec<(String, String)> {
    let root = command();
    let mut pages = vec![page(root.clone())];
    for sub in root
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        pages.push(page(sub.clone()));
    }
    pages
}

fn page(cmd: clap::Command) -> (String, String) {
    // The examples get their own EXAMPLES section, set without filling (clap_mangen
    // would fill and hyphenate them under EXTRA, breaking commands mid-word).
    let examples = cmd
        .get_after_long_help()
        .map(|h| h.to_string())
        .unwrap_or_default();
    let cmd = cmd.after_long_help(None::<&'static str>);
    let man = clap_mangen::Man::new(cmd)
        .source(format!("sfx {}", env!("CARGO_PKG_VERSION")))
        .manual("sfx manual");
    let mut buf = Vec::new();
    // Rendering into a Vec cannot fail.
    let _ = man.render(&mut buf);
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    // No hyphenation: the text is full of flags, paths and `{placeholders}`.
    if let Some(end) = text
        .find(".TH ")
        .and_then(|at| text[at..].find('\n').map(|n| at + n + 1))
    {
        text.insert_str(end, ".nh\n");
    }
    // `help` is a subcommand but has no page of its own.
    text = text.replace(
        "sfx\\-help(1)\nPrint this message or the help of the given subcommand(s)",
        "sfx help [COMMAND]\nThe help of sfx, or of one command (as \\fB\\-\\-help\\fR)",
    );
    let examples = examples_section(&examples);
    match text.find(".SH VERSION") {
        Some(at) => text.insert_str(at, &examples),
        None => text.push_str(&examples),
    }
    text.push_str(COMMON_SECTIONS);
    (man.get_filename(), text)
}

/// Width of an example line in a man page rendered at 80 columns (7 of indent).
const EXAMPLE_WIDTH: usize = 72;

/// `Examples:\n  $ cmd   # why` as an EXAMPLES section in no-fill mode: a
/// comment that would not fit beside its command goes on the line above it, and a
/// long command is continued with ` \` at a space outside quotes, so each line can
/// be pasted as it is.
fn examples_section(help: &str) -> String {
    let mut lines = Vec::new();
    for line in help.lines().skip_while(|l| l.trim() == "Examples:") {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (cmd, comment) = match line.find("  #") {
            Some(at) => (line[..at].trim_end(), Some(line[at..].trim())),
            None => (line, None),
        };
        let joined = comment.map_or(cmd.to_string(), |c| format!("{cmd}   {c}"));
        if joined.chars().count() <= EXAMPLE_WIDTH {
            lines.push(joined);
            continue;
        }
        if let Some(c) = comment {
            lines.push(c.to_string());
        }
        lines.extend(continued(cmd));
    }
    if lines.is_empty() {
        return String::new();
    }
    let body: Vec<String> = lines.iter().map(|l| roff_escape(l)).collect();
    format!(".SH EXAMPLES\n.nf\n{}\n.fi\n", body.join("\n"))
}

/// A command cut into lines of at most [`EXAMPLE_WIDTH`] at spaces outside quotes,
/// each but the last ending in ` \` (a word longer than a line stays whole).
fn continued(cmd: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let (mut cur, mut quote) = (String::new(), None);
    for c in cmd.chars() {
        match (c, quote) {
            ('\'' | '"', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            (' ', None) => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let mut out: Vec<String> = Vec::new();
    let mut line = String::new();
    for w in words {
        let indent = if out.is_empty() { "" } else { "    " };
        if !line.is_empty() && indent.len() + line.len() + 1 + w.len() + 2 > EXAMPLE_WIDTH {
            out.push(format!("{indent}{line} \\"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&w);
    }
    let indent = if out.is_empty() { "" } else { "    " };
    out.push(format!("{indent}{line}"));
    out
}

/// Text as roff shows it literally: backslashes, hyphens (`\-`, so they are not
/// hyphenation points), quotes, and a control character at the start of a line.
fn roff_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            '\'' => out.push_str("\\*(Aq"),
            _ => out.push(c),
        }
    }
    if out.starts_with('.') {
        out.insert_str(0, "\\&");
    }
    out
}

/// EXIT STATUS, ENVIRONMENT and FILES, as the contract states them.
const COMMON_SECTIONS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Success; for \fBexpires\fR, \fBintrospect\fR and \fBtoken\fR: the token is valid (and, with \fB\-\-within\fR, outlives the window).
.TP
\fB1\fR
Any other error.
.TP
\fB2\fR
Usage error: unknown flag, bad duration, bad URL, missing input.
.TP
\fB3\fR
The token is expired, inactive, revoked, or expires within \fB\-\-within\fR.
.TP
\fB4\fR
A human must log in again: the refresh was refused (invalid_grant), there is no way to refresh, or the org is unknown.
.TP
\fB5\fR
Network or server trouble: unreachable, timeout, 5xx/429 after retries, a body that is not what Salesforce sends.
.TP
\fB6\fR
The credential store (keychain) is unavailable or locked.
.TP
\fB130\fR
Interrupted (SIGINT).
.SH ENVIRONMENT
.TP
\fBSFX_ORG\fR
The org to use, as \fB\-o\fR.
.TP
\fBSFX_TIMEOUT\fR
Per-request timeout, as \fB\-\-timeout\fR (default 30s).
.TP
\fBSFX_HOME\fR
Where metadata, the insecure secrets file and locks live (default: ~/.config/sfx).
.TP
\fBSFX_CREDENTIAL_STORE\fR
\fBfile\fR keeps secrets in a 0600 file instead of the OS keychain; \fBkeychain\fR is the default.
.TP
\fBSFX_AUTH_URL\fR
An SFDX auth URL (force://<clientId>:<clientSecret>:<refreshToken>@<host>): the org for this run; nothing is read from or written to disk.
.TP
\fBSFX_REFRESH_TOKEN\fR, \fBSFX_CLIENT_ID\fR, \fBSFX_CLIENT_SECRET\fR, \fBSFX_INSTANCE_URL\fR, \fBSFX_LOGIN_URL\fR
A refresh token with its app's client id (and secret) and the org's URL: the org for this run.
.TP
\fBSFX_ACCESS_TOKEN\fR
An access token (with \fBSFX_INSTANCE_URL\fR): the org for this run; it cannot be refreshed.
.TP
\fBSFX_NO_INPUT\fR
Never prompt; fail with exit 2 naming the missing flag or variable.
.TP
\fBNO_COLOR\fR
No colour.
.SH FILES
.TP
\fI$SFX_HOME/orgs.json\fR
Non-secret metadata of the stored orgs (never touches the keychain).
.TP
\fI$SFX_HOME/secrets.json\fR
Secrets of orgs stored with \fB\-\-insecure\-storage\fR (mode 0600).
.TP
\fI$SFX_HOME/locks/\fR
Per-org refresh locks.
"#;
