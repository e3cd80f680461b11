//! The router on a real three-node cluster.

use super::*;
use std::process::{Child, Command, Stdio};

/// Three loopback cluster nodes (no password), killed on drop.
struct Nodes(Vec<Child>, Vec<u16>, tempfile::TempDir);

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn cluster() -> Nodes {
    let dir = tempfile::tempdir().unwrap();
    let mut n = Nodes(Vec::new(), Vec::new(), dir);
    while n.1.len() < 3 {
        // Below the ephemeral range, bus port (+10000) included: no other
        // test's `127.0.0.1:0` lands on a node or its bus.
        use std::hash::{BuildHasher, RandomState};
        let p = 20_000 + (RandomState::new().hash_one(Instant::now()) % 2_700) as u16;
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if n.1.contains(&p) || !free(p) || !free(p + 10_000) {
            continue;
        }
        let d = n.2.path().join(p.to_string());
        std::fs::create_dir_all(&d).unwrap();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &p.to_string()])
            .args([
                "--cluster-enabled",
                "yes",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&d)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is not installed: run scripts/test.sh");
        n.0.push(child);
        n.1.push(p);
    }
    let started = Instant::now();
    for &p in &n.1 {
        while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "a node did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let out = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(n.1.iter().map(|p| format!("127.0.0.1:{p}")))
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for &p in &n.1 {
        loop {
            let o = Command::new("redis-cli")
                .args(["-p", &p.to_string(), "CLUSTER", "INFO"])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok") {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "cluster_state:ok"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    n
}

#[test]
fn one_xread_of_streams_on_several_nodes_blocks_on_each_and_joins_the_answers() {
    let nodes = cluster();
    let url = match super::super::url::parse(
        Some(&format!("redis://127.0.0.1:{}", nodes.1[0])),
        "--store",
    )
    .unwrap()
    {
        super::super::StoreChoice::Shared(u) => u,
        super::super::StoreChoice::Local => unreachable!(),
    };
    let pools = Pools::default();
    let keys: Vec<String> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .map(|a| format!("sfx:req:{{{a}}}"))
        .collect();
    let xread = |block: u64| {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(10)
            .arg("BLOCK")
            .arg(block)
            .arg("STREAMS");
        for k in &keys {
            cmd.arg(k);
        }
        for _ in &keys {
            cmd.arg("0");
        }
        cmd
    };
    let mut r = Routed::new(&url, &pools, Instant::now() + Duration::from_secs(5));
    for k in &keys {
        redis::cmd("XADD")
            .arg(k)
            .arg("*")
            .arg("k")
            .arg(k)
            .query::<String>(&mut r)
            .unwrap();
    }
    // The first read of a fresh process meets CROSSSLOT, reads the map and
    // splits. A split read returns with the first slot that has entries (and
    // whatever else had come back by then), so reading again from the start
    // brings every stream's entry back within a few reads.
    let fresh = Pools::default();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let mut r2 = Routed::new(&url, &fresh, Instant::now() + Duration::from_secs(5));
        let v: Value = xread(100).query(&mut r2).unwrap();
        let Value::Array(streams) = v else {
            panic!("{v:?}")
        };
        assert!(
            !streams.is_empty(),
            "every stream has an entry: {streams:?}"
        );
        for s in streams {
            let Value::Array(pair) = s else {
                panic!("{s:?}")
            };
            let Some(Value::BulkString(name)) = pair.first() else {
                panic!("{pair:?}")
            };
            seen.insert(String::from_utf8_lossy(name).into_owned());
        }
        if seen.len() == keys.len() {
            break;
        }
    }
    assert_eq!(seen.len(), keys.len(), "{seen:?}");
    let nodes_used: std::collections::HashSet<_> = keys
        .iter()
        .filter_map(|k| fresh.map().unwrap().node(slot(k.as_bytes())).cloned())
        .collect();
    assert!(nodes_used.len() >= 2, "the streams live on several nodes");
    // Nothing new: every node blocks side by side, the call returns nil
    // after about one BLOCK (not one per node), within the deadline.
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("BLOCK").arg(300).arg("STREAMS");
    for k in &keys {
        cmd.arg(k);
    }
    for _ in &keys {
        cmd.arg("$");
    }
    let mut r2 = Routed::new(&url, &fresh, Instant::now() + Duration::from_secs(5));
    let started = Instant::now();
    let v: Value = cmd.query(&mut r2).unwrap();
    assert_eq!(v, Value::Nil);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(700),
        "{took:?}"
    );
}

#[test]
fn a_call_that_failed_forgets_the_slot_map_so_the_next_learns_it_again() {
    // A node gone (a failover): the map that names it would send every call
    // of a long `sfx watch` there for ever.
    let gone = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let url = match super::super::url::parse(Some(&format!("redis://127.0.0.1:{gone}")), "--store")
        .unwrap()
    {
        super::super::StoreChoice::Shared(u) => u,
        super::super::StoreChoice::Local => unreachable!(),
    };
    let pools = Pools::default();
    let mut map = SlotMap::empty();
    for s in 0..16384u16 {
        map.set(s, ("127.0.0.1".into(), gone));
    }
    *pools.map.lock().unwrap() = Some(Arc::new(map));
    let mut r = Routed::new(&url, &pools, Instant::now() + Duration::from_secs(2));
    let e = redis::cmd("GET")
        .arg("k")
        .query::<Option<String>>(&mut r)
        .unwrap_err();
    assert!(e.is_connection_refusal() || e.is_io_error(), "{e}");
    r.finish(false);
    assert!(pools.map().is_none());
}
