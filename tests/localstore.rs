//! The local store under attack (issue #24): the real `sfx` against the fake,
//! with files planted as another local user (or a careless umask) would plant
//! them, a small tmpfs for a full disk. The sf link, the web callback and
//! server text: tests/untrusted.rs.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::sfcli::KeyVersion;

pub(crate) const HANG: Duration = Duration::from_secs(60);

#[cfg(unix)]
pub(crate) fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A spawned `sfx` whose stderr lines arrive on a channel as they are written.
pub(crate) struct Running {
    pub(crate) child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    pub(crate) fn spawn(mut cmd: std::process::Command, stdin: &str) -> Running {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sfx");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).unwrap();
        drop(input);
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Wait (bounded) for a stderr line containing `needle`; that line.
    pub(crate) fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + HANG;
        loop {
            if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("sfx never printed {needle:?}; it printed {:?}", self.seen);
                }
            }
        }
    }

    pub(crate) fn finish(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().unwrap();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(l);
        }
        (status, self.seen.join("\n"))
    }
}

// ----- 1. lock files are never followed -----------------------------------------------

#[cfg(unix)]
#[test]
fn a_lock_file_planted_as_a_symlink_is_refused_and_its_target_is_untouched() {
    let t = T::new();
    t.login("prod");
    let victim = t.dir.path().join("precious.txt");
    std::fs::write(&victim, "the user's own file\n").unwrap();
    let locks = t.home().join("locks");
    for (lock, args) in [
        ("orgs.lock", vec!["logout", "-o", "prod"]),
        ("secrets.lock", vec!["logout", "-o", "prod"]),
        ("org-prod.lock", vec!["refresh", "-o", "prod"]),
    ] {
        let path = locks.join(lock);
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let n = t.token_requests();
        let out = t.sfx().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(6), "{lock}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("symbolic link"),
            "{lock}: {}",
            text(&out.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "the user's own file\n",
            "{lock}: the link's target was written"
        );
        assert_eq!(t.token_requests(), n, "{lock}: nothing sent");
        std::fs::remove_file(&path).unwrap();
    }
    // With the links gone, everything works again.
    t.sfx().args(["refresh", "-o", "prod"]).assert().success();
    assert!(t.metadata()["orgs"]["prod"].is_object());
}

// ----- 2. a home that is not the user's own and private --------------------------------

