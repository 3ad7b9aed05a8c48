/**
 * Recurrent layers in the tracer (issue 12, item 7), beyond the zoo's standard checks (test/zoo.test.ts: LSTM,
 * bidirectional LSTM with peepholes, GRU with linear_before_reset 0/1, RNN: groups, invariance, exact recovery):
 * states fed from outside freeze the hidden units, stacked layers get one group each, and a spec may put one
 * permutation on both axes of a tensor only where it lists that tensor as recurrent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../src/onnx/build.js';
import type { OnnxModel } from '../src/onnx/model.js';
import type { Feed } from '../src/onnx/session.js';
import { checkInvariance, inferPermutationSpec, probeModel, sampleFeeds, type InferResult } from '../src/graph/index.js';
import { PermutationSpec } from '../src/spec/spec.js';
import { Tensor } from '../src/tensor/tensor.js';
import { assertBasinError, randn, rng } from './helpers.js';

function weight(seed: number, shape: number[], scale = 0.5): Tensor {
  const r = rng(seed);
  return new Tensor(shape, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => randn(r) * scale));
}

async function infer(model: OnnxModel, feeds?: Record<string, Feed>): Promise<InferResult> {
  return inferPermutationSpec(model, await probeModel(model, feeds));
}

test('an LSTM whose initial states are graph inputs keeps its hidden units (they would change what h0/c0 mean)', async () => {
  const model = new GraphBuilder(17)
    .input('x', [5, 2, 4])
    .input('h0', [1, 2, 8])
    .input('c0', [1, 2, 8])
    .initializer('W', weight(1, [1, 32, 4]))
    .initializer('R', weight(2, [1, 32, 8], 0.3))
    .initializer('w_out', weight(3, [8, 3]))
    .node('LSTM', ['x', 'W', 'R', '', '', 'h0', 'c0'], ['Y', 'Y_h'], { hidden_size: 8 }, { name: 'lstm' })
    .node('MatMul', ['Y_h', 'w_out'], ['y'], {}, { name: 'head' })
    .output('y', [1, 2, 3])
    .build();
  const r = await infer(model);
  assert.equal(r.groups.length, 0);
  for (const [t, axis] of [['R', 2], ['w_out', 0]] as const) {
    const f = r.spec.frozen?.find((x) => x.tensor === t && x.axis === axis);
    assert.match(f?.reason ?? '', /reaches graph input '(h0|c0)'/, `${t}:${axis}`);
  }
  assert.equal(r.spec.axes_to_perm['W']?.[1], null, 'the gate blocks of W are frozen with the hidden units');
});

test('stacked LSTMs: one hidden group per layer, the second layer\'s input axis follows the first\'s hidden units', async () => {
  const model = new GraphBuilder(17)
    .input('x', [5, 'batch', 4])
    .initializer('W1', weight(11, [1, 24, 4]))
    .initializer('R1', weight(12, [1, 24, 6], 0.3))
    .initializer('B1', weight(13, [1, 48]))
    .initializer('W2', weight(14, [1, 40, 6]))
    .initializer('R2', weight(15, [1, 40, 10], 0.3))
    .initializer('w_out', weight(16, [10, 3]))
    .initializer('axes', { dims: [1], int64: [1] })
    .node('LSTM', ['x', 'W1', 'R1', 'B1'], ['Y1'], { hidden_size: 6 }, { name: 'lstm1' })
    .node('Squeeze', ['Y1', 'axes'], ['x2'])
    .node('LSTM', ['x2', 'W2', 'R2'], ['Y2'], { hidden_size: 10 }, { name: 'lstm2' })
    .node('Squeeze', ['Y2', 'axes'], ['h2'])
    .node('MatMul', ['h2', 'w_out'], ['y'], {}, { name: 'head' })
    .output('y', [5, 'batch', 3])
    .build();
  const r = await infer(model);
  const p1 = r.spec.axes_to_perm['R1']?.[2];
  const p2 = r.spec.axes_to_perm['R2']?.[2];
  assert.ok(p1 && p2 && p1 !== p2, `two hidden groups, found ${p1} and ${p2}`);
  assert.equal(r.spec.axes_to_perm['W2']?.[2], p1);
  assert.equal(r.spec.axes_to_perm['w_out']?.[0], p2);
  assert.deepEqual(r.spec.perms?.[p1!]?.recurrent, ['R1']);
  assert.match(r.groups.find((g) => g.name === p2)!.description, /recurrent hidden units of lstm2/);
  for (const seed of [1, 2]) {
    const rep = await checkInvariance(model, r.spec, sampleFeeds(model, 3, seed) as unknown as Record<string, Feed>, { seed });
    assert.ok(rep.equivalent && rep.maxRelError <= 1e-5, `seed ${seed}: ${rep.worst.name} moved by ${rep.worst.maxAbs}`);
  }
});

test('a spec may put one permutation on both axes of a tensor only where the permutation lists it as recurrent', async () => {
  const shapes = new Map<string, readonly number[]>([['R', [1, 8, 4]], ['S', [4, 4]]]);
  const axes = { R: [null, 'cat(P,P)', 'P'], S: ['P', 'P'] };
  const perms = { 'cat(P,P)': { size: 8, concat: ['P', 'P'] }, P: { size: 4, recurrent: ['R'] } };
  const e = await assertBasinError(() => PermutationSpec.fromJson({ axes_to_perm: axes, perms }, shapes), 'spec_repeated_perm');
  assert.match(e.message, /'S'/);
  const ok = PermutationSpec.fromJson({ axes_to_perm: { R: axes.R }, perms }, shapes);
  assert.deepEqual(ok.permToAxes.get('P')!.map((p) => `${p.tensor}:${p.axis}`), ['R:1', 'R:1', 'R:2']);
  await assertBasinError(() => PermutationSpec.fromJson({ axes_to_perm: { R: axes.R }, perms: { ...perms, P: { size: 4, recurrent: 'R' } } }, shapes), 'spec_invalid');
});
