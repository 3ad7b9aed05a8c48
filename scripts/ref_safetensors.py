#!/usr/bin/python3
"""Independent reference values for test/safetensors.test.ts, written to test/refs/safetensors_ref.json.

Run once with Debian's python (numpy + torch): /usr/bin/python3 scripts/ref_safetensors.py
The fixtures are parsed here with struct + json + numpy only (no basin code); float16 conversions come from
numpy, bfloat16 conversions from torch, both round-to-nearest-even.
"""
import hashlib
import json
import os
import struct
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.environ.get("BASIN_FIXTURES", "/work/shared/fixtures")
OUT = os.path.join(ROOT, "test", "refs", "safetensors_ref.json")
NP = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    data = raw[8 + n :]
    tensors = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        tensors[name] = np.frombuffer(data[b:end], dtype=NP[e["dtype"]]).reshape(e["shape"])
    return header, tensors, data


def fixture(name, samples):
    header, tensors, data = read(os.path.join(FIXTURES, name + ".safetensors"))
    out = {
        # tensor names in the order they appear in the header (which is also data order in these files)
        "names": [k for k in header if k != "__metadata__"],
        "header": {k: v for k, v in header.items() if k != "__metadata__"},
        "data_bytes": len(data),
        # float64 sum of every tensor, to compare whole tensors
        "sums": {k: float(t.astype(np.float64).sum()) for k, t in tensors.items()},
        "samples": {},
    }
    for tname, flat in samples.items():
        t = tensors[tname].reshape(-1)
        out["samples"][tname] = {"index": flat, "values": [float(t[i]) for i in flat]}
    return out


def bits32(x):
    return np.array(x, dtype=np.float32).view(np.uint32).tolist()


def halfs():
    rng = np.random.default_rng(20240611)
    # random float32 over the whole range, plus values right at and next to f16 / bf16 rounding ties
    r = rng.integers(0, 2**32, size=200, dtype=np.uint64).astype(np.uint32)
    h = rng.integers(0, 0x7C00, size=80, dtype=np.uint64).astype(np.uint16)  # finite f16, incl. subnormals
    exact = h.view(np.float16).astype(np.float32).view(np.uint32)
    nxt = (h + 1).view(np.float16).astype(np.float32).view(np.uint32)
    # midpoint between consecutive f16 values, computed in float64 then exact in float32 for normal range
    mid = ((h.view(np.float16).astype(np.float64) + (h + 1).view(np.float16).astype(np.float64)) / 2).astype(np.float32).view(np.uint32)
    b = rng.integers(0, 0x7F80, size=80, dtype=np.uint64).astype(np.uint32)
    bmid = (b << 16) | 0x8000  # exact bf16 ties
    pool = np.concatenate([r, exact, nxt, mid, mid - 1, mid + 1, bmid, bmid - 1, bmid + 1]).astype(np.uint32)
    f = pool.view(np.float32)
    keep = ~np.isnan(f)  # NaN payloads are checked separately in the test
    pool = pool[keep]
    f = pool.view(np.float32)
    with np.errstate(over="ignore"):
        f16 = f.astype(np.float16).view(np.uint16)
    bf16 = torch.from_numpy(f.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    all_h = np.arange(0, 65536, dtype=np.uint32).astype(np.uint16)
    h_to_f = all_h.view(np.float16).astype(np.float32)
    h_to_f[np.isnan(h_to_f)] = np.float32("nan")  # canonical quiet NaN 0x7FC00000, as the test writes NaN
    table = h_to_f.view(np.uint32)
    assert int(table[0x7E00]) == 0x7FC00000
    return {
        "f32_bits": pool.tolist(),
        "f16_bits": f16.tolist(),
        "bf16_bits": bf16.tolist(),
        # all 65536 f16 values converted to float32, as little-endian uint32 bits (NaN as 0x7FC00000): sha256
        "f16_to_f32_table_sha256": hashlib.sha256(table.astype("<u4").tobytes()).hexdigest(),
        "f16_to_f32_samples": {str(i): int(table[i]) for i in [0x0001, 0x03FF, 0x0400, 0x3C00, 0x7BFF, 0x7C00, 0x8001, 0xC100, 0xFBFF, 0xFC00]},
    }


def main():
    ref = {
        "generator": "scripts/ref_safetensors.py (numpy %s, torch %s)" % (np.__version__, torch.__version__),
        "mlp_small_seed0": fixture(
            "mlp_small_seed0",
            {"layers.0.weight": [0, 1, 783, 784, 50000, 100351], "head.bias": list(range(10))},
        ),
        "resnet_small_seed0": fixture(
            "resnet_small_seed0",
            {"bn.num_batches_tracked": [0], "block2.b2.num_batches_tracked": [0], "bn.running_var": [0, 7, 15], "stem.weight": [0, 143]},
        ),
        "halfs": halfs(),
    }
    with open(OUT, "w") as f:
        json.dump(ref, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", OUT, os.path.getsize(OUT), "bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
