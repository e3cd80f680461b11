//! The command line as typed: clap derive only, nothing resolved here.
//!
//! Style: the doc comment of each item is its help (first line short, later
//! paragraphs long help); short flags are explicit; value names are upper case;
//! closed sets are `ValueEnum`s; examples go in `after_long_help` as
//! `$ sfx … # what happens`. Durations are parsed here against their ranges in `limits.rs` (a bad
//! one is a usage error, exit 2, naming the flag and the range); URLs and the environment are checked in `context.rs`, before any work.

// Doc comments here are `--help` text for a terminal, where a bare URL is what a
// reader wants; rustdoc's `<…>` link syntax would show up literally in the help.
#![allow(rustdoc::bare_urls)]

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::limits;

mod login;
pub use login::{LoginArgs, MigrateTo};

/// When does this Salesforce access token expire? And keep it fresh.
///
/// Salesforce's token endpoint returns `issued_at` but no `expires_in`. sfx asks the
/// org's introspection endpoint for the exact `exp` (or reads it from a JWT access
/// token), refreshes ahead of expiry, keeps credentials in the OS keychain, and
/// answers scripts with exit codes: 0 valid, 1 error, 2 usage, 3 expired, 4 log in
/// again, 5 network or server trouble, 6 credential store unavailable.
#[derive(Debug, Parser)]
#[command(name = "sfx", version = env!("SFX_VERSION"), propagate_version = true)]
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

/// Options every command takes (listed under "Global options" in every help).
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
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

    /// Where orgs live: `local` (default) or a shared Redis/Valkey store,
    /// redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS).
    ///
    /// The shared store lets many machines use one login: one refresh per org
    /// across all of them. Secrets are encrypted with SFX_STORE_KEY before they
    /// are sent; keys start with SFX_STORE_NAMESPACE (default `sfx`). Prefer the
    /// variable to the flag when the URL holds a password (argv is visible to
    /// other users).
    #[arg(
        long,
        global = true,
        env = "SFX_STORE",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub store: Option<String>,

    /// Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h).
    #[arg(long, global = true, env = "SFX_TIMEOUT", value_name = "DURATION", default_value = "30s", value_parser = |s: &str| limits::TIMEOUT.parse(s))]
    pub timeout: Duration,

    /// With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h).
    ///
    /// A reader (SFX_STORE_KEY holds a reader key) never refreshes: it asks the
    /// refreshers through the shared store and waits this long for a `sfx watch`
    /// holding the refresher key to answer; none does: exit 5.
    #[arg(long, global = true, env = "SFX_WAIT", value_name = "DURATION", default_value = "60s", value_parser = |s: &str| limits::WAIT.parse(s))]
    pub wait: Duration,

    /// Whether `org` came from SFX_ORG rather than `-o` (messages name the variable).
    #[arg(skip)]
    pub org_from_env: bool,
}

/// Colour on a terminal only (`auto`), always, or never. `NO_COLOR` also turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

// Parsed once per run: the size of the login variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    Login(LoginArgs),
    Introspect(IntrospectArgs),
    Expires(ExpiresArgs),
    Refresh(RefreshArgs),
    Watch(WatchArgs),
    Token(TokenArgs),
    Orgs(OrgsArgs),
    Logout(LogoutArgs),
    Completions(CompletionsArgs),
    Doctor(DoctorArgs),
    Api(ApiArgs),
    Exec(ExecArgs),
    Store(StoreArgs),
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
    /// Exit 3 if the token expires within this window (e.g. 10m; up to 366d).
    #[arg(long, value_name = "DURATION", value_parser = |s: &str| limits::WITHIN.parse(s))]
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
    /// Refresh only if the best known expiry is within this window (or unknown); up to 366d.
    #[arg(long, value_name = "DURATION", value_parser = |s: &str| limits::IF_EXPIRING_WITHIN.parse(s))]
    pub if_expiring_within: Option<Duration>,

    /// `env` prints NAME=value lines (SFX_ACCESS_TOKEN, SFX_INSTANCE_URL, SF_ACCESS_TOKEN,
    /// SF_INSTANCE_URL, SF_TARGET_ORG, SF_ORG_INSTANCE_URL).
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

