#!/usr/bin/python3
"""Reference numbers for `basin shrink --method select` (src/reduce), computed with numpy/scipy in float64,
independently of basin.

    /usr/bin/python3 scripts/ref_shrink.py      # writes test/refs/shrink_mlp_small.json

Model: mlp_small_seed0.safetensors (784 -> 128 -> 128 -> 10, ReLU; torch layout, Linear weight [out, in]).
Calibration: the first 2000 images of fmnist_train4k. Test: fmnist_test1k.

Selection + refit, one hidden layer at a time, first to last, each on the model the previous steps produced:
  1. h = ReLU(layer_l(x)) of the CURRENT model on the calibration images, [N, n];
  2. units kept: the first q pivots of column-pivoted QR (scipy.linalg.qr(pivoting=True)) of the centred h with
     each column scaled by the norm of its outgoing weights (column j of the next layer's weight), sorted;
  3. the next layer refitted by least squares (numpy.linalg.lstsq, rank-revealing SVD) on [h[:, kept], 1] to
     reproduce the ORIGINAL model's pre-activations of that layer;
  4. layer_l keeps rows `kept` of its weight and bias.
Accuracy and loss on the test images, before and after, for several widths (same width for both hidden layers).
"""
import json
import os
import sys

import numpy as np
import scipy.linalg

sys.dont_write_bytecode = True
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import st  # noqa: E402

FIXTURES = os.environ.get("BASIN_FIXTURES", "/work/shared/fixtures")
OUT = os.path.join(ROOT, "test", "refs", "shrink_mlp_small.json")
SAMPLES = 2000
WIDTHS = [16, 32, 64, 96, 128]


def images(path, n=None):
    t = st.read(path)
    x = t["input"].astype(np.float64)
    if t["input"].dtype == np.uint8:
        x = x / 255.0
    y = t["label"].astype(np.int64)
    return (x[:n], y[:n]) if n else (x, y)


def forward(layers, x):
    h = x
    for i, (w, b) in enumerate(layers):
        h = h @ w.T + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0)
    return h


def evaluate(layers, x, y):
    z = forward(layers, x)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return {"loss": float(-logp[np.arange(len(y)), y].mean()), "accuracy": float((z.argmax(axis=1) == y).mean())}


def shrink(layers, x, q):
    orig = [(w.copy(), b.copy()) for w, b in layers]
    cur = [(w.copy(), b.copy()) for w, b in layers]
    kept_all = []
    for l in range(len(layers) - 1):
        h_cur = x
        h_orig = x
        for i in range(l + 1):
            h_cur = np.maximum(h_cur @ cur[i][0].T + cur[i][1], 0)
            h_orig = np.maximum(h_orig @ orig[i][0].T + orig[i][1], 0)
        w_next, b_next = orig[l + 1]
        target = h_orig @ w_next.T + b_next
        importance = np.linalg.norm(cur[l + 1][0], axis=0)
        centred = (h_cur - h_cur.mean(axis=0)) * importance
        _, _, piv = scipy.linalg.qr(centred, mode="economic", pivoting=True)
        kept = np.sort(piv[:q])
        a = np.concatenate([h_cur[:, kept], np.ones((len(h_cur), 1))], axis=1)
        sol, *_ = np.linalg.lstsq(a, target, rcond=None)
        cur[l] = (cur[l][0][kept], cur[l][1][kept])
        cur[l + 1] = (sol[:-1].T.copy(), sol[-1].copy())
        kept_all.append(kept.tolist())
    return cur, kept_all


def main():
    sd = st.read(os.path.join(FIXTURES, "mlp_small_seed0.safetensors"))
    names = ["layers.0", "layers.1", "head"]
    layers = [(sd[f"{n}.weight"].astype(np.float64), sd[f"{n}.bias"].astype(np.float64)) for n in names]
    xc, _ = images(os.path.join(FIXTURES, "fmnist_train4k.safetensors"), SAMPLES)
    xt, yt = images(os.path.join(FIXTURES, "fmnist_test1k.safetensors"))
    out = {"model": "mlp_small_seed0", "calibration_samples": SAMPLES, "before": evaluate(layers, xt, yt), "widths": {}}
    z0 = forward(layers, xt)
    for q in WIDTHS:
        red, kept = shrink(layers, xc, q)
        z = forward(red, xt)
        nmse = float(((z - z0) ** 2).mean() / z0.var())
        out["widths"][str(q)] = {**evaluate(red, xt, yt), "test_output_nmse": nmse, "kept": kept}
        print(q, out["widths"][str(q)]["accuracy"], nmse, file=sys.stderr)
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
