#!/usr/bin/python3
"""Reference numbers for basin's factorize core (src/factorize), computed with torch in float64.

    /usr/bin/python3 scripts/ref_factorize.py      # writes test/refs/factorize_mlp_small.json

Model: mlp_small_seed0.safetensors (784 -> 128 -> 128 -> 10, ReLU). Calibration: the first 2000 images of
fmnist_train4k. Layers: `layers.0` (inputs: the pixels) and `layers.1` (inputs: the first hidden layer after
ReLU, which has 16 dead units of 128 on these images). For each layer and rank:

  seed_robust   Composer's factorize_matrix as written (SVD start of W, 3 ALS iterations, bias = original bias +
                mean residual), with its `_lstsq` made robust: float64 and the rank-revealing SVD driver
                (torch.linalg.lstsq(driver='gelsd')).
  seed_default  the same with the seed's own solve (torch.linalg.lstsq default driver, float32), for contrast.
  closed_form   the closed-form optimum of the same objective with the intercept fitted jointly: centre X and Y,
                whiten by the eigendecomposition of Xc^T Xc (eigenvalues <= 1e-10 * max dropped), truncate the
                SVD of the whitened cross-product, un-whiten; then 3 ALS iterations (gelsd), keeping the best.

nmse everywhere is the seed's docstring definition: mean((Y - Y_hat)^2) / Y.var(), Y = X W^T + b the layer's
original output (bias included; the seed's code subtracts the bias from Y before its own nmse, which adds the
bias back into the error when a bias is passed, so that line is not followed), Y.var() unbiased over all values.
Times (wall and CPU seconds, best of 3, torch threads as reported) cover the factorization from X and W, not the forward pass.
"""
import json
import os
import sys
import time

import numpy as np
import torch

sys.dont_write_bytecode = True
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import st  # noqa: E402

FIXTURES = os.environ.get("BASIN_FIXTURES", "/work/shared/fixtures")
OUT = os.path.join(ROOT, "test", "refs", "factorize_mlp_small.json")
SAMPLES = 2000
RANKS = {"layers.0": [8, 16, 32, 64], "layers.1": [4, 8, 16, 32, 64]}


def nmse(y, y_hat):
    d = y - y_hat
    return float((d * d).mean() / y.var())


def seed_factorize(x, y, w, bias, k, n_iters, lstsq):
    """Composer's factorize_matrix (seed 002), W given as [in, out]."""
    y = y - bias
    u, s, vt = torch.linalg.svd(w, full_matrices=False)
    wa = u[:, :k] * torch.sqrt(s[:k])
    wb = vt[:k] * torch.sqrt(s[:k]).reshape(-1, 1)
    ya = lstsq(x, y)
    for _ in range(n_iters):
        wb = lstsq(x @ wa, y)
        wa = lstsq(wb.T, ya.T).T
    y_hat = (x @ wa) @ wb
    new_bias = (y - y_hat).mean(dim=0) + bias
    return wa, wb, new_bias


def closed_form(x, y, k, n_iters, rcond=1e-10):
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    cxx = xc.T @ xc
    evals, evecs = torch.linalg.eigh(cxx)
    keep = evals > rcond * evals.max()
    v, lam = evecs[:, keep], evals[keep]
    # Whitened coordinates of the least-squares fit: Z = Lam^-1/2 V^T Xc^T Yc.
    z = (v.T @ (xc.T @ yc)) / torch.sqrt(lam).reshape(-1, 1)
    uz, sz, vzt = torch.linalg.svd(z, full_matrices=False)
    wa = (v / torch.sqrt(lam)) @ (uz[:, :k] * torch.sqrt(sz[:k]))
    wb = torch.sqrt(sz[:k]).reshape(-1, 1) * vzt[:k]
    lstsq = lambda a, b: torch.linalg.lstsq(a, b, driver="gelsd").solution  # noqa: E731
    best = (nmse(y, xc @ wa @ wb + my), wa, wb)
    first = best[0]
    ya = lstsq(xc, yc)
    for _ in range(n_iters):
        wb = lstsq(xc @ wa, yc)
        wa = lstsq(wb.T, ya.T).T
        e = nmse(y, xc @ wa @ wb + my)
        if e < best[0]:
            best = (e, wa, wb)
    _, wa, wb = best
    bias = my - mx @ wa @ wb
    return wa, wb, bias, first


def timed(fn):
    """(result, best wall seconds, best CPU seconds of this process) over 3 runs."""
    best, best_cpu = float("inf"), float("inf")
    out = None
    for _ in range(3):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.process_time() - c)
    return out, best, best_cpu


def main():
    torch.manual_seed(0)
    tensors = st.read(os.path.join(FIXTURES, "mlp_small_seed0.safetensors"))
    data = st.read(os.path.join(FIXTURES, "fmnist_train4k.safetensors"))
    x0 = torch.from_numpy(data["input"][:SAMPLES].astype(np.float64))
    w0 = torch.from_numpy(tensors["layers.0.weight"].astype(np.float64))
    b0 = torch.from_numpy(tensors["layers.0.bias"].astype(np.float64))
    inputs = {"layers.0": x0, "layers.1": torch.relu(x0 @ w0.T + b0)}
    robust = lambda a, b: torch.linalg.lstsq(a, b, driver="gelsd").solution  # noqa: E731
    default32 = lambda a, b: torch.linalg.lstsq(a.float(), b.float()).solution.double()  # noqa: E731
    layers = {}
    for name, ranks in RANKS.items():
        x = inputs[name]
        w = torch.from_numpy(tensors[f"{name}.weight"].astype(np.float64)).T.contiguous()  # [in, out]
        b = torch.from_numpy(tensors[f"{name}.bias"].astype(np.float64))
        y = x @ w + b
        xc = x - x.mean(0)
        ev = torch.linalg.eigvalsh(xc.T @ xc)
        entry = {
            "in": w.shape[0],
            "out": w.shape[1],
            "activation_rank": int((ev > 1e-10 * ev.max()).sum()),
            "dead_inputs": int((x.abs().max(0).values == 0).sum()),
            "ranks": {},
        }
        for k in ranks:
            (wa, wb, nb), t_seed, c_seed = timed(lambda: seed_factorize(x, y, w, b, k, 3, robust))
            seed_robust = nmse(y, x @ wa @ wb + nb)
            wa, wb, nb = seed_factorize(x, y, w, b, k, 3, default32)
            seed_default = nmse(y, x @ wa @ wb + nb)
            (wa, wb, nb, first), t_cf, c_cf = timed(lambda: closed_form(x, y, k, 3))
            cf = nmse(y, x @ wa @ wb + nb)
            entry["ranks"][str(k)] = {
                "seed_robust_nmse": seed_robust,
                "seed_default_nmse": seed_default,
                "closed_form_nmse": first,
                "closed_form_als_nmse": cf,
                "seconds_seed_robust": round(t_seed, 4),
                "seconds_closed_form": round(t_cf, 4),
                "cpu_seconds_seed_robust": round(c_seed, 4),
                "cpu_seconds_closed_form": round(c_cf, 4),
            }
            print(name, k, entry["ranks"][str(k)], flush=True)
        layers[name] = entry
    out = {
        "conventions": __doc__.strip().split("\n\n", 1)[1],
        "model": "mlp_small_seed0.safetensors",
        "calibration": f"fmnist_train4k.safetensors input[:{SAMPLES}]",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "layers": layers,
    }
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
