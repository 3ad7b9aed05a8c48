#!/usr/bin/python3
"""Reference numbers for `basin factorize` on the shared ResNet (BatchNorm folded, and kept) and ViT fixtures.

    /usr/bin/python3 scripts/ref_factorize_models.py   # writes test/refs/factorize_models.json

Independent of basin: the ONNX weights are read with the onnx package, activations are computed with torch kernels
(train_fmnist.run_onnx, an op-by-op evaluator of the exported graph, float32 as onnxruntime computes them), the
solves are torch float64 (ref_factorize.closed_form: the reduced-rank closed form, whitened by the eigenvectors of
the centred activation covariance with eigenvalues <= 1e-10 * max dropped, then 3 ALS iterations with the
rank-revealing gelsd driver, keeping the best). Every layer is fitted on the ORIGINAL model's activations.

Calibration: the first 512 images of fmnist_train4k; evaluation: fmnist_test1k (accuracy, mean cross-entropy).
Layers: Gemm (weight with transB), MatMul with a constant weight (+ the Add of a constant bias that follows it;
inputs of any rank flattened to rows), Conv (im2col with the conv's own kernel, stride, padding, dilation; groups
must be 1 in these fixtures). nmse = mean((Y - Y_hat)^2) / Y.var() over the calibration rows, Y = X W + b (bias
included), Y.var() unbiased over all values. The model "after" uses W_eff = Wa Wb (and the refitted bias) in place
of each layer's weight, which is exactly what the pair computes.

Per model:
  fixed     each listed layer at a fixed rank: per-layer nmse (closed form, closed form + ALS) and accuracy after.
  uniform   what `--keep 0.7` is compared against: every factorizable layer except the first and last (as
            `basin factorize --keep` chooses them) at one rank fraction f of min(fan-in, out) (rank =
            max(1, floor(f * min))), f the largest multiple of 1/64 whose pairs hold <= 0.7 of those layers'
            parameters (weights + bias); per-layer nmse, their sum, parameters, accuracy after.
"""
import json
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import st  # noqa: E402
from ref_factorize import closed_form, nmse  # noqa: E402
from train_fmnist import run_onnx  # noqa: E402

import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

FIXTURES = os.environ.get("BASIN_FIXTURES", "/work/shared/fixtures")
OUT = os.path.join(ROOT, "test", "refs", "factorize_models.json")
SAMPLES = 512
ITERS = 3
KEEP = 0.7
MODELS = {
    "resnet_small_seed0.onnx": {"/block1/c1/Conv": 8, "/block1/c2/Conv": 8, "/down/Conv": 8, "/block2/c1/Conv": 12, "/block2/c2/Conv": 12},
    "resnet_small_seed0_bn.onnx": {"/block1/c1/Conv": 8, "/block1/c2/Conv": 8, "/down/Conv": 8, "/block2/c1/Conv": 12, "/block2/c2/Conv": 12},
    "vit_small_seed0.onnx": {"/embed/MatMul": 16, "/enc.0/self_attn/MatMul": 16, "/enc.0/self_attn/Gemm": 12, "/enc.0/linear1/MatMul": 16, "/enc.0/linear2/MatMul": 16},
}


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def find_layers(m):
    """Factorizable layers in graph order: dict name, op, x (input tensor), weight/bias initializer names, W [in, out]."""
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    consumers = {}
    for n in m.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    layers = []
    for n in m.graph.node:
        a = attrs(n)
        if n.op_type == "Gemm" and n.input[1] in inits and not a.get("transA", 0):
            w = inits[n.input[1]].astype(np.float64)
            w = w.T if a.get("transB", 0) else w
            b = inits[n.input[2]].astype(np.float64) if len(n.input) > 2 and n.input[2] in inits else None
            layers.append(dict(name=n.name, op="Gemm", x=n.input[0], w=w, bias=b, weight=n.input[1], bias_name=n.input[2] if b is not None else None))
        elif n.op_type == "MatMul" and n.input[1] in inits and inits[n.input[1]].ndim == 2:
            w = inits[n.input[1]].astype(np.float64)
            b, bname = None, None
            nxt = consumers.get(n.output[0], [])
            if len(nxt) == 1 and nxt[0].op_type == "Add":
                other = [i for i in nxt[0].input if i != n.output[0]]
                if other and other[0] in inits and inits[other[0]].size == w.shape[1]:
                    b, bname = inits[other[0]].astype(np.float64).reshape(-1), other[0]
            layers.append(dict(name=n.name, op="MatMul", x=n.input[0], w=w, bias=b, weight=n.input[1], bias_name=bname))
        elif n.op_type == "Conv" and n.input[1] in inits:
            wt = inits[n.input[1]].astype(np.float64)
            assert a.get("group", 1) == 1, "groups > 1 not in these fixtures"
            b = inits[n.input[2]].astype(np.float64) if len(n.input) > 2 and n.input[2] in inits else None
            layers.append(dict(name=n.name, op="Conv", x=n.input[0], w=wt.reshape(wt.shape[0], -1).T.copy(), bias=b, weight=n.input[1],
                               bias_name=n.input[2] if b is not None else None, kshape=wt.shape, attrs=a))
    return layers


