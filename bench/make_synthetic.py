#!/usr/bin/env python3
"""Synthetic binary-classification data for the training benchmark.

Usage: make_synthetic.py OUT_DIR [ROWS=200000] [COLS=28] [SEED=7]
Writes OUT_DIR/train.csv (80% of rows) and OUT_DIR/test.csv (20%): numeric columns f0..f27,
2% of the values missing (empty fields), label y from a noisy non-linear function of a few
features. Standard library only, deterministic for a seed.
"""
import math
import os
import random
import sys

out = sys.argv[1]
rows = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
cols = int(sys.argv[3]) if len(sys.argv) > 3 else 28
rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 7)
os.makedirs(out, exist_ok=True)
header = ",".join([f"f{j}" for j in range(cols)] + ["y"]) + "\n"
n_train = int(rows * 0.8)
with open(os.path.join(out, "train.csv"), "w") as tr, open(os.path.join(out, "test.csv"), "w") as te:
    tr.write(header)
    te.write(header)
    for i in range(rows):
        x = [rng.gauss(0, 1) for _ in range(cols)]
        logit = 1.5 * x[0] - 2 * x[1] * x[2] + math.sin(3 * x[3]) + 0.5 * x[4] ** 2 - 1 + 0.3 * sum(x[5:10])
        y = 1 if rng.random() < 1 / (1 + math.exp(-logit)) else 0
        fields = ["" if rng.random() < 0.02 else f"{v:.5f}" for v in x]
        (tr if i < n_train else te).write(",".join(fields + [str(y)]) + "\n")
