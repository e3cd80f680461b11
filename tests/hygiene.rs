//! Secret hygiene (issue #5, item 4): every command, quiet, `-v` and `-vv`, on
//! success and failure paths, and no token, secret or password the fake ever
//! issued or received shows up on stderr, nor on stdout except where the contract
//! prints tokens (`sfx token`, `--show-token`, `--format env`). And text from the
//! server (error descriptions, usernames, HTML titles) reaches the terminal
//! without control characters.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Output, Stdio};

use crate::common::*;
use fake_salesforce::{FaultBody, User};

const TOKEN: &str = "/services/oauth2/token";
const INTROSPECT: &str = "/services/oauth2/introspect";
const REVOKE: &str = "/services/oauth2/revoke";

struct Run {
    label: String,
    out: Output,
    /// The contract lets this command print token values on stdout.
    prints_tokens: bool,
}

struct Session {
    t: T,
    runs: Vec<Run>,
    secrets: BTreeSet<String>,
}

impl Session {
    fn new() -> Session {
        Session {
            t: T::new(),
            runs: Vec::new(),
            secrets: BTreeSet::new(),
        }
    }

    /// Run sfx with `args` (plus `env` and `stdin`), then learn every secret the
    /// fake has seen or the store now holds.
    fn run(
        &mut self,
        args: &[&str],
        env: &[(&str, String)],
        stdin: Option<&str>,
        prints_tokens: bool,
    ) -> &Output {
        let mut c = self.t.std_sfx();
        c.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        let env_desc: Vec<&str> = env.iter().map(|(k, _)| *k).collect();
        self.runs.push(Run {
            label: format!("{args:?} env={env_desc:?}"),
            out,
            prints_tokens,
        });
        self.learn();
        &self.runs.last().unwrap().out
    }

    fn learn(&mut self) {
        for r in self.t.fake.requests() {
            for key in [
                "token",
                "refresh_token",
                "client_secret",
                "password",
                "assertion",
                "code",
                "code_verifier",
            ] {
                if let Some(v) = r.param(key) {
                    self.secrets.insert(v.to_string());
                }
            }
            if let Some(auth) = r.header("authorization")
                && let Some(token) = auth.strip_prefix("Bearer ")
            {
                self.secrets.insert(token.to_string());
            }
        }
        if let Some(a) = self.t.fake.latest_access_token() {
            self.secrets.insert(a);
        }
        if let Ok(bytes) = std::fs::read(self.t.home().join("secrets.json")) {
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            for org in v.as_object().unwrap().values() {
                for s in org.as_object().unwrap().values() {
                    self.secrets.insert(s.as_str().unwrap().to_string());
                }
            }
        }
    }

    /// Check every run against every secret learned (a token minted later can
    /// only leak later, but checking all against all costs nothing).
    fn assert_no_leaks(&mut self) {
        self.learn();
        let rts: Vec<String> = self
            .secrets
            .iter()
            .filter(|s| s.starts_with("5Aep"))
            .cloned()
            .collect();
        for rt in rts {
            for a in self.t.fake.access_tokens_of(&rt) {
                self.secrets.insert(a);
            }
        }
        for s in [
            DEFAULT_CLIENT_SECRET,
            fake_salesforce::DEFAULT_PASSWORD,
            fake_salesforce::DEFAULT_SECURITY_TOKEN,
            "00D5g000004FAKE!AQ",
        ] {
            self.secrets.insert(s.to_string());
        }
        assert!(
            self.secrets.len() > 20,
            "learned {} secrets",
            self.secrets.len()
        );
        for run in &self.runs {
            let (o, e) = (text(&run.out.stdout), text(&run.out.stderr));
            for s in &self.secrets {
                assert!(
                    !e.contains(s.as_str()),
                    "{}: a secret on stderr:\n{e}",
                    run.label
                );
                if !run.prints_tokens {
                    assert!(
                        !o.contains(s.as_str()),
                        "{}: a secret on stdout:\n{o}",
                        run.label
                    );
                }
            }
        }
    }
}

