#!/usr/bin/python3
"""The PyTorch reference of `basin factorize --rank R` on one ONNX model, timed: the same work from the model file
and the calibration file to every selected layer's factors.

    /usr/bin/python3 scripts/ref_factorize_time.py MODEL.onnx --data CALIB.safetensors [--samples 2000] \
        [--rank 0.25] [--min-features 256] [--eval TEST.safetensors] [--threads N]

Prints one JSON line: per layer rank and nmse (seed's definition, see ref_factorize.py), and the wall seconds of
  load      reading the ONNX weights (onnx package) and the calibration images (first --samples of `input`)
  forward   one forward pass of the graph on them with torch kernels (train_fmnist.run_onnx, float32), keeping
            every selected layer's input
  solve     per layer, in float64: X^T X-sized work of the closed form (whiten, truncate, un-whiten) + 3 ALS
            iterations with the rank-revealing gelsd driver (ref_factorize.closed_form), on the rows themselves
  total     load + forward + solve (excluding interpreter start and `import torch`, reported as `startup`);
            cpu_seconds_total: the same span in CPU seconds of all threads (user + system)
With --eval: accuracy before and after on that file (`input`, `label`), W replaced by Wa Wb; not timed.
Layer selection and ranks follow Composer as `basin factorize --rank` does: Gemm / MatMul with a constant weight
with min(in, out) >= --min-features, rank = R if R >= 1 else floor(R * min(in, out)) (Conv layers: --min-channels,
not needed by the MLP check).
"""
import time

T_START = time.perf_counter()
import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402
from ref_factorize import closed_form, nmse  # noqa: E402
from ref_factorize_models import accuracy, find_layers, replaced, rows  # noqa: E402
from train_fmnist import run_onnx  # noqa: E402
import onnx  # noqa: E402

T_IMPORTED = time.perf_counter()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--data", required=True)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--rank", type=float, default=0.25)
    ap.add_argument("--min-features", type=int, default=256)
    ap.add_argument("--min-channels", type=int, default=256)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--eval", default=None)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    t0, c0 = time.perf_counter(), time.process_time()
    m = onnx.load(args.model)
    layers = [l for l in find_layers(m) if min(l["w"].shape) >= (args.min_channels if l["op"] == "Conv" else args.min_features)
              and (l["op"] != "Conv" or l["kshape"][0] >= args.min_channels)]
    x = st.read(args.data)["input"][: args.samples].astype(np.float32)
    t1 = time.perf_counter()
    env = {}
    with torch.no_grad():
        run_onnx(args.model, torch.from_numpy(x), env_out=env)
    acts = {l["name"]: rows(l, env[l["x"]]) for l in layers}
    del env
    t2 = time.perf_counter()
    sols, out = {}, {}
    for l in layers:
        xr = acts[l["name"]]
        k = int(args.rank) if args.rank >= 1 else int(args.rank * min(l["w"].shape))
        w = torch.from_numpy(l["w"])
        b = torch.from_numpy(l["bias"]) if l["bias"] is not None else torch.zeros(w.shape[1], dtype=torch.float64)
        y = xr @ w + b
        wa, wb, nb, _ = closed_form(xr, y, k, args.iters)
        sols[l["name"]] = (wa, wb, nb)
        out[l["name"]] = {"rank": k, "nmse": nmse(y, xr @ wa @ wb + nb)}
    t3, c3 = time.perf_counter(), time.process_time()
    res = {
        "layers": out,
        "samples": int(x.shape[0]),
        "threads": torch.get_num_threads(),
        "seconds": {"startup": T_IMPORTED - T_START, "load": t1 - t0, "forward": t2 - t1, "solve": t3 - t2, "total": t3 - t0},
        "cpu_seconds_total": c3 - c0,
    }
    if args.eval:
        test = st.read(args.eval)
        res["accuracy_before"], res["loss_before"] = accuracy(m, test)
        res["accuracy_after"], res["loss_after"] = accuracy(replaced(m, layers, sols), test)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
