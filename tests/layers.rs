//! Layers point one way (issue #12): the import graph of `src/` has no circles,
//! and nothing below imports from above.
//!
//! Reads every `src/**/*.rs`, collects its `crate::X` paths (comments left out)
//! as edges between top-level modules, and — inside `salesforce/` and `store/`,
//! where the old circles were — between their submodules too (`crate::store::x`
//! and `super::x`). Layers, lowest first:
//!
//! 0. utilities: `error`, `exit`, `secret`, `timefmt`, `text`, `clock`, `messages`,
//!    `limits`, `backoff`;
//! 1. `salesforce`, `store`, `sfcli` (the Salesforce CLI's files), `metrics` (what
//!    `sfx watch --listen` exposes);
//! 2. `lifecycle`;
//! 3. the command layer: `commands` (with `login/from_sf.rs` and `login/migrate.rs`,
//!    modes of `login`), `context`, `output`, `cli`, `generate`, `app`.
//!
//! CONTRIBUTING.md draws the same map, file by file.
//!
//! And one owner of stderr (architecture rule 16): only `src/messages.rs` writes
//! to it.
//!
//! Run alone: `cargo test --test integration layers::`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("exit", 0),
    ("secret", 0),
    ("timefmt", 0),
    ("text", 0),
    ("clock", 0),
    ("messages", 0),
    ("limits", 0),
    ("backoff", 0),
    ("salesforce", 1),
    ("store", 1),
    ("sfcli", 1),
    ("metrics", 1),
    ("lifecycle", 2),
    ("commands", 3),
    ("context", 3),
    ("output", 3),
    ("cli", 3),
    ("generate", 3),
    ("app", 3),
    ("fuzzing", 3),
];

/// Layers whose submodules must not form circles among themselves.
const SPLIT: &[&str] = &["salesforce", "store"];

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every `src/**/*.rs` as (its path under `src/` with `/` separators, its text).
fn src_texts() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    paths
        .iter()
        .map(|p| {
            (
                p.strip_prefix(&src)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/"),
                std::fs::read_to_string(p).unwrap(),
            )
        })
        .collect()
}

/// The code of a file without its comments (doc links are not imports).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            // Not inside a string literal on that line (good enough for this code base).
            Some(i) if l[..i].matches('"').count() % 2 == 0 => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Identifiers following `prefix` (`crate::` → `store`, `salesforce`, …).
