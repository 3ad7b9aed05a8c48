#!/usr/bin/python3
"""Reference numbers for merging two MLPs: naive and weight-matched interpolation, loss barriers, REPAIR.

    /usr/bin/python3 scripts/ref_merge.py            # both cases below
    /usr/bin/python3 scripts/ref_merge.py fixtures   # only test/refs/merge_mlp_small.json
    /usr/bin/python3 scripts/ref_merge.py demo       # only test/refs/merge_demo.json

Cases:
  fixtures -> test/refs/merge_mlp_small.json: /work/shared/fixtures/mlp_small_seed{0,1}.safetensors (A, B),
              mlp_small_spec.json, test = fmnist_test1k.safetensors (1000 images), REPAIR statistics = the first
              1000 images of fmnist_train4k.safetensors.
  demo     -> test/refs/merge_demo.json: assets/demo/mlp_{a,b}.onnx (weights read from the ONNX initializers, which
              carry the torch state_dict names), spec derived from the names, test = assets/demo/test.safetensors,
              REPAIR statistics = assets/demo/train.safetensors (F16 inputs, widened to float64).

Everything except weight matching is computed in float64 numpy (the float32 weights widened exactly), so the
numbers are the exact values a float32 implementation should approach. Weight matching is the seed algorithm of
bench/seed_weight_matching.py (torch float32 cost matrices, scipy LAP, torch.randperm sweep order) after
torch.manual_seed(0). See the "conventions" entry written into each JSON.
"""
import json
import os
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True  # no bench/__pycache__ in the shared tree
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import st  # noqa: E402
from seed_weight_matching import apply_permutation, objective, weight_matching  # noqa: E402

FIXTURES = os.environ.get("BASIN_FIXTURES", "/work/shared/fixtures")
ALPHAS = [0.0, 0.25, 0.5, 0.75, 1.0]
EPS = 1e-5

CONVENTIONS = {
    "model": "logits = head(relu(layers.{L-1}(... relu(layers.0(x))))), Linear y = x @ W.T + b (torch [out, in])",
    "loss": "mean softmax cross-entropy (natural log) over the slice; accuracy = fraction with argmax(logits) == label "
            "(argmax ties: first index)",
    "arithmetic": "float64 for evaluation, interpolation and REPAIR; float32 weights widened exactly",
    "interpolation": "theta(alpha) = (1 - alpha) * A + alpha * B for every tensor (B = aligned B for the aligned curve)",
    "barrier": "max over the alpha grid of loss(alpha) - ((1 - alpha) * loss(0) + alpha * loss(1)); acc_barrier = max of "
               "((1 - alpha) * acc(0) + alpha * acc(1)) - acc(alpha)",
    "weight_matching": "seed coordinate descent (bench/seed_weight_matching.py) after torch.manual_seed(0), max_iter 100, "
                       "identity start; perm convention: aligned_B[k] = index_select(B[k], axis, perm) i.e. new unit i = "
                       "old unit perm[i]; objective = sum over tensors in axes_to_perm of sum(A * aligned_B) (float64)",
    "repair": "for each hidden layer i in order 0..L-1: z = pre-activation (output of layers.i Linear, before ReLU) on "
              "the statistics slice; per-channel mean and POPULATION std (ddof=0, over all N images at once, no "
              "batching); target_mean = (1-alpha)*mean_A + alpha*mean_B, target_std = (1-alpha)*std_A + alpha*std_B "
              "(end-point models A and aligned B, same data; alpha = 0.5 for the midpoint); merged stats mean_M, var_M "
              "are recomputed on the merged model with layers < i already repaired; scale = target_std / "
              "sqrt(var_M + eps), eps = 1e-5 (BatchNorm style, only on the merged model's variance); "
              "W_i <- scale[:, None] * W_i, b_i <- scale * (b_i - mean_M) + target_mean; head untouched",
}


# ------------------------------------------------------------------------------------------------ model utils
def n_hidden(params):
    return len([k for k in params if k.startswith("layers.") and k.endswith(".weight")])


def forward(params, x, upto=None):
    """Returns logits, or the pre-activation of hidden layer `upto`."""
    h = x
    for i in range(n_hidden(params)):
        z = h @ params[f"layers.{i}.weight"].T + params[f"layers.{i}.bias"]
        if upto == i:
            return z
        h = np.maximum(z, 0.0)
    return h @ params["head.weight"].T + params["head.bias"]


def evaluate(params, x, y):
    logits = forward(params, x)
    m = logits.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
    loss = float(np.mean(lse - logits[np.arange(len(y)), y]))
    acc = float(np.mean(np.argmax(logits, axis=1) == y))
    return {"loss": loss, "acc": acc}


def lerp(a, b, alpha):
    return {k: (1.0 - alpha) * a[k] + alpha * b[k] for k in a}


