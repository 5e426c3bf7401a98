#!/usr/bin/env bash
# Cold start and idle memory of `nimbus serve`.
#   cold start: wall time from exec to the first 200 from GET /_nimbus/health (polled every
#               1 ms by a Python client), on a fresh data dir (first start: migrations, master
#               key, admin key) and on an existing one; median of RUNS launches each.
#   idle RSS:   Maximum resident set size from /usr/bin/time -v of a server that started,
#               answered a signed CLI call, idled 2 s and got SIGTERM.
# Usage: bench/startup.sh [path/to/nimbus]   (default target/release/nimbus)
set -euo pipefail
BIN="${1:-target/release/nimbus}"
RUNS="${RUNS:-11}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

measure() { # $1 = data dir; prints ms to first health 200
  python3 - "$BIN" "$1" <<'PY'
import subprocess, sys, time, urllib.request, socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
t0 = time.perf_counter()
p = subprocess.Popen([sys.argv[1], "serve", "--data-dir", sys.argv[2], "--listen", f"127.0.0.1:{port}"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while True:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_nimbus/health", timeout=1) as r:
            if r.status == 200: break
    except Exception:
        time.sleep(0.001)
print(f"{(time.perf_counter() - t0) * 1000:.1f}")
p.terminate(); p.wait()
PY
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

fresh=$(for i in $(seq "$RUNS"); do measure "$WORK/fresh-$i"; done | median)
warm=$(for i in $(seq "$RUNS"); do measure "$WORK/fresh-1"; done | median)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/bin/time -v "$BIN" serve --data-dir "$WORK/rss" --listen "127.0.0.1:$port" >/dev/null 2>"$WORK/time.txt" &
pid=$!
sleep 1
NIMBUS_DATA_DIR="$WORK/rss" "$BIN" models list >/dev/null
sleep 2
kill -TERM "$(pgrep -P $pid)" ; wait $pid || true
rss_kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$WORK/time.txt")

echo "| measure | value |"
echo "|---|---|"
echo "| cold start, first start (fresh data dir), median of $RUNS | ${fresh} ms |"
echo "| cold start, existing data dir, median of $RUNS | ${warm} ms |"
echo "| max RSS after start + one signed request + 2 s idle | $((rss_kb / 1024)) MB (${rss_kb} kB) |"
