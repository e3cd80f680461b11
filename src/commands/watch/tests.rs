//! The watch's loop in process, on a [`FakeClock`]: hours of schedule in
//! milliseconds. The loop is the binary's ([`run_with`]); only the requests are
//! a fake Salesforce that answers on the fake clock (a session of a fixed
//! lifetime, transient failures on demand), so every assertion is about when
//! the scheduler acts, to the second.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant as RealInstant;

use clap::Parser;

use super::*;
use crate::clock::{Clock, FakeClock};
use crate::store::metadata::{Flow, OrgRecord, StoreKind};

const T0: i64 = 1_800_000_000;

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(T0 + secs, 0).unwrap()
}

/// The metrics are one per process (`metrics::install`): the loops of these
/// tests feed it, so they take turns.
static SERIAL: Mutex<()> = Mutex::new(());

#[derive(Debug, Clone, PartialEq)]
struct Call {
    org: String,
    /// Seconds after T0 on the fake clock.
    at: i64,
    /// `None`: a check; else the refresh's reason.
    refresh: Option<Reason>,
    /// Whether the live access token had expired at that moment.
    expired: bool,
    ok: bool,
}

/// Salesforce on the fake clock: sessions of `lifetime` seconds.
struct FakeSf {
    clock: Arc<FakeClock>,
    lifetime: i64,
    /// When prod's live access token expires.
    exp: Mutex<DateTime<Utc>>,
    minted: Mutex<u32>,
    /// Transient failures the next refreshes meet.
    fail_next: Mutex<u32>,
    calls: Mutex<Vec<Call>>,
}

impl FakeSf {
    fn new(clock: &Arc<FakeClock>, lifetime: i64, exp: DateTime<Utc>) -> Arc<FakeSf> {
        Arc::new(FakeSf {
            clock: clock.clone(),
            lifetime,
            exp: Mutex::new(exp),
            minted: Mutex::new(0),
            fail_next: Mutex::new(0),
            calls: Mutex::new(Vec::new()),
        })
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn refreshes(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.refresh.is_some())
            .collect()
    }

    fn work(self: &Arc<FakeSf>) -> Work {
        let sf = self.clone();
        Arc::new(move |_ctx, task, _p| {
            let now = sf.clock.now();
            let prod = task.org.name() == "prod";
            // Other orgs' tokens live for the session from their issue time.
            let exp = if prod {
                *sf.exp.lock().unwrap()
            } else {
                let iat = task.org.record.issued_at.unwrap_or(T0);
                DateTime::from_timestamp(iat + sf.lifetime, 0).unwrap()
            };
            let mut call = Call {
                org: task.org.name().to_string(),
                at: now.timestamp() - T0,
                refresh: None,
                expired: exp <= now,
                ok: true,
            };
            match task.job {
                Job::Check => {
                    sf.calls.lock().unwrap().push(call);
                    let e = Expiry {
                        active: exp > now,
                        exp: Some(exp),
                        iat: Some(exp - chrono::Duration::seconds(sf.lifetime)),
                        source: Source::Introspection,
                        checked_at: Some(now),
                        note: None,
                    };
                    Ok((
                        Outcome::Checked {
                            org: task.org,
                            expiry: e,
                            changed: false,
                        },
                        None,
                    ))
                }
                Job::Refresh(reason) => {
                    call.refresh = Some(reason);
                    let mut fail = sf.fail_next.lock().unwrap();
                    if *fail > 0 {
                        *fail -= 1;
                        call.ok = false;
                        sf.calls.lock().unwrap().push(call);
                        return Err(Error::Other(
                            "Salesforce answered 503 Service Unavailable".into(),
                        ));
                    }
                    drop(fail);
                    sf.calls.lock().unwrap().push(call);
                    let mut n = sf.minted.lock().unwrap();
                    *n += 1;
                    if prod {
                        *sf.exp.lock().unwrap() = now + chrono::Duration::seconds(sf.lifetime);
                    }
                    let mut org = task.org;
                    org.record.issued_at = Some(now.timestamp());
                    org.record.refresh_token_used_at = Some(now.timestamp());
                    org.record.access_token_masked = Some(format!("00Dxx!…{n}"));
                    org.record.expiry = None;
                    Ok((
                        Outcome::Refreshed {
                            expiry: Some(expiry::after_mint(&org.record, now)),
                            org,
                            reason,
                            by_other: false,
                            rotated_env: false,
                        },
                        None,
                    ))
                }
            }
        })
    }
}

