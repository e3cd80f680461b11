#!/bin/sh
# Install sfx from a GitHub release: picks the archive for this machine, checks it
# against the release's SHA256SUMS, and puts the binary in a directory of the user's
# (nothing needs root). Usage:
#
#   curl -fsSL https://github.com/sfx-cli/sfx/releases/latest/download/install.sh | sh
#
# Settings (environment variables):
#   SFX_VERSION       a release such as 0.2.0 (default: the latest release)
#   SFX_INSTALL_DIR   where the binary goes (default: ~/.local/bin)
#   SFX_INSTALL_BASE  where the archives and SHA256SUMS are downloaded from
#                     (default: https://github.com/$SFX_REPO/releases/…; a mirror, or a
#                     local server in tests)
#   SFX_REPO          the GitHub repository (default: sfx-cli/sfx)
#   SFX_ARCHIVE_DIR   a directory that keeps downloaded archives (the GitHub Action's
#                     cache): an archive there is used only when its SHA-256 matches
#                     the freshly downloaded SHA256SUMS, else downloaded and kept there
#
# Exit status: 0 installed; 1 anything went wrong (nothing is installed then).
set -eu

say() { printf 'sfx-install: %s\n' "$*" >&2; }
die() {
  say "error: $*"
  exit 1
}

repo="${SFX_REPO:-sfx-cli/sfx}"
version="${SFX_VERSION:-latest}"
version="${version#v}"
[ -n "${SFX_INSTALL_DIR:-}" ] || [ -n "${HOME:-}" ] || die "HOME is not set: set SFX_INSTALL_DIR to the directory sfx goes to"
dir="${SFX_INSTALL_DIR:-$HOME/.local/bin}"

case "$version" in
  latest) default_base="https://github.com/$repo/releases/latest/download" ;;
  *[!0-9A-Za-z.+-]* | "") die "SFX_VERSION \`$version\` is not a version such as 0.2.0" ;;
  *) default_base="https://github.com/$repo/releases/download/v$version" ;;
esac
base="${SFX_INSTALL_BASE:-$default_base}"
base="${base%/}"
# Over plain http anyone on the path swaps the sums and the archive together, so the check
# proves nothing: https only, except this machine (a local mirror, the tests' server).
case "$base" in
  https://*) ;;
  http://127.0.0.1[:/]* | http://localhost[:/]* | "http://[::1]"[:/]*) ;;
  *) die "SFX_INSTALL_BASE must be https:// (or http:// on this machine): $base" ;;
esac

# The release target for this machine.
os=$(uname -s)
arch=$(uname -m)
case "$arch" in
  x86_64 | amd64) arch=x86_64 ;;
  aarch64 | arm64) arch=aarch64 ;;
  *) die "no prebuilt sfx for the $arch processor; build it from source: cargo install --locked --git https://github.com/$repo" ;;
esac
exe=sfx
ext=tar.gz
case "$os" in
  Linux) target="$arch-unknown-linux-musl" ;;
  Darwin)
    # An x86_64 shell under Rosetta on an Apple silicon Mac: take the native build.
    if [ "$arch" = x86_64 ] && [ "$(sysctl -n sysctl.proc_translated 2>/dev/null || echo 0)" = 1 ]; then
      arch=aarch64
    fi
    target="$arch-apple-darwin"
    ;;
  MINGW* | MSYS* | CYGWIN*)
    target="x86_64-pc-windows-msvc"
    exe=sfx.exe
    ext=zip
    ;;
  *) die "no prebuilt sfx for $os; build it from source: cargo install --locked --git https://github.com/$repo" ;;
esac

# From an https base, redirects (github.com sends downloads to another host) stay on https.
proto=""
case "$base" in https://*) proto=https ;; esac
# A server that stops answering (or trickles under 1 kB/s for 15 s) is given up on, with
# the retries inside about 45 s: never a hang.
if command -v curl >/dev/null 2>&1; then
  fetch() {
    curl -fsSL --retry 3 --retry-max-time 45 --connect-timeout 15 --speed-limit 1024 --speed-time 15 \
      ${proto:+--proto =https} -o "$2" "$1"
  }
elif command -v wget >/dev/null 2>&1; then
  fetch() { wget -q --timeout=15 --tries=3 ${proto:+--https-only} -O "$2" "$1"; }
