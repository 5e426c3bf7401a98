#!/usr/bin/env bash
# Serving throughput of two nimbus builds, side by side in alternating runs of the peers
# harness (../shared/bench/peers): OLD, NEW, OLD, NEW, … each run measuring the hyper floor and
# one build as the harness's extra server (same model, bodies and wrk settings as
# bench/serve.sh). Prints every run and the median single and batch-100 req/s per build, and
# the ratio NEW / OLD.
# Usage: bench/serve-ab.sh OLD_BINARY [NEW_BINARY]   env: ROUNDS (2), DURATION, REPEATS, PEERS
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS="${PEERS:-$ROOT/../shared/bench/peers}"
OLD="${1:?usage: bench/serve-ab.sh OLD_BINARY [NEW_BINARY]}"
NEW="${2:-$ROOT/target/release/nimbus}"
ROUNDS="${ROUNDS:-2}"
[ -x "$PEERS/run.sh" ] || { echo "no peers harness at $PEERS (set PEERS)" >&2; exit 1; }
OUT="$(mktemp -d)"
export NIMBUS_LOG=warn EXTRA_PATH=/bench/prod/predict ONLY="${ONLY:-hyperfloor,extra}"
for round in $(seq "$ROUNDS"); do
  for build in old new; do
    bin="$OLD"; [ "$build" = new ] && bin="$NEW"
    data="${TMPDIR:-/tmp}/nimbus-bench-ab-$build"
    rm -rf "$data"
    EXTRA_NAME="nimbus-$build" \
      EXTRA_SETUP="$ROOT/bench/serve-setup.sh {work} $data $bin" \
      EXTRA_CMD="exec $bin serve --data-dir $data --listen 127.0.0.1:{port}" \
      "$PEERS/run.sh" >"$OUT/$build-$round.log" 2>&1
    cp "$(ls -t "$PEERS"/results/results-*.json | head -1)" "$OUT/$build-$round.json"
    echo "round $round $build: $(grep -E '^\| nimbus-' "$OUT/$build-$round.log" | tail -1)"
  done
done
python3 - "$OUT" <<'EOF'
import glob, json, os, statistics, sys
out = sys.argv[1]
rows = {"old": {"single": [], "batch": []}, "new": {"single": [], "batch": []}}
floor = []
for f in sorted(glob.glob(os.path.join(out, "*.json"))):
    build = os.path.basename(f).split("-")[0]
    for r in json.load(open(f))["results"]:
        if r.get("key") == "extra":
            for label in ("single", "batch"):
                rows[build][label] += [x for x in r.get(label, {}).get("all_rps", []) if x]
        elif r.get("key") == "hyperfloor" and r.get("single"):
            floor += [x for x in r["single"].get("all_rps", []) if x]
print("\n| build | single req/s (median of all runs) | batch-100 req/s (median) | runs |")
print("|---|---|---|---|")
med = {}
for build in ("old", "new"):
    s, b = rows[build]["single"], rows[build]["batch"]
    med[build] = (statistics.median(s) if s else None, statistics.median(b) if b else None)
    print(f"| {build} | {med[build][0]:.0f} | {med[build][1]:.0f} | {len(s)} + {len(b)} |")
if floor:
    print(f"| hyper floor (single) | {statistics.median(floor):.0f} | - | {len(floor)} |")
if all(med[b][0] and med[b][1] for b in med):
    print(f"\nnew / old: single {med['new'][0] / med['old'][0]:.3f}, batch-100 {med['new'][1] / med['old'][1]:.3f}")
EOF
echo "logs and JSON of every run: $OUT"