def with_output(m, name):
    """A copy of the model whose first graph output is the tensor `name` (run_onnx returns the first output)."""
    c = onnx.ModelProto()
    c.CopyFrom(m)
    del c.graph.output[:]
    c.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    return c


def run(m, x):
    with tempfile.NamedTemporaryFile(suffix=".onnx", delete=False) as f:
        path = f.name
    try:
        onnx.save(m, path)
        with torch.no_grad():
            out, _ = run_onnx(path, torch.from_numpy(x))
        return out
    finally:
        os.unlink(path)


def rows(layer, act):
    """The layer's inputs as rows [N, fan-in] in float64."""
    act = act.double()
    if layer["op"] != "Conv":
        return act.reshape(-1, layer["w"].shape[0])
    a = layer["attrs"]
    kh, kw = layer["kshape"][2], layer["kshape"][3]
    p = a.get("pads", [0, 0, 0, 0])
    assert p[0] == p[2] and p[1] == p[3]
    cols = F.unfold(act, (kh, kw), dilation=tuple(a.get("dilations", [1, 1])), padding=(p[0], p[1]), stride=tuple(a.get("strides", [1, 1])))
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def replaced(m, layers, sols):
    """The model with each solved layer's weight replaced by Wa Wb in its stored layout, and its bias refitted."""
    c = onnx.ModelProto()
    c.CopyFrom(m)
    by = {t.name: t for t in c.graph.initializer}
    for layer in layers:
        if layer["name"] not in sols:
            continue
        wa, wb, bias = sols[layer["name"]]
        weff = (wa @ wb).numpy()  # [in, out]
        if layer["op"] == "Conv":
            stored = weff.T.reshape(layer["kshape"])
        elif layer["op"] == "Gemm" and attrs(next(n for n in c.graph.node if n.name == layer["name"])).get("transB", 0):
            stored = weff.T
        else:
            stored = weff
        by[layer["weight"]].CopyFrom(numpy_helper.from_array(stored.astype(np.float32), layer["weight"]))
        b = bias.numpy().astype(np.float32)
        if layer["bias_name"] is not None:
            old = numpy_helper.to_array(by[layer["bias_name"]])
            by[layer["bias_name"]].CopyFrom(numpy_helper.from_array(b.reshape(old.shape), layer["bias_name"]))
        else:  # the fitted intercept becomes a bias (the pair's second operator carries one)
            node = next(n for n in c.graph.node if n.name == layer["name"])
            assert node.op_type != "MatMul", "MatMul without a bias Add: not in these fixtures"
            name = layer["name"] + "/fitted_bias"
            c.graph.initializer.append(numpy_helper.from_array(b, name))
            while len(node.input) < 3:
                node.input.append("")
            node.input[2] = name
    return c