/// The whole command surface, three times (quiet, `-v`, `-vv`).
#[test]
fn no_command_leaks_a_secret_on_any_path_at_any_verbosity() {
    let mut s = Session::new();
    let url = s.t.fake.url();
    let secret_env = ("SFX_CLIENT_SECRET", DEFAULT_CLIENT_SECRET.to_string());
    let mut traced = 0;
    let mut redactions = 0;
    for v in [None, Some("-v"), Some("-vv")] {
        let with = |args: &[&str]| -> Vec<String> {
            let mut a: Vec<String> = args.iter().map(|x| x.to_string()).collect();
            if let Some(v) = v {
                a.push(v.to_string());
            }
            a
        };
        macro_rules! sfx {
            ($args:expr) => {
                sfx!($args, &[], None, false)
            };
            ($args:expr, tokens) => {
                sfx!($args, &[], None, true)
            };
            ($args:expr, $env:expr, $stdin:expr, $tokens:expr) => {{
                let a = with($args);
                let a: Vec<&str> = a.iter().map(String::as_str).collect();
                s.run(&a, $env, $stdin, $tokens)
            }};
        }
        let t_auth_url = s.t.auth_url();
        let rt =
            s.t.fake
                .grant_refresh_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
        let at =
            s.t.fake
                .grant_access_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);

        // ---- logins, each flow of this branch ----
        assert_ok(
            sfx!(
                &["login", "--auth-url", "-", "--alias", "p", "--set-default"],
                &[],
                Some(&t_auth_url),
                false
            ),
            "a login",
        );
        assert_ok(
            sfx!(
                &[
                    "login",
                    "--refresh-token",
                    "-",
                    "--alias",
                    "r",
                    "--client-id",
                    DEFAULT_CLIENT_ID,
                    "--instance-url",
                    &url
                ],
                std::slice::from_ref(&secret_env),
                Some(&rt),
                false
            ),
            "a login",
        );
        assert_ok(
            sfx!(
                &[
                    "login",
                    "--access-token",
                    "-",
                    "--alias",
                    "a",
                    "--client-id",
                    DEFAULT_CLIENT_ID,
                    "--instance-url",
                    &url
                ],
                std::slice::from_ref(&secret_env),
                Some(&at),
                false
            ),
            "a login",
        );
        let again = s.t.auth_url();
        assert_ok(
            sfx!(
                &[
                    "login",
                    "--auth-url",
                    "-",
                    "--alias",
                    "shown",
                    "--show-token",
                    "--json"
                ],
                &[],
                Some(&again),
                true
            ),
            "a login",
        );

        // ---- reading and refreshing ----
        for args in [
            &["expires"][..],
            &["expires", "--json"],
            &["expires", "--offline"],
            &["expires", "--all"],
            &["expires", "--all", "--json"],
            &["expires", "--format", "iso"],
            &["expires", "-o", "a"],
            &["introspect"],
            &["introspect", "--json"],
            &["introspect", "--refresh"],
            &["introspect", "--refresh", "--json", "-o", "r"],
            &["refresh"],
            &["refresh", "--json"],
            &["refresh", "-o", "r"],
            &["refresh", "--if-expiring-within", "1m"],
            &["orgs"],
            &["orgs", "--json"],
            &["orgs", "--check"],
            &["orgs", "--check", "--json"],
            &["completions", "bash"],
        ] {
            let out = sfx!(args);
            assert!(
                out.status.success() || args[0] == "orgs",
                "{args:?}: {}",
                text(&out.stderr)
            );
        }
        for args in [
            &["token"][..],
            &["token", "--json"],
            &["token", "--min-valid", "3h"],
            &["refresh", "--format", "env"],
            &["refresh", "--show-token"],
            &["refresh", "--show-token", "--json"],
        ] {
            let out = sfx!(args, tokens);
            assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        }

        // ---- the environment (CI) ----
        let env_url = s.t.auth_url();
        let env_rt =
            s.t.fake
                .grant_refresh_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
        let env_at =
            s.t.fake
                .grant_access_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
        let auth_env = [("SFX_AUTH_URL", env_url.clone())];
        let rt_env = [
            ("SFX_REFRESH_TOKEN", env_rt),
            ("SFX_CLIENT_ID", DEFAULT_CLIENT_ID.to_string()),
            secret_env.clone(),
            ("SFX_INSTANCE_URL", url.clone()),
        ];
        let at_env = [
            ("SFX_ACCESS_TOKEN", env_at),
            ("SFX_INSTANCE_URL", url.clone()),
            ("SFX_CLIENT_ID", DEFAULT_CLIENT_ID.to_string()),
            secret_env.clone(),
        ];
        sfx!(&["token"], &auth_env, None, true);
        sfx!(&["refresh", "--format", "env"], &auth_env, None, true);
        sfx!(&["refresh", "--json"], &auth_env, None, false);
        sfx!(&["introspect", "--refresh"], &auth_env, None, false);
        sfx!(&["expires"], &auth_env, None, false); // exit 3: no access token yet
        sfx!(&["refresh"], &rt_env, None, false);
        sfx!(&["expires", "--json"], &at_env, None, false);
        sfx!(&["introspect"], &at_env, None, false);
        sfx!(&["orgs", "--check"], &at_env, None, false);

        // ---- failure paths ----
        // The server misbehaves (bodies that carry token-looking text).
        for f in [
            Fault::invalid_json(),
            Fault::oversized(),
            Fault::truncated().forever(),
            Fault::html(503).forever(),
        ] {
            s.t.fake.inject(TOKEN, f);
            let out = sfx!(&["refresh", "-o", "r"]);
            assert_eq!(out.status.code(), Some(5));
            s.t.fake.clear_faults();
        }
        s.t.fake.inject(INTROSPECT, Fault::invalid_json());
        assert_eq!(sfx!(&["expires", "-o", "r"]).status.code(), Some(5));
        s.t.fake.inject(
            TOKEN,
            Fault {
                status: 500,
                body: FaultBody::Text(format!("upstream said refresh_token={rt} and Bearer {at}")),
                ..Fault::default()
            }
            .forever(),
        );
        assert_eq!(sfx!(&["refresh", "-o", "r"]).status.code(), Some(5));
        s.t.fake.clear_faults();
        // A wrong client secret: invalid_client.
        let good = s.t.secrets();
        let mut bad = good.clone();
        bad["r"]["client-secret"] = "wrong-secret-XYZ".into();
        std::fs::write(s.t.home().join("secrets.json"), bad.to_string()).unwrap();
        assert_eq!(sfx!(&["refresh", "-o", "r"]).status.code(), Some(4));
        std::fs::write(s.t.home().join("secrets.json"), good.to_string()).unwrap();
        // A revoked refresh token, and a dead access token.
        s.t.fake.revoke_token(&s.t.refresh_token("r"));
        assert_eq!(sfx!(&["refresh", "-o", "r"]).status.code(), Some(4));
        assert_eq!(
            sfx!(&["token", "--min-valid", "3h", "-o", "r"], &[], None, true)
                .status
                .code(),
            Some(4)
        );
        assert_eq!(sfx!(&["expires", "-o", "r"]).status.code(), Some(3));
        assert_eq!(sfx!(&["introspect", "-o", "r"]).status.code(), Some(3));
        // Bad input that carries a secret.
        assert_eq!(
            sfx!(
                &["login", "--auth-url", "-"],
                &[],
                Some(&format!("force://id:{DEFAULT_CLIENT_SECRET}:{rt}!@host")),
                false
            )
            .status
            .code(),
            Some(2)
        );
        assert_eq!(
            sfx!(
                &["token"],
                &[("SFX_AUTH_URL", format!("force://id:s:{rt}"))],
                None,
                true
            )
            .status
            .code(),
            Some(2)
        );
        assert_eq!(
            sfx!(&[
                "login",
                "--refresh-token",
                &rt,
                "--client-id",
                "x",
                "--instance-url",
                &url
            ])
            .status
            .code(),
            Some(2)
        );
        // Unreachable and revoked environment credentials.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = dead.local_addr().unwrap().port();
        drop(dead);
        assert_eq!(
            sfx!(
                &["token"],
                &[(
                    "SFX_AUTH_URL",
                    format!(
                        "force://{DEFAULT_CLIENT_ID}:{DEFAULT_CLIENT_SECRET}:{rt}@127.0.0.1:{port}"
                    )
                )],
                None,
                true
            )
            .status
            .code(),
            Some(5)
        );
        let env_url_rt = env_url
            .rsplit_once('@')
            .unwrap()
            .0
            .rsplit_once(':')
            .unwrap()
            .1;
        s.t.fake.revoke_token(env_url_rt);
        assert_eq!(
            sfx!(&["refresh"], &auth_env, None, false).status.code(),
            Some(4)
        );
        // Revocation failing, then working.
        s.t.fake.inject(REVOKE, Fault::status(503).forever());
        assert_eq!(
            sfx!(&["logout", "--revoke", "-o", "p"]).status.code(),
            Some(5)
        );
        s.t.fake.clear_faults();
        assert!(sfx!(&["logout", "--revoke", "-o", "p"]).status.success());
        assert!(sfx!(&["logout", "--all"]).status.success());

        if v.is_some() {
            let runs = s.runs.iter().filter(|r| r.label.contains("\"-v"));
            for r in runs {
                let e = text(&r.out.stderr);
                traced += e.matches("sfx: > ").count();
                redactions += e.matches("<redacted>").count();
            }
        }
    }
    s.assert_no_leaks();
    eprintln!(
        "hygiene: {} runs, {} secrets checked, {traced} traced requests, {redactions} redactions",
        s.runs.len(),
        s.secrets.len()
    );
    assert!(traced > 100 && redactions > 100, "the traces really ran");
}

