//! The surface a new user meets first (issue #21): every `--help` says what the
//! binary does, man pages render cleanly at 80 columns, and `-o` completes the
//! stored aliases.

use crate::common::*;

fn help(t: &T, args: &[&str]) -> String {
    let out = t.sfx().args(args).env("COLUMNS", "120").output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// The options of one heading (`Options:`, `Global options:`) in a `--help`.
fn section<'a>(help: &'a str, heading: &str) -> &'a str {
    let start = help
        .find(&format!("\n{heading}:\n"))
        .unwrap_or_else(|| panic!("no `{heading}:` in\n{help}"));
    let rest = &help[start + heading.len() + 3..];
    let end = rest.find("\n\n\n").or_else(|| {
        rest.lines()
            .position(|l| !l.is_empty() && !l.starts_with(' '))
            .map(|n| rest.lines().take(n).map(|l| l.len() + 1).sum())
    });
    &rest[..end.unwrap_or(rest.len())]
}

#[test]
fn api_and_exec_help_do_not_offer_json_which_they_refuse() {
    let t = T::new();
    t.fake.expect_no_requests();
    for cmd in ["api", "exec"] {
        for flag in ["--help", "-h"] {
            let h = help(&t, &[cmd, flag]);
            assert!(
                !h.contains("--json"),
                "sfx {cmd} {flag} offers --json:\n{h}"
            );
        }
    }
    // And the behaviour agrees: --json is a usage error that says why.
    let out = t
        .sfx()
        .args(["api", "--json", "/services/data/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--json does not apply to `sfx api`"));
}

#[test]
fn exec_help_says_what_quiet_does() {
    let t = T::new();
    t.fake.expect_no_requests();
    let h = help(&t, &["exec", "--help"]);
    let q = h
        .split("-q, --quiet")
        .nth(1)
        .expect("exec --help lists -q")
        .split("\n\n")
        .next()
        .unwrap();
    assert!(
        !q.contains("Print nothing on stdout"),
        "exec's -q claims to silence stdout, yet the child's output is printed:{q}"
    );
    assert!(q.contains("passed through"), "{q}");
}

#[test]
fn global_options_sit_under_their_own_heading() {
    let t = T::new();
    t.fake.expect_no_requests();
    for args in [&["expires", "--help"][..], &["orgs", "-h"], &["--help"]] {
        let h = help(&t, args);
        let own = section(&h, "Options");
        let global = section(&h, "Global options");
        for g in [
            "--org",
            "--json",
            "--quiet",
            "--verbose",
            "--color",
            "--store",
            "--timeout",
        ] {
            assert!(
                global.contains(g),
                "{args:?}: {g} not under Global options:\n{h}"
            );
            assert!(
                !own.contains(g),
                "{args:?}: {g} among the command's own options:\n{h}"
            );
        }
    }
}

#[test]
fn completions_help_offers_no_org_store_or_timeout() {
    let t = T::new();
    t.fake.expect_no_requests();
    let h = help(&t, &["completions", "--help"]);
    for flag in ["--org", "--store", "--timeout", "--json"] {
        assert!(!h.contains(flag), "completions --help offers {flag}:\n{h}");
    }
}

#[test]
fn help_of_help_works() {
    let t = T::new();
    t.fake.expect_no_requests();
    for flag in ["--help", "-h"] {
        let h = help(&t, &["help", flag]);
        assert!(h.contains("Usage: sfx help"), "{h}");
    }
}

#[test]
fn help_wraps_at_the_terminal_width_not_at_100() {
    let t = T::new();
    t.fake.expect_no_requests();
    let h = help(&t, &["login", "--help"]);
    let widest = h.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(
        widest > 100 && widest <= 120,
        "widest help line at COLUMNS=120 is {widest}"
    );
}

/// `MANWIDTH=80 man -l` of every page: the examples in an EXAMPLES section, one
/// command per line or continued with ` \`, never hyphenated, no EXTRA section,
/// no page named that does not exist.
#[test]
fn man_pages_render_examples_unhyphenated_at_80_columns() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let mut pages: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pages.sort();
    assert!(pages.len() >= 13);
    let names: Vec<String> = pages
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let refs = regex::Regex::new(r"(sfx-[a-z]+)\(1\)").unwrap();
    for page in &pages {
        let out = std::process::Command::new("man")
            .args(["-l", "--nj"])
            .arg(page)
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("man (man-db) is installed: scripts/test.sh installs it");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let shown = text(&out.stdout);
        let name = page.display();
        assert!(!shown.contains("\nEXTRA\n"), "{name}: EXTRA section");
        for line in shown.lines() {
            assert!(line.chars().count() <= 80, "{name}: wider than 80: {line}");
            assert!(!line.contains('\u{2010}'), "{name}: hyphenated: {line}");
        }
        // Every referenced page exists.
        for r in refs.captures_iter(&shown) {
            assert!(
                names.contains(&r[1].to_string()),
                "{name} refers to {}(1)",
                &r[1]
            );
        }
        let Some(ex) = shown.split("\nEXAMPLES\n").nth(1) else {
            assert!(name.to_string().ends_with("sfx-orgs.1") || !shown.contains("$ sfx"));
            continue;
        };
        let ex = ex.split("\n\n").next().unwrap();
        let mut cont = false;
        for line in ex.lines() {
            let l = line.trim();
            assert!(
                cont || l.starts_with("$ ") || l.starts_with('#'),
                "{name}: an example line that is neither a command, its comment nor a continuation: {line:?}\n{ex}"
            );
            cont = l.ends_with(" \\");
        }
    }
}

/// bash's completion of `sfx expires -o <TAB>` offers the stored aliases (read
/// from the metadata file by `sfx orgs --aliases`), not file names.
#[test]
fn bash_completes_stored_aliases_after_o() {
    let t = T::new();
    t.login("prod");
    t.login("staging");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("completions/sfx.bash");
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_sfx"))
        .parent()
        .unwrap();
    for words in ["sfx expires -o ", "sfx expires --org st", "sfx -o "] {
        let n = words.split(' ').count() - 1;
        let program = format!(
            "source {}; COMP_WORDS=({words}''); COMP_CWORD={n}; COMP_LINE='{words}'; COMP_POINT=${{#COMP_LINE}}; _sfx sfx \"${{COMP_WORDS[{n}]}}\" \"${{COMP_WORDS[{p}]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display(),
            p = n - 1
        );
        let out = std::process::Command::new("bash")
            .args(["--norc", "-c", &program])
            .current_dir(t.dir.path())
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .env("SFX_HOME", t.home())
            .env("SFX_CREDENTIAL_STORE", "file")
            .output()
            .unwrap();
        let got = text(&out.stdout);
        let mut got: Vec<&str> = got.lines().filter(|l| !l.is_empty()).collect();
        got.sort();
        let want: Vec<&str> = if words.ends_with("st") {
            vec!["staging"]
        } else {
            vec!["prod", "staging"]
        };
        assert_eq!(got, want, "{words:?}: {}", text(&out.stderr));
    }
    // zsh and fish ask the same question.
    for f in ["completions/_sfx", "completions/sfx.fish"] {
        let s = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(f))
            .unwrap();
        assert!(s.contains("sfx orgs --aliases --store local"), "{f}");
    }
}
