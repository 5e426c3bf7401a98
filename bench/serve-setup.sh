#!/usr/bin/env bash
# Prepares a nimbus data directory that serves the peers' Titanic XGBoost model, for
# bench/serve.sh (the peers' harness runs it as EXTRA_SETUP).
#   $1: the harness's work dir (model.json: the model Python xgboost saved; label-encoded
#       Sex male=0/female=1, Embarked S=0/C=1/Q=2)
#   $2: the data directory to create
#   $3: the nimbus binary
# Imports the model as group "bench", approves it, and declares function "predict" behind
# API "bench" (POST /predict on stage prod), then stops the server.
set -euo pipefail
WORK="$1" DATA="$2" BIN="$3"
rm -rf "$DATA"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" serve --data-dir "$DATA" --listen "127.0.0.1:$port" >"$DATA.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 500); do [ -s "$DATA/endpoint" ] && break; sleep 0.01; done
n() { "$BIN" --data-dir "$DATA" "$@"; }
n models import bench "$WORK/model.json" --format xgboost-json \
  --category Sex=male,female --category Embarked=S,C,Q --target Survived >/dev/null
n models approve bench 1 >/dev/null
project="$DATA.project"
mkdir -p "$project"
cat >"$project/nimbus.toml" <<'TOML'
[functions.predict]
kind = "model"
model_group = "bench"
max_concurrency = 1000

[apis.bench.routes]
"POST /predict" = { function = "predict" }
[apis.bench.stages.prod]
TOML
n apply "$project" >/dev/null
kill -TERM $pid; wait $pid 2>/dev/null || true
trap - EXIT
echo "nimbus data dir ready: $DATA (group bench version 1, POST /bench/prod/predict)"
