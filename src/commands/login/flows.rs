//! The ways `sfx login` gets tokens: the OAuth flows (browser, device, JWT
//! bearer, client credentials, username-password) and the imports (auth URL,
//! refresh token, access token). Their protocol parts live in
//! `salesforce/flows/`; here each gathers its inputs (`input`), shows
//! what a person must see (the login URL, the device code), adds the hint that
//! names the `sfx login` to run again when Salesforce refuses, and ends in
//! `finish`. Imports verify with as few requests as possible: a refresh
//! (for refresh tokens) and the one userinfo call that learns the user.

use super::finish::{Obtained, finish, finish_with_refresh_token};
use super::input::{
    client_id_or_default, client_secret, interactive, prompt_hidden, read_line, required_client_id,
    required_secret, required_username, say,
};
use super::{DEFAULT_CLIENT_ID, Login};
use crate::commands::TokenSummary;
use crate::error::Error;
use crate::salesforce::ClientCreds;
use crate::salesforce::flows::{client_credentials, device, jwt_bearer, password, web_pkce};
use crate::salesforce::types::TokenResponse;
use crate::secret::Secret;
use crate::store::metadata::Flow;

pub(super) fn web_flow(
    l: &Login<'_>,
    base: &str,
    login_url: Option<String>,
) -> Result<TokenSummary, Error> {
    let Login { ctx, args, .. } = *l;
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
                crate::messages::raw(url);
            } else if crate::commands::child::open_browser(url, ctx.clock()) {
                say(&format!(
                    "opened the browser to log in; {waiting}. If no browser appeared, open:"
                ));
                crate::messages::raw(url);
            } else {
                say(&format!(
                    "could not open a browser; open this URL to log in ({waiting}):"
                ));
                crate::messages::raw(url);
            }
        },
    )
    .map_err(|e| {
        e.with_relogin_hint(|| hint).with_timeout_hint(|| format!(
            "run `sfx login --web` again and finish the login in the browser (allow more time with --login-timeout); if the browser showed an error such as redirect_uri_mismatch, the connected app's callback URL must be exactly {}; without a browser on this machine, use `sfx login --device`",
            listener.redirect_uri()
        ))
    })?;
    finish_with_refresh_token(l, Flow::Web, client_id, secret, &resp, login_url)
}

pub(super) fn device_flow(
    l: &Login<'_>,
    base: &str,
    login_url: Option<String>,
) -> Result<TokenSummary, Error> {
    let Login { ctx, args, .. } = *l;
    let client_id = client_id_or_default(args);
    let secret = client_secret(args, false)?;
    let hint = "check --client-id, and that the connected app has \"Enable for Device Flow\" on; then run `sfx login --device` again";
    l.ready()?;
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
    )
    .map_err(|e| {
        e.with_relogin_hint(|| hint.into()).with_timeout_hint(|| {
            "run `sfx login --device` again and enter the code at the URL before it expires (or use `sfx login --web` on a machine with a browser)".into()
        })
    })?;
    finish_with_refresh_token(l, Flow::Device, client_id, secret, &resp, login_url)
}

pub(super) fn jwt_flow(l: &Login<'_>, base: &str) -> Result<TokenSummary, Error> {
    let Login { ctx, args, now, .. } = *l;
    let client_id = required_client_id(args, "--jwt")?;
    let username = required_username(args, "--jwt")?;
    let key_path = args.key_file.clone().ok_or_else(|| {
        Error::usage("--jwt needs --key-file: the PEM private key whose certificate is uploaded to the connected app")
    })?;
    let key = jwt_bearer::load_key(&key_path)
        .map_err(|why| Error::usage(format!("--key-file {}: {why}", key_path.display())))?;
    if let Some(w) = jwt_bearer::loose_key_warning(&key_path) {
        crate::messages::warning(&w);
    }
    // The path is stored (never the key) so `sfx refresh` can sign again from any directory.
    let key_file = std::path::absolute(&key_path)
        .unwrap_or(key_path)
        .to_string_lossy()
        .into_owned();
    let secret = client_secret(args, false)?;
    l.ready()?;
    let hint = "check that the certificate uploaded to the connected app matches --key-file, that the user is pre-authorized for the app (Permitted Users: \"Admin approved users are pre-authorized\", with the user's profile or permission set assigned) or approved it once, and that --sandbox/--login-url points at the user's org";
    let resp = jwt_bearer::grant(
        &ctx.client(),
        &jwt_bearer::JwtLogin {
            base,
            client_id: &client_id,
            username: &username,
            key: &key,
            doing: "the JWT bearer login",
        },
        now.timestamp(),
    )
    .map_err(|e| e.with_relogin_hint(|| hint.into()))?;
    finish(
        l,
        Obtained {
            flow: Flow::Jwt,
            client_id: Some(client_id),
            client_secret: secret,
            refresh_token: None,
            login_url: Some(base.to_string()),
            key_file: Some(key_file),
        },
        &resp,
    )
}