def curve(a, b, x, y):
    pts = [dict(alpha=al, **evaluate(lerp(a, b, al), x, y)) for al in ALPHAS]
    return pts, barrier(pts)


def barrier(pts):
    l0, l1 = pts[0]["loss"], pts[-1]["loss"]
    a0, a1 = pts[0]["acc"], pts[-1]["acc"]
    lb = max(p["loss"] - ((1 - p["alpha"]) * l0 + p["alpha"] * l1) for p in pts)
    ab = max(((1 - p["alpha"]) * a0 + p["alpha"] * a1) - p["acc"] for p in pts)
    return {"loss_barrier": lb, "acc_barrier": ab}


def stats(params, x, i):
    z = forward(params, x, upto=i)
    return z.mean(axis=0), z.std(axis=0, ddof=0)


def repair(a, b, alpha, xs):
    """REPAIR the interpolation (1-alpha)A + alpha B (B already aligned). Returns repaired params and details."""
    merged = lerp(a, b, alpha)
    details = []
    for i in range(n_hidden(a)):
        ma, sa = stats(a, xs, i)
        mb, sb = stats(b, xs, i)
        t_mean = (1 - alpha) * ma + alpha * mb
        t_std = (1 - alpha) * sa + alpha * sb
        z = forward(merged, xs, upto=i)
        m_mean, m_var = z.mean(axis=0), z.var(axis=0, ddof=0)
        scale = t_std / np.sqrt(m_var + EPS)
        merged[f"layers.{i}.weight"] = scale[:, None] * merged[f"layers.{i}.weight"]
        merged[f"layers.{i}.bias"] = scale * (merged[f"layers.{i}.bias"] - m_mean) + t_mean
        zr = forward(merged, xs, upto=i)
        details.append({
            "layer": f"layers.{i}", "target_mean": t_mean, "target_std": t_std, "merged_mean": m_mean,
            "merged_std": np.sqrt(m_var), "scale": scale,
            "max_abs_mean_error_after": float(np.abs(zr.mean(0) - t_mean).max()),
            "max_abs_std_error_after": float(np.abs(zr.std(0) - t_std).max()),
        })
    return merged, details


# --------------------------------------------------------------------------------------------------- cases
def load_fixtures():
    a = st.read(os.path.join(FIXTURES, "mlp_small_seed0.safetensors"))
    b = st.read(os.path.join(FIXTURES, "mlp_small_seed1.safetensors"))
    with open(os.path.join(FIXTURES, "mlp_small_spec.json")) as f:
        spec = json.load(f)
    test = st.read(os.path.join(FIXTURES, "fmnist_test1k.safetensors"))
    train = st.read(os.path.join(FIXTURES, "fmnist_train4k.safetensors"))
    src = {
        "A": "fixtures/mlp_small_seed0.safetensors", "B": "fixtures/mlp_small_seed1.safetensors",
        "spec": "fixtures/mlp_small_spec.json", "test": "fixtures/fmnist_test1k.safetensors (all 1000)",
        "stats": "fixtures/fmnist_train4k.safetensors, rows 0..999",
    }
    return a, b, spec, (test["input"], test["label"]), train["input"][:1000], src


def onnx_weights(path):
    import onnx
    from onnx import numpy_helper

    m = onnx.load(path)
    return {t.name: numpy_helper.to_array(t).copy() for t in m.graph.initializer}


def load_demo():
    d = os.path.join(ROOT, "assets", "demo")
    a, b = onnx_weights(os.path.join(d, "mlp_a.onnx")), onnx_weights(os.path.join(d, "mlp_b.onnx"))
    L = n_hidden(a)
    a2p = {}
    for i in range(L):
        a2p[f"layers.{i}.weight"] = [f"P_{i}", None if i == 0 else f"P_{i - 1}"]
        a2p[f"layers.{i}.bias"] = [f"P_{i}"]
    a2p["head.weight"] = [None, f"P_{L - 1}"]
    a2p["head.bias"] = [None]
    test = st.read(os.path.join(d, "test.safetensors"))
    train = st.read(os.path.join(d, "train.safetensors"))
    src = {
        "A": "assets/demo/mlp_a.onnx (initializers)", "B": "assets/demo/mlp_b.onnx (initializers)",
        "spec": "derived: P_i on layers.i rows / layers.i+1 (or head) columns", "test": "assets/demo/test.safetensors",
        "stats": "assets/demo/train.safetensors (all 1000)",
    }
    return a, b, {"axes_to_perm": a2p}, (test["input"], test["label"]), train["input"], src


def r(v, nd=8):
    return [round(float(t), nd) for t in v]


