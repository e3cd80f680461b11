//! Hostile input, generated (issue #11): every flag that takes a value — found
//! in the clap definition, so a new flag is covered without anyone remembering
//! to add it — and every `SFX_*` variable sfx reads, each given values that are
//! huge, negative, empty, not numbers, control and bidi characters, odd URLs and
//! ports. The real binary runs against a fake Salesforce with an org logged in
//! beforehand; every run must end within a bound with an exit code of the
//! contract (0–6 or 130), never print "panicked", and leave the store readable
//! (`sfx orgs --json` succeeds).

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::CommandFactory;

use crate::common::*;

/// Every `SFX_*` variable sfx reads at run time. [`the_variable_list_is_complete`]
/// fails when src reads one that is not here.
const VARIABLES: &[&str] = &[
    "SFX_ACCESS_TOKEN",
    "SFX_AUTH_URL",
    "SFX_CLIENT_ID",
    "SFX_CLIENT_SECRET",
    "SFX_CREDENTIAL_STORE",
    "SFX_HOME",
    "SFX_INSTANCE_URL",
    "SFX_LOGIN_TIMEOUT",
    "SFX_LOGIN_URL",
    "SFX_NO_INPUT",
    "SFX_ORG",
    "SFX_REFRESH_TOKEN",
    "SFX_STORE",
    "SFX_STORE_KEY",
    "SFX_STORE_NAMESPACE",
    "SFX_TEST_NOW",
    "SFX_TIMEOUT",
    "SFX_WAIT",
    "SFX_WATCH_MAX_CHECK",
    "SFX_WATCH_MIN_CHECK",
];

/// Named in src but not read by the running binary.
const NOT_RUNTIME: &[(&str, &str)] = &[("SFX_VERSION", "read at compile time by env!()")];

/// How long one run may take before it counts as a hang.
const RUN_LIMIT: Duration = Duration::from_secs(20);

fn hostile_values(fake_url: &str) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> = [
        "",
        " ",
        "-",
        "--",
        "0",
        "-1",
        "-9223372036854775809",
        "18446744073709551616",
        "99999999999999999999999999999999",
        "1e400",
        "NaN",
        "300000000000y",
        "1h30",
        "abc",
        "\u{1b}[31mred\u{7}\r\n",
        "\u{202e}gnp.exe\u{2066}x\u{200f}",
        "a\tb\u{feff}c",
        "../../../../etc/passwd",
        "force://a:b:c@127.0.0.1:1",
        "force://::@",
        "http://127.0.0.1:1",
        "https://127.0.0.1:1",
        "http://[::1]:1/x?y#z",
        "http://127.0.0.1:99999",
        "http://10.0.0.1",
        "ftp://127.0.0.1",
        "https://",
        "https://user:pw@127.0.0.1:1",
        "javascript:alert(1)",
        "65536",
        "00D5g000004ABCD!AQ0fake.token",
        // Aliases that differ only in characters a file name might fold.
        "a+b",
        "a_b",
        "A.B",
        "env",
    ]
    .iter()
    .map(Into::into)
    .collect();
    v.push(format!("{fake_url}/services/oauth2?x=1").into());
    v.push("x".repeat(100_000).into());
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        v.push(std::ffi::OsString::from_vec(vec![0xff, 0xfe, b'a']));
    }
    v
}

/// `(subcommand, flag)` for every argument that takes a value: the root's own
/// (global) flags with every subcommand, and each subcommand's flags and
/// positionals. Hidden flags included.
fn value_flags() -> Vec<(String, Option<String>)> {
    let root = sfx::cli::Cli::command();
    let takes_value = |a: &clap::Arg| a.get_action().takes_values();
    let globals: Vec<String> = root
        .get_arguments()
        .filter(|a| takes_value(a))
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();
    let mut out = Vec::new();
    for sub in root.get_subcommands() {
        let name = sub.get_name().to_string();
        if name == "help" {
            continue;
        }
        for g in &globals {
            out.push((name.clone(), Some(g.clone())));
        }
        for a in sub.get_arguments().filter(|a| takes_value(a)) {
            if a.is_global_set() {
                continue;
            }
            match a.get_long() {
                Some(l) => out.push((name.clone(), Some(format!("--{l}")))),
                // `sfx exec -- CMD`: a hostile CMD is a command that cannot run,
                // and its exit code (126, 127, the command's own) is passed
                // through by design: tests/exec.rs pins those.
                None if a.is_positional() && name == "exec" => {}
                None if a.is_positional() => out.push((name.clone(), None)),
                None => {}
            }
        }
    }
    out
}