/// Stay running: refresh tokens ahead of expiry, keep refresh tokens alive.
///
/// Re-checks each watched org's expiry by introspection at a pace that follows the
/// remaining lifetime (sleeping in between), refreshes within `--refresh-before`,
/// refreshes an org whose refresh token has been idle for `--keepalive`, and reports
/// revocation. On a terminal it shows a live table; otherwise one line per event
/// (JSON Lines with `--json`). A watch of one org exits 4 once it needs a new
/// login; `--all` keeps running (an empty store, every org needing a login) and
/// picks up orgs logged in later. SIGTERM exits 0, SIGINT 130.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  $ sfx watch                           # live countdown for the default org
  $ sfx watch --all --json              # every stored org, JSON Lines events
  $ sfx watch --exec ./push-token.sh    # hand on each new token (in $SFX_ACCESS_TOKEN)
  $ SFX_AUTH_URL=… sfx watch --exec ./push-token.sh   # CI sidecar: nothing on disk
  $ sfx watch --all --listen 127.0.0.1:9464   # Prometheus scrapes /metrics; /healthz, /readyz")]
pub struct WatchArgs {
    /// Watch every stored org, not only the selected one.
    #[arg(long)]
    pub all: bool,

    /// Refresh when the access token expires within this window (up to 366d).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = |s: &str| limits::REFRESH_BEFORE.parse(s))]
    pub refresh_before: Duration,

    /// Refresh an org whose refresh token has not been used for this long (from 1s to 366d).
    ///
    /// Keeps refresh tokens alive under idle-expiry policies ("expire refresh token if
    /// not used for N").
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = |s: &str| limits::KEEPALIVE.parse(s))]
    pub keepalive: Duration,

    /// After each refresh, run this command through the shell.
    ///
    /// It gets SFX_ORG, SFX_ACCESS_TOKEN and SFX_INSTANCE_URL in its environment (never
    /// on its command line), and none of SFX_AUTH_URL, SFX_REFRESH_TOKEN,
    /// SFX_CLIENT_SECRET, SFX_STORE_KEY, SFX_STORE; its output goes to stderr; its
    /// failure is reported, not fatal.
    /// It runs beside the refreshes, never holding them up.
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,

    /// Serve Prometheus metrics and health checks on this address.
    ///
    /// `GET /metrics` (Prometheus text format: per-org token expiry, needs-login,
    /// refresh and check counters, refresh durations), `GET /healthz` (200 while the
    /// watch's scheduler runs), `GET /readyz` (200 when every watched org has a valid
    /// token, else 503 listing those that have not). ADDR:PORT, e.g. 127.0.0.1:9464;
    /// `:9464` listens on every interface. A busy or invalid address is a usage error.
    #[arg(long, value_name = "ADDR:PORT", value_parser = crate::metrics::server::parse_listen)]
    pub listen: Option<std::net::SocketAddr>,
    /// Kill an --exec command (and every process it started) that runs longer than this.
    ///
    /// From 1s to 24h. The timeout is reported as an error event; the watch goes on.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = |s: &str| limits::EXEC_TIMEOUT.parse(s))]
    pub exec_timeout: Duration,

    /// Shortest pause between two checks of one org (for tests; default 30s).
    #[arg(long, hide = true, env = "SFX_WATCH_MIN_CHECK", value_name = "DURATION", default_value = "30s", value_parser = |s: &str| limits::WATCH_MIN_CHECK.parse(s))]
    pub min_check: Duration,

    /// Longest pause between two checks of one org (for tests; default 15m).
    #[arg(long, hide = true, env = "SFX_WATCH_MAX_CHECK", value_name = "DURATION", default_value = "15m", value_parser = |s: &str| limits::WATCH_MAX_CHECK.parse(s))]
    pub max_check: Duration,
}

/// Print a valid access token, refreshing first only if needed.
///
/// No request when the token is known to outlive `--min-valid`; otherwise one refresh.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  $ export SF_ACCESS_TOKEN=$(sfx token)
  $ curl -H \"Authorization: Bearer $(sfx token --min-valid 15m)\" \"$INSTANCE/services/data/\"
  $ sfx token --auth-url -o prod | gh secret set SFX_AUTH_URL   # a CI secret")]
pub struct TokenArgs {
    /// Refresh first if the token has less than this left (up to 366d).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = |s: &str| limits::MIN_VALID.parse(s))]
    pub min_valid: Duration,

