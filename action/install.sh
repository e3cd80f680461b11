#!/usr/bin/env bash
# Step 2 of action.yml: install sfx into SFX_INSTALL_DIR with the repository's
# install.sh (checksum verified) unless the cache restored it, and put that
# directory on PATH for this step's successors ($GITHUB_PATH).
set -euo pipefail
: "${GITHUB_PATH:?GITHUB_PATH is not set: this script is a step of action.yml}"
: "${SFX_INSTALL_DIR:?SFX_INSTALL_DIR is not set}"
here=$(cd "$(dirname "$0")" && pwd)
exe=sfx
case "$(uname -s)" in MINGW* | MSYS* | CYGWIN*) exe=sfx.exe ;; esac
version=${SFX_VERSION:-latest}
# A pinned version found in place (restored by actions/cache, or left by an earlier job
# on a self-hosted runner) is used as it is; `latest` is always installed afresh.
if [ "$version" != latest ] && [ -x "$SFX_INSTALL_DIR/$exe" ] && "$SFX_INSTALL_DIR/$exe" --version >/dev/null 2>&1; then
  echo "sfx: $("$SFX_INSTALL_DIR/$exe" --version) from the cache"
else
  if ! sh "$here/../install.sh"; then
    echo "::error title=sfx::could not install sfx ${SFX_VERSION:-latest} (see the log above)"
    exit 1
  fi
fi
echo "$SFX_INSTALL_DIR" >>"$GITHUB_PATH"
