"""A small torch-quantized CNN for the graph-coverage zoo (issue 12, item 6), written to test/zoo/torch-qcnn-micro.onnx.

Eager-mode post-training static quantization (torch.ao.quantization, fbgemm qconfig: per-channel int8 weights, Conv+ReLU fused (torch cannot export a fused linear_relu),
uint8 activations), exported at opset 13: torch writes the QDQ form (QuantizeLinear/DequantizeLinear around float
Conv/Gemm, int8 weights and per-channel scales as Constant nodes, zero points from ConstantOfShape). Random init and
calibration data, fixed seed.

    python3 scripts/zoo/export_q.py
"""
import torch
from torch import nn

torch.manual_seed(0)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = torch.ao.quantization.QuantStub()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.r1 = nn.ReLU()
        self.c2 = nn.Conv2d(8, 6, 3, padding=1)
        self.r2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(6, 10)
        self.r3 = nn.ReLU()
        self.fc2 = nn.Linear(10, 5)
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x):
        x = self.quant(x)
        x = self.r2(self.c2(self.r1(self.c1(x))))
        x = self.pool(x).flatten(1)
        return self.dequant(self.fc2(self.r3(self.fc1(x))))


m = Net().eval()
m.qconfig = torch.ao.quantization.get_default_qconfig('fbgemm')
torch.ao.quantization.fuse_modules(m, [['c1', 'r1'], ['c2', 'r2']], inplace=True)
prepared = torch.ao.quantization.prepare(m)
for _ in range(8):
    prepared(torch.rand(4, 3, 8, 8))
q = torch.ao.quantization.convert(prepared)
torch.onnx.export(q, torch.rand(1, 3, 8, 8), 'test/zoo/torch-qcnn-micro.onnx', opset_version=13,
                  input_names=['x'], output_names=['y'])
