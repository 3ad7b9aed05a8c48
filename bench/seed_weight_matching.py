#!/usr/bin/python3
"""The seed weight matching (Git Re-Basin, Ainsworth et al.; PyTorch port in /work/shared/seeds/001_*) as one process.

    /usr/bin/python3 bench/seed_weight_matching.py A.safetensors B.safetensors SPEC.json OUT.safetensors \
        [--seed N] [--max-iter 100] [--perms PERMS.json] [--verbose] [--threads 2]
    /usr/bin/python3 bench/seed_weight_matching.py --self-test

Loads both state_dicts (torch names and layouts), reads the permutation spec's `axes_to_perm` (torch layouts:
Linear weight [out, in], so hidden units are axis 0 of the layer producing them and axis 1 of the layer consuming
them), runs the seed's coordinate descent, applies the permutation to B, writes OUT (every tensor of B, permuted
where the spec says so, same order and dtypes) and prints one JSON line:
    {"seconds_inner", "objective_before", "objective_after", "sweeps", "perm_sizes", "seed", "max_iter"}
The TypeScript bench times the whole process (python start-up, torch import, I/O included); seconds_inner is the
weight_matching() call alone.

Kept as in the seed: torch float32 cost matrices A = sum_k moveaxis(W_a,axis,0).reshape(n,-1) @
moveaxis(W_b',axis,0).reshape(n,-1).T (W_b' = B with every *other* current permutation applied), scipy
linear_sum_assignment(A, maximize=True), the gain test newL > oldL + 1e-12, one random order of the permutations
per sweep from torch.randperm (global generator, seeded by torch.manual_seed(--seed)), identity start, stop after
the first sweep with no gain or after --max-iter sweeps. perm_sizes come from A's tensor of the first
(tensor, axis) pair of each permutation, in order of first appearance in axes_to_perm.
Corrected from the port: (1) the spec is in torch's [out, in] layout, matching the tensors, which the port's test
mixed up ([in, out] shapes with an [out, in] spec: the reshape crash); (2) the LAP solve and perm update sit inside
the per-permutation loop, as in the original JAX weight_matching.py (the port's notebook lost that indentation, so
only the last permutation of each sweep was ever updated); (3) perms are kept as int64 index tensors.

objective = sum over every tensor named in axes_to_perm of sum(A[k] * permuted_B[k]) (float64 accumulation of
float32 tensors): the quantity coordinate descent increases (tensors without a permuted axis add a constant).
Only the spec's `axes_to_perm` is used; derived permutations (`perms` with expand/concat/heads) are not supported.
"""
import argparse
import json
import os
import sys
import time
from collections import defaultdict

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
import st  # noqa: E402  (scripts/st.py: numpy safetensors I/O)


def perm_to_axes_of(axes_to_perm):
    perm_to_axes = defaultdict(list)
    for wk, axis_perms in axes_to_perm.items():
        for axis, perm in enumerate(axis_perms):
            if perm is not None:
                perm_to_axes[perm].append((wk, axis))
    return dict(perm_to_axes)


def get_permuted_param(axes_to_perm, perm, k, params, except_axis=None):
    """Parameter k of params with the permutations applied (new slice i = old slice perm[i])."""
    w = params[k]
    for axis, p in enumerate(axes_to_perm[k]):
        if axis == except_axis:
            continue
        if p is not None:
            w = torch.index_select(w, axis, perm[p])
    return w


def apply_permutation(axes_to_perm, perm, params):
    return {k: (get_permuted_param(axes_to_perm, perm, k, params) if k in axes_to_perm else v)
            for k, v in params.items()}


def objective(axes_to_perm, params_a, params_b_permuted):
    return float(sum((params_a[k].double() * params_b_permuted[k].double()).sum().item() for k in axes_to_perm))


