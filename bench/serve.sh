#!/usr/bin/env bash
# Serving side by side with the peers, in one run of their harness (../shared/bench/peers):
# MLflow serve, FastAPI + xgboost, BentoML, nginx (static file, the HTTP floor) and nimbus,
# all serving the same XGBoost JSON model with the same wrk settings. nimbus imports that
# model (bench/serve-setup.sh) and answers POST /bench/prod/predict; the body files are the
# harness's own (the seeds' {"instances": [...]}).
# Usage: bench/serve.sh        env: PEERS (harness dir), ONLY, DURATION, REPEATS, COLD_RUNS
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS="${PEERS:-$ROOT/../shared/bench/peers}"
[ -x "$PEERS/run.sh" ] || { echo "no peers harness at $PEERS (set PEERS)" >&2; exit 1; }
cargo build --release -q --manifest-path "$ROOT/Cargo.toml" -p nimbus
BIN="$ROOT/target/release/nimbus"
DATA="${TMPDIR:-/tmp}/nimbus-bench-serve"
export EXTRA_NAME=nimbus
export EXTRA_SETUP="$ROOT/bench/serve-setup.sh {work} $DATA $BIN"
export EXTRA_CMD="exec $BIN serve --data-dir $DATA --listen 127.0.0.1:{port}"
export EXTRA_PATH=/bench/prod/predict
export NIMBUS_LOG=warn
"$PEERS/run.sh"
