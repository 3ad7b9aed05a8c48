#!/usr/bin/python3
"""Reference numbers for basin's BatchNorm reset and REPAIR on conv graphs, computed with torch in float64.

    /usr/bin/python3 scripts/ref_bn.py            # both cases below
    /usr/bin/python3 scripts/ref_bn.py bn         # only test/refs/bn_small.{onnx,json}
    /usr/bin/python3 scripts/ref_bn.py repair     # only test/refs/repair_resnet_small.json

Cases:
  bn     -> test/refs/bn_small.onnx + bn_small.json: a tiny conv+BN network built here (random weights, seed 0, and
            deliberately stale running statistics), exported with torch.onnx.export in eval mode with
            training=TrainingMode.PRESERVE (torch 1.13 then skips the Conv+BN fusion: BatchNormalization nodes stay,
            training_mode=0, running stats as initializers). Four BNs at three depths: bn1 (depth 0), bn2a and bn2b
            on two parallel branches (depth 1, independent of each other), bn3 a BatchNorm1d on [N, 8] (depth 2).
            Statistics data: the first 500 images of fmnist_train4k in batches of 128 (128, 128, 128, 116: the
            unequal last batch makes "each batch weighs the same" visible).
  repair -> test/refs/repair_resnet_small.json: REPAIR of the naive alpha=0.5 midpoint of
            resnet_small_seed{0,1}.onnx (BatchNorm folded into the Convs by the exporter), every Conv output
            repaired in graph order, the classifier `fc` untouched; statistics on the first 1000 images of
            fmnist_train4k, evaluation on fmnist_test1k. The network is re-implemented here with torch ops from the
            ONNX initializers (no onnxruntime in this Python), in float64.

See the "conventions" entry written into each JSON.
"""
import json
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.dont_write_bytecode = True
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import st  # noqa: E402

FIXTURES = os.environ.get("BASIN_FIXTURES", "/work/shared/fixtures")
REFS = os.path.join(ROOT, "test", "refs")


def r(v, nd=10):
    return [round(float(t), nd) for t in np.asarray(v).reshape(-1)]


# ------------------------------------------------------------------------------------------------ BN reset
class BnNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2a = nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False)
        self.bn2a = nn.BatchNorm2d(6)
        self.conv2b = nn.Conv2d(4, 6, 1, stride=2, bias=True)
        self.bn2b = nn.BatchNorm2d(6)
        self.fc1 = nn.Linear(6, 8)
        self.bn3 = nn.BatchNorm1d(8)
        self.fc2 = nn.Linear(8, 10)

    def forward(self, x):
        x = x.reshape(x.shape[0], 1, 28, 28)
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2a(self.conv2a(x)) + self.bn2b(self.conv2b(x)))
        x = x.mean(dim=(2, 3))
        x = F.relu(self.bn3(self.fc1(x)))
        return self.fc2(x)


BN_ORDER = ["bn1", "bn2a", "bn2b", "bn3"]  # topological order
BN_CONVENTIONS = {
    "sequential": "basin's reset: BNs in topological order; for each, every other BN in eval mode (upstream BNs "
                  "already reset), this BN reset with momentum=None in train mode, one forward pass over the batches; "
                  "so running_mean = mean over batches of the per-batch channel means and running_var = mean over "
                  "batches of the per-batch UNBIASED channel variances (n/(n-1), n = batch * spatial), each batch "
                  "weighing the same whatever its size: exactly torch's momentum=None cumulative average",
    "population": "same order, upstream BNs already reset the same way, but each BN's stats are the mean and "
                  "POPULATION variance (ddof=0) of its input over all images at once (batch-size independent)",
    "torch_train": "the usual one-pass torch reset for comparison: reset_running_stats, momentum=None, model.train(), "
                   "one pass; downstream BNs then see inputs normalized with BATCH statistics of upstream BNs, so "
                   "only bn1 (no BN upstream) equals 'sequential'",
    "arithmetic": "float64 model (the exported float32 weights widened exactly), float64 data",
    "logits": "eval-mode logits of the first 8 statistics images: with the exported (stale) statistics, and after the "
              "sequential reset",
}


