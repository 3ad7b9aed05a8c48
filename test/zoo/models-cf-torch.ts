/**
 * Zoo models for weights stored inside subgraphs and for real torch recurrent / control-flow exports (issue 12,
 * item 7): the torch files are written by scripts/zoo/export_cf.py (small, committed beside this file); the
 * If model with weights inside its branches is built here. Each has its expected groups in expected/NAME.json.
 */
import path from 'node:path';
import { GraphBuilder, attr } from '../../src/onnx/build.js';
import { loadOnnx, type OnnxModel } from '../../src/onnx/model.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { randn, rng } from '../helpers.js';

const HERE = new URL('../../../test/zoo/', import.meta.url).pathname;

/** Random weights fixed by their name. */
function weight(name: string, shape: number[], scale = 0.5): Tensor {
  let h = 2166136261;
  for (const c of name) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
  const r = rng(h);
  const n = shape.reduce((a, b) => a * b, 1);
  return new Tensor(shape, Float32Array.from({ length: n }, () => randn(r) * scale));
}

/**
 * x [batch, 4] -> MatMul to 8 -> Relu -> If (sum(x) > 0) -> MatMul to 3. Each branch keeps its own weights: the
 * then branch an initializer MatMul to 6 -> Relu -> a Constant-node MatMul to 5 inside a nested If (both inner
 * branches hold their own initializer); the else branch a Constant-node MatMul to 5 -> Tanh; each branch scales its output by its own Constant.
 * Groups: 8 (fc0 into both branches), 6 (inside the then branch), 5 (out of both branches, into the head).
 */
export function ifInnerWeights(): OnnxModel {
  const deep = (tag: string): GraphBuilder =>
    new GraphBuilder(17).initializer(`w_deep_${tag}`, weight(`iw.deep_${tag}`, [6, 5])).node('MatMul', ['t1', `w_deep_${tag}`], [`d_${tag}`], {}, { name: `deep_${tag}` }).output(`d_${tag}`);
  const then = new GraphBuilder(17)
    .initializer('w_then', weight('iw.then', [8, 6]))
    .constant('scale_then', new Tensor([5], Float32Array.from([1, 2, 3, 4, 5])))
    .node('MatMul', ['a0', 'w_then'], ['t0'], {}, { name: 'then_fc' })
    .node('Relu', ['t0'], ['t1'])
    .node('If', ['cond'], ['t2'], { then_branch: attr.graph(deep('a')), else_branch: attr.graph(deep('b')) }, { name: 'inner_if' })
    .node('Mul', ['t2', 'scale_then'], ['t3'])
    .output('t3');
  const other = new GraphBuilder(17)
    .constant('w_else', weight('iw.else', [8, 5]), { storage: 'typed' })
    .constant('scale_else', new Tensor([5], Float32Array.from([5, 4, 3, 2, 1])))
    .node('MatMul', ['a0', 'w_else'], ['e0'], {}, { name: 'else_fc' })
    .node('Tanh', ['e0'], ['e1'])
    .node('Mul', ['e1', 'scale_else'], ['e2'])
    .output('e2');
  return new GraphBuilder(17)
    .input('x', ['batch', 4])
    .initializer('w0', weight('iw.w0', [4, 8]))
    .initializer('w2', weight('iw.w2', [5, 3]))
    .initializer('zero', new Tensor([], Float32Array.from([0])))
    .node('MatMul', ['x', 'w0'], ['h0'], {}, { name: 'fc0' })
    .node('Relu', ['h0'], ['a0'])
    .node('ReduceSum', ['x'], ['s'], { keepdims: 0 })
    .node('Greater', ['s', 'zero'], ['cond'])
    .node('If', ['cond'], ['z'], { then_branch: attr.graph(then), else_branch: attr.graph(other) }, { name: 'branch' })
    .node('MatMul', ['z', 'w2'], ['y'], {}, { name: 'head' })
    .output('y', ['batch', 3])
    .build();
}

const fromFile = (file: string) => async () => loadOnnx(path.join(HERE, file));
const built = (f: () => OnnxModel) => async () => f();

export const ZOO_CF_TORCH: readonly { name: string; what: string; load(): Promise<OnnxModel | undefined> }[] = [
  { name: 'if-inner-weights', what: 'If whose branches (and a nested If) hold their own weights: initializers, Constant nodes (built)', load: built(ifInnerWeights) },
  { name: 'torch-lstm-2layer', what: 'torch nn.LSTM, 2 layers, batch_first, between Linears (export, opset 17)', load: fromFile('torch-lstm-2layer.onnx') },
  { name: 'torch-gru-bidir', what: 'torch nn.GRU, bidirectional, seq first, between Linears (export, opset 17)', load: fromFile('torch-gru-bidir.onnx') },
  { name: 'torch-rnn-2layer', what: 'torch nn.RNN, 2 layers, bidirectional, batch_first, last step read (export, opset 17)', load: fromFile('torch-rnn-2layer.onnx') },
  { name: 'torch-script-if', what: 'torch.jit.script MLP with a data-dependent if: an MLP in one branch (export, opset 17)', load: fromFile('torch-script-if.onnx') },
];