def accuracy(m, test):
    logits = run(m, test["input"]).double()
    labels = torch.from_numpy(test["label"].astype(np.int64))
    return float((logits.argmax(1) == labels).double().mean()), float(F.cross_entropy(logits, labels))


def params(layer, rank=None):
    fan_in, out = layer["w"].shape
    bias = out if layer["bias"] is not None else 0
    return (fan_in * out if rank is None else rank * (fan_in + out)) + bias


def solve(layer, x, k):
    w = torch.from_numpy(layer["w"])
    b = torch.from_numpy(layer["bias"]) if layer["bias"] is not None else torch.zeros(w.shape[1], dtype=torch.float64)
    y = x @ w + b
    wa, wb, nb, first = closed_form(x, y, k, ITERS)
    return (wa, wb, nb), first, nmse(y, x @ wa @ wb + nb)


def main():
    torch.manual_seed(0)
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    calib = st.read(os.path.join(FIXTURES, "fmnist_train4k.safetensors"))["input"][:SAMPLES]
    test = st.read(os.path.join(FIXTURES, "fmnist_test1k.safetensors"))
    models = {}
    for file, ranks in MODELS.items():
        m = onnx.load(os.path.join(FIXTURES, file))
        layers = find_layers(m)
        xs = {}
        for layer in layers:
            xs[layer["name"]] = rows(layer, run(with_output(m, layer["x"]), calib))
        acc0, loss0 = accuracy(m, test)
        entry = {"accuracy_before": acc0, "loss_before": loss0, "params_before": sum(int(numpy_helper.to_array(t).size) for t in m.graph.initializer if t.data_type == 1),
                 "layers": {l["name"]: {"op": l["op"], "fan_in": l["w"].shape[0], "out": l["w"].shape[1], "bias": l["bias"] is not None,
                                        "rows": int(xs[l["name"]].shape[0])} for l in layers}}
        # fixed ranks
        sols, fixed = {}, {}
        for layer in layers:
            if layer["name"] not in ranks:
                continue
            k = ranks[layer["name"]]
            sol, first, e = solve(layer, xs[layer["name"]], k)
            sols[layer["name"]] = sol
            fixed[layer["name"]] = {"rank": k, "closed_form_nmse": first, "closed_form_als_nmse": e}
            print(file, layer["name"], k, first, e, flush=True)
        acc, loss = accuracy(replaced(m, layers, sols), test)
        entry["fixed"] = {"layers": fixed, "accuracy_after": acc, "loss_after": loss}
        # uniform rank fraction under the --keep budget
        cand = layers[1:-1]
        dense = sum(params(l) for l in cand)
        best = None
        for i in range(1, 65):
            f = i / 64
            rk = {l["name"]: max(1, int(f * min(l["w"].shape))) for l in cand}
            p = sum(params(l, rk[l["name"]]) for l in cand)
            if p <= KEEP * dense:
                best = (f, rk, p)
        f, rk, p = best
        sols, uni = {}, {}
        for layer in cand:
            sol, first, e = solve(layer, xs[layer["name"]], rk[layer["name"]])
            sols[layer["name"]] = sol
            uni[layer["name"]] = {"rank": rk[layer["name"]], "nmse": e}
        m2 = replaced(m, layers, sols)
        acc, loss = accuracy(m2, test)
        entry["uniform"] = {"keep": KEEP, "fraction": f, "layers": uni, "sum_nmse": sum(v["nmse"] for v in uni.values()),
                            "params_dense": dense, "params_after": p, "model_params_after": entry["params_before"] - dense + p,
                            "accuracy_after": acc, "loss_after": loss}
        print(file, "uniform", json.dumps(entry["uniform"]), flush=True)
        models[file] = entry
    out = {
        "conventions": __doc__.strip().split("\n\n", 1)[1],
        "calibration": f"fmnist_train4k.safetensors input[:{SAMPLES}]",
        "evaluation": "fmnist_test1k.safetensors",
        "torch": torch.__version__,
        "models": models,
    }
    with open(OUT, "w") as fh:
        json.dump(out, fh, indent=1)
        fh.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
