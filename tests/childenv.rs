//! No replay, no leak (issue #19), the parts about what sfx hands on: a child
//! process (`sfx exec`, `watch --exec` hooks) gets the access token and nothing
//! that can mint another or read the store's secrets, so a nested `sfx` never
//! sends a refresh token its parent already spent.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use crate::common::redis_server::RedisServer;
use crate::common::*;

/// The contract's list: what no child of sfx may inherit.
const WITHHELD: [&str; 5] = [
    "SFX_AUTH_URL",
    "SFX_REFRESH_TOKEN",
    "SFX_CLIENT_SECRET",
    "SFX_STORE_KEY",
    "SFX_STORE",
];

/// PATH with the `sfx` under test first, so a child's `sfx` is this one.
fn path_with_sfx() -> OsString {
    let dir = Path::new(env!("CARGO_BIN_EXE_sfx")).parent().unwrap();
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
}

fn rotating(t: &T) {
    t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
}

fn key_b64(byte: u8) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

/// The `NAME=` lines of `env` output, for the withheld names.
fn withheld_in(env: &str) -> Vec<String> {
    env.lines()
        .filter(|l| WITHHELD.iter().any(|n| l.starts_with(&format!("{n}="))))
        .map(|l| l.split('=').next().unwrap().to_string())
        .collect()
}

#[test]
fn a_nested_sfx_under_exec_uses_the_handed_token_and_never_replays() {
    let t = T::new();
    rotating(&t);
    let auth = t.auth_url();
    t.fake.clear_requests();
    let out = t
        .sfx()
        .env("PATH", path_with_sfx())
        .env("SFX_AUTH_URL", &auth)
        .args(["exec", "--", "sh", "-c"])
        .arg("sfx api /services/data/v62.0/limits")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("DailyApiRequests"),
        "{}",
        text(&out.stdout)
    );
    t.fake.expect_hit("/services/data/v62.0/limits");
    // The parent refreshed once (there was no access token yet); the child used
    // what it was handed.
    assert_eq!(t.token_requests(), 1, "{:?}", t.fake.requests());
    assert_eq!(t.fake.replays(), 0, "a spent refresh token was sent again");
    let handed = t.fake.latest_access_token().unwrap();
    assert!(t.fake.is_active(&handed), "the handed token still works");
}

#[test]
fn the_ci_sidecar_recipe_with_sfx_token_in_the_hook_never_replays() {
    let t = T::new();
    rotating(&t);
    let file = t.dir.path().join("token.env");
    let hook = format!(
        "sfx token --format env > '{0}.tmp' && mv '{0}.tmp' '{0}'",
        file.display()
    );
    let mut cmd = t.std_sfx();
    cmd.env("PATH", path_with_sfx())
        .env("SFX_AUTH_URL", t.auth_url())
        .env("SFX_WATCH_MIN_CHECK", "1s");
    let mut w = crate::watch::spawn_cmd(cmd, &["--exec", &hook], &[]);
    w.event("refreshed", Duration::from_secs(60));
    let started = std::time::Instant::now();
    while !file.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the hook never wrote {}; stderr: {}",
            file.display(),
            w.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines = std::fs::read_to_string(&file).unwrap();
    let token = lines
        .lines()
        .find_map(|l| l.strip_prefix("SFX_ACCESS_TOKEN="))
        .expect("the hook's sfx printed the token");
    assert!(t.fake.is_active(token));
    assert!(
        !lines.contains("SFX_AUTH_URL="),
        "the hook's sfx had a refresh token: {lines}"
    );
    w.event("checked", Duration::from_secs(60));
    assert_eq!(t.fake.replays(), 0, "a spent refresh token was sent again");
    assert_eq!(t.token_requests(), 1);
    w.signal("TERM");
    assert_eq!(
        w.exit(Duration::from_secs(30)).code(),
        Some(0),
        "{}",
        w.stderr()
    );
    assert!(!w.stderr().contains("error"), "{}", w.stderr());
}

