//! The environment backend: the one org described by `SFX_AUTH_URL`,
//! `SFX_REFRESH_TOKEN` or `SFX_ACCESS_TOKEN` (built by the context), held in
//! memory for the life of the process. It writes nothing anywhere: new tokens
//! replace the ones in memory (so `sfx watch` keeps using a rotated refresh
//! token), the lock is a no-op (nothing is shared with another process), the
//! journal keeps nothing, and login/logout/default are refused.
//!
//! Layout: one org, alias `env`; its secrets are the [`EnvCreds`] it was built
//! with; the version is a counter that each write bumps.

use std::sync::Mutex;

use super::metadata::OrgRecord;
use super::{
    Cas, EnvCreds, Listing, NewTokens, Org, OrgLock, OrgStore, Remembered, SecretKind, Version,
    Versioned,
};
use crate::error::Error;
use crate::secret::Secret;

pub struct EnvStore {
    state: Mutex<(Org, u64)>,
}

impl EnvStore {
    /// A store holding `org`, whose `env` must carry its credentials.
    pub fn new(org: Org) -> EnvStore {
        EnvStore {
            state: Mutex::new((org, 0)),
        }
    }

    fn get(&self) -> (Org, u64) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn refused(what: &str) -> Error {
    Error::usage(format!(
        "the org comes from the environment (SFX_AUTH_URL, SFX_REFRESH_TOKEN or SFX_ACCESS_TOKEN) and nothing is stored for it, so it cannot be {what}; unset those variables first"
    ))
}

impl OrgStore for EnvStore {
    fn list(&self) -> Result<Listing, Error> {
        Ok(Listing {
            default: None,
            orgs: vec![self.get().0],
        })
    }

    fn read(&self, alias: &str) -> Result<Option<Versioned>, Error> {
        let (org, n) = self.get();
        Ok((org.name() == alias).then_some(Versioned {
            org,
            version: Version(n),
        }))
    }

    fn secret(&self, org: &Org, kind: SecretKind) -> Result<Option<Secret>, Error> {
        let (mine, _) = self.get();
        if mine.name() != org.name() {
            return Ok(None);
        }
        let Some(env) = mine.env else {
            return Ok(None);
        };
        Ok(match kind {
            SecretKind::AccessToken => env.access_token,
            SecretKind::RefreshToken => env.refresh_token,
            SecretKind::ClientSecret => env.client_secret,
        })
    }

    fn write_tokens(&self, expected: Version, new: &NewTokens<'_>) -> Result<Cas, Error> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.0.name() != new.record.alias || Version(st.1) != expected {
            return Ok(Cas::Conflict);
        }
        let mut env = st.0.env.clone().unwrap_or(EnvCreds {
            access_token: None,
            refresh_token: None,
            client_secret: None,
            from_auth_url: false,
        });
        env.access_token = Some(new.access_token.clone());
        if let Some(rt) = new.refresh_token {
            env.refresh_token = Some(rt.clone());
        }
        st.0 = Org {
            record: new.record.clone(),
            env: Some(env),
        };
        st.1 += 1;
        Ok(Cas::Written(Version(st.1)))
    }

    fn put_secret(&self, org: &Org, kind: SecretKind, value: &Secret) -> Result<(), Error> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.0.name() != org.name() {
            return Ok(());
        }
        if let Some(env) = st.0.env.as_mut() {
            let slot = match kind {
                SecretKind::AccessToken => &mut env.access_token,
                SecretKind::RefreshToken => &mut env.refresh_token,
                SecretKind::ClientSecret => &mut env.client_secret,
            };
            *slot = Some(value.clone());
        }
        Ok(())
    }

    fn update_record(
        &self,
        alias: &str,
        change: &mut dyn FnMut(&mut OrgRecord),
    ) -> Result<bool, Error> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.0.name() != alias {
            return Ok(false);
        }
        change(&mut st.0.record);
        st.1 += 1;
        Ok(true)
    }

    fn remember(&self, _answers: &[Remembered<'_>]) -> Result<(), Error> {
        // Nothing outlives the process, so there is nothing to cache for.
        Ok(())
    }

    fn lock(&self, _alias: &str) -> Result<OrgLock, Error> {
        Ok(OrgLock::none())
    }

    fn journal_pending(&self, _alias: &str, _refresh_token: &Secret) -> Result<bool, Error> {
        Ok(false)
    }

    fn journal_begin(&self, _alias: &str, _refresh_token: &Secret) -> Result<bool, Error> {
        Ok(false)
    }

    fn journal_settle(&self, _alias: &str) {}

    fn save_org(
        &self,
        _record: &OrgRecord,
        _secrets: &[(SecretKind, Option<&Secret>)],
        _make_default: bool,
    ) -> Result<Vec<String>, Error> {
        Err(refused("stored"))
    }

    fn delete_org(&self, _alias: &str) -> Result<Option<OrgRecord>, Error> {
        Err(refused("removed"))
    }

    fn set_default(&self, _alias: Option<&str>) -> Result<(), Error> {
        Err(refused("made the default"))
    }

    fn describe(&self) -> String {
        "the environment".to_string()
    }

    fn persistent(&self) -> bool {
        false
    }

    fn renew_hint(&self, org: &Org) -> Option<String> {
        Some(if org.record.has_refresh_token {
            "`sfx token` refreshes it".to_string()
        } else {
            "it cannot be refreshed: put a new token (or an SFDX auth URL) in the environment"
                .to_string()
        })
    }
}
