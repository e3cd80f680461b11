//! `sfx login`'s arguments: the flows, the imports, and where the login goes.

// Doc comments here are `--help` text for a terminal, where a bare URL is what a
// reader wants; rustdoc's `<…>` link syntax would show up literally in the help.
#![allow(rustdoc::bare_urls)]

use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::limits;

/// Log in to an org and store it.
///
/// Flows: `--web` (browser, authorization code + PKCE; the default on a terminal),
/// `--device` (a code to enter on another device), `--jwt` (RS256 assertion signed
/// with `--key-file`; unattended), `--client-credentials` (the app's own user;
/// unattended, My Domain only), `--password` (legacy username-password). Or import
/// existing credentials: `--from-sf` (a login of the Salesforce CLI, kept linked),
/// `--auth-url` (an SFDX auth URL, what `sf org auth show-sfdx-auth-url --json` prints),
/// `--refresh-token -`, `--access-token -`.
///
/// The user is learned from Salesforce (userinfo) and becomes the alias unless
/// `--alias` is given. Secrets are read from stdin, a prompt or the environment,
/// never from a command-line value. Each login of the same user and app takes one
/// of Salesforce's five approval slots; the sixth silently revokes the oldest
/// refresh token, so CI should import a stored one (`--auth-url`) instead.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  $ sfx login --alias prod                                # browser login (PKCE) at login.salesforce.com
  $ sfx login --web --sandbox --client-id 3MVG9...        # a sandbox, your own connected app
  $ sfx login --device --client-id 3MVG9...               # no browser here: enter a code elsewhere
  $ sfx login --jwt --client-id 3MVG9... --username ci@acme.com --key-file server.key
  $ SFX_CLIENT_SECRET=... sfx login --client-credentials --client-id 3MVG9... --login-url https://acme.my.salesforce.com
  $ sfx login --from-sf                                   # list the logins the sf CLI has
  $ sfx login --from-sf prod                              # take sf's login `prod`, stay linked
  $ sfx login --auth-url - --alias prod < auth-url.txt    # import, verify, store
  $ echo \"$REFRESH_TOKEN\" | sfx login --refresh-token - --client-id 3MVG9... --instance-url https://acme.my.salesforce.com")]
pub struct LoginArgs {
    /// Browser login: authorization code with PKCE (the default on a terminal).
    #[arg(long, group = "flow")]
    pub web: bool,

    /// Device login: prints a code and a URL to enter it at, then waits for approval.
    #[arg(long, group = "flow")]
    pub device: bool,

    /// JWT bearer login (unattended): needs --client-id, --username and --key-file.
    #[arg(long, group = "flow")]
    pub jwt: bool,

    /// Client credentials login (unattended): needs --client-id, the secret, and the My Domain URL.
    #[arg(long, group = "flow")]
    pub client_credentials: bool,

    /// Username-password login (legacy): needs --client-id, the secret and --username.
    ///
    /// The password and security token are read from two prompts on a terminal, or
    /// from stdin as one line: the password immediately followed by the token.
    #[arg(long, group = "flow")]
    pub password: bool,

    /// Import an SFDX auth URL; `-` reads it from stdin.
    #[arg(long, value_name = "URL|-", group = "flow")]
    pub auth_url: Option<String>,

    /// Import a refresh token read from stdin (give `-`); needs --client-id and --instance-url.
    #[arg(long, value_name = "-", group = "flow")]
    pub refresh_token: Option<String>,

    /// Import an access token read from stdin (give `-`); needs --instance-url. It cannot be refreshed.
    #[arg(long, value_name = "-", group = "flow")]
    pub access_token: Option<String>,

    /// Take an org the Salesforce CLI (`sf`) is logged in to: no new login, no approval slot.
    ///
    /// Reads sf's `~/.sfdx/<username>.json` (by sf alias or username) with sf's key
    /// from the OS keychain or `~/.sfdx/key.json`; one userinfo request checks it. The
    /// org stays linked: refreshes read sf's current refresh token first and write a
    /// rotated one back into sf's file, so both tools keep working. Without a value
    /// it lists sf's logins (alias, username, instance) and reads no secret.
    #[arg(long, value_name = "ALIAS|USERNAME", num_args = 0..=1, default_missing_value = "", group = "flow")]
    pub from_sf: Option<String>,

    /// The connected app's consumer key (client id).
    ///
    /// For --web and --device it defaults to `PlatformCLI`, the Salesforce CLI's own
    /// app (callback http://localhost:1717/OauthRedirect); set SFX_CLIENT_ID to make
    /// your own app the default.
    #[arg(long, env = "SFX_CLIENT_ID", value_name = "ID")]
    pub client_id: Option<String>,

    /// The Salesforce username (--jwt, --password; a login hint for --web).
    #[arg(long, value_name = "USERNAME")]
    pub username: Option<String>,

    /// The RSA private key (PEM, PKCS#1 or PKCS#8) whose certificate is uploaded to the app (--jwt).
    ///
    /// Its path is stored, never the key: `sfx refresh` signs a new assertion with it.
    #[arg(long, value_name = "PEM", requires = "jwt")]
    pub key_file: Option<std::path::PathBuf>,

    /// The local port for the browser's callback `http://localhost:<PORT>/OauthRedirect` (--web; 0 = any free port).
    #[arg(long, value_name = "PORT", default_value_t = 1717)]
    pub port: u16,

    /// Print the login URL on stderr instead of opening a browser (--web).
    #[arg(long)]
    pub no_browser: bool,

    /// How long to wait for the browser (--web, default 2m) or the device approval (--device, default: until the code expires); from 1s to 1h.
    #[arg(long, env = "SFX_LOGIN_TIMEOUT", value_name = "DURATION", value_parser = |s: &str| limits::LOGIN_TIMEOUT.parse(s))]
    pub login_timeout: Option<Duration>,

    /// OAuth scopes to ask for, space-separated (--web, --device) [default: the app's own scopes].
    #[arg(long, value_name = "SCOPES")]
    pub scope: Option<String>,

    /// Read the client secret from stdin (otherwise `SFX_CLIENT_SECRET`, or a prompt on a terminal).
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

    /// Make this the default org; with -o ORG and no login flow, mark that stored org
    /// as the default (no request, no new login).
    #[arg(long)]
    pub set_default: bool,

    /// The org's session timeout, used to estimate expiry when introspection can't answer (from 1m to 366d).
    #[arg(long, value_name = "DURATION", default_value = "2h", value_parser = |s: &str| limits::SESSION_TIMEOUT.parse(s))]
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

    /// With --migrate: move the org between this machine's local store and the
    /// shared store named by --store / SFX_STORE, with no new login.
    ///
    /// `shared`: from the local store into the shared one; `local`: from the
    /// shared store into the local one (the keychain, or the file with
    /// --insecure-storage). Every secret is read back from the target before the
    /// source copy is deleted.
    #[arg(long, value_enum, requires = "migrate", value_name = "STORE")]
    pub to: Option<MigrateTo>,

    /// The login options given on the command line (`--port`, …), as typed in
    /// help: marking a stored org as the default refuses those it cannot use.
    #[arg(skip)]
    pub given: Vec<String>,
}

/// Where `sfx login --migrate --to` moves an org.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MigrateTo {
    /// This machine's store (keychain or secrets file).
    Local,
    /// The shared store named by --store / SFX_STORE.
    Shared,
}
