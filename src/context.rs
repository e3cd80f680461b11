//! The resolved run: which org, which store, how to print, and (lazily) the HTTP
//! client. Built once from the parsed command line and the environment, after
//! every URL, duration and store choice has been checked — before any work.
//! Building it touches neither the network nor the keychain.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::cli::GlobalArgs;
use crate::clock::Clock;
use crate::error::Error;
use crate::output::{Mode, Style};
use crate::salesforce::Client;
use crate::salesforce::auth_url::AuthUrl;
use crate::salesforce::http::Http;
use crate::salesforce::jwt;
use crate::salesforce::url::base_url;
use crate::secret::Secret;
use crate::store::env::EnvStore;
use crate::store::metadata::{ExactSource, Flow, KnownExpiry, OrgRecord, StoreKind};
use crate::store::shared::{SharedStore, StoreChoice};
use crate::store::{Listing, LocalStore, Notes, OrgLock, OrgStore, Said, SecretKind};

pub use crate::store::metadata::{ENV_ORG, check_alias};
pub use crate::store::{EnvCreds, Org};

pub struct Context {
    pub mode: Mode,
    pub style: Style,
    pub verbose: u8,
    pub timeout: Duration,
    /// `--wait`: how long a reader waits for a refresher.
    pub wait: Duration,
    pub org_flag: Option<String>,
    /// `org_flag` came from SFX_ORG, not `-o` (messages name the variable).
    pub org_from_env: bool,
    /// The local store: commands see it through [`Context::orgs`] /
    /// [`Context::stored_orgs`]; `doctor` and `--migrate` by name ([`Context::backends`]).
    store: LocalStore,
    /// `SFX_CREDENTIAL_STORE=file`.
    pub file_store_forced: bool,
    /// The org from the environment, as it was when the run began.
    pub env_org: Option<Org>,
    /// The environment backend, when the org comes from the environment.
    env_store: Option<EnvStore>,
    /// The shared store, with `--store redis://…` / `SFX_STORE` (issue #13).
    shared: Option<SharedStore>,
    clock: Arc<dyn Clock>,
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
                    crate::text::sanitize(other, 40)
                )));
            }
        };
        let clock: Arc<dyn Clock> = Arc::from(crate::clock::from_env().map_err(Error::usage)?);
        // What a store has to say (a wait for another process's lock) is
        // printed here, in the command layer: no store prints.
        let notes = Notes::to(|said| match said {
            Said::Waiting(line) => crate::messages::say(line),
            Said::Note(text) => crate::messages::note(text),
        });
        // Checked before any work (a malformed URL is exit 2); nothing is contacted yet.
        let shared =
            match crate::store::shared::url::parse(g.store.as_deref(), "--store (or SFX_STORE)")? {
                StoreChoice::Local => None,
                StoreChoice::Shared(url) => Some(
                    SharedStore::new(url, crate::store::shared::namespace_from_env()?, g.timeout)?
                        .with_wait(g.wait)
                        .with_notes(notes.clone())
                        .with_clock(clock.clone()),
                ),
            };
        let env_org = env_org(clock.now())?;
        // `env` names the environment's org: `sfx watch --exec` hands SFX_ORG=env to
        // its command, which may itself run sfx with the same environment.
        if let Some(alias) = &g.org
            && !(alias == ENV_ORG && env_org.is_some())
        {
            check_alias(
                alias,
                if g.org_from_env {
                    "SFX_ORG"
                } else {
                    "-o/--org"
                },
            )?;
        }
        Ok(Context {
            mode,
            style: crate::output::style(g.color),
            verbose: g.verbose,
            timeout: g.timeout,
            wait: g.wait,
            org_flag: g.org.clone(),
            org_from_env: g.org_from_env,
            store: LocalStore::new(crate::store::default_home()?)
                .with_timeout(g.timeout)
                .with_notes(notes)
                .with_clock(clock.clone()),
            file_store_forced,
            env_store: env_org.clone().map(EnvStore::new),
            shared,
            env_org,
            clock,
            http: OnceLock::new(),
        })
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Where "now" comes from.
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// The clock, for threads that outlive a borrow (the watch's).
    pub fn clock_handle(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// The same run on another clock (tests: a fake one): the stores wait on
    /// it, and the HTTP client is built again on first use, on it.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Context {
        self.store = self.store.with_clock(clock.clone());
        self.shared = self.shared.map(|s| s.with_clock(clock.clone()));
        self.clock = clock;
        self.http = OnceLock::new();
        self
    }

    /// The same run on a local store at `home` and no shared store (tests in
    /// process: their own store, whatever the environment names). Its lock
    /// waits are real: another thread of the test really holds a lock for a
    /// moment, and a fake clock would skip through the wait at once.
    #[cfg(test)]
    pub fn with_local_home(mut self, home: std::path::PathBuf) -> Context {
        self.store = LocalStore::new(home).with_timeout(self.timeout);
        self.shared = None;
        self
    }

    /// The HTTP client, built on first use.
    pub fn http(&self) -> &Http {
        self.http
            .get_or_init(|| Http::with_clock(self.timeout, self.verbose, self.clock.clone()))
    }

    pub fn client(&self) -> Client<'_> {
        Client { http: self.http() }
    }

    /// Where this run's orgs live: the environment's org, else the shared store
    /// when one is chosen, else the local store.
    pub fn orgs(&self) -> &dyn OrgStore {
        match (&self.env_store, &self.shared) {
            (Some(env), _) => env,
            (None, Some(shared)) => shared,
            (None, None) => &self.store,
        }
    }

    /// Where logins are stored and logouts remove from: the shared store when
    /// one is chosen, else the local store (never the environment).
    pub fn stored_orgs(&self) -> &dyn OrgStore {
        match &self.shared {
            Some(shared) => shared,
            None => &self.store,
        }
    }

    /// Refuse, with exit 2 and before anything is sent or written, what needs
    /// the refresh token when `SFX_STORE_KEY` holds a reader key (issue #20).
    pub fn refuse_reader(&self, what: &str) -> Result<(), Error> {
        match &self.shared {
            Some(s) if s.is_reader() => Err(crate::store::shared::reader_refused(what)),
            _ => Ok(()),
        }
    }

    /// The stored orgs' store in words: "the local store" or "the shared store at …".
    pub fn store_name(&self) -> String {
        self.stored_orgs().describe()
    }

    /// The backends by name, for the commands that are about them (`doctor`,
    /// `login --migrate`); every other command sees one [`OrgStore`]
    /// (tests/layers.rs holds them to it).
    pub fn backends(&self) -> Backends<'_> {
        Backends {
            local: &self.store,
            shared: self.shared.as_ref(),
        }
    }

    /// The org this run acts on: the environment's, else `-o`, the default, or the only one.
    pub fn org(&self) -> Result<Org, Error> {
        if let Some(org) = &self.env_org {
            return Ok(self
                .orgs()
                .read(org.name())?
                .map(|v| v.org)
                .unwrap_or_else(|| org.clone()));
        }
        // A shared store and an alias: one read (the listing is for usernames
        // and the default).
        if let Some(shared) = &self.shared
            && let Some(name) = self.org_flag.as_deref()
            && let Some(v) = OrgStore::read(shared, name)?
        {
            return Ok(v.org);
        }
        select(self.orgs().list()?, self.wanted())
    }

    /// The org asked for by `-o` or SFX_ORG, with where it came from.
    pub fn wanted(&self) -> Option<Wanted<'_>> {
        self.org_flag.as_deref().map(|name| Wanted {
            name,
            from_env: self.org_from_env,
        })
    }

    /// Hold the org's refresh lock (the one `refresh`, `token` and `watch` share)
    /// and read its record again: another process may have refreshed it, or
    /// logged it out (`None`), while this one was deciding.
    pub fn locked(&self, org: &Org) -> Result<Option<(Org, OrgLock)>, Error> {
        let lock = self.orgs().lock(org.name())?;
        Ok(self.orgs().read(org.name())?.map(|v| (v.org, lock)))
    }

    /// Every org (for `--all`); the environment org alone in env mode.
    pub fn all_orgs(&self) -> Result<Vec<Org>, Error> {
        Ok(self.orgs().list()?.orgs)
    }

    /// One secret of an org (see [`crate::lifecycle::secret`]).
    pub fn secret(&self, org: &Org, kind: SecretKind) -> Result<Option<Secret>, Error> {
        crate::lifecycle::secret(self.orgs(), org, kind)
    }

    /// Which store new secrets go to.
    pub fn store_for_new_login(&self, insecure_flag: bool) -> StoreKind {
        if self.shared.is_some() {
            StoreKind::Shared
        } else {
            self.local_kind_for_new_login(insecure_flag)
        }
    }

    /// Which local backend new secrets go to (keychain, or the file).
    pub fn local_kind_for_new_login(&self, insecure_flag: bool) -> StoreKind {
        if insecure_flag || self.file_store_forced {
            StoreKind::File
        } else {
            StoreKind::Keychain
        }
    }
}

