//! Every shell example in README.md and docs/*.md works as written (issue #21):
//! the fenced `sh`, `bash` and `console` blocks are extracted and each block runs
//! as one bash script (`set -euo pipefail`, so an undefined variable fails too)
//! against the in-repo fake Salesforce, with `sfx` on PATH, a throw-away SFX_HOME
//! holding the orgs the examples name (`prod`, the default, and `agent-sandbox`),
//! and the files they read in the working directory.
//!
//! A command that cannot run here is replaced by `:` when it matches an entry of
//! [`SKIP`], which says why; an entry that no longer matches anything fails the
//! test, so the list cannot rot. A failure names the example as `file:line`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// `(a text the command contains, why it cannot run here)`.
const SKIP: &[(&str, &str)] = &[
    (
        "bash scripts/",
        "the set-up scripts build a release binary and run this very suite",
    ),
    (
        "cargo install",
        "installs into ~/.cargo; the build itself is what this suite tests",
    ),
    (
        "cargo +nightly fuzz",
        "needs a nightly toolchain and cargo-fuzz",
    ),
    (
        "sfx login --alias prod",
        "a browser login at login.salesforce.com (the web flow runs against the fake in tests/flows.rs)",
    ),
    (
        "sfx login --insecure-storage --alias prod",
        "a browser login at login.salesforce.com (the file store is what every test here uses)",
    ),
    (
        "--client-id 3MVG9...",
        "needs a connected app at Salesforce (each flow runs against the fake in tests/flows.rs)",
    ),
    (
        "sfx login --from-sf prod",
        "needs a login of the Salesforce CLI (tests/sfcli.rs, and the real `sf` in scripts/test.sh)",
    ),
    (
        "-- sf ",
        "needs the Salesforce CLI and a project (the real `sf` runs in scripts/test.sh)",
    ),
    ("gh secret set", "needs GitHub"),
    (
        "releases/latest/download/install.sh",
        "downloads from GitHub releases (scripts/test-dist.sh runs install.sh against a local server, a tampered archive included)",
    ),
    (
        "npm install -g @sfx-cli/sfx",
        "installs from the npm registry (scripts/test-dist.sh installs the packages built from this binary)",
    ),
    (
        "SHA256SUMS",
        "needs a downloaded release (scripts/test-dist.sh verifies sums, and refuses a tampered archive)",
    ),
    (
        "gh attestation verify",
        "needs GitHub and a published release",
    ),
    (
        "cargo binstall",
        "needs cargo-binstall and a GitHub release (scripts/test-dist.sh checks the binstall templates against the archive names)",
    ),
    (
        "export SFX_AUTH_URL=…",
        "a placeholder for a CI secret (tests/childenv.rs runs these lines with a real auth URL)",
    ),
    (
        "redis.internal",
        "a placeholder server and password (tests/shared.rs runs these commands against a real Redis)",
    ),
    (
        "sfx watch  ",
        "runs until stopped (tests/watch.rs and tests/terminal.rs run it)",
    ),
    (
        "sfx watch --all  ",
        "runs until stopped (tests/watch.rs and tests/terminal.rs run it)",
    ),
    (
        "sfx watch --all --json  ",
        "runs until stopped (tests/watch.rs runs it)",
    ),
    (
        "sfx watch --exec ./push-token.sh",
        "runs until stopped (tests/watch.rs runs --exec)",
    ),
    (
        "Account/001…",
        "an elided record id, and the fake neither updates nor deletes records",
    ),
    ("'/services/data/{version}/query?q=…'", "an elided query"),
    ("sobjects/Task", "the fake creates Accounts only"),
];

/// One fenced block: where it starts and its commands with their lines.
struct Example {
    file: String,
    line: usize,
    commands: Vec<(usize, String)>,
}

fn examples(root: &Path) -> Vec<Example> {
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut out = Vec::new();
    for f in files {
        let name = f.strip_prefix(root).unwrap().display().to_string();
        let text = std::fs::read_to_string(&f).unwrap();
        let mut block: Option<(Example, bool)> = None;
        let mut pending: Option<(usize, String)> = None;
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            if let Some((ex, console)) = block.as_mut() {
                if line.starts_with("```") {
                    let (ex, _) = block.take().unwrap();
                    out.push(ex);
                    continue;
                }
                let cmd = if *console {
                    match line.strip_prefix("$ ") {
                        Some(c) => Some(c),
                        None if pending.is_some() => Some(line),
                        None => None, // output
                    }
                } else {
                    Some(line)
                };
                let Some(cmd) = cmd else { continue };
                let (start, mut joined) = pending.take().unwrap_or((n, String::new()));
                if let Some(head) = cmd.strip_suffix('\\') {
                    joined.push_str(head);
                    joined.push(' ');
                    pending = Some((start, joined));
                } else {
                    joined.push_str(cmd);
                    ex.commands.push((start, joined));
                }
                continue;
            }
            let lang = line.strip_prefix("```").map(str::trim);
            if let Some(lang @ ("sh" | "bash" | "console")) = lang {
                block = Some((
                    Example {
                        file: name.clone(),
                        line: n,
                        commands: Vec::new(),
                    },
                    lang == "console",
                ));
            }
        }
    }
    out
}

