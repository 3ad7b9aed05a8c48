#!/usr/bin/python3
"""Naive PyTorch activation matching of the fixture BN ResNet pair: the baseline of bench/activation.ts.

    /usr/bin/python3 bench/activation_torch.py [--samples 2000] [--batch 256] [--threads N] [--runs R]

What a user would write: the ResNet rebuilt from its state_dict (scripts/ref_eval.py), both models run on batches
of 256 training images under no_grad, every point of every group read in eager mode (scripts/ref_resnet_merge.py
`points`: each Conv/BN/ReLU/Add output carrying the group's channels, and the global mean), per point the sums,
sums of squares and the A x B cross moment accumulated in float64 (channels x images·positions), the Pearson
correlations of a group's points summed, and scipy's linear_sum_assignment(maximize=True) per group.

Timed (time.perf_counter wall time, best of --runs; time.process_time, CPU seconds of all threads, for each run): from reading the two state_dicts and the images to the permutations,
i.e. what a user waits for after Python and torch have started. Prints one JSON line:
{"seconds": best, "times": [...], "cpu": [...], "threads": N, "samples": S, "perms": {group: [...]}}; perm convention as
scripts/ref_resnet_merge.py (aligned_B = index_select(B, axis, perm)).
"""
import argparse
import json
import os
import sys
import time

sys.dont_write_bytecode = True
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

import st  # noqa: E402
from ref_resnet_merge import load_sd, model_of, points  # noqa: E402

FIXTURES = os.environ.get("BASIN_FIXTURES", os.path.join(os.path.dirname(ROOT), "shared", "fixtures"))


class Corr:
    """Running float64 sums for the Pearson correlation between the channels of A and of B at one point."""

    def __init__(self):
        self.n = 0
        self.sa = self.sb = self.saa = self.sbb = self.sab = 0

    def add(self, za, zb):
        c = za.shape[1]
        fa = za.double().transpose(0, 1).reshape(c, -1)  # channels x (images · positions)
        fb = zb.double().transpose(0, 1).reshape(c, -1)
        self.sa = self.sa + fa.sum(1)
        self.sb = self.sb + fb.sum(1)
        self.saa = self.saa + (fa * fa).sum(1)
        self.sbb = self.sbb + (fb * fb).sum(1)
        self.sab = self.sab + fa @ fb.T
        self.n += fa.shape[1]

    def corr(self, eps=1e-12):
        n = self.n
        ma, mb = self.sa / n, self.sb / n
        cov = self.sab / n - ma[:, None] * mb[None, :]
        sa = torch.sqrt((self.saa / n - ma * ma).clamp_min(0))
        sb = torch.sqrt((self.sbb / n - mb * mb).clamp_min(0))
        return cov / (sa[:, None] * sb[None, :] + eps)


def activation_matching(samples, batch):
    a = model_of(load_sd(os.path.join(FIXTURES, "resnet_small_seed0.safetensors")))
    b = model_of(load_sd(os.path.join(FIXTURES, "resnet_small_seed1.safetensors")))
    x = torch.from_numpy(st.read(os.path.join(FIXTURES, "fmnist_train4k.safetensors"))["input"][:samples].astype(np.float32))
    corrs = None
    with torch.no_grad():
        for xb in torch.split(x, batch):
            pa, pb = points(a, xb), points(b, xb)
            if corrs is None:
                corrs = {g: [Corr() for _ in pa[g]] for g in pa}
            for g in pa:
                for c, za, zb in zip(corrs[g], pa[g], pb[g]):
                    c.add(za, zb)
    perms = {}
    for g, cs in corrs.items():
        total = sum(c.corr() for c in cs)
        _, col = linear_sum_assignment(total.numpy(), maximize=True)
        perms[g] = col.tolist()
    return perms, x.shape[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    times, cpu = [], []
    for _ in range(args.runs):
        t0, c0 = time.perf_counter(), time.process_time()
        perms, samples = activation_matching(args.samples, args.batch)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    print(json.dumps({"seconds": min(times), "times": times, "cpu": cpu, "threads": torch.get_num_threads(), "samples": samples,
                      "perms": perms}))


if __name__ == "__main__":
    main()
