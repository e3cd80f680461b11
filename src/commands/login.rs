//! `sfx login`: obtain tokens and store the org.
//!
//! OAuth flows: `--web` (authorization code + PKCE, the default on a terminal),
//! `--device`, `--jwt`, `--client-credentials`, `--password`. Their protocol parts
//! live in `salesforce/flows/`; this file gathers the inputs (flags, environment,
//! prompts on stderr), shows what a person must see (the login URL, the device
//! code), and stores the result through `finish`.
//!
//! Import flows: `--auth-url`, `--refresh-token -`, `--access-token -`. Each
//! verifies the credentials with as few requests as possible — a refresh (for
//! refresh tokens) and one userinfo call to learn the user.
//!
//! Every flow stores nothing unless all of it worked. Secrets come from stdin, a
//! hidden prompt or the environment, never from a command-line value; sfx never
//! prompts when stdin is not a terminal or `SFX_NO_INPUT` is set (exit 2, naming
//! the flag or variable that supplies the value).

use std::io::{IsTerminal, Write};

use crate::cli::LoginArgs;
use crate::commands::TokenSummary;
use crate::context::{Context, check_alias};
use crate::error::Error;
use crate::lifecycle;
use crate::salesforce::auth_url::AuthUrl;
use crate::salesforce::flows::{client_credentials, device, jwt_bearer, password, web_pkce};
use crate::salesforce::types::TokenResponse;
use crate::salesforce::url::base_url;
use crate::salesforce::{ClientCreds, TokenProbe};
use crate::secret::Secret;
use crate::store::SecretKind;
use crate::store::metadata::{Flow, OrgRecord, StoreKind};

/// The client id used by `--web` and `--device` when none is given: the Salesforce
/// CLI's own connected app, present in every org, a public client (no secret) whose
/// callback is `http://localhost:1717/OauthRedirect`.
pub const DEFAULT_CLIENT_ID: &str = "PlatformCLI";
const DEFAULT_LOGIN_URL: &str = "https://login.salesforce.com";

/// May sfx ask the person at the keyboard? Not when stdin is not a terminal, and
/// not when `SFX_NO_INPUT` is set.
fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::env::var_os("SFX_NO_INPUT").is_none()
}

/// A line for the conversation on stderr.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "sfx: {line}");
}

/// Ask on stderr and read the answer from the terminal without echo.
fn prompt_hidden(label: &str) -> Result<Secret, Error> {
    let mut err = std::io::stderr();
    let _ = write!(err, "{label}: ");
    let _ = err.flush();
    rpassword::read_password()
        .map(Secret::new)
        .map_err(|e| Error::usage(format!("cannot read the {label} from the terminal: {e}")))
}

/// Read one line from stdin (prompting on stderr, without echo, when it is a
/// terminal). `trim`: drop surrounding spaces; otherwise only the line ending.
/// What is read is a secret (token, password, auth URL): it stays wrapped.
fn read_line(what: &str, trim: bool) -> Result<Secret, Error> {
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

fn read_stdin_line(what: &str) -> Result<Secret, Error> {
    read_line(what, true)
}

fn dash_only(value: &str, flag: &str) -> Result<(), Error> {
    if value == "-" {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "{flag} takes `-` and reads the value from stdin; a token on the command line would show in `ps` and shell history"
        )))
    }
}

