//! `completions/` and `man/` are derived from the clap definition and checked in;
//! this fails when they differ from a fresh render. `SFX_UPDATE_GENERATED=1`
//! rewrites them instead.

use std::path::Path;

fn check(dir: &str, files: Vec<(String, String)>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let update = std::env::var_os("SFX_UPDATE_GENERATED").is_some();
    let mut stale = Vec::new();
    for (name, fresh) in files {
        let path = dir.join(&name);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current != fresh {
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, fresh).unwrap();
            } else {
                stale.push(name);
            }
        }
    }
    assert!(
        stale.is_empty(),
        "{} out of date: {stale:?}; run `SFX_UPDATE_GENERATED=1 cargo test --test integration generated` and commit",
        dir.display()
    );
}

#[test]
fn completions_are_up_to_date() {
    check("completions", sfx::generate::completions());
}

#[test]
fn man_pages_are_up_to_date() {
    let pages = sfx::generate::man_pages();
    for (name, text) in &pages {
        for section in ["EXIT STATUS", "ENVIRONMENT", "FILES"] {
            assert!(
                text.contains(&format!(".SH {section}"))
                    || text.contains(&format!(".SH \"{section}\"")),
                "{name} lacks {section}"
            );
        }
    }
    assert!(pages.iter().any(|(n, _)| n == "sfx-expires.1"));
    check("man", pages);
}

#[test]
fn sfx_completions_prints_the_checked_in_script() {
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_sfx"))
        .args(["completions", "bash"])
        .env_clear()
        .output()
        .unwrap();
    let file =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("completions/sfx.bash"))
            .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), file);
}
