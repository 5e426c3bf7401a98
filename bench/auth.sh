#!/usr/bin/env bash
# Authorization overhead on the warm prediction path: one nimbus server, one model function
# (the Titanic example, trained and approved), one API whose routes all call that function and
# differ only in `auth`:
#   POST /authbench/prod/open  auth = "none"
#   POST /authbench/prod/key   auth = "api_key"; two keys, measured as two modes:
#                              api_key        plan "wide":  throttle rate 1e6, burst 1e6, no quota
#                              api_key+quota  plan "quota": the same throttle, quota 1e9 a DAY
#   POST /authbench/prod/iam   auth = "iam"; a user whose policy allows execute-api:Invoke on
#                              the route's ARN; SigV4 by requests-aws4auth (bench/auth-sign.py),
#                              signed once per round and replayed by wrk (valid for 15 minutes)
#   POST /authbench/prod/jwt   auth = "jwt:pool", scopes ["authbench/predict"]; an app client's
#                              token from /oauth2/token, fetched once, sent as Bearer
# Every mode is checked once with curl (200 with predictions, and refused without its
# credentials) before the rounds. In a round, every mode (in an order that rotates by one per
# round) gets a wrk warm-up of WARMUP seconds and a measured run of DURATION seconds:
# `wrk -t1 -cCONNS --latency` (the peers harness's single-request setting), the server pinned
# to one CPU and wrk to the other with taskset, as the harness does. bench/auth-run.py waits
# for the machine to be quiet before each run (at most QUIET_WAIT_S) and meters CPU as the
# harness does; a round in which any run shared the machine with more than QUIET_CORES cores of
# other work, or found the server's core slow (a speed probe before and after each run more than
# PROBE_SLACK times the fastest), is not clean and is run again, until ROUNDS clean rounds (at
# most MAX_ROUNDS).
# Prints each run, then per mode, over the clean rounds, the median req/s, the p50/p99 of the
# median run, the ratio to the `none` route's median, the spread of the per-round ratios, and
# the targets.
# With PROFILE=1, after the rounds, `perf record` (server only, with call graphs) runs during
# one more wrk run per mode, and bench/auth-perf.py prints the CPU time per request of each
# mode, where it differs from `none`, and the tree below the gateway's serve_route.
#
# Usage: bench/auth.sh
#   env: ROUNDS (5 clean rounds) MAX_ROUNDS (3 x ROUNDS) DURATION (10) WARMUP (2) CONNS (8)
#        QUIET_CORES (0.3) QUIET_WAIT_S (60) PROBE_SLACK (1.20) PROFILE (0)
#        MODES (default "none api_key api_key+quota iam jwt"; also open+key_header,
#        open+iam_headers, open+jwt_header: the open route sent a mode's headers; keep none first)
#        BIN (default: build with cargo --release into BENCH_TARGET_DIR, /work/target-bench,
#        never the tree's own target/)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${ROUNDS:-5}" DURATION="${DURATION:-10}" WARMUP="${WARMUP:-2}" CONNS="${CONNS:-8}"
PROFILE="${PROFILE:-0}"
BENCH_TARGET_DIR="${BENCH_TARGET_DIR:-$(cd "$ROOT/.." && pwd)/target-bench}"
if [ -z "${BIN:-}" ]; then
  CARGO_TARGET_DIR="$BENCH_TARGET_DIR" cargo build --release -q --manifest-path "$ROOT/Cargo.toml" -p nimbus
  BIN="$BENCH_TARGET_DIR/release/nimbus"
fi
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
PY="$("$ROOT/scripts/python-env.sh")"   # requests + requests-aws4auth, for bench/auth-sign.py

# CPUs: the server on the first of ours, wrk (and this script's helpers) on the second.
read -r SERVER_CPU CLIENT_CPU < <(python3 -c 'import os; c = sorted(os.sched_getaffinity(0)); print(c[0], c[-1])')
[ "$SERVER_CPU" != "$CLIENT_CPU" ] || { echo "needs 2 CPUs to pin server and wrk apart" >&2; exit 1; }

OUT="$(mktemp -d "${TMPDIR:-/tmp}/nimbus-bench-auth.XXXXXX")"
DATA="$OUT/data"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$port"
NIMBUS_LOG=warn taskset -c "$SERVER_CPU" "$BIN" serve --data-dir "$DATA" --listen "127.0.0.1:$port" \
  >"$OUT/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1000); do [ -s "$DATA/endpoint" ] && break; sleep 0.01; done
