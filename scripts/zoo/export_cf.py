"""Small PyTorch exports of recurrent layers and data-dependent control flow (issue 12, item 7), written to
test/zoo/*.onnx for the regression zoo (test/zoo/models-cf-torch.ts).

Run from the repo root with a Python that has torch (1.13 here): random init, fixed seeds, opset 17.

    python3 scripts/zoo/export_cf.py

- torch-lstm-2layer:  Linear -> nn.LSTM(2 layers, batch_first) -> Linear on every step
- torch-gru-bidir:    Linear -> nn.GRU(bidirectional, seq first) -> Linear on every step
- torch-rnn-2layer:   Linear -> nn.RNN(tanh, 2 layers, batch_first, bidirectional) -> Linear on the last step
- torch-script-if:    torch.jit.script: Linear -> Relu -> `if x.sum() > 0` an MLP, else another -> Linear
  (the branches' weights are stored inside the If's subgraphs)
"""
import torch
from torch import nn

OPSET = 17


class RecurrentNet(nn.Module):
    def __init__(self, cell, inp=5, emb=6, hidden=8, out=3, last_only=False, **kw):
        super().__init__()
        self.embed = nn.Linear(inp, emb)
        self.rnn = cell(emb, hidden, **kw)
        d = 2 if kw.get('bidirectional') else 1
        self.head = nn.Linear(d * hidden, out)
        self.batch_first = kw.get('batch_first', False)
        self.last_only = last_only

    def forward(self, x):
        y, _ = self.rnn(torch.tanh(self.embed(x)))
        if self.last_only:
            y = y[:, -1] if self.batch_first else y[-1]
        return self.head(y)


class ScriptIf(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc0 = nn.Linear(4, 8)
        self.then_fc1 = nn.Linear(8, 12)
        self.then_fc2 = nn.Linear(12, 6)
        self.else_fc = nn.Linear(8, 6)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        h = torch.relu(self.fc0(x))
        if bool(x.sum() > 0):
            z = self.then_fc2(torch.relu(self.then_fc1(h)))
        else:
            z = torch.tanh(self.else_fc(h))
        return self.head(z)


def export(model, x, name, axes):
    model.eval()
    path = f'test/zoo/{name}.onnx'
    torch.onnx.export(model, x, path, opset_version=OPSET, input_names=['x'], output_names=['y'],
                      dynamic_axes={'x': axes, 'y': axes})
    print('wrote', path)


def main():
    torch.manual_seed(0)
    export(RecurrentNet(nn.LSTM, num_layers=2, batch_first=True), torch.randn(2, 7, 5), 'torch-lstm-2layer', {0: 'batch'})
    torch.manual_seed(1)
    export(RecurrentNet(nn.GRU, bidirectional=True), torch.randn(7, 2, 5), 'torch-gru-bidir', {1: 'batch'})
    torch.manual_seed(2)
    export(RecurrentNet(nn.RNN, num_layers=2, batch_first=True, bidirectional=True, last_only=True), torch.randn(2, 7, 5),
           'torch-rnn-2layer', {0: 'batch'})
    torch.manual_seed(3)
    scripted = torch.jit.script(ScriptIf())
    export(scripted, torch.randn(2, 4), 'torch-script-if', {0: 'batch'})


if __name__ == '__main__':
    main()