    /// `env` prints NAME=value lines (SFX_ACCESS_TOKEN, SFX_INSTANCE_URL, SF_…) instead of the bare token.
    #[arg(long, value_enum, default_value_t = RefreshFormat::Human, value_name = "FORMAT")]
    pub format: RefreshFormat,

    /// Print the org's SFDX auth URL (it holds the refresh token) instead, e.g. for a CI secret.
    ///
    /// On a terminal only after a confirmation. When the org's app rotates refresh
    /// tokens, a warning says that the URL dies at the first refresh made elsewhere.
    #[arg(long, conflicts_with = "format")]
    pub auth_url: bool,
}

/// Call the org's REST API with a valid token: refresh first if needed, and once
/// more on a 401.
///
/// PATH starts with `/` and is relative to the org's instance URL; `{version}` in it
/// becomes the org's latest API version (asked once from /services/data, then
/// remembered). The token is refreshed first when it expires within --min-valid. On
/// a 401 the org is read again (another process may have refreshed it), else
/// refreshed, and the request is sent once more with the same body; a second 401,
/// or a refused refresh, exits 4. Only GET and HEAD are retried on 429/503.
///
/// The body goes to stdout as received (JSON is pretty-printed on a terminal);
/// -i prints the status line and headers first. Exit 0 for 2xx and 3xx (redirects
/// are not followed), 1 for another 4xx (Salesforce's `errorCode: message` on
/// stderr), 4 when a login is needed, 5 for 5xx, 429 or network trouble.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  $ sfx api /services/data/{version}/limits                   # GET, pretty on a terminal
  $ sfx api '/services/data/{version}/query?q=SELECT Id FROM Account LIMIT 5'
  $ sfx api -X PATCH /services/data/v62.0/sobjects/Account/001xx --data '{\"Name\":\"Acme\"}'
  $ sfx api -X POST /services/data/{version}/sobjects/Account --data @account.json
  $ sfx api -i -X HEAD /services/data/                        # status and headers only")]
pub struct ApiArgs {
    /// The path under the instance URL, e.g. /services/data/{version}/limits.
    #[arg(value_name = "PATH")]
    pub path: String,

    /// The HTTP method [default: GET, or POST with --data].
    #[arg(short = 'X', long, value_name = "METHOD")]
    pub method: Option<String>,

    /// A request header, `Name: value`; repeat for more. Authorization is sfx's own.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// The request body: @FILE reads a file, - reads stdin, anything else is sent as is (at most 64 MiB).
    #[arg(
        short = 'd',
        long,
        value_name = "@FILE|-|TEXT",
        allow_hyphen_values = true
    )]
    pub data: Option<String>,

    /// Print the status line and the response headers before the body.
    #[arg(short = 'i', long)]
    pub include: bool,

    /// Refresh first if the token has less than this left (up to 366d).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = |s: &str| limits::MIN_VALID.parse(s))]
    pub min_valid: Duration,
}

/// Run a command with a valid token in its environment, never on its command line.
///
/// CMD gets SFX_ORG, SFX_ACCESS_TOKEN, SFX_INSTANCE_URL, and for the Salesforce CLI
/// SF_ACCESS_TOKEN, SF_INSTANCE_URL, SF_ORG_INSTANCE_URL and SF_TARGET_ORG (the
/// access token, which `sf` takes as its target org), and none of SFX_AUTH_URL,
/// SFX_REFRESH_TOKEN, SFX_CLIENT_SECRET, SFX_STORE_KEY, SFX_STORE: a nested sfx runs
/// on the token it was handed. The token is refreshed first when it expires within
/// --min-valid. Standard streams are inherited; SIGINT and
/// SIGTERM sent to sfx are passed on. sfx exits with the command's code (128+N when
/// signal N ended it, 127 when it cannot be found, 126 when it cannot be run); when
/// sfx fails before the command starts it uses its own codes and says so.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  $ sfx exec -- sf project deploy start            # no `sf org login` needed
  $ sfx exec -o prod -- ./nightly-export.sh         # the script reads $SFX_ACCESS_TOKEN
  $ sfx exec --min-valid 1h -- python load.py       # a token good for the whole run")]
pub struct ExecArgs {
    /// Refresh first if the token has less than this left (up to 366d).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = |s: &str| limits::MIN_VALID.parse(s))]
    pub min_valid: Duration,

    /// The command and its arguments (after `--`).
    #[arg(value_name = "CMD", num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<std::ffi::OsString>,
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

