#!/bin/sh
# Rebuild assets/demo/: two independently trained Fashion-MNIST MLPs (784 -> 256 -> 256 -> 10, ReLU, seeds 0 and 1,
# 4 epochs of Adam lr 1e-3, batch 128, all 60k training images) exported as ONNX, plus two labelled data slices.
# Their safetensors state_dicts go to bench/out/demo/ (git-ignored: with them the folder would exceed its 6 MB budget;
# the ONNX files hold the same tensors under the same names as Gemm initializers).
# Run from anywhere:  sh scripts/train_demo.sh      (about 2 minutes on 2 cores)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-/usr/bin/python3}
DEMO="$ROOT/assets/demo"
SIDE="$ROOT/bench/out/demo"
mkdir -p "$DEMO" "$SIDE"
for pair in a:0 b:1; do
  name=${pair%%:*}; seed=${pair##*:}
  "$PY" "$ROOT/scripts/train_fmnist.py" --arch mlp --widths 256,256 --seed "$seed" --epochs 4 \
    --out "$SIDE/mlp_$name" | tee "$SIDE/mlp_$name.log"
  cp "$SIDE/mlp_$name.onnx" "$DEMO/mlp_$name.onnx"
done
# Data slices: `input` F16 [1000, 784] (pixel/255 rounded to nearest-even half), `label` I64 [1000].
"$PY" - "$ROOT" <<'PYEOF'
import sys, os
import numpy as np
root = sys.argv[1]
sys.path.insert(0, os.path.join(root, "scripts"))
import st
from train_fmnist import load_split
for split, name in (("t10k", "test"), ("train", "train")):
    x, y = load_split(split)
    meta = {"source": f"Fashion-MNIST {split} images 0..999 (first 1000, file order)",
            "input": "pixel/255 as float32, then float16 (round to nearest even); [1000, 784] row-major 28x28",
            "label": "class index 0..9 as int64"}
    st.write(os.path.join(root, "assets", "demo", f"{name}.safetensors"),
             {"input": x[:1000].astype(np.float16), "label": y[:1000].astype(np.int64)}, metadata=meta)
    print(name, "slice written")
PYEOF
ls -l "$DEMO"
du -sb "$DEMO"
