/**
 * Grouped ConvTranspose (W [C_in, C_out/group, k...]) in the tracer, beyond the zoo's grouped-conv-transpose model:
 * depthwise (one channel per group) links input and output channels; one input channel per group feeding several
 * outputs freezes the input side; each case keeps the function under random permutations.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../src/onnx/build.js';
import type { OnnxModel } from '../src/onnx/model.js';
import type { Feed } from '../src/onnx/session.js';
import { checkInvariance, inferPermutationSpec, probeModel, sampleFeeds, type InferResult } from '../src/graph/index.js';
import { Tensor } from '../src/tensor/tensor.js';
import { randn, rng } from './helpers.js';

function weight(seed: number, shape: number[]): Tensor {
  const r = rng(seed);
  return new Tensor(shape, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => randn(r) * 0.5));
}

/** x [b, 3, 4, 4] -> Conv 1x1 to 6 -> Relu -> ConvTranspose (group 6, W [6, out/6, 2, 2]) -> Relu -> Conv 1x1 to 2. */
function net(perGroup: number): OnnxModel {
  return new GraphBuilder(17)
    .input('x', ['batch', 3, 4, 4])
    .initializer('w1', weight(1, [6, 3, 1, 1]))
    .initializer('wt', weight(2, [6, perGroup, 2, 2]))
    .initializer('bt', weight(3, [6 * perGroup]))
    .initializer('w2', weight(4, [2, 6 * perGroup, 1, 1]))
    .node('Conv', ['x', 'w1'], ['h1'], {}, { name: 'conv1' })
    .node('Relu', ['h1'], ['a1'])
    .node('ConvTranspose', ['a1', 'wt', 'bt'], ['ht'], { group: 6, strides: [2, 2] }, { name: 'deconv' })
    .node('Relu', ['ht'], ['at'])
    .node('Conv', ['at', 'w2'], ['y'], {}, { name: 'conv2' })
    .output('y', ['batch', 2, 8, 8])
    .build();
}

async function checked(model: OnnxModel): Promise<InferResult> {
  const r = inferPermutationSpec(model, await probeModel(model));
  for (const seed of [1, 2]) {
    const rep = await checkInvariance(model, r.spec, sampleFeeds(model, 2, seed) as unknown as Record<string, Feed>, { seed });
    assert.ok(rep.equivalent && rep.maxRelError <= 1e-5, `seed ${seed}: ${rep.worst.name} moved by ${rep.worst.maxAbs}`);
  }
  return r;
}

test('depthwise ConvTranspose: input channel j is output channel j, one group through it', async () => {
  const r = await checked(net(1));
  const p = r.spec.axes_to_perm['w1']?.[0];
  assert.ok(p);
  for (const [t, axis] of [['wt', 0], ['bt', 0], ['w2', 1]] as const) assert.equal(r.spec.axes_to_perm[t]?.[axis], p, `${t}:${axis}`);
});

test('ConvTranspose with one input channel per group and 2 outputs each: inputs frozen, outputs move within groups', async () => {
  const r = await checked(net(2));
  assert.equal(r.spec.axes_to_perm['w1']?.[0], null);
  assert.match(r.spec.frozen?.find((f) => f.tensor === 'w1' && f.axis === 0)?.reason ?? '', /one per group/);
  const out = r.spec.axes_to_perm['bt']?.[0];
  assert.equal(out, `cat(${Array(6).fill(r.spec.axes_to_perm['wt']?.[1]).join(',')})`);
});
