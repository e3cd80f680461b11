//! An in-memory store: every org, secret, journal entry and lock held by this
//! process, for the life of the value. It keeps the whole [`OrgStore`]
//! contract — logins, logouts and the default mark included — so tests (and
//! a future backend's tests) can run the lifecycle and the commands' logic
//! without a home directory, a keychain or a server.
//!
//! Layout: one map of alias → (record, version) and one of (alias, kind) →
//! secret, under one mutex; versions come from one counter, so an org removed
//! and stored again never repeats a version a reader may hold. The refresh
//! lock is per alias, held by a guard across threads; waiting for it is
//! bounded (then `StoreUnavailable`, as the other stores) and goes through the
//! store's [`Clock`] (a fake one makes the wait instant).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::metadata::OrgRecord;
use super::{
    Cas, Listing, NewTokens, Org, OrgLock, OrgStore, Remembered, SecretKind, Version, Versioned,
};
use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::secret::Secret;

#[derive(Default)]
struct State {
    default: Option<String>,
    orgs: BTreeMap<String, (OrgRecord, u64)>,
    secrets: HashMap<(String, &'static str), Secret>,
    /// Alias → the refresh token of a journaled refresh not yet settled.
    journal: HashMap<String, Secret>,
    /// The last version given out.
    versions: u64,
}

impl State {
    fn next_version(&mut self) -> u64 {
        self.versions += 1;
        self.versions
    }
}

/// The held refresh locks (by alias) and the condition a waiter waits on.
#[derive(Default)]
struct Locks {
    held: Mutex<HashSet<String>>,
    freed: Condvar,
}

/// Releases an alias's refresh lock when dropped.
struct Held {
    locks: Arc<Locks>,
    alias: String,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.locks
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.alias);
        self.locks.freed.notify_all();
    }
}

pub struct MemoryStore {
    state: Mutex<State>,
    locks: Arc<Locks>,
    /// How long [`OrgStore::lock`] waits for another holder.
    lock_wait: Duration,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryStore {
    fn default() -> MemoryStore {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore {
            state: Mutex::default(),
            locks: Arc::default(),
            lock_wait: Duration::from_secs(30),
            clock: Arc::new(SystemClock),
        }
    }

    /// Wait for a lock on `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> MemoryStore {
        self.clock = clock;
        self
    }

