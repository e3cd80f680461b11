//! Human output pinned as golden files under `tests/snapshots/`: fixed time zone
//! (Europe/Paris), no terminal (so no colour and no table borders, unless a test
//! asks for `--color always`), and the parts that legitimately change from run to
//! run — the fake's port, instants, durations, token tails — replaced by
//! placeholders. `SFX_UPDATE_GENERATED=1` rewrites the files instead of comparing.

use std::path::Path;

use crate::common::*;

fn normalize(s: &str, t: &T) -> String {
    let mut s = s
        .replace(&t.fake.url(), "<URL>")
        .replace(&t.fake.host(), "<HOST>");
    s = s.replace(&t.home().display().to_string(), "<SFX_HOME>");
    s = s.replace('\x1b', "<ESC>");
    let rules = [
        (
            r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d( [+-]\d\d:\d\d|Z)",
            "<TIME>",
        ),
        (r"(^|[ (])\d+[dhms]( \d+[dhms])?\b", "$1<DUR>"),
        (r"00D5g…[A-Za-z0-9_.\-]{4}", "00D5g…<tok>"),
        (
            r"/id/00D[A-Za-z0-9]{15}/005[A-Za-z0-9]{15}",
            "/id/<org>/<user>",
        ),
    ];
    for (re, with) in rules {
        s = regex::Regex::new(re)
            .unwrap()
            .replace_all(&s, with)
            .into_owned();
    }
    // Column widths follow the placeholders' originals (a port has 4 or 5 digits):
    // pin the cells, not the padding.
    let spaces = regex::Regex::new(r"  +").unwrap();
    let s: String = s
        .lines()
        .map(|l| format!("{}\n", spaces.replace_all(l, "  ").trim_end()))
        .collect();
    // A relative time reads "now" or "1s ago" depending on the second it ran in.
    let s = regex::Regex::new(r"in <DUR>|<DUR> ago|just now")
        .unwrap()
        .replace_all(&s, "<REL>");
    regex::Regex::new(r"(?m)· now$")
        .unwrap()
        .replace_all(&s, "· <REL>")
        .into_owned()
}

fn pin(name: &str, t: &T, out: &std::process::Output) {
    let got = format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status.code().unwrap_or(-1),
        normalize(&text(&out.stdout), t),
        normalize(&text(&out.stderr), t)
    );
    pin_text(name, &got);
}

fn pin_text(name: &str, got: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.txt"));
    if std::env::var_os("SFX_UPDATE_GENERATED").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        want == got,
        "{name} differs from {} (SFX_UPDATE_GENERATED=1 rewrites it)\n--- want\n{want}\n--- got\n{got}",
        path.display()
    );
}

fn run(t: &T, args: &[&str]) -> std::process::Output {
    t.sfx().args(args).output().unwrap()
}

#[test]
fn human_output_of_the_token_commands() {
    let t = T::new();
    let login = t
        .sfx()
        .args([
            "login",
            "--auth-url",
            "-",
            "--alias",
            "prod",
            "--set-default",
        ])
        .write_stdin(t.auth_url())
        .output()
        .unwrap();
    pin("login", &t, &login);
    pin("expires", &t, &run(&t, &["expires"]));
    pin(
        "expires-offline-cached",
        &t,
        &run(&t, &["expires", "--offline"]),
    );
    pin("introspect", &t, &run(&t, &["introspect"]));
    pin("refresh", &t, &run(&t, &["refresh"]));
    pin(
        "refresh-skipped",
        &t,
        &run(&t, &["refresh", "--if-expiring-within", "5m"]),
    );
    t.login("dev");
    pin("orgs", &t, &run(&t, &["orgs"]));
    pin("orgs-check", &t, &run(&t, &["orgs", "--check"]));
    pin("expires-all", &t, &run(&t, &["expires", "--all"]));
    pin(
        "expires-all-color",
        &t,
        &run(&t, &["expires", "--all", "--color", "always"]),
    );
    pin("logout", &t, &run(&t, &["logout", "-o", "dev", "--revoke"]));
}

