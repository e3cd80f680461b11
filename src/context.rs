//! The resolved run: which org, which store, how to print, and (lazily) the HTTP
//! client. Built once from the parsed command line and the environment, after
//! every URL, duration and store choice has been checked — before any work.
//! Building it touches neither the network nor the keychain.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::cli::GlobalArgs;
use crate::error::Error;
use crate::output::{Mode, Style};
use crate::salesforce::Client;
use crate::salesforce::auth_url::AuthUrl;
use crate::salesforce::http::Http;
use crate::salesforce::url::base_url;
use crate::secret::Secret;
use crate::store::metadata::{Flow, Metadata, OrgRecord, StoreKind};
use crate::store::{SecretKind, Store};

/// The name the environment org goes by in output.
pub const ENV_ORG: &str = "env";

/// Credentials given through the environment (CI): nothing is read or written on disk.
#[derive(Debug, Clone)]
pub struct EnvCreds {
    pub access_token: Option<Secret>,
    pub refresh_token: Option<Secret>,
    pub client_secret: Option<Secret>,
    /// Whether they came as `SFX_AUTH_URL` (then a rotated refresh token is
    /// handed back as a new `SFX_AUTH_URL`).
    pub from_auth_url: bool,
}

/// An org to act on: its record, plus the secrets when they came from the environment.
#[derive(Debug, Clone)]
pub struct Org {
    pub record: OrgRecord,
    pub env: Option<EnvCreds>,
}

impl Org {
    pub fn name(&self) -> &str {
        &self.record.alias
    }
    pub fn is_env(&self) -> bool {
        self.env.is_some()
    }
}

pub struct Context {
    pub mode: Mode,
    pub style: Style,
    pub verbose: u8,
    pub timeout: Duration,
    pub org_flag: Option<String>,
    pub store: Store,
    /// `SFX_CREDENTIAL_STORE=file`.
    pub file_store_forced: bool,
    pub env_org: Option<Org>,
    http: OnceLock<Http>,
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Context {
    pub fn new(g: &GlobalArgs) -> Result<Context, Error> {
        let mode = if g.quiet {
            Mode::Quiet
        } else if g.json {
            Mode::Json
        } else {
            Mode::Human
        };
        let file_store_forced = match env_var("SFX_CREDENTIAL_STORE").as_deref() {
            None | Some("keychain") => false,
            Some("file") => true,
            Some(other) => {
                return Err(Error::usage(format!(
                    "SFX_CREDENTIAL_STORE is `{}`; it takes `file` or `keychain`",
                    crate::salesforce::url::sanitize(other, 40)
                )));
            }
        };
        let env_org = env_org()?;
        // `env` names the environment's org: `sfx watch --exec` hands SFX_ORG=env to
        // its command, which may itself run sfx with the same environment.
        if let Some(alias) = &g.org
            && !(alias == ENV_ORG && env_org.is_some())
        {
            check_alias(alias, "-o/--org (or SFX_ORG)")?;
        }
        Ok(Context {
            mode,
            style: crate::output::style(g.color),
            verbose: g.verbose,
            timeout: g.timeout,
            org_flag: g.org.clone(),
            store: Store::new(crate::store::default_home()?).with_timeout(g.timeout),
            file_store_forced,
            env_org,
            http: OnceLock::new(),
        })
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    /// The HTTP client, built on first use.
    pub fn http(&self) -> &Http {
        self.http
            .get_or_init(|| Http::new(self.timeout, self.verbose))
    }

    pub fn client(&self) -> Client<'_> {
        Client { http: self.http() }
    }

    /// The org this run acts on: the environment's, else `-o`, the default, or the only one.
    pub fn org(&self) -> Result<Org, Error> {
        if let Some(org) = &self.env_org {
            return Ok(org.clone());
        }
        let meta = self.store.read()?;
        select(&meta, self.org_flag.as_deref()).map(|record| Org { record, env: None })
    }

    /// Hold the org's refresh lock (the one `refresh`, `token` and `watch` share)
    /// and read its record again: another process may have refreshed it, or
    /// logged it out (`None`), while this one was deciding. Environment orgs
    /// need no lock: nothing of theirs is shared.
    pub fn locked(
        &self,
        org: &Org,
    ) -> Result<Option<(Org, Option<crate::store::lock::Lock>)>, Error> {
        if org.is_env() {
            return Ok(Some((org.clone(), None)));
        }
        let lock = self.store.org_lock(org.name())?;
        Ok(self
            .store
            .read()?
            .orgs
            .get(org.name())
            .cloned()
            .map(|record| (Org { record, env: None }, Some(lock))))
    }

    /// Every stored org (for `--all`); the environment org alone in env mode.
    pub fn all_orgs(&self) -> Result<Vec<Org>, Error> {
        if let Some(org) = &self.env_org {
            return Ok(vec![org.clone()]);
        }
        Ok(self
            .store
            .read()?
            .orgs
            .into_values()
            .map(|record| Org { record, env: None })
            .collect())
    }

    /// One secret of an org: from the environment, or from the org's store.
    pub fn secret(&self, org: &Org, kind: SecretKind) -> Result<Option<Secret>, Error> {
        if let Some(env) = &org.env {
            return Ok(match kind {
                SecretKind::AccessToken => env.access_token.clone(),
                SecretKind::RefreshToken => env.refresh_token.clone(),
                SecretKind::ClientSecret => env.client_secret.clone(),
            });
        }
        let rec = &org.record;
        let expected = match kind {
            SecretKind::AccessToken => rec.access_token_masked.is_some(),
            SecretKind::RefreshToken => rec.has_refresh_token,
            SecretKind::ClientSecret => rec.has_client_secret,
        };
        if !expected {
            // The metadata says there is none: do not open the keychain for nothing.
            return Ok(None);
        }
        match self.store.backend(rec.store).get(&rec.alias, kind)? {
            Some(s) => Ok(Some(s)),
            // The metadata says it was stored, the store has none: removed by hand,
            // a reset keychain, or another machine's metadata. Only a login helps.
            None => Err(Error::relogin(
                format!(
                    "the {} has no {} for org {}, although sfx stored one there (was the entry removed, or the keychain reset?)",
                    match rec.store {
                        StoreKind::Keychain => "OS keychain",
                        _ => "secrets file",
                    },
                    kind.as_str().replace('-', " "),
                    rec.alias
                ),
                crate::tokens::relogin_hint(org),
            )),
        }
    }

    /// Which store new secrets go to.
    pub fn store_for_new_login(&self, insecure_flag: bool) -> StoreKind {
        if insecure_flag || self.file_store_forced {
            StoreKind::File
        } else {
            StoreKind::Keychain
        }
    }
}

/// Aliases name files (locks) and keychain entries: keep them plain.
pub fn check_alias(alias: &str, what: &str) -> Result<(), Error> {
    let ok = !alias.is_empty()
        && alias.len() <= 100
        && alias != ENV_ORG
        && alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+'));
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "{what} `{}` is not a valid alias: use 1–100 letters, digits and . _ - @ + (and not `env`)",
            crate::salesforce::url::sanitize(alias, 100)
        )))
    }
}

