#!/usr/bin/python3
"""Which choices of activation matching decide the merged accuracy of the fixture BN ResNet pair (PyTorch).

    /usr/bin/python3 scripts/ref_resnet_variants.py [--out test/refs/resnet_merge_variants.json]

Same models, data, spec, LAP and midpoint as scripts/ref_resnet_merge.py (A = resnet_small_seed0, B = seed1,
test = fmnist_test1k, statistics = the first N rows of fmnist_train4k in batches of 256). For every variant, B is
aligned to A, the midpoint 0.5*A + 0.5*aligned_B is taken (running statistics interpolated too), the BatchNorm
statistics are reset, and the midpoint's test loss/accuracy is recorded. Variants:

  points     which activations carry a group's correlation (one sum of per-point matrices):
               all        every Conv/BN/ReLU/Add output carrying the group, and the global mean (basin's default)
               relu       post-ReLU values only (what the next layer reads; Git Re-Basin's MLP points)
               stage_out  one point per group: the last post-ReLU output carrying it (REPAIR's ResNet20 notebook:
                          a residual stream matched at its stage's output, a block's inner channels after bn1+relu)
               bn         BatchNorm outputs only
               conv       Conv outputs only (before BatchNorm)
               stream     the residual stream's Add and post-Add ReLU outputs (inner groups: their ReLU)
  stat       corr (Pearson cross-correlation, Git Re-Basin / REPAIR), cov (covariance, REPAIR's norm=False),
             inner (raw inner products E[a b], no centering)
  pooled     the group's points concatenated as samples before one correlation (instead of a sum of per-point
             correlations)
  stats      number of statistics samples (2000, 4000) for matching and the reset
  reset      torch_train (one train-mode pass, momentum None) or sequential (BNs one at a time, basin's)
  repair     REPAIR on the BN outputs after the reset: each BN's output channels get the mean and std
             interpolated from A's and aligned B's BN outputs (sequentially, upstream BNs already repaired)
"""
import argparse
import copy
import json
import os
import sys
import time

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

sys.dont_write_bytecode = True
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import st  # noqa: E402
from ref_resnet_merge import (BN_ORDER, FIXTURES, Corr, lerp, load_sd, metrics, model_of, points,  # noqa: E402
                              reset_sequential, reset_torch_train, spec)
from seed_weight_matching import apply_permutation  # noqa: E402

NAMES = {
    "P_res1": ["stem", "bn", "relu0", "block1.c2", "block1.b2", "block1.add", "block1.out"],
    "P_in1": ["block1.c1", "block1.b1", "block1.relu"],
    "P_res2": ["down", "bnd", "relu1", "block2.c2", "block2.b2", "block2.add", "block2.out", "pool"],
    "P_in2": ["block2.c1", "block2.b1", "block2.relu"],
}
SELECT = {
    "all": lambda g, n: True,
    "relu": lambda g, n: n.startswith("relu") or n.endswith(".relu") or n.endswith(".out"),
    "stage_out": lambda g, n: n in ("block1.out", "block1.relu", "block2.out", "block2.relu"),
    "bn": lambda g, n: n in ("bn", "bnd") or ".b" in n,
    "conv": lambda g, n: n in ("stem", "down") or ".c" in n,
    "stream": lambda g, n: n.endswith(".add") or n.endswith(".out") or (g.startswith("P_in") and n.endswith(".relu")),
}


def collect(ma, mb, batches):
    """Per group, per point: a Corr (float64 running sums) over all images and positions."""
    corrs = None
    with torch.no_grad():
        for xb in batches:
            pa, pb = points(ma, xb), points(mb, xb)
            if corrs is None:
                corrs = {g: [Corr() for _ in pa[g]] for g in pa}
            for g in pa:
                for c, za, zb in zip(corrs[g], pa[g], pb[g]):
                    c.add(za, zb)
    return corrs


def matrix(c, stat):
    n = c.n
    if stat == "corr":
        return c.corr()
    if stat == "cov":
        return c.sab / n - (c.sa / n)[:, None] * (c.sb / n)[None, :]
    if stat == "inner":
        return c.sab / n
    raise ValueError(stat)


def pooled(cs):
    p = Corr()
    p.n = sum(c.n for c in cs)
    p.sa = sum(c.sa for c in cs); p.sb = sum(c.sb for c in cs)
    p.saa = sum(c.saa for c in cs); p.sbb = sum(c.sbb for c in cs); p.sab = sum(c.sab for c in cs)
    return p


def match(corrs, select, stat, pool=False):
    perms = {}
    for g, cs in corrs.items():
        chosen = [c for c, n in zip(cs, NAMES[g]) if SELECT[select](g, n)]
        assert chosen, (g, select)
        total = matrix(pooled(chosen), stat) if pool else sum(matrix(c, stat) for c in chosen)
        _, ci = linear_sum_assignment(total.numpy(), maximize=True)
        perms[g] = torch.from_numpy(ci.astype(np.int64))
    return perms


def bn_outputs(model, batches):
    """Per BN (graph order): mean and std of its output channels over the batches (eval mode)."""
    acc = {n: [0, None, None] for n in BN_ORDER}
    hooks = []
    for n in BN_ORDER:
        def hook(mod, inp, out, n=n):
            z = out.double().transpose(0, 1).reshape(out.shape[1], -1)
            a = acc[n]
            a[0] += z.shape[1]
            a[1] = z.sum(1) if a[1] is None else a[1] + z.sum(1)
            a[2] = (z * z).sum(1) if a[2] is None else a[2] + (z * z).sum(1)
        hooks.append(model.get_submodule(n).register_forward_hook(hook))
    model.eval()
    with torch.no_grad():
        for xb in batches:
            model(xb)
    for h in hooks:
        h.remove()
    out = {}
    for n, (cnt, s, ss) in acc.items():
        m = s / cnt
        out[n] = (m, torch.sqrt((ss / cnt - m * m).clamp_min(0)))
    return out


