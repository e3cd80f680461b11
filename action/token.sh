#!/usr/bin/env bash
# Step 3 of action.yml: get a valid access token with the installed sfx, mask it,
# export it for later steps through $GITHUB_ENV and set the step's outputs.
#
# Inputs come in the environment only (INPUT_AUTH_URL, INPUT_STORE, INPUT_STORE_KEY,
# INPUT_STORE_NAMESPACE, INPUT_ORG, INPUT_MIN_VALID), never on a command line, and
# are handed to sfx the same way (SFX_AUTH_URL, SFX_STORE, SFX_STORE_KEY).
#
# Exported for later steps: SFX_ACCESS_TOKEN, SFX_INSTANCE_URL, SF_ACCESS_TOKEN,
# SF_INSTANCE_URL, SF_TARGET_ORG, SF_ORG_INSTANCE_URL (sfx's `--format env`). Never
# exported: the auth URL, the store key, a refresh token — a later `sfx` runs on the
# access token alone and cannot spend a refresh token.
#
# Under refresh-token rotation (environment mode) the auth URL in the secret is spent
# by this run: the step says so with a ::warning::, sets refresh-token-rotated=true and
# hands the new auth URL out, masked, as the `auth-url` output.
#
# Exit status: sfx's own when it fails (4 log in again, 5 network, 6 store, …);
# 2 for inputs that do not fit together; 1 otherwise.
set -euo pipefail

error() { echo "::error title=sfx::$*"; }
# mask VALUE: ::add-mask:: each line of VALUE, escaped as the runner decodes command data
# (%25 -> %, %0D, %0A): the runner masks log lines one by one, and an unescaped `%25` in a
# secret (a percent-encoded password in a store URL) would register the wrong string.
mask() {
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%$'\r'}
    if [ -n "$line" ]; then
      line=${line//%/%25}
      echo "::add-mask::${line//$'\r'/%0D}"
    fi
  done <<<"$1"
}
: "${GITHUB_ENV:?GITHUB_ENV is not set: this script is a step of action.yml}"
: "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set: this script is a step of action.yml}"

auth_url=${INPUT_AUTH_URL:-}
store=${INPUT_STORE:-}
store_key=${INPUT_STORE_KEY:-}
namespace=${INPUT_STORE_NAMESPACE:-}
org=${INPUT_ORG:-}
min_valid=${INPUT_MIN_VALID:-10m}

# Secrets are masked again here, in case a caller passed one that is not a
# repository secret (an output of an earlier step, a variable).
for s in "$auth_url" "$store_key" "$store"; do
  if [ -n "$s" ]; then mask "$s"; fi
done

if [ -n "$auth_url" ] && [ -n "$store" ]; then
  error "give either auth-url (environment mode) or store (shared store mode), not both"
  exit 2
fi
if [ -z "$auth_url" ] && [ -z "$store" ]; then
  error "give auth-url (an SFDX auth URL secret) or store and store-key (a shared store): sfx has no org to take a token from"
  exit 2
fi
if [ -n "$auth_url" ] && [ -n "$org" ]; then
  error "org names an org in a shared store; with auth-url the org is the one the URL describes: leave org empty"
  exit 2
fi
# Checked before sfx runs (in environment mode sfx reads min-valid only after the token is
# out) and never echoed when odd: a newline then `::stop-commands::` in the log would turn
# off every later ::add-mask::.
case "$min_valid" in
  *[!0-9A-Za-z.\ ]* | [!0-9]* | "")
    error "min-valid is not a duration such as 90s, 10m or 1h30m"
    exit 2
    ;;
esac
for pair in "org=$org" "store-namespace=$namespace"; do
  case "${pair#*=}" in
    *[[:cntrl:]]*)
      error "the ${pair%%=*} input holds a line break or another control character"
      exit 2
      ;;
  esac
done

# Nothing of the caller's environment decides which org sfx uses: only the inputs.
unset SFX_AUTH_URL SFX_REFRESH_TOKEN SFX_ACCESS_TOKEN SFX_CLIENT_ID SFX_CLIENT_SECRET \
  SFX_INSTANCE_URL SFX_LOGIN_URL SFX_STORE SFX_STORE_KEY SFX_STORE_NAMESPACE SFX_ORG
export SFX_NO_INPUT=1

lines=$(mktemp "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/sfx-token.XXXXXX")
trap 'rm -f "$lines"' EXIT

