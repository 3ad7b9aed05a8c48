#!/usr/bin/python3
"""Reference loss/accuracy of the fixture models on fmnist_test1k, computed with torch from the state_dicts.

Each architecture is rebuilt as a torch module (MLP, residual CNN, tiny ViT), its safetensors state_dict is
loaded with a small numpy reader (the `safetensors` package is not needed), and the mean cross-entropy (float64
log-softmax of the float32 logits) and accuracy are computed on fmnist_test1k.safetensors. Before writing, each
rebuilt model is checked against meta.json on the full 10k test set (Fashion-MNIST idx files), so a wrong
reconstruction cannot produce a reference.

Usage: /usr/bin/python3 scripts/ref_eval.py [fixtures_dir] [out_dir]
Writes out_dir/eval_{mlp,resnet,vit}.json.
"""
import gzip
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FIX = sys.argv[1] if len(sys.argv) > 1 else '/work/shared/fixtures'
OUT = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), '..', 'test', 'refs')
IDX = '/usr/share/datasets/fashion-mnist'

NP_DTYPES = {'F32': np.float32, 'F64': np.float64, 'F16': np.float16, 'I64': np.int64, 'I32': np.int32, 'U8': np.uint8}


def read_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == '__metadata__':
            continue
        b, end = e['data_offsets']
        out[name] = np.frombuffer(data[b:end], NP_DTYPES[e['dtype']]).reshape(e['shape']).copy()
    return out


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(784, 128), nn.Linear(128, 128)])
        self.head = nn.Linear(128, 10)

    def forward(self, x):
        for l in self.layers:
            x = F.relu(l(x))
        return self.head(x)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(c)
        self.c2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return F.relu(x + self.b2(self.c2(F.relu(self.b1(self.c1(x))))))


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.block1 = Block(16)
        self.down = nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False)
        self.bnd = nn.BatchNorm2d(32)
        self.block2 = Block(32)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = x.reshape(-1, 1, 28, 28)
        x = self.block1(F.relu(self.bn(self.stem(x))))
        x = self.block2(F.relu(self.bnd(self.down(x))))
        return self.fc(x.mean(dim=(2, 3)))


class ViT(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(49, 32)
        self.pos = nn.Parameter(torch.zeros(1, 16, 32))
        self.enc = nn.ModuleList([nn.TransformerEncoderLayer(32, 2, 128, dropout=0.0, activation='gelu', norm_first=True, batch_first=True)])
        self.norm = nn.LayerNorm(32)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        b = x.shape[0]
        # 7x7 patches in row-major order: [b, 4, 7, 4, 7] -> [b, 4, 4, 7, 7] -> [b, 16, 49]
        x = x.reshape(b, 4, 7, 4, 7).permute(0, 1, 3, 2, 4).reshape(b, 16, 49)
        x = self.embed(x) + self.pos
        for layer in self.enc:
            x = layer(x)
        return self.head(self.norm(x).mean(dim=1))


def load(model, path):
    sd = {k: torch.from_numpy(v) for k, v in read_safetensors(path).items()}
    own = model.state_dict()
    for k, v in sd.items():
        if k.endswith('num_batches_tracked'):
            sd[k] = v.to(own[k].dtype)  # stored as F32 in the fixtures
    model.load_state_dict(sd, strict=True)
    return model.eval()


def metrics(model, x, y):
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).double()
    loss = F.cross_entropy(logits, torch.from_numpy(y).long()).item()
    acc = (logits.argmax(dim=1).numpy() == y).mean().item()
    return loss, acc


def read_idx_test():
    with gzip.open(os.path.join(IDX, 't10k-images-idx3-ubyte.gz')) as f:
        raw = f.read()
    x = (np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 784) / 255.0).astype(np.float32)
    with gzip.open(os.path.join(IDX, 't10k-labels-idx1-ubyte.gz')) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return x, y


def main():
    torch.set_num_threads(4)
    data = read_safetensors(os.path.join(FIX, 'fmnist_test1k.safetensors'))
    x, y = data['input'].astype(np.float32), data['label'].astype(np.int64)
    assert (y == data['label']).all(), 'labels must be integers'
    meta = json.load(open(os.path.join(FIX, 'meta.json')))
    full = read_idx_test() if os.path.isdir(IDX) else None
    for arch, cls in [('mlp', MLP), ('resnet', ResNet), ('vit', ViT)]:
        result = {'data': 'fmnist_test1k.safetensors', 'count': int(len(y)), 'models': {}}
        for seed in (0, 1):
            name = f'{arch}_small_seed{seed}'
            model = load(cls(), os.path.join(FIX, f'{name}.safetensors'))
            if full is not None:
                l10, a10 = metrics(model, *full)
                m = meta[name]
                assert abs(l10 - m['test_loss']) < 1e-4 and abs(a10 - m['test_acc']) < 1e-4, f'{name}: rebuilt model gives {l10}, {a10} on 10k, meta.json {m}'
            loss, acc = metrics(model, x, y)
            result['models'][name] = {'loss': loss, 'accuracy': acc}
            print(name, result['models'][name], '(10k matches meta.json)' if full is not None else '(meta.json not checked)')
        with open(os.path.join(OUT, f'eval_{arch}.json'), 'w') as f:
            json.dump(result, f, indent=1)
            f.write('\n')


if __name__ == '__main__':
    main()
