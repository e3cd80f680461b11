//! The standalone server: hand-parsed flags, the startup banner (listening URL + SFX_AUTH_URL
//! lines) and serving until the process is killed.

use std::io::Write;

use crate::{DEFAULT_CLIENT_ID, DEFAULT_USERNAME, FakeSalesforce, Options};

const USAGE: &str = "usage: fake-salesforce [--port N] [--delay-ms N] [--session-timeout SECS] \
[--rotate] [--jwt-access-tokens] [--grants N]";

struct Args {
    port: u16,
    delay_ms: u64,
    session_timeout: Option<i64>,
    rotate: bool,
    jwt: bool,
    grants: usize,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        port: 0,
        delay_ms: 0,
        session_timeout: None,
        rotate: false,
        jwt: false,
        grants: 1,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let num_err = |name: &str| format!("{name} needs a number");
        match flag.as_str() {
            "--port" => a.port = value("--port")?.parse().map_err(|_| num_err("--port"))?,
            "--delay-ms" => {
                a.delay_ms = value("--delay-ms")?
                    .parse()
                    .map_err(|_| num_err("--delay-ms"))?
            }
            "--session-timeout" => {
                a.session_timeout = Some(
                    value("--session-timeout")?
                        .parse()
                        .map_err(|_| num_err("--session-timeout"))?,
                )
            }
            "--grants" => {
                a.grants = value("--grants")?
                    .parse()
                    .map_err(|_| num_err("--grants"))?
            }
            "--rotate" => a.rotate = true,
            "--jwt-access-tokens" => a.jwt = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    Ok(a)
}

/// Run the standalone fake (used by the `fake-salesforce` binary and the sfx example).
/// Exits the process on bad arguments; otherwise serves until killed.
pub fn cli_main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = match parse_args(&args) {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("fake-salesforce: {msg}");
            }
            eprintln!("{USAGE}");
            std::process::exit(if msg.is_empty() { 0 } else { 2 });
        }
    };
    let opts = Options {
        bind: format!("127.0.0.1:{}", a.port),
        defaults: true,
    };
    let sf = match FakeSalesforce::start_with(opts) {
        Ok(sf) => sf,
        Err(e) => {
            eprintln!(
                "fake-salesforce: cannot listen on 127.0.0.1:{}: {e}",
                a.port
            );
            std::process::exit(1);
        }
    };
    sf.no_expectations();
    sf.update_client(DEFAULT_CLIENT_ID, |c| {
        c.rotate_refresh_tokens = a.rotate;
        c.jwt_access_tokens = a.jwt;
        if let Some(t) = a.session_timeout {
            c.session_timeout_secs = t;
        }
    });
    sf.set_global_delay(std::time::Duration::from_millis(a.delay_ms));
    sf.set_logging(true);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "fake-salesforce listening on {}", sf.url());
    for _ in 0..a.grants {
        let _ = writeln!(
            out,
            "SFX_AUTH_URL={}",
            sf.auth_url(DEFAULT_CLIENT_ID, DEFAULT_USERNAME)
        );
    }
    let _ = out.flush();
    drop(out);
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let v: Vec<String> = ["--port", "8080", "--rotate", "--grants", "3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let a = parse_args(&v).unwrap();
        assert_eq!((a.port, a.rotate, a.grants, a.jwt), (8080, true, 3, false));
        assert!(parse_args(&["--port".to_string()]).is_err());
        assert!(parse_args(&["--bogus".to_string()]).is_err());
    }
}
