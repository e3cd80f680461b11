#!/usr/bin/env bash
# Step 1 of action.yml: where this run's sfx goes, and what can be cached. Reads
# SFX_VERSION, TOOL_CACHE, RUNNER_TEMP, RUNNER_OS_ARCH; writes the step's outputs to
# $GITHUB_OUTPUT:
#   dir        where sfx is installed: under RUNNER_TEMP, emptied for every job, and put
#              on PATH; never a cached directory (anything restored there, a binary or
#              a `git`, would be run by the steps after this one)
#   archives   the cached directory: release archives only, each checked against a
#              freshly downloaded SHA256SUMS before use (install.sh's SFX_ARCHIVE_DIR)
#   cacheable  true for a pinned version (`latest` changes under the same name)
#   cache-key
set -euo pipefail
: "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set: this script is a step of action.yml}"
version=${SFX_VERSION:-latest}
version=${version#v}
case "$version" in
  latest) cacheable=false ;;
  *[!0-9A-Za-z.+-]* | "")
    # Not echoed: a newline in it would start a workflow command of its own in the log.
    echo "::error title=sfx::the version input is not a version such as 0.2.0 (or latest)"
    exit 2
    ;;
  *) cacheable=true ;;
esac
archives="${TOOL_CACHE:-${RUNNER_TEMP:-/tmp}}/sfx/$version/${RUNNER_OS_ARCH:-local}"
dir="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/sfx-$version/bin"
{
  echo "dir=$dir"
  echo "archives=$archives"
  echo "cacheable=$cacheable"
  echo "cache-key=sfx-$version-${RUNNER_OS_ARCH:-local}"
} >>"$GITHUB_OUTPUT"
