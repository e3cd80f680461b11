//! The shared store (issue #13) on a real `redis-server`: the store's own
//! guarantees (compare-and-set, lease, failures named), then every command
//! through the real binary with machines simulated as processes with separate
//! `SFX_HOME`s.

use std::time::{Duration, Instant};

use crate::common::redis_server::RedisServer;
use sfx::store::metadata::{Flow, OrgRecord, StoreKind};
use sfx::store::shared::{Cas, Expect, SharedStore, url};

fn store(r: &RedisServer, ns: &str) -> SharedStore {
    let url::StoreChoice::Shared(u) = url::parse(Some(&r.url()), "--store").unwrap() else {
        panic!("not shared")
    };
    SharedStore::new(u, ns.into(), Duration::from_secs(2)).unwrap()
}

fn record(alias: &str) -> OrgRecord {
    OrgRecord {
        alias: alias.into(),
        username: Some(format!("{alias}@example.com")),
        org_id: None,
        user_id: None,
        instance_url: "https://example.my.salesforce.com".into(),
        login_url: None,
        client_id: Some("3MVG9client".into()),
        flow: Flow::AuthUrl,
        store: StoreKind::File,
        issued_at: Some(1_700_000_000),
        session_timeout_secs: 7200,
        expiry: None,
        access_token_masked: None,
        has_refresh_token: false,
        has_client_secret: false,
        refresh_token_used_at: None,
        rotates_refresh_token: false,
        key_file: None,
    }
}

#[test]
fn compare_and_set_writes_only_at_the_version_read_and_lists_in_two_round_trips() {
    let r = RedisServer::start();
    let s = store(&r, "t1");
    assert_eq!(s.read_org("a").unwrap(), None);
    let Cas::Written(v1) = s.write(&record("a"), &[], Expect::Version(0)).unwrap() else {
        panic!("first write conflicted")
    };
    // A second creator that also read "absent" loses.
    assert_eq!(
        s.write(&record("a"), &[], Expect::Version(0)).unwrap(),
        Cas::Conflict(v1)
    );
    let mut newer = record("a");
    newer.issued_at = Some(1_700_000_100);
    let Cas::Written(v2) = s.write(&newer, &[], Expect::Version(v1)).unwrap() else {
        panic!("write at the current version conflicted")
    };
    assert!(v2 > v1);
    // A stale writer (read v1) cannot overwrite the newer record.
    assert_eq!(
        s.write(&record("a"), &[], Expect::Version(v1)).unwrap(),
        Cas::Conflict(v2)
    );
    let (rec, v) = s.read_org("a").unwrap().unwrap();
    assert_eq!((rec.issued_at, v), (Some(1_700_000_100), v2));
    s.write(&record("b"), &[], Expect::Any).unwrap();
    s.set_default(Some("b")).unwrap();
    let (default, orgs) = s.list().unwrap();
    assert_eq!(default.as_deref(), Some("b"));
    let names: Vec<&str> = orgs.iter().map(|(o, _)| o.alias.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert!(s.delete("b").unwrap());
    assert!(!s.delete("b").unwrap());
    assert_eq!(
        s.default_alias().unwrap(),
        None,
        "deleting the default clears the mark"
    );
    // Every key is under the namespace.
    for (k, _) in r.dump() {
        assert!(k.starts_with("t1:"), "{k}");
    }
}

#[test]
fn the_lease_is_exclusive_outlives_its_ttl_while_held_and_frees_on_drop() {
    let r = RedisServer::start();
    let s = store(&r, "t2");
    let held = s.lease("a", Duration::ZERO).unwrap();
    let e = s.lease("a", Duration::from_millis(200)).unwrap_err();
    assert_eq!(e.exit(), sfx::exit::Exit::StoreUnavailable);
    assert!(e.to_string().contains("refresh lease of org a"), "{e}");
    // Another org is not blocked.
    drop(s.lease("b", Duration::ZERO).unwrap());
    // Held past its TTL: the renewal keeps it.
    std::thread::sleep(sfx::store::shared::lease::TTL + Duration::from_secs(1));
    assert!(!held.lost());
    assert!(
        s.lease("a", Duration::ZERO).is_err(),
        "renewed lease was taken"
    );
    // Only the owner's release frees it; then it is free at once.
    drop(held);
    let started = Instant::now();
    drop(s.lease("a", Duration::ZERO).unwrap());
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn unreachable_and_wrong_password_fail_closed_naming_the_store_not_the_password() {
    let r = RedisServer::start();
    let mut bad = r.url_with_password("wrong-Pw-77");
    let url::StoreChoice::Shared(u) = url::parse(Some(&bad), "SFX_STORE").unwrap() else {
        panic!()
    };
    let s = SharedStore::new(u, "sfx".into(), Duration::from_secs(2)).unwrap();
    let e = s.list().unwrap_err();
    assert_eq!(e.exit(), sfx::exit::Exit::StoreUnavailable);
    let msg = e.to_string();
    assert!(msg.contains(&format!("127.0.0.1:{}", r.port)), "{msg}");
    assert!(msg.contains("refused the user name or password"), "{msg}");
    assert!(!msg.contains("wrong-Pw-77"), "{msg}");
    bad = format!("redis://:pw@127.0.0.1:{}", {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    });
    let url::StoreChoice::Shared(u) = url::parse(Some(&bad), "SFX_STORE").unwrap() else {
        panic!()
    };
    let e = SharedStore::new(u, "sfx".into(), Duration::from_secs(2))
        .unwrap()
        .list()
        .unwrap_err();
    assert_eq!(e.exit(), sfx::exit::Exit::StoreUnavailable);
    assert!(e.to_string().contains("refused the connection"), "{e}");
}
