//! Real Salesforce clients fed by sfx (issue #21): simple-salesforce (PyPI) and
//! jsforce (npm) take the token and instance URL that `sfx exec` puts in their
//! environment, or that `sfx token --format env` prints, and call the fake's REST
//! API with them: create an Account, then query it back. No client logs in or
//! refreshes by itself; the fake sees the stored token on every call.
//!
//! The clients are optional peers, as the real `sf` is: `scripts/test.sh`
//! installs them into `bench/.peers` (`python/` and `node_modules/`) and runs
//! these tests with `--ignored`; a failed download skips them there with a
//! sentence. Run by hand without them, they fail and say how to install them.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

fn peers() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/.peers")
}

/// simple-salesforce always builds `https://` URLs from the instance; the fake
/// speaks plain HTTP on loopback, so this session sends the same requests over
/// `http://`. Everything else — the instance, the token — is what sfx handed over.
const PYTHON: &str = r#"
import json, os, requests
from simple_salesforce import Salesforce

class PlainHttp(requests.adapters.HTTPAdapter):
    def send(self, request, **kw):
        request.url = request.url.replace("https://", "http://", 1)
        return super().send(request, **kw)

session = requests.Session()
session.mount("https://", PlainHttp())
sf = Salesforce(instance_url=os.environ["SFX_INSTANCE_URL"],
                session_id=os.environ["SFX_ACCESS_TOKEN"],
                session=session, version="64.0")
sf.Account.create({"Name": "Acme " + os.environ["CLIENT_RUN"]})
print(json.dumps(sf.query("SELECT Id, Name FROM Account")))
"#;

const NODE: &str = r#"
const jsforce = require("jsforce");
const conn = new jsforce.Connection({
  instanceUrl: process.env.SFX_INSTANCE_URL,
  accessToken: process.env.SFX_ACCESS_TOKEN,
  version: "64.0",
});
(async () => {
  await conn.sobject("Account").create({ Name: "Acme " + process.env.CLIENT_RUN });
  console.log(JSON.stringify(await conn.query("SELECT Id, Name FROM Account")));
})().catch((e) => { console.error(String(e)); process.exit(1); });
"#;

/// The two ways sfx feeds a client: `sfx exec -- CLIENT`, and
/// `eval "$(sfx token --format env)"` in a shell that then runs CLIENT.
fn run_both_ways(t: &T, client: &[&str], env: (&str, PathBuf)) -> Vec<Output> {
    let sfx = env!("CARGO_BIN_EXE_sfx");
    let quoted: Vec<String> = client
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    let mut outs = Vec::new();
    // 1. sfx exec -- CLIENT
    let out = t
        .sfx()
        .env(env.0, &env.1)
        .env("CLIENT_RUN", "exec")
        .timeout(Duration::from_secs(120))
        .arg("exec")
        .arg("--")
        .args(client)
        .output()
        .unwrap();
    outs.push(out);
    // 2. eval "$(sfx token --format env)"; CLIENT — the shell is not started by sfx.
    let script = format!(
        "set -e; eval \"$('{sfx}' token --format env)\"; export SFX_ACCESS_TOKEN SFX_INSTANCE_URL; exec {}",
        quoted.join(" ")
    );
    let mut cmd = t.std_sfx();
    // Only the environment of T::sfx(): the shell runs sfx itself.
    cmd.env(env.0, &env.1).env("CLIENT_RUN", "env");
    let mut sh = std::process::Command::new("sh");
    sh.env_clear()
        .envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
    let out = sh.arg("-c").arg(script).output().unwrap();
    outs.push(out);
    outs
}

/// The client's answer: both Accounts it created, found by its own query; every
/// REST call carried the stored token, and nothing was refreshed.
fn check(t: &T, token: &str, outs: &[Output], what: &str) {
    for (out, way) in outs.iter().zip(["sfx exec", "sfx token --format env"]) {
        assert!(
            out.status.success(),
            "{what} through {way}: {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    let last: Value = serde_json::from_str(text(&outs[1].stdout).trim())
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", text(&outs[1].stdout)));
    let names: Vec<&str> = last["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Acme exec", "Acme env"], "{what}: {last}");
    let rest: Vec<_> = t
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/services/data/v64.0/"))
        .collect();
    assert_eq!(rest.len(), 4, "{what}: a create and a query each way");
    for r in &rest {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {token}").as_str()),
            "{what}: {}",
            r.path
        );
    }
    assert_eq!(t.token_requests(), 0, "{what}: no login, no refresh");
}

#[test]
#[ignore = "needs simple-salesforce from PyPI: scripts/test.sh installs it into bench/.peers/python and runs this"]
fn simple_salesforce_calls_the_fake_with_what_sfx_hands_it() {
    let lib = peers().join("python");
    assert!(
        lib.join("simple_salesforce").is_dir(),
        "simple-salesforce is not in {}: `python3 -m pip install --target bench/.peers/python simple-salesforce`",
        lib.display()
    );
    let t = T::new();
    let token = t.login("prod");
    t.fake.clear_requests();
    let outs = run_both_ways(&t, &["python3", "-c", PYTHON], ("PYTHONPATH", lib));
    check(&t, &token, &outs, "simple-salesforce");
}

#[test]
#[ignore = "needs jsforce from npm: scripts/test.sh installs it into bench/.peers/node_modules and runs this"]
fn jsforce_calls_the_fake_with_what_sfx_hands_it() {
    let modules = peers().join("node_modules");
    assert!(
        modules.join("jsforce").is_dir(),
        "jsforce is not in {}: `npm install --prefix bench/.peers jsforce@3`",
        modules.display()
    );
    let t = T::new();
    let token = t.login("prod");
    t.fake.clear_requests();
    let outs = run_both_ways(&t, &["node", "-e", NODE], ("NODE_PATH", modules));
    check(&t, &token, &outs, "jsforce");
}