def bn_case():
    torch.manual_seed(0)
    model = BnNet()
    with torch.no_grad():
        for name in BN_ORDER:
            bn = getattr(model, name)
            c = bn.num_features
            bn.weight.copy_(torch.rand(c) + 0.5)
            bn.bias.copy_(torch.randn(c) * 0.2)
            bn.running_mean.copy_(torch.randn(c))
            bn.running_var.copy_(torch.rand(c) * 1.5 + 0.5)
            bn.num_batches_tracked.fill_(100)
    model.eval()
    onnx_path = os.path.join(REFS, "bn_small.onnx")
    warnings.filterwarnings("ignore", message="It is recommended that constant folding be turned off")
    torch.onnx.export(
        model, (torch.zeros(2, 784),), onnx_path, input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=14,
        do_constant_folding=True, training=torch.onnx.TrainingMode.PRESERVE,
    )
    import onnx

    m = onnx.load(onnx_path)
    bn_nodes = [n for n in m.graph.node if n.op_type == "BatchNormalization"]
    assert len(bn_nodes) == 4, f"expected 4 BatchNormalization nodes, found {len(bn_nodes)}"
    inits = {t.name for t in m.graph.initializer}
    for name in BN_ORDER:
        assert f"{name}.running_mean" in inits and f"{name}.running_var" in inits, name

    model = model.double()
    train = st.read(os.path.join(FIXTURES, "fmnist_train4k.safetensors"))
    x = torch.from_numpy(train["input"][:500].astype(np.float64))
    bs = 128
    batches = [x[i:i + bs] for i in range(0, len(x), bs)]
    stale = {n: {"mean": r(getattr(model, n).running_mean), "var": r(getattr(model, n).running_var)} for n in BN_ORDER}
    with torch.no_grad():
        logits_before = model(x[:8])

    # inputs of each BN, captured with hooks (float64)
    def capture(name):
        bn = getattr(model, name)
        got = []
        h = bn.register_forward_hook(lambda mod, inp, out: got.append(inp[0].detach().clone()))
        with torch.no_grad():
            for b in batches:
                model(b)
        h.remove()
        return torch.cat(got)

    state0 = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    # population: upstream BNs already reset the same way, each BN's stats = moments of its input over all images
    pop = {}
    for name in BN_ORDER:
        z = capture(name)
        axes = [0] + list(range(2, z.dim()))
        bn = getattr(model, name)
        with torch.no_grad():
            bn.running_mean.copy_(z.mean(dim=axes))
            bn.running_var.copy_(z.var(dim=axes, unbiased=False))
        pop[name] = {"mean": r(bn.running_mean), "var": r(bn.running_var)}
    # sequential (basin's default): upstream BNs already reset, this one by torch's own momentum=None train mode
    model.load_state_dict(state0)
    seq = {}
    for name in BN_ORDER:
        bn = getattr(model, name)
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
        with torch.no_grad():
            for b in batches:
                model(b)
        bn.eval()
        seq[name] = {"mean": r(bn.running_mean), "var": r(bn.running_var)}
    with torch.no_grad():
        logits_after = model(x[:8])
    # a check of the reference itself: per-batch averages by hand for bn1
    z = capture("bn1")
    per = [(z[i:i + bs].mean(dim=(0, 2, 3)), z[i:i + bs].var(dim=(0, 2, 3), unbiased=True)) for i in range(0, len(z), bs)]
    hand_mean = torch.stack([p[0] for p in per]).mean(0)
    hand_var = torch.stack([p[1] for p in per]).mean(0)
    assert np.allclose(hand_mean.numpy(), seq["bn1"]["mean"], atol=1e-9)
    assert np.allclose(hand_var.numpy(), seq["bn1"]["var"], atol=1e-9)

    # the usual one-pass train-mode reset, from the exported state
    model.load_state_dict(state0)
    for name in BN_ORDER:
        bn = getattr(model, name)
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    with torch.no_grad():
        for b in batches:
            model(b)
    model.eval()
    one = {n: {"mean": r(getattr(model, n).running_mean), "var": r(getattr(model, n).running_var)} for n in BN_ORDER}

    res = {
        "sources": {"model": "test/refs/bn_small.onnx (built and exported by scripts/ref_bn.py)",
                    "stats": "fixtures/fmnist_train4k.safetensors, rows 0..499"},
        "conventions": BN_CONVENTIONS,
        "images": int(len(x)), "batch_size": bs, "batch_sizes": [int(len(b)) for b in batches],
        "order": BN_ORDER,
        "depth": {"bn1": 0, "bn2a": 1, "bn2b": 1, "bn3": 2},
        "nodes": {n: node.name for n, node in zip(BN_ORDER, bn_nodes)},
        "stale": stale,
        "sequential": seq,
        "population": pop,
        "torch_train": one,
        "logits_before": [r(v) for v in logits_before],
        "logits_after": [r(v) for v in logits_after],
    }
    path = os.path.join(REFS, "bn_small.json")
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    d = max(abs(a - b) for n in BN_ORDER[1:] for a, b in zip(seq[n]["var"], one[n]["var"]))
    print(f"bn: wrote {os.path.relpath(onnx_path, ROOT)} ({os.path.getsize(onnx_path)} bytes) and "
          f"{os.path.relpath(path, ROOT)}; sequential vs one-pass train-mode reset, max |var diff| downstream {d:.3g}")


