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

use super::conn::Conn;
use super::url::StoreUrl;

/// Redirects followed for one command before its last answer is returned.
pub const MAX_REDIRECTS: usize = 5;
/// Idle connections kept per node.
const IDLE_PER_NODE: usize = 8;
/// The slots of a Redis cluster.
pub const SLOTS: usize = 16384;

/// A node: host and port.
pub type Addr = (String, u16);

/// Which node serves each slot.
#[derive(Debug)]
pub struct SlotMap {
    nodes: Vec<Addr>,
    /// Index into `nodes` per slot; `u16::MAX`: no node serves it.
    owner: Vec<u16>,
}

impl SlotMap {
    fn node(&self, slot: u16) -> Option<&Addr> {
        self.owner
            .get(usize::from(slot))
            .and_then(|&i| self.nodes.get(usize::from(i)))
    }

    /// How many nodes serve slots (the primaries).
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Read from a `CLUSTER SLOTS` answer; `seed` stands in for a node whose
    /// address is given as empty ("the host you connected to").
    fn parse(v: &Value, seed: &str, tls: bool) -> Option<SlotMap> {
        let Value::Array(ranges) = v else { return None };
        let mut map = SlotMap {
            nodes: Vec::new(),
            owner: vec![u16::MAX; SLOTS],
        };
        for r in ranges {
            let Value::Array(r) = r else { return None };
            let (start, end) = (int(r.first()?)?, int(r.get(1)?)?);
            let Value::Array(node) = r.get(2)? else {
                return None;
            };
            let mut host = text(node.first()?)?;
            let port = u16::try_from(int(node.get(1)?)?).ok()?;
            if tls && host.parse::<std::net::IpAddr>().is_ok() {
                // A TLS certificate names hosts: prefer the node's host name
                // when it announces one.
                if let Some(name) = node.get(3).and_then(hostname_of) {
                    host = name;
                }
            }
            if host.is_empty() {
                host = seed.to_string();
            }
            if host == "?" || start > end || end >= SLOTS as i64 || start < 0 {
                continue;
            }
            let addr = (host, port);
            let i = match map.nodes.iter().position(|n| *n == addr) {
                Some(i) => i,
                None => {
                    map.nodes.push(addr);
                    map.nodes.len() - 1
                }
            };
            for s in start..=end {
                map.owner[s as usize] = i as u16;
            }
        }
        (!map.nodes.is_empty()).then_some(map)
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn hostname_of(meta: &Value) -> Option<String> {
    let pairs: Vec<&Value> = match meta {
        Value::Map(m) => m.iter().flat_map(|(k, v)| [k, v]).collect(),
        Value::Array(a) => a.iter().collect(),
        _ => return None,
    };
    pairs
        .chunks(2)
        .find(|kv| kv.len() == 2 && text(kv[0]).as_deref() == Some("hostname"))
        .and_then(|kv| text(kv[1]))
        .filter(|h| !h.is_empty())
}

/// CRC16-CCITT (XMODEM), the checksum Redis Cluster takes of keys.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot of a key: of its `{hash tag}` when it has a non-empty one.
pub fn slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|&b| b == b'}')
                .filter(|&close| close > 0)
                .map(|close| &rest[..close])
        })
        .unwrap_or(key);
    crc16(tagged) % SLOTS as u16
}

