#!/usr/bin/python3
"""PyTorch reference for aligning and merging the fixture ResNet pair (BatchNorm kept): weight matching, activation
matching, naive / aligned midpoints, each without and with a BatchNorm reset.

    /usr/bin/python3 scripts/ref_resnet_merge.py [--stats N] [--batch B] [--out test/refs/resnet_merge.json]

Models: /work/shared/fixtures/resnet_small_seed{0,1}.safetensors (A = seed0, B = seed1), rebuilt as the ResNet of
scripts/ref_eval.py (stem conv+bn+relu; block1 = relu(x + b2(c2(relu(b1(c1(x)))))); down conv(stride 2)+bnd+relu;
block2 like block1; global mean; fc). Test: fmnist_test1k (all 1000). Statistics (activation matching and the BN
reset): the first N (default 2000, basin's --stats-limit default) images of fmnist_train4k, batches of B (default
256, basin's calibration batch size).

Permutation spec (hand-written, torch [out, in] layouts):
  P_res1 (16): stem.weight[0], bn.*[0], block1.c1.weight[1], block1.c2.weight[0], block1.b2.*[0], down.weight[1]
  P_in1  (16): block1.c1.weight[0], block1.b1.*[0], block1.c2.weight[1]
  P_res2 (32): down.weight[0], bnd.*[0], block2.c1.weight[1], block2.c2.weight[0], block2.b2.*[0], fc.weight[1]
  P_in2  (32): block2.c1.weight[0], block2.b1.*[0], block2.c2.weight[1]
  (bn.* = weight, bias, running_mean, running_var; num_batches_tracked and fc.bias untouched)
Weight matching: the seed algorithm (bench/seed_weight_matching.py) after torch.manual_seed(0), identity start.
Activation matching: for each group, at every point of the group (every Conv/BN/ReLU/Add output carrying it, and the
global mean for P_res2), the Pearson correlation between each channel of A and each channel of B over all images
and spatial positions (float64 accumulation); the correlations of the points are summed and scipy's
linear_sum_assignment(maximize=True) gives the permutation.
Weight matching is also repeated for --wm-seeds sweep orders (seeds 0..N-1): "weight_matching.seeds", the spread of
its local optima and of their midpoints.
Perm convention (as the seed's): aligned_B[k] = index_select(B[k], axis, perm), i.e. new unit i = old unit perm[i].
BN reset ("torch_train", the usual PyTorch fix): reset_running_stats, momentum=None, model.train(), forward the
statistics batches under no_grad, model.eval(). Also "sequential" (basin's convention: BNs one at a time in graph
order, upstream BNs already reset and in eval mode, this BN in train mode with momentum=None).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

sys.dont_write_bytecode = True
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import st  # noqa: E402
from ref_eval import ResNet  # noqa: E402
from seed_weight_matching import apply_permutation, objective, weight_matching  # noqa: E402

FIXTURES = os.environ.get("BASIN_FIXTURES", "/work/shared/fixtures")
BN_KEYS = ("weight", "bias", "running_mean", "running_var")
BN_ORDER = ["bn", "block1.b1", "block1.b2", "bnd", "block2.b1", "block2.b2"]  # graph order


def spec(with_running_stats=True):
    keys = BN_KEYS if with_running_stats else BN_KEYS[:2]
    a2p = {}

    def conv(name, out_p, in_p):
        a2p[f"{name}.weight"] = [out_p, in_p, None, None]

    def bn(name, p):
        for k in keys:
            a2p[f"{name}.{k}"] = [p]

    conv("stem", "P_res1", None); bn("bn", "P_res1")
    conv("block1.c1", "P_in1", "P_res1"); bn("block1.b1", "P_in1")
    conv("block1.c2", "P_res1", "P_in1"); bn("block1.b2", "P_res1")
    conv("down", "P_res2", "P_res1"); bn("bnd", "P_res2")
    conv("block2.c1", "P_in2", "P_res2"); bn("block2.b1", "P_in2")
    conv("block2.c2", "P_res2", "P_in2"); bn("block2.b2", "P_res2")
    a2p["fc.weight"] = [None, "P_res2"]
    a2p["fc.bias"] = [None]
    return a2p


def load_sd(path):
    sd = {k: torch.from_numpy(v) for k, v in st.read(path).items()}
    for k in sd:
        if k.endswith("num_batches_tracked"):
            sd[k] = sd[k].to(torch.int64)  # stored as F32 in the fixtures
    return sd


def model_of(sd):
    m = ResNet()
    m.load_state_dict(sd, strict=True)
    return m.eval()


def lerp(a, b, alpha):
    return {k: (((1 - alpha) * a[k] + alpha * b[k]) if a[k].is_floating_point() else a[k].clone()) for k in a}


def metrics(model, x, y):
    model.eval()
    with torch.no_grad():
        logits = model(x).double()
    return {"loss": float(F.cross_entropy(logits, y)), "acc": float((logits.argmax(1) == y).double().mean())}


def bn_modules(model):
    return [model.get_submodule(n) for n in BN_ORDER]


def reset_torch_train(model, batches):
    for bn in bn_modules(model):
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    with torch.no_grad():
        for xb in batches:
            model(xb)
    model.eval()
    return model


def reset_sequential(model, batches):
    model.eval()
    for bn in bn_modules(model):
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
        with torch.no_grad():
            for xb in batches:
                model(xb)
        bn.eval()
    return model


def bn_stats(model):
    return {n: {"mean": model.get_submodule(n).running_mean.tolist(), "var": model.get_submodule(n).running_var.tolist()}
            for n in BN_ORDER}


# ---------------------------------------------------------------------------------------- activation matching
def points(model, x):
    """Every activation carrying each group's channels, [N, C, H, W] (or [N, C])."""
    m = model
    out = {"P_res1": [], "P_in1": [], "P_res2": [], "P_in2": []}
    h = x.reshape(-1, 1, 28, 28)
    z = m.stem(h); out["P_res1"].append(z)
    z = m.bn(z); out["P_res1"].append(z)
    h = F.relu(z); out["P_res1"].append(h)

    def block(blk, h, res, inner):
        z = blk.c1(h); out[inner].append(z)
        z = blk.b1(z); out[inner].append(z)
        z = F.relu(z); out[inner].append(z)
        z = blk.c2(z); out[res].append(z)
        z = blk.b2(z); out[res].append(z)
        z = h + z; out[res].append(z)
        z = F.relu(z); out[res].append(z)
        return z

    h = block(m.block1, h, "P_res1", "P_in1")
    z = m.down(h); out["P_res2"].append(z)
    z = m.bnd(z); out["P_res2"].append(z)
    h = F.relu(z); out["P_res2"].append(h)
    h = block(m.block2, h, "P_res2", "P_in2")
    out["P_res2"].append(h.mean(dim=(2, 3)))
    return out


