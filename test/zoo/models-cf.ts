/**
 * Zoo models for issue 12 item 7 (recurrent layers, control flow) and grouped ConvTranspose: graphs built here,
 * whose symmetries follow from the construction. Each has its expected groups in expected/NAME.json. `ZOO_CF` has
 * the zoo's entry shape ({ name, what, load }), for the zoo table.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { GraphBuilder, attr } from '../../src/onnx/build.js';
import { loadOnnx, type OnnxModel } from '../../src/onnx/model.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { randn, rng } from '../helpers.js';

/** Random weights fixed by their name (models.ts's rule; a copy, since models.ts imports this file). */
function weight(name: string, shape: number[], scale = 0.5): Tensor {
  let h = 2166136261;
  for (const c of name) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
  const r = rng(h);
  const n = shape.reduce((a, b) => a * b, 1);
  return new Tensor(shape, Float32Array.from({ length: n }, () => randn(r) * scale));
}

const i64 = (values: number[]) => ({ dims: [values.length], int64: values });

export interface RecurrentOptions {
  op: 'LSTM' | 'GRU' | 'RNN';
  bidirectional?: boolean;
  /** 0: X [seq, batch, in]; 1: X [batch, seq, in]. */
  layout?: 0 | 1;
  /** LSTM peepholes P [D, 3·H]. */
  peepholes?: boolean;
  linearBeforeReset?: 0 | 1;
}

/**
 * x [batch, 5, 4] -> MatMul to 6 -> Tanh -> recurrent layer (hidden 8, a bias, D directions) -> Y reshaped to
 * [batch, 5, D·8] -> MatMul to 3 (y), and Y_h -> [batch, D·8] -> MatMul to 2 (y_last). Groups: the 6 features
 * (MLP hidden, W's input axis) and the 8 hidden units (every gate; both directions share them).
 */
export function recurrentNet({ op, bidirectional = false, layout = 0, peepholes = false, linearBeforeReset = 0 }: RecurrentOptions): OnnxModel {
  const D = bidirectional ? 2 : 1;
  const G = { LSTM: 4, GRU: 3, RNN: 1 }[op];
  const H = 8;
  const key = `${op}.${D}.${layout}.${peepholes ? 'p' : ''}${linearBeforeReset}`;
  const g = new GraphBuilder(17)
    .input('x', ['batch', 5, 4])
    .initializer('w_in', weight(`${key}.w_in`, [4, 6]))
    .initializer('W', weight(`${key}.W`, [D, G * H, 6]))
    .initializer('R', weight(`${key}.R`, [D, G * H, H], 0.3))
    .initializer('B', weight(`${key}.B`, [D, 2 * G * H]))
    .initializer('w_out', weight(`${key}.w_out`, [D * H, 3]))
    .initializer('w_last', weight(`${key}.w_last`, [D * H, 2]))
    .initializer('seq_shape', i64([0, 0, D * H]))
    .initializer('last_shape', i64([0, D * H]));
  if (peepholes) g.initializer('P', weight(`${key}.P`, [D, 3 * H]));
  g.node('MatMul', ['x', 'w_in'], ['e'], {}, { name: 'embed' }).node('Tanh', ['e'], ['a']);
  if (layout === 0) g.node('Transpose', ['a'], ['xs'], { perm: [1, 0, 2] });
  const attrs: Record<string, number | string> = { hidden_size: H, layout };
  if (bidirectional) attrs['direction'] = 'bidirectional';
  if (op === 'GRU') attrs['linear_before_reset'] = linearBeforeReset;
  const inputs = ['W', 'R', 'B', '', ''];
  if (op === 'LSTM') inputs.push('', peepholes ? 'P' : '');
  const outputs = op === 'LSTM' ? ['Y', 'Y_h', 'Y_c'] : ['Y', 'Y_h'];
  g.node(op, [layout === 0 ? 'xs' : 'a', ...inputs], outputs, attrs, { name: op.toLowerCase() });
  // Y -> [batch, seq, D, H]; Y_h -> [batch, D, H]
  if (layout === 0) {
    g.node('Transpose', ['Y'], ['Yb'], { perm: [2, 0, 1, 3] });
    g.node('Transpose', ['Y_h'], ['Yhb'], { perm: [1, 0, 2] });
  }
  return g
    .node('Reshape', [layout === 0 ? 'Yb' : 'Y', 'seq_shape'], ['ys'])
    .node('MatMul', ['ys', 'w_out'], ['y'], {}, { name: 'head' })
    .node('Reshape', [layout === 0 ? 'Yhb' : 'Y_h', 'last_shape'], ['yl'])
    .node('MatMul', ['yl', 'w_last'], ['y_last'], {}, { name: 'head_last' })
    .output('y', ['batch', 5, 3])
    .output('y_last', ['batch', 2])
    .build();
}

const f32 = (name: string, shape: number[], scale = 0.5): Tensor => weight(name, shape, scale);