pub(super) fn client_credentials_flow(
    l: &Login<'_>,
    login: Option<String>,
    instance: Option<String>,
) -> Result<TokenSummary, Error> {
    let Login { ctx, args, .. } = *l;
    let client_id = required_client_id(args, "--client-credentials")?;
    let base = login.or(instance).ok_or_else(|| {
        Error::usage("--client-credentials needs the org's My Domain URL: --login-url https://<MyDomain>.my.salesforce.com (the flow is refused at login.salesforce.com and test.salesforce.com)")
    })?;
    client_credentials::check_host(&base, "--login-url")?;
    let secret = required_secret(args, "--client-credentials", false)?;
    let hint = "check --client-id and the client secret, and that the connected app has \"Enable Client Credentials Flow\" on with a run-as user";
    l.ready()?;
    let resp = client_credentials::grant(
        &ctx.client(),
        &base,
        ClientCreds {
            id: &client_id,
            secret: Some(&secret),
        },
        "the client credentials login",
    )
    .map_err(|e| e.with_relogin_hint(|| hint.into()))?;
    finish(
        l,
        Obtained {
            flow: Flow::ClientCredentials,
            client_id: Some(client_id),
            client_secret: Some(secret),
            refresh_token: None,
            login_url: Some(base),
            key_file: None,
        },
        &resp,
    )
}

pub(super) fn password_flow(
    l: &Login<'_>,
    base: &str,
    login_url: Option<String>,
) -> Result<TokenSummary, Error> {
    let Login { ctx, args, .. } = *l;
    let client_id = required_client_id(args, "--password")?;
    let username = required_username(args, "--password")?;
    let on_terminal = interactive();
    // From a pipe, stdin carries the password: the secret must come from elsewhere.
    let secret = required_secret(args, "--password", !on_terminal)?;
    l.ready()?;
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
    )
    .map_err(|e| e.with_relogin_hint(|| hint.into()))?;
    let mut summary = finish(
        l,
        Obtained {
            flow: Flow::Password,
            client_id: Some(client_id),
            client_secret: Some(secret),
            refresh_token: None,
            login_url,
            key_file: None,
        },
        &resp,
    )?;
    summary.notes.push("note: a username-password login cannot be refreshed; run `sfx login --password` again when the session ends".into());
    Ok(summary)
}

pub(super) fn import_refresh_token(
    l: &Login<'_>,
    flow: Flow,
    client_id: &str,
    secret: Option<Secret>,
    refresh_token: Secret,
    instance_url: String,
    login_url: Option<String>,
) -> Result<TokenSummary, Error> {
    let Login { ctx, .. } = *l;
    l.ready()?;
    let creds = ClientCreds {
        id: client_id,
        secret: secret.as_ref(),
    };
    let base = login_url.as_deref().unwrap_or(&instance_url);
    let hint = "check the credentials: the refresh token may be revoked or expired; mint a new SFDX auth URL (`sf org auth show-sfdx-auth-url -o <ORG> --json` prints it as .result.sfdxAuthUrl), take sf's login with `sfx login --from-sf`, or log in interactively";
    let resp = ctx
        .client()
        .refresh(
            base,
            &refresh_token,
            creds,
            false,
            "the refresh that verifies the imported credentials",
        )
        .map_err(|f| Error::from(f).with_relogin_hint(|| hint.into()))?;
    // Salesforce rotated the refresh token: the string the user pasted is spent.
    let rotated = resp
        .refresh_token
        .as_ref()
        .is_some_and(|new| new.expose() != refresh_token.expose());
    let refresh_token = resp.refresh_token.clone().unwrap_or(refresh_token);
    let mut summary = finish(
        l,
        Obtained {
            flow,
            client_id: Some(client_id.to_string()),
            client_secret: secret,
            refresh_token: Some(refresh_token),
            login_url,
            key_file: None,
        },
        &resp,
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

pub(super) fn import_access_token(
    l: &Login<'_>,
    token: Secret,
    secret: Option<Secret>,
    instance_url: String,
    login_url: Option<String>,
) -> Result<TokenSummary, Error> {
    let Login { args, .. } = *l;
    l.ready()?;
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
        l,
        Obtained {
            flow: Flow::AccessToken,
            client_id: args.client_id.clone(),
            client_secret: secret,
            refresh_token: None,
            login_url,
            key_file: None,
        },
        &resp,
    )?;
    summary.notes.push("note: an imported access token cannot be refreshed; when it expires, import a new one or log in with a refresh-capable flow".into());
    Ok(summary)
}
