#!/usr/bin/python3
"""Reference assignments for test/lap-sparse.test.ts from scipy.optimize.linear_sum_assignment.

    /usr/bin/python3 scripts/ref_lap.py        # writes test/refs/lap_scipy.json

Cases (the tests rebuild the same matrices: mulberry32 as in test/helpers.ts `rng`, row-major, float64):
  uniform700_min   700 x 700 uniform[0, 1), seed 7001, minimized
  uniform700_max   700 x 700 uniform[0, 1), seed 7002, maximized
  int700_min       700 x 700 floor(700 * uniform), seed 7003, minimized (ties everywhere: total only)
  normal600x900_min 600 x 900 10 * (u1 - u2), seed 7004, minimized (rectangular)
  rect600x1000_min   600 x 1000 uniform[0, 1), seed 7005, minimized (rows < cols)
  rect1000x600_max   1000 x 600 10 * (u1 - u2), seed 7006, maximized (rows > cols)
  int600x800_min     600 x 800 floor(700 * uniform), seed 7007, minimized (ties: total only)
  lowrank520_max     520 x 520 G1 @ G2.T with G1, G2 520 x 3, entries u1 - u2 (seed 7008: G1 then G2), maximized
                     (low-rank similarity: rows crowd onto the same columns)
  wm_layers0_max   weight matching's first cost of the fixture pair mlp_small_seed{0,1}.safetensors:
                   A.layers.0.weight @ B.layers.0.weight.T (128 x 128, float32 values, float64 products), maximized
For each: the total (sum of the chosen costs, float64) and the column of each row.
"""
import json
import os
import sys

import numpy as np
from scipy.optimize import linear_sum_assignment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import st  # noqa: E402


def imul(a, b):
    r = (a * b) & 0xFFFFFFFF
    return r - 0x100000000 if r >= 0x80000000 else r


def i32(x):
    x &= 0xFFFFFFFF
    return x - 0x100000000 if x >= 0x80000000 else x


def mulberry32(seed, count):
    s = seed & 0xFFFFFFFF
    out = np.empty(count)
    for k in range(count):
        s = (s + 0x6D2B79F5) & 0xFFFFFFFF
        t = i32(s)
        t = imul(i32(t ^ ((t & 0xFFFFFFFF) >> 15)), i32(t | 1))
        t = i32(t ^ (t + imul(i32(t ^ ((t & 0xFFFFFFFF) >> 7)), i32(t | 61))))
        out[k] = ((t ^ ((t & 0xFFFFFFFF) >> 14)) & 0xFFFFFFFF) / 4294967296
    return out


def case(cost, maximize):
    rows, cols = linear_sum_assignment(cost, maximize=maximize)
    row_to_col = [-1] * cost.shape[0]
    for r, c in zip(rows, cols):
        row_to_col[int(r)] = int(c)
    return {"rows": cost.shape[0], "cols": cost.shape[1], "maximize": maximize,
            "total": float(cost[rows, cols].sum()), "rowToCol": row_to_col}


def main():
    out = {"source": "scripts/ref_lap.py (scipy %s)" % __import__("scipy").__version__}
    out["uniform700_min"] = case(mulberry32(7001, 700 * 700).reshape(700, 700), False)
    out["uniform700_max"] = case(mulberry32(7002, 700 * 700).reshape(700, 700), True)
    out["int700_min"] = case(np.floor(700 * mulberry32(7003, 700 * 700)).reshape(700, 700), False)
    u = mulberry32(7004, 2 * 600 * 900)
    out["normal600x900_min"] = case((10 * (u[0::2] - u[1::2])).reshape(600, 900), False)
    out["rect600x1000_min"] = case(mulberry32(7005, 600 * 1000).reshape(600, 1000), False)
    u = mulberry32(7006, 2 * 1000 * 600)
    out["rect1000x600_max"] = case((10 * (u[0::2] - u[1::2])).reshape(1000, 600), True)
    out["int600x800_min"] = case(np.floor(700 * mulberry32(7007, 600 * 800)).reshape(600, 800), False)
    u = mulberry32(7008, 2 * 2 * 520 * 3)
    g = (u[0::2] - u[1::2]).reshape(2, 520, 3)
    out["lowrank520_max"] = case(g[0] @ g[1].T, True)
    fx = os.path.join(ROOT, "..", "shared", "fixtures")
    a = st.read(os.path.join(fx, "mlp_small_seed0.safetensors"))["layers.0.weight"].astype(np.float64)
    b = st.read(os.path.join(fx, "mlp_small_seed1.safetensors"))["layers.0.weight"].astype(np.float64)
    out["wm_layers0_max"] = case(a @ b.T, True)
    del out["int700_min"]["rowToCol"]  # many optima: only the total is defined
    del out["int600x800_min"]["rowToCol"]
    with open(os.path.join(ROOT, "test", "refs", "lap_scipy.json"), "w") as f:
        json.dump(out, f)
        f.write("\n")


if __name__ == "__main__":
    main()