/// The working directory of one example: the files examples read.
fn workdir(t: &T, dir: &Path) {
    std::fs::write(dir.join("auth-url.txt"), t.auth_url()).unwrap();
    std::fs::write(dir.join("acme.json"), r#"{"Name":"Acme"}"#).unwrap();
    let hook = dir.join("push-token.sh");
    std::fs::write(&hook, "#!/bin/sh\nexit 0\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn every_shell_example_in_the_readme_and_docs_runs_against_the_fake() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let all = examples(root);
    assert!(all.len() >= 20, "found only {} examples", all.len());
    let bin = Path::new(env!("CARGO_BIN_EXE_sfx")).parent().unwrap();
    let mut used = vec![false; SKIP.len()];
    let mut failures = Vec::new();
    let mut ran = 0;
    for ex in &all {
        let t = T::new();
        t.sfx()
            .args([
                "login",
                "--auth-url",
                "-",
                "--alias",
                "prod",
                "--set-default",
            ])
            .write_stdin(t.auth_url())
            .assert()
            .success();
        t.login("agent-sandbox");
        let work = t.dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        workdir(&t, &work);
        // Script line k+2 is command k (after the `set` and `trap` lines).
        let mut script = String::from(
            "set -euo pipefail\ntrap 'echo \"example-failed-at-line $LINENO (exit $?)\" >&2' ERR\n",
        );
        let mut runnable = 0;
        for (_, cmd) in &ex.commands {
            match SKIP.iter().position(|(pat, _)| cmd.contains(pat)) {
                Some(i) => {
                    used[i] = true;
                    script.push_str(": skipped\n");
                }
                None => {
                    runnable += usize::from(!cmd.trim().is_empty() && !cmd.trim().starts_with('#'));
                    script.push_str(cmd);
                    script.push('\n');
                }
            }
        }
        if runnable == 0 {
            continue;
        }
        ran += 1;
        let mut child = Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &script])
            .current_dir(&work)
            .env_clear()
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .env("HOME", t.dir.path())
            .env("SFX_HOME", t.home())
            .env("SFX_CREDENTIAL_STORE", "file")
            .env("SFX_NO_INPUT", "1")
            .env("TZ", TZ)
            .env("LC_ALL", "C.UTF-8")
            // What a CI job or an agent's runtime provides to the examples that say so.
            .env("RUNNER_TEMP", &work)
            .env("SALESFORCE_AUTH_URL", t.auth_url())
            .env("METHOD", "GET")
            .env("API_PATH", "/services/data/{version}/limits")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            continue;
        }
        let err = text(&out.stderr);
        let at = err
            .lines()
            .find_map(|l| l.strip_prefix("example-failed-at-line "))
            .and_then(|l| l.split(' ').next()?.parse::<usize>().ok())
            .and_then(|k| ex.commands.get(k.checked_sub(3)?))
            .map_or(ex.line, |(line, _)| *line);
        let cmd = ex
            .commands
            .iter()
            .find(|(l, _)| *l == at)
            .map_or("(the block)", |(_, c)| c.as_str());
        failures.push(format!(
            "{}:{at}: `{cmd}` failed ({}):\n{}{}",
            ex.file,
            out.status,
            text(&out.stdout),
            err
        ));
    }
    for ((pat, why), used) in SKIP.iter().zip(&used) {
        assert!(
            used,
            "the skip entry `{pat}` ({why}) matches no example any more: remove it"
        );
    }
    eprintln!("ran {ran} examples of {}", all.len());
    assert!(
        failures.is_empty(),
        "{} example(s) do not work as written:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every relative link of README.md, CONTRIBUTING.md and docs/ names a file that
/// exists, and an anchor that one of its headings makes (the guides moved out of
/// the README: no link may point at a section that is no longer there).
#[test]
fn every_relative_link_in_the_docs_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md"), root.join("CONTRIBUTING.md")];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p);
        }
    }
    let link = regex::Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let heading = regex::Regex::new(r"(?m)^#+ (.*)$").unwrap();
    let anchors_of = |p: &Path| -> Vec<String> {
        let text = std::fs::read_to_string(p).unwrap_or_default();
        heading
            .captures_iter(&text)
            .map(|c| anchor(&c[1]))
            .collect()
    };
    let mut bad = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            for c in link.captures_iter(line) {
                let l = &c[1];
                if l.starts_with("http://") || l.starts_with("https://") || l.starts_with("mailto:")
                {
                    continue;
                }
                let (path, frag) = l.split_once('#').unwrap_or((l, ""));
                let target = if path.is_empty() {
                    f.clone()
                } else {
                    f.parent().unwrap().join(path)
                };
                let at = format!("{}:{}", f.strip_prefix(root).unwrap().display(), n + 1);
                if !target.exists() {
                    bad.push(format!("{at}: `{l}`: no such file"));
                } else if !frag.is_empty()
                    && target.extension().is_some_and(|x| x == "md")
                    && !anchors_of(&target).iter().any(|a| a == frag)
                {
                    bad.push(format!("{at}: `{l}`: no such heading"));
                }
            }
        }
    }
    assert!(bad.is_empty(), "broken links:\n{}", bad.join("\n"));
}