/**
 * x [batch, 4] -> MatMul to 8 -> Relu -> If (sum(x) > 0): then MatMul to 6 -> Relu, else MatMul to 6 -> Tanh ->
 * MatMul to 3. The branches read the main graph's weights by name. Groups: 8 (into both branches) and 6 (out of
 * both: the branches agree).
 */
export function ifMlp(): OnnxModel {
  const then = new GraphBuilder(17).node('MatMul', ['a0', 'w_then'], ['t0'], {}, { name: 'then_fc' }).node('Relu', ['t0'], ['t1']).output('t1');
  const other = new GraphBuilder(17).node('MatMul', ['a0', 'w_else'], ['e0'], {}, { name: 'else_fc' }).node('Tanh', ['e0'], ['e1']).output('e1');
  return new GraphBuilder(17)
    .input('x', ['batch', 4])
    .initializer('w0', f32('if.w0', [4, 8]))
    .initializer('w_then', f32('if.w_then', [8, 6]))
    .initializer('w_else', f32('if.w_else', [8, 6]))
    .initializer('w2', f32('if.w2', [6, 3]))
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

/**
 * x [batch, 4] -> MatMul to 8 = h; Loop 3 times carrying h: h <- tanh(h + MatMul(relu(MatMul(h, w_a 8x12)), w_b
 * 12x8)), also emitted per iteration; y = MatMul(h_final, w_out), y_seq = MatMul(mean over iterations, w_seq).
 * Groups: the carried 8 (a fixed point: the same at entry and exit) and the body's 12.
 */
export function loopCarried(): OnnxModel {
  const body = new GraphBuilder(17)
    .input('iter', [], 'I64')
    .input('cond_in', [], 'BOOL')
    .input('h_in', ['batch', 8])
    .node('MatMul', ['h_in', 'w_a'], ['b0'], {}, { name: 'body_fc_a' })
    .node('Relu', ['b0'], ['b1'])
    .node('MatMul', ['b1', 'w_b'], ['b2'], {}, { name: 'body_fc_b' })
    .node('Add', ['h_in', 'b2'], ['b3'])
    .node('Tanh', ['b3'], ['h_out'])
    .node('Identity', ['cond_in'], ['cond_out'])
    .node('Identity', ['h_out'], ['h_emit'])
    .output('cond_out', [], 'BOOL')
    .output('h_out', ['batch', 8])
    .output('h_emit', ['batch', 8]);
  return new GraphBuilder(17)
    .input('x', ['batch', 4])
    .initializer('w_in', f32('loop.w_in', [4, 8]))
    .initializer('w_a', f32('loop.w_a', [8, 12]))
    .initializer('w_b', f32('loop.w_b', [12, 8]))
    .initializer('w_out', f32('loop.w_out', [8, 3]))
    .initializer('w_seq', f32('loop.w_seq', [8, 2]))
    .initializer('trips', { dims: [], int64: [3] })
    .node('MatMul', ['x', 'w_in'], ['h0'], {}, { name: 'embed' })
    .node('Loop', ['trips', '', 'h0'], ['h_final', 'h_all'], { body: attr.graph(body) }, { name: 'loop' })
    .node('MatMul', ['h_final', 'w_out'], ['y'], {}, { name: 'head' })
    .node('ReduceMean', ['h_all'], ['h_mean'], { axes: [0], keepdims: 0 })
    .node('MatMul', ['h_mean', 'w_seq'], ['y_seq'], {}, { name: 'head_seq' })
    .output('y', ['batch', 3])
    .output('y_seq', ['batch', 2])
    .build();
}

/**
 * x [batch, 5, 4]; state h0 = MatMul(mean over time of x, w_h0) [batch, 8]; Scan over axis 1 of x: u =
 * tanh(MatMul(x_t, w_x) + MatMul(relu(MatMul(h, w_a 8x12)), w_b)), state <- u, emit relu(MatMul(u, w_y)) [batch, 6]
 * stacked on axis 1; y = MatMul(ys, w_o), y_last = MatMul(h_final, w_f). Groups: the state's 8, the body's 12
 * and the emitted 6.
 */
export function scanCell(): OnnxModel {
  const body = new GraphBuilder(17)
    .input('h_in', ['batch', 8])
    .input('x_t', ['batch', 4])
    .node('MatMul', ['x_t', 'w_x'], ['c0'], {}, { name: 'cell_in' })
    .node('MatMul', ['h_in', 'w_a'], ['c1'], {}, { name: 'cell_fc_a' })
    .node('Relu', ['c1'], ['c2'])
    .node('MatMul', ['c2', 'w_b'], ['c3'], {}, { name: 'cell_fc_b' })
    .node('Add', ['c0', 'c3'], ['c4'])
    .node('Tanh', ['c4'], ['u'])
    .node('MatMul', ['u', 'w_y'], ['c5'], {}, { name: 'cell_out' })
    .node('Relu', ['c5'], ['y_t'])
    .output('u', ['batch', 8])
    .output('y_t', ['batch', 6]);
  return new GraphBuilder(17)
    .input('x', ['batch', 5, 4])
    .initializer('w_h0', f32('scan.w_h0', [4, 8]))
    .initializer('w_x', f32('scan.w_x', [4, 8]))
    .initializer('w_a', f32('scan.w_a', [8, 12]))
    .initializer('w_b', f32('scan.w_b', [12, 8]))
    .initializer('w_y', f32('scan.w_y', [8, 6]))
    .initializer('w_o', f32('scan.w_o', [6, 3]))
    .initializer('w_f', f32('scan.w_f', [8, 2]))
    .node('ReduceMean', ['x'], ['xm'], { axes: [1], keepdims: 0 })
    .node('MatMul', ['xm', 'w_h0'], ['h0'], {}, { name: 'init_state' })
    .node('Scan', ['h0', 'x'], ['h_final', 'ys'], { body: attr.graph(body), num_scan_inputs: 1, scan_input_axes: [1], scan_output_axes: [1] }, { name: 'scan' })
    .node('MatMul', ['ys', 'w_o'], ['y'], {}, { name: 'head' })
    .node('MatMul', ['h_final', 'w_f'], ['y_last'], {}, { name: 'head_last' })
    .output('y', ['batch', 5, 3])
    .output('y_last', ['batch', 2])
    .build();
}

/**
 * x [batch, 4, 5, 5] -> Conv 1x1 to 8 -> Relu -> ConvTranspose 8 -> 12, group 4, 3x3 stride 2 -> Relu -> Conv 1x1 to
 * 3 -> mean. ConvTranspose W [8, 3, 3, 3]: input channels [4 groups of 2], output [4 groups of 3].
 */
export function groupedConvTranspose(): OnnxModel {
  return new GraphBuilder(17)
    .input('x', ['batch', 4, 5, 5])
    .initializer('w1', f32('gct.w1', [8, 4, 1, 1]))
    .initializer('b1', f32('gct.b1', [8]))
    .initializer('wt', f32('gct.wt', [8, 3, 3, 3]))
    .initializer('bt', f32('gct.bt', [12]))
    .initializer('w2', f32('gct.w2', [3, 12, 1, 1]))
    .node('Conv', ['x', 'w1', 'b1'], ['h1'], {}, { name: 'conv1' })
    .node('Relu', ['h1'], ['a1'])
    .node('ConvTranspose', ['a1', 'wt', 'bt'], ['ht'], { group: 4, strides: [2, 2] }, { name: 'deconv' })
    .node('Relu', ['ht'], ['at'])
    .node('Conv', ['at', 'w2'], ['h2'], {}, { name: 'conv2' })
    .node('ReduceMean', ['h2'], ['y'], { axes: [2, 3], keepdims: 0 })
    .output('y', ['batch', 3])
    .build();
}

/** Committed exports sit next to this file in test/zoo (dist/test/zoo at run time: three levels up is the repo). */
const HERE = new URL('../../../test/zoo/', import.meta.url).pathname;
function fromFile(file: string): () => Promise<OnnxModel | undefined> {
  return async () => (existsSync(file) ? loadOnnx(file) : undefined);
}
const built = (f: () => OnnxModel) => async (): Promise<OnnxModel | undefined> => f();

export const ZOO_CF: readonly { name: string; what: string; load(): Promise<OnnxModel | undefined> }[] = [
  { name: 'lstm', what: 'MatMul, LSTM (hidden 8, bias), Y and Y_h read by MatMuls (built)', load: built(() => recurrentNet({ op: 'LSTM' })) },
  { name: 'lstm-bidirectional', what: 'bidirectional LSTM with peepholes, Y reshaped to [batch, seq, 2·8] (built)', load: built(() => recurrentNet({ op: 'LSTM', bidirectional: true, peepholes: true })) },
  { name: 'gru', what: 'MatMul, GRU (linear_before_reset 0), Y and Y_h read by MatMuls (built)', load: built(() => recurrentNet({ op: 'GRU' })) },
  { name: 'gru-bidirectional-lbr', what: 'bidirectional GRU, linear_before_reset 1 (built)', load: built(() => recurrentNet({ op: 'GRU', bidirectional: true, linearBeforeReset: 1 })) },
  { name: 'rnn', what: 'MatMul, RNN (tanh), Y and Y_h read by MatMuls (built)', load: built(() => recurrentNet({ op: 'RNN' })) },
  { name: 'if-mlp', what: 'MLP whose second layer is an If with a different layer in each branch (built)', load: built(ifMlp) },
  { name: 'loop-carried', what: 'Loop carrying a hidden state through a residual MLP body, with a scan output (built)', load: built(loopCarried) },
  { name: 'scan-cell', what: 'Scan over time with a state and an emitted value per step (built)', load: built(scanCell) },
  { name: 'torch-lstm2-dynamic', what: 'torch 2-layer nn.LSTM with dynamic axes: zero h0/c0 by ConstantOfShape, sliced per layer', load: fromFile(path.join(HERE, 'torch-lstm2-dynamic.onnx')) },
  { name: 'grouped-conv-transpose', what: 'Conv 1x1, grouped ConvTranspose (group 4, stride 2), Conv 1x1 (built)', load: built(groupedConvTranspose) },
];
