#!/usr/bin/env python3
"""The measuring half of bench/functions.sh (standard library only).

  functions-run.py measure KIND ROUND [--tree PID]... -- CMD...
        one group of measurements: waits until the machine is quiet, runs CMD (which prints one
        JSON object a line: target/release/functions_bench's output), meters the CPU while it
        runs, and appends every line to $RUNS with kind, round, the foreign load and whether the
        group was clean. A group that was not clean is run again, at most RETRIES (2) more
        times; the last attempt is kept (marked not clean when it still was not).
  functions-run.py wrk ROUND LABEL URL BODY [--tree PID]...
        one throughput run: quiet, WARMUP seconds of `wrk -t1 -cCONNS` (discarded), then
        DURATION seconds measured (`--latency`), pinned to CLIENT_CPU; retried as `measure`.
  functions-run.py report
        the tables (markdown) and the targets, from $RUNS.

Quiet and clean follow bench/auth-run.py (whose speed probe this imports): the rest of the
machine uses less than QUIET_CORES cores (everything but the server trees given with --tree,
this script and what it runs), and the speed probe on SERVER_CPU is within PROBE_SLACK of the
fastest seen, before and after. The server trees are the PIDs given and all their
descendants (nimbus's instances and their sandbox supervisors), looked up at the start and at
the end of the window.

env: RUNS, SERVER_CPU, CLIENT_CPU, CONNS (8), DURATION (10), WARMUP (2), QUIET_CORES (0.3),
QUIET_WAIT_S (60), PROBE_SLACK (1.20), RETRIES (2).
"""
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("auth_run", os.path.join(HERE, "auth-run.py"))
auth_run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(auth_run)

CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
QUIET_CORES = float(os.environ.get("QUIET_CORES", "0.3"))
QUIET_WAIT_S = float(os.environ.get("QUIET_WAIT_S", "60"))
RETRIES = int(os.environ.get("RETRIES", "2"))
LAT_TARGET_US = 100.0
TP_TARGET = 0.30


def descendants(pid):
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/children") as f:
                    kids = [int(x) for x in f.read().split()]
            except OSError:
                kids = []
            for k in kids:
                if k not in out:
                    out.append(k)
                    stack.append(k)
    return out


def tree_jiffies(roots):
    """{pid: utime+stime} over the trees of `roots`."""
    out = {}
    for r in roots:
        for p in [r] + descendants(r):
            j = auth_run.proc_jiffies(p)
            if j:
                out[p] = j
    return out


class TreeMeter:
    def __init__(self, roots):
        self.roots, self.t0 = roots, time.perf_counter()
        self.b0, self.tot0 = auth_run.sys_jiffies()
        self.s0, self.o0 = tree_jiffies(roots), auth_run.own_jiffies()

    def done(self):
        wall = max(time.perf_counter() - self.t0, 1e-6)
        b1, tot1 = auth_run.sys_jiffies()
        s1 = tree_jiffies(self.roots)
        ds = sum(j - self.s0.get(p, 0) for p, j in s1.items())
        do = auth_run.own_jiffies() - self.o0
        foreign = max(0.0, (b1 - self.b0 - ds - do) / max(1, tot1 - self.tot0) * NCPU)
        return {"server_core_share": round(ds / CLK_TCK / wall, 2), "foreign_cores": round(foreign, 2)}


def wait_quiet(roots):
    start = time.perf_counter()
    while True:
        m = TreeMeter(roots)
        time.sleep(1.0)
        foreign = m.done()["foreign_cores"]
        probed = auth_run.probe()
        waited = time.perf_counter() - start
        if (foreign < QUIET_CORES and auth_run.fast(probed)) or waited >= QUIET_WAIT_S:
            return round(waited, 1), probed


def attempt(roots, run):
    """Quiet, then `run()` metered; returns (its result, the accounting, clean)."""
    waited, before = wait_quiet(roots)
    meter = TreeMeter(roots)
    result = run()
    acct = meter.done()
    after = auth_run.probe()
    if not auth_run.fast(after):
        time.sleep(1.0)
        after = min(after, auth_run.probe())
    acct.update({"quiet_wait_s": waited, "probe_ms": [before[0], after[0]]})
    clean = acct["foreign_cores"] < QUIET_CORES and auth_run.fast(before) and auth_run.fast(after)
    return result, acct, clean