class Corr:
    """Running sums for the Pearson correlation between channels of A and of B at one point."""

    def __init__(self):
        self.n = 0
        self.sa = self.sb = self.saa = self.sbb = self.sab = None

    def add(self, za, zb):
        c = za.shape[1]
        fa = za.double().transpose(0, 1).reshape(c, -1)
        fb = zb.double().transpose(0, 1).reshape(c, -1)
        if self.sa is None:
            self.sa, self.sb = fa.sum(1), fb.sum(1)
            self.saa, self.sbb, self.sab = (fa * fa).sum(1), (fb * fb).sum(1), fa @ fb.T
        else:
            self.sa += fa.sum(1); self.sb += fb.sum(1)
            self.saa += (fa * fa).sum(1); self.sbb += (fb * fb).sum(1); self.sab += fa @ fb.T
        self.n += fa.shape[1]

    def corr(self, eps=1e-12):
        n = self.n
        ma, mb = self.sa / n, self.sb / n
        cov = self.sab / n - ma[:, None] * mb[None, :]
        va = (self.saa / n - ma * ma).clamp_min(0)
        vb = (self.sbb / n - mb * mb).clamp_min(0)
        return cov / (torch.sqrt(va)[:, None] * torch.sqrt(vb)[None, :] + eps)


def activation_matching(ma, mb, batches):
    corrs = None
    with torch.no_grad():
        for xb in batches:
            pa, pb = points(ma, xb), points(mb, xb)
            if corrs is None:
                corrs = {g: [Corr() for _ in pa[g]] for g in pa}
            for g in pa:
                for c, za, zb in zip(corrs[g], pa[g], pb[g]):
                    c.add(za, zb)
    perms, info = {}, {}
    for g, cs in corrs.items():
        total = sum(c.corr() for c in cs)
        _, ci = linear_sum_assignment(total.numpy(), maximize=True)
        perms[g] = torch.from_numpy(ci.astype(np.int64))
        n = total.shape[0]
        info[g] = {"points": len(cs), "mean_corr_identity": float(total.diagonal().sum() / (n * len(cs))),
                   "mean_corr_matched": float(total[torch.arange(n), perms[g]].sum() / (n * len(cs)))}
    return perms, info


