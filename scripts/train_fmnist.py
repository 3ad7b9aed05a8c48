#!/usr/bin/python3
"""Train a Fashion-MNIST model with torch; save it as a safetensors state_dict and as a torch.onnx.export ONNX.

    /usr/bin/python3 scripts/train_fmnist.py --arch mlp --widths 512,512,512 --seed 0 --epochs 5 --out bench/out/mlp512_seed0
    /usr/bin/python3 scripts/train_fmnist.py --arch cnn --seed 0 --epochs 2 --out /tmp/cnn_seed0 [--keep-bn]
    /usr/bin/python3 scripts/train_fmnist.py --arch vit --seed 0 --epochs 5 --out /tmp/vit_seed0 [--opset 17]

Writes OUT.safetensors (state_dict: torch names, torch layouts [out, in] / [out, in, kh, kw], torch dtypes, so
BatchNorm `num_batches_tracked` is I64; a few facts in `__metadata__`) and OUT.onnx (input `input` [batch, 784]
floats in [0,1], output `logits` [batch, 10], dynamic batch axis `batch`, opset 14 unless --opset,
do_constant_folding=True). With --spec PATH (mlp only) also writes the permutation spec (docs/spec-format.md).

Architectures (mirroring /work/shared/fixtures/README.md):
  mlp: `layers.{i}` Linear + ReLU for each width in --widths, then `head` Linear -> 10.
  cnn: residual CNN, widths c1,c2 (default 16,32): stem conv3x3(1->c1) + `bn` + ReLU; block1 (c1 conv3x3 -> b1 BN ->
       ReLU -> c2 conv3x3 -> b2 BN, + identity, ReLU); `down` conv3x3 stride 2 (c1->c2) + `bnd` + ReLU; block2 (same
       as block1 at c2); global average pool; `fc` Linear -> 10. Convs have no bias. Default export: eval mode,
       training=TrainingMode.EVAL, so torch 1.13 folds each BatchNorm into the preceding Conv (the Convs gain a
       bias). --keep-bn: eval mode with training=TrainingMode.PRESERVE, which in torch 1.13 skips the eval-mode
       Conv+BN fusion pass, so BatchNormalization nodes (training_mode=0, running stats as initializers) stay.
  vit: 28x28 -> 16 patches of 7x7 (row-major patch order, pixels row-major inside a patch) -> `embed` Linear(49->w)
       + learned `pos` [1,16,w]; `enc.0` = nn.TransformerEncoderLayer(w, heads, 4w, dropout 0, GELU, batch_first,
       norm_first=True); final LayerNorm `norm`; mean over tokens; `head` Linear -> 10. Defaults w=32, 2 heads.

Prints the test loss/accuracy on the full 10k test set (and a JSON line at the end). --check-onnx (default on)
re-runs the exported ONNX graph with a small op-by-op evaluator (torch kernels) and compares its logits to the
torch model's on 256 test images.
"""
import argparse
import gzip
import json
import os
import struct
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

DATA = os.environ.get("FMNIST_DIR", "/usr/share/datasets/fashion-mnist")