# ------------------------------------------------------------------------------------------------- REPAIR
REPAIR_CONVENTIONS = {
    "model": "resnet_small (BN folded): stem Conv+ReLU; block1: c1 Conv+ReLU, c2 Conv, + identity, ReLU; down Conv "
             "(stride 2)+ReLU; block2 like block1; global mean over H,W; fc Gemm -> logits. Convs keyed by their ONNX "
             "node output (e.g. '/stem/Conv_output_0')",
    "interpolation": "merged = 0.5 * A + 0.5 * B for every initializer (naive: B not aligned)",
    "repair": "for each Conv in graph order: z = Conv output [N, C, H, W] on the statistics slice; per-channel mean and "
              "POPULATION std (ddof=0, over N, H, W of all images at once); target_mean = (1-alpha)*mean_A + "
              "alpha*mean_B, target_std = (1-alpha)*std_A + alpha*std_B; merged stats recomputed with earlier Convs "
              "already repaired; scale = target_std / sqrt(var_M + eps), eps = 1e-5; W[c] <- scale[c] * W[c], "
              "b[c] <- scale[c] * (b[c] - mean_M[c]) + target_mean[c]; fc untouched",
    "loss": "mean softmax cross-entropy (natural log); accuracy = fraction with argmax(logits) == label",
    "arithmetic": "float64 (float32 initializers widened exactly)",
}
CONVS = ["/stem/Conv", "/block1/c1/Conv", "/block1/c2/Conv", "/down/Conv", "/block2/c1/Conv", "/block2/c2/Conv"]
EPS = 1e-5


def onnx_params(path):
    import onnx
    from onnx import numpy_helper

    m = onnx.load(path)
    init = {t.name: torch.from_numpy(numpy_helper.to_array(t).astype(np.float64)) for t in m.graph.initializer}
    p = {}
    for n in m.graph.node:
        if n.op_type == "Conv":
            p[n.name] = {"w": init[n.input[1]], "b": init[n.input[2]], "names": [n.input[1], n.input[2]],
                         "stride": [a.ints for a in n.attribute if a.name == "strides"][0][0]}
        elif n.op_type == "Gemm":
            p["fc"] = {"w": init[n.input[1]], "b": init[n.input[2]]}
    assert list(k for k in p if k != "fc") == CONVS, list(p)
    return p


def resnet_forward(p, x, upto=None):
    def conv(name, h):
        q = p[name]
        z = F.conv2d(h, q["w"], q["b"], stride=q["stride"], padding=1)
        return z

    h = x.reshape(x.shape[0], 1, 28, 28)
    outs = {}
    z = conv("/stem/Conv", h); outs["/stem/Conv"] = z; h = F.relu(z)
    for blk, down in (("/block1", None), ("/block2", "/down/Conv")):
        if down:
            z = conv(down, h); outs[down] = z; h = F.relu(z)
        z = conv(f"{blk}/c1/Conv", h); outs[f"{blk}/c1/Conv"] = z; y = F.relu(z)
        z = conv(f"{blk}/c2/Conv", y); outs[f"{blk}/c2/Conv"] = z; h = F.relu(h + z)
    if upto is not None:
        return outs[upto]
    return h.mean(dim=(2, 3)) @ p["fc"]["w"].T + p["fc"]["b"]


