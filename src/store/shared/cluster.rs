//! Redis Cluster (and Valkey cluster) support: each call is routed to the node
//! that owns its key's slot, on connections of sfx's own ([`Conn`]), so the
//! one-deadline guarantee of every call holds on a cluster too.
//!
//! Why not the `redis` crate's cluster client: its synchronous cluster
//! connection opens the crate's own connections, whose every socket read waits
//! a timeout of its own — the very thing `conn` exists to avoid (a trickling
//! node could hold a call for ever) — and it cannot be handed connections of
//! ours. So this module does the little a client needs:
//!
//! - Nothing is known at first, and every call goes to the node named in
//!   `--store`: a server that is not a cluster is used exactly as before, at no
//!   extra cost.
//! - A `MOVED` answer says the server is a cluster: the slot map is read once
//!   (`CLUSTER SLOTS`, from the node that answered) and from then on each
//!   command goes to the owner of its key's slot (CRC16 of the key, or of its
//!   `{hash tag}`). A later `MOVED` (a resharding, a failover) reads the map again.
//! - `ASK` (a slot being migrated) sends `ASKING` and the command to the node
//!   named; `TRYAGAIN` waits a moment. At most [`MAX_REDIRECTS`] hops, and all of
//!   them within the call's one deadline.
//! - Every node is reached with the URL's TLS setting, user and password.
//!   Commands without a key (`PING`, `INFO`) go to the node used last, which
//!   is also where a script is loaded after that node answered `NOSCRIPT`.
//! - Idle connections are kept per node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::{ConnectionLike, ErrorKind, RedisError, RedisResult, Value};

use super::SharedStore;
use super::conn::Conn;
use super::slots::{SlotMap, first_key, slot, split_packed};
use super::url::StoreUrl;
use crate::error::Error;

/// Redirects followed for one command before the call fails.
pub const MAX_REDIRECTS: usize = 5;
/// Idle connections kept per node.
const IDLE_PER_NODE: usize = 8;
/// A node: host and port.
pub type Addr = (String, u16);

/// A cluster that cannot be followed: the sentence is the error's detail.
fn trouble(sentence: String) -> RedisError {
    RedisError::from((ErrorKind::ClusterConnectionNotFound, "cluster", sentence))
}

/// Whether `e` is [`trouble`]; its sentence.
pub fn trouble_sentence(e: &RedisError) -> Option<&str> {
    (e.kind() == ErrorKind::ClusterConnectionNotFound)
        .then(|| e.detail())
        .flatten()
}

/// A redirect in an answer.
enum Redirect {
    Moved(u16, Addr),
    Ask(Addr),
    TryAgain,
}

fn redirect(v: &Value, seed: &str) -> Option<Redirect> {
    let Value::ServerError(e) = v else {
        return None;
    };
    let target = || {
        let addr = e.details()?.split_whitespace().nth(1)?;
        let (host, port) = addr.rsplit_once(':')?;
        let host = if host.is_empty() { seed } else { host };
        Some((host.to_string(), port.parse().ok()?))
    };
    match e.code() {
        "MOVED" => {
            let slot = e.details()?.split_whitespace().next()?.parse().ok()?;
            target().map(|a| Redirect::Moved(slot, a))
        }
        "ASK" => target().map(Redirect::Ask),
        "TRYAGAIN" => Some(Redirect::TryAgain),
        _ => None,
    }
}

/// Per process: the idle connections per node, and the slot map once the
/// server turned out to be a cluster.
#[derive(Default)]
pub struct Pools {
    idle: Mutex<HashMap<Addr, Vec<Conn>>>,
    map: Mutex<Option<Arc<SlotMap>>>,
}

impl Pools {
    /// The slot map, if the server is known to be a cluster.
    pub fn map(&self) -> Option<Arc<SlotMap>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// One call's view of the store: a [`ConnectionLike`] that routes each command
/// to its node, every connection bounded by the call's deadline.
pub struct Routed<'a> {
    url: &'a StoreUrl,
    pools: &'a Pools,
    deadline: Instant,
    conns: Vec<(Addr, Conn)>,
    last: Option<Addr>,
    /// Paces `TRYAGAIN` (the deadline itself bounds real sockets: see conn.rs).
    clock: &'a dyn crate::clock::Clock,
}

