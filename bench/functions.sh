#!/usr/bin/env bash
# Process functions: cold start, warm invoke latency and throughput, each against its floor, in
# one run. Two handlers, deployed without code bundles:
#   python  `python -m awslambdaric app.handler` (the venv of scripts/python-env.sh), app.py
#           written by this script into a directory outside the data dir (PYTHONPATH)
#   rust    examples/rust-hello, built with the lambda_runtime crate
# Both answer {"name": …} with {"message": "Hello …!", "requestId": …}, and behind a route an
# API Gateway 2.0 proxy response. The floors (target/release/functions_bench, bench/src):
#   floor-cold / floor-warm: the same command with the same environment, started by a minimal
#            Runtime API server of our own (hyper, one thread) instead of nimbus: spawn → first
#            `GET …/invocation/next`, and event handed to a waiting `next` → response read;
#   hyper floor: the peers harness's floor/ (hyper, reads the body, answers 20 bytes), built
#            here as its harness builds it, started pinned as bench/serve.sh's harness does.
# Measurements (server, instances and floors pinned to one CPU; clients to the other):
#   1. cold start, COLD_RUNS times per handler: nimbus's `Init Duration` (REPORT, from a signed
#      Invoke API request with X-Amz-Log-Type: Tail) and that request's client time, on functions
#      with idle_s = 1: before each run the script waits until the instance has been stopped
#      (`functions describe` shows 0 instances), so every run is a new instance of the same
#      Function; against floor-cold, in alternating order.
#   2. warm latency, LAT_ROUNDS rounds of LAT_N sequential requests (after LAT_WARMUP) on one
#      keep-alive connection: the Invoke API (SigV4 with the admin key, signed per request
#      before its timer) and the gateway (POST /fnbench/prod/{py,rs}, auth none), against
#      floor-warm with the same event (the payload; the gateway's event captured from nimbus by
#      an echo function); also one HTTP round trip to the hyper floor, and all of it again with
#      the client on the server's CPU.
#   3. throughput, TP_ROUNDS rounds: `wrk -t1 -cCONNS -dDURATION --latency` (WARMUP s before,
#      discarded) to the rust handler through the gateway (max_concurrency = CONNS, so CONNS
#      instances run) and to the hyper floor, and floor-throughput (CONNS rust handlers, and one,
#      kept busy by the floor's Runtime API with the gateway's event, no HTTP in front: the
#      protocol's own ceiling on one CPU), in an order rotating by round; TP_PY=1 adds the
#      python handler through the gateway.
# Every group waits for a quiet machine and is metered as bench/auth.sh does (bench/functions-run.py);
# a group that shared the machine is run again (RETRIES). Prints the tables and the targets.
# Takes about 3.5 minutes on a quiet machine (BENCHMARKS.md has the figures of one run).
#
# Usage: bench/functions.sh
#   env: COLD_RUNS (11) LAT_ROUNDS (3) LAT_N (2000) LAT_WARMUP (200) TP_ROUNDS (3) DURATION (10)
#        WARMUP (2) CONNS (8) TP_PY (0) QUIET_CORES (0.3) QUIET_WAIT_S (60) PROBE_SLACK (1.20)
#        RETRIES (2) PEERS (the peers harness, for floor/) BENCH_TARGET_DIR (/work/target-bench;
#        never the tree's own target/) NO_BUILD (1: use the binaries already there)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COLD_RUNS="${COLD_RUNS:-11}" LAT_ROUNDS="${LAT_ROUNDS:-3}" LAT_N="${LAT_N:-2000}" LAT_WARMUP="${LAT_WARMUP:-200}"
TP_ROUNDS="${TP_ROUNDS:-3}" TP_PY="${TP_PY:-0}"
export DURATION="${DURATION:-10}" WARMUP="${WARMUP:-2}" CONNS="${CONNS:-8}"
PEERS="${PEERS:-$ROOT/../shared/bench/peers}"
BENCH_TARGET_DIR="${BENCH_TARGET_DIR:-$(cd "$ROOT/.." && pwd)/target-bench}"
if [ "${NO_BUILD:-0}" != 1 ]; then
  CARGO_TARGET_DIR="$BENCH_TARGET_DIR" cargo build --release -q --manifest-path "$ROOT/Cargo.toml" \
    -p nimbus -p rust-hello -p nimbus-bench