[ -s "$DATA/endpoint" ] || { echo "server did not start; see $OUT/server.log" >&2; exit 1; }
n() { taskset -c "$CLIENT_CPU" "$BIN" --data-dir "$DATA" "$@"; }
json() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# ---- the model: the Titanic example, trained by its pipeline and approved
n apply "$ROOT/examples/titanic" >"$OUT/setup.log"
n pipelines run titanic --wait >>"$OUT/setup.log"
n models approve titanic 1 >>"$OUT/setup.log"

# ---- the API, plans, IAM user and OAuth2 resource server
mkdir -p "$OUT/project"
cat >"$OUT/project/nimbus.toml" <<'TOML'
[functions.authbench]
kind = "model"
model_group = "titanic"
selector = "latest-approved"
max_concurrency = 1000

[apis.authbench.routes]
"POST /open" = { function = "authbench" }
"POST /key" = { function = "authbench", auth = "api_key" }
"POST /iam" = { function = "authbench", auth = "iam" }
"POST /jwt" = { function = "authbench", auth = "jwt:pool", scopes = ["authbench/predict"] }
[apis.authbench.stages.prod]
[apis.authbench.authorizers.pool]
audience = ["authbench_client"]

[usage_plans.wide]
description = "never bites: 1e6/s, burst 1e6, no quota"
throttle = { rate = 1000000, burst = 1000000 }
stages = [{ api = "authbench", stage = "prod" }]

[usage_plans.quota]
description = "never bites, but counts: 1e6/s, burst 1e6, 1e9 a day"
throttle = { rate = 1000000, burst = 1000000 }
quota = { limit = 1000000000, period = "DAY" }
stages = [{ api = "authbench", stage = "prod" }]

[iam.policies.authbench-invoke]
document = { Version = "2012-10-17", Statement = [{ Effect = "Allow", Action = "execute-api:Invoke", Resource = "arn:aws:execute-api:us-east-1:000000000000:authbench/prod/POST/iam" }] }
[iam.users.authbench]
policies = ["authbench-invoke"]

[auth.resource_servers.authbench]
name = "auth benchmark"
scopes = [{ name = "predict" }]
TOML
n apply "$OUT/project" >>"$OUT/setup.log"
KEY_WIDE=$(n --output json keys create bench-wide --usage-plan wide | json value)
KEY_QUOTA=$(n --output json keys create bench-quota --usage-plan quota | json value)
n --output json iam access-keys create authbench >"$OUT/access-key.json"
SIGN_KEY_ID=$(json access_key_id <"$OUT/access-key.json")
SIGN_SECRET=$(json secret_access_key <"$OUT/access-key.json")
CLIENT_SECRET=$(n --output json auth clients create authbench --scope authbench/predict \
  --client-id authbench_client | json client_secret)
TOKEN=$(curl -sf -u "authbench_client:$CLIENT_SECRET" -d grant_type=client_credentials \
  -d scope=authbench/predict "$BASE/oauth2/token" | json access_token)

# ---- the modes: name, path, headers file (empty: none)
BODY="$OUT/body.json"
printf '%s' '{"instances":[{"Age":22,"Sex":"male","Pclass":3}]}' >"$BODY"
: >"$OUT/h-none"
printf 'x-api-key: %s\n' "$KEY_WIDE" >"$OUT/h-api_key"
printf 'x-api-key: %s\n' "$KEY_QUOTA" >"$OUT/h-api_key+quota"
printf 'Authorization: Bearer %s\n' "$TOKEN" >"$OUT/h-jwt"
# open+*: the open route with a mode's credentials, which it does not look at: what the larger
# request costs without the authorization work (for MODES="none open+iam_headers iam …").
cp "$OUT/h-api_key" "$OUT/h-open+key_header"
cp "$OUT/h-jwt" "$OUT/h-open+jwt_header"
read -r -a MODES <<<"${MODES:-none api_key api_key+quota iam jwt}"
declare -A PATH_OF=([none]=/open [api_key]=/key [api_key+quota]=/key [iam]=/iam [jwt]=/jwt
  [open+key_header]=/open [open+iam_headers]=/open [open+jwt_header]=/open)
