"""Python xgboost's side of crates/ml/tests/xgboost_json.rs (XGBoost JSON import and export).

Usage:
  xgboost_json.py train IN.json OUT.json
    IN: {"csv": the Titanic CSV, "dir": where to save models, "cases": [{"name", "objective",
         "target", "features": [...], "categorical": [features typed "c"], "feature_names": bool,
         "params": {...}, "num_round": n}]}
    Reads the CSV with the csv module, label-encodes Sex (male=0, female=1) and Embarked (S=0,
    C=1, Q=2), trains on the rows whose index is not a multiple of 5 and saves
    DIR/NAME.json with booster.save_model. A multi:softprob target is shifted to start at 0.
    OUT: {"xgboost_version", "cases": {NAME: {"model", "holdout": row indices (multiples of 5),
          "x": the encoded holdout (null = missing), "pred": predict, "margin": output_margin}}}
  xgboost_json.py predict IN.json OUT.json
    IN: {"model": an XGBoost JSON model written by nimbus, "x": rows (null = missing)}
    OUT: {"pred", "margin", "feature_names", "feature_types"} as the loaded booster has them.
  xgboost_json.py fixture DIR
    Needs pandas (not in the test environment). Regenerates the checked-in fixture
    DIR/xgboost_pandas_categories.json, a model trained on pandas category columns (whose
    categories xgboost saves in the model), and DIR/xgboost_pandas_categories.expected.json
    with raw records and xgboost's predictions for them.
"""
import csv
import json
import math
import sys

import numpy as np
import xgboost as xgb

LABELS = {"Sex": ["male", "female"], "Embarked": ["S", "C", "Q"]}


def read_titanic(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def encode(row, name):
    value = row[name]
    if value == "":
        return math.nan
    if name in LABELS:
        return float(LABELS[name].index(value))
    return float(value)


def rows_json(x):
    return [[None if math.isnan(v) else float(v) for v in r] for r in x.tolist()]


def train(inp):
    data = read_titanic(inp["csv"])
    out = {"xgboost_version": xgb.__version__, "cases": {}}
    for case in inp["cases"]:
        features = case["features"]
        x = np.array([[encode(r, f) for f in features] for r in data], dtype=np.float32)
        y = np.array([encode(r, case["target"]) for r in data], dtype=np.float32)
        if case["objective"] == "multi:softprob":
            y = y - y.min()
        holdout = np.arange(len(data)) % 5 == 0
        types = ["c" if f in case["categorical"] else "q" for f in features]
        names = features if case["feature_names"] else None

        def matrix(rows, label=None):
            return xgb.DMatrix(
                rows, label=label, feature_names=names, feature_types=types, enable_categorical=True, missing=np.nan
            )

        params = dict(case["params"], objective=case["objective"], tree_method="hist")
        booster = xgb.train(params, matrix(x[~holdout], y[~holdout]), num_boost_round=case["num_round"])
        path = f"{inp['dir']}/{case['name']}.json"
        booster.save_model(path)
        test = matrix(x[holdout])
        out["cases"][case["name"]] = {
            "model": path,
            "holdout": np.flatnonzero(holdout).tolist(),
            "x": rows_json(x[holdout]),
            "pred": booster.predict(test).astype(float).ravel().tolist(),
            "margin": booster.predict(test, output_margin=True).astype(float).ravel().tolist(),
        }
    return out


def predict(inp):
    booster = xgb.Booster(model_file=inp["model"])
    x = np.array([[math.nan if v is None else v for v in r] for r in inp["x"]], dtype=np.float32)
    test = xgb.DMatrix(
        x, feature_names=booster.feature_names, feature_types=booster.feature_types, enable_categorical=True
    )
    return {
        "pred": booster.predict(test).astype(float).ravel().tolist(),
        "margin": booster.predict(test, output_margin=True).astype(float).ravel().tolist(),
        "feature_names": booster.feature_names,
        "feature_types": booster.feature_types,
    }


def fixture(directory):
    import pandas as pd

    data = pd.DataFrame(read_titanic(f"{directory}/../../../../examples/titanic/data/train.csv"))
    frame = pd.DataFrame(
        {
            "Pclass": pd.Categorical(data["Pclass"].astype(int), categories=[3, 1, 2]),
            "Sex": pd.Categorical(data["Sex"], categories=["male", "female"]),
            "Age": pd.to_numeric(data["Age"]),
            "Fare": pd.to_numeric(data["Fare"]),
            "Embarked": pd.Categorical(data["Embarked"].replace("", None), categories=["S", "C", "Q"]),
        }
    )
    label = data["Survived"].astype(int)
    params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 3, "max_cat_to_onehot": 1}
    booster = xgb.train(params, xgb.DMatrix(frame, label=label, enable_categorical=True), num_boost_round=8)
    booster.save_model(f"{directory}/xgboost_pandas_categories.json")
    records = [
        {"Pclass": 3, "Sex": "male", "Age": 22, "Fare": 7.25, "Embarked": "S"},
        {"Pclass": 1, "Sex": "female", "Age": 38, "Fare": 71.2833, "Embarked": "C"},
        {"Pclass": 2, "Sex": "female", "Age": None, "Fare": 13.0, "Embarked": "Q"},
        {"Pclass": 1, "Sex": "male", "Age": 54, "Fare": 51.86, "Embarked": None},
        {"Pclass": 3, "Sex": "female", "Age": 4, "Fare": 16.7, "Embarked": "S"},
    ]
    test = pd.DataFrame(records)
    for name in ["Pclass", "Sex", "Embarked"]:
        test[name] = pd.Categorical(test[name], categories=frame[name].cat.categories)
    test["Age"] = test["Age"].astype(float)
    matrix = xgb.DMatrix(test, enable_categorical=True)
    expected = {
        "xgboost_version": xgb.__version__,
        "records": records,
        "prob": booster.predict(matrix).astype(float).tolist(),
        "margin": booster.predict(matrix, output_margin=True).astype(float).tolist(),
    }
    with open(f"{directory}/xgboost_pandas_categories.expected.json", "w") as f:
        json.dump(expected, f, indent=1)


def main():
    command = sys.argv[1]
    if command == "fixture":
        fixture(sys.argv[2])
        return
    inp = json.load(open(sys.argv[2]))
    out = {"train": train, "predict": predict}[command](inp)
    json.dump(out, open(sys.argv[3], "w"))


if __name__ == "__main__":
    main()
