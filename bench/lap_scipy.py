"""Time scipy.optimize.linear_sum_assignment on the raw float64 matrices bench/lap.ts wrote.

Usage: lap_scipy.py ROWS:COLS:RUNS:PATH [ROWS:COLS:RUNS:PATH ...]
Each PATH holds a ROWS x COLS row-major float64 matrix. Only the solve is timed (time.perf_counter), best of RUNS.
Prints one JSON object: {"results": [{"rows": R, "cols": C, "ms": best_ms, "total": optimal_total}, ...]}.
"""
import json
import sys
import time

import numpy as np
from scipy.optimize import linear_sum_assignment


def main() -> None:
    results = []
    for arg in sys.argv[1:]:
        r_str, c_str, runs_str, path = arg.split(":", 3)
        n_rows, n_cols, runs = int(r_str), int(c_str), int(runs_str)
        cost = np.fromfile(path, dtype="<f8").reshape(n_rows, n_cols)
        best = float("inf")
        total = None
        for _ in range(runs):
            t0 = time.perf_counter()
            rows, cols = linear_sum_assignment(cost)
            t1 = time.perf_counter()
            best = min(best, t1 - t0)
            total = float(cost[rows, cols].sum())
        results.append({"rows": n_rows, "cols": n_cols, "ms": best * 1000.0, "total": total})
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