def weight_matching(axes_to_perm, params_a, params_b, max_iter=100, init_perm=None, verbose=False):
    perm_to_axes = perm_to_axes_of(axes_to_perm)
    perm_sizes = {p: params_a[axes[0][0]].shape[axes[0][1]] for p, axes in perm_to_axes.items()}
    perm = {p: torch.arange(n) for p, n in perm_sizes.items()} if init_perm is None else dict(init_perm)
    perm_names = list(perm.keys())
    sweeps = 0
    for iteration in range(max_iter):
        sweeps += 1
        progress = False
        for p_ix in torch.randperm(len(perm_names)):
            p = perm_names[p_ix]
            n = perm_sizes[p]
            A = torch.zeros((n, n))
            for wk, axis in perm_to_axes[p]:
                w_a = params_a[wk]
                w_b = get_permuted_param(axes_to_perm, perm, wk, params_b, except_axis=axis)
                w_a = torch.moveaxis(w_a, axis, 0).reshape((n, -1))
                w_b = torch.moveaxis(w_b, axis, 0).reshape((n, -1))
                A += w_a @ w_b.T

            ri, ci = linear_sum_assignment(A.detach().numpy(), maximize=True)
            assert (torch.tensor(ri) == torch.arange(len(ri))).all()
            oldL = torch.einsum("ij,ij->i", A, torch.eye(n)[perm[p].long()]).sum()
            newL = torch.einsum("ij,ij->i", A, torch.eye(n)[ci, :]).sum()
            if verbose:
                print(f"{iteration} / {p}: {newL - oldL}", file=sys.stderr)
            progress = progress or bool(newL > oldL + 1e-12)
            perm[p] = torch.from_numpy(ci.astype(np.int64))
        if not progress:
            break
    return perm, sweeps, perm_sizes


def self_test():
    """The port's test_weight_matching, with [out, in] shapes matching its spec (the port's crash), plus a recovery
    check: B = A with random hidden permutations must be matched back exactly."""
    n_hidden, h = 3, 32
    a2p = {"layer0.weight": ["P_0", None], **{f"layer{i}.weight": [f"P_{i}", f"P_{i-1}"] for i in range(1, n_hidden)},
           **{f"layer{i}.bias": [f"P_{i}"] for i in range(n_hidden)},
           f"layer{n_hidden}.weight": [None, f"P_{n_hidden-1}"], f"layer{n_hidden}.bias": [None]}
    shapes = {"layer0.weight": (h, 20), "layer0.bias": (h,), "layer1.weight": (h, h), "layer1.bias": (h,),
              "layer2.weight": (h, h), "layer2.bias": (h,), "layer3.weight": (10, h), "layer3.bias": (10,)}
    rng = torch.Generator()
    rng.manual_seed(13)
    pa = {k: torch.randn(s, generator=rng) for k, s in shapes.items()}
    pb = {k: torch.randn(s, generator=rng) for k, s in shapes.items()}
    torch.manual_seed(0)
    perm, sweeps, sizes = weight_matching(a2p, pa, pb)
    assert sizes == {"P_0": h, "P_1": h, "P_2": h}, sizes
    before, after = objective(a2p, pa, pb), objective(a2p, pa, apply_permutation(a2p, perm, pb))
    assert after >= before
    true = {p: torch.randperm(h) for p in sizes}
    inv = {p: torch.argsort(v) for p, v in true.items()}
    shuffled = apply_permutation(a2p, true, pa)
    perm2, sweeps2, _ = weight_matching(a2p, pa, shuffled)
    assert all(torch.equal(perm2[p], inv[p]) for p in sizes), "failed to recover a pure permutation"
    print(json.dumps({"self_test": "ok", "random_pair": {"sweeps": sweeps, "objective_before": before,
                      "objective_after": after}, "recovery_sweeps": sweeps2}))


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("spec")
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--perms", default=None, help="also write the permutations as JSON {P: [indices]}")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--verbose", action="store_true", help="print the seed's per-step gains to stderr")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with open(args.spec) as f:
        axes_to_perm = json.load(f)["axes_to_perm"]
    params_a = st.read_torch(args.a)
    raw_b = st.read(args.b)
    params_b = {k: torch.from_numpy(v) for k, v in raw_b.items()}
    missing = [k for k in axes_to_perm if k not in params_a or k not in params_b]
    if missing:
        raise SystemExit(f"spec names tensors missing from A or B: {missing}")

    torch.manual_seed(args.seed)
    obj_before = objective(axes_to_perm, params_a, params_b)
    t0 = time.perf_counter()
    perm, sweeps, perm_sizes = weight_matching(axes_to_perm, params_a, params_b, args.max_iter, verbose=args.verbose)
    seconds_inner = time.perf_counter() - t0

    permuted = apply_permutation(axes_to_perm, perm, params_b)
    obj_after = objective(axes_to_perm, params_a, permuted)
    st.write(args.out, {k: permuted[k].numpy() for k in raw_b})
    if args.perms:
        with open(args.perms, "w") as f:
            json.dump({p: v.tolist() for p, v in perm.items()}, f)
    print(json.dumps({
        "seconds_inner": seconds_inner, "objective_before": obj_before, "objective_after": obj_after,
        "sweeps": sweeps, "perm_sizes": perm_sizes, "seed": args.seed, "max_iter": args.max_iter,
    }))


if __name__ == "__main__":
    main()