code=0
if [ -n "$auth_url" ]; then
  # No access token comes with an auth URL, so this refreshes; `refresh --format env`
  # (unlike `token`) also prints the new SFX_AUTH_URL when Salesforce rotates.
  SFX_AUTH_URL="$auth_url" sfx refresh --format env >"$lines" || code=$?
else
  [ -n "$namespace" ] && export SFX_STORE_NAMESPACE="$namespace"
  args=(token --format env --min-valid "$min_valid")
  [ -n "$org" ] && args+=(--org "$org")
  SFX_STORE="$store" SFX_STORE_KEY="$store_key" sfx "${args[@]}" >"$lines" || code=$?
fi
if [ "$code" -ne 0 ]; then
  case "$code" in
    4) if [ -n "$auth_url" ]; then
         error "sfx could not refresh with the auth-url secret (exit 4): it is dead. If the connected app rotates refresh tokens, an earlier run or another machine spent it; mint a new one (sfx token --auth-url -o ORG) and update the secret, or use a shared store with a refresher"
       else
         error "sfx needs a human to log in to this org again (exit 4); see the message above"
       fi ;;
    5) error "sfx could not reach Salesforce (exit 5); see the message above" ;;
    6) error "sfx could not use the shared store (exit 6); see the message above" ;;
    2) error "sfx refused an input (exit 2); see the message above" ;;
    *) error "sfx failed (exit $code); see the message above" ;;
  esac
  exit "$code"
fi

# Mask every secret before anything else is written; then export all but the auth URL.
new_auth_url=""
access_token=""
while IFS= read -r line || [ -n "$line" ]; do
  name=${line%%=*}
  value=${line#*=}
  case "$name" in
    SFX_ACCESS_TOKEN | SF_ACCESS_TOKEN | SF_TARGET_ORG)
      mask "$value"
      access_token=$value
      ;;
    SFX_AUTH_URL)
      mask "$value"
      new_auth_url=$value
      ;;
    SFX_INSTANCE_URL | SF_INSTANCE_URL | SF_ORG_INSTANCE_URL) ;;
    *)
      error "sfx printed an unexpected line (\`${name:0:40}\`); nothing was exported"
      exit 1
      ;;
  esac
done <"$lines"
if [ -z "$access_token" ]; then
  error "sfx printed no access token; nothing was exported"
  exit 1
fi
grep -v '^SFX_AUTH_URL=' "$lines" >>"$GITHUB_ENV"

if [ -n "$new_auth_url" ]; then
  echo "refresh-token-rotated=true" >>"$GITHUB_OUTPUT"
  echo "auth-url=$new_auth_url" >>"$GITHUB_OUTPUT"
  echo "::warning title=sfx: the auth-url secret is now spent::Salesforce rotated the refresh token, so the auth URL in the secret given as auth-url no longer works and the next run with it will fail. The new one is this step's auth-url output (masked): store it now (e.g. gh secret set with a token allowed to), or use a shared store with a refresher (sfx watch) so CI never holds a refresh token."
else
  echo "refresh-token-rotated=false" >>"$GITHUB_OUTPUT"
fi

# When the token expires: introspection with the app's credentials (environment
# mode; no refresh), or what the store knows.
expiry=""
within=0
if [ -n "$auth_url" ]; then
  expiry=$(SFX_AUTH_URL="${new_auth_url:-$auth_url}" SFX_ACCESS_TOKEN="$access_token" \
    sfx expires --json --within "$min_valid") || within=$?
else
  args=(expires --json --within "$min_valid")
  [ -n "$org" ] && args+=(--org "$org")
  expiry=$(SFX_STORE="$store" SFX_STORE_KEY="$store_key" sfx "${args[@]}") || within=$?
fi
expires_at=$(printf '%s' "$expiry" | sed -n 's/.*"expires_at":"\([^"]*\)".*/\1/p')
echo "expires-at=$expires_at" >>"$GITHUB_OUTPUT"
case "$within" in
  0) echo "sfx: the access token of ${org:-the org} is exported; it expires at ${expires_at:-an unknown time}" ;;
  3) echo "::warning title=sfx::the access token expires within min-valid ($min_valid), at ${expires_at:-an unknown time}: the org's session timeout may be shorter than that" ;;
  *) echo "::warning title=sfx::sfx could not tell when the token expires (exit $within); the token is exported" ;;
esac
