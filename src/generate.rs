//! Generated documentation: shell completions (clap_complete) and man pages
//! (clap_mangen), both derived from [`Cli`]'s definition only. They are checked in
//! under `completions/` and `man/`; `tests/generated.rs` fails when they drift and
//! rewrites them with `SFX_UPDATE_GENERATED=1`. Undated, so a render is reproducible.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// The command as documented: the plain package version (no commit), so generated
/// files do not change with every commit.
fn command() -> clap::Command {
    let mut cmd = Cli::command().version(env!("CARGO_PKG_VERSION"));
    cmd.build();
    cmd
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
    String::from_utf8_lossy(&buf).into_owned()
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
    let man = clap_mangen::Man::new(cmd)
        .source(format!("sfx {}", env!("CARGO_PKG_VERSION")))
        .manual("sfx manual");
    let mut buf = Vec::new();
    // Rendering into a Vec cannot fail.
    let _ = man.render(&mut buf);
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    text.push_str(COMMON_SECTIONS);
    (man.get_filename(), text)
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
