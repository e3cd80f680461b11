//! A minimal HTTP/1.1 server on `std::net`: one thread per connection, keep-alive,
//! Content-Length and chunked request bodies, `Expect: 100-continue`. It exists (instead of a
//! library server) because the fault injector needs raw control of the socket: close without a
//! response, or announce a longer body than it sends.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const MAX_LINE: usize = 16 * 1024;
const MAX_HEADERS: usize = 200;
const MAX_BODY: usize = 16 * 1024 * 1024;
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// A parsed request.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    /// Path part of the target, not decoded.
    pub path: String,
    /// Raw query string (without `?`).
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A response to send.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("Content-Type".to_string(), content_type.to_string())],
            body: body.into(),
        }
    }
    pub fn with_header(mut self, name: &str, value: &str) -> HttpResponse {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// What the handler wants done with the connection.
pub enum Outcome {
    Respond(HttpResponse),
    /// Close the connection without answering.
    Drop,
    /// Send the response head with `Content-Length: declared`, then only `body`, then close.
    Truncated(HttpResponse, usize),
}

pub type Handler = Arc<dyn Fn(HttpRequest) -> Outcome + Send + Sync>;

/// A running server; [`HttpServer::stop`] (or drop) ends it and closes open connections.
pub struct HttpServer {
    addr: SocketAddr,
    /// Panics caught in connection threads (a handler bug): the owner fails the
    /// test with them, since a panic in a detached thread would be lost.
    panics: Arc<Mutex<Vec<String>>>,
    shutdown: Arc<AtomicBool>,
    conns: Arc<Mutex<HashMap<u64, TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

impl HttpServer {
    pub fn start(listener: TcpListener, handler: Handler) -> std::io::Result<HttpServer> {
        let addr = listener.local_addr()?;
        let shutdown = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<HashMap<u64, TcpStream>>> = Arc::new(Mutex::new(HashMap::new()));
        let panics: Arc<Mutex<Vec<String>>> = Arc::default();
        let (sd, cs, ps) = (shutdown.clone(), conns.clone(), panics.clone());
        let accept = std::thread::Builder::new()
            .name("fake-sf-accept".into())
            .spawn(move || accept_loop(listener, handler, sd, cs, ps))?;
        Ok(HttpServer {
            addr,
            panics,
            shutdown,
            conns,
            accept: Some(accept),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The messages of handler panics caught so far.
    pub fn panics(&self) -> Vec<String> {
        self.panics.lock().map(|p| p.clone()).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        if self.shutdown.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake the blocking accept().
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        if let Ok(conns) = self.conns.lock() {
            for s in conns.values() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(
    listener: TcpListener,
    handler: Handler,
    shutdown: Arc<AtomicBool>,
    conns: Arc<Mutex<HashMap<u64, TcpStream>>>,
    panics: Arc<Mutex<Vec<String>>>,
) {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    for stream in listener.incoming() {
        if shutdown.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        if let (Ok(clone), Ok(mut map)) = (stream.try_clone(), conns.lock()) {
            map.insert(id, clone);
        }
        let (h, sd, cs, ps) = (
            handler.clone(),
            shutdown.clone(),
            conns.clone(),
            panics.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("fake-sf-conn".into())
            .spawn(move || {
                serve_connection(stream, &h, &sd, &ps);
                if let Ok(mut map) = cs.lock() {
                    map.remove(&id);
                }
            });
        if spawned.is_err()
            && let Ok(mut map) = conns.lock()
        {
            map.remove(&id);
        }
    }
}

fn serve_connection(
    stream: TcpStream,
    handler: &Handler,
    shutdown: &AtomicBool,
    panics: &Mutex<Vec<String>>,
) {
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let head = match read_head(&mut reader) {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(msg) => {
                let resp = HttpResponse::new(400, "text/plain;charset=UTF-8", msg);
                let _ = write_response(&mut writer, &resp, None, true);
                break;
            }
        };
        let (mut req, keep_alive) = head;
        if req
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        {
            let _ = writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        match read_body(&mut reader, &req) {
            Ok(body) => req.body = body,
            Err(msg) => {
                let resp = HttpResponse::new(400, "text/plain;charset=UTF-8", msg);
                let _ = write_response(&mut writer, &resp, None, true);
                break;
            }
        }
        let close = !keep_alive || shutdown.load(Ordering::SeqCst);
        let target = format!("{} {}", req.method, req.path);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(req)))
            .unwrap_or_else(|p| {
                let what = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-text panic".into());
                if let Ok(mut list) = panics.lock() {
                    list.push(format!("{target}: {what}"));
                }
                Outcome::Respond(HttpResponse::new(
                    500,
                    "text/plain;charset=UTF-8",
                    "fake-salesforce: the handler panicked",
                ))
            });
        match outcome {
            Outcome::Respond(resp) => {
                if write_response(&mut writer, &resp, None, close).is_err() || close {
                    break;
                }
            }
            Outcome::Drop => {
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
            Outcome::Truncated(resp, declared) => {
                let _ = write_response(&mut writer, &resp, Some(declared), true);
                let _ = writer.flush();
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
        }
    }
    let _ = writer.flush();
    let _ = writer.shutdown(Shutdown::Both);
}

fn read_line(reader: &mut impl BufRead) -> Result<Option<String>, String> {
    let mut buf = Vec::new();
    let n = reader
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut buf)
        .map_err(|e| format!("read error: {e}"))?;
    if n == 0 {
        return Ok(None);
    }
    if buf.len() > MAX_LINE {
        return Err("line too long".into());
    }
    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// Reads the request line and headers. `Ok(None)` = clean EOF between requests.
fn read_head(reader: &mut impl BufRead) -> Result<Option<(HttpRequest, bool)>, String> {
    let mut line;
    loop {
        line = match read_line(reader) {
            Ok(Some(l)) => l,
            Ok(None) => return Ok(None),
            // A timeout or reset while idle just ends the connection.
            Err(_) => return Ok(None),
        };
        if !line.is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed request line".into());
    };
    if !version.starts_with("HTTP/1.") {
        return Err("unsupported HTTP version".into());
    }
    let http10 = version == "HTTP/1.0";
    let mut headers = Vec::new();
    loop {
        let Some(h) = read_line(reader)? else {
            return Err("unexpected end of headers".into());
        };
        if h.is_empty() {
            break;
        }
        if headers.len() >= MAX_HEADERS {
            return Err("too many headers".into());
        }
        let Some((k, v)) = h.split_once(':') else {
            return Err("malformed header".into());
        };
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    // Absolute-form targets ("http://host/path?q") are reduced to their path.
    let target = match target.find("://") {
        Some(i) => {
            let rest = &target[i + 3..];
            rest.find('/').map_or("/", |j| &rest[j..])
        }
        None => target,
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.to_string(), String::new()),
    };
    let req = HttpRequest {
        method: method.to_string(),
        path,
        query,
        headers,
        body: Vec::new(),
    };
    let conn = req.header("connection").map(|c| c.to_ascii_lowercase());
    let keep_alive = match conn.as_deref() {
        Some(c) if c.contains("close") => false,
        Some(c) if c.contains("keep-alive") => true,
        _ => !http10,
    };
    Ok(Some((req, keep_alive)))
}

fn read_body(reader: &mut impl BufRead, req: &HttpRequest) -> Result<Vec<u8>, String> {
    if req
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    {
        let mut body = Vec::new();
        loop {
            let Some(size_line) = read_line(reader)? else {
                return Err("unexpected end of chunked body".into());
            };
            let size_hex = size_line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16).map_err(|_| "bad chunk size")?;
            if size == 0 {
                // Trailers until an empty line.
                while let Some(l) = read_line(reader)? {
                    if l.is_empty() {
                        break;
                    }
                }
                return Ok(body);
            }
            if body.len() + size > MAX_BODY {
                return Err("body too large".into());
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader
                .read_exact(&mut body[start..])
                .map_err(|e| format!("read error: {e}"))?;
            read_line(reader)?; // CRLF after the chunk
        }
    }
    let len = match req.header("content-length") {
        None => 0,
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map_err(|_| "bad Content-Length".to_string())?,
    };
    if len > MAX_BODY {
        return Err("body too large".into());
    }
    let mut body = vec![0u8; len];
    reader
        .read_exact(&mut body)
        .map_err(|e| format!("read error: {e}"))?;
    Ok(body)
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        420 => "Method Failure",
        429 => "Too Many Requests",
        500 => "Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn write_response(
    w: &mut TcpStream,
    resp: &HttpResponse,
    declared_len: Option<usize>,
    close: bool,
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    head.push_str(&format!(
        "Date: {}\r\n",
        http_date(crate::util::real_now_ms() / 1000)
    ));
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\n",
        declared_len.unwrap_or(resp.body.len())
    ));
    head.push_str(if close {
        "Connection: close\r\n\r\n"
    } else {
        "Connection: keep-alive\r\n\r\n"
    });
    let mut out = head.into_bytes();
    out.extend_from_slice(&resp.body);
    w.write_all(&out)?;
    w.flush()
}

/// RFC 7231 IMF-fixdate for a Unix time in seconds.
pub fn http_date(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    format!(
        "{wd}, {d:02} {mon} {y} {:02}:{:02}:{:02} GMT",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_714_560_000), "Wed, 01 May 2024 10:40:00 GMT");
    }
}
