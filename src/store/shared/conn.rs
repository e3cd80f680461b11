//! One connection to the shared store whose every call ends by one deadline.
//!
//! The Redis client's own connection bounds each socket read by the timeout, so
//! a server that trickles one byte a second never times out, and each handshake
//! step (TLS, AUTH, SELECT) waits a timeout of its own. Here the socket is ours:
//! before every read and write its timeout is set to what is left of the call's
//! deadline, and past the deadline every read and write fails. Connect, TLS
//! handshake, AUTH, SELECT, the command and its reply together end by the
//! deadline. The client library still encodes commands, parses replies and runs
//! scripts (this type is a [`redis::ConnectionLike`]).

use std::io::{self, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use redis::{ConnectionLike, ErrorKind, Parser, RedisError, RedisResult, Value};

use super::url::StoreUrl;

/// The most one call may read: a server that announces or sends a reply of
/// gigabytes is cut off rather than allowed to fill memory.
pub const REPLY_LIMIT: u64 = 64 << 20;

/// What one call may still spend.
struct Budget {
    deadline: Instant,
    bytes: u64,
}

/// The socket, its timeouts set from the shared deadline before each call.
struct Timed {
    tcp: TcpStream,
    budget: Arc<Mutex<Budget>>,
}

impl Timed {
    fn left(&self) -> io::Result<Duration> {
        let d = self
            .budget
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .deadline;
        // Real time, on purpose: what is left becomes a real socket's timeout.
        let left = d.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the deadline of the call passed",
            ));
        }
        Ok(left)
    }
}

fn timed_out(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::WouldBlock {
        io::Error::new(io::ErrorKind::TimedOut, "the deadline of the call passed")
    } else {
        e
    }
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // A signal (a child ending, Ctrl-C handled elsewhere) interrupts a read
        // that waits long (a reader's blocking read lasts up to --wait): go on
        // waiting, within the same deadline.
        let n = loop {
            let left = self.left()?;
            self.tcp.set_read_timeout(Some(left))?;
            match self.tcp.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r.map_err(timed_out)?,
            }
        };
        let mut b = self.budget.lock().unwrap_or_else(|p| p.into_inner());
        b.bytes = b.bytes.checked_sub(n as u64).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the server sent more than {} MiB in answer to one call",
                    REPLY_LIMIT >> 20
                ),
            )
        })?;
        Ok(n)
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            let left = self.left()?;
            self.tcp.set_write_timeout(Some(left))?;
            match self.tcp.write(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r.map_err(timed_out),
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

enum Stream {
    Plain(Timed),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, Timed>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A connection whose calls end by the deadline set with [`Conn::until`].
pub struct Conn {
    io: BufReader<Stream>,
    parser: Parser,
    budget: Arc<Mutex<Budget>>,
    db: i64,
    open: bool,
}

/// The TLS settings: the OS trust store (`SSL_CERT_FILE` honoured), as the
/// client library did.
fn tls_config() -> RedisResult<Arc<rustls::ClientConfig>> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = rustls::RootCertStore::empty();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(match found.errors.first() {
                    Some(e) => format!("no trusted TLS certificate authority could be loaded: {e}"),
                    None => "no trusted TLS certificate authority was found".into(),
                });
            }
            Ok(Arc::new(
                rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            ))
        })
        .clone()
        .map_err(|m| RedisError::from((ErrorKind::InvalidClientConfig, "TLS", m)))
}

impl Conn {
    /// Connect, handshake, authenticate and select the database, all by `deadline`.
    pub fn open(url: &StoreUrl, deadline: Instant) -> RedisResult<Conn> {
        let budget = Arc::new(Mutex::new(Budget {
            deadline,
            bytes: REPLY_LIMIT,
        }));
        // Real time, on purpose: each step's bound is a real socket's timeout.
        let left = || {
            let l = deadline.saturating_duration_since(Instant::now());
            if l.is_zero() {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the deadline of the call passed",
                ))
            } else {
                Ok(l)
            }
        };
        let mut last = None;
        let mut tcp = None;
        for addr in (url.host.as_str(), url.port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, left()?) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = match (tcp, last) {
            (Some(t), _) => t,
            (None, Some(e)) => return Err(e.into()),
            (None, None) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} resolves to no address", url.host),
                )
                .into());
            }
        };
        let _ = tcp.set_nodelay(true);
        let timed = Timed {
            tcp,
            budget: budget.clone(),
        };
        let stream = if url.tls {
            let name = rustls::pki_types::ServerName::try_from(url.host.clone()).map_err(|e| {
                RedisError::from((ErrorKind::InvalidClientConfig, "TLS", e.to_string()))
            })?;
            let session = rustls::ClientConnection::new(tls_config()?, name).map_err(|e| {
                RedisError::from((ErrorKind::InvalidClientConfig, "TLS", e.to_string()))
            })?;
            Stream::Tls(Box::new(rustls::StreamOwned::new(session, timed)))
        } else {
            Stream::Plain(timed)
        };
        let mut con = Conn {
            io: BufReader::new(stream),
            parser: Parser::new(),
            budget,
            db: i64::from(url.db),
            open: true,
        };
        if let Some(p) = &url.password {
            let mut auth = redis::cmd("AUTH");
            if let Some(u) = &url.username {
                auth.arg(u);
            }
            auth.arg(p.expose());
            auth.query::<()>(&mut con).map_err(|e| {
                if matches!(e.kind(), ErrorKind::Server(_)) {
                    RedisError::from((
                        ErrorKind::AuthenticationFailed,
                        "Password authentication failed",
                    ))
                } else {
                    e
                }
            })?;
        }
        if url.db != 0 {
            redis::cmd("SELECT").arg(url.db).query::<()>(&mut con)?;
        }
        Ok(con)
    }

    /// The next call on this connection must end by `deadline` and read at most
    /// [`REPLY_LIMIT`] bytes.
    pub fn until(&mut self, deadline: Instant) {
        *self.budget.lock().unwrap_or_else(|p| p.into_inner()) = Budget {
            deadline,
            bytes: REPLY_LIMIT,
        };
    }

    fn send(&mut self, bytes: &[u8]) -> RedisResult<()> {
        let w = self.io.get_mut();
        let sent = w.write_all(bytes).and_then(|()| w.flush());
        if sent.is_err() {
            self.open = false;
        }
        Ok(sent?)
    }

    fn read(&mut self) -> RedisResult<Value> {
        loop {
            match self.parser.parse_value(&mut self.io) {
                Ok(Value::Push { .. }) => continue,
                Ok(v) => return Ok(v),
                Err(e) => {
                    // Whatever was half read makes the connection unusable.
                    self.open = false;
                    return Err(e);
                }
            }
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        self.send(cmd)?;
        self.read()
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.send(cmd)?;
        let mut out = Vec::with_capacity(count);
        for i in 0..offset + count {
            let v = self.read()?;
            if i >= offset {
                out.push(v);
            }
        }
        Ok(out)
    }

    fn get_db(&self) -> i64 {
        self.db
    }

    fn check_connection(&mut self) -> bool {
        redis::cmd("PING").query::<String>(self).is_ok()
    }

    fn is_open(&self) -> bool {
        self.open
    }
}