#[cfg(unix)]
#[test]
fn a_home_others_can_write_is_refused_and_doctor_says_so() {
    let t = T::new();
    t.login("prod");
    chmod(&t.home(), 0o777);
    let n = t.token_requests();
    for args in [
        vec!["orgs"],
        vec!["refresh", "-o", "prod"],
        vec!["token", "-o", "prod"],
    ] {
        let out = t.sfx().args(&args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(6),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let err = text(&out.stderr);
        assert!(
            err.contains("writable by other users") && err.contains("chmod 700"),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: no token printed");
    }
    assert_eq!(t.token_requests(), n, "nothing sent");
    let out = t.sfx().args(["doctor", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    let v = stdout_json(&out);
    assert_eq!(v["home"]["trusted"], false, "{v}");
    assert!(
        v["home"]["problems"][0]
            .as_str()
            .unwrap()
            .contains("mode 0777"),
        "{v}"
    );
    let out = t.sfx().args(["doctor"]).output().unwrap();
    assert!(
        text(&out.stdout).contains("not trusted"),
        "{}",
        text(&out.stdout)
    );
    // Made private again: used again.
    chmod(&t.home(), 0o700);
    t.sfx().args(["refresh", "-o", "prod"]).assert().success();
    let v = stdout_json(&t.sfx().args(["doctor", "--json"]).output().unwrap());
    assert_eq!(v["home"]["trusted"], true, "{v}");
}

#[cfg(unix)]
#[test]
fn a_secrets_file_others_can_read_is_refused_until_made_private() {
    let t = T::new();
    t.login("prod");
    let secrets = t.home().join("secrets.json");
    chmod(&secrets, 0o644);
    let out = t.sfx().args(["token", "-o", "prod"]).output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(
        err.contains("readable by other users") && err.contains("chmod 600"),
        "{err}"
    );
    // A record file someone else could rewrite: refused too.
    chmod(&secrets, 0o600);
    chmod(&t.home().join("orgs.json"), 0o666);
    let out = t.sfx().args(["orgs"]).output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    chmod(&t.home().join("orgs.json"), 0o600);
    t.sfx().args(["token", "-o", "prod"]).assert().success();
}

#[cfg(unix)]
#[test]
fn a_home_under_a_directory_others_can_change_is_refused_unless_it_is_sticky() {
    let t = T::new();
    // SFX_HOME=<open>/sfx: anyone could rename the home away and put theirs there.
    let open = t.dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    let home = open.join("sfx");
    let sfx = |args: &[&str]| {
        t.sfx()
            .env("SFX_HOME", &home)
            .args(args)
            .write_stdin(t.auth_url())
            .output()
            .unwrap()
    };
    let out = sfx(&["login", "--auth-url", "-", "--alias", "prod"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    chmod(&open, 0o777);
    let out = sfx(&["token", "-o", "prod"]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(
        err.contains("above the home") && err.contains("not sticky"),
        "{err}"
    );
    let v = stdout_json(&sfx(&["doctor", "--json"]));
    assert_eq!(v["home"]["trusted"], false, "{v}");
    // Sticky, as /tmp is: others cannot rename what is not theirs.
    chmod(&open, 0o1777);
    let out = sfx(&["token", "-o", "prod"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Run `argv` as the throw-away user `nobody` (uid 65534), with `setpriv`.
#[cfg(unix)]
pub(crate) fn as_nobody(argv: &[&str]) {
    let st = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(argv)
        .status()
        .expect("setpriv (util-linux) runs");
    assert!(st.success(), "{argv:?} as nobody");
}

#[cfg(unix)]
#[test]
#[ignore = "needs root (to act as a second user with setpriv): scripts/test.sh runs it"]
fn a_home_another_user_made_is_refused_and_nothing_is_written_there() {
    let t = T::new();
    t.fake.expect_no_requests();
    // A shared place like /tmp, where the other user makes the home first.
    let shared = t.dir.path().join("tmp");
    std::fs::create_dir(&shared).unwrap();
    chmod(t.dir.path(), 0o755);
    chmod(&shared, 0o1777);
    let home = shared.join("sfx-home");
    as_nobody(&["mkdir", "-m", "700", home.to_str().unwrap()]);
    let out = t
        .sfx()
        .env("SFX_HOME", &home)
        .args(["login", "--auth-url", "-", "--alias", "prod"])
        .write_stdin(t.auth_url())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("belongs to another user"), "{err}");
    assert_eq!(
        std::fs::read_dir(&home).unwrap().count(),
        0,
        "nothing written into the other user's home"
    );
    let out = t
        .sfx()
        .env("SFX_HOME", &home)
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(stdout_json(&out)["home"]["trusted"], false);
}

// ----- 4. one lock spans an org's secrets and its record -------------------------------

#[test]
fn two_logins_of_one_alias_never_pair_one_users_record_with_anothers_tokens() {
    let t = T::new();
    let other = "other@example.com";
    t.fake
        .add_user(fake_salesforce::User::new(other, "pw", "tok"));
    let url_a = t.fake.auth_url(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    let url_b = t.fake.auth_url(DEFAULT_CLIENT_ID, other);
    let rt_of = |u: &str| {
        let (creds, _host) = u.rsplit_once('@').unwrap();
        creds.rsplit(':').next().unwrap().to_string()
    };
    // Something holds the metadata lock for a moment (a watch writing a record).
    let locks = t.home().join("locks");
    std::fs::create_dir_all(&locks).unwrap();
    #[cfg(unix)]
    {
        chmod(&t.home(), 0o700);
        chmod(&locks, 0o700);
    }
    let held = std::fs::File::create(locks.join("orgs.lock")).unwrap();
    held.lock().unwrap();
    let login = || {
        let mut c = t.std_sfx();
        c.args(["login", "--auth-url", "-", "--alias", "prod"]);
        c
    };
    let mut a = Running::spawn(login(), &url_a);
    a.wait_for("waiting for another sfx process");
    let mut b = Running::spawn(login(), &url_b);
    b.wait_for("waiting for another sfx process");
    // The second login dies while it waits; the first one goes on.
    b.child.kill().unwrap();
    let _ = b.finish();
    held.unlock().unwrap();
    let (status, err) = a.finish();
    assert!(status.success(), "{err}");
    let rec = &t.metadata()["orgs"]["prod"];
    assert_eq!(rec["username"], DEFAULT_USERNAME);
    assert_eq!(
        t.refresh_token("prod"),
        rt_of(&url_a),
        "the record names {DEFAULT_USERNAME}: the tokens must be theirs"
    );
}

// ----- 9. secrets.json is never written past what sfx reads back -----------------------

#[test]
fn a_login_that_would_grow_the_secrets_file_past_the_read_limit_is_refused() {
    let t = T::new();
    t.login("prod");
    let path = t.home().join("secrets.json");
    let mut doc = t.secrets();
    // Grown to just under the 32 MiB sfx reads back (thousands of orgs' worth).
    let limit = 32 * 1024 * 1024;
    let now = std::fs::metadata(&path).unwrap().len() as usize;
    doc["filler"] = serde_json::json!({ "access-token": "x".repeat(limit - now - 300) });
    std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let before = std::fs::read(&path).unwrap();
    assert!(before.len() < limit);
    let out = t
        .sfx()
        .args(["login", "--auth-url", "-", "--alias", "another-org"])
        .write_stdin(t.auth_url())
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("32 MiB") && err.contains("nothing was changed"),
        "{err}"
    );
    assert!(std::fs::read(&path).unwrap() == before, "file unchanged");
    // Every command still works.
    t.sfx().args(["token", "-o", "prod"]).assert().success();
    t.sfx().args(["orgs"]).assert().success();
}

// ----- 3. a full disk ------------------------------------------------------------------

/// A small tmpfs, unmounted when dropped.
#[cfg(target_os = "linux")]
pub(crate) struct Tmpfs(pub(crate) std::path::PathBuf);

#[cfg(target_os = "linux")]
impl Tmpfs {
    pub(crate) fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let st = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .expect("mount runs");
        assert!(st.success(), "mount a tmpfs (needs root)");
        Tmpfs(at.to_path_buf())
    }

    fn free(&self) -> u64 {
        let c = std::ffi::CString::new(self.0.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string and a zeroed out-parameter.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
        st.f_bavail as u64 * st.f_frsize as u64
    }

    /// Fill the file system until `left` bytes are free.
    fn fill(&self, name: &str, left: u64) {
        let n = self.free().saturating_sub(left) as usize;
        std::fs::write(self.0.join(name), vec![0u8; n]).unwrap();
        assert_eq!(self.free(), left, "filled to {left} bytes free");
    }
}

#[cfg(target_os = "linux")]
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A rotating org logged in under a tmpfs home.
#[cfg(target_os = "linux")]
fn rotating_on_tmpfs() -> (T, Tmpfs) {
    let t = T::new();
    t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    let fs = Tmpfs::mount(&t.home(), "1m");
    t.login("prod");
    assert_eq!(t.metadata()["orgs"]["prod"]["rotates_refresh_token"], true);
    (t, fs)
}

#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs root (to mount a small tmpfs): scripts/test.sh runs it"]
fn a_nearly_full_disk_sends_no_rotating_refresh_and_the_login_survives() {
    let (t, fs) = rotating_on_tmpfs();
    // Every lock file exists (a refresh took them).
    t.sfx().args(["refresh", "-o", "prod"]).assert().success();
    let rt = t.refresh_token("prod");
    // No byte free: not even the journal can be written.
    fs.fill("filler", 0);
    let n = t.token_requests();
    let out = t.sfx().args(["refresh", "-o", "prod"]).output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("nothing was sent"), "{err}");
    assert_eq!(t.token_requests(), n, "no refresh was sent");
    std::fs::remove_file(t.home().join("filler")).unwrap();
    // One page free: room for the journal, not for the new secrets file.
    fs.fill("filler", 4096);
    let n = t.token_requests();
    let out = t.sfx().args(["refresh", "-o", "prod"]).output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("nothing was sent"), "{err}");
    assert_eq!(t.token_requests(), n, "no refresh was sent");
    assert_eq!(t.refresh_token("prod"), rt);
    assert!(t.fake.is_active(&rt), "the login is alive");
    // Space freed: the same login refreshes.
    std::fs::remove_file(t.home().join("filler")).unwrap();
    t.sfx().args(["refresh", "-o", "prod"]).assert().success();
    assert_ne!(t.refresh_token("prod"), rt);
    assert_eq!(t.fake.replays(), 0);
}

#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs root (to mount a small tmpfs): scripts/test.sh runs it"]
fn a_rotated_token_that_cannot_be_stored_is_said_to_be_lost() {
    let (t, fs) = rotating_on_tmpfs();
    // Salesforce answers slowly; meanwhile something takes every byte left,
    // the room sfx kept included.
    t.fake.inject(
        "/services/oauth2/token",
        Fault {
            delay_ms: 1500,
            ..Fault::default()
        },
    );
    let mut run = Running::spawn(
        {
            let mut c = t.std_sfx();
            c.args(["refresh", "-o", "prod"]);
            c
        },
        "",
    );
    let room = t.home().join("locks").join("org-prod.room");
    let deadline = Instant::now() + HANG;
    // Kept once allocated (its length set), not merely created: removed before
    // that, the room would be allocated to the unlinked file and given back
    // when sfx closes it, and the writes would succeed.
    while !std::fs::metadata(&room).is_ok_and(|m| m.len() > 0) {
        assert!(Instant::now() < deadline, "sfx never kept room");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::remove_file(&room).unwrap();
    fs.fill("filler", 0);
    let _ = run.wait_for("");
    let (st, err) = run.finish();
    assert_eq!(st.code(), Some(4), "{err}");
    assert!(err.contains("this login is lost"), "{err}");
    assert!(!err.contains("5Aep"), "{err}");
}

// ----- also checked: a second signal during a refresh ----------------------------------

#[test]
fn a_second_sigterm_that_abandons_a_refresh_does_not_exit_0() {
    let t = T::new();
    t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    t.login("prod");
    // The keep-alive refresh is held at the server; two SIGTERMs arrive meanwhile.
    t.fake.inject(
        "/services/oauth2/token",
        Fault {
            delay_ms: 20_000,
            ..Fault::default()
        },
    );
    let mut w = crate::watch::spawn_cmd(
        t.std_sfx(),
        &["--keepalive", "1s"],
        &[("SFX_WATCH_MIN_CHECK", "1s")],
    );
    let deadline = Instant::now() + HANG;
    // The journal is written just before the rotating refresh is sent.
    let journal = t.home().join("locks").join("org-prod.refreshing");
    while !journal.exists() {
        assert!(Instant::now() < deadline, "no refresh: {}", w.stderr());
        std::thread::sleep(Duration::from_millis(10));
    }
    w.signal("TERM");
    while !w.stderr().contains("stopping once") {
        assert!(Instant::now() < deadline, "{}", w.stderr());
        std::thread::sleep(Duration::from_millis(10));
    }
    w.signal("TERM");
    let st = w.exit(Duration::from_secs(10));
    assert_eq!(st.code(), Some(130), "{}", w.stderr());
    assert!(w.stderr().contains("abandoned"), "{}", w.stderr());
}

// ----- also checked: sf's lock, taken over while sfx stalled ---------------------------

#[test]
fn an_sf_lock_taken_over_meanwhile_is_not_removed_by_sfx() {
    let (t, sf) = crate::sfcli::setup(KeyVersion::V1, true);
    crate::sfcli::import(&t);
    t.fake.inject(
        "/services/oauth2/token",
        Fault {
            delay_ms: 1500,
            ..Fault::default()
        },
    );
    let mut c = t.std_sfx();
    c.env("SF_USE_GENERIC_UNIX_KEYCHAIN", "true")
        .args(["refresh", "-o", "prod"]);
    let run = Running::spawn(c, "");
    let lock = std::path::PathBuf::from(format!("{}.lock", sf.file(DEFAULT_USERNAME).display()));
    let deadline = Instant::now() + HANG;
    while !lock.exists() {
        assert!(Instant::now() < deadline, "sfx never took sf's lock");
        std::thread::sleep(Duration::from_millis(5));
    }
    // sfx stalled past sf's stale limit: sf takes the lock over (as
    // proper-lockfile does: remove, make its own).
    std::fs::remove_dir(&lock).unwrap();
    std::fs::create_dir(&lock).unwrap();
    let (st, err) = run.finish();
    assert!(st.success(), "{err}");
    assert!(lock.is_dir(), "sfx removed the lock sf holds now");
}

// ----- also checked: no core dump, no reading sfx's memory -----------------------------

#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs root (to act as a second user with setpriv): scripts/test.sh runs it"]
fn another_process_of_the_same_user_cannot_read_sfxs_memory() {
    let t = T::new();
    t.fake.expect_no_requests();
    let shared = t.dir.path().join("tmp");
    std::fs::create_dir(&shared).unwrap();
    chmod(t.dir.path(), 0o755);
    chmod(&shared, 0o1777);
    let home = shared.join("home");
    as_nobody(&["mkdir", "-m", "700", home.to_str().unwrap()]);
    // sfx running as `nobody`, waiting for a browser login.
    let mut c = std::process::Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_sfx"))
        .args(["login", "--web", "--no-browser", "--port", "0"])
        .args([
            "--client-id",
            DEFAULT_CLIENT_ID,
            "--login-url",
            &t.fake.url(),
        ])
        .env_clear()
        .env("SFX_HOME", &home)
        .env("HOME", &home)
        .env("SFX_NO_INPUT", "1")
        .env("SFX_CREDENTIAL_STORE", "file");
    let mut run = Running::spawn(c, "");
    run.wait_for("/services/oauth2/authorize");
    let pid = run.child.id();
    // Another process of the same user (a compromised tool, a debugger).
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["cat", &format!("/proc/{pid}/environ")])
        .output()
        .unwrap();
    run.child.kill().unwrap();
    let _ = run.finish();
    assert!(
        !out.status.success() && text(&out.stderr).contains("Permission denied"),
        "the same user read sfx's environment: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

// ----- also checked: a JWT key file others can read ------------------------------------

#[cfg(unix)]
#[test]
fn a_jwt_key_file_others_can_read_is_named_with_the_fix() {
    let t = T::new();
    let key = t.dir.path().join("server.key");
    std::fs::copy(
        format!(
            "{}/crates/fake-salesforce/keys/jwt-bearer-test-key.pem",
            env!("CARGO_MANIFEST_DIR")
        ),
        &key,
    )
    .unwrap();
    chmod(&key, 0o644);
    let login = |t: &T| {
        t.sfx()
            .args(["login", "--jwt", "--client-id", DEFAULT_CLIENT_ID])
            .args(["--username", DEFAULT_USERNAME, "--key-file"])
            .arg(&key)
            .args(["--login-url", &t.fake.url(), "--alias", "ci"])
            .output()
            .unwrap()
    };
    let out = login(&t);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("can be read by other users (mode 0644)") && err.contains("chmod 600"),
        "{err}"
    );
    let out = t.sfx().args(["refresh", "-o", "ci"]).output().unwrap();
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains("chmod 600"),
        "{}",
        text(&out.stderr)
    );
    chmod(&key, 0o600);
    let out = t.sfx().args(["refresh", "-o", "ci"]).output().unwrap();
    assert!(out.status.success());
    assert!(
        !text(&out.stderr).contains("other users"),
        "{}",
        text(&out.stderr)
    );
}
