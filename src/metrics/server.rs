//! The HTTP listener of `sfx watch --listen` (issue #16): `GET /metrics`,
//! `GET /healthz`, `GET /readyz`; other paths 404, other methods 405.
//!
//! A small std `TcpListener` accept loop rather than a server crate: tiny_http
//! reads request heads without a size limit or a deadline, so one client sending an endless header or nothing
//! at all would hold a worker and grow memory. Here every connection gets its own
//! short-lived thread, [`MAX_CONNECTIONS`] at once, a request head of at most
//! [`HEAD_LIMIT`] bytes (else 431) that must arrive within [`READ_DEADLINE`]
//! (else 408 and the connection is closed), and a response that must be taken
//! within [`WRITE_DEADLINE`]. Every response closes the connection.
//!
//! One client must not take `/healthz` and `/readyz` down by holding every slot
//! (issue #19). When all are taken, a new connection must have sent its whole
//! request head within [`FULL_WAIT`] (a probe sends it as it connects), else it
//! is answered 503 and closed — so a client reopening idle connections churns
//! nothing. A `/healthz` or `/readyz` request is then answered at once on the
//! accepting thread (a few bytes, no slot needed); any other request evicts a
//! connection: the oldest one waiting for its head or lingering after its
//! answer (an idle one is answered 503), else the oldest one still writing its
//! answer. Threads of evicted connections end at once; `HARD_CAP` bounds them
//! anyway. Nothing here touches the watch's scheduler: it reads [`Metrics`],
//! whose lock is only ever held for a copy.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Metrics;
use crate::error::Error;

/// Connections served at once (see the module doc for what happens past it).
pub const MAX_CONNECTIONS: usize = 16;
/// With every connection taken, how long a new one may take to send its head.
pub const FULL_WAIT: Duration = Duration::from_millis(100);
/// The largest request head (request line and headers) read.
pub const HEAD_LIMIT: usize = 8 * 1024;
/// The whole request head must arrive within this.
pub const READ_DEADLINE: Duration = Duration::from_secs(5);
/// Threads of connections: those served plus evicted ones not ended yet (they
/// end at once); past this a new connection is turned away with 503.
const HARD_CAP: usize = 2 * MAX_CONNECTIONS;
/// The whole response must be taken within this.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(30);

/// Real time, on purpose: every deadline in this file bounds a socket syscall
/// (`set_read_timeout`/`set_write_timeout`, `peek`, `accept`), which the kernel
/// times in real time — a fake clock cannot make a peer send any faster. What is
/// a rule about time (`/healthz`, `/readyz`, the series' timestamps) reads the
/// watch's clock through [`Metrics`].
fn socket_now() -> Instant {
    Instant::now()
}

/// A real pause between two socket syscalls (see [`socket_now`]).
fn socket_pause(d: Duration) {
    std::thread::sleep(d)
}

/// Parse `--listen`: `IP:PORT`, `[IPv6]:PORT`, `localhost:PORT`, or `:PORT`
/// (every interface, as Prometheus exporters write it).
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let bad = || {
        format!(
            "`{}` is not an address to listen on: give ADDR:PORT, e.g. 127.0.0.1:9464, [::1]:9464, localhost:9464 or :9464 (every interface)",
            crate::text::sanitize(s, 80)
        )
    };
    let addr = if let Some(port) = s.strip_prefix(':') {
        format!("0.0.0.0:{port}")
    } else if let Some(port) = s.strip_prefix("localhost:") {
        format!("127.0.0.1:{port}")
    } else {
        s.to_string()
    };
    addr.parse::<SocketAddr>().map_err(|_| bad())
}

/// The running listener; dropping it stops accepting (the watch ended).
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Bind `addr` (a busy or unusable address is a usage error, exit 2) and serve
    /// `metrics` from a background thread.
    pub fn start(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<Server, Error> {
        let listener = TcpListener::bind(addr).map_err(|e| {
            Error::usage(format!(
                "--listen {addr}: cannot listen there ({e}); pick a free port on an address of this host"
            ))
        })?;
        let addr = listener.local_addr().unwrap_or(addr);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("sfx-listen".into())
            .spawn(move || accept_loop(listener, metrics, flag))
            .map_err(|e| Error::Other(format!("cannot start the --listen thread: {e}")))?;
        Ok(Server { addr, stop })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_millis(200));
    }
}

