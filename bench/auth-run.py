#!/usr/bin/env python3
"""The measuring half of bench/auth.sh (standard library only).

  auth-run.py run ROUND MODE URL   one measured wrk run of one mode, appended to $RUNS
  auth-run.py clean ROUND          exit 0 when every run of ROUND was clean (see below)
  auth-run.py quiet                wait (at most QUIET_WAIT_S) until the machine is quiet
  auth-run.py summary MODE...      the table of the clean rounds, and the targets

`run`: waits (at most QUIET_WAIT_S) until the rest of the machine uses less than QUIET_CORES
cores and the server's core is fast (below), warms up with wrk for WARMUP seconds, then runs
`wrk -t1 -cCONNS -dDURATIONs --latency` with bench/auth-wrk.lua pinned to CLIENT_CPU, metering
CPU as the peers harness does: the server's share of a core (SERVER_PID, pinned to SERVER_CPU by
the caller) and the "foreign" cores, everything that is neither the server nor wrk nor this
script. A run is clean when it got only 2xx answers, the foreign load stayed under QUIET_CORES,
and a speed probe on the server's CPU (a fixed piece of work, see `probe`) before and after it
took at most PROBE_SLACK (1.20) times the fastest probe of this benchmark; a round is clean when
all its runs are. The machine is shared with builds that come and go (a run that shares the
server's core with a compiler measures the compiler), and is a guest whose cores slow down
when the host is busy, which no load figure inside it shows.

env: RUNS (the JSONL file), SERVER_PID, SERVER_CPU, CLIENT_CPU, CONNS, DURATION, WARMUP, LUA, QUIET_CORES
(0.3), QUIET_WAIT_S (60), PROBE_SLACK (1.20); AUTH_BODY and AUTH_HEADERS are passed to wrk's script.
"""
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
QUIET_CORES = float(os.environ.get("QUIET_CORES", "0.3"))
QUIET_WAIT_S = float(os.environ.get("QUIET_WAIT_S", "60"))
PROBE_SLACK = float(os.environ.get("PROBE_SLACK", "1.20"))
TARGETS = (("api_key+quota", 0.90), ("api_key", 0.90), ("iam", 0.75), ("jwt", 0.75))


def sys_jiffies():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    return busy, busy + v[3] + v[4]


def proc_jiffies(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])
    except (OSError, IndexError, ValueError):
        return 0


def own_jiffies():
    t = os.times()
    return (t.user + t.system + t.children_user + t.children_system) * CLK_TCK


class Meter:
    def __init__(self, pid):
        self.pid, self.t0 = pid, time.perf_counter()
        self.b0, self.tot0 = sys_jiffies()
        self.s0, self.o0 = proc_jiffies(pid), own_jiffies()

    def done(self):
        wall = max(time.perf_counter() - self.t0, 1e-6)
        b1, tot1 = sys_jiffies()
        ds, do = proc_jiffies(self.pid) - self.s0, own_jiffies() - self.o0
        foreign = max(0.0, (b1 - self.b0 - ds - do) / max(1, tot1 - self.tot0) * NCPU)
        return {"server_core_share": round(ds / CLK_TCK / wall, 2), "foreign_cores": round(foreign, 2)}


PROBE = """
import hashlib, time
data, best = b"x" * (1 << 20), 1e9
for _ in range(7):
    t = time.perf_counter()
    for _ in range(8):
        hashlib.sha256(data).digest()
    n = 0
    for i in range(100000):
        n += i & 7
    best = min(best, time.perf_counter() - t)
print(best * 1e3)
"""


def probe():
    """Milliseconds for a fixed piece of work (SHA-256 of 8 MiB and a Python loop, best of 7)
    on the server's CPU while the server is idle: how fast that core is for us now. Another
    guest on the same host can slow it without showing up as load in this machine."""
    out = subprocess.run(["taskset", "-c", os.environ["SERVER_CPU"], sys.executable, "-c", PROBE],
                         capture_output=True, text=True).stdout
    ms = float(out)
    path = f"{os.environ['RUNS']}.probe"
    try:
        with open(path) as f:
            best = float(f.read())
    except OSError:  # the first call calibrates
        best = min([ms] + [float(subprocess.run(["taskset", "-c", os.environ["SERVER_CPU"], sys.executable, "-c",
                                                 PROBE], capture_output=True, text=True).stdout) for _ in range(4)])
    best = min(best, ms)
    with open(path, "w") as f:
        f.write(str(best))
    return round(ms, 2), best


def fast(probed):
    ms, best = probed
    return ms <= best * PROBE_SLACK


def wait_quiet(pid):
    """Waits (at most QUIET_WAIT_S) until the rest of the machine is idle and the server's core
    is as fast as it has been; returns the seconds waited and the last probe."""
    start = time.perf_counter()
    while True:
        m = Meter(pid)
        time.sleep(1.0)
        foreign = m.done()["foreign_cores"]
        probed = probe()
        waited = time.perf_counter() - start
        if (foreign < QUIET_CORES and fast(probed)) or waited >= QUIET_WAIT_S:
            return round(waited, 1), probed


def wrk(url, seconds):
    cmd = ["taskset", "-c", os.environ["CLIENT_CPU"], "wrk", "-t1", f"-c{os.environ['CONNS']}", f"-d{seconds}s",
           "--latency", "-s", os.environ["LUA"], url]
    return subprocess.run(["timeout", str(int(seconds) + 30)] + cmd, capture_output=True, text=True).stdout


UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def run(round_, mode, url):
    pid = int(os.environ["SERVER_PID"])
    waited, before = wait_quiet(pid)
    wrk(url, os.environ["WARMUP"])
    meter = Meter(pid)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    text = wrk(url, os.environ["DURATION"])
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    acct = meter.done()
    client = ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime
    acct["client_core_share"] = round(client / max(time.perf_counter() - meter.t0, 1e-6), 2)
    after = probe()
    if not fast(after):  # the probe has its own outliers: one more look before calling the run slow
        time.sleep(1.0)
        after = min(after, probe())
    acct["probe_ms"] = [before[0], after[0]]
    acct["core_fast"] = fast(before) and fast(after)

    def lat(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)$", text, re.M)
        return round(float(m.group(1)) * UNIT_MS[m.group(2)], 4) if m else None

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    err = re.search(r"Socket errors: (.*)", text)
    r = {"round": round_, "mode": mode, "rps": float(rps.group(1)) if rps else None, "p50": lat(50), "p99": lat(99),
         "non2xx": int(bad.group(1)) if bad else 0, "socket_errors": err.group(1).strip() if err else "",
         "quiet_wait_s": waited, **acct}
    r["clean"] = (bool(r["rps"]) and not r["non2xx"] and not r["socket_errors"] and r["foreign_cores"] < QUIET_CORES
                  and r["core_fast"])
    with open(os.environ["RUNS"], "a") as f:
        f.write(json.dumps(r) + "\n")
    with open(f"{os.environ['RUNS']}.wrk-{round_}-{mode}.txt", "w") as f:
        f.write(text)
    print(f"round {round_} {mode:<14} {r['rps'] or 0:>9.0f} req/s  p50 {r['p50']} ms  p99 {r['p99']} ms  "
          f"server {r['server_core_share']} core, wrk {r['client_core_share']}, foreign {r['foreign_cores']} cores, "
          f"probe {r['probe_ms'][0]}/{r['probe_ms'][1]} ms"
          f"{'' if r['clean'] else '  (not clean)'}", flush=True)
    if not r["rps"] or r["non2xx"] or r["socket_errors"]:
        sys.exit(f"wrong answers: non-2xx {r['non2xx']}, socket errors {r['socket_errors']!r}:\n{text}")


def runs():
    with open(os.environ["RUNS"]) as f:
        return [json.loads(line) for line in f]


def clean_rounds(all_runs):
    rounds = sorted({r["round"] for r in all_runs})
    return [n for n in rounds if all(r["clean"] for r in all_runs if r["round"] == n)]


def summary(modes):
    all_runs = runs()
    keep = clean_rounds(all_runs)
    total = len({r["round"] for r in all_runs})
    used = [r for r in all_runs if r["round"] in keep] if keep else all_runs
    note = f"{len(keep)} clean rounds of {total}" if keep else f"NO clean round of {total}: all rounds used"
    by = {m: sorted((r for r in used if r["mode"] == m), key=lambda r: r["rps"]) for m in modes}
    med = {m: statistics.median(r["rps"] for r in by[m]) for m in modes}
    none = {r["round"]: r["rps"] for r in by["none"]}
    print(f"\n{note}; per mode: median req/s, p50/p99 of the median run (the lower middle of an even count)\n")
    print("| mode | req/s (median) | p50 ms | p99 ms | / none | per-round / none: median (min–max) |")
    print("|---|---|---|---|---|---|")
    paired = {}
    for m in modes:
        r = by[m][(len(by[m]) - 1) // 2]
        paired[m] = sorted(x["rps"] / none[x["round"]] for x in by[m])
        p = paired[m]
        spread = "–" if m == "none" else f"{statistics.median(p):.3f} ({p[0]:.3f}–{p[-1]:.3f})"
        print(f"| {m} | {med[m]:,.0f} | {r['p50']:.3f} | {r['p99']:.3f} | {med[m] / med['none']:.3f} | {spread} |")
    print("\n| target | median / none median | median of per-round ratios | |\n|---|---|---|---|")
    for m, goal in TARGETS:
        if m in med:
            ratio, pr = med[m] / med["none"], statistics.median(paired[m])
            verdict = "met" if min(ratio, pr) >= goal else "NOT met" if max(ratio, pr) < goal else "borderline"
            print(f"| {m} ≥ {goal:.0%} of none | {ratio:.1%} | {pr:.1%} | {verdict} |")
    share = statistics.median(r["server_core_share"] for r in used)
    foreign = statistics.median(r["foreign_cores"] for r in used)
    client = statistics.median(r["client_core_share"] for r in used)
    probes = [ms for r in used for ms in r.get("probe_ms", [])]
    if probes:
        print(f"speed probe on the server's CPU (ms, lower is faster): median {statistics.median(probes)}, "
              f"min {min(probes)}, max {max(probes)}")
    print(f"\nruns used: median share of a core: server {share}, wrk {client}; median foreign load {foreign} cores")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "run":
        run(int(args[0]), args[1], args[2])
    elif cmd == "quiet":
        print(f"waited {wait_quiet(int(os.environ['SERVER_PID']))} s for quiet", file=sys.stderr)
    elif cmd == "clean":
        sys.exit(0 if int(args[0]) in clean_rounds(runs()) else 1)
    elif cmd == "summary":
        summary(args)
    else:
        sys.exit(__doc__)
