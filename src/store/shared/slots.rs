//! The arithmetic of a Redis cluster: the slot of a key (CRC16 of the key or of
//! its `{hash tag}`), the key of a command, the commands of a packed pipeline,
//! and the slot map read from `CLUSTER SLOTS`.

use redis::Value;

use super::cluster::Addr;

/// The slots of a Redis cluster.
pub const SLOTS: usize = 16384;

/// Which node serves each slot.
#[derive(Debug, Clone)]
pub struct SlotMap {
    nodes: Vec<Addr>,
    /// Index into `nodes` per slot; `u16::MAX`: no node serves it.
    owner: Vec<u16>,
}

impl SlotMap {
    pub fn node(&self, slot: u16) -> Option<&Addr> {
        self.owner
            .get(usize::from(slot))
            .and_then(|&i| self.nodes.get(usize::from(i)))
    }

    /// How many nodes serve slots.
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// No slot known yet.
    pub fn empty() -> SlotMap {
        SlotMap {
            nodes: Vec::new(),
            owner: vec![u16::MAX; SLOTS],
        }
    }

    /// `slot` is served by `addr` (learnt from a `MOVED`).
    pub fn set(&mut self, slot: u16, addr: Addr) {
        let i = match self.nodes.iter().position(|n| *n == addr) {
            Some(i) => i,
            // A server naming ever new nodes cannot grow the map for ever.
            None if self.nodes.len() >= usize::from(u16::MAX) - 1 => return,
            None => {
                self.nodes.push(addr);
                self.nodes.len() - 1
            }
        };
        if let Some(o) = self.owner.get_mut(usize::from(slot)) {
            *o = i as u16;
        }
    }

    /// Read from a `CLUSTER SLOTS` answer; `seed` stands in for a node whose
    /// address is given as empty ("the host you connected to").
    pub fn parse(v: &Value, seed: &str, tls: bool) -> Option<SlotMap> {
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
pub fn first_key<'a>(args: &[&'a [u8]]) -> Option<&'a [u8]> {
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
pub fn split_packed(bytes: &[u8]) -> Option<Vec<Packed<'_>>> {
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
        // Learnt from redirects, slot by slot (a user without CLUSTER SLOTS).
        let mut m = SlotMap::empty();
        assert_eq!((m.nodes(), m.node(7)), (0, None));
        m.set(7, ("10.0.0.3".into(), 7000));
        m.set(8, ("10.0.0.3".into(), 7000));
        assert_eq!(m.nodes(), 1);
        assert_eq!(m.node(8), Some(&("10.0.0.3".into(), 7000)));
        assert_eq!(m.node(9), None);
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