else
  die "neither curl nor wget is installed; install one of them"
fi
if command -v sha256sum >/dev/null 2>&1; then
  sha256() { sha256sum "$1" | cut -d ' ' -f 1; }
elif command -v shasum >/dev/null 2>&1; then
  sha256() { shasum -a 256 "$1" | cut -d ' ' -f 1; }
elif command -v openssl >/dev/null 2>&1; then
  sha256() { openssl dgst -sha256 -r "$1" | cut -d ' ' -f 1; }
else
  die "no SHA-256 tool (sha256sum, shasum or openssl) to check the download with"
fi

tmp=$(mktemp -d 2>/dev/null || mktemp -d -t sfx-install)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fetch "$base/SHA256SUMS" "$tmp/SHA256SUMS" || die "could not download $base/SHA256SUMS"
# The line of this target's archive: "<sha256>  sfx-<version>-<target>.<ext>".
line=$(grep -E "^[0-9a-f]{64}  \\*?sfx-[0-9A-Za-z.+-]+-$target\\.$ext\$" "$tmp/SHA256SUMS" | head -n 1)
[ -n "$line" ] || die "$base/SHA256SUMS lists no archive for $target"
want=${line%% *}
name=${line##* }
name=${name#\*}
kept="${SFX_ARCHIVE_DIR:+$SFX_ARCHIVE_DIR/$name}"
# A kept archive is copied first and the copy checked: what is checked is what is unpacked.
if [ -n "$kept" ] && [ -f "$kept" ] && cp "$kept" "$tmp/$name" && [ "$(sha256 "$tmp/$name")" = "$want" ]; then
  say "using $kept (its SHA-256 matches SHA256SUMS)"
  kept=""
else
  [ -z "$kept" ] || [ ! -e "$kept" ] || say "not using $kept: its SHA-256 does not match SHA256SUMS"
  say "downloading $name"
  fetch "$base/$name" "$tmp/$name" || die "could not download $base/$name"
fi
got=$(sha256 "$tmp/$name")
if [ "$got" != "$want" ]; then
  die "$name does not match its SHA-256 in SHA256SUMS (expected $want, got $got): not installing it"
fi
if [ -n "$kept" ]; then
  { mkdir -p "$SFX_ARCHIVE_DIR" && cp "$tmp/$name" "$kept.tmp.$$" && mv -f "$kept.tmp.$$" "$kept"; } ||
    say "could not keep $name in $SFX_ARCHIVE_DIR (going on)"
fi

mkdir "$tmp/x"
case "$ext" in
  tar.gz) tar -xzf "$tmp/$name" -C "$tmp/x" || die "could not unpack $name" ;;
  zip) unzip -q "$tmp/$name" -d "$tmp/x" || die "could not unpack $name" ;;
esac
bin="$tmp/x/${name%."$ext"}/$exe"
[ -f "$bin" ] || die "$name holds no ${name%."$ext"}/$exe"

mkdir -p "$dir" || die "could not create $dir"
# mv onto a directory (or a symlink to one) would move the binary into it and "succeed".
[ ! -d "$dir/$exe" ] || die "$dir/$exe is a directory: move it away, or set SFX_INSTALL_DIR to another directory"
# Copy next to the destination, then rename: a running sfx is never half-overwritten.
cp "$bin" "$dir/.$exe.tmp.$$" || die "could not write to $dir"
chmod 755 "$dir/.$exe.tmp.$$"
mv -f "$dir/.$exe.tmp.$$" "$dir/$exe" || {
  rm -f "$dir/.$exe.tmp.$$"
  die "could not install $dir/$exe"
}
say "installed $("$dir/$exe" --version 2>/dev/null || echo "$name") to $dir/$exe"
say "the archive also holds man pages and completions; \`sfx completions <SHELL>\` prints them too"

case ":${PATH:-}:" in
  *":$dir:"*) ;;
  *)
    say "$dir is not on your PATH; add it, e.g. for bash or zsh:"
    # shellcheck disable=SC2016 # printed for the user to run
    say "  echo 'export PATH=\"$dir:\$PATH\"' >> ~/.profile && . ~/.profile"
    say "or for fish: fish_add_path $dir"
    ;;
esac