/// An org with a live access token issued `age` seconds before T0, whose
/// refresh token was last used then.
fn org(session: u64, age: i64) -> Org {
    named("prod", session, age)
}

fn named(alias: &str, session: u64, age: i64) -> Org {
    Org {
        record: OrgRecord {
            alias: alias.into(),
            username: Some("user@example.com".into()),
            org_id: None,
            user_id: None,
            instance_url: "https://a.example.com".into(),
            login_url: None,
            client_id: Some("client".into()),
            flow: Flow::AuthUrl,
            store: StoreKind::File,
            issued_at: Some(T0 - age),
            session_timeout_secs: session,
            expiry: None,
            access_token_masked: Some("00Dxx!…0".into()),
            has_refresh_token: true,
            has_client_secret: false,
            refresh_token_used_at: Some(T0 - age),
            rotates_refresh_token: false,
            key_file: None,
            sf_link: None,
            api_version: None,
        },
        env: None,
    }
}

struct World {
    clock: Arc<FakeClock>,
    ctx: Arc<Context>,
    args: WatchArgs,
    _home: tempfile::TempDir,
}

fn world(flags: &[&str]) -> World {
    let clock = Arc::new(FakeClock::at(t(0)));
    let home = tempfile::tempdir().unwrap();
    let mut argv = vec!["sfx", "-q", "watch"];
    argv.extend_from_slice(flags);
    let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
    let crate::cli::Command::Watch(args) = cli.command else {
        unreachable!()
    };
    // This test's own local store, whatever the environment names.
    let ctx = Context::new(&cli.global)
        .unwrap()
        .with_clock(clock.clone())
        .with_local_home(home.path().to_path_buf());
    World {
        clock,
        ctx: Arc::new(ctx),
        args,
        _home: home,
    }
}