impl<'a> Routed<'a> {
    pub fn new(url: &'a StoreUrl, pools: &'a Pools, deadline: Instant) -> Routed<'a> {
        Routed {
            url,
            pools,
            deadline,
            conns: Vec::new(),
            last: None,
            clock: &crate::clock::SystemClock,
        }
    }

    /// Back off on `clock` (the store's).
    pub fn with_clock(mut self, clock: &'a dyn crate::clock::Clock) -> Routed<'a> {
        self.clock = clock;
        self
    }

    fn seed(&self) -> Addr {
        (self.url.host.clone(), self.url.port)
    }

    /// Give the connections back to their nodes' pools (`healthy`: the call
    /// ended without a failure of the connection).
    pub fn finish(self, healthy: bool) {
        if !healthy {
            // A node that failed may be gone for good (a failover): the next
            // call learns the map again, from the node in the URL.
            *self.pools.map.lock().unwrap_or_else(|p| p.into_inner()) = None;
            return;
        }
        let mut idle = self.pools.idle.lock().unwrap_or_else(|p| p.into_inner());
        for (addr, con) in self.conns {
            if con.is_open() {
                let list = idle.entry(addr).or_default();
                if list.len() < IDLE_PER_NODE {
                    list.push(con);
                }
            }
        }
    }

    /// The connection to `addr` for this call: one of this call's, an idle one,
    /// or a new one (TLS, user and password as in the URL).
    fn conn(&mut self, addr: &Addr) -> RedisResult<&mut Conn> {
        let i = match self
            .conns
            .iter()
            .position(|(a, c)| a == addr && c.is_open())
        {
            Some(i) => i,
            None => {
                let idle = self
                    .pools
                    .idle
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_mut(addr)
                    .and_then(Vec::pop);
                let mut con = match idle {
                    Some(c) => c,
                    None => {
                        let mut url = self.url.clone();
                        url.host.clone_from(&addr.0);
                        url.port = addr.1;
                        Conn::open(&url, self.deadline)?
                    }
                };
                con.until(self.deadline);
                self.conns.push((addr.clone(), con));
                self.conns.len() - 1
            }
        };
        self.last = Some(addr.clone());
        Ok(&mut self.conns[i].1)
    }

    /// Where a command goes: its slot's node on a cluster, else the node used
    /// last (for commands without a key) or the one in the URL.
    fn route(&self, args: &[&[u8]]) -> Addr {
        if let (Some(map), Some(key)) = (self.pools.map(), first_key(args))
            && let Some(node) = map.node(slot(key))
        {
            return node.clone();
        }
        self.last.clone().unwrap_or_else(|| self.seed())
    }

    /// After `MOVED <slot> <addr>`: read the whole map from `addr`; a user
    /// whose ACL does not allow `CLUSTER SLOTS` learns the map slot by slot
    /// from the redirects instead.
    fn moved(&mut self, slot: u16, addr: &Addr) -> RedisResult<()> {
        match self.refresh_map(addr) {
            Err(e) if e.code() == Some("NOPERM") => {
                let mut map = self.pools.map.lock().unwrap_or_else(|p| p.into_inner());
                let mut m = map.as_deref().cloned().unwrap_or_else(SlotMap::empty);
                m.set(slot, addr.clone());
                *map = Some(Arc::new(m));
                Ok(())
            }
            r => r,
        }
    }

    /// Read the slot map from `addr` (after a `MOVED`).
    fn refresh_map(&mut self, addr: &Addr) -> RedisResult<()> {
        let (seed, tls) = (self.url.host.clone(), self.url.tls);
        let c = self.conn(addr)?;
        let v = c.req_command(redis::cmd("CLUSTER").arg("SLOTS"))?;
        if let Value::ServerError(e) = &v {
            if e.code() == "NOPERM" {
                return Err(RedisError::from(e.clone()));
            }
            return Err(trouble(format!(
                "it redirected a call (MOVED), but {}:{} did not give its slot map: {}",
                crate::text::sanitize(&addr.0, 100),
                addr.1,
                crate::text::sanitize(&e.to_string(), 200)
            )));
        }
        let map = SlotMap::parse(&v, &seed, tls).ok_or_else(|| {
            trouble(format!(
                "it redirected a call (MOVED), but the slot map {}:{} gave (CLUSTER SLOTS) could not be read",
                crate::text::sanitize(&addr.0, 100),
                addr.1
            ))
        })?;
        *self.pools.map.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(map));
        Ok(())
    }

    /// Send one packed command to `to`, following redirects.
    fn one(&mut self, cmd: &[u8], mut to: Addr, mut hops: usize) -> RedisResult<Value> {
        let mut asking = false;
        loop {
            let c = self.conn(&to)?;
            let v = if asking {
                let mut both = redis::cmd("ASKING").get_packed_command();
                both.extend_from_slice(cmd);
                c.req_packed_commands(&both, 1, 1)?
                    .pop()
                    .unwrap_or(Value::Nil)
            } else {
                c.req_packed_command(cmd)?
            };
            let Some(r) = redirect(&v, &self.url.host) else {
                return Ok(v);
            };
            if hops >= MAX_REDIRECTS {
                return Err(trouble(format!(
                    "the cluster kept redirecting one call ({MAX_REDIRECTS} redirects followed, the last to {}:{}; is a resharding or failover stuck?)",
                    crate::text::sanitize(&to.0, 100),
                    to.1
                )));
            }
            hops += 1;
            asking = false;
            match r {
                Redirect::Moved(slot, addr) => {
                    // The map is stale (or unknown: the first sign of a
                    // cluster). The command goes where it was sent either way.
                    self.moved(slot, &addr)?;
                    to = addr;
                }
                Redirect::Ask(addr) => {
                    to = addr;
                    asking = true;
                }
                Redirect::TryAgain => {
                    // Real time: the deadline bounds this call's sockets (conn.rs).
                    let left = self.deadline.saturating_duration_since(Instant::now());
                    self.clock
                        .sleep(left.min(Duration::from_millis(20) * hops as u32));
                }
            }
        }
    }
}