fn after(code: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c}`
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let id: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !id.is_empty() {
                    out.push(id);
                }
            }
            continue;
        }
        let id: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !id.is_empty() {
            out.push(id);
        }
    }
    out
}

struct Graphs {
    top: Graph,
    sub: BTreeMap<&'static str, Graph>,
}

fn graphs() -> Graphs {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut g = Graphs {
        top: Graph::new(),
        sub: SPLIT.iter().map(|s| (*s, Graph::new())).collect(),
    };
    for f in files {
        let rel = f.strip_prefix(&src).unwrap().with_extension("");
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let top = parts[0].clone();
        if top == "lib" || top == "main" {
            continue; // the crate root declares modules; main uses the library
        }
        let code = code(&std::fs::read_to_string(&f).unwrap());
        for to in after(&code, "crate::") {
            if to != top {
                g.top.entry(top.clone()).or_default().insert(to);
            }
        }
        // Submodule edges inside a split layer (`mod.rs` is the facade: skipped).
        if let Some(layer) = SPLIT.iter().find(|s| **s == top)
            && parts.len() > 1
            && parts[1] != "mod"
        {
            let me = parts[1].clone();
            let subs = submodules(&src.join(layer));
            let sub = g.sub.get_mut(layer).unwrap();
            let mut targets = after(&code, &format!("crate::{layer}::"));
            if parts.len() == 2 {
                targets.extend(after(&code, "super::"));
            }
            for to in targets {
                if to != me && subs.contains(&to) {
                    sub.entry(me.clone()).or_default().insert(to);
                }
            }
        }
    }
    g
}

fn submodules(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|s| s != "mod")
        .collect()
}

/// A circle in `g`, as a path `a -> b -> … -> a`, if there is one.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &Graph,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(1) => {
                let i = path.iter().position(|p| p == n).unwrap();
                let mut c = path[i..].to_vec();
                c.push(n.to_string());
                return Some(c);
            }
            Some(_) => return None,
            None => {}
        }
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if let Some(c) = visit(n, g, &mut state, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

#[test]
fn the_import_graph_of_src_has_no_circles() {
    let g = graphs();
    assert!(!g.top.is_empty(), "no edges found: the scan is broken");
    if let Some(c) = find_cycle(&g.top) {
        panic!("circle between modules: {}", c.join(" -> "));
    }
    for (layer, sub) in &g.sub {
        if let Some(c) = find_cycle(sub) {
            panic!("circle inside {layer}/: {}", c.join(" -> "));
        }
    }
}

#[test]
fn nothing_below_imports_from_above() {
    let rank: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let g = graphs();
    let mut wrong = Vec::new();
    for (from, tos) in &g.top {
        let Some(&rf) = rank.get(from.as_str()) else {
            wrong.push(format!(
                "{from} is in no layer: add it to LAYERS in tests/layers.rs"
            ));
            continue;
        };
        for to in tos {
            match rank.get(to.as_str()) {
                Some(&rt) if rt > rf => {
                    wrong.push(format!("{from} (layer {rf}) imports {to} (layer {rt})"))
                }
                Some(_) => {}
                None => wrong.push(format!(
                    "{to} is in no layer: add it to LAYERS in tests/layers.rs"
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_checker_sees_a_circle_and_a_grouped_import() {
    // The checker itself can fail: a planted circle is found…
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&g).unwrap().join(" -> "), "a -> b -> a");
    // …and every import form is read, comments are not.
    let c = code(
        "use crate::{store, text::sanitize};\n/// [`crate::app`]\nlet x = crate::clock::SystemClock; // crate::cli",
    );
    assert_eq!(after(&c, "crate::"), ["store", "text", "clock"]);
}

/// Ways to reach stderr without going through `src/messages.rs`.
const STDERR_WRITES: &[&str] = &["eprint", "stderr()", "io::stderr", "dbg!("];

fn stderr_writers(files: &[(String, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (name, text) in files {
        if name == "messages.rs" {
            continue;
        }
        for (i, line) in code(text).lines().enumerate() {
            if STDERR_WRITES.iter().any(|w| line.contains(w)) {
                found.push(format!("src/{name}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn only_the_messages_module_writes_to_stderr() {
    let files = src_texts();
    assert!(files.iter().any(|(n, _)| n == "messages.rs"));
    let found = stderr_writers(&files);
    assert!(
        found.is_empty(),
        "write to stderr through crate::messages (architecture rule 16):\n{}",
        found.join("\n")
    );
    // The check itself can fail: planted writes are found, a comment is not.
    let planted = vec![
        (
            "a.rs".to_string(),
            "fn f() { eprintln!(\"x\"); }".to_string(),
        ),
        (
            "b.rs".to_string(),
            "let _ = writeln!(std::io::stderr(), \"x\");".to_string(),
        ),
        ("c.rs".to_string(), "// eprintln! in a comment".to_string()),
        ("messages.rs".to_string(), "eprintln!(\"x\");".to_string()),
    ];
    let found = stderr_writers(&planted);
    assert_eq!(found.len(), 2, "{found:?}");
}

/// What a command must not name (issue #23): commands see one `dyn OrgStore`
/// (`ctx.orgs()`, `ctx.stored_orgs()`), never a backend. `doctor` and
/// `login --migrate`, which are about backends, reach them through
/// `ctx.backends()`; no other command may call that either.
const BACKEND_NAMES: &[&str] = &[
    "LocalStore",
    "SharedStore",
    "EnvStore",
    "MemoryStore",
    "store::local::",
    "store::shared::",
    "store::env::",
    "store::memory::",
    "store::keychain",
    "store::file::",
    ".is_env()",
    ".backends()",
];

/// The commands that are about backends.
const ABOUT_BACKENDS: &[&str] = &["commands/doctor.rs", "commands/login/migrate.rs"];

fn backend_namers(files: &[(String, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (name, text) in files {
        if !name.starts_with("commands/") || ABOUT_BACKENDS.contains(&name.as_str()) {
            continue;
        }
        for (i, line) in code(text).lines().enumerate() {
            if let Some(b) = BACKEND_NAMES.iter().find(|b| line.contains(*b)) {
                found.push(format!("src/{name}:{}: names {b}: {}", i + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn commands_name_no_store_backend() {
    let files = src_texts();
    assert!(files.iter().any(|(n, _)| n == "commands/doctor.rs"));
    let found = backend_namers(&files);
    assert!(
        found.is_empty(),
        "a command names a store backend; go through the one handle (`ctx.orgs()` / `ctx.stored_orgs()`, an `OrgStore` method) instead:\n{}",
        found.join("\n")
    );
    // The check itself can fail: planted names are found; a comment, a file
    // outside commands/ and the commands about backends are not.
    let planted = vec![
        (
            "commands/a.rs".to_string(),
            "let s: &LocalStore = x;".to_string(),
        ),
        (
            "commands/watch/b.rs".to_string(),
            "if org.is_env() {}".to_string(),
        ),
        (
            "commands/c.rs".to_string(),
            "use crate::store::shared::Answer;".to_string(),
        ),
        (
            "commands/d.rs".to_string(),
            "// SharedStore in a comment".to_string(),
        ),
        (
            "context.rs".to_string(),
            "let s = SharedStore::new();".to_string(),
        ),
        (
            "commands/doctor.rs".to_string(),
            "let b = ctx.backends();".to_string(),
        ),
    ];
    let found = backend_namers(&planted);
    assert_eq!(found.len(), 3, "{found:?}");
}

/// No store prints (the `OrgStore` contract, issue #23): what a store has to
/// say (a lock wait) goes up to its caller, which prints it through
/// `crate::messages`.
fn store_printers(files: &[(String, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (name, text) in files {
        if !name.starts_with("store/") {
            continue;
        }
        for (i, line) in code(text).lines().enumerate() {
            if line.contains("messages::") {
                found.push(format!("src/{name}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn no_store_prints() {
    let files = src_texts();
    assert!(files.iter().any(|(n, _)| n == "store/lock.rs"));
    let found = store_printers(&files);
    assert!(
        found.is_empty(),
        "a store prints; hand the note up (store::Notes) and let the command layer print it:\n{}",
        found.join("\n")
    );
    let planted = vec![
        (
            "store/a.rs".to_string(),
            "crate::messages::say(\"x\");".to_string(),
        ),
        (
            "store/shared/b.rs".to_string(),
            "use crate::messages::note;".to_string(),
        ),
        (
            "store/c.rs".to_string(),
            "// crate::messages::say in a comment".to_string(),
        ),
        (
            "context.rs".to_string(),
            "crate::messages::say(\"x\");".to_string(),
        ),
    ];
    assert_eq!(store_printers(&planted).len(), 2);
}
