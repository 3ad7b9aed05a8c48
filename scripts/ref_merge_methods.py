#!/usr/bin/env python3
"""Independent reference for basin's merge methods (src/merge/methods/), written from the papers' definitions in
numpy (vectorized over models, not basin's per-entry loops), on small random tensors.

Writes test/refs/merge_methods.json: for each case the method, its options, the inputs (models, base), DARE's keep
masks (PRNGs differ between numpy and basin, so the masks are data), and the expected merged tensor.

  average          sum_i w_i theta_i / sum_i w_i
  linear           sum_i w_i theta_i (/ sum_i w_i when normalize)           (model soups; mergekit linear)
  slerp            sin((1-t)W)/sin W * v0 + sin(tW)/sin W * v1, W the angle of the unit-norm copies,
                   lerp when |cos W| > 0.9995                                (Shoemake 1985; mergekit slerp)
  task-arithmetic  base + lam * sum_i w_i tau_i, tau_i = theta_i - base      (Ilharco et al. 2023)
  ties             trim tau_i to its top floor(density*n) magnitudes; elect gamma = sign(sum_i w_i tau_i) (+ at 0);
                   disjoint mean over {i : sign(w_i tau_i) = gamma}; base + lam * mean   (Yadav et al. 2023)
  dare-linear      tau_i * m_i / density (m_i ~ Bernoulli(density)), then task arithmetic   (Yu et al. 2024)
  dare-ties        the same drop, then TIES's election and disjoint sum (no trim)

Run: python3 scripts/ref_merge_methods.py  (numpy only)
"""
import json
import os

import numpy as np

rng = np.random.default_rng(20261130)


def average(thetas, w):
    w = np.asarray(w, dtype=np.float64)
    return np.tensordot(w / w.sum(), thetas, axes=1)


def linear(thetas, w, normalize):
    w = np.asarray(w, dtype=np.float64)
    s = np.tensordot(w, thetas, axes=1)
    return s / w.sum() if normalize else s


def slerp(t, v0, v1, dot_threshold=0.9995, eps=1e-8):
    u0 = v0 / np.linalg.norm(v0) if np.linalg.norm(v0) > eps else v0
    u1 = v1 / np.linalg.norm(v1) if np.linalg.norm(v1) > eps else v1
    dot = float(np.sum(u0 * u1))
    if abs(dot) > dot_threshold:
        return (1 - t) * v0 + t * v1
    omega = np.arccos(dot)
    return np.sin((1 - t) * omega) / np.sin(omega) * v0 + np.sin(t * omega) / np.sin(omega) * v1


def trim(tau, density):
    if density >= 1:
        return tau
    flat = tau.reshape(-1)
    k = max(1, int(np.floor(density * flat.size)))
    keep = np.argsort(-np.abs(flat), kind="stable")[:k]
    out = np.zeros_like(flat)
    out[keep] = flat[keep]
    return out.reshape(tau.shape)


def merge_task_vectors(base, taus, w, lam, normalize, elect):
    w = np.asarray(w, dtype=np.float64).reshape((-1,) + (1,) * base.ndim)
    weighted = w * taus
    if elect:
        gamma = np.where(weighted.sum(axis=0) >= 0, 1.0, -1.0)
        agree = np.sign(weighted) == gamma
        total = np.where(agree, weighted, 0.0).sum(axis=0)
        divisor = np.where(agree, w, 0.0).sum(axis=0)
        divisor = np.where(divisor == 0, 1.0, divisor)
    else:
        total = weighted.sum(axis=0)
        divisor = w.sum()
        divisor = 1.0 if abs(divisor) < 1e-8 else divisor
    if normalize:
        total = total / divisor
    return base + lam * total


def models(n, shape, spread=0.3):
    base = rng.standard_normal(shape)
    thetas = np.stack([base + spread * rng.standard_normal(shape) for _ in range(n)])
    return base, thetas


cases = []


def add(method, options, thetas, expected, base=None, masks=None):
    case = {"method": method, "options": options, "shape": list(thetas.shape[1:]), "models": [t.reshape(-1).tolist() for t in thetas], "expected": np.asarray(expected).reshape(-1).tolist()}
    if base is not None:
        case["base"] = base.reshape(-1).tolist()
    if masks is not None:
        case["masks"] = [m.reshape(-1).astype(int).tolist() for m in masks]
    cases.append(case)


# average / linear
_, th = models(3, (4, 5))
add("average", {"weights": [1, 2, 3]}, th, average(th, [1, 2, 3]))
_, th = models(2, (3, 7))
add("linear", {"weights": [0.3, 0.7], "normalize": True}, th, linear(th, [0.3, 0.7], True))
_, th = models(3, (6,))
add("linear", {"weights": [0.5, -0.25, 1.0], "normalize": False}, th, linear(th, [0.5, -0.25, 1.0], False))

# slerp: a generic pair, t = 0 / 1, and a nearly colinear pair (the lerp fallback)
for t in (0.3, 0.0, 1.0):
    th = rng.standard_normal((2, 5, 4))
    add("slerp", {"t": t}, th, slerp(t, th[0], th[1]))
v0 = rng.standard_normal((8,))
th = np.stack([v0, 2.0 * v0 + 1e-4 * rng.standard_normal((8,))])
add("slerp", {"t": 0.6}, th, slerp(0.6, th[0], th[1]))

# task arithmetic
base, th = models(3, (4, 6))
add("task-arithmetic", {"weights": [1.0, 0.5, -0.5], "lambda": 0.8, "normalize": False}, th, merge_task_vectors(base, th - base, [1.0, 0.5, -0.5], 0.8, False, False), base)
base, th = models(2, (10,))
add("task-arithmetic", {"weights": [0.4, 1.6], "lambda": 1.0, "normalize": True}, th, merge_task_vectors(base, th - base, [0.4, 1.6], 1.0, True, False), base)

# TIES
for density, w, lam, normalize, shape in ((0.3, [1, 1, 1], 1.0, True, (4, 5)), (0.55, [0.7, 1.2, 0.5], 1.5, False, (3, 3, 2)), (1.0, [1, 2], 0.9, True, (7,)), (0.01, [1, 1], 1.0, True, (9,))):
    base, th = models(len(w), shape)
    taus = np.stack([trim(t - base, density) for t in th])
    add("ties", {"weights": w, "lambda": lam, "normalize": normalize, "density": density}, th, merge_task_vectors(base, taus, w, lam, normalize, True), base)

# DARE (masks stored: the drop is data here)
for method, elect, density, w, lam, normalize in (("dare-linear", False, 0.4, [1.0, 1.0, 0.5], 1.0, False), ("dare-ties", True, 0.5, [1.0, 0.8, 1.1], 1.2, False), ("dare-ties", True, 0.7, [1.0, 1.0], 1.0, True), ("dare-linear", False, 0.25, [0.6, 0.4], 2.0, True)):
    base, th = models(len(w), (5, 4))
    masks = rng.random(th.shape) < density
    taus = (th - base) * masks / density
    add(method, {"weights": w, "lambda": lam, "normalize": normalize, "density": density, "seed": 0}, th, merge_task_vectors(base, taus, w, lam, normalize, elect), base, masks)

out = os.path.join(os.path.dirname(__file__), "..", "test", "refs", "merge_methods.json")
with open(out, "w") as f:
    json.dump({"source": "scripts/ref_merge_methods.py (numpy " + np.__version__ + ")", "cases": cases}, f)
print(f"wrote {out}: {len(cases)} cases")
