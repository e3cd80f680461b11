//! What `sfx login` reads from the person or the environment: flags checked
//! before any work, secrets from stdin, `SFX_CLIENT_SECRET` or a hidden prompt
//! (never from a command-line value), and the lines of the conversation on
//! stderr. sfx never prompts when stdin is not a terminal or `SFX_NO_INPUT` is
//! set: that is exit 2, naming the flag or variable that supplies the value.

use std::io::IsTerminal;

use super::DEFAULT_CLIENT_ID;
use crate::cli::LoginArgs;
use crate::error::Error;
use crate::salesforce::url::base_url;
use crate::secret::Secret;

/// May sfx ask the person at the keyboard? Not when stdin is not a terminal, and
/// not when `SFX_NO_INPUT` is set.
pub(super) fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::env::var_os("SFX_NO_INPUT").is_none()
}

/// A line for the conversation on stderr.
pub(super) fn say(line: &str) {
    crate::messages::say(line);
}

/// Ask on stderr and read the answer from the terminal without echo.
pub(super) fn prompt_hidden(label: &str) -> Result<Secret, Error> {
    crate::messages::prompt(&format!("{label}: "));
    rpassword::read_password()
        .map(Secret::new)
        .map_err(|e| Error::usage(format!("cannot read the {label} from the terminal: {e}")))
}

/// Read one line from stdin (prompting on stderr, without echo, when it is a
/// terminal). `trim`: drop surrounding spaces; otherwise only the line ending.
/// What is read is a secret (token, password, auth URL): it stays wrapped.
pub(super) fn read_line(what: &str, trim: bool) -> Result<Secret, Error> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        if std::env::var_os("SFX_NO_INPUT").is_some() {
            return Err(Error::usage(format!(
                "{what} must be piped on stdin (SFX_NO_INPUT is set, so sfx does not prompt)"
            )));
        }
        let s = prompt_hidden(&format!("Paste the {what} and press Enter"))?;
        let s = if trim {
            s.expose().trim().to_string()
        } else {
            s.expose().to_string()
        };
        if s.is_empty() {
            return Err(Error::usage(format!("no {what} was entered")));
        }
        return Ok(Secret::new(s));
    }
    // Bounded: `< /dev/zero` is an error, not a hang (issue #11).
    let line = crate::limits::read_line_capped(&mut stdin.lock(), what).map_err(Error::usage)?;
    let line = if trim {
        line.trim().to_string()
    } else {
        line.trim_end_matches(['\n', '\r']).to_string()
    };
    if line.is_empty() {
        return Err(Error::usage(format!(
            "no {what} on stdin; pipe it in, e.g. `sfx login … < file`"
        )));
    }
    Ok(Secret::new(line))
}

pub(super) fn read_stdin_line(what: &str) -> Result<Secret, Error> {
    read_line(what, true)
}

pub(super) fn dash_only(value: &str, flag: &str) -> Result<(), Error> {
    if value == "-" {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "{flag} takes `-` and reads the value from stdin; a token on the command line would show in `ps` and shell history"
        )))
    }
}

/// The client secret from `--client-secret-stdin` or `SFX_CLIENT_SECRET`.
pub(super) fn client_secret(args: &LoginArgs, stdin_busy: bool) -> Result<Option<Secret>, Error> {
    if args.client_secret_stdin {
        if stdin_busy {
            return Err(Error::usage(
                "--client-secret-stdin cannot be used when stdin already carries the token; set SFX_CLIENT_SECRET instead",
            ));
        }
        return read_stdin_line("client secret").map(Some);
    }
    Ok(std::env::var("SFX_CLIENT_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
        .map(Secret::new))
}

/// Check every URL flag before any work.
pub(super) fn checked_urls(args: &LoginArgs) -> Result<(Option<String>, Option<String>), Error> {
    let instance = args
        .instance_url
        .as_deref()
        .map(|u| base_url(u, "--instance-url"))
        .transpose()?;
    let login = if args.sandbox {
        Some("https://test.salesforce.com".to_string())
    } else {
        args.login_url
            .as_deref()
            .map(|u| base_url(u, "--login-url"))
            .transpose()?
    };
    Ok((instance, login))
}

/// `--client-id`, or the default app for the interactive flows (and whether it was defaulted).
/// The client id of an interactive flow (web, device): `--client-id`, else the
/// Salesforce CLI's own app, which sfx says it is using.
pub(super) fn client_id_or_default(args: &LoginArgs) -> String {
    match &args.client_id {
        Some(id) => id.clone(),
        None => {
            say(&format!(
                "no --client-id given: using {DEFAULT_CLIENT_ID}, the Salesforce CLI's connected app (set SFX_CLIENT_ID or pass --client-id to use your own)"
            ));
            DEFAULT_CLIENT_ID.to_string()
        }
    }
}

pub(super) fn required_client_id(args: &LoginArgs, flow: &str) -> Result<String, Error> {
    args.client_id.clone().ok_or_else(|| {
        Error::usage(format!(
            "{flow} needs --client-id (or SFX_CLIENT_ID): the connected app's consumer key"
        ))
    })
}

pub(super) fn required_username(args: &LoginArgs, flow: &str) -> Result<String, Error> {
    args.username.clone().ok_or_else(|| {
        Error::usage(format!(
            "{flow} needs --username: the Salesforce user to log in as"
        ))
    })
}

/// The client secret a flow cannot do without: flag, environment, or a hidden prompt.
pub(super) fn required_secret(
    args: &LoginArgs,
    flow: &str,
    stdin_busy: bool,
) -> Result<Secret, Error> {
    if let Some(s) = client_secret(args, stdin_busy)? {
        return Ok(s);
    }
    if interactive() {
        return prompt_hidden("Client secret (consumer secret) of the connected app");
    }
    Err(Error::usage(format!(
        "{flow} needs the connected app's client secret: set SFX_CLIENT_SECRET or pass --client-secret-stdin (sfx does not prompt when stdin is not a terminal or SFX_NO_INPUT is set)"
    )))
}

/// What `sf` prints where a secret used to be (issue #21): since 2026-05-27 `sf
/// org display`, `sf org list` and the login commands' JSON carry no tokens or
/// auth URLs (forcedotcom/cli #3560; the new `sf org auth show-access-token` and
/// `show-sfdx-auth-url`, salesforcecli/plugin-org #1667). A pipeline written
/// before then now hands sfx `null` (jq of a missing key) or the JSON itself.
/// Never quoted: the JSON may hold other secrets.
pub(super) fn not_a_secret_from_sf(value: &Secret, what: &str) -> Result<(), Error> {
    let v = value.expose().trim();
    if v == "null" || v == "undefined" || v.starts_with('{') || v.starts_with('[') {
        let command = if what.contains("auth URL") {
            "`sf org auth show-sfdx-auth-url -o <ORG> --json` (its .result.sfdxAuthUrl)"
        } else {
            "`sf org auth show-access-token -o <ORG> --json`"
        };
        return Err(Error::usage(format!(
            "stdin holds `null` or JSON, not an {what}: since 2026-05-27 `sf org display` and `sf org list` no longer print tokens or auth URLs; use {command}, or take sf's login as it is with `sfx login --from-sf <ORG>` (no new login, nothing printed)"
        )));
    }
    Ok(())
}
