//! Contract details pinned: exit codes of usage errors and missing orgs, `-q`,
//! secrets never in output, `--help`, completions.

use crate::common::*;
use predicates::prelude::*;

#[test]
fn unknown_flags_and_bad_durations_exit_2() {
    let t = T::new();
    t.fake.expect_no_requests();
    t.sfx().args(["expires", "--bogus"]).assert().code(2);
    t.sfx()
        .args(["expires", "--within", "soon"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("duration"));
    t.sfx().args(["--timeout", "x", "orgs"]).assert().code(2);
}

#[test]
fn help_and_version_exit_0() {
    let t = T::new();
    t.fake.expect_no_requests();
    t.sfx()
        .args(["--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("expires"));
    t.sfx()
        .args(["expires", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--within"));
    t.sfx()
        .args(["--version"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("sfx "));
}

#[test]
fn no_org_at_all_exits_4_and_says_run_sfx_login() {
    let t = T::new();
    t.fake.expect_no_requests();
    t.sfx()
        .args(["expires"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("sfx login"));
    t.sfx().args(["expires", "-o", "nope"]).assert().code(4);
}

#[test]
fn several_orgs_without_a_default_exit_2_naming_the_ways_out() {
    let t = T::new();
    t.login("a");
    t.login("b");
    t.sfx()
        .args(["token"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("-o"))
        .stderr(predicate::str::contains("--set-default"));
    t.sfx().args(["token", "-o", "b"]).assert().success();
    t.sfx()
        .args(["token"])
        .env("SFX_ORG", DEFAULT_USERNAME)
        .assert()
        .success();
}

#[test]
fn quiet_wins_over_json_and_format() {
    let t = T::new();
    t.login("a");
    t.sfx()
        .args(["expires", "-q", "--json"])
        .assert()
        .success()
        .stdout("");
    t.sfx()
        .args(["expires", "-q", "--format", "seconds"])
        .assert()
        .success()
        .stdout("");
    t.sfx()
        .args(["refresh", "-q", "--format", "env"])
        .assert()
        .success()
        .stdout("");
}

#[test]
fn secrets_never_reach_output_or_traces() {
    let t = T::new();
    t.sfx()
        .args(["login", "--auth-url", "-", "--alias", "p", "-vv"])
        .write_stdin(t.auth_url())
        .assert()
        .success();
    let mut secrets = vec![
        t.access_token("p"),
        t.refresh_token("p"),
        DEFAULT_CLIENT_SECRET.to_string(),
    ];
    let runs: Vec<Vec<&str>> = vec![
        vec!["expires", "-vv"],
        vec!["introspect", "-vv"],
        vec!["introspect", "--refresh", "-vv"],
        vec!["orgs", "--check", "-vv"],
        vec!["refresh", "-vv"],
        vec!["refresh", "--json", "-vv"],
        vec!["logout", "--revoke", "-vv"],
    ];
    for args in runs {
        let out = t.sfx().args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        // Refreshes mint new tokens: they must not leak either.
        if t.home().join("secrets.json").exists()
            && let Some(a) = t.secrets()["p"]["access-token"].as_str()
        {
            secrets.push(a.to_string());
        }
        let (o, e) = (text(&out.stdout), text(&out.stderr));
        // Each of these makes a request, so -vv must trace it (issue #11: an
        // empty stderr used to pass).
        assert!(e.contains("> POST"), "{args:?} traced: {e}");
        for s in &secrets {
            assert!(
                !o.contains(s.as_str()),
                "{args:?} printed a secret on stdout"
            );
            assert!(
                !e.contains(s.as_str()),
                "{args:?} printed a secret on stderr: {e}"
            );
        }
    }
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let t = T::new();
    t.login("a");
    let mut child = t
        .std_sfx()
        .args(["completions", "bash"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn completions_are_generated_for_each_shell() {
    let t = T::new();
    t.fake.expect_no_requests();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        t.sfx()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains("expires"));
    }
}

/// Issue #21 (contract: "Never lose a login"): the "several orgs, no default"
/// hint names a command that works: `sfx login --set-default -o ORG` with no
/// flow marks the stored org, sends nothing, and later commands use it.
#[test]
fn the_no_default_hint_names_a_command_that_marks_a_stored_org_without_a_request() {
    let t = T::new();
    t.login("a");
    t.login("b");
    let out = t.sfx().args(["token"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("`sfx login --set-default -o <ALIAS>`"),
        "{err}"
    );
    t.fake.clear_requests();
    t.sfx()
        .args(["login", "--set-default", "-o", "b"])
        .assert()
        .success()
        .stdout(predicate::str::contains("b is now the default org"));
    assert_eq!(t.fake.requests().len(), 0, "no request to mark a default");
    assert_eq!(t.metadata()["default"], "b");
    t.sfx()
        .args(["expires", "--offline", "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"org\":\"b\""));
    // Through SFX_ORG too; an unknown name is exit 4 and leaves the default alone.
    t.sfx()
        .args(["login", "--set-default"])
        .env("SFX_ORG", "a")
        .assert()
        .success();
    assert_eq!(t.metadata()["default"], "a");
    t.sfx()
        .args(["login", "--set-default", "-o", "bb"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("did you mean `b`?"));
    assert_eq!(t.metadata()["default"], "a");
    assert_eq!(t.fake.requests().len(), 0);
}

/// Issue #21: a typo'd `-o` is exit 4 with the closest stored alias; through
/// SFX_ORG the message says the value came from the environment.
#[test]
fn an_unknown_org_suggests_the_closest_alias_and_names_sfx_org_when_it_came_from_there() {
    let t = T::new();
    t.login("prod");
    t.login("dev");
    let out = t.sfx().args(["expires", "-o", "prdo"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = text(&out.stderr);
    assert!(err.contains("no stored org is called `prdo`"), "{err}");
    assert!(err.contains("did you mean `prod`?"), "{err}");
    assert!(!err.contains("SFX_ORG"), "{err}");
    let out = t
        .sfx()
        .args(["token"])
        .env("SFX_ORG", "Dev")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = text(&out.stderr);
    assert!(err.contains("SFX_ORG is `Dev`"), "{err}");
    assert!(err.contains("did you mean `dev`?"), "{err}");
    // Nothing close: no guess, the listing command instead.
    let out = t.sfx().args(["expires", "-o", "staging"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = text(&out.stderr);
    assert!(!err.contains("did you mean"), "{err}");
    assert!(err.contains("`sfx orgs` lists the stored orgs"), "{err}");
}

/// Issue #21: one prefix for every error. clap's own (`error:`, `tip:`, its
/// usage) arrive as `sfx: error:` and `sfx: hint:` lines, like sfx's.
#[test]
fn argument_errors_have_the_same_prefix_as_every_other_error() {
    let t = T::new();
    t.fake.expect_no_requests();
    for args in [
        &["expires", "--bogus"][..],
        &["exprs"],
        &["expires", "--within", "10x"],
        &["--color", "sometimes", "expires"],
        &["expires", "-o"],
    ] {
        let out = t.sfx().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.starts_with("sfx: error: "), "{args:?}: {err}");
        for line in err.lines() {
            assert!(
                line.starts_with("sfx: error: ") || line.starts_with("sfx: hint: "),
                "{args:?}: a line without sfx's prefix: {line:?} in\n{err}"
            );
        }
    }
    let err = text(&t.sfx().args(["exprs"]).output().unwrap().stderr);
    assert!(
        err.contains("sfx: hint: a similar subcommand exists: 'expires'"),
        "{err}"
    );
    let err = text(
        &t.sfx()
            .args(["expires", "--bogus"])
            .output()
            .unwrap()
            .stderr,
    );
    assert!(err.contains("`sfx expires --help` says more"), "{err}");
}

/// Issue #21, found by review: `sfx login --set-default -o ORG` with no flow
/// marks a stored org, so a flag that only shapes a login (`--port`, `--sandbox`,
/// `--insecure-storage`, `--session-timeout`, …) has nothing to act on. It was
/// silently dropped; now it is a usage error naming the flag, and the default
/// is left alone.
#[test]
fn marking_a_default_refuses_a_flag_that_only_shapes_a_login() {
    let t = T::new();
    t.login("a");
    t.login("b");
    t.sfx()
        .args(["login", "--set-default", "-o", "a"])
        .assert()
        .success();
    t.fake.clear_requests();
    let cases: [(&[&str], &str); 6] = [
        (&["--port", "5"], "--port"),
        (&["--sandbox"], "--sandbox"),
        (&["--insecure-storage"], "--insecure-storage"),
        (&["--session-timeout", "1h"], "--session-timeout"),
        (&["--no-browser"], "--no-browser"),
        (&["--show-token"], "--show-token"),
    ];
    for (extra, flag) in cases {
        let out = t
            .sfx()
            .args(["login", "--set-default", "-o", "b"])
            .args(extra)
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {err}");
        assert!(
            err.contains(&format!("{flag} does not apply")),
            "{flag}: {err}"
        );
        assert_eq!(t.metadata()["default"], "a", "{flag}: default left alone");
    }
    // A value from the environment is not a flag given here: still fine.
    t.sfx()
        .args(["login", "--set-default", "-o", "b"])
        .env("SFX_LOGIN_TIMEOUT", "1m")
        .assert()
        .success();
    assert_eq!(t.metadata()["default"], "b");
    assert_eq!(t.fake.requests().len(), 0, "nothing sent");
}
