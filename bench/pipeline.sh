#!/usr/bin/env bash
# (a) The Titanic pipeline end to end: from `nimbus pipelines run titanic --wait` to a
# registered version, on the embedded server (release build). Each run changes `eta` a little,
# so no step is served from cache. Prints the median and range of RUNS runs: the CLI's wall
# time (start of the command to its exit, including its polling) and the server's own
# execution time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS="${RUNS:-9}"
cargo build --release -q -p nimbus
BIN=target/release/nimbus
WORK="$(mktemp -d)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" serve --data-dir "$WORK" --listen "127.0.0.1:$port" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$WORK"' EXIT
export NIMBUS_DATA_DIR="$WORK"
until "$BIN" whoami >/dev/null 2>&1; do sleep 0.05; done
"$BIN" apply examples/titanic >/dev/null
for i in $(seq "$RUNS"); do
  eta=$(python3 -c "print(0.1 + $i * 1e-6)")
  start=$(date +%s%N)
  "$BIN" pipelines run titanic --param "eta=$eta" --wait >/dev/null
  end=$(date +%s%N)
  server_ms=$("$BIN" pipelines describe "titanic-$i" --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["duration_ms"])')
  echo "$(( (end - start) / 1000000 )) $server_ms"
done | sort -n | awk '{w[NR]=$1; s[NR]=$2} END {
  n = NR; asort(s)
  printf "| runs | CLI wall time, median (min-max) | server execution time, median (min-max) |\n|---|---|---|\n"
  printf "| %d | %d ms (%d-%d) | %d ms (%d-%d) |\n", n, w[int((n+1)/2)], w[1], w[n], s[int((n+1)/2)], s[1], s[n] }'