impl World {
    /// Run the loop until `until` of fake time has passed; what it returned.
    fn run_for(&self, org: Org, sf: &Arc<FakeSf>, until: Duration) -> Result<Exit, Error> {
        let clock = self.clock.clone();
        let seams = Seams {
            work: sf.work(),
            signals: false,
            on_pass: Some(Box::new(move |_| clock.elapsed() >= until)),
        };
        run_with(&self.args, self.ctx.clone(), vec![org], seams)
    }
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn two_hour_sessions_are_refreshed_ten_minutes_ahead_of_expiry_for_eight_hours() {
    let _g = lock();
    let w = world(&[]);
    // Issued an hour ago: expires at T0 + 1 h.
    let sf = FakeSf::new(&w.clock, 7200, t(3600));
    let real = RealInstant::now();
    let code = w.run_for(org(7200, 3600), &sf, Duration::from_secs(8 * 3600));
    assert_eq!(code.unwrap(), Exit::Ok);
    assert!(
        real.elapsed() < Duration::from_secs(30),
        "{:?}",
        real.elapsed()
    );

    // --refresh-before 10m: at expiry - 10 min, to the second, every 1 h 50 min.
    let at: Vec<i64> = sf.refreshes().iter().map(|c| c.at).collect();
    assert_eq!(at, [3000, 9600, 16200, 22800], "{:?}", sf.calls());
    assert!(
        sf.refreshes()
            .iter()
            .all(|c| c.refresh == Some(Reason::Expiring) && c.ok)
    );
    // The token never lapsed, and checks kept to about six an hour.
    let calls = sf.calls();
    assert!(calls.iter().all(|c| !c.expired), "{calls:?}");
    let checks = calls.iter().filter(|c| c.refresh.is_none()).count();
    assert!((8..=8 * 8).contains(&checks), "{checks} checks: {calls:?}");
    // Never more than 15 min without a look, never two checks within 30 s.
    for p in calls.windows(2) {
        let gap = p[1].at - p[0].at;
        assert!(gap <= 900, "{gap} s between {:?} and {:?}", p[0], p[1]);
        if p[0].refresh.is_none() && p[1].refresh.is_none() {
            assert!(gap >= 30, "{gap} s between two checks: {calls:?}");
        }
    }
    // No single wait past the loop's longest sleep (a minute).
    assert!(w.clock.slept().iter().all(|d| *d <= MAX_SLEEP));
    assert!(w.clock.elapsed() >= Duration::from_secs(8 * 3600));
}

#[test]
fn an_idle_refresh_token_is_kept_alive_every_keepalive_period() {
    let _g = lock();
    let w = world(&["--keepalive", "1h"]);
    // Twelve-hour sessions: expiry never comes near; only the keep-alive acts.
    let sf = FakeSf::new(&w.clock, 43_200, t(43_200));
    let code = w.run_for(org(43_200, 0), &sf, Duration::from_secs(5 * 3600));
    assert_eq!(code.unwrap(), Exit::Ok);
    let refreshes = sf.refreshes();
    let at: Vec<i64> = refreshes.iter().map(|c| c.at).collect();
    assert_eq!(at, [3600, 7200, 10_800, 14_400, 18_000], "{:?}", sf.calls());
    assert!(
        refreshes
            .iter()
            .all(|c| c.refresh == Some(Reason::Keepalive))
    );
}

#[test]
fn transient_refresh_failures_back_off_and_still_fit_before_expiry() {
    let _g = lock();
    let w = world(&[]);
    let sf = FakeSf::new(&w.clock, 7200, t(3600));
    *sf.fail_next.lock().unwrap() = 5;
    let code = w.run_for(org(7200, 3600), &sf, Duration::from_secs(3 * 3600));
    assert_eq!(code.unwrap(), Exit::Ok);
    let r = sf.refreshes();
    assert!(r.len() >= 7, "{r:?}");
    let (failed, rest) = r.split_at(5);
    assert!(failed.iter().all(|c| !c.ok) && rest[0].ok, "{r:?}");
    // The first try at the refresh point, then 30 s, 1 min, 2 min, 4 min
    // (±25 % jitter), never more than half the time the token has left.
    assert_eq!(failed[0].at, 3000);
    let tries: Vec<i64> = r[..6].iter().map(|c| c.at).collect();
    for (i, pair) in tries.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        let nominal = 30 << i;
        let half_left = (3600 - pair[0]) / 2;
        let low = ((nominal as f64 * 0.75) as i64).min(half_left) - 1;
        let high = ((nominal as f64 * 1.25) as i64).min(half_left) + 1;
        assert!(
            (low..=high).contains(&gap),
            "try {i}: gap {gap}s, wanted {low}..={high}: {tries:?}"
        );
    }
    // Every try, and the success, before the token expired.
    assert!(r[..6].iter().all(|c| !c.expired && c.at < 3600), "{r:?}");
    // Then the usual pace: the next refresh 1 h 50 min after the success.
    assert_eq!(rest[1].at, rest[0].at + 6600, "{r:?}");
}