/// The stores by backend ([`Context::backends`]).
pub struct Backends<'a> {
    pub local: &'a LocalStore,
    /// With `--store redis://…` / `SFX_STORE`.
    pub shared: Option<&'a SharedStore>,
}

/// An org asked for by name: `-o`, or SFX_ORG (`from_env`).
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    pub name: &'a str,
    pub from_env: bool,
}

/// `-o` (an alias, else a username), else the default, else the only org.
pub fn select(list: Listing, wanted: Option<Wanted<'_>>) -> Result<Org, Error> {
    let Listing { default, mut orgs } = list;
    if let Some(Wanted { name, from_env }) = wanted {
        let by_alias = orgs.iter().position(|o| o.name() == name);
        let by_user = || {
            orgs.iter()
                .position(|o| o.record.username.as_deref() == Some(name))
        };
        return match by_alias.or_else(by_user) {
            Some(i) => Ok(orgs.swap_remove(i)),
            None => Err(unknown_org(name, from_env, &orgs)),
        };
    }
    if let Some(d) = default.as_deref()
        && let Some(i) = orgs.iter().position(|o| o.name() == d)
    {
        return Ok(orgs.swap_remove(i));
    }
    let n = orgs.len();
    let mut it = orgs.into_iter();
    match (it.next(), it.next()) {
        (Some(only), None) => Ok(only),
        (None, _) => Err(Error::relogin(
            "no org is stored and no credentials are in the environment",
            "run `sfx login` (e.g. `sfx login --auth-url - < auth-url.txt`), or set SFX_AUTH_URL",
        )),
        (Some(_), Some(_)) => Err(Error::usage(format!(
            "{n} orgs are stored and none is the default; choose one with -o <ALIAS> (or SFX_ORG), or mark one as the default: `sfx login --set-default -o <ALIAS>` (no new login; `sfx orgs` lists them)"
        ))),
    }
}

