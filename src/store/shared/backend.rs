//! The shared store behind the store interface ([`OrgStore`]): the token
//! lifecycle uses it exactly as it uses the local store.

use super::SharedStore;
use crate::error::Error;
use crate::secret::Secret;
use crate::store::metadata::{OrgRecord, StoreKind};
use crate::store::{
    Cas, Listing, NewTokens, Org, OrgLock, OrgStore, Remembered, SecretKind, ServesReaders,
    Version, Versioned,
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
        SharedStore::secret(self, &org.record, kind)
    }

    fn vouched(&self, org: &Org) -> Result<bool, Error> {
        SharedStore::vouched(self, &org.record)
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
        self.write(&as_shared(new.record), &secrets, Some(expected))
    }

    fn put_secret(&self, org: &Org, kind: SecretKind, value: &Secret) -> Result<(), Error> {
        if SharedStore::put_secret(self, &org.record, kind, value)? {
            Ok(())
        } else {
            Err(Error::relogin(
                format!(
                    "org {} is no longer in the shared store at {}",
                    org.record.alias,
                    self.display()
                ),
                format!(
                    "`sfx orgs` lists what the store holds; `sfx login --alias {} …` adds it again",
                    org.record.alias
                ),
            ))
        }
    }

    fn update_record(
        &self,
        alias: &str,
        change: &mut dyn FnMut(&mut OrgRecord),
    ) -> Result<bool, Error> {
        // Read, change, compare-and-set; another writer in between: again.
        for _ in 0..16 {
            let Some((mut rec, v)) = self.read_org(alias)? else {
                return Ok(false);
            };
            change(&mut rec);
            if let Cas::Written(_) = self.write(&as_shared(&rec), &[], Some(Version(v)))? {
                return Ok(true);
            }
        }
        Err(Error::Other(format!(
            "org {alias} in the shared store at {} changed sixteen times while sfx tried to update its record; try again",
            self.display()
        )))
    }

    fn remember(&self, answers: &[Remembered<'_>]) -> Result<(), Error> {
        if self.is_reader() {
            // A reader writes nothing (its Redis user may not).
            return Ok(());
        }
        for a in answers {
            let Some((mut rec, v)) = self.read_org(a.alias)? else {
                continue;
            };
            if rec.access_token_masked.as_deref() != Some(a.masked.as_str()) {
                continue;
            }
            rec.expiry = Some(a.expiry);
            // A conflict means newer tokens: the answer is stale, drop it.
            self.write(&rec, &[], Some(Version(v)))?;
        }
        Ok(())
    }

    fn lock(&self, alias: &str) -> Result<OrgLock, Error> {
        if self.is_reader() {
            // A reader never refreshes or writes, so it has nothing to guard
            // (and its Redis user may not write a lease).
            return Ok(OrgLock::none());
        }
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

    fn attempt_begin(&self, alias: &str, window: std::time::Duration) -> Result<bool, Error> {
        SharedStore::attempt_begin(self, alias, window)
    }

    fn attempt_in_flight(&self, alias: &str) -> Result<Option<std::time::Duration>, Error> {
        SharedStore::attempt_in_flight(self, alias)
    }

    fn lease_held(&self, alias: &str) -> Result<bool, Error> {
        SharedStore::lease_held(self, alias)
    }

    fn save_org(
        &self,
        record: &OrgRecord,
        secrets: &[(SecretKind, Option<&Secret>)],
        make_default: bool,
    ) -> Result<Vec<String>, Error> {
        self.write(&as_shared(record), secrets, None)?;
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

    fn is_reader(&self) -> bool {
        SharedStore::is_reader(self)
    }

    fn ask_refreshers(&self, alias: &str, need: &super::FreshNeed) -> Result<(), Error> {
        SharedStore::ask_refreshers(self, alias, need, self.reader_wait())
    }

    fn describe(&self) -> String {
        format!("the shared store at {}", self.display())
    }

    fn shared_at(&self) -> Option<String> {
        Some(self.display())
    }

    fn claim_check(&self, alias: &str, hold: std::time::Duration) -> Result<bool, Error> {
        SharedStore::claim_check(self, alias, hold)
    }

    fn ready_to_save(&self, _kind: StoreKind) -> Result<(), Error> {
        // Reachable, and this machine's SFX_STORE_KEY is the store's key.
        self.ready_for_write()
    }

    fn serves_readers(&self) -> Option<&dyn ServesReaders> {
        // A reader key cannot refresh, so it serves nobody.
        (!SharedStore::is_reader(self)).then_some(self as &dyn ServesReaders)
    }
}

impl ServesReaders for SharedStore {
    fn requests_since_backlog(&self) -> Result<String, Error> {
        SharedStore::requests_since_backlog(self)
    }

    fn read_requests(
        &self,
        from: &mut std::collections::HashMap<String, String>,
        block: std::time::Duration,
    ) -> Result<Vec<super::Request>, Error> {
        SharedStore::read_requests(self, from, block)
    }

    fn notify(&self, alias: &str, answer: &super::Answer) -> Result<(), Error> {
        SharedStore::notify(self, alias, answer)
    }

    fn token_state(&self, alias: &str) -> Result<Option<super::TokenState>, Error> {
        SharedStore::token_state(self, alias)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// A real redis-server on a free loopback port, killed on drop (a missing
    /// one fails the test: scripts/test.sh installs it).
    pub(in crate::store::shared) struct Server(Child, pub(in crate::store::shared) u16);

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    pub(in crate::store::shared) fn server() -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--requirepass", "pw", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is not installed: run scripts/test.sh, or apt-get install redis-server");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Server(child, port)
    }

    #[test]
    fn the_shared_backend_keeps_the_store_interface_contract() {
        use crate::store::metadata::Flow;
        let srv = server();
        let url = match super::super::url::parse(
            Some(&format!("redis://:pw@127.0.0.1:{}", srv.1)),
            "--store",
        )
        .unwrap()
        {
            super::super::StoreChoice::Shared(u) => u,
            super::super::StoreChoice::Local => unreachable!(),
        };
        let s = SharedStore::new(url, "contract".into(), Duration::from_secs(2)).unwrap();
        // The key comes from SFX_STORE_KEY in real runs; a threaded test cannot
        // set a process-wide variable.
        s.set_key(&base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            [5u8; 32],
        ))
        .unwrap();
        let rec = OrgRecord {
            username: Some("a@example.com".into()),
            client_id: Some("3MVG9client".into()),
            issued_at: Some(1_700_000_000),
            access_token_masked: Some("00D…zero".into()),
            has_refresh_token: true,
            rotates_refresh_token: true,
            ..OrgRecord::new(
                "a",
                "https://example.my.salesforce.com",
                Flow::AuthUrl,
                StoreKind::Shared,
            )
        };
        let (at, rt) = (Secret::new("00D-access-zero"), Secret::new("5Aep-zero"));
        OrgStore::save_org(
            &s,
            &rec,
            &[
                (SecretKind::RefreshToken, Some(&rt)),
                (SecretKind::AccessToken, Some(&at)),
            ],
            false,
        )
        .unwrap();
        crate::store::contract::check(&s, "a");
    }
}