/// The first key of a command, if it has one.
fn first_key<'a>(args: &[&'a [u8]]) -> Option<&'a [u8]> {
    let name = args.first()?.to_ascii_uppercase();
    match name.as_slice() {
        b"PING" | b"INFO" | b"SCRIPT" | b"AUTH" | b"SELECT" | b"CLUSTER" | b"ASKING" | b"HELLO"
        | b"CLIENT" | b"ACL" | b"DBSIZE" | b"PUBLISH" | b"SUBSCRIBE" | b"PSUBSCRIBE"
        | b"UNSUBSCRIBE" | b"PUNSUBSCRIBE" | b"TIME" | b"COMMAND" | b"FUNCTION" | b"ECHO"
        | b"QUIT" | b"WAIT" | b"MULTI" | b"EXEC" | b"DISCARD" => None,
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL" | b"FCALL_RO" => {
            let n: usize = std::str::from_utf8(args.get(2)?).ok()?.parse().ok()?;
            if n == 0 { None } else { args.get(3).copied() }
        }
        b"XREAD" | b"XREADGROUP" => {
            let at = args
                .iter()
                .position(|a| a.eq_ignore_ascii_case(b"STREAMS"))?;
            args.get(at + 1).copied()
        }
        _ => args.get(1).copied(),
    }
}

/// One command of a packed pipeline: its bytes' range and its arguments.
type Packed<'a> = (std::ops::Range<usize>, Vec<&'a [u8]>);

/// The commands in packed (RESP) form.
fn split_packed(bytes: &[u8]) -> Option<Vec<Packed<'_>>> {
    fn line(b: &[u8], at: &mut usize) -> Option<usize> {
        let end = b[*at..].windows(2).position(|w| w == b"\r\n")? + *at;
        let n = std::str::from_utf8(&b[*at + 1..end]).ok()?.parse().ok()?;
        *at = end + 2;
        Some(n)
    }
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let start = at;
        if bytes[at] != b'*' {
            return None;
        }
        let n = line(bytes, &mut at)?;
        let mut args = Vec::with_capacity(n);
        for _ in 0..n {
            if bytes.get(at) != Some(&b'$') {
                return None;
            }
            let len = line(bytes, &mut at)?;
            args.push(bytes.get(at..at + len)?);
            at += len + 2;
        }
        out.push((start..at, args));
    }
    Some(out)
}

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
    Moved(Addr),
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
        "MOVED" => target().map(Redirect::Moved),
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
}

impl<'a> Routed<'a> {
    pub fn new(url: &'a StoreUrl, pools: &'a Pools, deadline: Instant) -> Routed<'a> {
        Routed {
            url,
            pools,
            deadline,
            conns: Vec::new(),
            last: None,
        }
    }

    fn seed(&self) -> Addr {
        (self.url.host.clone(), self.url.port)
    }

    /// Give the connections back to their nodes' pools (`healthy`: the call
    /// ended without a failure of the connection).
    pub fn finish(self, healthy: bool) {
        if !healthy {
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

    /// Read the slot map from the node used last (or the one in the URL).
    pub fn load_map(&mut self) -> RedisResult<()> {
        let at = self.last.clone().unwrap_or_else(|| self.seed());
        self.refresh_map(&at)
    }

    /// Read the slot map from `addr` (after a `MOVED`).
    fn refresh_map(&mut self, addr: &Addr) -> RedisResult<()> {
        let (seed, tls) = (self.url.host.clone(), self.url.tls);
        let c = self.conn(addr)?;
        let v = c.req_command(redis::cmd("CLUSTER").arg("SLOTS"))?;
        if let Value::ServerError(e) = &v {
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
                Redirect::Moved(addr) => {
                    // The map is stale (or unknown: the first sign of a
                    // cluster). The command goes where it was sent either way.
                    self.refresh_map(&addr)?;
                    to = addr;
                }
                Redirect::Ask(addr) => {
                    to = addr;
                    asking = true;
                }
                Redirect::TryAgain => {
                    let left = self.deadline.saturating_duration_since(Instant::now());
                    std::thread::sleep(left.min(Duration::from_millis(20) * hops as u32));
                }
            }
        }
    }
}

