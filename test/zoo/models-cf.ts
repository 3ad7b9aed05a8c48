/**
 * Zoo models for issue 12 item 7 (recurrent layers, control flow) and grouped ConvTranspose: graphs built here,
 * whose symmetries follow from the construction. Each has its expected groups in expected/NAME.json. `ZOO_CF` has
 * the zoo's entry shape ({ name, what, load }), for the zoo table.
 */
import { GraphBuilder, attr } from '../../src/onnx/build.js';
import type { OnnxModel } from '../../src/onnx/model.js';
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
