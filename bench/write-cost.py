#!/usr/bin/env python3
"""Stage 10 of bench/run.sh: the bytes one refresh writes, against the number of orgs (issue #23).

    write-cost.py SFX FAKE_URL WORKDIR OUT.md [N ...]

WATCH_SECONDS (default 30) sets the length of the second measurement (below).

For each N (default 100 1000 10000): a file store of N orgs made as
watch-scale.py makes it (`SCALE_STORE_ONLY=1`), every session 3 hours old; then
`sfx refresh --org orgK` for 20 different orgs, each under
`strace -f -y -e trace=write,writev,pwrite64`, which names the file behind every
write. The bytes are summed by file: the org records (`orgs.json`, its temp
files and `orgs.journal`), the secrets (`secrets.json` and its temp files and
journal), and the rest (the request to the fake, locks).

Then, with every session expired, `sfx watch --all --json` for WATCH_SECONDS:
the bytes it wrote (`wchar` of /proc/PID/io: files, the requests and its
events on stdout alike) divided by the `refreshed` events it printed. Appends
Markdown tables to OUT.md.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import time

sfx, fake_url, work, out_md = sys.argv[1:5]
sizes = [int(n) for n in sys.argv[5:]] or [100, 1000, 10000]
here = os.path.dirname(os.path.abspath(__file__))
WRITE = re.compile(r'^\d+\s+(?:write|writev|pwrite64)\((\d+)<([^>]*)>.*\)\s+=\s+(\d+)$')
REFRESHES = 20
WATCH_SECONDS = int(os.environ.get("WATCH_SECONDS", "30"))


def kind(path):
    name = os.path.basename(path)
    if name.startswith(("orgs.", ".orgs.")):
        return "orgs"
    if name.startswith(("secrets.", ".secrets.")):
        return "secrets"
    return "other"


rows = []
for n in sizes:
    home = os.path.join(work, f"wc{n}", "home")
    env = dict(os.environ, SCALE_STORE_ONLY="1")
    subprocess.run([sys.executable, os.path.join(here, "watch-scale.py"), sfx, fake_url, home,
                    str(n), "0", "/dev/null"], env=env, check=True, stdout=subprocess.DEVNULL)
    # Every session 3 hours old, as a watch finds them when they are due.
    path = os.path.join(home, "orgs.json")
    doc = json.load(open(path))
    for rec in doc["orgs"].values():
        rec["issued_at"] = int(time.time()) - 3 * 3600
    with open(path, "w") as f:
        json.dump(doc, f)
    per = {"orgs": [], "secrets": [], "other": []}
    files = {"orgs.json": os.path.getsize(path),
             "secrets.json": os.path.getsize(os.path.join(home, "secrets.json"))}
    run_env = dict(os.environ, SFX_HOME=home, SFX_CREDENTIAL_STORE="file")
    trace = os.path.join(work, f"wc{n}.strace")
    for i in range(REFRESHES):
        alias = f"org{1 + i * max(1, n // REFRESHES)}"
        subprocess.run(["strace", "-f", "-y", "-e", "trace=write,writev,pwrite64", "-o", trace,
                        sfx, "refresh", "--org", alias, "-q"], env=run_env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        got = {"orgs": 0, "secrets": 0, "other": 0}
        for line in open(trace):
            m = WRITE.match(line.strip())
            if m:
                got[kind(m.group(2))] += int(m.group(3))
        for k, v in got.items():
            per[k].append(v)
    journal = os.path.join(home, "orgs.journal")
    journal_len = os.path.getsize(journal) if os.path.exists(journal) else 0
    # A watch over the same orgs, every session expired (as after a night off).
    events = os.path.join(work, f"wc{n}.events")
    with open(events, "w") as ev:
        child = subprocess.Popen([sfx, "watch", "--all", "--json"], env=run_env, stdout=ev,
                                 stderr=subprocess.DEVNULL)
        wchar = 0
        t0 = time.time()
        while time.time() - t0 < WATCH_SECONDS:
            time.sleep(0.5)
            try:
                with open(f"/proc/{child.pid}/io") as f:
                    wchar = int(dict(l.split(": ") for l in f.read().splitlines())["wchar"])
            except OSError:
                break
        child.terminate()
        child.wait(timeout=60)
    refreshed = sum(1 for l in open(events) if '"event":"refreshed"' in l)
    rows.append((n, files, {k: statistics.mean(v) for k, v in per.items()},
                 {k: max(v) for k, v in per.items()}, journal_len,
                 (refreshed, wchar)))

with open(out_md, "a") as f:
    f.write(f"\n## Bytes written by one `sfx refresh`, by org count ({REFRESHES} refreshes "
            "each, file credential store, strace)\n\n")
    f.write("| orgs | orgs.json bytes | secrets.json bytes | org records: mean / max bytes per refresh "
            "| secrets: mean / max | other: mean | orgs.journal at end |\n|---|---|---|---|---|---|---|\n")
    for n, files, mean, mx, j, _ in rows:
        f.write(f"| {n:,} | {files['orgs.json']:,} | {files['secrets.json']:,} | "
                f"{mean['orgs']:,.0f} / {mx['orgs']:,} | {mean['secrets']:,.0f} / {mx['secrets']:,} | "
                f"{mean['other']:,.0f} | {j:,} |\n")
    f.write(f"\n`sfx watch --all --json` for {WATCH_SECONDS} s, every session expired:\n\n"
            "| orgs | refreshes | bytes written (wchar) | bytes per refresh |\n|---|---|---|---|\n")
    for n, _, _, _, _, (refreshed, wchar) in rows:
        per_refresh = f"{wchar / refreshed:,.0f}" if refreshed else "–"
        f.write(f"| {n:,} | {refreshed:,} | {wchar:,} | {per_refresh} |\n")
print(open(out_md).read())