struct Case {
    args: Vec<std::ffi::OsString>,
    env: Vec<(String, std::ffi::OsString)>,
    what: String,
}

/// Run one case: a bounded time, an exit code of the contract, no panic.
fn run_case(t: &T, case: &Case) -> Result<(), String> {
    let err_path = t.dir.path().join("stderr");
    let err_file = std::fs::File::create(&err_path).map_err(|e| e.to_string())?;
    let mut cmd = t.std_sfx();
    cmd.args(&case.args)
        .env("SFX_TIMEOUT", "2s")
        .stdin(Stdio::null())
        .stderr(err_file);
    for (k, v) in &case.env {
        cmd.env(k, v);
    }
    // `watch` runs until its stdout closes: a closed pipe ends it at its first line.
    cmd.stdout(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{}: spawn: {e}", case.what))?;
    drop(child.stdout.take());
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if started.elapsed() > RUN_LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{}: still running after {RUN_LIMIT:?}", case.what));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("{}: wait: {e}", case.what)),
        }
    };
    let err = std::fs::read(&err_path).unwrap_or_default();
    let err = String::from_utf8_lossy(&err);
    if err.contains("panicked") {
        return Err(format!("{}: panicked: {err}", case.what));
    }
    // Whatever was typed, stderr cannot drive the terminal.
    if err.chars().any(|c| {
        (c.is_control() && c != '\n') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
    }) {
        return Err(format!("{}: control or bidi characters on stderr: {err:?}", case.what));
    }
    match status.code() {
        Some(0..=6 | 130) => Ok(()),
        code => Err(format!("{}: exit {code:?}: {err}", case.what)),
    }
}

fn store_readable(t: &T, after: &str) -> Result<(), String> {
    let out = t
        .sfx()
        .args(["orgs", "--json"])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "after {after}: `sfx orgs --json` failed: {}",
            text(&out.stderr)
        ));
    }
    // A case may have logged out the org: log in again so the next cases have one.
    if stdout_json(&out).as_array().is_some_and(|a| a.is_empty()) {
        t.login("prod");
    }
    Ok(())
}

fn shown(v: &std::ffi::OsStr) -> String {
    let s = v.to_string_lossy();
    let cut: String = s.chars().take(40).collect();
    format!("{cut:?}{}", if s.chars().count() > 40 { "…" } else { "" })
}

/// Run `cases` on `threads` threads, each with its own fake and store.
fn run_all(cases: Vec<Case>, threads: usize) -> Vec<String> {
    let queue = Arc::new(Mutex::new(cases));
    let failures = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (queue, failures) = (queue.clone(), failures.clone());
            s.spawn(move || {
                let t = T::new();
                t.login("prod");
                let url = t.fake.url();
                loop {
                    let Some(mut case) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    // `{fake}` in a value: this thread's fake.
                    for a in case
                        .args
                        .iter_mut()
                        .chain(case.env.iter_mut().map(|(_, v)| v))
                    {
                        if a == "{fake}" {
                            *a = url.clone().into();
                        }
                    }
                    // `sfx orgs --json` as a case is itself the store check.
                    let is_orgs = case.args.first().is_some_and(|a| a == "orgs");
                    let r = run_case(&t, &case).and_then(|()| {
                        if is_orgs {
                            Ok(())
                        } else {
                            store_readable(&t, &case.what)
                        }
                    });
                    if let Err(e) = r {
                        failures.lock().unwrap().push(e);
                    }
                }
            });
        }
    });
    Arc::try_unwrap(failures).unwrap().into_inner().unwrap()
}

fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8)
}