#[test]
fn a_wedged_scheduler_turns_healthz_503_on_the_watch_clock() {
    let _g = lock();
    let World {
        clock,
        ctx,
        args,
        _home,
    } = world(&[]);
    let metrics = Arc::new(crate::metrics::Metrics::with_clock("0", clock.clone()));
    crate::metrics::install(metrics.clone());
    let health = |m: &crate::metrics::Metrics| crate::metrics::server::route(m, "GET", "/healthz");
    let sf = FakeSf::new(&clock, 7200, t(3600));
    let (wedged_tx, wedged_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let stop = Arc::new(AtomicBool::new(false));
    let healthy_passes = Arc::new(Mutex::new(0u32));
    let seams = {
        let (clock, stop, m, passes) = (
            clock.clone(),
            stop.clone(),
            metrics.clone(),
            healthy_passes.clone(),
        );
        let mut wedged = false;
        Seams {
            work: sf.work(),
            signals: false,
            on_pass: Some(Box::new(move |_| {
                if clock.elapsed() > Duration::ZERO {
                    // Between passes the scheduler kept its promise: healthy.
                    let (status, _, body) = health(&m);
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                    *passes.lock().unwrap() += 1;
                }
                if !wedged && clock.elapsed() >= Duration::from_secs(3 * 3600) {
                    // Stuck here (as in a store call that never returns).
                    wedged = true;
                    wedged_tx.send(()).unwrap();
                    let _ = release_rx.recv();
                }
                stop.load(Ordering::SeqCst)
            })),
        }
    };
    let o = org(7200, 3600);
    let watch = std::thread::spawn(move || run_with(&args, ctx, vec![o], seams));
    wedged_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the loop reached three hours of fake time");
    assert!(*healthy_passes.lock().unwrap() > 10);
    // Wedged at once: its last promise (at most a minute, plus the grace) holds.
    assert_eq!(health(&metrics).0, 200);
    clock.advance(MAX_SLEEP + crate::metrics::HEALTH_GRACE + Duration::from_secs(1));
    let (status, _, body) = health(&metrics);
    let body = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.starts_with("the watch's scheduler has not run for ")
            && body.ends_with("s past its plan\n"),
        "{body}"
    );
    clock.advance(Duration::from_secs(600));
    assert_eq!(health(&metrics).0, 503);
    // Unstuck: the next pass promises again and /healthz is 200.
    release_tx.send(()).unwrap();
    let real = RealInstant::now();
    while health(&metrics).0 != 200 {
        assert!(real.elapsed() < Duration::from_secs(30), "still 503");
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::SeqCst);
    let code = watch.join().unwrap();
    assert_eq!(code.unwrap(), Exit::Ok);
    // The refreshes on the way were on time.
    let at: Vec<i64> = sf.refreshes().iter().take(2).map(|c| c.at).collect();
    assert_eq!(at, [3000, 9600]);
}

#[test]
fn an_eight_second_session_is_refreshed_in_time_for_an_hour_with_the_defaults() {
    let _g = lock();
    // The defaults but --refresh-before: its window is capped at half the
    // session (4 s), and the refresh point is kept to the second although
    // checks are never closer than 30 s apart.
    let w = world(&["--refresh-before", "5s"]);
    let sf = FakeSf::new(&w.clock, 8, t(8));
    let code = w.run_for(org(8, 0), &sf, Duration::from_secs(3600));
    assert_eq!(code.unwrap(), Exit::Ok);
    let calls = sf.calls();
    assert!(calls.iter().all(|c| !c.expired && c.ok), "{calls:?}");
    let at: Vec<i64> = sf.refreshes().iter().map(|c| c.at).collect();
    // Every 4 s, from the first refresh point on: 900 in the hour.
    assert_eq!(at.first(), Some(&4), "{calls:?}");
    assert!(at.windows(2).all(|p| p[1] - p[0] == 4), "{at:?}");
    assert_eq!(at.len(), 900);
    // No busy loop of checks in between: at most one per refresh.
    assert!(calls.len() <= 2 * at.len(), "{} calls", calls.len());
}

#[test]
fn a_failed_refresh_of_a_short_session_is_retried_within_half_the_time_left() {
    let _g = lock();
    // 20 s sessions, refreshed 10 s ahead: the first refresh fails; a plain 30 s
    // back-off would let the token expire first.
    let w = world(&["--refresh-before", "10s"]);
    let sf = FakeSf::new(&w.clock, 20, t(20));
    *sf.fail_next.lock().unwrap() = 1;
    let code = w.run_for(org(20, 0), &sf, Duration::from_secs(60));
    assert_eq!(code.unwrap(), Exit::Ok);
    let r = sf.refreshes();
    assert!(r.len() >= 3, "{r:?}");
    assert_eq!((r[0].at, r[0].ok), (10, false), "{r:?}");
    // Half the 10 s left, then the usual pace from the new token.
    assert_eq!((r[1].at, r[1].ok), (15, true), "{r:?}");
    assert_eq!(r[2].at, 25, "{r:?}");
    assert!(sf.calls().iter().all(|c| !c.expired), "{:?}", sf.calls());
}