sign() {
  AWS_ACCESS_KEY_ID="$SIGN_KEY_ID" AWS_SECRET_ACCESS_KEY="$SIGN_SECRET" \
    taskset -c "$CLIENT_CPU" "$PY" "$ROOT/bench/auth-sign.py" "$BASE/authbench/prod/iam" "$BODY" us-east-1 "$OUT/h-iam" \
    2>>"$OUT/setup.log"
  cp "$OUT/h-iam" "$OUT/h-open+iam_headers"
}
sign
check() {  # mode: 200 with predictions with its headers, and (but `none`) refused without them
  local mode=$1 url="$BASE/authbench/prod${PATH_OF[$1]}" args=() line
  grep -qi '^content-type:' "$OUT/h-$mode" || args+=(-H 'Content-Type: application/json')
  while IFS= read -r line; do args+=(-H "$line"); done <"$OUT/h-$mode"
  curl -sf "${args[@]}" --data-binary "@$BODY" "$url" | grep -q predictions \
    || { echo "mode $mode: no 200 with predictions from $url" >&2; exit 1; }
  if [ "${PATH_OF[$mode]}" != /open ]; then
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "@$BODY" "$url")
    case "$code" in 401 | 403) ;; *) echo "mode $mode: $url answered $code without credentials" >&2; exit 1 ;; esac
  fi
}
for m in "${MODES[@]}"; do check "$m"; done
echo "setup done: server pid $server on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU; work dir $OUT" >&2

# ---- the rounds (bench/auth-run.py measures one run; a round with a run that shared the machine
# with other load is not clean and is run again, up to MAX_ROUNDS rounds in all)
run_wrk() {  # mode seconds → wrk's output (for PROFILE)
  AUTH_BODY="$BODY" AUTH_HEADERS="$OUT/h-$1" timeout $(($2 + 30)) taskset -c "$CLIENT_CPU" \
    wrk -t1 "-c$CONNS" "-d${2}s" --latency -s "$ROOT/bench/auth-wrk.lua" "$BASE/authbench/prod${PATH_OF[$1]}"
}
export RUNS="$OUT/runs.jsonl" SERVER_PID="$server" SERVER_CPU CLIENT_CPU CONNS DURATION WARMUP \
  LUA="$ROOT/bench/auth-wrk.lua" AUTH_BODY="$BODY"
measure() { taskset -c "$CLIENT_CPU" python3 "$ROOT/bench/auth-run.py" "$@"; }
MAX_ROUNDS="${MAX_ROUNDS:-$((3 * ROUNDS))}"
: >"$RUNS"
clean=0 round=0
while [ "$clean" -lt "$ROUNDS" ] && [ "$round" -lt "$MAX_ROUNDS" ]; do
  round=$((round + 1))
  sign
  for i in $(seq 0 $((${#MODES[@]} - 1))); do
    mode=${MODES[$(((i + round - 1) % ${#MODES[@]}))]}
    AUTH_HEADERS="$OUT/h-$mode" measure run "$round" "$mode" "$BASE/authbench/prod${PATH_OF[$mode]}"
  done
  if measure clean "$round"; then clean=$((clean + 1)); else echo "round $round was not clean: one more" >&2; fi
done
measure summary "${MODES[@]}"

# ---- optional: where the server's time goes, per mode (perf, server only, call graphs unwound
# from .eh_frame; bench/auth-perf.py turns the samples into CPU time per request)
if [ "$PROFILE" = 1 ]; then
  command -v perf >/dev/null || { echo "PROFILE=1: perf is not installed" >&2; exit 1; }
  sign
  for mode in "${MODES[@]}"; do
    measure quiet
    run_wrk "$mode" "$WARMUP" >/dev/null
    perf record -q -F 999 --call-graph dwarf,16384 -p "$server" -o "$OUT/perf-$mode.data" -- sleep "$DURATION" \
      2>/dev/null &
    rec=$!
    run_wrk "$mode" "$DURATION" >"$OUT/wrk-profile-$mode.txt"
    wait "$rec" || true
    perf report -i "$OUT/perf-$mode.data" --no-children --sort symbol --percent-limit 0.5 --stdio -g none \
      2>/dev/null | grep -v '^#' | grep -v '^$' >"$OUT/perf-self-$mode.txt" || true
    perf report -i "$OUT/perf-$mode.data" --children --sort symbol --percent-limit 2 --stdio -g none \
      2>/dev/null | grep -v '^#' | grep -v '^$' >"$OUT/perf-children-$mode.txt" || true
  done
  echo "perf reports (self and inclusive %): $OUT/perf-{self,children}-MODE.txt" >&2
  python3 "$ROOT/bench/auth-perf.py" "$OUT" "$DURATION" 999 "${MODES[@]}"
fi
echo "every run's wrk output and JSON: $OUT" >&2
