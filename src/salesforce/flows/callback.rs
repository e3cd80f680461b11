//! The web login's one-shot loopback listener (issue #24), on std `TcpListener`s
//! as the metrics server is (tiny_http reads a request head without a size limit
//! or a deadline: one connection sending an endless header grew sfx's memory by
//! a megabyte per megabyte sent).
//!
//! - It listens on `127.0.0.1` and `[::1]` on the same port, since browsers
//!   resolve `localhost` either way: when `[::1]:<port>` is held by another
//!   program, an IPv6-first browser would hand it the login code, so sfx refuses
//!   (a free port is chosen again when the port was 0). Without IPv6 loopback
//!   at all, `127.0.0.1` alone is enough.
//! - Every connection gets its own short-lived thread, at most
//!   [`MAX_CONNECTIONS`] reading at once: a new one closes the one that has
//!   waited longest for its head, so connections that send nothing (a local
//!   process holding every slot) cannot keep the browser's callback out. A
//!   request head of at most
//!   [`HEAD_LIMIT`] bytes (else 431) that must arrive within [`READ_DEADLINE`]
//!   (else the connection is closed). Heads that arrive are handed to the login,
//!   which answers each (a small page) and closes it.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::text::sanitize;

/// Connections read at once; a new one closes the oldest still reading.
pub const MAX_CONNECTIONS: usize = 16;
/// The largest request head (request line and headers) read.
pub const HEAD_LIMIT: usize = 8 * 1024;
/// The whole request head must arrive within this.
pub const READ_DEADLINE: Duration = Duration::from_secs(5);
const WRITE_DEADLINE: Duration = Duration::from_secs(5);
const ACCEPT_PAUSE: Duration = Duration::from_millis(20);

/// One request head that arrived: its method and target, and the connection
/// to answer on.
pub struct Request {
    pub method: String,
    /// The request target as sent: `/path?query`.
    pub target: String,
    stream: TcpStream,
}

impl Request {
    /// Answer with an HTML page and close the connection (best effort: the
    /// browser may be gone).
    pub fn respond(mut self, status: u16, reason: &str, html: &str) {
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            html.len()
        );
        let _ = self.stream.set_write_timeout(Some(WRITE_DEADLINE));
        let _ = self
            .stream
            .write_all(head.as_bytes())
            .and_then(|()| self.stream.write_all(html.as_bytes()))
            .and_then(|()| self.stream.flush());
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// The bound sockets; their accept threads stop when this is dropped.
pub struct Bound {
    pub port: u16,
    requests: mpsc::Receiver<Request>,
    stop: Arc<AtomicBool>,
}

impl Drop for Bound {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Bound {
    /// The next request head, or `None` at the deadline (on `clock`).
    pub fn next(&self, clock: &dyn crate::clock::Clock, deadline: Instant) -> Option<Request> {
        let left = deadline.checked_duration_since(clock.instant())?;
        crate::clock::recv_timeout(clock, &self.requests, left).ok()
    }
}

fn busy(port: u16, on: &str, e: &std::io::Error) -> Error {
    Error::usage(format!(
        "cannot listen on {on}:{port} for the login callback ({}); free the port or choose another with --port (the connected app's callback URL must then be http://localhost:<port>{})",
        sanitize(&e.to_string(), 120),
        super::web_pkce::CALLBACK_PATH
    ))
}

/// Listen on `127.0.0.1:<port>` and `[::1]:<port>` (0 = any free port).
pub fn bind(port: u16) -> Result<Bound, Error> {
    let mut tries = 0;
    let (v4, v6) = loop {
        tries += 1;
        let v4 = TcpListener::bind(("127.0.0.1", port)).map_err(|e| busy(port, "localhost", &e))?;
        let got = v4
            .local_addr()
            .map_err(|e| Error::io("the callback listener has no TCP port", e))?
            .port();
        match TcpListener::bind(("::1", got)) {
            Ok(v6) => break (v4, Some(v6)),
            // Taken: by chance (port 0, try another), or by someone waiting
            // for a code that is not theirs.
            Err(e) if e.kind() == ErrorKind::AddrInUse => {
                if port == 0 && tries < 10 {
                    continue;
                }
                return Err(Error::usage(format!(
                    "cannot listen on [::1]:{got} for the login callback: another program holds that port on the IPv6 loopback, and a browser that tries IPv6 first would hand it the login code; free the port or choose another with --port (the connected app's callback URL must then be http://localhost:<port>{})",
                    super::web_pkce::CALLBACK_PATH
                )));
            }
            // No IPv6 loopback on this host: browsers use 127.0.0.1.
            Err(_) => break (v4, None),
        }
    };
    let port = v4
        .local_addr()
        .map_err(|e| Error::io("the callback listener has no TCP port", e))?
        .port();
    let (tx, requests) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let active: Reading = Arc::default();
    for l in std::iter::once(v4).chain(v6) {
        l.set_nonblocking(true)
            .map_err(|e| Error::io("cannot set up the callback listener", e))?;
        let (tx, stop, active) = (tx.clone(), stop.clone(), active.clone());
        std::thread::spawn(move || accept_loop(l, tx, stop, active));
    }
    Ok(Bound {
        port,
        requests,
        stop,
    })
}

/// The connections still reading their head, oldest first (an id and a handle
/// to close it by).
type Reading = Arc<Mutex<VecDeque<(u64, TcpStream)>>>;

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

// Real time, on purpose: this polls a real non-blocking socket, which no
// fake clock can make ready sooner.
fn accept_loop(l: TcpListener, tx: mpsc::Sender<Request>, stop: Arc<AtomicBool>, active: Reading) {
    while !stop.load(Ordering::SeqCst) {
        let stream = match l.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(ACCEPT_PAUSE);
                continue;
            }
            Err(_) => {
                std::thread::sleep(ACCEPT_PAUSE);
                continue;
            }
        };
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
        {
            let mut reading = active.lock().unwrap_or_else(|e| e.into_inner());
            while reading.len() >= MAX_CONNECTIONS {
                if let Some((_, oldest)) = reading.pop_front() {
                    let _ = oldest.shutdown(Shutdown::Both);
                }
            }
            reading.push_back((id, handle));
        }
        let (tx, active) = (tx.clone(), active.clone());
        std::thread::spawn(move || {
            let req = read_head(stream);
            active
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|(i, _)| *i != id);
            if let Some(req) = req {
                let _ = tx.send(req);
            }
        });
    }
}

/// Read one request head, bounded in size and time. `None`: nothing usable
/// came (the connection is closed; an oversized head is answered 431).
fn read_head(mut stream: TcpStream) -> Option<Request> {
    let _ = stream.set_nonblocking(false);
    // Real time, on purpose: the deadline becomes the socket's read timeout.
    let deadline = Instant::now() + READ_DEADLINE;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > HEAD_LIMIT {
            let req = Request {
                method: String::new(),
                target: String::new(),
                stream,
            };
            req.stream
                .set_read_timeout(Some(Duration::from_millis(1)))
                .ok();
            req.respond(
                431,
                "Request Header Fields Too Large",
                "<!DOCTYPE html>\n<p>Request head too large.</p>\n",
            );
            return None;
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    Some(Request {
        method,
        target,
        stream,
    })
}
