//! `sfx watch --listen` under load and its labels (issue #19): one client holding
//! every connection cannot take `/healthz` and `/readyz` down, and two orgs never
//! share an `org` label. Loopback only; every wait is bounded.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::listen::{LONG, Listening, parse_response, spawn};

/// One client holding every connection the listener serves at once (16), each
/// opened again as soon as the server closes it, until `stop`. `request`: each
/// connection sends one and never closes, else each sends nothing. Says on
/// `ready` when its 16 are open.
fn hog(
    addr: SocketAddr,
    request: Option<&'static str>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    ready: std::sync::mpsc::Sender<()>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let open = || {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
            if let Some(r) = request {
                let _ = s.write_all(r.as_bytes());
            }
            s.set_nonblocking(true).unwrap();
            s
        };
        let mut conns: Vec<TcpStream> = (0..16).map(|_| open()).collect();
        let _ = ready.send(());
        let deadline = Instant::now() + LONG;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
            for c in conns.iter_mut() {
                let mut buf = [0u8; 512];
                let closed = match c.read(&mut buf) {
                    Ok(0) => true,
                    // An idle connection answered (408/503) is being closed.
                    Ok(_) => request.is_none(),
                    Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                };
                if closed {
                    *c = open();
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    })
}

/// While a hog holds every connection: /healthz and /readyz answer 200 to
/// every probe for `window`.
fn probes_get_through(w: &Listening, request: Option<&'static str>, window: Duration) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ready, hog_ready) = channel();
    let hog = hog(w.addr, request, stop.clone(), ready);
    hog_ready
        .recv_timeout(LONG)
        .expect("the hog opened its connections");
    if request.is_none() {
        // Every slot is taken: one more idle connection is turned away.
        let (status, body) = request_idle(w.addr);
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("too many connections"), "{body}");
    }
    let started = Instant::now();
    let mut probes = 0;
    while started.elapsed() < window {
        for path in ["/healthz", "/readyz"] {
            let (status, body) = w.get(path);
            assert_eq!(
                status, 200,
                "{path} answered {status} ({body}) while one client held every connection"
            );
            probes += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    hog.join().unwrap();
    assert!(probes >= 10, "{probes} probes");
}

/// Connect and send nothing; the server's answer (it must close within 20 s).
fn request_idle(addr: SocketAddr) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read the answer");
    parse_response(&out)
}

#[test]
fn one_client_holding_every_connection_does_not_take_health_and_readiness_down() {
    let t = T::new();
    t.login("prod");
    let w = spawn(&t, &[], &[]);
    w.wait_for("/readyz", 200, LONG);
    // Connections that send nothing, past the 5 s read deadline (when the
    // server closes them all and the client opens them again).
    probes_get_through(&w, None, Duration::from_secs(7));
    // Connections that send a request and never close.
    probes_get_through(
        &w,
        Some("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
        Duration::from_secs(3),
    );
    let (status, body) = w.get("/metrics");
    assert_eq!(status, 200, "{body}");
}

#[test]
fn an_alias_spelled_like_a_username_digest_gets_a_label_of_its_own() {
    let t = T::new();
    // One org named by its username (labelled `org-<12 hex>`), one whose alias is
    // exactly that label.
    t.sfx()
        .args(["login", "--auth-url", "-"])
        .write_stdin(t.auth_url())
        .assert()
        .success();
    let hashed = sfx::metrics::label(DEFAULT_USERNAME).into_owned();
    t.login(&hashed);
    let w = spawn(&t, &["--all"], &[]);
    w.event("checked", Some(DEFAULT_USERNAME), LONG);
    w.event("checked", Some(&hashed), LONG);
    let body = w.wait_for("/metrics", 200, LONG);
    let series = |org: &str| format!("sfx_access_token_expiry_timestamp_seconds{{org=\"{org}\"}}");
    let lines = |org: &str| body.lines().filter(|l| l.starts_with(&series(org))).count();
    assert_eq!(lines(&hashed), 1, "{body}");
    assert_eq!(lines(&format!("alias:{hashed}")), 1, "{body}");
    assert!(!body.contains(DEFAULT_USERNAME), "{body}");
}
