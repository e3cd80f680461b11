//! The command line as typed: clap derive only, nothing resolved here.
//!
//! Style: the doc comment of each item is its help (first line short, later
//! paragraphs long help); short flags are explicit; value names are upper case;
//! closed sets are `ValueEnum`s; examples go in `after_long_help` as
//! `$ sfx … # what happens`. Durations are parsed here (a bad one is a usage error,
//! exit 2); URLs and the environment are checked in `context.rs`, before any work.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::timefmt::parse_duration;

/// When does this Salesforce access token expire? And keep it fresh.
///
/// Salesforce's token endpoint returns `issued_at` but no `expires_in`. sfx asks the
/// org's introspection endpoint for the exact `exp` (or reads it from a JWT access
/// token), refreshes ahead of expiry, keeps credentials in the OS keychain, and
/// answers scripts with exit codes: 0 valid, 1 error, 2 usage, 3 expired, 4 log in
/// again, 5 network or server trouble, 6 credential store unavailable.
#[derive(Debug, Parser)]
#[command(name = "sfx", version, propagate_version = true, max_term_width = 100)]
#[command(after_long_help = "Examples:
  $ sfx login --auth-url - < auth-url.txt     # import an org from an SFDX auth URL
  $ sfx expires                               # when does the access token die?
  $ sfx expires --within 10m -q || sfx refresh -q
  $ export SF_ACCESS_TOKEN=$(sfx token)       # a valid token, refreshed only if needed")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Which stored org (alias or username); default: the default org, or the only one.
    #[arg(
        short = 'o',
        long,
        global = true,
        env = "SFX_ORG",
        value_name = "ALIAS|USERNAME"
    )]
    pub org: Option<String>,

    /// Print one JSON document on stdout (JSON Lines for `watch`), nothing else.
    #[arg(long, global = true)]
    pub json: bool,

    /// Print nothing on stdout: the exit code is the answer (errors still go to stderr).
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,

    /// Trace HTTP requests on stderr, every secret redacted; repeat for bodies.
    #[arg(short = 'v', long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// When to use colour.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    /// Timeout for each HTTP attempt (e.g. 10s, 1m).
    #[arg(long, global = true, env = "SFX_TIMEOUT", value_name = "DURATION", default_value = "30s", value_parser = duration_arg)]
    pub timeout: Duration,
}

/// Colour on a terminal only (`auto`), always, or never. `NO_COLOR` also turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Login(LoginArgs),
    Introspect(IntrospectArgs),
    Expires(ExpiresArgs),
    Refresh(RefreshArgs),
    Token(TokenArgs),
    Orgs(OrgsArgs),
    Logout(LogoutArgs),
    Completions(CompletionsArgs),
    Doctor(DoctorArgs),
}

/// Log in to an org and store it (here: import existing credentials).
///
/// `--auth-url` imports an SFDX auth URL (`force://<clientId>:<secret>:<refreshToken>@<host>`,
/// what `sf org display --verbose` prints), then makes one refresh to verify it and one
/// userinfo call to learn the user. Secrets are read from stdin or the environment,
/// never from a command-line value.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  $ sfx login --auth-url - --alias prod < auth-url.txt   # import, verify, store
  $ echo \"$REFRESH_TOKEN\" | sfx login --refresh-token - --client-id 3MVG9... --instance-url https://acme.my.salesforce.com
  $ sfx login --access-token - --instance-url https://acme.my.salesforce.com < token.txt")]
pub struct LoginArgs {
    /// Import an SFDX auth URL; `-` reads it from stdin.
    #[arg(long, value_name = "URL|-", group = "flow")]
    pub auth_url: Option<String>,

    /// Import a refresh token read from stdin (give `-`); needs --client-id and --instance-url.
    #[arg(long, value_name = "-", group = "flow")]
    pub refresh_token: Option<String>,

    /// Import an access token read from stdin (give `-`); needs --instance-url. It cannot be refreshed.
    #[arg(long, value_name = "-", group = "flow")]
    pub access_token: Option<String>,

    /// The connected app's consumer key (client id).
    #[arg(long, env = "SFX_CLIENT_ID", value_name = "ID")]
    pub client_id: Option<String>,

    /// Read the client secret from stdin (otherwise `SFX_CLIENT_SECRET`).
    #[arg(long)]
    pub client_secret_stdin: bool,

    /// The org's instance URL (its My Domain), e.g. https://acme.my.salesforce.com.
    #[arg(long, value_name = "URL")]
    pub instance_url: Option<String>,

    /// Where to log in [default: https://login.salesforce.com].
    #[arg(long, value_name = "URL", conflicts_with = "sandbox")]
    pub login_url: Option<String>,

    /// Log in at https://test.salesforce.com (sandboxes).
    #[arg(long)]
    pub sandbox: bool,

    /// A short name for this org [default: the username].
    #[arg(short = 'a', long, value_name = "NAME")]
    pub alias: Option<String>,

    /// Make this the default org.
    #[arg(long)]
    pub set_default: bool,

    /// The org's session timeout, used to estimate expiry when introspection can't answer.
    #[arg(long, value_name = "DURATION", default_value = "2h", value_parser = duration_arg)]
    pub session_timeout: Duration,

    /// Keep secrets in a 0600 file beside the metadata instead of the OS keychain.
    #[arg(long)]
    pub insecure_storage: bool,

