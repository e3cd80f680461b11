//! The shared store under attack (#19): a store that trickles, floods or never
//! answers, a lease holder paused mid-refresh, a password in any form, damaged
//! values.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::shared::Fleet;

/// A TCP server that accepts every connection and then either sends one byte a
/// second, forever (a reply that never ends), or nothing at all.
struct BadServer {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl BadServer {
    fn start(trickle: bool) -> BadServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(mut c) = c else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = c.set_read_timeout(Some(Duration::from_millis(100)));
                    let mut buf = [0u8; 4096];
                    // A simple-string reply whose end never comes.
                    let mut first = true;
                    while !s.load(Ordering::Relaxed) {
                        let _ = c.read(&mut buf);
                        if trickle {
                            let b: &[u8] = if first { b"+" } else { b"a" };
                            first = false;
                            if c.write_all(b).is_err() {
                                return;
                            }
                            std::thread::sleep(Duration::from_millis(900));
                        }
                    }
                });
            }
        });
        BadServer { port, stop }
    }
}

impl Drop for BadServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

#[test]
fn a_store_that_trickles_or_never_answers_is_exit_6_within_the_timeout_for_every_command() {
    let t = T::new();
    for trickle in [true, false] {
        let server = BadServer::start(trickle);
        for password in [None, Some("s3cret-pw")] {
            let url = match password {
                Some(p) => format!("redis://:{p}@127.0.0.1:{}", server.port),
                None => format!("redis://127.0.0.1:{}", server.port),
            };
            for args in [&["orgs"][..], &["token"], &["doctor"]] {
                let started = Instant::now();
                let out = t
                    .std_sfx()
                    .env("SFX_STORE", &url)
                    .env("SFX_STORE_KEY", crate::shared::key_b64(1))
                    .args(args)
                    .args(["--timeout", "2s"])
                    .output()
                    .unwrap();
                let took = started.elapsed();
                let err = text(&out.stderr) + &text(&out.stdout);
                let what = format!("{args:?} trickle={trickle} password={password:?}");
                assert_eq!(out.status.code(), Some(6), "{what}: {err}");
                assert!(
                    took < Duration::from_secs(3),
                    "{what} took {took:?}, more than --timeout plus a second"
                );
                assert!(
                    err.contains(&format!("127.0.0.1:{}", server.port)),
                    "{what}: {err}"
                );
                if let Some(p) = password {
                    assert!(!err.contains(p), "{what}: the password leaked: {err}");
                }
            }
        }
    }
}

#[test]
fn a_store_that_answers_with_gigabytes_is_cut_off_not_read_into_memory() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf);
                let _ = c.write_all(b"$2000000000\r\n");
                let chunk = vec![b'a'; 1 << 16];
                while c.write_all(&chunk).is_ok() {}
            });
        }
    });
    let t = T::new();
    let started = Instant::now();
    let out = t
        .std_sfx()
        .env("SFX_STORE", format!("redis://127.0.0.1:{port}"))
        .args(["orgs", "--timeout", "60s"])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(
        err.contains("more than 64 MiB in answer to one call"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(60), "{err}");
}

#[test]
fn concurrent_callers_do_not_queue_behind_one_store_connection() {
    // Watch workers share one store handle. A server that never answers: each
    // call ends by --timeout, and eight at once end together, not one after
    // the other (one connection behind a lock would take 8 × --timeout).
    let server = BadServer::start(false);
    let url = match sfx::store::shared::url::parse(
        Some(&format!("redis://127.0.0.1:{}", server.port)),
        "--store",
    )
    .unwrap()
    {
        sfx::store::shared::StoreChoice::Shared(u) => u,
        sfx::store::shared::StoreChoice::Local => unreachable!(),
    };
    let store =
        sfx::store::shared::SharedStore::new(url, "sfx".into(), Duration::from_secs(1)).unwrap();
    let started = Instant::now();
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let s = store.clone();
            std::thread::spawn(move || s.read_org(&format!("o{i}")).is_err())
        })
        .collect();
    for w in workers {
        assert!(w.join().unwrap(), "a silent store must fail the call");
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "{took:?}");
}

fn signal(child: &std::process::Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} failed");
}