#[test]
fn every_flag_that_takes_a_value_survives_hostile_values() {
    let flags = value_flags();
    assert!(
        flags.len() > 40,
        "the clap walk found too few flags: {flags:?}"
    );
    for must in [
        "--timeout",
        "--session-timeout",
        "--within",
        "--min-valid",
        "--keepalive",
    ] {
        assert!(
            flags.iter().any(|(_, f)| f.as_deref() == Some(must)),
            "{must}"
        );
    }
    let values = hostile_values("{fake}");
    let mut cases = Vec::new();
    for (sub, flag) in &flags {
        for v in &values {
            let mut args: Vec<std::ffi::OsString> = vec![sub.into()];
            if let Some(f) = flag {
                args.push(f.into());
            }
            args.push(v.clone());
            cases.push(Case {
                what: format!("sfx {sub} {} {}", flag.as_deref().unwrap_or(""), shown(v)),
                args,
                env: vec![],
            });
        }
    }
    let n = cases.len();
    let failures = run_all(cases, threads());
    assert!(
        failures.is_empty(),
        "{} of {n} runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_sfx_variable_survives_hostile_values() {
    let values = hostile_values("{fake}");
    // Reading (`orgs`), the network (`expires`: introspection; `token`: maybe a
    // refresh), the long-running loop (`watch`); `login` for the login variables.
    let commands: &[&[&str]] = &[&["orgs"], &["expires"], &["token"], &["watch", "--json"]];
    let mut cases = Vec::new();
    for var in VARIABLES {
        for v in &values {
            let login: &[&[&str]] = &[&["login", "--auth-url", "-"], &["login", "--device"]];
            let login_var = matches!(
                *var,
                "SFX_LOGIN_TIMEOUT" | "SFX_CLIENT_ID" | "SFX_LOGIN_URL"
            );
            for cmd in commands.iter().chain(login.iter().filter(|_| login_var)) {
                // The variables that make an environment org need their partners
                // for the hostile one to be reached.
                let mut env = vec![(var.to_string(), v.clone())];
                match *var {
                    "SFX_INSTANCE_URL" | "SFX_CLIENT_ID" | "SFX_CLIENT_SECRET" => {
                        env.push(("SFX_ACCESS_TOKEN".into(), "00D5g000004ABCD!AQ0x".into()));
                        if *var != "SFX_INSTANCE_URL" {
                            env.push(("SFX_INSTANCE_URL".into(), "{fake}".into()));
                        }
                    }
                    "SFX_REFRESH_TOKEN" | "SFX_LOGIN_URL" => {
                        env.push(("SFX_CLIENT_ID".into(), DEFAULT_CLIENT_ID.into()));
                        if *var == "SFX_LOGIN_URL" {
                            env.push(("SFX_REFRESH_TOKEN".into(), "5Aep861fake".into()));
                        }
                    }
                    _ => {}
                }
                cases.push(Case {
                    what: format!("{var}={} sfx {}", shown(v), cmd.join(" ")),
                    args: cmd.iter().map(Into::into).collect(),
                    env,
                });
            }
        }
    }
    let n = cases.len();
    let failures = run_all(cases, threads());
    assert!(
        failures.is_empty(),
        "{} of {n} runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A new `SFX_*` variable read in src must join [`VARIABLES`] (and so the test above).
#[test]
fn the_variable_list_is_complete() {
    fn walk(dir: &Path, re: &regex::Regex, found: &mut std::collections::BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, re, found);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let src = std::fs::read_to_string(&p).unwrap();
                // A variable is read through a string literal that is exactly its
                // name (`env::var("SFX_X")`, `env = "SFX_X"`); messages that merely
                // mention one hold longer strings.
                for m in re.captures_iter(&src) {
                    found.insert(m[1].to_string());
                }
            }
        }
    }
    let mut found = std::collections::BTreeSet::new();
    let re = regex::Regex::new(r#""(SFX_[A-Z0-9_]+)""#).unwrap();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &re,
        &mut found,
    );
    let missing: Vec<&String> = found
        .iter()
        .filter(|v| !VARIABLES.contains(&v.as_str()))
        .filter(|v| !NOT_RUNTIME.iter().any(|(n, _)| n == v))
        .collect();
    assert!(
        missing.is_empty(),
        "src reads {missing:?}: add them to VARIABLES in tests/hostile.rs"
    );
    let stale: Vec<&&str> = VARIABLES.iter().filter(|v| !found.contains(**v)).collect();
    assert!(stale.is_empty(), "no longer read by src: {stale:?}");
}
