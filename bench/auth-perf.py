#!/usr/bin/env python3
"""Reads the profiles of `PROFILE=1 bench/auth.sh` as CPU time per request (standard library
and `perf script` only).

Usage: auth-perf.py OUT_DIR DURATION FREQ MODE...   (the first mode is the baseline, `none`)

The server was sampled at FREQ Hz of CPU time (perf's cpu-clock) while wrk ran DURATION
seconds, so a symbol's samples / FREQ / requests is the CPU time per request spent in it
(inclusive: the symbol anywhere on the stack). Percentages of a profile hide that a slower mode
spends the same code's time over fewer requests; per request they add up. Prints per mode: the
CPU time per request, the difference to the baseline, where that difference is (self time by
leaf symbol), and the tree of the gateway's serve_route below it.
"""
import collections
import re
import subprocess
import sys

out_dir, duration, freq = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
modes = sys.argv[4:]


def requests_per_s(mode):
    with open(f"{out_dir}/wrk-profile-{mode}.txt") as f:
        return float(re.search(r"Requests/sec:\s+([\d.]+)", f.read()).group(1))


def stacks(mode):
    """Each sample's stack, root first."""
    text = subprocess.run(["perf", "script", "-i", f"{out_dir}/perf-{mode}.data", "-F", "ip,sym", "--no-inline"],
                          capture_output=True, text=True).stdout
    cur = []
    for line in text.splitlines() + [""]:
        line = line.strip()
        if not line:
            if cur:
                yield cur[::-1]
            cur = []
            continue
        parts = line.split(None, 1)
        cur.append(re.sub(r"\+0x[0-9a-f]+$", "", parts[1] if len(parts) > 1 else parts[0]))


def profile(mode):
    per = 1e6 / freq / (requests_per_s(mode) * duration)
    leaf, inclusive, tree, n = collections.Counter(), collections.Counter(), collections.Counter(), 0
    for st in stacks(mode):
        n += 1
        leaf[st[-1]] += 1
        for s in set(st):
            inclusive[s] += 1
        at = next((i for i, s in enumerate(st) if "Gateway>::serve_route" in s), None)
        if at is not None:
            path = tuple(st[at:at + 4])
            for k in range(1, len(path) + 1):
                tree[path[:k]] += 1
    scale = lambda c: {k: v * per for k, v in c.items()}
    return {"rps": requests_per_s(mode), "total": n * per, "leaf": scale(leaf), "inclusive": scale(inclusive),
            "tree": scale(tree)}


def show_tree(tree, prefix=(), level=0, floor=0.2):
    kids = sorted((p for p in tree if len(p) == len(prefix) + 1 and p[:len(prefix)] == prefix), key=lambda p: -tree[p])
    for p in kids:
        if tree[p] >= floor:
            print(f"    {'  ' * level}{tree[p]:6.2f}  {p[-1][:110]}")
            show_tree(tree, p, level + 1, floor)


base_mode = modes[0]
prof = {m: profile(m) for m in modes}
base = prof[base_mode]
print("CPU µs per request (server, all threads):")
for m in modes:
    p = prof[m]
    print(f"  {m:<18} {p['rps']:>8.0f} req/s  {p['total']:6.1f} µs  ({p['total'] - base['total']:+.1f} vs {base_mode})")
for m in modes:
    p = prof[m]
    if m != base_mode:
        print(f"\n== {m}: {p['total'] - base['total']:+.1f} µs per request vs {base_mode}; largest self-time differences:")
        keys = set(p["leaf"]) | set(base["leaf"])
        for k in sorted(keys, key=lambda k: -(p["leaf"].get(k, 0) - base["leaf"].get(k, 0)))[:14]:
            print(f"    {p['leaf'].get(k, 0) - base['leaf'].get(k, 0):+6.2f}  {k[:110]}")
        for name in ("__GI___writev", "poll_read_head", "Gateway>::access", "Gateway>::serve_route"):
            for k in [k for k in set(p["inclusive"]) | set(base["inclusive"]) if name in k][:1]:
                print(f"    inclusive {k[:70]}: {p['inclusive'].get(k, 0):.2f} vs {base['inclusive'].get(k, 0):.2f}")
    print(f"  {m}: serve_route and below (µs per request, inclusive):")
    show_tree(p["tree"])