/// `-o`/SFX_ORG names no stored org (contract: "Never lose a login"): exit 4,
/// the closest stored alias or username, and the variable when it came from one.
fn unknown_org(name: &str, from_env: bool, orgs: &[Org]) -> Error {
    let message = if from_env {
        format!(
            "SFX_ORG is `{name}`, but no stored org is called that (the value comes from the environment, not -o)"
        )
    } else {
        format!("no stored org is called `{name}`")
    };
    let names = orgs.iter().flat_map(|o| {
        std::iter::once(o.name()).chain(o.record.username.as_deref().filter(|u| *u != o.name()))
    });
    let mut hint = match closest(name, names) {
        Some(near) => format!("did you mean `{near}`? "),
        None => String::new(),
    };
    if from_env {
        hint.push_str("unset SFX_ORG or set it to a stored alias; ");
    }
    hint.push_str(&format!(
        "`sfx orgs` lists the stored orgs; `sfx login --alias {name} …` adds it"
    ));
    Error::relogin(message, hint)
}

/// The stored name closest to a typo: by Damerau–Levenshtein distance (a swap of
/// two letters is one edit), ignoring case, within a third of the name's length
/// (at least one edit, at most three); ties go to the first.
pub fn closest<'a>(typed: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let typed_l = typed.to_lowercase();
    let limit = (typed.chars().count() / 3).clamp(1, 3);
    names
        .map(|n| (strsim::damerau_levenshtein(&typed_l, &n.to_lowercase()), n))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// The org described by `SFX_AUTH_URL`, `SFX_REFRESH_TOKEN` or `SFX_ACCESS_TOKEN`.
/// URLs in the environment are checked even when they would not be used.
fn env_org(now: DateTime<Utc>) -> Result<Option<Org>, Error> {
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
        client_id,
        // A JWT access token tells its own expiry: known without a request.
        expiry: access
            .as_ref()
            .and_then(|t| jwt::times(t.expose()))
            .map(|t| KnownExpiry {
                exp: t.exp.timestamp(),
                iat: t.iat.map(|i| i.timestamp()),
                source: ExactSource::Jwt,
                checked_at: now.timestamp(),
            }),
        access_token_masked: access.as_ref().map(Secret::mask),
        has_refresh_token: refresh.is_some(),
        has_client_secret: client_secret.is_some(),
        ..OrgRecord::new(ENV_ORG, instance_url, flow, StoreKind::Env)
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

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn a_typo_finds_the_closest_stored_name_and_nothing_far_away() {
        let names = ["prod", "dev", "staging-eu", "me@acme.com"];
        let near = |typed: &str| closest(typed, names.iter().copied());
        assert_eq!(near("prdo"), Some("prod"), "a swap is one edit");
        assert_eq!(near("PROD"), Some("prod"), "case is ignored");
        assert_eq!(near("dve"), Some("dev"));
        assert_eq!(near("staging-us"), Some("staging-eu"));
        assert_eq!(near("me@acme.co"), Some("me@acme.com"));
        assert_eq!(near("qa"), None);
        assert_eq!(
            near("production"),
            None,
            "more than a third of the name differs"
        );
        assert_eq!(near(""), None);
    }
}
