#!/usr/bin/env bash
# Model-function cold start and the idle memory of `nimbus serve` with the demo loaded.
#   cold start: the Titanic function is set to scale to zero after 1 s idle; RUNS times, wait
#               until it is cold, then time one POST /titanic/prod/predict (curl's total time,
#               client side) and read the server's own `Init Duration` from the REPORT line
#               (resolve the selector, read the bundle from the store, check its digest,
#               build the predictor). Medians.
#   idle RSS:   VmRSS of the server process after the demo answered one request and idled 3 s.
# Usage: bench/coldstart.sh [path/to/nimbus]   (default target/release/nimbus)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${1:-$ROOT/target/release/nimbus}"
RUNS="${RUNS:-11}"
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
BODY='{"instances":[{"Age":22,"Sex":"male","Pclass":3},{"Age":12,"Sex":"male","Pclass":1},{"Age":38,"Sex":"female","Pclass":1}]}'

cp -r "$ROOT/examples/titanic" "$WORK/project"
sed -i 's/^idle_s = 900/idle_s = 1/' "$WORK/project/nimbus.toml"
port=$(free_port)
NIMBUS_LOG=warn "$BIN" serve --data-dir "$WORK/data" --listen "127.0.0.1:$port" >"$WORK/serve.log" 2>&1 &
for _ in $(seq 500); do [ -s "$WORK/data/endpoint" ] && break; sleep 0.01; done
n() { "$BIN" --data-dir "$WORK/data" "$@"; }
n apply "$WORK/project" >/dev/null
n pipelines run titanic --wait >/dev/null
n models approve titanic 1 >/dev/null
url="http://127.0.0.1:$port/titanic/prod/predict"
client=()
for _ in $(seq "$RUNS"); do
  until n functions describe predict --output json | grep -q '"state": "cold"'; do sleep 0.1; done
  client+=("$(curl -s -o /dev/null -w '%{time_total}' -X POST "$url" -H 'content-type: application/json' -d "$BODY")")
done
init=$(n logs predict --filter "Init Duration" | sed -E 's/.*Init Duration: ([0-9.]+) ms.*/\1/' | median)
first=$(printf '%s\n' "${client[@]}" | awk '{printf "%.2f\n", $1 * 1000}' | median)
warm=$(for _ in $(seq 21); do curl -s -o /dev/null -w '%{time_total}\n' -X POST "$url" -d "$BODY"; done | awk '{printf "%.3f\n", $1 * 1000}' | median)
kill %1; wait 2>/dev/null || true

port=$(free_port)
NIMBUS_LOG=warn "$BIN" serve --data-dir "$WORK/data" --listen "127.0.0.1:$port" >"$WORK/serve2.log" 2>&1 &
pid=$!
for _ in $(seq 500); do curl -s "127.0.0.1:$port/_nimbus/health" >/dev/null && break; sleep 0.01; done
sed -i 's/^idle_s = 1/idle_s = 900/' "$WORK/project/nimbus.toml"
n apply "$WORK/project" >/dev/null
curl -s -o /dev/null -X POST "http://127.0.0.1:$port/titanic/prod/predict" -d "$BODY"
sleep 3
rss=$(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
hwm=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")

echo "| model-function cold start, server side (Init Duration, median of $RUNS) | $init ms |"
echo "| first request after scale to zero, client side (curl total, median of $RUNS) | $first ms |"
echo "| warm request, same body, client side (curl total, median of 21) | $warm ms |"
echo "| idle RSS of nimbus serve with the demo loaded (peak) | $rss MB ($hwm MB) |"
