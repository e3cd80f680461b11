#!/usr/bin/env python3
"""Stage 7 of bench/run.sh: `sfx watch --all --listen` over many orgs (issue #16).

    watch-scale.py SFX FAKE_URL HOME N SECONDS OUT.md [DELAY_MS]

Makes N orgs in a file store at HOME (one fake user per org, as Salesforce keeps
five approvals per user and app), the way `sfx login --auth-url` stores them
(metadata + secrets files, a 2-hour session just issued), but written directly:
10,000 `sfx login` runs would take longer than the measurement. Then runs
`sfx watch --all --json --listen` for SECONDS and measures RSS and CPU (from
/proc, every few seconds), the requests the fake saw per 10 s, and the latency of
`/metrics` and `/readyz`. Appends a Markdown section to OUT.md. DELAY_MS (default
0) makes the fake take that long per request, as a real Salesforce does.
"""
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse

sfx, fake_url, home, n, seconds, out_md = sys.argv[1:7]
n, seconds = int(n), int(seconds)
delay_ms = int(sys.argv[7]) if len(sys.argv) > 7 else 0
fake = urllib.parse.urlparse(fake_url)
CLIENT = "3MVG9fake.sfx.demo"


def control(conn, method, path, body=None):
    conn.request(method, "/__fake/" + path, body=json.dumps(body) if body is not None else None,
                 headers={"content-type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise SystemExit(f"control {path}: {r.status} {data[:200]!r}")
    return json.loads(data)


def mask(t):
    return t[:5] + "\u2026" + t[-4:]


def make_store():
    conn = http.client.HTTPConnection(fake.hostname, fake.port)
    os.makedirs(home, mode=0o700, exist_ok=True)
    now = int(time.time())
    orgs, secrets = {}, {}
    t0 = time.time()
    for i in range(1, n + 1):
        user = f"user{i}.scale@example.com"
        control(conn, "POST", "users", {"username": user})
        g = control(conn, "POST", "grant", {"client_id": CLIENT, "username": user})
        secret = g["auth_url"].split(":")[2]
        alias = f"org{i}"
        orgs[alias] = {
            "alias": alias, "username": user, "org_id": "00D5g000004FAKEEA4",
            "user_id": None, "instance_url": fake_url, "login_url": None,
            "client_id": CLIENT, "flow": "auth_url", "store": "file",
            "issued_at": now, "session_timeout_secs": 7200, "expiry": None,
            "access_token_masked": mask(g["access_token"]), "has_refresh_token": True,
            "has_client_secret": bool(secret), "refresh_token_used_at": now,
            "rotates_refresh_token": False,
        }
        secrets[alias] = {"access-token": g["access_token"], "refresh-token": g["refresh_token"],
                          "client-secret": secret}
    for name, doc in (("orgs.json", {"version": 1, "default": None, "orgs": orgs}),
                      ("secrets.json", secrets)):
        path = os.path.join(home, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
    control(conn, "DELETE", "requests")
    return time.time() - t0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def get(port, path):
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    ms = (time.perf_counter() - t0) * 1000
    c.close()
    return r.status, body, ms


def proc(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(parts[11]) + int(parts[12])) / ticks
    status = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            status[k] = v.strip()
    kib = lambda k: int(status.get(k, "0 kB").split()[0])
    return cpu, kib("VmRSS"), kib("VmHWM"), int(status.get("Threads", "0"))


made = make_store()
if os.environ.get("SCALE_STORE_ONLY"):
    # Only the store (for timing one-shot commands against it, see BENCHMARKS §7).
    raise SystemExit(0)
control(http.client.HTTPConnection(fake.hostname, fake.port), "POST", "delay", {"ms": delay_ms})
port = free_port()
env = dict(os.environ, SFX_HOME=home, SFX_CREDENTIAL_STORE="file")
events = open(os.path.join(home, "..", "watch-events.jsonl"), "w")
started = time.time()
child = subprocess.Popen([sfx, "watch", "--all", "--json", "--listen", f"127.0.0.1:{port}"],
                         env=env, stdout=events, stderr=subprocess.DEVNULL)
samples, scrapes, ready_ms, sizes = [], [], [], []
first_ok = None
try:
    while time.time() - started < seconds:
        time.sleep(2)
        if child.poll() is not None:
            raise SystemExit(f"sfx watch ended early with {child.returncode}")
        samples.append((time.time() - started, *proc(child.pid)))
        try:
            # Two scrapes more than the 0.5 s reuse apart: both render afresh.
            for _ in range(2):
                status, body, ms = get(port, "/metrics")
                if status == 200:
                    first_ok = first_ok or time.time() - started
                    scrapes.append(ms)
                    sizes.append(len(body))
                time.sleep(0.6)
            _, _, ms = get(port, "/readyz")
            ready_ms.append(ms)
        except OSError:
            pass
finally:
    child.terminate()
    child.wait(timeout=60)
    events.close()

conn = http.client.HTTPConnection(fake.hostname, fake.port)
control(conn, "POST", "delay", {"ms": 0})
reqs = control(conn, "GET", "requests")
buckets = {}
for r in reqs:
    t = r["at_ms"] / 1000 - started
    b = int(t // 10) * 10
    kind = {"/services/oauth2/introspect": "introspect", "/services/oauth2/token": "token"}.get(r["path"], "other")
    buckets.setdefault(b, {"introspect": 0, "token": 0, "other": 0})[kind] += 1
first10 = sum(v["introspect"] + v["token"] for k, v in buckets.items() if k < 10)
peak_10s = max((sum(v.values()) for v in buckets.values()), default=0)
cpu_total = samples[-1][1]
by_min = []
for m in range(1, seconds // 60 + 1):
    at = [s for s in samples if s[0] <= m * 60]
    prev = [s for s in samples if s[0] <= (m - 1) * 60]
    if at:
        by_min.append(at[-1][1] - (prev[-1][1] if prev else 0.0))
hwm = max(s[3] for s in samples)
rss_end = samples[-1][2]
scrapes.sort()

with open(out_md, "a") as f:
    f.write(f"\n## 7. `sfx watch --all --listen`, {n:,} orgs, {seconds} s, 2 h sessions, "
            f"{delay_ms} ms per request (goals: RSS ≤ 64 MB, `/metrics` ≤ 50 ms)\n\n")
    f.write(f"The store was written directly in {made:.0f} s (one fake user per org); every token is "
            "fresh, so no org needs a refresh and start-up is all introspections.\n\n")
    f.write("| peak RSS MiB | RSS at end MiB | CPU s, whole run | CPU s per minute | threads |\n|---|---|---|---|---|\n")
    f.write(f"| {hwm/1024:.1f} | {rss_end/1024:.1f} | {cpu_total:.1f} | "
            f"{' / '.join('%.1f' % c for c in by_min)} | {samples[-1][4]} |\n\n")
    f.write("| `/metrics` scrapes | median ms | p90 ms | max ms | body KiB | `/readyz` median ms |\n|---|---|---|---|---|---|\n")
    if scrapes:
        f.write(f"| {len(scrapes)} | {statistics.median(scrapes):.1f} | "
                f"{scrapes[int(len(scrapes) * 0.9)]:.1f} | {scrapes[-1]:.1f} | "
                f"{max(sizes)/1024:.0f} | {statistics.median(ready_ms):.1f} |\n\n")
    f.write(f"Requests the fake saw: {len(reqs):,} in all; {first10:,} in the first 10 s; "
            f"at most {peak_10s:,} in any 10 s. Per 10 s (introspect/token):\n\n")
    f.write(" ".join(f"{k}s:{v['introspect']}/{v['token']}" for k, v in sorted(buckets.items())) + "\n")
print(open(out_md).read())
