"""Minimal safetensors reader/writer with numpy only (no `safetensors` package).

Format: 8-byte little-endian u64 N, then N bytes of JSON header
{name: {"dtype", "shape", "data_offsets": [begin, end]}, optional "__metadata__": {str: str}},
then the raw little-endian tensor bytes (offsets relative to the end of the header).
The writer lays tensors out in the order given, contiguously, and pads the header with spaces to a multiple
of 8 bytes (as the reference implementation does). BF16 is read/written as raw uint16 bit patterns.

    from st import read, write
    tensors = read("model.safetensors")            # dict name -> np.ndarray (header order)
    tensors, meta = read("m.safetensors", with_metadata=True)
    write("out.safetensors", {"w": np.zeros((2, 3), np.float32)}, metadata={"note": "x"})
    write_torch("out.safetensors", model.state_dict())
"""
import json
import struct

import numpy as np

DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": "<u2",  # raw bits
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}
_NP_TO_ST = {
    np.dtype("float64"): "F64",
    np.dtype("float32"): "F32",
    np.dtype("float16"): "F16",
    np.dtype("int64"): "I64",
    np.dtype("int32"): "I32",
    np.dtype("int16"): "I16",
    np.dtype("int8"): "I8",
    np.dtype("uint8"): "U8",
    np.dtype("bool"): "BOOL",
}


def read(path, with_metadata=False):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    data = memoryview(raw)[8 + n :]
    meta = header.pop("__metadata__", None)
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        arr = np.frombuffer(data[b:end], dtype=np.dtype(DTYPES[e["dtype"]])).reshape(e["shape"])
        out[name] = arr.copy()  # writable, native-endian view of little-endian data on LE hosts
    return (out, meta) if with_metadata else out


def write(path, tensors, metadata=None, dtypes=None):
    """tensors: dict name -> np.ndarray. dtypes: optional dict name -> safetensors dtype string
    (needed only for BF16, whose arrays are given as uint16 bit patterns)."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name, arr in tensors.items():
        arr = np.asarray(arr)
        st = (dtypes or {}).get(name) or _NP_TO_ST[arr.dtype]
        b = np.ascontiguousarray(arr, dtype=np.dtype(DTYPES[st])).tobytes()
        header[name] = {"dtype": st, "shape": list(arr.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def write_torch(path, state_dict, metadata=None):
    """Save a torch state_dict (torch names, torch layouts, torch dtypes: num_batches_tracked stays I64)."""
    import torch

    tensors, dtypes = {}, {}
    for k, v in state_dict.items():
        v = v.detach().cpu().contiguous()
        if v.dtype == torch.bfloat16:
            tensors[k] = v.view(torch.int16).numpy().view(np.uint16)
            dtypes[k] = "BF16"
        else:
            tensors[k] = v.numpy()
    write(path, tensors, metadata=metadata, dtypes=dtypes)


def read_torch(path):
    import torch

    return {k: torch.from_numpy(v) for k, v in read(path).items()}
