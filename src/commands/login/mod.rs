//! `sfx login`: obtain tokens and store the org.
//!
//! OAuth flows: `--web` (authorization code + PKCE, the default on a terminal),
//! `--device`, `--jwt`, `--client-credentials`, `--password`. Their protocol parts
//! live in `salesforce/flows/`. Here, along its seams: this file picks the flow
//! from the flags ([`run`]); `input` reads flags, the environment and secrets
//! (prompts on stderr); `flows` runs each flow or import; `finish` learns
//! the user and stores the org. `login --from-sf` (`from_sf`, the Salesforce CLI's
//! logins) and `login --migrate` (`migrate`, between the keychain and the secrets
//! file) are modes of `login` with files of their own.
//!
//! Import flows: `--auth-url`, `--refresh-token -`, `--access-token -`. Each
//! verifies the credentials with as few requests as possible — a refresh (for
//! refresh tokens) and one userinfo call to learn the user.
//!
//! Every flow stores nothing unless all of it worked. Secrets come from stdin, a
//! hidden prompt or the environment, never from a command-line value; sfx never
//! prompts when stdin is not a terminal or `SFX_NO_INPUT` is set (exit 2, naming
//! the flag or variable that supplies the value).

pub mod default;
mod finish;
mod flows;
pub mod from_sf;
mod input;
pub mod migrate;

use crate::cli::LoginArgs;
use crate::commands::TokenSummary;
use crate::context::{Context, check_alias};
use crate::error::Error;
use crate::salesforce::auth_url::AuthUrl;
use crate::secret::Secret;
use crate::store::metadata::{Flow, StoreKind};
use flows::{
    client_credentials_flow, device_flow, import_access_token, import_refresh_token, jwt_flow,
    password_flow, web_flow,
};
use input::{
    checked_urls, client_secret, dash_only, interactive, not_a_secret_from_sf, read_stdin_line,
};

/// The client id used by `--web` and `--device` when none is given: the Salesforce
/// CLI's own connected app, present in every org, a public client (no secret) whose
/// callback is `http://localhost:1717/OauthRedirect`.
pub const DEFAULT_CLIENT_ID: &str = "PlatformCLI";
const DEFAULT_LOGIN_URL: &str = "https://login.salesforce.com";

/// What every flow works with: the run, the flags, where the new org's secrets
/// go, and the time of the login.
#[derive(Clone, Copy)]
struct Login<'a> {
    ctx: &'a Context,
    args: &'a LoginArgs,
    store: StoreKind,
    now: chrono::DateTime<chrono::Utc>,
}

impl Login<'_> {
    /// Every flow calls this once its flags are checked and before anything is
    /// sent to Salesforce (or a person is asked for a password): a pasted refresh
    /// token is never spent by a login that then cannot save it (under rotation,
    /// the same auth URL must still work on the next try).
    fn ready(&self) -> Result<(), Error> {
        check_store(self.ctx, self.store)
    }
}

pub fn run(args: &LoginArgs, ctx: &Context) -> Result<TokenSummary, Error> {
    ctx.refuse_reader("log in (a login stores a refresh token or client secret)")?;
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
    let store = store_for(ctx, args)?;
    let now = ctx.now();
    let l = Login {
        ctx,
        args,
        store,
        now,
    };

    if let Some(value) = &args.auth_url {
        let text = if value == "-" {
            let text = read_stdin_line("SFDX auth URL")?;
            not_a_secret_from_sf(&text, "SFDX auth URL")?;
            text
        } else {
            crate::messages::warning(
                "an auth URL on the command line holds a refresh token and shows in `ps` and shell history; prefer `--auth-url -` and stdin",
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
            &l,
            Flow::AuthUrl,
            &a.client_id,
            secret,
            a.refresh_token,
            instance_url,
            login,
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
            &l,
            Flow::RefreshToken,
            &client_id,
            secret,
            rt,
            instance_url,
            login,
        );
    }
    if let Some(value) = &args.access_token {
        dash_only(value, "--access-token")?;
        let instance_url = instance.ok_or_else(|| {
            Error::usage("--access-token needs --instance-url (the org's My Domain URL)")
        })?;
        let token = read_stdin_line("access token")?;
        not_a_secret_from_sf(&token, "access token")?;
        let secret = client_secret(args, true)?;
        return import_access_token(&l, token, secret, instance_url, login);
    }
    let base = login
        .clone()
        .or(instance.clone())
        .unwrap_or_else(|| DEFAULT_LOGIN_URL.to_string());
    if args.password {
        return password_flow(&l, &base, login);
    }
    if args.jwt {
        return jwt_flow(&l, &base);
    }
    if args.client_credentials {
        return client_credentials_flow(&l, login, instance);
    }
    if args.device {
        return device_flow(&l, &base, login);
    }
    // `--web`, or nothing chosen on a terminal: the browser.
    if args.web || interactive() {
        l.ready()?;
        return web_flow(&l, &base, login);
    }
    Err(Error::usage(format!(
        "choose how to log in: --web (browser), --device, --jwt, --client-credentials or --password; or import with --auth-url <URL|->, --refresh-token - (with --client-id and --instance-url) or --access-token - (with --instance-url). (--web is the default only on a terminal.){}",
        if args.set_default {
            " To mark a stored org as the default without a new login: `sfx login --set-default -o <ALIAS>`."
        } else {
            ""
        }
    )))
}

/// Where the new org's secrets go: the shared store when one is chosen; the
/// secrets file with `--insecure-storage` (or `SFX_CREDENTIAL_STORE=file`), or
/// when the org being logged in again is already kept there; else the keychain.
pub fn store_for(ctx: &Context, args: &LoginArgs) -> Result<StoreKind, Error> {
    let store = ctx.store_for_new_login(args.insecure_storage);
    if store != StoreKind::Keychain {
        return Ok(store);
    }
    let Some(alias) = &args.alias else {
        return Ok(store);
    };
    // Only the local store keeps orgs in a keychain (a shared store chose above).
    let prev = ctx.stored_orgs().read(alias)?.map(|v| v.org.record.store);
    Ok(match prev {
        Some(StoreKind::File) => {
            crate::messages::note(&format!(
                "org {alias} is kept in the secrets file (it was logged in with --insecure-storage), so its new secrets go there too; `sfx login --migrate -o {alias}` moves it to the keychain"
            ));
            StoreKind::File
        }
        _ => store,
    })
}

/// Before anything is sent (and before a person spends effort in a browser or
/// on another device): can the login be saved? The store the login goes to
/// answers ([`crate::store::OrgStore::ready_to_save`]): a shared store is
/// reachable and the key is its key; a keychain takes, gives back and deletes a
/// test entry; the local files read and their directory takes a lock. A
/// keychain that is missing or locked fails here, exit 6, naming
/// `--insecure-storage`.
pub fn check_store(ctx: &Context, store: StoreKind) -> Result<(), Error> {
    ctx.stored_orgs().ready_to_save(store)
}