/// The client secret from `--client-secret-stdin` or `SFX_CLIENT_SECRET`.
fn client_secret(args: &LoginArgs, stdin_busy: bool) -> Result<Option<Secret>, Error> {
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
fn checked_urls(args: &LoginArgs) -> Result<(Option<String>, Option<String>), Error> {
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

pub fn run(args: &LoginArgs, ctx: &Context) -> Result<TokenSummary, Error> {
    if let Some(alias) = &args.alias {
        check_alias(alias, "--alias")?;
    }
    // The client id is stored: refuse at once what the store would refuse later.
    if let Some(id) = &args.client_id
        && (id.trim().is_empty() || id.len() > 255 || id.chars().any(char::is_control))
    {
        return Err(Error::usage(
            "--client-id (or SFX_CLIENT_ID) must be the connected app's consumer key: 1–255 characters, no control characters",
        ));
    }
    let (instance, login) = checked_urls(args)?;
    if ctx.env_org.is_some() {
        return Err(Error::usage(
            "credentials are set in the environment (SFX_AUTH_URL, SFX_REFRESH_TOKEN or SFX_ACCESS_TOKEN), which override the store; unset them to log in and store an org",
        ));
    }
    let store = ctx.store_for_new_login(args.insecure_storage);
    if let Some(shared) = &ctx.shared {
        // Before anything is asked of Salesforce: the shared store answers and
        // this machine's SFX_STORE_KEY is the store's key.
        shared.ready_for_write()?;
    }
    let now = ctx.now();

    if let Some(value) = &args.auth_url {
        let text = if value == "-" {
            read_stdin_line("SFDX auth URL")?
        } else {
            let _ = writeln!(
                std::io::stderr(),
                "sfx: warning: an auth URL on the command line holds a refresh token and shows in `ps` and shell history; prefer `--auth-url -` and stdin"
            );
            Secret::new(value.clone())
        };
        let a = AuthUrl::parse(text.expose())?;
        let secret = a
            .client_secret
            .clone()
            .or(client_secret(args, value == "-")?);
        let instance_url = instance.unwrap_or(a.instance_url.clone());
        return import_refresh_token(
            ctx,
            args,
            Flow::AuthUrl,
            &a.client_id,
            secret,
            a.refresh_token,
            instance_url,
            login,
            store,
            now,
        );
    }
    if let Some(value) = &args.refresh_token {
        dash_only(value, "--refresh-token")?;
        let client_id = args.client_id.clone().ok_or_else(|| Error::usage("--refresh-token needs --client-id (or SFX_CLIENT_ID): the connected app's consumer key"))?;
        let instance_url = instance.or(login.clone()).ok_or_else(|| {
            Error::usage("--refresh-token needs --instance-url (the org's My Domain URL)")
        })?;
        let rt = read_stdin_line("refresh token")?;
        let secret = client_secret(args, true)?;
        return import_refresh_token(
            ctx,
            args,
            Flow::RefreshToken,
            &client_id,
            secret,
            rt,
            instance_url,
            login,
            store,
            now,
        );
    }
    if let Some(value) = &args.access_token {
        dash_only(value, "--access-token")?;
        let instance_url = instance.ok_or_else(|| {
            Error::usage("--access-token needs --instance-url (the org's My Domain URL)")
        })?;
        let token = read_stdin_line("access token")?;
        let secret = client_secret(args, true)?;
        return import_access_token(ctx, args, token, secret, instance_url, login, store, now);
    }
    let base = login
        .clone()
        .or(instance.clone())
        .unwrap_or_else(|| DEFAULT_LOGIN_URL.to_string());
    if args.password {
        return password_flow(ctx, args, &base, login, store, now);
    }
    if args.jwt {
        return jwt_flow(ctx, args, &base, store, now);
    }
    if args.client_credentials {
        return client_credentials_flow(ctx, args, login, instance, store, now);
    }
    if args.device {
        check_store(ctx, store)?;
        return device_flow(ctx, args, &base, login, store, now);
    }
    // `--web`, or nothing chosen on a terminal: the browser.
    if args.web || interactive() {
        check_store(ctx, store)?;
        return web_flow(ctx, args, &base, login, store, now);
    }
    Err(Error::usage(
        "choose how to log in: --web (browser), --device, --jwt, --client-credentials or --password; or import with --auth-url <URL|->, --refresh-token - (with --client-id and --instance-url) or --access-token - (with --instance-url). (--web is the default only on a terminal.)",
    ))
}

/// Before a person spends effort in a browser or on another device: is the
/// credential store usable? (A keychain that is locked or missing fails here,
/// exit 6, instead of after the login.)
fn check_store(ctx: &Context, store: StoreKind) -> Result<(), Error> {
    if let Some(shared) = &ctx.shared {
        // Reachable, and this machine's SFX_STORE_KEY is the store's key.
        return shared.ready_for_write();
    }
    ctx.store
        .backend(store)
        .get("sfx-login-check", SecretKind::AccessToken)
        .map(|_| ())
}

/// `--client-id`, or the default app for the interactive flows (and whether it was defaulted).
/// The client id of an interactive flow (web, device): `--client-id`, else the
/// Salesforce CLI's own app, which sfx says it is using.
fn client_id_or_default(args: &LoginArgs) -> String {
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

fn required_client_id(args: &LoginArgs, flow: &str) -> Result<String, Error> {
    args.client_id.clone().ok_or_else(|| {
        Error::usage(format!(
            "{flow} needs --client-id (or SFX_CLIENT_ID): the connected app's consumer key"
        ))
    })
}

fn required_username(args: &LoginArgs, flow: &str) -> Result<String, Error> {
    args.username.clone().ok_or_else(|| {
        Error::usage(format!(
            "{flow} needs --username: the Salesforce user to log in as"
        ))
    })
}

/// The client secret a flow cannot do without: flag, environment, or a hidden prompt.
fn required_secret(args: &LoginArgs, flow: &str, stdin_busy: bool) -> Result<Secret, Error> {
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

/// Note for interactive flows whose grant gave no refresh token.
/// Store an org from an interactive flow that should bring a refresh token
/// (web, device), and say so when Salesforce gave none.
#[allow(clippy::too_many_arguments)]
fn finish_with_refresh_token(
    ctx: &Context,
    args: &LoginArgs,
    flow: Flow,
    client_id: String,
    secret: Option<Secret>,
    resp: &TokenResponse,
    login_url: Option<String>,
    store: StoreKind,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<TokenSummary, Error> {
    let refresh_token = resp.refresh_token.clone();
    let mut summary = finish(
        ctx,
        args,
        flow,
        Some(client_id),
        secret,
        refresh_token.clone(),
        resp,
        login_url,
        store,
        now,
        None,
    )?;
    if refresh_token.is_none() {
        summary.notes.push("note: Salesforce returned no refresh token (the app's scopes lack `refresh_token`/`offline_access`, or --scope left it out), so this org cannot be refreshed: log in again when the session ends".into());
    }
    Ok(summary)
}

fn web_flow(
    ctx: &Context,
    args: &LoginArgs,
    base: &str,
    login_url: Option<String>,
    store: StoreKind,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<TokenSummary, Error> {
    let client_id = client_id_or_default(args);
    let secret = client_secret(args, false)?;
    let listener = web_pkce::Listener::bind(args.port)?;
    if client_id == DEFAULT_CLIENT_ID && listener.port() != web_pkce::DEFAULT_PORT {
        say(&format!(
            "warning: {DEFAULT_CLIENT_ID} only accepts the callback http://localhost:{}{}; Salesforce will refuse port {}",
            web_pkce::DEFAULT_PORT,
            web_pkce::CALLBACK_PATH,
            listener.port()
        ));
    }
    let wait = args.login_timeout.unwrap_or(web_pkce::DEFAULT_WAIT);
    let hint = format!(
        "check --client-id and the connected app (its callback URL must be exactly {}), then run `sfx login --web` again",
        listener.redirect_uri()
    );
    let creds = ClientCreds {
        id: &client_id,
        secret: secret.as_ref(),
    };
    let resp = web_pkce::login(
        &ctx.client(),
        &listener,
        &web_pkce::WebLogin {
            login_url: base,
            creds,
            scope: args.scope.as_deref(),
            login_hint: args.username.as_deref(),
            wait,
            hint: &hint,
            timeout_hint: &format!(
                "run `sfx login --web` again and finish the login in the browser (allow more time with --login-timeout); if the browser showed an error such as redirect_uri_mismatch, the connected app's callback URL must be exactly {}; without a browser on this machine, use `sfx login --device`",
                listener.redirect_uri()
            ),
        },
        |url| {
            let waiting = format!(
                "waiting up to {} for the browser to come back to {}",
                humantime::format_duration(wait),
                listener.redirect_uri()
            );
            if args.no_browser {
                say(&format!(
                    "open this URL in a browser to log in ({waiting}):"
                ));
                let _ = writeln!(std::io::stderr(), "{url}");
            } else if open::that_detached(url).is_ok() {
                say(&format!(
                    "opened the browser to log in; {waiting}. If no browser appeared, open:"
                ));
                let _ = writeln!(std::io::stderr(), "{url}");
            } else {
                say(&format!(
                    "could not open a browser; open this URL to log in ({waiting}):"
                ));
                let _ = writeln!(std::io::stderr(), "{url}");
            }
        },
    )?;
    finish_with_refresh_token(
        ctx,
        args,
        Flow::Web,
        client_id,
        secret,
        &resp,
        login_url,
        store,
        now,
    )
}

fn device_flow(
    ctx: &Context,
    args: &LoginArgs,
    base: &str,
    login_url: Option<String>,
    store: StoreKind,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<TokenSummary, Error> {
    let client_id = client_id_or_default(args);
    let secret = client_secret(args, false)?;
    let hint = "check --client-id, and that the connected app has \"Enable for Device Flow\" on; then run `sfx login --device` again";
    let creds = ClientCreds {
        id: &client_id,
        secret: secret.as_ref(),
    };
    let resp = device::login(
        &ctx.client(),
        &device::DeviceLogin {
            base,
            creds,
            scope: args.scope.as_deref(),
            wait: args.login_timeout,
            hint,
            timeout_hint: "run `sfx login --device` again and enter the code at the URL before it expires (or use `sfx login --web` on a machine with a browser)",
        },
        |code| {
            say(&format!("to log in, open {}", code.verification_uri));
            say(&format!("and enter the code: {}", code.user_code));
            let lifetime = code.expires_in.unwrap_or(device::DEFAULT_LIFETIME);
            let wait = args.login_timeout.map_or(lifetime, |w| w.min(lifetime));
            say(&format!(
                "waiting up to {} for the approval…",
                humantime::format_duration(wait)
            ));
        },
        std::thread::sleep,
    )?;
    finish_with_refresh_token(
        ctx,
        args,
        Flow::Device,
        client_id,
        secret,
        &resp,
        login_url,
        store,
        now,
    )
}

fn jwt_flow(
    ctx: &Context,
    args: &LoginArgs,
    base: &str,
    store: StoreKind,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<TokenSummary, Error> {
    let client_id = required_client_id(args, "--jwt")?;
    let username = required_username(args, "--jwt")?;
    let key_path = args.key_file.clone().ok_or_else(|| {
        Error::usage("--jwt needs --key-file: the PEM private key whose certificate is uploaded to the connected app")
    })?;
    let key = jwt_bearer::load_key(&key_path)
        .map_err(|why| Error::usage(format!("--key-file {}: {why}", key_path.display())))?;
    // The path is stored (never the key) so `sfx refresh` can sign again from any directory.
    let key_file = std::path::absolute(&key_path)
        .unwrap_or(key_path)
        .to_string_lossy()
        .into_owned();
    let secret = client_secret(args, false)?;
    let hint = "check that the certificate uploaded to the connected app matches --key-file, that the user is pre-authorized for the app (Permitted Users: \"Admin approved users are pre-authorized\", with the user's profile or permission set assigned) or approved it once, and that --sandbox/--login-url points at the user's org";
    let resp = jwt_bearer::grant(
        &ctx.client(),
        &jwt_bearer::JwtLogin {
            base,
            client_id: &client_id,
            username: &username,
            key: &key,
            hint,
            doing: "the JWT bearer login",
        },
        now.timestamp(),
    )?;
    finish(
        ctx,
        args,
        Flow::Jwt,
        Some(client_id),
        secret,
        None,
        &resp,
        Some(base.to_string()),
        store,
        now,
        Some(key_file),
    )
}

fn client_credentials_flow(
    ctx: &Context,
    args: &LoginArgs,
    login: Option<String>,
    instance: Option<String>,
    store: StoreKind,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<TokenSummary, Error> {
    let client_id = required_client_id(args, "--client-credentials")?;
    let base = login.or(instance).ok_or_else(|| {
        Error::usage("--client-credentials needs the org's My Domain URL: --login-url https://<MyDomain>.my.salesforce.com (the flow is refused at login.salesforce.com and test.salesforce.com)")
    })?;
    client_credentials::check_host(&base, "--login-url")?;
    let secret = required_secret(args, "--client-credentials", false)?;
    let hint = "check --client-id and the client secret, and that the connected app has \"Enable Client Credentials Flow\" on with a run-as user";
    let resp = client_credentials::grant(
        &ctx.client(),
        &base,
        ClientCreds {
            id: &client_id,
            secret: Some(&secret),
        },
        "the client credentials login",
        hint,
    )?;
    finish(
        ctx,
        args,
        Flow::ClientCredentials,
        Some(client_id),
        Some(secret),
        None,
        &resp,
        Some(base),
        store,
        now,
        None,
    )
}

fn password_flow(
    ctx: &Context,
    args: &LoginArgs,
    base: &str,
    login_url: Option<String>,
    store: StoreKind,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<TokenSummary, Error> {
    let client_id = required_client_id(args, "--password")?;
    let username = required_username(args, "--password")?;
    let on_terminal = interactive();
    // From a pipe, stdin carries the password: the secret must come from elsewhere.
    let secret = required_secret(args, "--password", !on_terminal)?;
    say(&format!("warning: {}", password::WARNING));
    let password = if on_terminal {
        let pw = prompt_hidden(&format!("Password for {username}"))?;
        let token = prompt_hidden("Security token (empty if your IP address is trusted)")?;
        password::with_security_token(&pw, &token)
    } else {
        read_line("password immediately followed by the security token", false)?
    };
    let hint = "check the username, the password and the security token (a new one: Settings → Reset My Security Token); if they are right, the org blocks this flow: an admin can allow it (Setup → OAuth and OpenID Connect Settings → Allow OAuth Username-Password Flows), or use --web, --jwt or --client-credentials";
    let resp = password::grant(
        &ctx.client(),
        base,
        ClientCreds {
            id: &client_id,
            secret: Some(&secret),
        },
        &username,
        &password,
        hint,
    )?;
    let mut summary = finish(
        ctx,
        args,
        Flow::Password,
        Some(client_id),
        Some(secret),
        None,
        &resp,
        login_url,
        store,
        now,
        None,
    )?;
    summary.notes.push("note: a username-password login cannot be refreshed; run `sfx login --password` again when the session ends".into());
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
fn import_refresh_token(
    ctx: &Context,
    args: &LoginArgs,
    flow: Flow,
    client_id: &str,
    secret: Option<Secret>,
    refresh_token: Secret,
    instance_url: String,
    login_url: Option<String>,
    store: StoreKind,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<TokenSummary, Error> {
    let creds = ClientCreds {
        id: client_id,
        secret: secret.as_ref(),
    };
    let base = login_url.as_deref().unwrap_or(&instance_url);
    let hint = "check the credentials: the refresh token may be revoked or expired; mint a new SFDX auth URL (`sf org auth show-sfdx-auth-url -o <ORG> --json` prints it as .result.sfdxAuthUrl), take sf's login with `sfx login --from-sf`, or log in interactively";
    let resp = ctx.client().refresh(
        base,
        &refresh_token,
        creds,
        false,
        "the refresh that verifies the imported credentials",
        hint,
    )?;
    // Salesforce rotated the refresh token: the string the user pasted is spent.
    let rotated = resp
        .refresh_token
        .as_ref()
        .is_some_and(|new| new.expose() != refresh_token.expose());
    let refresh_token = resp.refresh_token.clone().unwrap_or(refresh_token);
    let mut summary = finish(
        ctx,
        args,
        flow,
        Some(client_id.to_string()),
        secret,
        Some(refresh_token),
        &resp,
        login_url,
        store,
        now,
        None,
    )?;
    if rotated {
        summary.rotated = true;
        summary.notes.push(format!(
            "warning: Salesforce rotated the refresh token while sfx verified it: the {} you gave is now spent. Whatever else still holds it (sf, a CI secret) must not use it again: a spent refresh token makes Salesforce revoke this whole login. To share sf's login instead, use `sfx login --from-sf`",
            if flow == Flow::AuthUrl { "auth URL" } else { "refresh token" }
        ));
    }
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
fn import_access_token(
    ctx: &Context,
    args: &LoginArgs,
    token: Secret,
    secret: Option<Secret>,
    instance_url: String,
    login_url: Option<String>,
    store: StoreKind,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<TokenSummary, Error> {
    // The token response of an import is the token itself; learn the rest from userinfo.
    let resp = TokenResponse {
        access_token: token,
        refresh_token: None,
        signature: None,
        scope: None,
        id_token: None,
        instance_url,
        id: None,
        token_type: Some("Bearer".into()),
        issued_at: None,
        api_instance_url: None,
        token_format: None,
    };
    let mut summary = finish(
        ctx,
        args,
        Flow::AccessToken,
        args.client_id.clone(),
        secret,
        None,
        &resp,
        login_url,
        store,
        now,
        None,
    )?;
    summary.notes.push("note: an imported access token cannot be refreshed; when it expires, import a new one or log in with a refresh-capable flow".into());
    Ok(summary)
}

/// Learn the user, then store everything: secrets first, metadata last.
#[allow(clippy::too_many_arguments)]
fn finish(
    ctx: &Context,
    args: &LoginArgs,
    flow: Flow,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    refresh_token: Option<Secret>,
    resp: &TokenResponse,
    login_url: Option<String>,
    store: StoreKind,
    now: chrono::DateTime<chrono::Utc>,
    key_file: Option<String>,
) -> Result<TokenSummary, Error> {
    let instance_url = resp.checked_instance_url()?;
    let info = match ctx.client().userinfo(&instance_url, &resp.access_token)? {
        TokenProbe::Alive(info) => info,
        TokenProbe::Dead(status) => {
            return Err(Error::relogin(
                format!(
                    "Salesforce does not accept the access token (userinfo answered HTTP {status}); it is expired, revoked, or for another org"
                ),
                "get a fresh token and import it again",
            ));
        }
    };
    let username = info.preferred_username.clone();
    let alias = match (&args.alias, &username) {
        (Some(a), _) => a.clone(),
        (None, Some(u)) => {
            check_alias(u, "the username (used as the alias)")?;
            u.clone()
        }
        (None, None) => {
            return Err(Error::usage(
                "Salesforce did not say the username; give the org a name with --alias",
            ));
        }
    };
    let mut record = OrgRecord {
        alias: alias.clone(),
        username,
        org_id: info.organization_id.clone(),
        user_id: info.user_id.clone(),
        instance_url,
        login_url,
        client_id,
        flow,
        store,
        issued_at: None,
        session_timeout_secs: args.session_timeout.as_secs().max(60),
        expiry: None,
        access_token_masked: None,
        has_refresh_token: refresh_token.is_some(),
        has_client_secret: client_secret.is_some(),
        refresh_token_used_at: None,
        rotates_refresh_token: false,
        key_file,
        api_version: None,
        sf_link: None,
    };
    lifecycle::apply_token(&mut record, resp, now);
    // A refresh-token grant that returns a refresh token is rotation: remember it,
    // so later refreshes are never retried once they may have been delivered.
    record.rotates_refresh_token =
        matches!(flow, Flow::AuthUrl | Flow::RefreshToken) && resp.refresh_token.is_some();
    if refresh_token.is_some() {
        record.refresh_token_used_at = Some(now.timestamp());
    }

    // Never store an org sfx would refuse to read back: check before any write.
    record.readable().map_err(|why| {
        Error::Other(format!(
            "sfx did not store org {alias}: its record would not read back ({why}); nothing was stored"
        ))
    })?;
    let changes = [
        (SecretKind::RefreshToken, refresh_token.as_ref()),
        (SecretKind::AccessToken, Some(&resp.access_token)),
        (SecretKind::ClientSecret, client_secret.as_ref()),
    ];
    // Secrets first, then the record; an org moved between stores leaves no
    // copy behind in the old one (a failure to delete it is a warning).
    let notes = ctx
        .stored_orgs()
        .save_org(&record, &changes, args.set_default)?;
    let expiry = lifecycle::expiry::after_mint(&record, now);
    Ok(TokenSummary {
        verb: "Logged in to",
        record,
        expiry,
        rotated: false,
        now,
        access_token: resp.access_token.clone(),
        refresh_token,
        show_token: args.show_token,
        notes,
    })
}