    /// Include the token values in `--json` output.
    #[arg(long)]
    pub show_token: bool,

    /// Move an existing org's secrets into the OS keychain (or, with --insecure-storage,
    /// into the file) without logging in again; the old copies are deleted.
    ///
    /// Picks the org with -o (or the default, or the only one). Nothing is sent to
    /// Salesforce. Use it after `sfx login --insecure-storage` once the host has a
    /// working keychain (`sfx doctor` tells).
    #[arg(long, group = "flow", conflicts_with_all = ["alias", "set_default"])]
    pub migrate: bool,
}

/// Ask the org's introspection endpoint about the access (or refresh) token.
///
/// Shows every field Salesforce returns; `exp`, `iat` and `nbf` also as local time,
/// UTC and relative. One request. Exit 0 when active, 3 when inactive.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  $ sfx introspect                 # the access token of the default org
  $ sfx introspect --refresh -o prod
  $ sfx introspect --json | jq .exp")]
pub struct IntrospectArgs {
    /// Introspect the refresh token instead of the access token.
    #[arg(long)]
    pub refresh: bool,
}

/// When does the access token expire, and how sure is that answer?
///
/// In order: a JWT access token's own `exp` (no request); the introspection endpoint
/// (one request, exact as of now); else an estimate from `issued_at` plus the org's
/// session timeout. The answer names its source. Exit 3 when expired or within `--within`.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  $ sfx expires                                  # expires in 1h 52m — … (introspection, …)
  $ sfx expires --within 10m -q || sfx refresh -q
  $ echo $(( $(sfx expires --format seconds) / 60 )) minutes left
  $ sfx expires --all --offline                  # every org, no network")]
pub struct ExpiresArgs {
    /// Exit 3 if the token expires within this window (e.g. 10m).
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub within: Option<Duration>,

    /// Print just one value: human line, RFC 3339, Unix time, or seconds remaining.
    #[arg(long, value_enum, default_value_t = ExpiresFormat::Human, value_name = "FORMAT")]
    pub format: ExpiresFormat,

    /// No network: JWT `exp`, then the cached introspection result, then the estimate.
    #[arg(long)]
    pub offline: bool,

    /// Answer for every stored org, one row each.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExpiresFormat {
    Human,
    Iso,
    Unix,
    Seconds,
}

/// Get a new access token and store it.
///
/// Uses the refresh token (or re-runs the non-interactive grant the org was stored
/// with). A refresh token rotated by Salesforce is stored before anything else.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  $ sfx refresh
  $ sfx refresh --if-expiring-within 15m -q     # only when needed
  $ sfx refresh --format env >> \"$GITHUB_ENV\"    # CI: hand the token to later steps")]
pub struct RefreshArgs {
    /// Refresh only if the best known expiry is within this window (or unknown).
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub if_expiring_within: Option<Duration>,

    /// `env` prints NAME=value lines (SFX_ACCESS_TOKEN, SFX_INSTANCE_URL, SF_…).
    #[arg(long, value_enum, default_value_t = RefreshFormat::Human, value_name = "FORMAT")]
    pub format: RefreshFormat,

    /// Include the token values in `--json` output.
    #[arg(long)]
    pub show_token: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RefreshFormat {
    Human,
    Env,
}

/// Print a valid access token, refreshing first only if needed.
///
/// No request when the token is known to outlive `--min-valid`; otherwise one refresh.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  $ export SF_ACCESS_TOKEN=$(sfx token)
  $ curl -H \"Authorization: Bearer $(sfx token --min-valid 15m)\" \"$INSTANCE/services/data/\"")]
pub struct TokenArgs {
    /// Refresh first if the token has less than this left.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration_arg)]
    pub min_valid: Duration,
}

/// List stored orgs (no network, no keychain).
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  $ sfx orgs
  $ sfx orgs --check     # also ask each org whether its token is alive (exit 3/4/5 on trouble)")]
pub struct OrgsArgs {
    /// Check each org's token against Salesforce.
    #[arg(long)]
    pub check: bool,
}

/// Remove an org's stored credentials.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  $ sfx logout -o prod
  $ sfx logout --revoke -o prod   # revoke at Salesforce first
  $ sfx logout --all")]
pub struct LogoutArgs {
    /// Revoke the refresh token (or the access token) at Salesforce first.
    #[arg(long)]
    pub revoke: bool,

    /// Log out of every stored org.
    #[arg(long)]
    pub all: bool,
}

/// Show where credentials are kept and whether the OS keychain works.
///
/// Tests the keychain by writing, reading back and deleting one test entry (each
/// call bounded by 3 s, so it never hangs), and explains what it finds: no D-Bus
/// session, no Secret Service provider, a locked keychain. Lists which store holds
/// each org's secrets. Exit 6 when the keychain does not work and something needs
/// it (an org stored there, or new logins going there); otherwise 0.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  $ sfx doctor                           # which keychain, does it work, which org is where
  $ sfx doctor --json | jq .keychain.status
  $ sfx doctor -q || sfx login --insecure-storage --auth-url - < auth-url.txt")]
pub struct DoctorArgs {}

/// Print a shell completion script.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  $ sfx completions bash > ~/.local/share/bash-completion/completions/sfx
  $ sfx completions zsh > \"${fpath[1]}/_sfx\"")]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
