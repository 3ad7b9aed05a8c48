#!/bin/sh
# Bench inputs (git-ignored, not committed): two independently trained Fashion-MNIST MLPs
# 784 -> 512 -> 512 -> 512 -> 10 (ReLU; names layers.{0,1,2}.weight/bias, head.weight/bias), seeds 0 and 1,
# 5 epochs of Adam lr 1e-3, batch 128, written as bench/out/mlp512_seed{0,1}.{safetensors,onnx},
# plus their permutation spec bench/out/mlp512_spec.json (docs/spec-format.md).
# Run from anywhere:  sh scripts/train_bench_mlps.sh     (a few minutes on 2 cores)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-/usr/bin/python3}
OUT="$ROOT/bench/out"
mkdir -p "$OUT"
for seed in 0 1; do
  "$PY" "$ROOT/scripts/train_fmnist.py" --arch mlp --widths 512,512,512 --seed "$seed" --epochs 5 \
    --out "$OUT/mlp512_seed$seed" --spec "$OUT/mlp512_spec.json" | tee "$OUT/mlp512_seed$seed.log"
done
ls -l "$OUT"/mlp512_*