#[test]
fn a_child_sees_none_of_the_five_variables_from_the_environment() {
    let t = T::new();
    let out = t
        .sfx()
        .env("SFX_AUTH_URL", t.auth_url())
        .env("SFX_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
        .args(["exec", "--", "env"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let env = text(&out.stdout);
    assert!(env.contains("SFX_ACCESS_TOKEN="), "{env}");
    assert_eq!(withheld_in(&env), Vec::<String>::new());
    // SFX_REFRESH_TOKEN's mode too.
    let rt = t
        .fake
        .grant_refresh_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    let out = t
        .sfx()
        .env("SFX_REFRESH_TOKEN", &rt)
        .env("SFX_CLIENT_ID", DEFAULT_CLIENT_ID)
        .env("SFX_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
        .env("SFX_INSTANCE_URL", t.fake.url())
        .args(["exec", "--", "env"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(withheld_in(&text(&out.stdout)), Vec::<String>::new());
}

/// `sfx` on a machine of its own on the shared store.
fn shared(t: &T, r: &RedisServer, key: &str) -> assert_cmd::Command {
    let mut c = t.sfx();
    c.env("SFX_STORE", r.url())
        .env("SFX_STORE_KEY", key)
        .env("SFX_TIMEOUT", "5s");
    c
}

#[test]
fn with_a_shared_store_a_child_gets_neither_the_store_nor_its_key_nor_the_auth_url() {
    let t = T::new();
    let r = RedisServer::start();
    let key = key_b64(42);
    shared(&t, &r, &key)
        .args(["login", "--auth-url", "-", "--alias", "prod"])
        .write_stdin(t.auth_url())
        .assert()
        .success();
    let out = shared(&t, &r, &key)
        .args(["exec", "--", "env"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let env = text(&out.stdout);
    assert!(env.contains("SFX_ACCESS_TOKEN="), "{env}");
    assert_eq!(withheld_in(&env), Vec::<String>::new());
    // The agent/MCP recipe: a program under `sfx exec` cannot print the store's
    // refresh token as an auth URL.
    let out = shared(&t, &r, &key)
        .env("PATH", path_with_sfx())
        .args(["exec", "--", "sh", "-c", "sfx token --auth-url -o prod"])
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(4), "{stdout}{stderr}");
    assert!(!stdout.contains("force://"), "{stdout}");
    assert!(!stderr.contains("force://"), "{stderr}");
    assert!(stderr.contains("SFX_ACCESS_TOKEN"), "{stderr}");
    assert_eq!(out.status.code(), Some(4), "{stderr}");
}

#[test]
fn a_nested_refresh_says_the_handed_token_cannot_be_refreshed() {
    let t = T::new();
    t.login("prod");
    t.fake.clear_requests();
    let out = t
        .sfx()
        .env("PATH", path_with_sfx())
        .args(["exec", "--", "sh", "-c", "sfx refresh"])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("SFX_ACCESS_TOKEN"), "{err}");
    assert!(err.contains("cannot be refreshed"), "{err}");
    assert_eq!(t.token_requests(), 0);
    // What a nested sfx can do with the handed token works.
    let out = t
        .sfx()
        .env("PATH", path_with_sfx())
        .args(["exec", "--", "sh", "-c", "sfx expires -q && sfx token"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), t.access_token("prod"));
    assert_eq!(t.token_requests(), 0);
}

#[cfg(unix)]
#[test]
fn the_browser_a_web_login_opens_gets_none_of_the_five_variables() {
    use std::os::unix::fs::PermissionsExt;
    let t = T::new();
    t.fake.expect_no_requests();
    // A desktop's opener, first on PATH, that notes its environment and exits.
    let bin = t.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let seen = t.dir.path().join("browser-env");
    let opener = bin.join("xdg-open");
    std::fs::write(
        &opener,
        format!(
            "#!/bin/sh\nenv > '{0}.tmp' && mv '{0}.tmp' '{0}'\n",
            seen.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut path = vec![bin];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let out = t
        .sfx()
        .env("PATH", std::env::join_paths(path).unwrap())
        .env("SFX_STORE_KEY", key_b64(42))
        .env("SFX_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
        .args(["login", "--web", "--port", "0", "--login-timeout", "2s"])
        .arg("--login-url")
        .arg(t.fake.url())
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(err.contains("opened the browser"), "{err}");
    assert_eq!(out.status.code(), Some(4), "no one logged in: {err}");
    let env = std::fs::read_to_string(&seen).expect("the opener ran");
    assert!(env.contains("PATH="), "{env}");
    assert_eq!(withheld_in(&env), Vec::<String>::new());
}
