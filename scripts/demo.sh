#!/usr/bin/env bash
# Try sfx end to end with no Salesforce account: build sfx and the in-repo fake
# Salesforce, start the fake, import an org from its SFDX auth URL, then show
# `expires`, `introspect` and `refresh`. Everything lives in a temporary SFX_HOME
# (file store, so it works on hosts without a keychain) and is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "demo: cargo is not installed; sfx needs Rust 1.89 or newer (https://rustup.rs)" >&2
  exit 1
fi

echo "demo: building sfx and fake-salesforce (release; the first build takes a few minutes)…" >&2
cargo build --release --quiet -p sfx -p fake-salesforce

work=$(mktemp -d)
fake_pid=
cleanup() { [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

target/release/fake-salesforce --port 0 >"$work/fake.out" 2>"$work/fake.log" &
fake_pid=$!
for _ in $(seq 1 100); do
  grep -q '^SFX_AUTH_URL=' "$work/fake.out" 2>/dev/null && break
  sleep 0.05
done
url=$(sed -n 's/^fake-salesforce listening on //p' "$work/fake.out")
auth_url=$(sed -n 's/^SFX_AUTH_URL=//p' "$work/fake.out" | head -n 1)
[ -n "$auth_url" ] || { echo "demo: the fake Salesforce did not start:" >&2; cat "$work/fake.log" >&2; exit 1; }

export SFX_HOME="$work/sfx" SFX_CREDENTIAL_STORE=file
export PATH="$PWD/target/release:$PATH"
run() { printf '\n$ %s\n' "$*"; "$@"; }

echo "demo: fake Salesforce at $url (it mints tokens with a 2 h session, like a default org)"
printf '\n$ sfx login --auth-url - --alias demo   # the SFDX auth URL comes on stdin, never in argv\n'
printf '%s\n' "$auth_url" | sfx login --auth-url - --alias demo
run sfx orgs
run sfx expires
run sfx introspect
run sfx refresh
run sfx expires --json
printf '\n$ sfx expires --within 10m -q && echo valid   # what a script does\n'
sfx expires --within 10m -q && echo valid
printf '\n$ sfx token | cut -c1-12   # a valid token for curl, no request while it is fresh\n'
sfx token | cut -c1-12
printf '\n$ sfx api /services/data/{version}/limits | head -c 200   # the REST API, the token never seen\n'
sfx api '/services/data/{version}/limits' | head -c 200
echo
echo
echo "demo: done (the fake and the temporary SFX_HOME are removed)."