fi
BIN="$BENCH_TARGET_DIR/release/nimbus"
RUST_HELLO="$BENCH_TARGET_DIR/release/rust-hello"
FB="$BENCH_TARGET_DIR/release/functions_bench"
FLOOR="$BENCH_TARGET_DIR/http-floor/release/http-floor"
if [ ! -x "$FLOOR" ]; then  # as the peers harness builds it (run.sh, step 4b)
  [ -d "$PEERS/floor" ] || { echo "no peers harness at $PEERS (set PEERS)" >&2; exit 1; }
  (cd "$PEERS/floor" && CARGO_TARGET_DIR="$BENCH_TARGET_DIR/http-floor" cargo build --release -q)
fi
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
PY="$("$ROOT/scripts/python-env.sh")"
"$PY" -c 'import awslambdaric' || { echo "$PY has no awslambdaric" >&2; exit 1; }

read -r SERVER_CPU CLIENT_CPU < <(python3 -c 'import os; c = sorted(os.sched_getaffinity(0)); print(c[0], c[-1])')
[ "$SERVER_CPU" != "$CLIENT_CPU" ] || { echo "needs 2 CPUs to pin server and clients apart" >&2; exit 1; }
export SERVER_CPU CLIENT_CPU

OUT="$(mktemp -d "${TMPDIR:-/tmp}/nimbus-bench-functions.XXXXXX")"
DATA="$OUT/data" APP="$OUT/app" TASK_ROOT="$OUT/task-root"
mkdir -p "$APP" "$TASK_ROOT" "$OUT/project"
export RUNS="$OUT/runs.jsonl"
: >"$RUNS"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port) floor_port=$(free_port)
BASE="http://127.0.0.1:$port"

cat >"$APP/app.py" <<'PY'
import json


def handler(event, context):
    """rust-hello's twin: {"name": …} → {"message": "Hello …!", "requestId": …}; behind a route
    the request is in `body` and the answer a proxy response."""
    body = event.get("body") if isinstance(event, dict) else None
    if isinstance(body, str):
        try:
            request = json.loads(body)
        except ValueError as e:
            return {"statusCode": 400, "headers": {"content-type": "application/json"},
                    "body": json.dumps({"error": f"the body is not JSON: {e}"})}
    else:
        request = event
    answer = {"message": f"Hello {request.get('name', 'stranger')}!", "requestId": context.aws_request_id}
    if "requestContext" in event:
        return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(answer)}
    return answer
PY
printf '%s' '{"name":"Ada"}' >"$OUT/body.json"

NIMBUS_LOG=warn taskset -c "$SERVER_CPU" "$BIN" serve --data-dir "$DATA" --listen "127.0.0.1:$port" \
  >"$OUT/server.log" 2>&1 &
server=$!
taskset -c "$SERVER_CPU" "$FLOOR" "$floor_port" >"$OUT/floor.log" 2>&1 &
floor=$!
trap 'kill "$server" "$floor" 2>/dev/null || true' EXIT
for _ in $(seq 1000); do [ -s "$DATA/endpoint" ] && break; sleep 0.01; done
[ -s "$DATA/endpoint" ] || { echo "server did not start; see $OUT/server.log" >&2; exit 1; }
n() { taskset -c "$CLIENT_CPU" "$BIN" --data-dir "$DATA" "$@"; }

