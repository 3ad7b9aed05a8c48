/**
 * Uniform values in the tracer (src/graph/uniform.ts, issue 12 F1): torch exports a multi-layer LSTM with dynamic
 * axes with one zero tensor [layers, batch, H] (ConstantOfShape) sliced into each layer's h0/c0. All its entries are
 * equal, so it must not tie the layers' hidden units: each layer keeps its own group. A shared initial state that
 * is not uniform (a trained h0 initializer) still ties them, which is what makes the first test meaningful.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../src/onnx/build.js';
import type { OnnxModel } from '../src/onnx/model.js';
import type { Feed } from '../src/onnx/session.js';
import { checkInvariance, inferPermutationSpec, probeModel, sampleFeeds } from '../src/graph/index.js';
import { Tensor } from '../src/tensor/tensor.js';
import { randn, rng } from './helpers.js';

function weight(seed: number, shape: number[], scale = 0.5): Tensor {
  const r = rng(seed);
  return new Tensor(shape, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => randn(r) * scale));
}

const i64 = (values: number[]) => ({ dims: [values.length], int64: values });

/** Two stacked LSTMs (hidden 6) whose h0/c0 are slices [0:1] and [1:2] of one state tensor [2, batch, 6]. */
function stackedLstm(state: 'constant-of-shape' | 'initializer'): OnnxModel {
  const batch = state === 'initializer' ? 2 : 'batch';
  const g = new GraphBuilder(17)
    .input('x', [5, batch, 4])
    .initializer('W1', weight(1, [1, 24, 4]))
    .initializer('R1', weight(2, [1, 24, 6], 0.3))
    .initializer('W2', weight(3, [1, 24, 6]))
    .initializer('R2', weight(4, [1, 24, 6], 0.3))
    .initializer('w_out', weight(5, [6, 3]))
    .initializer('sq', i64([1]))
    .initializer('s0', i64([0]))
    .initializer('s1', i64([1]))
    .initializer('s2', i64([2]))
    .initializer('ax0', i64([0]));
  if (state === 'initializer') g.initializer('state', weight(6, [2, 2, 6]));
  else {
    // torch: Shape(x)[1] -> Concat([2], batch, [6]) -> ConstantOfShape (zeros)
    g.initializer('idx1', { dims: [], int64: [1] })
      .initializer('two', i64([2]))
      .initializer('six', i64([6]))
      .node('Shape', ['x'], ['xs'])
      .node('Gather', ['xs', 'idx1'], ['b'], { axis: 0 })
      .node('Unsqueeze', ['b', 'ax0'], ['b1'])
      .node('Concat', ['two', 'b1', 'six'], ['state_shape'], { axis: 0 })
      .node('ConstantOfShape', ['state_shape'], ['state'], {}, { name: 'zeros' });
  }
  return g
    .node('Slice', ['state', 's0', 's1', 'ax0'], ['h0a'])
    .node('Slice', ['state', 's0', 's1', 'ax0'], ['c0a'])
    .node('Slice', ['state', 's1', 's2', 'ax0'], ['h0b'])
    .node('Slice', ['state', 's1', 's2', 'ax0'], ['c0b'])
    .node('LSTM', ['x', 'W1', 'R1', '', '', 'h0a', 'c0a'], ['Y1'], { hidden_size: 6 }, { name: 'lstm1' })
    .node('Squeeze', ['Y1', 'sq'], ['x2'])
    .node('LSTM', ['x2', 'W2', 'R2', '', '', 'h0b', 'c0b'], ['Y2'], { hidden_size: 6 }, { name: 'lstm2' })
    .node('Squeeze', ['Y2', 'sq'], ['h2'])
    .node('MatMul', ['h2', 'w_out'], ['y'], {}, { name: 'head' })
    .output('y', [5, batch, 3])
    .build();
}

test('a zero initial state made by ConstantOfShape and sliced per layer ties nothing: one hidden group per LSTM layer', async () => {
  const model = stackedLstm('constant-of-shape');
  const r = await inferPermutationSpec(model, await probeModel(model));
  const p1 = r.spec.axes_to_perm['R1']?.[2];
  const p2 = r.spec.axes_to_perm['R2']?.[2];
  assert.ok(p1 && p2 && p1 !== p2, `two hidden groups, found ${p1} and ${p2}`);
  assert.equal(r.spec.axes_to_perm['W2']?.[2], p1, 'layer 2 reads layer 1\'s hidden units');
  assert.equal(r.spec.axes_to_perm['w_out']?.[0], p2);
  for (const name of [p1, p2]) assert.equal(r.groups.find((g) => g.name === name)?.size, 6);
  assert.ok(!(r.spec.frozen ?? []).some((f) => f.tensor === 'R2'), `R2 has no frozen axis: ${JSON.stringify(r.spec.frozen)}`);
  for (const seed of [1, 2]) {
    const rep = await checkInvariance(model, r.spec, sampleFeeds(model, 3, seed) as unknown as Record<string, Feed>, { seed });
    assert.ok(rep.equivalent && rep.maxRelError <= 1e-5, `seed ${seed}: ${rep.worst.name} moved by ${rep.worst.maxAbs}`);
  }
});

test('a trained (non-uniform) initial state shared by both layers still ties their hidden units', async () => {
  const model = stackedLstm('initializer');
  const r = await inferPermutationSpec(model, await probeModel(model));
  const p1 = r.spec.axes_to_perm['R1']?.[2];
  const p2 = r.spec.axes_to_perm['R2']?.[2];
  // the state's axis 2 is both layers' h0 axis: one permutation (or frozen), never two
  assert.equal(p1, p2);
  if (p1) {
    const rep = await checkInvariance(model, r.spec, sampleFeeds(model, 3, 1) as unknown as Record<string, Feed>, { seed: 1 });
    assert.ok(rep.equivalent, `${rep.worst.name} moved by ${rep.worst.maxAbs}`);
  }
});
