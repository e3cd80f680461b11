//! The local store under attack, found by an adversary's review of the #24 fixes:
//! a home that is a link another user planted, and odd files where a rotating
//! refresh keeps room. The real `sfx` against the fake, as in tests/localstore.rs.

use std::time::Duration;

use crate::common::*;
use crate::localstore::{as_nobody, chmod};

/// The home itself as a link another user planted in a shared place, pointing at
/// a directory of the user's own: its owner can repoint it between sfx's check
/// and its read (to an `orgs.json` that sends the tokens elsewhere), as with a
/// link above the home. Refused like a home another user made.
#[cfg(unix)]
#[test]
#[ignore = "needs root (to act as a second user with setpriv): scripts/test.sh runs it"]
fn a_home_that_is_a_link_another_user_planted_is_refused() {
    let t = T::new();
    t.fake.expect_no_requests();
    let shared = t.dir.path().join("tmp");
    std::fs::create_dir(&shared).unwrap();
    chmod(t.dir.path(), 0o755);
    chmod(&shared, 0o1777);
    let mine = t.dir.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    chmod(&mine, 0o700);
    let home = shared.join("sfx-home");
    as_nobody(&["ln", "-s", mine.to_str().unwrap(), home.to_str().unwrap()]);
    let out = t
        .sfx()
        .env("SFX_HOME", &home)
        .args(["login", "--auth-url", "-", "--alias", "prod"])
        .write_stdin(t.auth_url())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("symbolic link that belongs to another user"),
        "{err}"
    );
    assert_eq!(t.token_requests(), 0, "nothing sent");
    assert_eq!(
        std::fs::read_dir(&mine).unwrap().count(),
        0,
        "nothing written"
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

/// The room a rotating refresh keeps (`locks/org-<alias>.room`) is sfx's own
/// scratch file: a FIFO left there made the open block, so `sfx refresh` hung
/// for ever holding the org's lock; a link or a directory was reported as a
/// full disk. Each is now refused with its own sentence, before anything is
/// sent, and left as it is.
#[cfg(unix)]
#[test]
fn an_odd_file_where_a_rotating_refresh_keeps_room_is_refused_not_waited_on() {
    let t = T::new();
    t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    t.login("prod");
    let rt = t.refresh_token("prod");
    let room = t.home().join("locks").join("org-prod.room");
    let target = t.dir.path().join("elsewhere");
    let plants: [(&str, &dyn Fn()); 3] = [
        ("fifo", &|| {
            let c = std::ffi::CString::new(room.to_str().unwrap()).unwrap();
            // SAFETY: a valid C string; mkfifo only creates a file.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        }),
        ("directory", &|| std::fs::create_dir(&room).unwrap()),
        ("link", &|| {
            std::os::unix::fs::symlink(&target, &room).unwrap()
        }),
    ];
    let n = t.token_requests();
    for (what, plant) in plants {
        plant();
        let out = t
            .sfx()
            .args(["refresh", "-o", "prod"])
            .timeout(Duration::from_secs(20))
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(6), "{what}: {err}");
        assert!(
            err.contains("not a regular file") && err.contains("nothing was sent"),
            "{what}: {err}"
        );
        assert!(
            !err.contains("free space"),
            "{what} is not a full disk: {err}"
        );
        assert!(
            std::fs::symlink_metadata(&room).is_ok(),
            "{what} left as it is"
        );
        assert!(!target.exists(), "{what}: nothing written through the link");
        let _ = std::fs::remove_file(&room).or_else(|_| std::fs::remove_dir(&room));
    }
    assert_eq!(t.token_requests(), n, "nothing sent");
    assert_eq!(t.refresh_token("prod"), rt);
    t.sfx().args(["refresh", "-o", "prod"]).assert().success();
    assert_ne!(t.refresh_token("prod"), rt);
}

/// The journal of a rotating refresh (`locks/org-<alias>.refreshing`) is sfx's
/// own file too: a directory there was exit 6 with "free some disk space". It
/// (and a FIFO) is now refused with what is there and how to remove it, before
/// anything is sent, and left as it is.
#[cfg(unix)]
#[test]
fn an_odd_file_where_a_rotating_refresh_keeps_its_journal_is_named_not_called_a_full_disk() {
    let t = T::new();
    t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    t.login("prod");
    let rt = t.refresh_token("prod");
    let journal = t.home().join("locks").join("org-prod.refreshing");
    let plants: [(&str, &dyn Fn()); 2] = [
        ("directory", &|| {
            std::fs::create_dir(&journal).unwrap();
            std::fs::write(journal.join("keep"), "x").unwrap();
        }),
        ("fifo", &|| {
            let c = std::ffi::CString::new(journal.to_str().unwrap()).unwrap();
            // SAFETY: a valid C string; mkfifo only creates a file.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        }),
    ];
    let n = t.token_requests();
    for (what, plant) in plants {
        plant();
        let out = t
            .sfx()
            .args(["refresh", "-o", "prod"])
            .timeout(Duration::from_secs(20))
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(6), "{what}: {err}");
        assert!(
            err.contains("org-prod.refreshing is not a regular file")
                && err.contains("nothing was sent")
                && err.contains(&format!("rm -r {}", journal.display())),
            "{what}: {err}"
        );
        assert!(
            !err.contains("disk space"),
            "{what} is not a full disk: {err}"
        );
        assert!(
            std::fs::symlink_metadata(&journal).is_ok(),
            "{what} left as it is"
        );
        let _ = std::fs::remove_file(&journal).or_else(|_| std::fs::remove_dir_all(&journal));
    }
    assert_eq!(t.token_requests(), n, "nothing sent");
    assert_eq!(t.refresh_token("prod"), rt);
    t.sfx().args(["refresh", "-o", "prod"]).assert().success();
    assert_ne!(t.refresh_token("prod"), rt);
}

/// Remount the tmpfs at `at` read-only (`ro`) or writable.
#[cfg(target_os = "linux")]
fn remount(at: &std::path::Path, how: &str) {
    let st = std::process::Command::new("mount")
        .args(["-o", &format!("remount,{how}")])
        .arg(at)
        .status()
        .unwrap();
    assert!(st.success(), "remount {how}");
}

/// A home on a read-only file system (a read-only volume in a container): a
/// valid token is still read (the refresh lock file is there, and a lock is
/// taken on a read-only file as well); a refresh, or a lock file that cannot
/// be made, is exit 6 naming the read-only file system, with nothing sent. It
/// was exit 1, "cannot open the lock file", even for a token with 2 h left.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs root (to mount a small tmpfs): scripts/test.sh runs it"]
fn a_read_only_home_still_gives_a_valid_token_and_says_why_it_cannot_refresh() {
    use crate::localstore::Tmpfs;
    let t = T::new();
    t.fake
        .update_client(DEFAULT_CLIENT_ID, |c| c.rotate_refresh_tokens = true);
    let fs = Tmpfs::mount(&t.home(), "1m");
    t.login("prod");
    t.login("other");
    t.sfx().args(["refresh", "-o", "prod"]).assert().success();
    let at = t.access_token("prod");
    let rt = t.refresh_token("prod");
    let n = t.token_requests();
    remount(&fs.0, "ro");
    let out = t.sfx().args(["token", "-o", "prod"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), at);
    for args in [&["refresh", "-o", "prod"][..], &["token", "-o", "other"]] {
        let out = t.sfx().args(args).output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(6), "{args:?}: {err}");
        assert!(err.contains("read-only file system"), "{args:?}: {err}");
        assert!(!err.contains("free some disk space"), "{args:?}: {err}");
    }
    assert_eq!(t.token_requests(), n, "nothing sent");
    remount(&fs.0, "rw");
    assert_eq!(t.refresh_token("prod"), rt);
    t.sfx().args(["refresh", "-o", "prod"]).assert().success();
}

/// `sfx doctor` on a read-only home says so (the file system, what still works
/// and what does not, and the way out), in `--json` as `home.writable: false`,
/// and exits 6 as a refresh there does. It said nothing of it, and exit 0.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs root (to mount a small tmpfs): scripts/test.sh runs it"]
fn doctor_says_a_home_is_read_only() {
    use crate::localstore::Tmpfs;
    let t = T::new();
    let fs = Tmpfs::mount(&t.home(), "1m");
    t.login("prod");
    let n = t.token_requests();
    let out = t.sfx().args(["doctor", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(stdout_json(&out)["home"]["writable"], true);
    remount(&fs.0, "ro");
    let out = t.sfx().args(["doctor"]).output().unwrap();
    let (o, e) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(6), "{o}{e}");
    assert!(o.contains("read-only file system"), "{o}");
    assert!(
        e.contains("read-only file system") && e.contains("SFX_HOME"),
        "{e}"
    );
    assert!(
        o.contains("prod: secrets in"),
        "the orgs are still listed: {o}"
    );
    let out = t.sfx().args(["doctor", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(6));
    let j = stdout_json(&out);
    assert_eq!(j["home"]["writable"], false);
    assert_eq!(j["home"]["trusted"], true);
    assert_eq!(t.token_requests(), n, "doctor sends nothing to Salesforce");
    remount(&fs.0, "rw");
}