def run_case(a32, b32, spec, test, xs, src):
    a2p = spec["axes_to_perm"]
    a = {k: v.astype(np.float64) for k, v in a32.items()}
    b = {k: v.astype(np.float64) for k, v in b32.items()}
    x, y = test[0].astype(np.float64), np.asarray(test[1]).astype(np.int64)
    xs = xs.astype(np.float64)

    naive_pts, naive_bar = curve(a, b, x, y)

    ta = {k: torch.from_numpy(v) for k, v in a32.items()}
    tb = {k: torch.from_numpy(v) for k, v in b32.items()}
    torch.manual_seed(0)
    perm, sweeps, sizes = weight_matching(a2p, ta, tb, max_iter=100)
    tb_al = apply_permutation(a2p, perm, tb)
    b_al = {k: v.numpy().astype(np.float64) for k, v in tb_al.items()}
    al_pts, al_bar = curve(a, b_al, x, y)
    b_check = evaluate(b_al, x, y)
    assert abs(b_check["loss"] - naive_pts[-1]["loss"]) < 1e-9, "aligned B must compute the same function as B"

    rep, det = repair(a, b_al, 0.5, xs)
    rep_eval = evaluate(rep, x, y)
    lin = 0.5 * (naive_pts[0]["loss"] + naive_pts[-1]["loss"])
    rep_naive, _ = repair(a, b, 0.5, xs)
    rep_naive_eval = evaluate(rep_naive, x, y)
    rep_curve = [dict(alpha=al, **evaluate(repair(a, b_al, al, xs)[0], x, y)) for al in ALPHAS]
    d0 = det[0]
    return {
        "sources": src,
        "conventions": CONVENTIONS,
        "alphas": ALPHAS,
        "A": naive_pts[0] | {},
        "B": naive_pts[-1] | {},
        "naive": {"curve": naive_pts, **naive_bar},
        "weight_matching": {
            "seed": 0, "max_iter": 100, "sweeps": sweeps, "perm_sizes": sizes,
            "objective_before": objective(a2p, ta, tb), "objective_after": objective(a2p, ta, tb_al),
            "perms": {p: v.tolist() for p, v in perm.items()},
        },
        "aligned": {"curve": al_pts, **al_bar},
        "repair": {
            "alpha": 0.5, "stats_images": int(xs.shape[0]), "eps": EPS, "std": "population (ddof=0)",
            "midpoint": rep_eval,
            "midpoint_before_repair": al_pts[2],
            "loss_barrier": rep_eval["loss"] - lin,
            "acc_barrier": 0.5 * (naive_pts[0]["acc"] + naive_pts[-1]["acc"]) - rep_eval["acc"],
            "layer0_first8": {
                "target_mean": r(d0["target_mean"][:8]), "target_std": r(d0["target_std"][:8]),
                "merged_mean_before": r(d0["merged_mean"][:8]), "merged_std_before": r(d0["merged_std"][:8]),
                "scale": r(d0["scale"][:8]),
            },
            "per_layer_check": [{k: v for k, v in d.items() if k.startswith("layer") or k.startswith("max_")}
                                for d in det],
            "naive_midpoint_repaired": rep_naive_eval,
            "aligned_curve_repaired": {"curve": rep_curve, **barrier(rep_curve)},
        },
    }


def main():
    which = sys.argv[1:] or ["fixtures", "demo"]
    for case in which:
        loader, out = {
            "fixtures": (load_fixtures, "merge_mlp_small.json"),
            "demo": (load_demo, "merge_demo.json"),
        }[case]
        res = run_case(*loader())
        path = os.path.join(ROOT, "test", "refs", out)
        with open(path, "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")
        wm = res["weight_matching"]
        print(f"{case}: A {res['A']['acc']:.4f}/{res['A']['loss']:.4f}  B {res['B']['acc']:.4f}/{res['B']['loss']:.4f}"
              f"  (acc/loss)")
        for name in ("naive", "aligned"):
            c = res[name]
            print(f"  {name:8s} mid acc {c['curve'][2]['acc']:.4f} loss {c['curve'][2]['loss']:.4f}  "
                  f"loss barrier {c['loss_barrier']:.4f}  acc barrier {c['acc_barrier']:.4f}")
        rp = res["repair"]
        print(f"  repair   mid acc {rp['midpoint']['acc']:.4f} loss {rp['midpoint']['loss']:.4f}  "
              f"loss barrier {rp['loss_barrier']:.4f}  acc barrier {rp['acc_barrier']:.4f}")
        print(f"  naive+repair mid acc {rp['naive_midpoint_repaired']['acc']:.4f} "
              f"loss {rp['naive_midpoint_repaired']['loss']:.4f}")
        print(f"  weight matching: {wm['sweeps']} sweeps, objective {wm['objective_before']:.4f} -> "
              f"{wm['objective_after']:.4f}; per-layer stat errors {rp['per_layer_check']}")
        print(f"  wrote {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()