# ------------------------------------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stats", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "refs", "resnet_merge.json"))
    ap.add_argument("--save-models", default=None, help="also write the aligned B state_dicts here (directory)")
    ap.add_argument("--wm-seeds", type=int, default=10, help="weight matching repeated for seeds 0..N-1 (spread)")
    args = ap.parse_args()
    torch.set_num_threads(4)

    a = load_sd(os.path.join(FIXTURES, "resnet_small_seed0.safetensors"))
    b = load_sd(os.path.join(FIXTURES, "resnet_small_seed1.safetensors"))
    test = st.read(os.path.join(FIXTURES, "fmnist_test1k.safetensors"))
    train = st.read(os.path.join(FIXTURES, "fmnist_train4k.safetensors"))
    x = torch.from_numpy(test["input"].astype(np.float32))
    y = torch.from_numpy(test["label"].astype(np.int64))
    xs = torch.from_numpy(train["input"][: args.stats].astype(np.float32))
    batches = list(torch.split(xs, args.batch))

    a2p = spec(True)
    # weight matching (seed algorithm)
    fa = {k: v.float() for k, v in a.items() if k in a2p}
    fb = {k: v.float() for k, v in b.items() if k in a2p}
    torch.manual_seed(0)
    wm_perm, wm_sweeps, sizes = weight_matching(a2p, fa, fb, max_iter=100)
    wm = {"perms": {p: v.tolist() for p, v in wm_perm.items()}, "sweeps": wm_sweeps,
          "objective_before": objective(a2p, fa, fb),
          "objective_after": objective(a2p, fa, apply_permutation(a2p, wm_perm, fb))}
    # variant: BN running statistics left out of the cost (they still follow their conv when applied)
    a2p_nr = spec(False)
    torch.manual_seed(0)
    wm2_perm, wm2_sweeps, _ = weight_matching(a2p_nr, {k: fa[k] for k in a2p_nr}, {k: fb[k] for k in a2p_nr}, max_iter=100)
    wm_no_running = {"perms": {p: v.tolist() for p, v in wm2_perm.items()}, "sweeps": wm2_sweeps,
                     "objective_after": objective(a2p, fa, apply_permutation(a2p, wm2_perm, fb))}

    model_a, model_b = model_of(a), model_of(b)
    am_perm, am_info = activation_matching(model_a, model_b, batches)

    def aligned(perm):
        return apply_permutation(a2p, perm, b)

    variants = {"naive": b, "weight": aligned(wm_perm), "weight_no_running_in_cost": aligned(wm2_perm),
                "activation": aligned(am_perm)}
    ends = {"A": metrics(model_a, x, y), "B": metrics(model_b, x, y)}
    base = 0.5 * (ends["A"]["loss"] + ends["B"]["loss"])
    results = {}
    for name, bb in variants.items():
        assert abs(metrics(model_of(bb), x, y)["loss"] - ends["B"]["loss"]) < 1e-4, f"{name}: aligned B differs"
        mid = lerp(a, bb, 0.5)
        r = {"midpoint": metrics(model_of(mid), x, y)}
        m_tt = reset_torch_train(model_of(mid), batches)
        r["reset_torch_train"] = metrics(m_tt, x, y)
        m_seq = reset_sequential(model_of(mid), batches)
        r["reset_sequential"] = metrics(m_seq, x, y)
        for k in ("midpoint", "reset_torch_train", "reset_sequential"):
            r[k]["barrier"] = r[k]["loss"] - base
        r["bn_stats_sequential"] = bn_stats(m_seq)
        r["bn_stats_torch_train"] = bn_stats(m_tt)
        results[name] = r
        print(f"{name:>26}: midpoint {r['midpoint']['acc']:.3f} / {r['midpoint']['loss']:.3f} | reset(train) "
              f"{r['reset_torch_train']['acc']:.3f} / {r['reset_torch_train']['loss']:.3f} | reset(seq) "
              f"{r['reset_sequential']['acc']:.3f} / {r['reset_sequential']['loss']:.3f}")
        if args.save_models and name != "naive":
            os.makedirs(args.save_models, exist_ok=True)
            st.write(os.path.join(args.save_models, f"b_{name}.safetensors"), {k: v.numpy() for k, v in bb.items()})
    # spread of weight matching over the sweep order (the seed's torch.randperm, seeded by torch.manual_seed(s))
    spread = []
    for seed in range(args.wm_seeds):
        torch.manual_seed(seed)
        perm, sweeps, _ = weight_matching(a2p, fa, fb, max_iter=100)
        bb = aligned(perm)
        mid = lerp(a, bb, 0.5)
        spread.append({"seed": seed, "sweeps": sweeps, "objective_after": objective(a2p, fa, apply_permutation(a2p, perm, fb)),
                       "midpoint": metrics(model_of(mid), x, y),
                       "reset_torch_train": metrics(reset_torch_train(model_of(mid), batches), x, y)})
        print(f"wm seed {seed}: objective {spread[-1]['objective_after']:.3f} midpoint {spread[-1]['midpoint']['acc']:.3f} "
              f"reset {spread[-1]['reset_torch_train']['acc']:.3f} / {spread[-1]['reset_torch_train']['loss']:.3f}")
    wm["seeds"] = spread
    print("A", ends["A"], "B", ends["B"])
    print("weight matching sweeps", wm_sweeps, "objective", wm["objective_before"], "->", wm["objective_after"])
    print("activation matching", am_info)

    res = {
        "sources": {"A": "fixtures/resnet_small_seed0.safetensors", "B": "fixtures/resnet_small_seed1.safetensors",
                    "test": "fixtures/fmnist_test1k.safetensors (all 1000)",
                    "stats": f"fixtures/fmnist_train4k.safetensors, rows 0..{args.stats - 1}, batches of {args.batch}"},
        "conventions": {
            "spec": "axes_to_perm below (torch [out, in] layouts); perm p: aligned_B = index_select(B, axis, p)",
            "weight_matching": "bench/seed_weight_matching.py after torch.manual_seed(0), max_iter 100, identity start, "
                               "running_mean/var in the cost (weight_no_running_in_cost: without them)",
            "activation_matching": "sum over the group's points of the Pearson correlation A-channel x B-channel "
                                   "(over images and positions, float64), scipy LAP maximize",
            "midpoint": "0.5*A + 0.5*aligned_B for every float tensor, running stats included (no reset)",
            "reset_torch_train": "reset_running_stats, momentum=None, model.train(), one no_grad pass, model.eval()",
            "reset_sequential": "BNs in graph order, upstream ones reset and in eval mode, this one in train mode "
                                "with momentum=None, one pass each (basin's convention)",
            "loss": "mean cross-entropy of float32 logits widened to float64; barrier = loss(0.5) - mean(loss A, loss B)",
        },
        "axes_to_perm": a2p,
        "A": ends["A"], "B": ends["B"],
        "weight_matching": wm, "weight_matching_no_running_in_cost": wm_no_running,
        "activation_matching": {"perms": {p: v.tolist() for p, v in am_perm.items()}, "groups": am_info},
        "results": results,
    }
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    print("wrote", os.path.relpath(args.out, ROOT))


if __name__ == "__main__":
    main()