#[test]
fn keepalive_points_are_kept_to_the_second_although_checks_are_30_s_apart() {
    let _g = lock();
    // The defaults but a 3 s --keep-alive: not stretched to the 30 s floor.
    let w = world(&["--keepalive", "3s"]);
    let sf = FakeSf::new(&w.clock, 7200, t(7200));
    let code = w.run_for(org(7200, 0), &sf, Duration::from_secs(60));
    assert_eq!(code.unwrap(), Exit::Ok);
    let at: Vec<i64> = sf.refreshes().iter().map(|c| c.at).collect();
    assert_eq!(
        at,
        (1..=20).map(|i| 3 * i).collect::<Vec<_>>(),
        "{:?}",
        sf.calls()
    );
    assert!(
        sf.refreshes()
            .iter()
            .all(|c| c.refresh == Some(Reason::Keepalive))
    );
}

#[test]
fn an_all_watch_picks_up_an_org_logged_in_while_it_runs_within_a_minute() {
    let _g = lock();
    let w = world(&["--all"]);
    let sf = FakeSf::new(&w.clock, 7200, t(3600));
    let login_at = Arc::new(Mutex::new(None::<i64>));
    let seams = {
        let (clock, ctx, login_at) = (w.clock.clone(), w.ctx.clone(), login_at.clone());
        Seams {
            work: sf.work(),
            signals: false,
            on_pass: Some(Box::new(move |_| {
                let now = clock.now().timestamp() - T0;
                let mut at = login_at.lock().unwrap();
                if at.is_none() && now >= 1800 {
                    // Another process logs in to dev (its token issued now).
                    let dev = named("dev", 7200, -now).record;
                    ctx.stored_orgs().save_org(&dev, &[], false).unwrap();
                    *at = Some(now);
                }
                clock.elapsed() >= Duration::from_secs(3 * 3600)
            })),
        }
    };
    let code = run_with(&w.args, w.ctx.clone(), vec![org(7200, 3600)], seams);
    assert_eq!(code.unwrap(), Exit::Ok);
    let login = login_at.lock().unwrap().expect("dev logged in");
    let first = sf
        .calls()
        .into_iter()
        .find(|c| c.org == "dev")
        .expect("dev was watched");
    // Seen at the loop's next wake-up: never more than a minute later.
    assert!(
        first.at >= login && first.at <= login + 60,
        "logged in at {login}, first looked at at {}",
        first.at
    );
    // And then kept fresh: refreshed ten minutes before its expiry.
    let dev_refresh = sf
        .refreshes()
        .into_iter()
        .find(|c| c.org == "dev")
        .expect("dev refreshed");
    assert_eq!(dev_refresh.at, login + 7200 - 600);
}

#[test]
fn a_long_lived_token_costs_one_check_and_the_next_comes_after_15_minutes() {
    let _g = lock();
    // Even with a 1 s floor between checks (the binary tests' setting).
    let w = world(&["--min-check", "1s"]);
    let sf = FakeSf::new(&w.clock, 7200, t(7200));
    let code = w.run_for(org(7200, 0), &sf, Duration::from_secs(40 * 60));
    assert_eq!(code.unwrap(), Exit::Ok);
    // Half the run-up to the refresh point (1 h 50 min), capped at 15 min.
    let at: Vec<i64> = sf.calls().iter().map(|c| c.at).collect();
    assert_eq!(at, [0, 900, 1800], "{:?}", sf.calls());
    assert!(sf.refreshes().is_empty());
}