#[test]
fn human_output_of_errors() {
    let t = T::new();
    pin("error-no-org", &t, &run(&t, &["expires"]));
    t.login("prod");
    t.fake.revoke_token(&t.refresh_token("prod"));
    pin("error-refresh-revoked", &t, &run(&t, &["refresh"]));
    pin("error-inactive", &t, &run(&t, &["expires"]));
    pin(
        "error-bad-url",
        &t,
        &t.sfx()
            .args([
                "login",
                "--access-token",
                "-",
                "--instance-url",
                "http://acme.example.com",
            ])
            .write_stdin("x")
            .output()
            .unwrap(),
    );
    t.login("again");
    t.fake
        .inject("/services/oauth2/token", Fault::html(503).forever());
    pin("error-html-503", &t, &run(&t, &["refresh", "-o", "again"]));
}

#[test]
fn human_output_of_doctor_and_watch() {
    use std::io::BufRead;
    let t = T::new();
    t.login("prod");
    // No D-Bus in the scrubbed environment: doctor explains that, deterministically.
    pin("doctor", &t, &run(&t, &["doctor"]));

    // watch, piped: one line per event. Pin the first event, then stop it.
    let mut child = t
        .std_sfx()
        .args(["watch"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("a first watch event");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    pin_text(
        "watch-first-event",
        &format!(
            "exit: {}\n{}",
            status.code().unwrap_or(-1),
            normalize(&format!("{first}\n"), &t)
        ),
    );
}

/// Time is an input (issue #12): with the clock set by the test-only
/// `SFX_TEST_NOW` and records written by hand, the offline answers are pinned
/// exactly — absolute and relative times included, no placeholders.
#[test]
fn offline_answers_at_a_set_clock_are_pinned_exactly() {
    let t = T::new();
    t.fake.expect_no_requests();
    std::fs::create_dir_all(t.home()).unwrap();
    let org = |alias: &str, extra: serde_json::Value| {
        let mut o = serde_json::json!({
            "alias": alias, "instance_url": "https://acme.my.salesforce.com",
            "flow": "auth_url", "store": "file", "session_timeout_secs": 7200,
            "access_token_masked": "00D5g…abcd",
        });
        o.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        o
    };
    // The clock stands at 2030-01-01T12:00:00Z.
    let now = 1_893_499_200;
    let meta = serde_json::json!({"version": 1, "default": "jwt", "orgs": {
        "jwt": org("jwt", serde_json::json!({"expiry": {"exp": now + 5400, "iat": now - 1800, "source": "jwt", "checked_at": now - 1800}})),
        "cached": org("cached", serde_json::json!({"expiry": {"exp": now + 90, "iat": now - 7110, "source": "introspection", "checked_at": now - 600}})),
        "guess": org("guess", serde_json::json!({"issued_at": now - 7300})),
    }});
    std::fs::write(
        t.home().join("orgs.json"),
        serde_json::to_vec_pretty(&meta).unwrap(),
    )
    .unwrap();
    let out = t
        .sfx()
        .env("SFX_TEST_NOW", "2030-01-01T12:00:00Z")
        .args(["expires", "--offline", "--all"])
        .output()
        .unwrap();
    let got = format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr)
    );
    pin_text("expires-offline-set-clock", &got);
}

/// The test-only clock setting is checked like any other input: a clear
/// sentence and exit 2, not a silently ignored value.
#[test]
fn an_unparsable_sfx_test_now_exits_2() {
    let t = T::new();
    t.fake.expect_no_requests();
    let out = t
        .sfx()
        .env("SFX_TEST_NOW", "yesterday")
        .args(["orgs"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("SFX_TEST_NOW"),
        "{}",
        text(&out.stderr)
    );
}