def evaluate(p, x, y):
    with torch.no_grad():
        logits = resnet_forward(p, x)
    loss = float(F.cross_entropy(logits, y))
    acc = float((logits.argmax(dim=1) == y).double().mean())
    return {"loss": loss, "acc": acc}


def chan_stats(z):
    return z.mean(dim=(0, 2, 3)), z.std(dim=(0, 2, 3), unbiased=False)


def repair_case():
    a = onnx_params(os.path.join(FIXTURES, "resnet_small_seed0.onnx"))
    b = onnx_params(os.path.join(FIXTURES, "resnet_small_seed1.onnx"))
    test = st.read(os.path.join(FIXTURES, "fmnist_test1k.safetensors"))
    train = st.read(os.path.join(FIXTURES, "fmnist_train4k.safetensors"))
    x = torch.from_numpy(test["input"].astype(np.float64))
    y = torch.from_numpy(test["label"].astype(np.int64))
    xs = torch.from_numpy(train["input"][:1000].astype(np.float64))
    alpha = 0.5
    merged = {k: {kk: ((1 - alpha) * v[kk] + alpha * b[k][kk]) if kk in ("w", "b") else v[kk] for kk in v}
              for k, v in a.items()}
    before = evaluate(merged, x, y)
    layers = []
    with torch.no_grad():
        for name in CONVS:
            ma, sa = chan_stats(resnet_forward(a, xs, name))
            mb, sb = chan_stats(resnet_forward(b, xs, name))
            t_mean = (1 - alpha) * ma + alpha * mb
            t_std = (1 - alpha) * sa + alpha * sb
            z = resnet_forward(merged, xs, name)
            m_mean, m_var = z.mean(dim=(0, 2, 3)), z.var(dim=(0, 2, 3), unbiased=False)
            scale = t_std / torch.sqrt(m_var + EPS)
            merged[name]["w"] = scale[:, None, None, None] * merged[name]["w"]
            merged[name]["b"] = scale * (merged[name]["b"] - m_mean) + t_mean
            zr = resnet_forward(merged, xs, name)
            layers.append({
                "node": name, "output": f"{name}_output_0", "weight": merged[name]["names"][0],
                "bias": merged[name]["names"][1], "channels": int(scale.numel()),
                "target_mean": r(t_mean), "target_std": r(t_std), "merged_mean_before": r(m_mean),
                "merged_std_before": r(torch.sqrt(m_var)), "scale": r(scale),
                "max_abs_mean_error_after": float((zr.mean(dim=(0, 2, 3)) - t_mean).abs().max()),
                "max_abs_std_error_after": float((zr.std(dim=(0, 2, 3), unbiased=False) - t_std).abs().max()),
            })
    res = {
        "sources": {"A": "fixtures/resnet_small_seed0.onnx", "B": "fixtures/resnet_small_seed1.onnx",
                    "test": "fixtures/fmnist_test1k.safetensors (all 1000)",
                    "stats": "fixtures/fmnist_train4k.safetensors, rows 0..999"},
        "conventions": REPAIR_CONVENTIONS, "alpha": alpha, "eps": EPS, "stats_images": int(len(xs)),
        "A": evaluate(a, x, y), "B": evaluate(b, x, y),
        "midpoint_before_repair": before, "midpoint": evaluate(merged, x, y),
        "layers": layers,
    }
    path = os.path.join(REFS, "repair_resnet_small.json")
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    print(f"repair: A {res['A']}, B {res['B']}, naive midpoint {before} -> repaired {res['midpoint']}; "
          f"wrote {os.path.relpath(path, ROOT)}")


def main():
    which = sys.argv[1:] or ["bn", "repair"]
    for case in which:
        {"bn": bn_case, "repair": repair_case}[case]()


if __name__ == "__main__":
    main()