# ----------------------------------------------------------------------------------------------------- data
def load_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, = struct.unpack(">I", raw[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(split):
    """split: 'train' or 't10k'. Returns (images float32 [N,784] in [0,1] (= u8/255), labels int64 [N])."""
    x = load_idx(os.path.join(DATA, f"{split}-images-idx3-ubyte.gz")).reshape(-1, 784)
    y = load_idx(os.path.join(DATA, f"{split}-labels-idx1-ubyte.gz"))
    return x.astype(np.float32) / 255.0, y.astype(np.int64)


# --------------------------------------------------------------------------------------------------- models
class MLP(nn.Module):
    def __init__(self, widths):
        super().__init__()
        dims = [784] + list(widths)
        self.layers = nn.ModuleList([nn.Linear(dims[i], dims[i + 1]) for i in range(len(widths))])
        self.head = nn.Linear(dims[-1], 10)

    def forward(self, x):
        for layer in self.layers:
            x = F.relu(layer(x))
        return self.head(x)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(c)
        self.c2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(c)

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        return F.relu(x + self.b2(self.c2(y)))


class ResNetSmall(nn.Module):
    def __init__(self, c1=16, c2=32):
        super().__init__()
        self.stem = nn.Conv2d(1, c1, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c1)
        self.block1 = Block(c1)
        self.down = nn.Conv2d(c1, c2, 3, stride=2, padding=1, bias=False)
        self.bnd = nn.BatchNorm2d(c2)
        self.block2 = Block(c2)
        self.fc = nn.Linear(c2, 10)

    def forward(self, x):
        x = x.reshape(x.shape[0], 1, 28, 28)
        x = F.relu(self.bn(self.stem(x)))
        x = self.block1(x)
        x = F.relu(self.bnd(self.down(x)))
        x = self.block2(x)
        return self.fc(x.mean(dim=(2, 3)))


class ViTSmall(nn.Module):
    def __init__(self, width=32, heads=2, layers=1, patch=7):
        super().__init__()
        self.patch = patch
        self.grid = 28 // patch
        n = self.grid * self.grid
        self.pos = nn.Parameter(torch.randn(1, n, width) * 0.02)
        self.embed = nn.Linear(patch * patch, width)
        self.enc = nn.ModuleList(
            [
                nn.TransformerEncoderLayer(
                    width, heads, dim_feedforward=4 * width, dropout=0.0, activation="gelu",
                    batch_first=True, norm_first=True,
                )
                for _ in range(layers)
            ]
        )
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        g, p = self.grid, self.patch
        x = x.reshape(x.shape[0], g, p, g, p).transpose(2, 3).reshape(x.shape[0], g * g, p * p)
        x = self.embed(x) + self.pos
        for layer in self.enc:
            x = layer(x)
        return self.head(self.norm(x).mean(dim=1))


def build(args):
    if args.arch == "mlp":
        widths = [int(w) for w in (args.widths or "512,512,512").split(",")]
        return MLP(widths)
    if args.arch == "cnn":
        c = [int(w) for w in (args.widths or "16,32").split(",")]
        return ResNetSmall(*c)
    if args.arch == "vit":
        w = int(args.widths or 32)
        return ViTSmall(width=w, heads=args.heads, layers=args.depth)
    raise SystemExit(f"unknown arch {args.arch}")


def mlp_spec(model):
    n = len(model.layers)
    a2p = {}
    for i in range(n):
        a2p[f"layers.{i}.weight"] = [f"P_{i}", None if i == 0 else f"P_{i - 1}"]
        a2p[f"layers.{i}.bias"] = [f"P_{i}"]
    a2p["head.weight"] = [None, f"P_{n - 1}"]
    a2p["head.bias"] = [None]
    perms = {f"P_{i}": {"size": model.layers[i].out_features, "description": f"hidden units after layers.{i}"}
             for i in range(n)}
    return {"axes_to_perm": a2p, "perms": perms}


# ------------------------------------------------------------------------------------------------ training
@torch.no_grad()
def evaluate(model, x, y, bs=1000):
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(x), bs):
        logits = model(x[i : i + bs])
        loss += F.cross_entropy(logits, y[i : i + bs], reduction="sum").item()
        correct += (logits.argmax(1) == y[i : i + bs]).sum().item()
    return loss / len(x), correct / len(x)


def train(model, x, y, args):
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    n = len(x)
    steps_per_epoch = (n + args.batch_size - 1) // args.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.25
    ) if args.onecycle else None
    for epoch in range(args.epochs):
        model.train()
        t0 = time.time()
        order = torch.randperm(n)
        tot = 0.0
        for i in range(0, n, args.batch_size):
            idx = order[i : i + args.batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched:
                sched.step()
            tot += loss.item() * len(idx)
        print(f"epoch {epoch + 1}/{args.epochs}: train loss {tot / n:.4f} ({time.time() - t0:.1f}s)", flush=True)


# ------------------------------------------------------------------------------------- ONNX graph checking
def run_onnx(path, x, env_out=None):
    """Evaluate an ONNX graph op by op with torch kernels (enough ops for these three architectures). env_out: a dict
    that receives every tensor computed, by name."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(path)
    env = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
    env[m.graph.input[0].name] = x
    dt = {1: torch.float32, 6: torch.int32, 7: torch.int64, 11: torch.float64}

    def attrs(node):
        return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    for node in m.graph.node:
        a = attrs(node)
        i = [env[n] if n else None for n in node.input]
        op = node.op_type
        if op == "Constant":
            out = torch.from_numpy(numpy_helper.to_array(a["value"]).copy())
        elif op == "Gemm":
            A = i[0].T if a.get("transA", 0) else i[0]
            B = i[1].T if a.get("transB", 0) else i[1]
            out = a.get("alpha", 1.0) * (A @ B)
            if len(i) > 2 and i[2] is not None:
                out = out + a.get("beta", 1.0) * i[2]
        elif op == "MatMul":
            out = i[0] @ i[1]
        elif op in ("Add", "Sub", "Mul", "Div", "Pow"):
            fn = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div, "Pow": torch.pow}[op]
            if op == "Div" and not i[0].is_floating_point():
                out = torch.div(i[0], i[1], rounding_mode="trunc")
            else:
                out = fn(i[0], i[1])
        elif op == "Relu":
            out = F.relu(i[0])
        elif op == "Erf":
            out = torch.erf(i[0])
        elif op == "Sqrt":
            out = torch.sqrt(i[0])
        elif op == "Softmax":
            out = torch.softmax(i[0], dim=a.get("axis", -1))
        elif op == "Shape":
            out = torch.tensor(list(i[0].shape), dtype=torch.int64)
        elif op == "Gather":
            out = torch.from_numpy(np.asarray(np.take(i[0].numpy(), i[1].numpy(), axis=a.get("axis", 0))))
        elif op == "Unsqueeze":
            out = i[0]
            for ax in sorted(int(v) for v in i[1].reshape(-1)):
                out = out.unsqueeze(ax)
        elif op == "Concat":
            out = torch.cat([t.reshape(-1) if t.dim() == 0 else t for t in i], dim=a["axis"])
        elif op == "Reshape":
            shape = [int(v) for v in i[1]]
            shape = [i[0].shape[k] if s == 0 else s for k, s in enumerate(shape)]
            out = i[0].reshape(shape)
        elif op == "Flatten":
            ax = a.get("axis", 1)
            out = i[0].reshape(int(np.prod(i[0].shape[:ax])), -1)
        elif op == "Transpose":
            out = i[0].permute(*a["perm"])
        elif op == "Cast":
            out = i[0].to(dt[a["to"]])
        elif op == "Slice":
            starts, ends = i[1].tolist(), i[2].tolist()
            axes = i[3].tolist() if len(i) > 3 and i[3] is not None else list(range(len(starts)))
            steps = i[4].tolist() if len(i) > 4 and i[4] is not None else [1] * len(starts)
            sl = [slice(None)] * i[0].dim()
            for s, e, ax, stp in zip(starts, ends, axes, steps):
                sl[ax] = slice(s, min(e, i[0].shape[ax]), stp)
            out = i[0][tuple(sl)]
        elif op == "ReduceMean":
            out = i[0].mean(dim=tuple(a["axes"]), keepdim=bool(a.get("keepdims", 1)))
        elif op == "Conv":
            p = a.get("pads", [0, 0, 0, 0])
            assert p[0] == p[2] and p[1] == p[3]
            out = F.conv2d(i[0], i[1], i[2] if len(i) > 2 else None, stride=a.get("strides", [1, 1]),
                           padding=(p[0], p[1]), dilation=a.get("dilations", [1, 1]), groups=a.get("group", 1))
        elif op == "BatchNormalization":
            assert a.get("training_mode", 0) == 0
            out = F.batch_norm(i[0], i[3], i[4], i[1], i[2], training=False, eps=a.get("epsilon", 1e-5))
        elif op == "LayerNormalization":
            ax = a.get("axis", -1)
            assert ax == -1
            out = F.layer_norm(i[0], i[0].shape[-1:], i[1], i[2] if len(i) > 2 else None, eps=a.get("epsilon", 1e-5))
        else:
            raise NotImplementedError(f"run_onnx: op {op}")
        env[node.output[0]] = out
    if env_out is not None:
        env_out.update(env)
    return env[m.graph.output[0].name], m


# -------------------------------------------------------------------------------------------------- export
def export_onnx(model, path, opset, keep_bn):
    model.eval()
    dummy = torch.zeros(2, 784)
    training = torch.onnx.TrainingMode.PRESERVE if keep_bn else torch.onnx.TrainingMode.EVAL
    # torch 1.13 warns about constant folding whenever training != EVAL, even for a model in eval mode (as here,
    # where BatchNormalization is exported with training_mode=0 and its running stats): nothing is mutated.
    warnings.filterwarnings("ignore", message="It is recommended that constant folding be turned off")
    torch.onnx.export(
        model, (dummy,), path, input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=opset, do_constant_folding=True, training=training,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=["mlp", "cnn", "vit"], default="mlp")
    ap.add_argument("--widths", default=None, help="mlp: hidden widths (default 512,512,512); cnn: c1,c2 (16,32); "
                    "vit: width (32)")
    ap.add_argument("--heads", type=int, default=2, help="vit attention heads")
    ap.add_argument("--depth", type=int, default=1, help="vit encoder layers")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--onecycle", action="store_true", help="OneCycle LR schedule instead of constant")
    ap.add_argument("--train-limit", type=int, default=0, help="train on the first N training images only")
    ap.add_argument("--keep-bn", action="store_true", help="cnn: keep BatchNormalization nodes in the ONNX")
    ap.add_argument("--opset", type=int, default=14)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True, help="DIR/NAME: writes DIR/NAME.safetensors and DIR/NAME.onnx")
    ap.add_argument("--spec", default=None, help="mlp: also write the permutation spec JSON here")
    ap.add_argument("--no-check-onnx", dest="check_onnx", action="store_false")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    xtr, ytr = load_split("train")
    xte, yte = load_split("t10k")
    if args.train_limit:
        xtr, ytr = xtr[: args.train_limit], ytr[: args.train_limit]
    xtr, ytr, xte, yte = map(torch.from_numpy, (xtr, ytr, xte, yte))

    model = build(args)
    t0 = time.time()
    train(model, xtr, ytr, args)
    train_s = time.time() - t0
    test_loss, test_acc = evaluate(model, xte, yte)
    print(f"test loss {test_loss:.4f}  test acc {test_acc:.4f}  (10k test images, {train_s:.0f}s training)")

    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    meta = {
        "arch": args.arch, "widths": args.widths or "", "seed": args.seed, "epochs": args.epochs,
        "optimizer": f"Adam lr={args.lr} bs={args.batch_size}" + (" onecycle" if args.onecycle else ""),
        "test_loss": f"{test_loss:.6f}", "test_acc": f"{test_acc:.4f}", "torch": torch.__version__,
    }
    st.write_torch(args.out + ".safetensors", model.state_dict(), metadata=meta)
    export_onnx(model, args.out + ".onnx", args.opset, args.keep_bn)
    if args.spec:
        assert args.arch == "mlp", "--spec is for --arch mlp"
        with open(args.spec, "w") as f:
            json.dump(mlp_spec(model), f, indent=1)
            f.write("\n")

    result = {"out": args.out, "arch": args.arch, "seed": args.seed, "epochs": args.epochs,
              "test_loss": round(test_loss, 6), "test_acc": test_acc, "train_seconds": round(train_s, 1)}
    if args.check_onnx:
        model.eval()
        xs = xte[:256]
        with torch.no_grad():
            ref = model(xs)
            got, m = run_onnx(args.out + ".onnx", xs)
        err = (got - ref).abs().max().item()
        ops = sorted({n.op_type for n in m.graph.node})
        print(f"onnx check: max |logits diff| = {err:.2e}; ops: {', '.join(ops)}")
        assert err < 1e-3, "exported ONNX disagrees with the torch model"
        result["onnx_max_abs_diff"] = err
        result["onnx_ops"] = ops
    print(json.dumps(result))


if __name__ == "__main__":
    main()