def record(lines):
    with open(os.environ["RUNS"], "a") as f:
        for r in lines:
            f.write(json.dumps(r) + "\n")


def split_trees(args):
    roots, rest = [], []
    it = iter(args)
    for a in it:
        if a == "--tree":
            roots.append(int(next(it)))
        else:
            rest.append(a)
    return roots, rest


def measure(kind, round_, args):
    sep = args.index("--")
    roots, _ = split_trees(args[:sep])
    cmd = args[sep + 1:]
    for n in range(RETRIES + 1):
        proc, acct, clean = attempt(roots, lambda: subprocess.run(cmd, capture_output=True, text=True))
        if proc.returncode != 0:
            sys.exit(f"measure {kind} {round_}: {' '.join(cmd[:3])}… failed:\n{proc.stdout}\n{proc.stderr}")
        if clean or n == RETRIES:
            break
        print(f"  {kind} round {round_}: not clean (foreign {acct['foreign_cores']} cores, probe "
              f"{acct['probe_ms']} ms): again", file=sys.stderr, flush=True)
    lines = [dict(json.loads(line), kind=kind, round=round_, clean=clean, attempts=n + 1, **acct)
             for line in proc.stdout.splitlines() if line.strip()]
    record(lines)
    for r in lines:
        what = r.get("path") or r.get("side", "")
        fig = (f"init {r['init_ms']} ms, first {r['first_ms']} ms" if "init_ms" in r
               else f"p50 {r['p50_us']} us, p99 {r['p99_us']} us")
        print(f"{kind} {round_} {r.get('handler') or r.get('label', '')} {what}: {fig}"
              f"{'' if clean else '  (not clean)'}", flush=True)


def wrk_once(url, body, seconds, latency):
    lua = os.path.join(os.path.dirname(os.environ["RUNS"]), "post.lua")
    with open(lua, "w") as f:
        f.write(f'local f = assert(io.open("{body}", "rb"))\nwrk.body = f:read("*a")\nf:close()\n'
                'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
    cmd = ["taskset", "-c", os.environ["CLIENT_CPU"], "wrk", "-t1", f"-c{os.environ.get('CONNS', '8')}",
           f"-d{seconds}s"] + (["--latency"] if latency else []) + ["-s", lua, url]
    return subprocess.run(["timeout", str(int(seconds) + 30)] + cmd, capture_output=True, text=True).stdout


def wrk(round_, label, url, body, args):
    roots, _ = split_trees(args)
    warmup, duration = os.environ.get("WARMUP", "2"), os.environ.get("DURATION", "10")
    for n in range(RETRIES + 1):
        wrk_once(url, body, warmup, False)
        text, acct, clean = attempt(roots, lambda: wrk_once(url, body, duration, True))
        if clean or n == RETRIES:
            break
        print(f"  tp {label} round {round_}: not clean (foreign {acct['foreign_cores']} cores): again",
              file=sys.stderr, flush=True)

    def lat(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)$", text, re.M)
        return round(float(m.group(1)) * auth_run.UNIT_MS[m.group(2)], 4) if m else None

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    err = re.search(r"Socket errors: (.*)", text)
    r = {"kind": "tp", "round": round_, "label": label, "rps": float(rps.group(1)) if rps else None,
         "p50": lat(50), "p99": lat(99), "non2xx": int(bad.group(1)) if bad else 0,
         "socket_errors": err.group(1).strip() if err else "", "clean": clean, "attempts": n + 1, **acct}
    with open(f"{os.environ['RUNS']}.wrk-{round_}-{label}.txt", "w") as f:
        f.write(text)
    record([r])
    print(f"tp {round_} {label:<14} {r['rps'] or 0:>9.0f} req/s  p50 {r['p50']} ms  p99 {r['p99']} ms  "
          f"server tree {r['server_core_share']} core, foreign {r['foreign_cores']} cores"
          f"{'' if clean else '  (not clean)'}", flush=True)
    if not r["rps"] or r["non2xx"] or r["socket_errors"]:
        sys.exit(f"wrong answers from {url}: non-2xx {r['non2xx']}, socket errors {r['socket_errors']!r}:\n{text}")


# ---------------------------------------------------------------- the report
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs, fmt):
    xs = sorted(x for x in xs if x is not None)
    return f"{fmt(statistics.median(xs))} ({fmt(xs[0])}–{fmt(xs[-1])})" if xs else "–"


