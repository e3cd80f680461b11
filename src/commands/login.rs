//! `sfx login`: obtain tokens and store the org.
//!
//! Import flows (this file): `--auth-url`, `--refresh-token -`, `--access-token -`.
//! Each verifies the credentials with as few requests as possible — a refresh
//! (for refresh tokens) and one userinfo call to learn the user — and stores
//! nothing unless all of it worked. Secrets come from stdin or the environment,
//! never from a command-line value.

use std::io::{BufRead, IsTerminal, Write};

use crate::cli::LoginArgs;
use crate::commands::TokenSummary;
use crate::context::{Context, check_alias};
use crate::error::Error;
use crate::salesforce::auth_url::AuthUrl;
use crate::salesforce::types::TokenResponse;
use crate::salesforce::url::base_url;
use crate::salesforce::{ClientCreds, TokenProbe};
use crate::secret::Secret;
use crate::store::SecretKind;
use crate::store::metadata::{Flow, OrgRecord, StoreKind};
use crate::tokens;

/// Read one line from stdin (prompting on stderr when it is a terminal).
fn read_stdin_line(what: &str) -> Result<String, Error> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        if std::env::var_os("SFX_NO_INPUT").is_some() {
            return Err(Error::usage(format!(
                "{what} must be piped on stdin (SFX_NO_INPUT is set, so sfx does not prompt)"
            )));
        }
        let _ = write!(std::io::stderr(), "Paste the {what} and press Enter: ");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::usage(format!("cannot read the {what} from stdin: {e}")))?;
    let line = line.trim().to_string();
    if line.is_empty() {
        return Err(Error::usage(format!(
            "no {what} on stdin; pipe it in, e.g. `sfx login … - < file`"
        )));
    }
    Ok(line)
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
        return read_stdin_line("client secret").map(|s| Some(Secret::new(s)));
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
    let (instance, login) = checked_urls(args)?;
    if ctx.env_org.is_some() {
        return Err(Error::usage(
            "credentials are set in the environment (SFX_AUTH_URL, SFX_REFRESH_TOKEN or SFX_ACCESS_TOKEN), which override the store; unset them to log in and store an org",
        ));
    }
    let store = ctx.store_for_new_login(args.insecure_storage);
    let now = ctx.now();

    if let Some(value) = &args.auth_url {
        let text = if value == "-" {
            read_stdin_line("SFDX auth URL")?
        } else {
            value.clone()
        };
        let a = AuthUrl::parse(&text)?;
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
        let rt = Secret::new(read_stdin_line("refresh token")?);
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
        let token = Secret::new(read_stdin_line("access token")?);
        let secret = client_secret(args, true)?;
        return import_access_token(ctx, args, token, secret, instance_url, login, store, now);
    }
    Err(Error::usage(
        "choose how to log in: --auth-url <URL|->, --refresh-token - (with --client-id and --instance-url), or --access-token - (with --instance-url)",
    ))
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
    let hint = "check the credentials: the refresh token may be revoked or expired; mint a new SFDX auth URL with `sf org display --verbose` or log in interactively";
    let resp = ctx.client().refresh(
        base,
        &refresh_token,
        creds,
        false,
        "the refresh that verifies the imported credentials",
        hint,
    )?;
    let refresh_token = resp.refresh_token.clone().unwrap_or(refresh_token);
    finish(
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
    )
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
) -> Result<TokenSummary, Error> {
    let instance_url = base_url(
        &resp.instance_url,
        "the instance_url in Salesforce's answer",
    )
    .map_err(|e| {
        Error::Network(format!(
            "Salesforce answered with an unusable instance_url: {e}"
        ))
    })?;
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
        key_file: None,
    };
    tokens::apply_token(&mut record, resp, now);
    // A refresh-token grant that returns a refresh token is rotation: remember it,
    // so later refreshes are never retried once they may have been delivered.
    record.rotates_refresh_token =
        matches!(flow, Flow::AuthUrl | Flow::RefreshToken) && resp.refresh_token.is_some();
    if refresh_token.is_some() {
        record.refresh_token_used_at = Some(now.timestamp());
    }

    let previous = ctx.store.read()?.orgs.get(&alias).cloned();
    let backend = ctx.store.backend(store);
    let changes = [
        (SecretKind::RefreshToken, refresh_token.as_ref()),
        (SecretKind::AccessToken, Some(&resp.access_token)),
        (SecretKind::ClientSecret, client_secret.as_ref()),
    ];
    backend.put(&alias, &changes)?;
    // Moving an org between stores leaves no copy behind in the old one.
    if let Some(prev) = &previous
        && prev.store != store
        && prev.store != StoreKind::Env
    {
        let _ = ctx.store.backend(prev.store).put(
            &alias,
            &[
                (SecretKind::RefreshToken, None),
                (SecretKind::AccessToken, None),
                (SecretKind::ClientSecret, None),
            ],
        );
    }
    let saved = record.clone();
    ctx.store.update(|meta| {
        meta.orgs.insert(saved.alias.clone(), saved.clone());
        if args.set_default {
            meta.default = Some(saved.alias.clone());
        }
        Ok(())
    })?;
    let expiry = tokens::after_mint(&record, now);
    Ok(TokenSummary {
        verb: "Logged in to",
        record,
        expiry,
        rotated: false,
        now,
        access_token: resp.access_token.clone(),
        refresh_token,
        show_token: args.show_token,
        notes: Vec::new(),
    })
}