    /// Print only the stored aliases, one a line (for shell completion of `-o`).
    #[arg(long, hide = true, conflicts_with = "check")]
    pub aliases: bool,
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

/// Keys of the shared store.
///
/// `sfx store reader-key` prints the reader key that belongs to the refresher key
/// in SFX_STORE_KEY: give it to machines that should only read access tokens (CI
/// runners, workers) while one place holds the refresher key (a `sfx watch`).
#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub command: StoreCommand,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    ReaderKey(ReaderKeyArgs),
}

/// Print the reader key of the refresher key in SFX_STORE_KEY.
///
/// Derived one way (HKDF-SHA256): the same every time, and the refresher key
/// cannot be recovered from it. A machine with the reader key opens metadata and
/// access tokens only; it never sends a token request or a revocation, and asks
/// the refreshers when it needs a fresher token. Needs no store and no network.
/// Exit 2 when SFX_STORE_KEY is missing, malformed, or already a reader key.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  $ SFX_STORE_KEY=\"$(cat refresher.key)\" sfx store reader-key > reader.key
  $ gh secret set SFX_STORE_KEY < reader.key        # CI jobs: the reader key only")]
pub struct ReaderKeyArgs {}

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

/// The command line as parsed, helped and documented: the derive definition,
/// built (global options propagated), then adjusted per command so that a
/// command's help offers only what it accepts: `api` and `exec` refuse `--json`
/// (hidden there), `exec`'s `-q` says what it does, and `completions` reads no
/// org, store or network (those options are hidden there).
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    cmd.build();
    cmd.mut_subcommands(|sub| match sub.get_name() {
        "api" | "exec" => {
            let exec = sub.get_name() == "exec";
            sub.mut_args(move |a| match a.get_id().as_str() {
                "json" => a.hide(true),
                "quiet" if exec => a.help(
                    "No effect on the command: sfx itself prints nothing on stdout here, and the command's output is passed through",
                ),
                _ => a,
            })
        }
        "completions" => sub.mut_args(|a| match a.get_id().as_str() {
            "org" | "json" | "quiet" | "verbose" | "store" | "timeout" | "wait" | "color" => {
                a.hide(true)
            }
            _ => a,
        }),
        // `--wait` matters where a reader may need a fresher token (issue #20).
        "token" | "refresh" => sub,
        _ => sub.mut_args(|a| match a.get_id().as_str() {
            "wait" => a.hide(true),
            _ => a,
        }),
    })
}

/// Parse the process's arguments with [`command`]. `sfx help --help` (and `-h`)
/// is the help of `help` itself, as `sfx help help` prints it.
pub fn parse() -> Result<Cli, clap::Error> {
    use clap::FromArgMatches;
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.len() == 3 && args[1] == "help" && (args[2] == "--help" || args[2] == "-h") {
        args[2] = "help".into();
    }
    let mut matches = command().try_get_matches_from(args)?;
    // A global option's value and source live on the deepest subcommand.
    let org_from_env = {
        let mut m = &matches;
        while let Some((_, sub)) = m.subcommand() {
            m = sub;
        }
        m.ids().any(|id| id == "org")
            && m.value_source("org") == Some(clap::parser::ValueSource::EnvVariable)
    };
    let login_given = matches
        .subcommand_matches("login")
        .map(|m| given_on_command_line(m, "login"))
        .unwrap_or_default();
    let mut cli = Cli::from_arg_matches_mut(&mut matches).map_err(|e| e.format(&mut command()))?;
    cli.global.org_from_env = org_from_env;
    if let Command::Login(a) = &mut cli.command {
        a.given = login_given;
    }
    Ok(cli)
}

/// The options of subcommand `sub` (not the global ones) given on the command
/// line, as `--long`, in definition order.
fn given_on_command_line(m: &clap::ArgMatches, sub: &str) -> Vec<String> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let args = cmd
        .find_subcommand(sub)
        .into_iter()
        .flat_map(|s| s.get_arguments());
    args.filter(|a| !a.is_global_set() && a.get_long().is_some())
        .filter(|a| m.try_get_raw(a.get_id().as_str()).is_ok())
        .filter(|a| {
            m.value_source(a.get_id().as_str()) == Some(clap::parser::ValueSource::CommandLine)
        })
        .map(|a| format!("--{}", a.get_long().unwrap_or_default()))
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