# ---- the functions: warm ones behind routes, cold ones (idle_s = 1) for the cold starts,
# and the echo runtime that hands back the gateway's event
py_fn() {  # name, idle_s
  printf '[functions.%s]\nkind = "process"\ncommand = ["%s", "-m", "awslambdaric", "app.handler"]\n' "$1" "$PY"
  printf 'environment = { PYTHONPATH = "%s" }\nmax_concurrency = %s\nidle_s = %s\n\n' "$APP" "$CONNS" "$2"
}
rs_fn() {
  printf '[functions.%s]\nkind = "process"\ncommand = ["%s"]\nmax_concurrency = %s\nidle_s = %s\n\n' \
    "$1" "$RUST_HELLO" "$CONNS" "$2"
}
{
  py_fn py 900; rs_fn rs 900; py_fn py-cold 1; rs_fn rs-cold 1
  printf '[functions.echo]\nkind = "process"\ncommand = ["%s", "echo-runtime"]\n\n' "$FB"
  printf '[apis.fnbench.routes]\n"POST /py" = { function = "py" }\n"POST /rs" = { function = "rs" }\n'
  printf '"POST /echo" = { function = "echo" }\n[apis.fnbench.stages.prod]\n'
} >"$OUT/project/nimbus.toml"
n apply "$OUT/project" >"$OUT/setup.log"
CREDS="$DATA/credentials"
client() { taskset -c "$CLIENT_CPU" "$FB" "$@"; }
invoke_url() { echo "$BASE/2015-03-31/functions/$1/invocations"; }
for f in py rs py-cold rs-cold; do client request "$(invoke_url "$f")" --body "$OUT/body.json" --sign "$CREDS" >/dev/null; done
for f in py rs; do client request "$BASE/fnbench/prod/$f" --body "$OUT/body.json" >/dev/null; done
# The event nimbus builds for POST /fnbench/prod/… with this client's request, for floor-warm.
client request "$BASE/fnbench/prod/echo" --body "$OUT/body.json" --expect requestContext --print-body \
  >"$OUT/apigw-event.json"
client request "http://127.0.0.1:$floor_port/predict" --body "$OUT/body.json" --expect predictions >/dev/null
echo "setup done: server pid $server and hyper floor pid $floor on CPU $SERVER_CPU, clients on CPU $CLIENT_CPU; work dir $OUT" >&2

measure() { taskset -c "$CLIENT_CPU" python3 "$ROOT/bench/functions-run.py" "$@"; }
floor_cmd() {  # handler → the floor's launch arguments
  case $1 in
    python) echo "--name py --env PYTHONPATH=$APP --task-root $TASK_ROOT -- $PY -m awslambdaric app.handler" ;;
    rust) echo "--name rs --task-root $TASK_ROOT -- $RUST_HELLO" ;;
  esac
}
declare -A FN=([python]=py [rust]=rs)

# ---- 1. cold starts
cat >"$OUT/cold-run.sh" <<SH
#!/usr/bin/env bash
# One cold-start run \$1 of both handlers: nimbus and the floor (the floor first on even runs).
set -euo pipefail
for f in py-cold rs-cold; do
  until taskset -c $CLIENT_CPU "$BIN" --data-dir "$DATA" functions describe "\$f" --output json | grep -q '"instances": 0'; do
    sleep 0.05
  done
done
sleep 0.2   # the stopped instances' processes are gone
nimbus() { taskset -c $CLIENT_CPU "$FB" request "$BASE/2015-03-31/functions/\$2/invocations" --body "$OUT/body.json" \\
  --sign "$CREDS" --tail --tag handler=\$1 --tag side=nimbus; }
floor() { taskset -c $SERVER_CPU "$FB" floor-cold --event "$OUT/body.json" --tag handler=\$1 --tag side=floor \$2; }
py_floor="$(floor_cmd python)" rs_floor="$(floor_cmd rust)"
for h in python:py-cold:py_floor rust:rs-cold:rs_floor; do
  IFS=: read -r name fn args <<<"\$h"
  if [ \$((\$1 % 2)) = 0 ]; then floor \$name "\${!args}"; nimbus \$name \$fn; else nimbus \$name \$fn; floor \$name "\${!args}"; fi
done
SH
chmod +x "$OUT/cold-run.sh"
for i in $(seq "$COLD_RUNS"); do
  measure measure cold "$i" --tree "$server" -- "$OUT/cold-run.sh" "$i"
done

