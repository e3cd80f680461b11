use super::*;

#[test]
fn a_username_alias_is_exported_as_a_stable_digest_never_in_clear() {
    assert_eq!(label("prod"), "prod");
    let l = label("user@example.com");
    assert!(l.starts_with("org-") && l.len() == 16, "{l}");
    assert!(!l.contains("user") && !l.contains('@'));
    assert_eq!(l, label("user@example.com"));
    assert_ne!(l, label("other@example.com"));
    // An alias spelled like that digest gets a label of its own.
    let twin = label(&l).into_owned();
    assert_eq!(twin, format!("alias:{l}"));
    assert_ne!(twin, l);
    assert_eq!(label("org-0123456789AB"), "org-0123456789AB");
    assert_eq!(label("org-0123456789a"), "org-0123456789a");
}

fn live(exp: i64) -> TokenState {
    TokenState {
        expires_at: Some(exp),
        active: true,
        needs_login: false,
    }
}

#[test]
fn readiness_lists_every_org_that_is_not_ready_and_why() {
    let m = Metrics::new("1.2.3");
    assert_eq!(m.not_ready(100), ["no org is watched yet"]);
    m.set_token("prod", live(200));
    m.set_token("dev", live(50));
    m.set_token("qa", TokenState::default());
    m.set_token(
        "uat",
        TokenState {
            needs_login: true,
            ..live(500)
        },
    );
    let nr = m.not_ready(100);
    assert_eq!(nr.len(), 3, "{nr:?}");
    assert!(
        nr[0].starts_with("dev: the access token expired 50s ago"),
        "{nr:?}"
    );
    assert!(nr[1].starts_with("qa: "), "{nr:?}");
    assert!(nr[2].starts_with("uat: needs a login"), "{nr:?}");
    m.set_token("dev", live(1000));
    m.remove("qa");
    m.set_token("uat", live(1000));
    assert!(m.not_ready(100).is_empty());
}

#[test]
fn the_exposition_has_the_contract_names_and_no_secret_labels() {
    let m = Metrics::new("1.2.3");
    m.set_token("prod", live(1_800_000_000));
    m.checked("prod", Check::Active);
    m.refreshed("prod", Refresh::Success, 1_799_999_000);
    m.refresh_took(Duration::from_millis(120));
    m.exec_failed("prod");
    m.checked("unknown-org", Check::Active); // not watched: ignored
    let text = String::from_utf8(m.encode(1_799_999_500)).unwrap();
    for line in [
        "sfx_access_token_expiry_timestamp_seconds{org=\"prod\"} 1800000000",
        "sfx_org_needs_login{org=\"prod\"} 0",
        "sfx_org_ready{org=\"prod\"} 1",
        "sfx_refresh_total{org=\"prod\",result=\"success\"} 1",
        "sfx_refresh_total{org=\"prod\",result=\"needs_login\"} 0",
        "sfx_check_total{org=\"prod\",result=\"active\"} 1",
        "sfx_check_total{org=\"prod\",result=\"error\"} 0",
        "sfx_last_refresh_timestamp_seconds{org=\"prod\"} 1799999000",
        "sfx_exec_failures_total{org=\"prod\"} 1",
        "sfx_refresh_duration_seconds_bucket{le=\"0.25\"} 1",
        "sfx_refresh_duration_seconds_count 1",
        "sfx_watched_orgs 1",
        "sfx_orgs_needing_login 0",
        "sfx_build_info{version=\"1.2.3\"} 1",
        "# TYPE sfx_refresh_total counter",
        "# TYPE sfx_refresh_duration_seconds histogram",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
    }
    assert!(!text.contains("unknown-org"));
    // An org not yet refreshed: no last-refresh sample, everything else still there.
    let fresh = Metrics::new("1");
    fresh.set_token("dev", TokenState::default());
    let text = String::from_utf8(fresh.encode(0)).unwrap();
    assert!(
        !text.contains("sfx_last_refresh_timestamp_seconds{"),
        "{text}"
    );
    assert!(text.contains("sfx_build_info{version=\"1\"} 1"), "{text}");
    assert!(
        text.contains("sfx_refresh_duration_seconds_count 0"),
        "{text}"
    );
}

#[test]
fn label_values_are_escaped() {
    let mut out = String::new();
    line(&mut out, "m", &[("org", "a\\b\"c\nd")], 7);
    assert_eq!(out, "m{org=\"a\\\\b\\\"c\\nd\"} 7\n");
}

fn fake() -> (Arc<crate::clock::FakeClock>, Metrics) {
    let c = Arc::new(crate::clock::FakeClock::at(
        chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
    ));
    (c.clone(), Metrics::with_clock("0", c))
}

#[test]
fn health_follows_the_heartbeat_promise_on_the_watch_clock() {
    let (clock, m) = fake();
    // Not yet run at all.
    assert!(m.health().is_err());
    m.heartbeat(Duration::from_secs(60));
    assert!(m.health().is_ok());
    // Kept to the millisecond: the promised minute plus the grace...
    clock.advance(Duration::from_secs(60) + HEALTH_GRACE);
    assert!(m.health().is_ok());
    // ...and broken one millisecond later, saying by how much.
    clock.advance(Duration::from_millis(1));
    assert_eq!(m.health(), Err(HEALTH_GRACE + Duration::from_millis(1)));
    clock.advance(Duration::from_secs(600));
    assert_eq!(
        m.health().unwrap_err().as_secs(),
        (HEALTH_GRACE + Duration::from_secs(600)).as_secs()
    );
    // A new heartbeat keeps the next promise.
    m.heartbeat(Duration::from_secs(1));
    assert!(m.health().is_ok());
}

#[test]
fn timestamps_and_the_render_cache_follow_the_watch_clock() {
    let (clock, m) = fake();
    m.set_token("prod", live(1_800_000_100));
    clock.advance(Duration::from_secs(3600));
    // The start time is the clock's, not the host's; readiness uses its now.
    let text = String::from_utf8(m.render().to_vec()).unwrap();
    assert!(
        text.lines()
            .any(|l| l == "sfx_watch_start_time_seconds 1800000000"),
        "{text}"
    );
    assert!(text.contains("sfx_org_ready{org=\"prod\"} 0"), "{text}");
    assert_eq!(m.now(), 1_800_003_600);
    // One rendering is reused for RENDER_REUSE of the clock's time, then redone.
    m.set_token("prod", live(1_800_009_000));
    assert!(Arc::ptr_eq(&m.render(), &m.render()));
    assert!(
        String::from_utf8(m.render().to_vec())
            .unwrap()
            .contains("sfx_org_ready{org=\"prod\"} 0")
    );
    clock.advance(RENDER_REUSE);
    let text = String::from_utf8(m.render().to_vec()).unwrap();
    assert!(text.contains("sfx_org_ready{org=\"prod\"} 1"), "{text}");
}