    /// Wait at most `wait` for another holder of an org's lock.
    pub fn with_lock_wait(mut self, wait: Duration) -> MemoryStore {
        self.lock_wait = wait;
        self
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn stored(record: &OrgRecord) -> Org {
    Org {
        record: record.clone(),
        env: None,
    }
}

impl OrgStore for MemoryStore {
    fn list(&self) -> Result<Listing, Error> {
        let st = self.st();
        Ok(Listing {
            default: st.default.clone().filter(|d| st.orgs.contains_key(d)),
            orgs: st.orgs.values().map(|(r, _)| stored(r)).collect(),
        })
    }

    fn read(&self, alias: &str) -> Result<Option<Versioned>, Error> {
        Ok(self.st().orgs.get(alias).map(|(r, v)| Versioned {
            org: stored(r),
            version: Version(*v),
        }))
    }

    fn secret(&self, org: &Org, kind: SecretKind) -> Result<Option<Secret>, Error> {
        Ok(self
            .st()
            .secrets
            .get(&(org.name().to_string(), kind.as_str()))
            .cloned())
    }

    fn write_tokens(&self, expected: Version, new: &NewTokens<'_>) -> Result<Cas, Error> {
        let mut st = self.st();
        let alias = new.record.alias.clone();
        if st
            .orgs
            .get(&alias)
            .is_none_or(|(_, v)| Version(*v) != expected)
        {
            return Ok(Cas::Conflict);
        }
        if let Some(rt) = new.refresh_token {
            st.secrets.insert(
                (alias.clone(), SecretKind::RefreshToken.as_str()),
                rt.clone(),
            );
        }
        st.secrets.insert(
            (alias.clone(), SecretKind::AccessToken.as_str()),
            new.access_token.clone(),
        );
        let v = st.next_version();
        st.orgs.insert(alias, (new.record.clone(), v));
        Ok(Cas::Written(Version(v)))
    }

    fn put_secret(&self, org: &Org, kind: SecretKind, value: &Secret) -> Result<(), Error> {
        let mut st = self.st();
        if st.orgs.contains_key(org.name()) {
            st.secrets
                .insert((org.name().to_string(), kind.as_str()), value.clone());
        }
        Ok(())
    }

    fn update_record(
        &self,
        alias: &str,
        change: &mut dyn FnMut(&mut OrgRecord),
    ) -> Result<bool, Error> {
        let mut st = self.st();
        let v = st.next_version();
        Ok(st
            .orgs
            .get_mut(alias)
            .map(|(r, version)| {
                change(r);
                *version = v;
            })
            .is_some())
    }

    fn remember(&self, answers: &[Remembered<'_>]) -> Result<(), Error> {
        let mut st = self.st();
        for a in answers {
            let v = st.next_version();
            if let Some((r, version)) = st.orgs.get_mut(a.alias)
                && r.access_token_masked.as_deref() == Some(a.masked.as_str())
            {
                r.expiry = Some(a.expiry);
                *version = v;
            }
        }
        Ok(())
    }

    fn lock(&self, alias: &str) -> Result<OrgLock, Error> {
        let clock = &*self.clock;
        let started = clock.instant();
        let mut held = self.locks.held.lock().unwrap_or_else(|e| e.into_inner());
        while held.contains(alias) {
            let waited = clock.instant().saturating_duration_since(started);
            let Some(left) = self.lock_wait.checked_sub(waited).filter(|l| !l.is_zero()) else {
                return Err(Error::StoreUnavailable {
                    message: format!(
                        "another thread has held the refresh lock of org {alias} for more than {}, so this one gives up",
                        crate::timefmt::humanize(self.lock_wait)
                    ),
                    hint: None,
                    source: None,
                });
            };
            held = crate::clock::wait_timeout(clock, &self.locks.freed, held, left).0;
        }
        held.insert(alias.to_string());
        Ok(OrgLock::new(Held {
            locks: self.locks.clone(),
            alias: alias.to_string(),
        }))
    }

    fn journal_pending(&self, alias: &str, refresh_token: &Secret) -> Result<bool, Error> {
        Ok(self
            .st()
            .journal
            .get(alias)
            .is_some_and(|t| t.expose() == refresh_token.expose()))
    }

    fn journal_begin(&self, alias: &str, refresh_token: &Secret) -> Result<bool, Error> {
        self.st()
            .journal
            .insert(alias.to_string(), refresh_token.clone());
        Ok(true)
    }

    fn journal_settle(&self, alias: &str) {
        self.st().journal.remove(alias);
    }

    fn save_org(
        &self,
        record: &OrgRecord,
        secrets: &[(SecretKind, Option<&Secret>)],
        make_default: bool,
    ) -> Result<Vec<String>, Error> {
        let mut st = self.st();
        let alias = record.alias.clone();
        for (kind, value) in secrets {
            let key = (alias.clone(), kind.as_str());
            match value {
                Some(v) => st.secrets.insert(key, (*v).clone()),
                None => st.secrets.remove(&key),
            };
        }
        let v = st.next_version();
        st.orgs.insert(alias.clone(), (record.clone(), v));
        if make_default {
            st.default = Some(alias);
        }
        Ok(Vec::new())
    }

    fn delete_org(&self, alias: &str) -> Result<Option<OrgRecord>, Error> {
        let mut st = self.st();
        let Some((rec, _)) = st.orgs.remove(alias) else {
            return Ok(None);
        };
        st.secrets.retain(|(a, _), _| a != alias);
        st.journal.remove(alias);
        if st.default.as_deref() == Some(alias) {
            st.default = None;
        }
        Ok(Some(rec))
    }

    fn set_default(&self, alias: Option<&str>) -> Result<(), Error> {
        self.st().default = alias.map(str::to_string);
        Ok(())
    }

    fn describe(&self) -> String {
        "the in-memory store".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::metadata::{Flow, StoreKind};

    fn record(alias: &str) -> OrgRecord {
        OrgRecord {
            client_id: Some("id".into()),
            access_token_masked: Some("00D…zero".into()),
            has_refresh_token: true,
            ..OrgRecord::new(
                alias,
                "https://a.example.com",
                Flow::AuthUrl,
                StoreKind::File,
            )
        }
    }

    fn with_org(alias: &str) -> MemoryStore {
        let store = MemoryStore::new();
        let (rt, at) = (Secret::new("5Aep-zero"), Secret::new("00D-zero"));
        store
            .save_org(
                &record(alias),
                &[
                    (SecretKind::RefreshToken, Some(&rt)),
                    (SecretKind::AccessToken, Some(&at)),
                ],
                true,
            )
            .unwrap();
        store
    }

    #[test]
    fn the_memory_backend_keeps_the_contract() {
        let store = with_org("a");
        crate::store::contract::check(&store, "a");
    }

    #[test]
    fn logins_logouts_and_the_default_mark() {
        let store = with_org("a");
        store.save_org(&record("b"), &[], false).unwrap();
        assert_eq!(store.list().unwrap().default.as_deref(), Some("a"));
        let names: Vec<String> = store
            .list()
            .unwrap()
            .orgs
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        assert_eq!(names, ["a", "b"], "sorted by alias");
        let a = store.read("a").unwrap().unwrap();
        assert_eq!(store.delete_org("a").unwrap().unwrap().alias, "a");
        assert!(store.delete_org("a").unwrap().is_none());
        assert_eq!(store.list().unwrap().default, None, "the mark goes with it");
        assert!(
            store
                .secret(&a.org, SecretKind::RefreshToken)
                .unwrap()
                .is_none()
        );
        // Stored again: a version the old reader never saw.
        store.save_org(&record("a"), &[], false).unwrap();
        assert_ne!(store.read("a").unwrap().unwrap().version, a.version);
    }

    #[test]
    fn the_lock_is_per_alias_and_a_second_holder_waits_a_bounded_time() {
        // Thirty seconds of waiting, on a clock whose waits return at once.
        let clock = Arc::new(crate::clock::FakeClock::at(chrono::Utc::now()));
        let store = with_org("a").with_clock(clock.clone());
        let held = store.lock("a").unwrap();
        let _other = store.lock("b").expect("two aliases never share a lock");
        let e = match store.lock("a") {
            Err(e) => e,
            Ok(_) => panic!("a held lock was taken twice"),
        };
        assert!(matches!(e, Error::StoreUnavailable { .. }), "{e}");
        assert!(e.to_string().contains("more than 30s"), "{e}");
        assert!(
            clock.elapsed() >= Duration::from_secs(30),
            "the wait was on the clock"
        );
        drop(held);
        drop(store.lock("a").expect("free again once dropped"));
        // Across threads: the waiter gets it when the holder lets go.
        let store = Arc::new(with_org("a"));
        let held = store.lock("a").unwrap();
        let waiter = {
            let store = store.clone();
            std::thread::spawn(move || store.lock("a").map(drop).is_ok())
        };
        drop(held);
        assert!(waiter.join().unwrap());
    }
}
