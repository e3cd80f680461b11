#!/usr/bin/env bash
# Build one release archive: scripts/package.sh TARGET BINARY OUTDIR [VERSION]
#
# Writes OUTDIR/sfx-VERSION-TARGET.tar.gz (.zip for Windows targets) holding one
# directory sfx-VERSION-TARGET/ with the binary, the man pages, the shell
# completions, README.md, CHANGELOG.md and both licences — the names
# install.sh, install.ps1, npm/build.js and Cargo.toml's binstall metadata expect.
# VERSION defaults to Cargo.toml's. Prints the archive's path.
# The release workflow runs it; so does scripts/test-dist.sh, on this machine's binary.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 3 ] || [ $# -gt 4 ]; then
  echo "usage: scripts/package.sh TARGET BINARY OUTDIR [VERSION]" >&2
  exit 2
fi
target=$1
binary=$2
out=$3
version=${4:-$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)}
version=${version#v}
[ -f "$binary" ] || {
  echo "package: no binary at $binary" >&2
  exit 1
}

name="sfx-$version-$target"
mkdir -p "$out"
out=$(cd "$out" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name/man" "$stage/$name/completions"
case "$target" in
  *windows*) exe=sfx.exe ;;
  *) exe=sfx ;;
esac
cp "$binary" "$stage/$name/$exe"
chmod 755 "$stage/$name/$exe"
cp man/*.1 "$stage/$name/man/"
cp completions/* "$stage/$name/completions/"
cp README.md CHANGELOG.md LICENSE-MIT LICENSE-APACHE "$stage/$name/"

case "$target" in
  *windows*)
    archive="$out/$name.zip"
    rm -f "$archive"
    (cd "$stage" && if command -v 7z >/dev/null 2>&1; then 7z a -tzip -bd -bso0 "$archive" "$name"; else zip -qr "$archive" "$name"; fi)
    ;;
  *)
    archive="$out/$name.tar.gz"
    # Owner and order fixed, so the same inputs give the same archive.
    tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner -czf "$archive" "$name" 2>/dev/null ||
      tar -C "$stage" -czf "$archive" "$name"
    ;;
esac
echo "$archive"