def repair_bn(model, ends, batches, alpha=0.5):
    """REPAIR at the BN outputs: after the reset, each BN's output channel gets mean (1-α)μA+αμB and std
    (1-α)σA+ασB, one BN at a time in graph order (upstream ones already repaired)."""
    for n in BN_ORDER:
        cur = bn_outputs(model, batches)[n]
        tgt_m = (1 - alpha) * ends[0][n][0] + alpha * ends[1][n][0]
        tgt_s = (1 - alpha) * ends[0][n][1] + alpha * ends[1][n][1]
        bn = model.get_submodule(n)
        with torch.no_grad():
            scale = (tgt_s / (cur[1] + 1e-12)).float()
            bn.weight.mul_(scale)
            bn.bias.copy_(((bn.bias.double() - cur[0]) * scale.double() + tgt_m).float())
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "refs", "resnet_merge_variants.json"))
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.time()
    a = load_sd(os.path.join(FIXTURES, "resnet_small_seed0.safetensors"))
    b = load_sd(os.path.join(FIXTURES, "resnet_small_seed1.safetensors"))
    test = st.read(os.path.join(FIXTURES, "fmnist_test1k.safetensors"))
    train = st.read(os.path.join(FIXTURES, "fmnist_train4k.safetensors"))
    x = torch.from_numpy(test["input"].astype(np.float32))
    y = torch.from_numpy(test["label"].astype(np.int64))
    xs_all = torch.from_numpy(train["input"].astype(np.float32))
    a2p = spec(True)
    ma, mb = model_of(a), model_of(b)
    ends = {"A": metrics(ma, x, y), "B": metrics(mb, x, y)}
    base = 0.5 * (ends["A"]["loss"] + ends["B"]["loss"])
    rows = []

    def evaluate(name, perms, batches, stats, reset="torch_train", repair=False, extra=None):
        bb = apply_permutation(a2p, perms, b)
        mid = model_of(lerp(a, bb, 0.5))
        before = metrics(mid, x, y)
        (reset_torch_train if reset == "torch_train" else reset_sequential)(mid, batches)
        r = metrics(mid, x, y)
        row = {"variant": name, "stats": stats, "reset": reset, "repair": repair, **(extra or {}),
               "midpoint_no_reset": before, "acc": r["acc"], "loss": r["loss"], "barrier": r["loss"] - base}
        if repair:
            ends_bn = [bn_outputs(ma, batches), bn_outputs(model_of(bb), batches)]
            repair_bn(mid, ends_bn, batches)
            rr = metrics(mid, x, y)
            row.update({"acc_reset_only": r["acc"], "loss_reset_only": r["loss"], "acc": rr["acc"], "loss": rr["loss"],
                        "barrier": rr["loss"] - base})
        row["perms"] = {g: p.tolist() for g, p in perms.items()}
        rows.append(row)
        print(f"{name:>40} stats {stats} {reset:>11}{' +repair' if repair else '        '}: acc {row['acc']:.3f} "
              f"loss {row['loss']:.3f} (no reset {before['acc']:.3f}) [{time.time() - t0:.0f}s]", flush=True)
        return row

    def save():
        res = {
            "what": "midpoint (0.5 A + 0.5 aligned B) test1k accuracy/loss after a BatchNorm reset, for variants of "
                    "activation matching on the fixture BN ResNet pair; see scripts/ref_resnet_variants.py",
            "A": ends["A"], "B": ends["B"], "point_names": NAMES,
            "rows": rows,
        }
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")

    batches = {n: list(torch.split(xs_all[:n], args.batch)) for n in (2000, 4000)}
    corrs = {2000: collect(ma, mb, batches[2000])}
    print(f"moments of 2000 samples [{time.time() - t0:.0f}s]", flush=True)
    c2 = corrs[2000]
    for sel in SELECT:
        evaluate(f"points={sel} stat=corr", match(c2, sel, "corr"), batches[2000], 2000, extra={"points": sel, "stat": "corr", "pooled": False})
        save()
    for sel in ("all", "relu", "stage_out"):
        for stat in ("cov", "inner"):
            evaluate(f"points={sel} stat={stat}", match(c2, sel, stat), batches[2000], 2000, extra={"points": sel, "stat": stat, "pooled": False})
        evaluate(f"points={sel} stat=corr pooled", match(c2, sel, "corr", pool=True), batches[2000], 2000, extra={"points": sel, "stat": "corr", "pooled": True})
        save()
    for sel in ("all", "relu", "stage_out"):
        p = match(c2, sel, "corr")
        evaluate(f"points={sel} stat=corr", p, batches[2000], 2000, reset="sequential", extra={"points": sel, "stat": "corr"})
        evaluate(f"points={sel} stat=corr", p, batches[2000], 2000, repair=True, extra={"points": sel, "stat": "corr"})
        save()
    # 4000 samples: the moments of the other 2000 added to a copy of the first 2000's
    c4 = copy.deepcopy(c2)
    with torch.no_grad():
        for xb in batches[4000][len(batches[2000]):]:
            pa, pb = points(ma, xb), points(mb, xb)
            for g in pa:
                for c, za, zb in zip(c4[g], pa[g], pb[g]):
                    c.add(za, zb)
    for sel in ("all", "relu", "stage_out"):
        evaluate(f"points={sel} stat=corr", match(c4, sel, "corr"), batches[4000], 4000, extra={"points": sel, "stat": "corr", "pooled": False})
        save()
    print("wrote", os.path.relpath(args.out, ROOT), f"{time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
