#!/usr/bin/env bash
# Step 2 of action.yml: install sfx into SFX_INSTALL_DIR with the repository's
# install.sh, and put that directory on PATH for this step's successors ($GITHUB_PATH).
# A pinned version keeps its archive in SFX_ARCHIVE_DIR (the cached directory), which
# install.sh uses only after checking it against a freshly downloaded SHA256SUMS: a
# poisoned cache entry (anyone who can run a workflow job in the repository can write
# one, and on a self-hosted runner an earlier job can leave one) is never run.
set -euo pipefail
: "${GITHUB_PATH:?GITHUB_PATH is not set: this script is a step of action.yml}"
: "${SFX_INSTALL_DIR:?SFX_INSTALL_DIR is not set}"
here=$(cd "$(dirname "$0")" && pwd)
version=${SFX_VERSION:-latest}
[ "$version" != latest ] || unset SFX_ARCHIVE_DIR
if ! sh "$here/../install.sh"; then
  echo "::error title=sfx::could not install sfx ${SFX_VERSION:-latest} (see the log above)"
  exit 1
fi
echo "$SFX_INSTALL_DIR" >>"$GITHUB_PATH"