fn assert_terminal_safe(out: &Output, label: &str) {
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let s = text(bytes);
        assert!(
            !s.chars().any(|c| (c.is_control() && c != '\n')
                || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')),
            "{label}: control characters on {name}: {s:?}"
        );
    }
}

const HOSTILE: &str = "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[31mred\u{202E}txt.exe\u{8}\u{8}\r";

#[test]
fn an_error_description_with_escape_sequences_is_shown_without_them() {
    let t = T::new();
    t.login("prod");
    let body =
        serde_json::json!({"error": "invalid_grant", "error_description": HOSTILE}).to_string();
    for v in ["-q", "-v", "-vv"] {
        t.fake.inject(TOKEN, Fault::json(400, &body));
        let out = t.sfx().args(["refresh", v]).output().unwrap();
        assert_eq!(out.status.code(), Some(4));
        assert_terminal_safe(&out, v);
        assert!(text(&out.stderr).contains("red"), "the text itself is kept");
    }
    // Raw escape bytes in a plain-text or HTML body, quoted by the error.
    let mut codes = Vec::new();
    for f in [
        Fault {
            status: 500,
            body: FaultBody::Text(HOSTILE.into()),
            ..Fault::default()
        }
        .forever(),
        Fault {
            status: 200,
            body: FaultBody::Html(format!("<html><title>{HOSTILE}</title></html>")),
            ..Fault::default()
        },
        Fault::json(400, &serde_json::json!({"error": HOSTILE}).to_string()),
    ] {
        t.fake.clear_faults();
        t.fake.inject(TOKEN, f);
        let out = t.sfx().args(["refresh", "-vv"]).output().unwrap();
        codes.push(out.status.code());
        assert_terminal_safe(&out, "quoted body");
    }
    // Server trouble (a 500, an HTML page) is exit 5; an unknown OAuth error exit 1.
    assert_eq!(codes, [Some(5), Some(5), Some(1)]);
}

