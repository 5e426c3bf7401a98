#!/usr/bin/env python3
"""The Python xgboost side of bench/train.sh.

Usage: xgboost_bench.py DATA_DIR NIMBUS_MODEL_JSON
Trains xgboost (hist, max_depth 6, eta 0.1, 200 rounds, nthread 2) on DATA_DIR/train.csv, and
times inplace_predict on test.csv twice: with its own trees and with the trees nimbus trained
(loaded from NIMBUS_MODEL_JSON), median of 5 each. Prints one JSON line.
"""
import json
import statistics
import sys
import time

import numpy as np
import xgboost as xgb


def load(path):
    data = np.genfromtxt(path, delimiter=",", skip_header=1, dtype=np.float32, missing_values="", filling_values=np.nan)
    return data[:, :-1], data[:, -1]


def auc(y, p):
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p))
    ranks[order] = np.arange(1, len(p) + 1)
    # midranks for ties
    _, inv, counts = np.unique(p, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    ranks = (sums / counts)[inv]
    pos = y > 0.5
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def predict_rate(booster, x):
    times = []
    for _ in range(5):
        t = time.perf_counter()
        booster.inplace_predict(x, missing=np.nan)
        times.append(time.perf_counter() - t)
    return len(x) / statistics.median(times)


d = sys.argv[1]
t0 = time.perf_counter()
xtr, ytr = load(f"{d}/train.csv")
xte, yte = load(f"{d}/test.csv")
load_s = time.perf_counter() - t0
dtrain = xgb.DMatrix(xtr, label=ytr, missing=np.nan)
params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 6, "eta": 0.1, "nthread": 2, "seed": 0}
t1 = time.perf_counter()
own = xgb.train(params, dtrain, num_boost_round=200)
fit_s = time.perf_counter() - t1
p = own.inplace_predict(xte, missing=np.nan)
theirs = xgb.Booster(model_file=sys.argv[2])
theirs.set_param({"nthread": 2})
print(json.dumps({"impl": f"xgboost {xgb.__version__} (hist)", "load_s": load_s, "fit_s": fit_s, "test_auc": auc(yte, p),
                  "predict_rows_per_s": predict_rate(own, xte), "predict_nimbus_trees_rows_per_s": predict_rate(theirs, xte)}))
