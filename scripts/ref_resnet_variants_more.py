#!/usr/bin/python3
"""More variants for the fixture BN ResNet pair (see scripts/ref_resnet_variants.py, whose rows this appends to):

    /usr/bin/python3 scripts/ref_resnet_variants_more.py [--out test/refs/resnet_merge_variants.json]

  swap      per-group point choice: 'relu' everywhere but one group on 'all', and the reverse (which group decides)
  wm_init   Git Re-Basin weight matching (the seed algorithm) started from the activation-matched permutations
  image     correlations over images only: each image's channel means (global average pool) are the samples,
            instead of every image x position
  stats     10000 statistics samples (fmnist_train4k = idx train rows 56000..59999, then idx rows 0..5999 from
            /usr/share/datasets/fashion-mnist), for matching and/or the reset
"""
import argparse
import copy
import gzip
import json
import os
import sys
import time

import numpy as np
import torch

sys.dont_write_bytecode = True
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import st  # noqa: E402
from ref_resnet_merge import FIXTURES, Corr, lerp, load_sd, metrics, model_of, points, reset_torch_train, spec  # noqa: E402
from ref_resnet_variants import NAMES, SELECT, matrix  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402
from seed_weight_matching import apply_permutation, weight_matching  # noqa: E402

IDX = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


def match_by(corrs, choose, stat="corr"):
    perms = {}
    for g, cs in corrs.items():
        chosen = [c for c, n in zip(cs, NAMES[g]) if SELECT[choose[g]](g, n)]
        total = sum(matrix(c, stat) for c in chosen)
        _, ci = linear_sum_assignment(total.numpy(), maximize=True)
        perms[g] = torch.from_numpy(ci.astype(np.int64))
    return perms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "refs", "resnet_merge_variants.json"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.time()
    doc = json.load(open(args.out))
    rows = doc["rows"]
    a = load_sd(os.path.join(FIXTURES, "resnet_small_seed0.safetensors"))
    b = load_sd(os.path.join(FIXTURES, "resnet_small_seed1.safetensors"))
    test = st.read(os.path.join(FIXTURES, "fmnist_test1k.safetensors"))
    train = st.read(os.path.join(FIXTURES, "fmnist_train4k.safetensors"))
    x = torch.from_numpy(test["input"].astype(np.float32))
    y = torch.from_numpy(test["label"].astype(np.int64))
    with gzip.open(IDX) as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    xs = torch.from_numpy(np.concatenate([train["input"].astype(np.float32), raw[:6000].astype(np.float32) / 255]))
    a2p = spec(True)
    ma, mb = model_of(a), model_of(b)
    base = 0.5 * (metrics(ma, x, y)["loss"] + metrics(mb, x, y)["loss"])
    batches = {n: list(torch.split(xs[:n], 256)) for n in (2000, 10000)}

    def save():
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")

    def evaluate(name, perms, reset_batches, stats, extra):
        mid = model_of(lerp(a, apply_permutation(a2p, perms, b), 0.5))
        before = metrics(mid, x, y)
        reset_torch_train(mid, reset_batches)
        r = metrics(mid, x, y)
        row = {"variant": name, "stats": stats, "reset": "torch_train", "reset_samples": sum(len(t) for t in reset_batches),
               "repair": False, **extra, "midpoint_no_reset": before, "acc": r["acc"], "loss": r["loss"],
               "barrier": r["loss"] - base, "perms": {g: p.tolist() for g, p in perms.items()}}
        rows.append(row)
        save()
        print(f"{name:>50} stats {stats} reset {row['reset_samples']}: acc {r['acc']:.3f} loss {r['loss']:.3f} "
              f"(no reset {before['acc']:.3f}) [{time.time() - t0:.0f}s]", flush=True)

    # one pass over 10000 samples: per point moments (every position a sample) and per image moments (channel
    # means), snapshot after the first 2000
    corrs, img = None, None
    snap = None
    with torch.no_grad():
        for i, xb in enumerate(batches[10000]):
            pa, pb = points(ma, xb), points(mb, xb)
            if corrs is None:
                corrs = {g: [Corr() for _ in pa[g]] for g in pa}
                img = {g: [Corr() for _ in pa[g]] for g in pa}
            for g in pa:
                for c, ci, za, zb in zip(corrs[g], img[g], pa[g], pb[g]):
                    c.add(za, zb)
                    ci.add(za.mean(dim=(2, 3)) if za.dim() == 4 else za, zb.mean(dim=(2, 3)) if zb.dim() == 4 else zb)
            if i + 1 == len(batches[2000]):
                snap = copy.deepcopy((corrs, img))
    print(f"moments [{time.time() - t0:.0f}s]", flush=True)
    c2, img2 = snap
    groups = list(NAMES)
    for g in groups:
        choose = {h: ("all" if h == g else "relu") for h in groups}
        evaluate(f"points=relu but {g}=all", match_by(c2, choose), batches[2000], 2000, {"points": choose, "stat": "corr"})
    for g in groups:
        choose = {h: ("relu" if h == g else "all") for h in groups}
        evaluate(f"points=all but {g}=relu", match_by(c2, choose), batches[2000], 2000, {"points": choose, "stat": "corr"})
    for sel in ("all", "relu"):
        evaluate(f"points={sel} image-level samples", match_by(img2, {g: sel for g in groups}), batches[2000], 2000,
                 {"points": sel, "stat": "corr", "samples_are": "image channel means"})
    fa = {k: v.float() for k, v in a.items() if k in a2p}
    fb = {k: v.float() for k, v in b.items() if k in a2p}
    for sel in ("all", "relu"):
        init = match_by(c2, {g: sel for g in groups})
        torch.manual_seed(0)
        wm, sweeps, _ = weight_matching(a2p, fa, fb, max_iter=100, init_perm=init)
        evaluate(f"points={sel} then weight matching from it", wm, batches[2000], 2000, {"points": sel, "stat": "corr", "wm_init": True, "wm_sweeps": sweeps})
    for sel in ("all", "relu"):
        p10 = match_by(corrs, {g: sel for g in groups})
        evaluate(f"points={sel} stat=corr", p10, batches[10000], 10000, {"points": sel, "stat": "corr"})
        evaluate(f"points={sel} stat=corr (reset on 2000)", p10, batches[2000], 10000, {"points": sel, "stat": "corr"})
        evaluate(f"points={sel} stat=corr (matched on 2000)", match_by(c2, {g: sel for g in groups}), batches[10000], 2000, {"points": sel, "stat": "corr"})
    print(f"done [{time.time() - t0:.0f}s]")


if __name__ == "__main__":
    main()