#[test]
fn a_username_with_escape_sequences_is_stored_and_shown_without_them() {
    let t = T::new();
    let evil = "evil\u{1b}[2J\u{1b}]0;x\u{7}\u{202E}@example.com";
    t.fake.add_user(User::new(evil, "pw", "tok"));
    let url = t.fake.auth_url(DEFAULT_CLIENT_ID, evil);
    let out = t
        .sfx()
        .args(["login", "--auth-url", "-", "--alias", "evil"])
        .write_stdin(url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_terminal_safe(&out, "login");
    let stored = t.metadata()["orgs"]["evil"]["username"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!stored.chars().any(char::is_control), "{stored:?}");
    for args in [
        &["orgs"][..],
        &["orgs", "--check"],
        &["expires"],
        &["introspect"],
        &["refresh"],
        &["expires", "--all"],
    ] {
        let out = t.sfx().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert_terminal_safe(&out, &format!("{args:?}"));
    }
    // JSON output keeps the text, escaped (JSON cannot carry a raw ESC).
    let out = t.sfx().args(["introspect", "--json"]).output().unwrap();
    assert_terminal_safe(&out, "introspect --json");
    assert_eq!(stdout_json(&out)["username"], evil);
}

#[test]
fn a_hand_edited_username_with_escape_sequences_is_shown_without_them() {
    let t = T::new();
    t.login("prod");
    t.edit_org("prod", |o| o["username"] = "x\u{1b}[2Jy\u{9b}31m".into());
    for args in [
        &["orgs"][..],
        &["expires", "--offline"],
        &["expires", "--all", "--offline"],
    ] {
        let out = t.sfx().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert_terminal_safe(&out, &format!("{args:?}"));
        assert!(text(&out.stdout).contains("x [2Jy 31m") || args[0] != "orgs");
    }
}

/// Issue #11: a login that failed would make every later check vacuous.
fn assert_ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({:?}): {}",
        out.status.code(),
        text(&out.stderr)
    );
}