/// The streams of an `XREAD … STREAMS k1 k2 … id1 id2 …`: the index of
/// `STREAMS` and the number of streams.
fn xread_streams(args: &[&[u8]]) -> Option<(usize, usize)> {
    if !args.first()?.eq_ignore_ascii_case(b"XREAD") {
        return None;
    }
    let at = args
        .iter()
        .position(|a| a.eq_ignore_ascii_case(b"STREAMS"))?;
    let rest = args.len() - at - 1;
    (rest >= 4 && rest.is_multiple_of(2)).then_some((at, rest / 2))
}

impl Routed<'_> {
    /// Take the connection to `addr` out of this call (to use on another thread).
    fn take(&mut self, addr: &Addr) -> RedisResult<Conn> {
        self.conn(addr)?;
        let i = self
            .conns
            .iter()
            .rposition(|(a, c)| a == addr && c.is_open())
            .ok_or_else(|| trouble(format!("no connection to {}:{}", addr.0, addr.1)))?;
        Ok(self.conns.swap_remove(i).1)
    }

    /// An `XREAD` of streams in several slots (a refresher reading the requests
    /// of all its orgs), which a cluster refuses as one command: one `XREAD`
    /// per slot, each on a connection of its own, blocking side by side, the
    /// answers joined. `None`: one slot holds them all (or the map is unknown).
    fn xread_split(&mut self, args: &[&[u8]]) -> RedisResult<Option<Value>> {
        let (Some(map), Some((at, n))) = (self.pools.map(), xread_streams(args)) else {
            return Ok(None);
        };
        // One XREAD may name streams of one slot only (even on one node).
        let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
        for i in 0..n {
            let s = slot(args[at + 1 + i]);
            match groups.iter_mut().find(|(g, _)| *g == s) {
                Some((_, list)) => list.push(i),
                None => groups.push((s, vec![i])),
            }
        }
        if groups.len() < 2 {
            return Ok(None);
        }
        let mut work = Vec::new();
        for (s, list) in groups {
            let to = map.node(s).cloned().unwrap_or_else(|| self.seed());
            let mut cmd = redis::cmd("XREAD");
            for a in &args[1..=at] {
                cmd.arg(*a);
            }
            for &i in &list {
                cmd.arg(args[at + 1 + i]);
            }
            for &i in &list {
                cmd.arg(args[at + 1 + n + i]);
            }
            let con = self.take(&to)?;
            work.push((to, con, cmd.get_packed_command()));
        }
        // The first entries end the read, as one XREAD on one server does: a
        // request is answered at once, not when the other slots' blocks run
        // out. A read still blocking then ends by itself within the block (and
        // the call's deadline), its connection closed; whatever it would have
        // returned is read again next time (the caller's ids did not move).
        let (tx, rx) = std::sync::mpsc::channel();
        let mut waiting = work.len();
        for (to, mut con, bytes) in work {
            let tx = tx.clone();
            std::thread::Builder::new()
                .name("sfx-xread".into())
                .spawn(move || {
                    let v = con.req_packed_command(&bytes);
                    let _ = tx.send((to, con, bytes, v));
                })
                .map_err(|e| trouble(format!("cannot start a thread: {e}")))?;
        }
        drop(tx);
        let mut out: Option<Vec<Value>> = None;
        let mut failed = None;
        let mut again = Vec::new();
        while waiting > 0 {
            let next = if out.is_some() {
                rx.try_recv().ok()
            } else {
                rx.recv().ok()
            };
            let Some((to, con, bytes, v)) = next else {
                break;
            };
            waiting -= 1;
            self.conns.push((to.clone(), con));
            match v {
                Ok(Value::Nil) => {}
                Ok(Value::Array(items)) => out.get_or_insert_with(Vec::new).extend(items),
                Ok(v) if redirect(&v, &self.url.host).is_some() => again.push((to, bytes)),
                Ok(v) => return Ok(Some(v)),
                Err(e) => failed = Some(e),
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        // The map changed under a node's streams: those, once more, one by one.
        for (to, bytes) in again {
            match self.one(&bytes, to, 0)? {
                Value::Array(items) => out.get_or_insert_with(Vec::new).extend(items),
                Value::Nil => {}
                v => return Ok(Some(v)),
            }
        }
        Ok(Some(out.map_or(Value::Nil, Value::Array)))
    }
}

impl ConnectionLike for Routed<'_> {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        let Some(cmds) = split_packed(cmd).filter(|c| c.len() == 1) else {
            let to = self.last.clone().unwrap_or_else(|| self.seed());
            return self.one(cmd, to, 0);
        };
        let args = &cmds[0].1;
        if let Some(v) = self.xread_split(args)? {
            return Ok(v);
        }
        let v = self.one(cmd, self.route(args), 0)?;
        // Streams of several slots in one XREAD, before the map is known: a
        // cluster says CROSSSLOT. Read the map and split the read by node.
        if matches!(&v, Value::ServerError(e) if e.code() == "CROSSSLOT")
            && self.pools.map().is_none()
            && xread_streams(args).is_some()
        {
            let seed = self.seed();
            self.refresh_map(&seed)?;
            if let Some(v) = self.xread_split(args)? {
                return Ok(v);
            }
        }
        Ok(v)
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        let cmds = split_packed(cmd).unwrap_or_default();
        if offset > 0 || cmds.len() != count {
            // A transaction (MULTI … EXEC) stays whole, on its first key's node.
            let to = cmds
                .iter()
                .find(|(_, a)| first_key(a).is_some())
                .map(|(_, a)| self.route(a))
                .unwrap_or_else(|| self.last.clone().unwrap_or_else(|| self.seed()));
            return self.conn(&to)?.req_packed_commands(cmd, offset, count);
        }
        // Each node gets its commands as one pipeline; answers keep their order.
        let mut groups: Vec<(Addr, Vec<usize>)> = Vec::new();
        for (i, (_, args)) in cmds.iter().enumerate() {
            let to = self.route(args);
            match groups.iter_mut().find(|(a, _)| *a == to) {
                Some((_, list)) => list.push(i),
                None => groups.push((to, vec![i])),
            }
        }
        let mut out: Vec<Value> = vec![Value::Nil; cmds.len()];
        let mut again = Vec::new();
        for (to, list) in groups {
            let mut bytes = Vec::new();
            for &i in &list {
                bytes.extend_from_slice(&cmd[cmds[i].0.clone()]);
            }
            let answers = self.conn(&to)?.req_packed_commands(&bytes, 0, list.len())?;
            for (&i, v) in list.iter().zip(answers) {
                if redirect(&v, &self.url.host).is_some() {
                    again.push(i);
                }
                out[i] = v;
            }
        }
        // A redirected command was not run: send it again, on its own.
        for i in again {
            let part = &cmd[cmds[i].0.clone()];
            let to = match redirect(&out[i], &self.url.host) {
                Some(Redirect::Moved(slot, a)) => {
                    self.moved(slot, &a)?;
                    a
                }
                Some(Redirect::Ask(a)) => a,
                _ => self.route(&cmds[i].1),
            };
            out[i] = match redirect(&out[i], &self.url.host) {
                Some(Redirect::Ask(_)) => {
                    let mut both = redis::cmd("ASKING").get_packed_command();
                    both.extend_from_slice(part);
                    let c = self.conn(&to)?;
                    c.req_packed_commands(&both, 1, 1)?
                        .pop()
                        .unwrap_or(Value::Nil)
                }
                _ => self.one(part, to, 1)?,
            };
        }
        Ok(out)
    }

    fn get_db(&self) -> i64 {
        i64::from(self.url.db)
    }

    fn check_connection(&mut self) -> bool {
        redis::cmd("PING").query::<String>(self).is_ok()
    }

    fn is_open(&self) -> bool {
        self.conns.iter().all(|(_, c)| c.is_open())
    }
}

