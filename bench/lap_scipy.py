"""Time scipy.optimize.linear_sum_assignment on the raw float64 matrices bench/lap.ts writes.

Two ways to run it:
  lap_scipy.py ROWS:COLS:RUNS:MAX:PATH [...]   time each file, best of RUNS, print one JSON object
                                               {"results": [{"rows": R, "cols": C, "ms": best_ms, "total": t}, ...]}
  lap_scipy.py --serve                         read one ROWS:COLS:RUNS:MAX:PATH request per stdin line and answer
                                               each with one JSON line {"rows", "cols", "ms", "total"}; bench/lap.ts
                                               uses this to interleave scipy's runs with basin's on a busy machine.
Each PATH holds a ROWS x COLS row-major float64 matrix; MAX is 1 to maximize, 0 to minimize. Only the solve is
timed (time.perf_counter), including scipy's own negated copy when maximizing.
"""
import json
import sys
import time

import numpy as np
from scipy.optimize import linear_sum_assignment

_cache = {}


def solve(request: str) -> dict:
    r_str, c_str, runs_str, max_str, path = request.split(":", 4)
    n_rows, n_cols, runs, maximize = int(r_str), int(c_str), int(runs_str), max_str == "1"
    cost = _cache.get(path)
    if cost is None:
        cost = np.fromfile(path, dtype="<f8").reshape(n_rows, n_cols)
        _cache.clear()
        _cache[path] = cost
    best = float("inf")
    total = None
    for _ in range(runs):
        t0 = time.perf_counter()
        rows, cols = linear_sum_assignment(cost, maximize=maximize)
        t1 = time.perf_counter()
        best = min(best, t1 - t0)
        total = float(cost[rows, cols].sum())
    return {"rows": n_rows, "cols": n_cols, "ms": best * 1000.0, "total": total}


def main() -> None:
    if sys.argv[1:] == ["--serve"]:
        for line in sys.stdin:
            line = line.strip()
            if line:
                print(json.dumps(solve(line)), flush=True)
        return
    print(json.dumps({"results": [solve(arg) for arg in sys.argv[1:]]}))


if __name__ == "__main__":
    main()