def report():
    with open(os.environ["RUNS"]) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    unclean = sum(1 for r in rows if not r.get("clean", True))
    ms = lambda x: f"{x:.2f}"  # noqa: E731
    us = lambda x: f"{x:.0f}"  # noqa: E731

    cold = [r for r in rows if r["kind"] == "cold"]
    if cold:
        n = len({r["round"] for r in cold})
        print(f"\n### Cold start ({n} runs each; median (min–max))\n")
        print("| handler | Init Duration, nimbus (REPORT) | init, floor (spawn → first `next`) | nimbus − floor "
              "| first invocation end to end, nimbus (client) | floor (spawn → answer) | nimbus − floor |")
        print("|---|---|---|---|---|---|---|")
        for h in ("python", "rust"):
            nim = [r for r in cold if r["handler"] == h and r["side"] == "nimbus"]
            flo = [r for r in cold if r["handler"] == h and r["side"] == "floor"]
            if not nim or not flo:
                continue
            ni, fi = med(r["init_ms"] for r in nim), med(r["init_ms"] for r in flo)
            nf, ff = med(r["first_ms"] for r in nim), med(r["first_ms"] for r in flo)
            print(f"| {h} | {spread([r['init_ms'] for r in nim], ms)} ms | {spread([r['init_ms'] for r in flo], ms)} ms "
                  f"| **{ni - fi:+.2f} ms** ({ni / fi:.2f}×) | {spread([r['first_ms'] for r in nim], ms)} ms "
                  f"| {spread([r['first_ms'] for r in flo], ms)} ms | **{nf - ff:+.2f} ms** |")

    lat = [r for r in rows if r["kind"] == "lat"]
    if lat:
        n = len({r["round"] for r in lat})
        per = max((r["n"] for r in lat), default=0)

        def fig(h, path, key="p50_us"):
            return med(r[key] for r in lat if r["handler"] == h and r["path"] == path)

        rtt, rtt99 = fig("hyper", "hyper-rtt"), fig("hyper", "hyper-rtt", "p99_us")
        print(f"\n### Warm invoke latency ({per} sequential requests per run, {n} rounds; the median of the "
              "rounds' medians and of their p99s, µs)\n")
        print("| handler | path | median | p99 | floor: median (p99) | overhead: median − floor "
              "| target ≤ 100 µs | overhead less one HTTP round trip |")
        print("|---|---|---|---|---|---|---|---|")
        for h in ("python", "rust"):
            for path, floor, name in (("invoke", "floor-direct", "Invoke API (SigV4)"),
                                      ("gateway", "floor-apigw", "gateway `POST /fnbench/prod/…`")):
                m, p99, fm, fp = fig(h, path), fig(h, path, "p99_us"), fig(h, floor), fig(h, floor, "p99_us")
                if m is None or fm is None:
                    continue
                over = m - fm
                verdict = "met" if over <= LAT_TARGET_US else f"NOT met (+{over - LAT_TARGET_US:.0f} µs)"
                less = f"{over - rtt:.0f}" if rtt is not None else "–"
                print(f"| {h} | {name} | {us(m)} | {us(p99)} | {us(fm)} ({us(fp)}) | **{over:.0f}** | {verdict} | {less} |")
        if rtt is not None:
            print(f"\nOne HTTP round trip, client on CPU {os.environ.get('CLIENT_CPU')} → hyper floor on CPU "
                  f"{os.environ.get('SERVER_CPU')} (same client, same body): median {rtt:.0f} µs, p99 {rtt99:.0f} µs; "
                  f"both on CPU {os.environ.get('SERVER_CPU')}: median {fig('hyper', 'hyper-rtt-same-cpu'):.0f} µs.")
        same = [(h, p) for h in ("python", "rust") for p in ("invoke-same-cpu", "gateway-same-cpu") if fig(h, p)]
        if same:
            print("\nThe same with the client on the server's CPU (no cross-CPU wake-up on the way):\n")
            print("| handler | path | median | p99 | floor median | overhead | less one same-CPU round trip |")
            print("|---|---|---|---|---|---|---|")
            srtt = fig("hyper", "hyper-rtt-same-cpu")
            for h, p in same:
                floor = "floor-direct" if p.startswith("invoke") else "floor-apigw"
                m, fm = fig(h, p), fig(h, floor)
                print(f"| {h} | {p} | {us(m)} | {us(fig(h, p, 'p99_us'))} | {us(fm)} | {m - fm:.0f} "
                      f"| {m - fm - (srtt or 0):.0f} |")

    tp = [r for r in rows if r["kind"] == "tp"]
    if tp:
        for r in tp:  # floor-throughput reports µs
            if "p50" not in r:
                r["p50"], r["p99"] = round(r["p50_us"] / 1e3, 3), round(r["p99_us"] / 1e3, 3)
        n = len({r["round"] for r in tp})
        by = {}
        for r in tp:
            by.setdefault(r["label"], []).append(r)
        fmed = med(r["rps"] for r in by.get("hyperfloor", []))
        amed = med(r["rps"] for r in by.get("runtime-api-floor", [])) or fmed
        floor = {r["round"]: r["rps"] for r in by.get("hyperfloor", [])}
        print(f"\n### Warm throughput, `wrk -t1 -c{os.environ.get('CONNS', '8')} -d{os.environ.get('DURATION', '10')}s` "
              f"({n} rounds; median req/s, p50/p99 of the median run)\n")
        print("| server | req/s | per round | p50 ms | p99 ms | server tree, cores | / hyper floor "
              "| per-round / hyper floor | / Runtime API floor |")
        print("|---|---|---|---|---|---|---|---|---|")
        for label, runs in by.items():
            runs.sort(key=lambda r: r["rps"])
            mid = runs[(len(runs) - 1) // 2]
            m = med(r["rps"] for r in runs)
            ratios = [r["rps"] / floor[r["round"]] for r in runs if r["round"] in floor]
            rr = "–" if label == "hyperfloor" else spread(ratios, lambda x: f"{x:.1%}")
            per_round = ", ".join(f"{r['rps']:,.0f}" for r in sorted(runs, key=lambda r: r["round"]))
            share = "–" if label.startswith("runtime-api-floor") else med(r.get("server_core_share") for r in runs)
            print(f"| {label} | {m:,.0f} | {per_round} | {mid['p50']} | {mid['p99']} "
                  f"| {share} | {m / fmed:.1%} | {rr} | {m / amed:.1%} |" if fmed and amed else f"| {label} | {m:,.0f} |")
        for label, runs in by.items():
            if label.startswith("nimbus-rust") and fmed:
                ratio = med(r["rps"] for r in runs) / fmed
                inst = sorted({r["instances"] for r in rows if r["kind"] == "instances" and r["label"] == label})
                verdict = "met" if ratio >= TP_TARGET else f"NOT met ({ratio / TP_TARGET:.2f}× the target)"
                print(f"\nTarget: {label} ≥ {TP_TARGET:.0%} of the hyper floor: {ratio:.1%}, {verdict}; "
                      f"instances running after the runs: {inst}")
    probes = [p for r in rows for p in r.get("probe_ms", [])]
    foreign = [r["foreign_cores"] for r in rows if "foreign_cores" in r]
    print(f"\n{len(rows)} measurements, {unclean} kept not clean after {RETRIES} retries; median foreign load "
          f"{med(foreign)} cores; speed probe on the server's CPU: median {med(probes)} ms (min {min(probes)}, "
          f"max {max(probes)})" if probes else "")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "measure":
        measure(args[0], int(args[1]), args[2:])
    elif cmd == "wrk":
        wrk(int(args[0]), args[1], args[2], args[3], args[4:])
    elif cmd == "report":
        report()
    else:
        sys.exit(__doc__)
