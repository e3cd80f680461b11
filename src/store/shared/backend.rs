//! The shared store behind the store interface ([`OrgStore`]): the token
//! lifecycle uses it exactly as it uses the local store.

use super::{Cas as SharedCas, Expect, SharedStore};
use crate::error::Error;
use crate::secret::Secret;
use crate::store::metadata::{OrgRecord, StoreKind};
use crate::store::{
    Cas, Listing, NewTokens, Org, OrgLock, OrgStore, Remembered, SecretKind, Version, Versioned,
};

fn stored(mut record: OrgRecord) -> Org {
    record.store = StoreKind::Shared;
    Org { record, env: None }
}

fn as_shared(record: &OrgRecord) -> OrgRecord {
    let mut r = record.clone();
    r.store = StoreKind::Shared;
    r
}

impl OrgStore for SharedStore {
    fn list(&self) -> Result<Listing, Error> {
        let (default, orgs) = SharedStore::list(self)?;
        let default = default.filter(|d| orgs.iter().any(|(o, _)| &o.alias == d));
        Ok(Listing {
            default,
            orgs: orgs.into_iter().map(|(r, _)| stored(r)).collect(),
        })
    }

    fn read(&self, alias: &str) -> Result<Option<Versioned>, Error> {
        Ok(self.read_org(alias)?.map(|(record, v)| Versioned {
            org: stored(record),
            version: Version(v),
        }))
    }

    fn secret(&self, org: &Org, kind: SecretKind) -> Result<Option<Secret>, Error> {
        SharedStore::secret(self, &org.record.alias, kind)
    }

    fn write_tokens(&self, expected: Version, new: &NewTokens<'_>) -> Result<Cas, Error> {
        if expected.0 == 0 {
            // Version 0 is "not stored": new tokens are for an existing org only.
            return Ok(Cas::Conflict);
        }
        let mut secrets: Vec<(SecretKind, Option<&Secret>)> = Vec::new();
        if let Some(rt) = new.refresh_token {
            secrets.push((SecretKind::RefreshToken, Some(rt)));
        }
        secrets.push((SecretKind::AccessToken, Some(new.access_token)));
        // One Lua script: version compared, secrets and record written together.
        Ok(
            match self.write(
                &as_shared(new.record),
                &secrets,
                Expect::Version(expected.0),
            )? {
                SharedCas::Written(v) => Cas::Written(Version(v)),
                SharedCas::Conflict(_) => Cas::Conflict,
            },
        )
    }

    fn remember(&self, answers: &[Remembered<'_>]) -> Result<(), Error> {
        for a in answers {
            let Some((mut rec, v)) = self.read_org(a.alias)? else {
                continue;
            };
            if rec.access_token_masked.as_deref() != Some(a.masked.as_str()) {
                continue;
            }
            rec.expiry = Some(a.expiry);
            // A conflict means newer tokens: the answer is stale, drop it.
            self.write(&rec, &[], Expect::Version(v))?;
        }
        Ok(())
    }

    fn lock(&self, alias: &str) -> Result<OrgLock, Error> {
        let wait = crate::store::refresh_lock_wait(self.timeout());
        self.lease(alias, wait).map(OrgLock::new)
    }

    fn journal_pending(&self, alias: &str, refresh_token: &Secret) -> Result<bool, Error> {
        SharedStore::journal_pending(self, alias, refresh_token)
    }

    fn journal_begin(&self, alias: &str, refresh_token: &Secret) -> Result<bool, Error> {
        SharedStore::journal_begin(self, alias, refresh_token).map(|()| true)
    }

    fn journal_settle(&self, alias: &str) {
        SharedStore::journal_settle(self, alias)
    }

    fn save_org(
        &self,
        record: &OrgRecord,
        secrets: &[(SecretKind, Option<&Secret>)],
        make_default: bool,
    ) -> Result<Vec<String>, Error> {
        self.write(&as_shared(record), secrets, Expect::Any)?;
        if make_default {
            self.set_default(Some(&record.alias))?;
        }
        Ok(Vec::new())
    }

    fn delete_org(&self, alias: &str) -> Result<Option<OrgRecord>, Error> {
        let Some((rec, _)) = self.read_org(alias)? else {
            return Ok(None);
        };
        self.delete(alias)?;
        Ok(Some(rec))
    }

    fn set_default(&self, alias: Option<&str>) -> Result<(), Error> {
        SharedStore::set_default(self, alias)
    }
}