fn select(meta: &Metadata, wanted: Option<&str>) -> Result<OrgRecord, Error> {
    if let Some(name) = wanted {
        return meta.find(name).cloned().ok_or_else(|| {
            Error::relogin(
                format!("no stored org is called `{name}`"),
                format!("`sfx orgs` lists the stored orgs; `sfx login --alias {name} …` adds it"),
            )
        });
    }
    if let Some(d) = meta.default.as_deref().and_then(|d| meta.orgs.get(d)) {
        return Ok(d.clone());
    }
    let mut it = meta.orgs.values();
    match (it.next(), it.next()) {
        (Some(only), None) => Ok(only.clone()),
        (None, _) => Err(Error::relogin(
            "no org is stored and no credentials are in the environment",
            "run `sfx login` (e.g. `sfx login --auth-url - < auth-url.txt`), or set SFX_AUTH_URL",
        )),
        (Some(_), Some(_)) => Err(Error::usage(format!(
            "{} orgs are stored and none is the default; choose one with -o <ALIAS> (or SFX_ORG), or mark one with `sfx login --set-default`",
            meta.orgs.len()
        ))),
    }
}

/// The org described by `SFX_AUTH_URL`, `SFX_REFRESH_TOKEN` or `SFX_ACCESS_TOKEN`.
/// URLs in the environment are checked even when they would not be used.
fn env_org() -> Result<Option<Org>, Error> {
    let instance = env_var("SFX_INSTANCE_URL")
        .map(|u| base_url(&u, "SFX_INSTANCE_URL"))
        .transpose()?;
    let login = env_var("SFX_LOGIN_URL")
        .map(|u| base_url(&u, "SFX_LOGIN_URL"))
        .transpose()?;
    let auth_url = env_var("SFX_AUTH_URL")
        .map(|u| AuthUrl::parse(&u))
        .transpose()?;
    let refresh = env_var("SFX_REFRESH_TOKEN").map(Secret::new);
    let access = env_var("SFX_ACCESS_TOKEN").map(Secret::new);
    let client_id = env_var("SFX_CLIENT_ID");
    let client_secret = env_var("SFX_CLIENT_SECRET").map(Secret::new);

    let (flow, client_id, client_secret, refresh, instance_url, from_auth_url) = if let Some(a) =
        auth_url
    {
        (
            Flow::AuthUrl,
            Some(a.client_id),
            a.client_secret.or(client_secret),
            Some(a.refresh_token),
            instance.unwrap_or(a.instance_url),
            true,
        )
    } else if let Some(rt) = refresh {
        let Some(id) = client_id else {
            return Err(Error::usage(
                "SFX_REFRESH_TOKEN is set but SFX_CLIENT_ID is not; a refresh needs the connected app's client id",
            ));
        };
        let Some(url) = instance.or(login) else {
            return Err(Error::usage(
                "SFX_REFRESH_TOKEN is set but neither SFX_INSTANCE_URL nor SFX_LOGIN_URL is; sfx needs to know where the org is",
            ));
        };
        (
            Flow::RefreshToken,
            Some(id),
            client_secret,
            Some(rt),
            url,
            false,
        )
    } else if access.is_some() {
        let Some(url) = instance else {
            return Err(Error::usage(
                "SFX_ACCESS_TOKEN is set but SFX_INSTANCE_URL is not; sfx needs the org's instance URL",
            ));
        };
        (
            Flow::AccessToken,
            client_id,
            client_secret,
            None,
            url,
            false,
        )
    } else {
        return Ok(None);
    };
    let record = OrgRecord {
        alias: ENV_ORG.to_string(),
        username: None,
        org_id: None,
        user_id: None,
        login_url: None,
        instance_url,
        client_id,
        flow,
        store: StoreKind::Env,
        issued_at: None,
        session_timeout_secs: 7200,
        expiry: None,
        access_token_masked: access.as_ref().map(Secret::mask),
        has_refresh_token: refresh.is_some(),
        has_client_secret: client_secret.is_some(),
        refresh_token_used_at: None,
        rotates_refresh_token: false,
        key_file: None,
        sf_link: None,
    };
    Ok(Some(Org {
        record,
        env: Some(EnvCreds {
            access_token: access,
            refresh_token: refresh,
            client_secret,
            from_auth_url,
        }),
    }))
}
