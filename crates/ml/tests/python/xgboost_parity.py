"""Parity checks against Python xgboost, driven by crates/ml/tests/xgboost_parity.rs.

Usage: xgboost_parity.py IN.json OUT.json
IN: {"model": path of an XGBoost JSON model written by nimbus, "feature_types": ["q"|"c", ...],
     "test_x": rows (null = missing), "train_x": rows, "train_y": labels,
     "params": XGBoost parameters, "num_round": n}
OUT: {"prob": xgboost's predict of nimbus's model on test_x, "margin": the same with output_margin,
      "own_prob": predictions on test_x of a model Python xgboost trains itself with the same
      data, features and parameters (tree_method=hist)}
"""
import json
import sys

import numpy as np
import xgboost as xgb


def matrix(rows, feature_types):
    x = np.array([[np.nan if v is None else v for v in r] for r in rows], dtype=np.float32)
    return xgb.DMatrix(x, feature_types=feature_types, enable_categorical=True, missing=np.nan)


def main():
    inp = json.load(open(sys.argv[1]))
    types = inp["feature_types"]
    booster = xgb.Booster(model_file=inp["model"])
    test = matrix(inp["test_x"], types)
    out = {
        "prob": booster.predict(test).astype(float).tolist(),
        "margin": booster.predict(test, output_margin=True).astype(float).tolist(),
    }
    train = matrix(inp["train_x"], types)
    train.set_label(np.array(inp["train_y"], dtype=np.float32))
    params = dict(inp["params"], tree_method="hist")
    own = xgb.train(params, train, num_boost_round=inp["num_round"])
    out["own_prob"] = own.predict(test).astype(float).tolist()
    out["xgboost_version"] = xgb.__version__
    json.dump(out, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
