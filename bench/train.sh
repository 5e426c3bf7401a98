#!/usr/bin/env bash
# Training (b) and batch prediction (c) benchmarks, nimbus and Python xgboost side by side in
# one run on the same synthetic data. Usage: bench/train.sh   (writes to stdout; ~2 minutes)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="$(scripts/python-env.sh)"
DATA="${DATA:-/tmp/nimbus-bench-data}"
[ -s "$DATA/train.csv" ] || "$PY" bench/make_synthetic.py "$DATA" 200000 28 7
cargo build --release -q -p nimbus-bench
ours=$(target/release/train_bench "$DATA" "$DATA/nimbus-model.json")
theirs=$("$PY" bench/xgboost_bench.py "$DATA" "$DATA/nimbus-model.json")
"$PY" - "$ours" "$theirs" <<'PYEOF'
import json, sys
o, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("| | nimbus (hessboost) | " + t["impl"] + " | ratio |")
print("|---|---|---|---|")
print(f"| fit time, 160k x 28, depth 6, 200 rounds, 2 threads | {o['fit_s']:.2f} s | {t['fit_s']:.2f} s | {o['fit_s']/t['fit_s']:.2f}x |")
print(f"| test AUC (40k rows) | {o['test_auc']:.4f} | {t['test_auc']:.4f} | diff {o['test_auc']-t['test_auc']:+.4f} |")
print(f"| batch prediction, own trees, rows/s | {o['predict_rows_per_s']:,.0f} | {t['predict_rows_per_s']:,.0f} (inplace_predict) | {o['predict_rows_per_s']/t['predict_rows_per_s']:.2f}x |")
print(f"| batch prediction, nimbus's trees, rows/s | {o['predict_rows_per_s']:,.0f} | {t['predict_nimbus_trees_rows_per_s']:,.0f} (inplace_predict) | {o['predict_rows_per_s']/t['predict_nimbus_trees_rows_per_s']:.2f}x |")
print(f"| CSV load of train+test | {o['load_s']:.2f} s | {t['load_s']:.2f} s (numpy genfromtxt) | |")
PYEOF