#[test]
fn a_lease_holder_paused_with_its_refresh_in_flight_is_never_replayed_and_the_login_survives() {
    // Rotating app; host A's refresh is slow at Salesforce (12 s) and A is
    // frozen (SIGSTOP, as a VM pause would) past the 10 s lease it took; host B
    // wants a token meanwhile.
    let f = Fleet::new();
    f.t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    f.login("prod");
    f.expire("prod");
    f.t.fake.clear_requests();
    f.t.fake.inject(crate::shared::TOKEN, Fault::delay(12_000));
    let a = f
        .std(1)
        .args(["refresh", "-q", "--timeout", "30s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while f.t.fake.count(crate::shared::TOKEN) == 0 {
        assert!(Instant::now() < deadline, "A never sent its refresh");
        std::thread::sleep(Duration::from_millis(5));
    }
    signal(&a, "-STOP");
    let b = f
        .std(2)
        .args(["token", "--timeout", "30s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Until Salesforce has processed A's request (12 s) and well past A's 10 s
    // lease: B must not have sent the same refresh token (it would show as a
    // second token request).
    let until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < until && f.t.fake.count(crate::shared::TOKEN) < 2 {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        f.t.fake.count(crate::shared::TOKEN),
        1,
        "another host sent a refresh while A's was in flight"
    );
    signal(&a, "-CONT");
    let a = a.wait_with_output().unwrap();
    let b = b.wait_with_output().unwrap();
    assert_eq!(a.status.code(), Some(0), "A: {}", text(&a.stderr));
    assert_eq!(b.status.code(), Some(0), "B: {}", text(&b.stderr));
    crate::shared::no_replays(&f.t);
    assert_eq!(f.t.fake.replays(), 0);
    assert_eq!(f.t.fake.count_grant("refresh_token"), 1);
    let token = text(&b.stdout).trim().to_string();
    assert!(f.t.fake.is_active(&token), "B's token is A's fresh one");
    // The login survives: the rotated refresh token A stored refreshes again.
    f.expire("prod");
    let again = f.token(3);
    assert!(f.t.fake.is_active(&again));
    assert_eq!(f.t.fake.replays(), 0);
}

#[test]
fn a_wrong_store_password_never_shows_in_any_form_not_even_with_vv() {
    let r = crate::common::redis_server::RedisServer::start();
    let t = T::new();
    // Short ones too, and one that only exists percent-encoded in the URL.
    for (in_url, forms) in [
        ("Zq", vec!["Zq"]),
        ("Q", vec![":Q@"]),
        (
            "p%40ss%20w0rd%2F%C3%A9",
            vec!["p@ss", "p%40ss", "w0rd", "p%40ss+w0rd"],
        ),
    ] {
        for args in [&["orgs"][..], &["token"], &["doctor"]] {
            let out = t
                .std_sfx()
                .env("SFX_STORE", r.url_with_password(in_url))
                .env("SFX_STORE_KEY", crate::shared::key_b64(1))
                .args(args)
                .arg("-vv")
                .output()
                .unwrap();
            let all = text(&out.stderr) + &text(&out.stdout);
            assert_eq!(out.status.code(), Some(6), "{args:?}: {all}");
            assert!(
                all.contains("refused the user name or password"),
                "{args:?}: {all}"
            );
            for f in &forms {
                assert!(!all.contains(f), "{args:?}: {f:?} shown: {all}");
            }
        }
    }
}

/// Write raw bytes into the store, as a broken or hostile writer would.
fn raw(r: &crate::common::redis_server::RedisServer, cmd: &[&[u8]]) {
    let client = redis::Client::open(r.url()).unwrap();
    let mut c = client.get_connection().unwrap();
    let mut command = redis::cmd(std::str::from_utf8(cmd[0]).unwrap());
    for a in &cmd[1..] {
        command.arg(*a);
    }
    command.query::<redis::Value>(&mut c).unwrap();
}

#[test]
fn damaged_values_inside_redis_give_a_sentence_and_an_exit_code_never_a_panic_or_a_hang() {
    let f = Fleet::new();
    f.login("prod");
    let good_meta =
        f.r.cli(&["HGET", "sfx:org:{prod}", "meta"])
            .trim()
            .to_string();
    let good_rt =
        f.r.cli(&["HGET", "sfx:secret:{prod}", "refresh-token"])
            .trim()
            .to_string();
    let good_at =
        f.r.cli(&["HGET", "sfx:org:{prod}", "access-token"])
            .trim()
            .to_string();
    let good_v = f.r.cli(&["HGET", "sfx:org:{prod}", "v"]).trim().to_string();
    let restore = || {
        for k in [
            "sfx:org:{prod}",
            "sfx:secret:{prod}",
            "sfx:orgs",
            "sfx:default",
            "sfx:journal:{prod}",
            "sfx:lease:{prod}",
            "sfx:inflight:{prod}",
            "sfx:keycheck",
        ] {
            if k != "sfx:keycheck" {
                f.r.cli(&["DEL", k]);
            }
        }
        f.r.cli(&[
            "HSET",
            "sfx:org:{prod}",
            "meta",
            &good_meta,
            "v",
            &good_v,
            "access-token",
            &good_at,
        ]);
        f.r.cli(&[
            "HSET",
            "sfx:secret:{prod}",
            "v",
            &good_v,
            "refresh-token",
            &good_rt,
        ]);
        f.r.cli(&["SADD", "sfx:orgs", "prod"]);
    };
    let huge = vec![b'a'; 8 << 20];
    let huge_json = format!(
        "{{\"alias\":\"prod\",\"instance_url\":\"https://x\",\"username\":\"{}\"}}",
        "u".repeat(8 << 20)
    );
    let mut cases: Vec<(String, Vec<Vec<u8>>)> = vec![
        (
            "meta not UTF-8".into(),
            vec![
                b"HSET".to_vec(),
                b"sfx:org:{prod}".to_vec(),
                b"meta".to_vec(),
                b"\xff\xfe{".to_vec(),
            ],
        ),
        (
            "meta empty".into(),
            vec![
                b"HSET".to_vec(),
                b"sfx:org:{prod}".to_vec(),
                b"meta".to_vec(),
                b"".to_vec(),
            ],
        ),
        (
            "meta a number".into(),
            vec![
                b"HSET".to_vec(),
                b"sfx:org:{prod}".to_vec(),
                b"meta".to_vec(),
                b"7".to_vec(),
            ],
        ),
        (
            "meta missing fields".into(),
            vec![
                b"HSET".to_vec(),
                b"sfx:org:{prod}".to_vec(),
                b"meta".to_vec(),
                b"{\"alias\":\"prod\"}".to_vec(),
            ],
        ),
        (
            "meta of another alias".into(),
            vec![
                b"HSET".to_vec(),
                b"sfx:org:{prod}".to_vec(),
                b"meta".to_vec(),
                good_meta.replace("\"prod\"", "\"dev\"").into_bytes(),
            ],
        ),
        (
            "meta huge".into(),
            vec![
                b"HSET".to_vec(),
                b"sfx:org:{prod}".to_vec(),
                b"meta".to_vec(),
                huge.clone(),
            ],
        ),
        (
            "meta huge but valid JSON".into(),
            vec![
                b"HSET".to_vec(),
                b"sfx:org:{prod}".to_vec(),
                b"meta".to_vec(),
                huge_json.into_bytes(),
            ],
        ),
        (
            "version not a number".into(),
            vec![
                b"HSET".to_vec(),
                b"sfx:org:{prod}".to_vec(),
                b"v".to_vec(),
                b"abc".to_vec(),
            ],
        ),
        (
            "version negative".into(),
            vec![
                b"HSET".to_vec(),
                b"sfx:org:{prod}".to_vec(),
                b"v".to_vec(),
                b"-5".to_vec(),
            ],
        ),
        (
            "refresh token garbage".into(),
            vec![
                b"HSET".to_vec(),
                b"sfx:secret:{prod}".to_vec(),
                b"refresh-token".to_vec(),
                b"v2:!!!".to_vec(),
            ],
        ),
        (
            "refresh token not UTF-8".into(),
            vec![
                b"HSET".to_vec(),
                b"sfx:secret:{prod}".to_vec(),
                b"refresh-token".to_vec(),
                b"\xff\x00\xfe".to_vec(),
            ],
        ),
        (
            "access token huge".into(),
            vec![
                b"HSET".to_vec(),
                b"sfx:org:{prod}".to_vec(),
                b"access-token".to_vec(),
                huge.clone(),
            ],
        ),
        (
            "org a string".into(),
            vec![b"SET".to_vec(), b"sfx:org:{prod}".to_vec(), b"x".to_vec()],
        ),
        (
            "org a list".into(),
            vec![b"RPUSH".to_vec(), b"sfx:org:{prod}".to_vec(), b"x".to_vec()],
        ),
        (
            "org list a string".into(),
            vec![b"SET".to_vec(), b"sfx:orgs".to_vec(), b"prod".to_vec()],
        ),
        (
            "org list with a hostile alias".into(),
            vec![
                b"SADD".to_vec(),
                b"sfx:orgs".to_vec(),
                b"\x1b]0;pwned\x07\xff".to_vec(),
            ],
        ),
        (
            "default a hash".into(),
            vec![
                b"HSET".to_vec(),
                b"sfx:default".to_vec(),
                b"a".to_vec(),
                b"b".to_vec(),
            ],
        ),
        (
            "default not UTF-8".into(),
            vec![
                b"SET".to_vec(),
                b"sfx:default".to_vec(),
                b"\xff\xfe".to_vec(),
            ],
        ),
        (
            "journal a hash".into(),
            vec![
                b"HSET".to_vec(),
                b"sfx:journal:{prod}".to_vec(),
                b"a".to_vec(),
                b"b".to_vec(),
            ],
        ),
        (
            "lease a hash".into(),
            vec![
                b"HSET".to_vec(),
                b"sfx:lease:{prod}".to_vec(),
                b"a".to_vec(),
                b"b".to_vec(),
            ],
        ),
    ];
    for n in [
        1,
        good_meta.len() / 3,
        good_meta.len() / 2,
        good_meta.len() - 1,
    ] {
        cases.push((
            format!("meta cut at {n}"),
            vec![
                b"HSET".to_vec(),
                b"sfx:org:{prod}".to_vec(),
                b"meta".to_vec(),
                good_meta.as_bytes()[..n].to_vec(),
            ],
        ));
    }
    for (name, cmd) in &cases {
        restore();
        f.expire("prod");
        let parts: Vec<&[u8]> = cmd.iter().map(|c| c.as_slice()).collect();
        if name.ends_with("a list") || name.ends_with("a string") || name.ends_with("a hash") {
            raw(&f.r, &[b"DEL", parts[1]]);
        }
        raw(&f.r, &parts);
        for args in [
            &["orgs"][..],
            &["token"],
            &["expires", "--offline"],
            &["refresh"],
            &["doctor"],
        ] {
            let started = Instant::now();
            let out = f.std(1).args(args).output().unwrap();
            let took = started.elapsed();
            let err = text(&out.stderr);
            let what = format!("{name}, sfx {args:?}");
            assert!(!err.contains("panicked"), "{what}: {err}");
            assert_ne!(out.status.code(), Some(101), "{what}: {err}");
            assert!(out.status.code().is_some(), "{what}: killed by a signal");
            assert!(took < Duration::from_secs(20), "{what}: took {took:?}");
            if name.starts_with("meta") && !name.contains("valid JSON") && args[0] != "doctor" {
                assert_eq!(out.status.code(), Some(6), "{what}: {err}");
                assert!(err.contains("is damaged"), "{what}: {err}");
            }
            // 0, or 3 from `expires` (the token is expired: an answer).
            if !matches!(out.status.code(), Some(0) | Some(3)) {
                assert!(err.contains("error"), "{what}: no sentence: {err}");
                assert!(
                    !err.contains('\x1b') && !err.contains('\x07'),
                    "{what}: raw control characters: {err:?}"
                );
            }
        }
    }
}

#[test]
fn a_holder_whose_lease_vanished_still_stores_the_rotated_token_and_the_next_host_uses_it() {
    // The lease of a paused holder is gone (here deleted; in life a failover that
    // lost the key): another host takes the lease at once. It must still wait
    // for the first attempt's window rather than re-send, and the first holder,
    // resumed with Salesforce's answer in hand, must store the rotated refresh
    // token (by compare-and-set) rather than drop it.
    let f = Fleet::new();
    f.t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    f.login("prod");
    f.expire("prod");
    f.t.fake.clear_requests();
    f.t.fake.inject(crate::shared::TOKEN, Fault::delay(2_000));
    let a = f
        .std(1)
        .args(["refresh", "-q"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while f.t.fake.count(crate::shared::TOKEN) == 0 {
        assert!(Instant::now() < deadline, "A never sent its refresh");
        std::thread::sleep(Duration::from_millis(5));
    }
    signal(&a, "-STOP");
    f.r.cli(&["DEL", "sfx:lease:{prod}"]);
    let b = f
        .std(2)
        .args(["token"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Past Salesforce's answer to A (2 s): B must not have sent anything.
    let until = Instant::now() + Duration::from_millis(3_000);
    while Instant::now() < until && f.t.fake.count(crate::shared::TOKEN) < 2 {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        f.t.fake.count(crate::shared::TOKEN),
        1,
        "B re-sent the token"
    );
    signal(&a, "-CONT");
    let a = a.wait_with_output().unwrap();
    let b = b.wait_with_output().unwrap();
    let (a_err, b_err) = (text(&a.stderr), text(&b.stderr));
    assert_eq!(a.status.code(), Some(0), "A: {a_err}");
    assert!(a_err.contains("lease on org prod lapsed"), "A: {a_err}");
    assert_eq!(b.status.code(), Some(0), "B: {b_err}");
    assert!(b_err.contains("may still reach Salesforce"), "B: {b_err}");
    assert_eq!(f.t.fake.count_grant("refresh_token"), 1);
    assert_eq!(f.t.fake.replays(), 0);
    let token = text(&b.stdout).trim().to_string();
    assert!(f.t.fake.is_active(&token), "B uses A's stored token");
    f.expire("prod");
    assert!(f.t.fake.is_active(&f.token(3)), "the login survives");
    assert_eq!(f.t.fake.replays(), 0);
}
