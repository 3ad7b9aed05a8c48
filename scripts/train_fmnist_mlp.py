#!/usr/bin/python3
"""The issue's Fashion-MNIST check model: a 784-512-512-512-10 ReLU MLP trained with torch (scripts/train_fmnist.py,
5 epochs, seed 0), exported to ONNX, plus its calibration and test data as safetensors (`input` F32 [N, 784] in
[0,1], `label` F32 [N]). Nothing here is committed: the default output folder bench/out/ is git-ignored.

    /usr/bin/python3 scripts/train_fmnist_mlp.py [--out bench/out] [--epochs 5] [--calib 2000]

Writes OUT/fmnist_mlp512.onnx (+ .safetensors), OUT/fmnist_train2k.safetensors (the first --calib training
images) and OUT/fmnist_test10k.safetensors (the full test set). Then check it with
    basin factorize OUT/fmnist_mlp512.onnx --data OUT/fmnist_train2k.safetensors --rank 0.25 \
        --eval OUT/fmnist_test10k.safetensors -o OUT/fmnist_mlp512_r025.onnx
    /usr/bin/python3 scripts/ref_factorize_time.py OUT/fmnist_mlp512.onnx --data OUT/fmnist_train2k.safetensors \
        --rank 0.25 --eval OUT/fmnist_test10k.safetensors
"""
import argparse
import os
import subprocess
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st  # noqa: E402
from train_fmnist import load_split  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "bench", "out"))
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--calib", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    model = os.path.join(args.out, "fmnist_mlp512")
    if not os.path.exists(model + ".onnx"):
        subprocess.run([sys.executable, os.path.join(HERE, "train_fmnist.py"), "--arch", "mlp", "--widths", "512,512,512",
                        "--seed", str(args.seed), "--epochs", str(args.epochs), "--out", model], check=True)
    x, y = load_split("train")
    st.write(os.path.join(args.out, f"fmnist_train{args.calib // 1000}k.safetensors"), {"input": x[: args.calib], "label": y[: args.calib].astype("float32")})
    x, y = load_split("t10k")
    st.write(os.path.join(args.out, "fmnist_test10k.safetensors"), {"input": x, "label": y.astype("float32")})
    print("wrote", model + ".onnx", "and the data in", args.out)


if __name__ == "__main__":
    main()
