use super::*;
use crate::store::atomic;

/// The refresh lock's wait is 3 x --timeout + 30 s, on the store's clock:
/// a stuck holder makes the waiter give up after exactly that, exit 6.
#[test]
fn a_stuck_refresh_lock_is_waited_for_three_timeouts_and_30_s_on_the_stores_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(crate::clock::FakeClock::at(chrono::Utc::now()));
    let store = LocalStore::new(dir.path().to_path_buf())
        .with_timeout(std::time::Duration::from_secs(1))
        .with_clock(clock.clone());
    let _held = store.org_lock("prod").unwrap();
    let Err(err) = store.org_lock("prod") else {
        panic!("took a held lock")
    };
    assert_eq!(err.exit(), crate::exit::Exit::StoreUnavailable);
    assert!(
        err.to_string()
            .contains("has held the refresh lock of org prod for more than 33s"),
        "{err}"
    );
    assert_eq!(clock.elapsed(), std::time::Duration::from_secs(33));
}

fn record(alias: &str) -> OrgRecord {
    serde_json::from_value(serde_json::json!({
        "alias": alias,
        "instance_url": "https://example.my.salesforce.com",
        "flow": "auth_url",
        "store": "file",
    }))
    .unwrap()
}

/// A long-running reader (a watch) keeps both files parsed; every write by
/// another store instance — another process's writes are the same renames —
/// is seen at the next read, however fast and same-sized the writes are.
#[test]
fn a_reader_sees_every_write_of_another_instance() {
    let dir = tempfile::tempdir().unwrap();
    let reader = LocalStore::new(dir.path().to_path_buf());
    let writer = LocalStore::new(dir.path().to_path_buf());
    assert!(OrgStore::read(&reader, "a").unwrap().is_none());
    let t0 = Secret::new("token-000");
    writer
        .save_org(&record("a"), &[(SecretKind::AccessToken, Some(&t0))], true)
        .unwrap();
    let a = OrgStore::read(&reader, "a").unwrap().expect("a is seen");
    assert_eq!(reader.list().unwrap().default.as_deref(), Some("a"));
    for i in 1..30 {
        let token = Secret::new(format!("token-{i:03}"));
        let mut rec = record("a");
        rec.issued_at = Some(1_700_000_000 + i);
        let current = OrgStore::read(&writer, "a").unwrap().unwrap();
        let new = NewTokens {
            record: &rec,
            access_token: &token,
            refresh_token: None,
        };
        assert!(matches!(
            writer.write_tokens(current.version, &new).unwrap(),
            Cas::Written(_)
        ));
        let seen = OrgStore::read(&reader, "a").unwrap().unwrap();
        assert_eq!(seen.org.record.issued_at, Some(1_700_000_000 + i));
        assert_ne!(seen.version, a.version);
        let secret = reader
            .secret(&seen.org, SecretKind::AccessToken)
            .unwrap()
            .unwrap();
        assert_eq!(secret.expose(), token.expose());
    }
    writer
        .save_org(&record("b"), &[(SecretKind::AccessToken, Some(&t0))], false)
        .unwrap();
    let names: Vec<_> = reader
        .list()
        .unwrap()
        .orgs
        .iter()
        .map(|o| o.name().to_string())
        .collect();
    assert_eq!(names, ["a", "b"]);
    writer.delete_org("a").unwrap();
    assert!(OrgStore::read(&reader, "a").unwrap().is_none());
    let b = OrgStore::read(&reader, "b").unwrap().unwrap().org;
    assert!(
        reader
            .secret(&b, SecretKind::AccessToken)
            .unwrap()
            .is_some()
    );
}

/// A damaged file written by someone else is reported, and a repaired one
/// read again: the cache never hides either.
#[test]
fn a_damaged_file_is_an_error_until_it_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().to_path_buf());
    store.save_org(&record("a"), &[], false).unwrap();
    assert!(OrgStore::read(&store, "a").unwrap().is_some());
    atomic::write(&store.metadata_path(), b"{not json").unwrap();
    let e = store.read().unwrap_err().to_string();
    assert!(e.contains("damaged"), "{e}");
    atomic::write(&store.metadata_path(), b"{}").unwrap();
    assert!(OrgStore::read(&store, "a").unwrap().is_none());
}