impl SharedStore {
    /// Run `f` on connections of its own, the whole call (connecting, and
    /// following a cluster's redirects, included) ending within `--timeout`;
    /// connections that failed are dropped, ones that worked are kept for the
    /// next call.
    pub(super) fn run<T>(
        &self,
        f: impl FnOnce(&mut Routed<'_>) -> redis::RedisResult<T>,
    ) -> Result<T, Error> {
        self.run_within(self.inner.timeout, f)
    }

    /// [`Self::run`] ending within `within`.
    pub(super) fn run_within<T>(
        &self,
        within: Duration,
        f: impl FnOnce(&mut Routed<'_>) -> redis::RedisResult<T>,
    ) -> Result<T, Error> {
        // Real time: the deadline bounds reads and writes on real sockets
        // (conn.rs sets their timeouts from it), which a fake clock cannot move.
        let deadline = Instant::now() + within;
        let mut routed =
            Routed::new(&self.inner.url, &self.inner.pools, deadline).with_clock(self.clock());
        let out = f(&mut routed);
        let healthy = match &out {
            Ok(_) => true,
            Err(e) => {
                matches!(e.kind(), redis::ErrorKind::Server(_)) && !e.is_unrecoverable_error()
            }
        };
        routed.finish(healthy);
        out.map_err(|e| self.unavailable(&e))
    }

    /// The number of nodes serving slots, when the store is a cluster (read
    /// from the server when this process has not seen a redirect yet).
    pub(super) fn cluster_nodes(&self) -> Result<Option<usize>, Error> {
        let info: String = self.run(|c| redis::cmd("INFO").arg("cluster").query(c))?;
        if !info.lines().any(|l| l.trim() == "cluster_enabled:1") {
            return Ok(None);
        }
        // `cluster_size` of CLUSTER INFO: the nodes serving at least one slot.
        // A user whose ACL does not allow it: the nodes this process has met.
        let size = self.run(
            |c| match redis::cmd("CLUSTER").arg("INFO").query::<String>(c) {
                Err(e) if e.code() == Some("NOPERM") => Ok(None),
                r => r.map(|i| {
                    i.lines()
                        .find_map(|l| l.trim().strip_prefix("cluster_size:")?.parse().ok())
                }),
            },
        )?;
        Ok(Some(size.unwrap_or_else(|| {
            self.inner.pools.map().map_or(0, |m| m.nodes())
        })))
    }
}

/// Replace the store's key check `stored` with `sealed` while no org is stored
/// (a key rotation); `1`: replaced.
pub(super) fn replace_keycheck(
    c: &mut Routed<'_>,
    keycheck: &str,
    orgs: &str,
    stored: &[u8],
    sealed: &str,
) -> RedisResult<i64> {
    match redis::Script::new(REPLACE_KEYCHECK_SCRIPT)
        .key(keycheck)
        .key(orgs)
        .arg(sealed)
        .invoke(c)
    {
        // A cluster: the two keys live in two slots. The org list is read
        // first; the check is then replaced only if it is still the one read
        // (an org stored meanwhile was stored under that check, and the next
        // write verifies the key again).
        Err(e) if e.code() == Some("CROSSSLOT") => {
            let n: i64 = redis::cmd("SCARD").arg(orgs).query(c)?;
            if n != 0 {
                return Ok(0);
            }
            redis::Script::new(SWAP_KEYCHECK_SCRIPT)
                .key(keycheck)
                .arg(stored)
                .arg(sealed)
                .invoke(c)
        }
        r => r,
    }
}

/// Replace the key check only while no org is stored: KEYS = keycheck, orgs set;
/// ARGV = the new check.
const REPLACE_KEYCHECK_SCRIPT: &str = r#"
if redis.call('SCARD', KEYS[2]) == 0 then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
"#;

/// Replace the key check only while it is the one read: KEYS = key check;
/// ARGV = the check read, the new check.
const SWAP_KEYCHECK_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"#;

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
