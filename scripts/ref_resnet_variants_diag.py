#!/usr/bin/python3
"""Diagnostics (not methods basin would ship) that show what a higher midpoint accuracy on the fixture BN ResNet
pair would take; appended to test/refs/resnet_merge_variants.json with "diagnostic": true.

    /usr/bin/python3 scripts/ref_resnet_variants_diag.py

  test_stats    BatchNorm statistics reset on the test images themselves (transductive)
  train_mode    the merged model evaluated in train mode: every test batch normalized by its own statistics
  alpha         test accuracy along the aligned path after a reset at each alpha (is 0.5 the worst point?)
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
sys.path.insert(0, os.path.join(ROOT, "bench"))
import st  # noqa: E402
from ref_resnet_merge import FIXTURES, lerp, load_sd, metrics, model_of, reset_torch_train, spec  # noqa: E402
from seed_weight_matching import apply_permutation  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def main():
    out = os.path.join(ROOT, "test", "refs", "resnet_merge_variants.json")
    torch.set_num_threads(2)
    t0 = time.time()
    doc = json.load(open(out))
    a = load_sd(os.path.join(FIXTURES, "resnet_small_seed0.safetensors"))
    b = load_sd(os.path.join(FIXTURES, "resnet_small_seed1.safetensors"))
    test = st.read(os.path.join(FIXTURES, "fmnist_test1k.safetensors"))
    train = st.read(os.path.join(FIXTURES, "fmnist_train4k.safetensors"))
    x = torch.from_numpy(test["input"].astype(np.float32))
    y = torch.from_numpy(test["label"].astype(np.int64))
    batches = list(torch.split(torch.from_numpy(train["input"][:2000].astype(np.float32)), 256))
    a2p = spec(True)
    base = 0.5 * (metrics(model_of(a), x, y)["loss"] + metrics(model_of(b), x, y)["loss"])
    first = next(r for r in doc["rows"] if r["variant"] == "points=all stat=corr" and r["stats"] == 2000)
    perms = {g: torch.tensor(p) for g, p in first["perms"].items()}
    bb = apply_permutation(a2p, perms, b)

    def row(name, r, **extra):
        doc["rows"].append({"variant": name, "diagnostic": True, "points": "all", "stat": "corr", "stats": 2000, **extra,
                            "acc": r["acc"], "loss": r["loss"], "barrier": r["loss"] - base})
        with open(out, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        print(f"{name:>50}: acc {r['acc']:.3f} loss {r['loss']:.3f} [{time.time() - t0:.0f}s]", flush=True)

    mid = model_of(lerp(a, bb, 0.5))
    row("diagnostic: reset on the test images", metrics(reset_torch_train(mid, list(torch.split(x, 256))), x, y))
    for bs in (1000, 100):
        mid = reset_torch_train(model_of(lerp(a, bb, 0.5)), batches)
        mid.train()
        with torch.no_grad():
            logits = torch.cat([mid(xb) for xb in torch.split(x, bs)]).double()
        row(f"diagnostic: evaluated in train mode, test batches of {bs}",
            {"loss": float(F.cross_entropy(logits, y)), "acc": float((logits.argmax(1) == y).double().mean())})
    for alpha in (0.25, 0.4, 0.6, 0.75):
        m = reset_torch_train(model_of(lerp(a, bb, alpha)), batches)
        row(f"diagnostic: aligned path at alpha {alpha}, reset", metrics(m, x, y), alpha=alpha)


if __name__ == "__main__":
    main()