impl ConnectionLike for Routed<'_> {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        let to = match split_packed(cmd) {
            Some(cmds) if cmds.len() == 1 => self.route(&cmds[0].1),
            _ => self.last.clone().unwrap_or_else(|| self.seed()),
        };
        self.one(cmd, to, 0)
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
                Some(Redirect::Moved(a)) => {
                    self.refresh_map(&a)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_redis_clusters_crc16_of_the_hash_tag() {
        // The values Redis documents (cluster spec) and `CLUSTER KEYSLOT` gives.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"sfx:org:{a}"), slot(b"sfx:lease:{a}"));
        assert_eq!(slot(b"sfx:org:{a}"), slot(b"a"));
        // An empty tag is no tag: the whole key counts.
        assert_eq!(slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % 16384);
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
    }

    #[test]
    fn the_key_of_each_command_the_store_sends() {
        let k = |a: &[&str]| {
            let v: Vec<&[u8]> = a.iter().map(|s| s.as_bytes()).collect();
            first_key(&v).map(|k| String::from_utf8_lossy(k).into_owned())
        };
        assert_eq!(k(&["GET", "sfx:default"]).as_deref(), Some("sfx:default"));
        assert_eq!(
            k(&["EVALSHA", "ab", "2", "x", "y", "z"]).as_deref(),
            Some("x")
        );
        assert_eq!(k(&["EVAL", "return 1", "0"]), None);
        assert_eq!(
            k(&["XREAD", "BLOCK", "5", "STREAMS", "s", "$"]).as_deref(),
            Some("s")
        );
        assert_eq!(k(&["SCRIPT", "LOAD", "return 1"]), None);
        assert_eq!(k(&["ping"]), None);
    }

    #[test]
    fn the_slot_map_is_read_from_cluster_slots_as_servers_send_it() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let node = |host: &str, port: i64, meta: Option<Value>| {
            let mut n = vec![bulk(host), Value::Int(port), bulk("id")];
            n.extend(meta);
            Value::Array(n)
        };
        let range = |a: i64, b: i64, n: Value| Value::Array(vec![Value::Int(a), Value::Int(b), n]);
        let named = Value::Array(vec![bulk("hostname"), bulk("node-2.example.com")]);
        let v = Value::Array(vec![
            range(0, 5460, node("10.0.0.1", 6379, None)),
            range(5461, 10922, node("10.0.0.2", 6379, Some(named))),
            range(10923, 16383, node("", 6380, None)),
            range(99, 20000, node("10.0.0.9", 1, None)),
        ]);
        let plain = SlotMap::parse(&v, "seed.example.com", false).unwrap();
        assert_eq!(plain.nodes(), 3);
        assert_eq!(plain.node(0), Some(&("10.0.0.1".to_string(), 6379)));
        assert_eq!(plain.node(5461), Some(&("10.0.0.2".to_string(), 6379)));
        // An empty address is the host the client connected to.
        assert_eq!(
            plain.node(16383),
            Some(&("seed.example.com".to_string(), 6380))
        );
        // With TLS the announced host name wins over the IP address (certificates name hosts).
        let tls = SlotMap::parse(&v, "seed.example.com", true).unwrap();
        assert_eq!(
            tls.node(6000),
            Some(&("node-2.example.com".to_string(), 6379))
        );
        assert_eq!(tls.node(0), Some(&("10.0.0.1".to_string(), 6379)));
        for bad in [
            Value::Nil,
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![]),
        ] {
            assert!(SlotMap::parse(&bad, "seed", false).is_none());
        }
    }

    #[test]
    fn packed_pipelines_split_into_their_commands() {
        let mut p = redis::pipe();
        p.cmd("GET")
            .arg("a")
            .cmd("HMGET")
            .arg("b")
            .arg("meta")
            .arg("v");
        let bytes = p.get_packed_pipeline();
        let cmds = split_packed(&bytes).unwrap();
        assert_eq!(cmds.len(), 2);
        assert_eq!(cmds[1].1, vec![&b"HMGET"[..], b"b", b"meta", b"v"]);
        assert_eq!(cmds[1].0.end, bytes.len());
        assert!(split_packed(b"*1\r\n$9\r\nPING").is_none());
        assert!(split_packed(b"+OK\r\n").is_none());
    }
}
