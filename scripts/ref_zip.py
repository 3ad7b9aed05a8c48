#!/usr/bin/python3
"""Reference numbers for `basin zip` (src/zip), computed with numpy/scipy in float64, independent of basin.

    /usr/bin/python3 scripts/ref_zip.py        # writes test/refs/zip_mlp_small.json

Models: mlp_small_seed0/seed1.safetensors (784 -> 128 -> 128 -> 10, ReLU, torch layouts). Calibration: the first
2000 images of fmnist_train4k; test: fmnist_test1k.

stack       the two models side by side: layer 0 rows [A; B] (both read the same pixels), hidden layers
            block-diagonal, the head block-diagonal (20 logits: A's then B's). Exact: each half of the stacked
            logits equals its model's logits.
select      per hidden layer, in order: the stacked (already reduced upstream) model's post-ReLU activations on the
            calibration images; keep the first `width` pivots of column-pivoted QR (scipy.linalg.qr(pivoting=True));
            refit the consuming layer by least squares ([h_kept, 1] -> the stacked model's original
            pre-activations of that layer, numpy lstsq: SVD, rank-revealing), so each refit sees the reduced inputs.
pca_weight  the seed's weight PCA (003): each hidden layer's stacked weight W [2n, in] replaced by its top
            principal directions E = U[:, :width]^T (torch.pca_lowrank(W, center=False) computes the same
            subspace; here the exact SVD), folded as E W into the layer and W_next E^T into the next one, ReLU
            between them ignored, as the seed does on its linear nets.

Accuracy of each half (A: logits[:, :10], B: logits[:, 10:]) on the 1000 test images, at widths 1x (128 per
hidden layer) and 1.5x (192), plus both models alone.
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
OUT = os.path.join(ROOT, "test", "refs", "zip_mlp_small.json")
SAMPLES = 2000
NAMES = ["layers.0", "layers.1", "head"]


def load(seed):
    t = st.read(os.path.join(FIXTURES, f"mlp_small_seed{seed}.safetensors"))
    return [(t[f"{n}.weight"].astype(np.float64), t[f"{n}.bias"].astype(np.float64)) for n in NAMES]


def stack(a, b):
    layers = []
    for i, ((wa, ba), (wb, bb)) in enumerate(zip(a, b)):
        if i == 0:
            w = np.concatenate([wa, wb], 0)
        else:
            w = scipy.linalg.block_diag(wa, wb)
        layers.append((w, np.concatenate([ba, bb])))
    return layers


def forward(layers, x):
    h = x
    for i, (w, b) in enumerate(layers):
        h = h @ w.T + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0)
    return h


def pre_activations(layers, x):
    out, h = [], x
    for i, (w, b) in enumerate(layers):
        z = h @ w.T + b
        out.append(z)
        h = np.maximum(z, 0)
    return out


def select(layers, x, width):
    target = pre_activations(layers, x)
    new = [(layers[0][0].copy(), layers[0][1].copy())]
    h_in = x
    for i in range(len(layers) - 1):
        w, b = new[i]
        h = np.maximum(h_in @ w.T + b, 0)
        _, _, piv = scipy.linalg.qr(h, mode="economic", pivoting=True)
        keep = np.sort(piv[:width])
        new[i] = (w[keep], b[keep])
        hk = h[:, keep]
        design = np.concatenate([hk, np.ones((hk.shape[0], 1))], 1)
        coef, *_ = np.linalg.lstsq(design, target[i + 1], rcond=None)
        new.append((coef[:-1].T.copy(), coef[-1].copy()))
        h_in = hk
    return new


def pca_weight(layers, width):
    new = [list(l) for l in layers]
    for i in range(len(layers) - 1):
        w, b = new[i]
        u, _, _ = np.linalg.svd(w, full_matrices=False)
        e = u[:, :width].T
        new[i] = [e @ w, e @ b]
        new[i + 1] = [new[i + 1][0] @ e.T, new[i + 1][1]]
    return [tuple(l) for l in new]


def halves(logits, labels):
    return {"A": float((logits[:, :10].argmax(1) == labels).mean()), "B": float((logits[:, 10:].argmax(1) == labels).mean())}


def main():
    train = st.read(os.path.join(FIXTURES, "fmnist_train4k.safetensors"))
    test = st.read(os.path.join(FIXTURES, "fmnist_test1k.safetensors"))
    x = train["input"][:SAMPLES].astype(np.float64)
    xt = test["input"].astype(np.float64)
    yt = test["label"].astype(np.int64)
    a, b = load(0), load(1)
    s = stack(a, b)
    la, lb, ls = forward(a, xt), forward(b, xt), forward(s, xt)
    stack_err = float(np.abs(ls - np.concatenate([la, lb], 1)).max())
    out = {
        "models": ["mlp_small_seed0.safetensors", "mlp_small_seed1.safetensors"],
        "calibration": f"fmnist_train4k.safetensors first {SAMPLES}",
        "test": "fmnist_test1k.safetensors",
        "alone": {"A": float((la.argmax(1) == yt).mean()), "B": float((lb.argmax(1) == yt).mean())},
        "stack_max_error": stack_err,
        "widths": {},
    }
    for label, width in [("1x", 128), ("1.5x", 192)]:
        sel = select(s, x, width)
        pca = pca_weight(s, width)
        out["widths"][label] = {
            "width": width,
            "select": halves(forward(sel, xt), yt),
            "pca_weight": halves(forward(pca, xt), yt),
        }
    with open(OUT, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
