//! The [`OrgStore`] contract as one check every backend runs (test-only):
//! local and environment here, memory and shared in their modules; a new backend calls [`check`] on a store that
//! holds one org `alias` with an access token, a refresh token and
//! `has_refresh_token` set.

use super::{Cas, NewTokens, OrgStore, SecretKind};
use crate::secret::Secret;

/// Runs every clause of the contract against `store`.
pub fn check(store: &dyn OrgStore, alias: &str) {
    // Nothing stored is Ok(None), not an error.
    assert!(store.read("no-such-org").unwrap().is_none());
    assert!(!store.update_record("no-such-org", &mut |_| {}).unwrap());

    // Listing: metadata only, the org is there.
    let listed = store.list().unwrap();
    assert!(listed.orgs.iter().any(|o| o.name() == alias));

    // A read carries a version; reading again without a write gives the same.
    let v1 = store.read(alias).unwrap().expect("the org is stored");
    assert_eq!(store.read(alias).unwrap().unwrap().version, v1.version);
    let rt = store
        .secret(&v1.org, SecretKind::RefreshToken)
        .unwrap()
        .expect("a refresh token is stored");

    // Compare-and-set at the version read: written, and a new version.
    let mut rec = v1.org.record.clone();
    rec.issued_at = Some(1_800_000_000);
    rec.access_token_masked = Some("00D…one1".into());
    let one = Secret::new("00D-access-one");
    let rotated = Secret::new("5Aep-rotated");
    let Cas::Written(v2) = store
        .write_tokens(
            v1.version,
            &NewTokens {
                record: &rec,
                access_token: &one,
                refresh_token: Some(&rotated),
            },
        )
        .unwrap()
    else {
        panic!("a write at the current version must succeed");
    };
    assert_ne!(v2, v1.version);
    let now = store.read(alias).unwrap().unwrap();
    assert_eq!(now.version, v2);
    assert_eq!(now.org.record.issued_at, Some(1_800_000_000));
    let got = |kind| {
        store
            .secret(&now.org, kind)
            .unwrap()
            .map(|s| s.expose().to_string())
    };
    assert_eq!(
        got(SecretKind::AccessToken).as_deref(),
        Some("00D-access-one")
    );
    assert_eq!(
        got(SecretKind::RefreshToken).as_deref(),
        Some("5Aep-rotated")
    );

    // A stale version: Conflict, and nothing written.
    let mut stale = rec.clone();
    stale.issued_at = Some(1);
    let two = Secret::new("00D-access-two");
    assert_eq!(
        store
            .write_tokens(
                v1.version,
                &NewTokens {
                    record: &stale,
                    access_token: &two,
                    refresh_token: None,
                },
            )
            .unwrap(),
        Cas::Conflict
    );
    let after = store.read(alias).unwrap().unwrap();
    assert_eq!(after.version, v2);
    assert_eq!(after.org.record.issued_at, Some(1_800_000_000));
    assert_eq!(
        store
            .secret(&after.org, SecretKind::AccessToken)
            .unwrap()
            .map(|s| s.expose().to_string())
            .as_deref(),
        Some("00D-access-one")
    );

    // put_secret leaves the version alone; update_record moves it.
    store
        .put_secret(&after.org, SecretKind::RefreshToken, &rt)
        .unwrap();
    assert_eq!(store.read(alias).unwrap().unwrap().version, v2);
    assert!(
        store
            .update_record(alias, &mut |r| r.refresh_token_used_at = Some(42))
            .unwrap()
    );
    let v3 = store.read(alias).unwrap().unwrap();
    assert_ne!(v3.version, v2);
    assert_eq!(v3.org.record.refresh_token_used_at, Some(42));

    // The journal: begun (where the store keeps one), matched only by the
    // same token, settled.
    assert!(!store.journal_pending(alias, &rt).unwrap());
    if store.journal_begin(alias, &rt).unwrap() {
        assert!(store.journal_pending(alias, &rt).unwrap());
        assert!(!store.journal_pending(alias, &two).unwrap());
    }
    store.journal_settle(alias);
    assert!(!store.journal_pending(alias, &rt).unwrap());

    // The lock: taken and released (dropping the guard) twice in a row.
    drop(store.lock(alias).unwrap());
    drop(store.lock(alias).unwrap());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::metadata::{Flow, OrgRecord, StoreKind};
    use crate::store::{EnvCreds, LocalStore, Org, env::EnvStore};

    fn record(alias: &str, store: StoreKind) -> OrgRecord {
        OrgRecord {
            client_id: Some("id".into()),
            access_token_masked: Some("00D…zero".into()),
            has_refresh_token: true,
            ..OrgRecord::new(alias, "https://a.example.com", Flow::AuthUrl, store)
        }
    }

    #[test]
    fn the_local_backend_keeps_the_contract() {
        let home = tempfile::tempdir().unwrap();
        let store = LocalStore::new(home.path().to_path_buf());
        let rt = Secret::new("5Aep-zero");
        let at = Secret::new("00D-zero");
        store
            .save_org(
                &record("a+b", StoreKind::File),
                &[
                    (SecretKind::RefreshToken, Some(&rt)),
                    (SecretKind::AccessToken, Some(&at)),
                ],
                true,
            )
            .unwrap();
        // A neighbour whose old lock name collided (issue #11) stays untouched.
        store
            .save_org(
                &record("a_b", StoreKind::File),
                &[(SecretKind::RefreshToken, Some(&rt))],
                false,
            )
            .unwrap();
        let before = OrgStore::read(&store, "a_b").unwrap().unwrap().version;
        check(&store, "a+b");
        assert_eq!(
            OrgStore::read(&store, "a_b").unwrap().unwrap().version,
            before
        );
        // The two aliases' locks are separate: both can be held at once.
        let (_one, _two) = (store.lock("a+b").unwrap(), store.lock("a_b").unwrap());
    }

    #[test]
    fn the_environment_backend_keeps_the_contract_and_refuses_to_store() {
        let org = Org {
            record: record("env", StoreKind::Env),
            env: Some(EnvCreds {
                access_token: Some(Secret::new("00D-zero")),
                refresh_token: Some(Secret::new("5Aep-zero")),
                client_secret: None,
                from_auth_url: true,
            }),
        };
        let store = EnvStore::new(org);
        check(&store, "env");
        assert!(
            store
                .save_org(&record("x", StoreKind::Env), &[], false)
                .is_err()
        );
        assert!(store.delete_org("env").is_err());
        assert!(store.set_default(Some("env")).is_err());
    }
}