# ---- 2. warm latency
cat >"$OUT/lat-run.sh" <<SH
#!/usr/bin/env bash
# One round of warm latencies for handler \$1 (function \$2), or of the hyper floor (\$1 = hyper).
set -euo pipefail
N="--n $LAT_N --warmup $LAT_WARMUP"
if [ "\$1" = hyper ]; then
  taskset -c $CLIENT_CPU "$FB" request "http://127.0.0.1:$floor_port/predict" --body "$OUT/body.json" --expect predictions \$N --tag handler=hyper --tag path=hyper-rtt
  taskset -c $SERVER_CPU "$FB" request "http://127.0.0.1:$floor_port/predict" --body "$OUT/body.json" --expect predictions \$N --tag handler=hyper --tag path=hyper-rtt-same-cpu
  exit 0
fi
h=\$1 fn=\$2
shift 2
taskset -c $SERVER_CPU "$FB" floor-warm \$N --event "$OUT/body.json" --tag handler=\$h --tag path=floor-direct "\$@"
taskset -c $SERVER_CPU "$FB" floor-warm \$N --event "$OUT/apigw-event.json" --tag handler=\$h --tag path=floor-apigw "\$@"
for cpu in $CLIENT_CPU $SERVER_CPU; do
  sfx=\$([ \$cpu = $CLIENT_CPU ] || echo -same-cpu)
  taskset -c \$cpu "$FB" request "$BASE/2015-03-31/functions/\$fn/invocations" --body "$OUT/body.json" --sign "$CREDS" \$N --tag handler=\$h --tag path=invoke\$sfx
  taskset -c \$cpu "$FB" request "$BASE/fnbench/prod/\$fn" --body "$OUT/body.json" \$N --tag handler=\$h --tag path=gateway\$sfx
done
SH
chmod +x "$OUT/lat-run.sh"
for r in $(seq "$LAT_ROUNDS"); do
  measure measure lat "$r" --tree "$server" --tree "$floor" -- "$OUT/lat-run.sh" hyper
  for h in python rust; do
    # shellcheck disable=SC2046 # floor_cmd's words are the launch arguments
    measure measure lat "$r" --tree "$server" --tree "$floor" -- "$OUT/lat-run.sh" "$h" "${FN[$h]}" $(floor_cmd "$h")
  done
done

# ---- 3. throughput (and the Runtime API floor: CONNS rust-hello processes kept busy by
# functions_bench itself on the server's CPU, the gateway's event, no HTTP in front)
TP=(hyperfloor nimbus-rust runtime-api-floor runtime-api-floor-1)
[ "$TP_PY" = 1 ] && TP+=(nimbus-python)
declare -A TP_URL=([hyperfloor]="http://127.0.0.1:$floor_port/predict" [nimbus-rust]="$BASE/fnbench/prod/rs"
  [nimbus-python]="$BASE/fnbench/prod/py")
declare -A TP_TREE=([hyperfloor]=$floor [nimbus-rust]=$server [nimbus-python]=$server)
declare -A TP_FN=([nimbus-rust]=rs [nimbus-python]=py)
for r in $(seq "$TP_ROUNDS"); do
  for i in $(seq 0 $((${#TP[@]} - 1))); do
    label=${TP[$(((i + r - 1) % ${#TP[@]}))]}
    if [[ "$label" = runtime-api-floor* ]]; then
      k=$([ "$label" = runtime-api-floor ] && echo "$CONNS" || echo 1)
      # shellcheck disable=SC2046 # floor_cmd's words are the launch arguments
      measure measure tp "$r" -- taskset -c "$SERVER_CPU" "$FB" floor-throughput --instances "$k" \
        --seconds "$DURATION" --warmup "$WARMUP" --event "$OUT/apigw-event.json" --tag "label=$label" \
        $(floor_cmd rust)
      continue
    fi
    measure wrk "$r" "$label" "${TP_URL[$label]}" "$OUT/body.json" --tree "${TP_TREE[$label]}"
    if [ -n "${TP_FN[$label]:-}" ]; then
      inst=$(n functions describe "${TP_FN[$label]}" --output json | python3 -c 'import json, sys; print(json.load(sys.stdin)["instances"])')
      printf '{"kind": "instances", "label": "%s", "round": %s, "instances": %s}\n' "$label" "$r" "$inst" >>"$RUNS"
    fi
  done
done

measure report
echo "every measurement (JSON lines) and wrk's output: $OUT" >&2
