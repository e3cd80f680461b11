#!/usr/bin/env bash
# Step 1 of action.yml: where this run's sfx lives, and whether it can be cached
# (a pinned version can; `latest` changes under the same name, so it is installed
# afresh each run). Reads SFX_VERSION, TOOL_CACHE, RUNNER_OS_ARCH; writes the
# step's outputs `dir`, `cacheable`, `cache-key` to $GITHUB_OUTPUT.
set -euo pipefail
: "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set: this script is a step of action.yml}"
version=${SFX_VERSION:-latest}
version=${version#v}
case "$version" in
  latest) cacheable=false ;;
  *[!0-9A-Za-z.+-]* | "")
    echo "::error title=sfx::the version input \`$version\` is not a version such as 0.2.0 (or latest)"
    exit 2
    ;;
  *) cacheable=true ;;
esac
dir="${TOOL_CACHE:-${RUNNER_TEMP:-/tmp}}/sfx/$version/${RUNNER_OS_ARCH:-local}"
{
  echo "dir=$dir"
  echo "cacheable=$cacheable"
  echo "cache-key=sfx-$version-${RUNNER_OS_ARCH:-local}"
} >>"$GITHUB_OUTPUT"