/// The open connections, for eviction: each with a handle to shut it down.
#[derive(Default)]
struct Conns {
    next: u64,
    live: Vec<Conn>,
}

struct Conn {
    id: u64,
    stream: TcpStream,
    opened: Instant,
    phase: Phase,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the request head: evicted first, with a 503.
    Reading,
    /// Writing the answer: evicted last, without a 503 (it would not get through).
    Writing,
    /// The answer is written; waiting for the client to close: evicted first.
    Lingering,
}

type Registry = Arc<Mutex<Conns>>;

fn lock(r: &Registry) -> std::sync::MutexGuard<'_, Conns> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

/// Frees a connection's place (count and registry) when its thread ends.
struct Slot {
    open: Arc<AtomicUsize>,
    registry: Registry,
    id: u64,
}

impl Slot {
    fn set(&self, phase: Phase) {
        let mut r = lock(&self.registry);
        if let Some(c) = r.live.iter_mut().find(|c| c.id == self.id) {
            c.phase = phase;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.registry).live.retain(|c| c.id != self.id);
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Answer 503 on `stream` (briefly: the client may not read) and close it.
fn turn_away(stream: &TcpStream) {
    let mut s = stream;
    let _ = s.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = s.write_all(&response(
        503,
        "text/plain; charset=utf-8",
        b"too many connections; try again\n",
        false,
    ));
    let _ = s.shutdown(Shutdown::Both);
}

/// Make room for a new connection: close one when [`MAX_CONNECTIONS`] are
/// served (see the module doc for which).
fn make_room(registry: &Registry) {
    let victim = {
        let mut r = lock(registry);
        if r.live.len() < MAX_CONNECTIONS {
            return;
        }
        let pick = r
            .live
            .iter()
            .enumerate()
            .min_by_key(|(_, c)| (c.phase == Phase::Writing, c.opened))
            .map(|(i, _)| i);
        pick.map(|i| r.live.swap_remove(i))
    };
    // Its thread sees the connection closed and ends, freeing its count.
    match victim {
        Some(c) if c.phase == Phase::Reading => turn_away(&c.stream),
        Some(c) => {
            let _ = c.stream.shutdown(Shutdown::Both);
        }
        None => {}
    }
}

fn accept_loop(listener: TcpListener, metrics: Arc<Metrics>, stop: Arc<AtomicBool>) {
    let open = Arc::new(AtomicUsize::new(0));
    let registry: Registry = Arc::default();
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let stream = match conn {
            Ok(s) => s,
            Err(_) => {
                // Out of file descriptors or the like: do not spin.
                socket_pause(Duration::from_millis(50));
                continue;
            }
        };
        if open.load(Ordering::SeqCst) >= HARD_CAP {
            turn_away(&stream);
            continue;
        }
        if lock(&registry).live.len() >= MAX_CONNECTIONS {
            match waiting_head(&stream) {
                None => {
                    turn_away(&stream);
                    continue;
                }
                Some(head) if answered_at_once(&stream, &head, &metrics) => continue,
                Some(_) => make_room(&registry),
            }
        }
        let Ok(handle) = stream.try_clone() else {
            turn_away(&stream);
            continue;
        };
        open.fetch_add(1, Ordering::SeqCst);
        let id = {
            let mut r = lock(&registry);
            r.next += 1;
            let id = r.next;
            r.live.push(Conn {
                id,
                stream: handle,
                opened: socket_now(),
                phase: Phase::Reading,
            });
            id
        };
        let slot = Slot {
            open: open.clone(),
            registry: registry.clone(),
            id,
        };
        let m = metrics.clone();
        let spawned = std::thread::Builder::new()
            .name("sfx-listen-conn".into())
            .stack_size(256 * 1024)
            .spawn(move || serve(stream, &m, &slot));
        if spawned.is_err() {
            // The closure (and its slot) was dropped: the count is back.
            socket_pause(Duration::from_millis(50));
        }
    }
}

/// The request head already sent on `stream` (peeked, not read), waiting at
/// most [`FULL_WAIT`] for it; `None` when it is not all there.
fn waiting_head(stream: &TcpStream) -> Option<Vec<u8>> {
    let deadline = socket_now() + FULL_WAIT;
    let mut buf = vec![0u8; HEAD_LIMIT];
    loop {
        let left = deadline.saturating_duration_since(socket_now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return None;
        }
        match stream.peek(&mut buf) {
            Ok(0) => return None,
            Ok(n) => {
                if let Some(end) = find_end(&buf[..n]) {
                    buf.truncate(end);
                    return Some(buf);
                }
                if n == buf.len() {
                    return None;
                }
                // Part of it: the rest is on its way.
                socket_pause(Duration::from_millis(1));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// A `GET`/`HEAD` of `/healthz` or `/readyz` (whose `head` was peeked): read it,
/// answer it on this thread (a few bytes into an empty socket buffer) and close.
fn answered_at_once(stream: &TcpStream, head: &[u8], metrics: &Metrics) -> bool {
    let line =
        String::from_utf8_lossy(head.split(|b| *b == b'\n').next().unwrap_or(&[])).into_owned();
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return false;
    };
    let path = target.split('?').next().unwrap_or("");
    if !matches!(method, "GET" | "HEAD") || !matches!(path, "/healthz" | "/readyz") {
        return false;
    }
    let mut s = stream;
    let mut consumed = vec![0u8; head.len()];
    if s.read_exact(&mut consumed).is_err() {
        return true;
    }
    let (status, ct, body) = route(metrics, method, target);
    let _ = s.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = s.write_all(&response(status, ct, &body, method == "HEAD"));
    let _ = s.shutdown(Shutdown::Write);
    true
}

/// Read one request head within the limits; `None` when the client gave up,
/// stalled or sent too much (`Some(Err(status))` then says what to answer).
fn read_head(stream: &mut TcpStream) -> Option<Result<Vec<u8>, u16>> {
    let deadline = socket_now() + READ_DEADLINE;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(socket_now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Some(Err(408));
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Some(Err(408));
            }
            Err(_) => return None,
        };
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = find_end(&head[from..]) {
            head.truncate(from + end);
            return Some(Ok(head));
        }
        if head.len() > HEAD_LIMIT {
            return Some(Err(431));
        }
    }
}

/// Where the head ends (after the blank line), within `b`.
fn find_end(b: &[u8]) -> Option<usize> {
    b.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| b.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
}

/// What to answer for a request line (status, content type, body).
pub fn route(metrics: &Metrics, method: &str, target: &str) -> (u16, &'static str, Arc<Vec<u8>>) {
    const TEXT: &str = "text/plain; charset=utf-8";
    let path = target.split('?').next().unwrap_or("");
    let known = matches!(path, "/metrics" | "/healthz" | "/readyz");
    if !known {
        return (
            404,
            TEXT,
            Arc::new(b"not found: try /metrics, /healthz or /readyz\n".to_vec()),
        );
    }
    if method != "GET" && method != "HEAD" {
        return (
            405,
            TEXT,
            Arc::new(b"method not allowed: use GET\n".to_vec()),
        );
    }
    match path {
        "/metrics" => (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        "/healthz" => match metrics.health() {
            Ok(()) => (200, TEXT, Arc::new(b"ok\n".to_vec())),
            Err(late) => (
                503,
                TEXT,
                Arc::new(
                    format!(
                        "the watch's scheduler has not run for {}s past its plan\n",
                        late.as_secs()
                    )
                    .into_bytes(),
                ),
            ),
        },
        _ => {
            let not_ready = metrics.not_ready(metrics.now());
            if not_ready.is_empty() {
                (200, TEXT, Arc::new(b"ready\n".to_vec()))
            } else {
                let mut body = not_ready.join("\n");
                body.push('\n');
                (503, TEXT, Arc::new(body.into_bytes()))
            }
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// The status line and headers (and the body unless `head_only`).
fn response(status: u16, content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    if status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

fn serve(mut stream: TcpStream, metrics: &Metrics, slot: &Slot) {
    let head = match read_head(&mut stream) {
        None => return,
        Some(Ok(h)) => {
            slot.set(Phase::Writing);
            h
        }
        Some(Err(status)) => {
            let msg: &[u8] = if status == 431 {
                b"request head too large\n"
            } else {
                b"request not received in time\n"
            };
            if write_all(
                &mut stream,
                &response(status, "text/plain; charset=utf-8", msg, false),
            )
            .is_ok()
            {
                slot.set(Phase::Lingering);
                linger(&mut stream);
            }
            return;
        }
    };
    let line = head.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        let _ = write_all(
            &mut stream,
            &response(400, "text/plain; charset=utf-8", b"bad request\n", false),
        );
        return;
    };
    if !version.starts_with("HTTP/1.") {
        let _ = write_all(
            &mut stream,
            &response(400, "text/plain; charset=utf-8", b"bad request\n", false),
        );
        return;
    }
    let (status, ct, body) = route(metrics, method, target);
    let bytes = response(status, ct, &body, method == "HEAD");
    drop(body);
    if write_all(&mut stream, &bytes).is_ok() {
        slot.set(Phase::Lingering);
        linger(&mut stream);
    }
}

/// Let the client read the answer before the socket goes: closing with unread
/// request bytes still queued would reset the connection and lose the answer.
/// Reads (and drops) at most 64 KiB more, for at most half a second.
fn linger(stream: &mut TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = socket_now() + Duration::from_millis(500);
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < 64 * 1024 {
        let left = deadline.saturating_duration_since(socket_now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// Write everything within [`WRITE_DEADLINE`] (in chunks, so a client that
/// reads a byte now and then cannot stretch it).
fn write_all(stream: &mut TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    let deadline = socket_now() + WRITE_DEADLINE;
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(socket_now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        let n = stream.write(&bytes[..bytes.len().min(64 * 1024)])?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_parse_or_say_what_is_expected() {
        assert_eq!(parse_listen("127.0.0.1:9464").unwrap().port(), 9464);
        assert_eq!(parse_listen("[::1]:9").unwrap().to_string(), "[::1]:9");
        assert_eq!(
            parse_listen("localhost:80").unwrap().to_string(),
            "127.0.0.1:80"
        );
        assert_eq!(parse_listen(":9464").unwrap().to_string(), "0.0.0.0:9464");
        for bad in [
            "",
            "9464",
            "localhost",
            "1.2.3.4:99999",
            "host:1",
            "127.0.0.1:",
        ] {
            let e = parse_listen(bad).unwrap_err();
            assert!(e.contains("ADDR:PORT"), "{bad}: {e}");
        }
    }

    #[test]
    fn routes_answer_404_for_other_paths_and_405_for_other_methods() {
        let m = Metrics::new("0");
        assert_eq!(route(&m, "GET", "/nope").0, 404);
        assert_eq!(route(&m, "POST", "/nope").0, 404);
        assert_eq!(route(&m, "POST", "/metrics").0, 405);
        assert_eq!(route(&m, "DELETE", "/readyz").0, 405);
        assert_eq!(route(&m, "GET", "/metrics?x=1").0, 200);
        assert_eq!(route(&m, "HEAD", "/metrics").0, 200);
        // No heartbeat yet, no org yet.
        assert_eq!(route(&m, "GET", "/healthz").0, 503);
        assert_eq!(route(&m, "GET", "/readyz").0, 503);
    }

    #[test]
    fn the_head_ends_at_the_blank_line() {
        assert_eq!(find_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody"), Some(24));
        assert_eq!(find_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(find_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
    }
}
