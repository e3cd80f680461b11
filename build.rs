//! Stamp `sfx --version` with the git commit when built from a checkout.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    let full = match git(&["rev-parse", "--short=10", "HEAD"]) {
        Some(commit) => {
            // Re-run when HEAD moves (the file itself, and the branch it points to).
            if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
                println!("cargo:rerun-if-changed={head}");
            }
            if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"])
                .and_then(|r| git(&["rev-parse", "--git-path", &r]))
            {
                println!("cargo:rerun-if-changed={r}");
            }
            format!("{version} ({commit})")
        }
        None => version.to_string(),
    };
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-env=SFX_VERSION={full}");
}
