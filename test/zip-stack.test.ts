import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { loadOnnx, type OnnxModel } from '../src/onnx/model.js';
import { GraphBuilder } from '../src/onnx/build.js';
import { createSession } from '../src/onnx/session.js';
import { Tensor } from '../src/tensor/tensor.js';
import { openDataset } from '../src/data/open.js';
import { stackModels } from '../src/zip/stack-models.js';
import { FIXTURES, assertAllClose, assertBasinError, rng } from './helpers.js';

const TEST = path.join(FIXTURES, 'fmnist_test1k.safetensors');

async function testImages(n: number): Promise<Tensor> {
  const ds = await openDataset(TEST, { limit: n });
  for await (const b of ds.batches(n)) return b.input;
  throw new Error('no data');
}

async function run(m: OnnxModel, x: Tensor): Promise<Tensor> {
  const s = await createSession(m);
  try {
    return (await s.run({ [m.inputs[0]!.name]: x }))[m.outputs[0]!.name]!;
  } finally {
    await s.release();
  }
}

/** [N, C] and [N, C] side by side: [N, 2C]. */
function sideBySide(x: Tensor, y: Tensor): Float32Array {
  const c = x.shape[1]!;
  const n = x.shape[0]!;
  const out = new Float32Array(2 * n * c);
  for (let i = 0; i < n; i++) {
    out.set(x.data.subarray(i * c, (i + 1) * c), 2 * i * c);
    out.set(y.data.subarray(i * c, (i + 1) * c), (2 * i + 1) * c);
  }
  return out;
}

const PAIRS: [string, string, string][] = [
  ['MLP', 'mlp_small_seed0.onnx', 'mlp_small_seed1.onnx'],
  ['ResNet, BN folded', 'resnet_small_seed0.onnx', 'resnet_small_seed1.onnx'],
  ['ResNet, BN kept', 'resnet_small_seed0_bn.onnx', 'resnet_small_seed1_bn.onnx'],
  ['ViT, decomposed LayerNorm (opset 14)', 'vit_small_seed0.onnx', 'vit_small_seed1.onnx'],
  ['ViT, LayerNormalization (opset 17)', 'vit_small_seed0_opset17.onnx', 'vit_small_seed1_opset17.onnx'],
];

for (const [what, fa, fb] of PAIRS) {
  test(`stackModels (${what}): the stacked model's output halves are A's and B's outputs on test images (concat), their mean (mean)`, async () => {
    const a = await loadOnnx(path.join(FIXTURES, fa));
    const b = await loadOnnx(path.join(FIXTURES, fb));
    const x = await testImages(100);
    const ya = await run(a, x);
    const yb = await run(b, x);
    const concat = await stackModels(a, b);
    const ys = await run(concat.model, x);
    assert.deepEqual(ys.shape, [100, 20]);
    assertAllClose(ys.data, sideBySide(ya, yb), { rtol: 1e-4, atol: 1e-5, label: `${what} concat` });
    assert.ok(concat.check.outputs[0]!.relError < 1e-5, JSON.stringify(concat.check));
    // twice the hidden units: every group of A is twice as wide in the stacked model's own spec
    const params = (m: OnnxModel) => m.weights().reduce((s, w) => s + m.weightInfo(w).shape.reduce((p, d) => p * d, 1), 0);
    assert.ok(params(concat.model) > 1.9 * params(a), `${params(concat.model)} vs ${params(a)}`);
    const mean = await stackModels(a, b, { outputs: 'mean' });
    const ym = await run(mean.model, x);
    assert.deepEqual(ym.shape, [100, 10]);
    assertAllClose(ym.data, ya.data.map((v, i) => (v + yb.data[i]!) / 2), { rtol: 1e-4, atol: 1e-5, label: `${what} mean` });
  });
}

test('stackModels: MLP weights are placed block by block (first layer [A; B], hidden and head block-diagonal, mean head halved with averaged bias)', async () => {
  const a = await loadOnnx(path.join(FIXTURES, 'mlp_small_seed0.onnx'));
  const b = await loadOnnx(path.join(FIXTURES, 'mlp_small_seed1.onnx'));
  const s = (await stackModels(a, b)).model;
  const w0 = s.getFloat32('layers.0.weight');
  assert.deepEqual(w0.shape, [256, 784]);
  assert.deepEqual(Array.from(w0.data.subarray(0, 128 * 784)), Array.from(a.getFloat32('layers.0.weight').data));
  assert.deepEqual(Array.from(w0.data.subarray(128 * 784)), Array.from(b.getFloat32('layers.0.weight').data));
  const w1 = s.getFloat32('layers.1.weight');
  const a1 = a.getFloat32('layers.1.weight').data;
  const b1 = b.getFloat32('layers.1.weight').data;
  assert.deepEqual(w1.shape, [256, 256]);
  for (let i = 0; i < 256; i++) {
    for (let j = 0; j < 256; j++) {
      const v = w1.data[i * 256 + j]!;
      const want = i < 128 && j < 128 ? a1[i * 128 + j]! : i >= 128 && j >= 128 ? b1[(i - 128) * 128 + (j - 128)]! : 0;
      if (v !== want) assert.fail(`layers.1.weight[${i}, ${j}] = ${v}, expected ${want}`);
    }
  }
  assert.deepEqual(Array.from(s.getFloat32('head.bias').data), [...a.getFloat32('head.bias').data, ...b.getFloat32('head.bias').data]);
  const m = (await stackModels(a, b, { outputs: 'mean' })).model;
  const h = m.getFloat32('head.weight');
  assert.deepEqual(h.shape, [10, 256]);
  const ha = a.getFloat32('head.weight').data;
  const hb = b.getFloat32('head.weight').data;
  for (let o = 0; o < 10; o++) {
    for (let j = 0; j < 128; j++) {
      assert.equal(h.data[o * 256 + j], ha[o * 128 + j]! / 2);
      assert.equal(h.data[o * 256 + 128 + j], hb[o * 128 + j]! / 2);
    }
  }
  assertAllClose(m.getFloat32('head.bias').data, a.getFloat32('head.bias').data.map((v, i) => (v + b.getFloat32('head.bias').data[i]!) / 2), { rtol: 1e-7 });
});

test('stackModels: the ViT stack has twice the heads and splits each LayerNorm per model', async () => {
  const a = await loadOnnx(path.join(FIXTURES, 'vit_small_seed0_opset17.onnx'));
  const b = await loadOnnx(path.join(FIXTURES, 'vit_small_seed1_opset17.onnx'));
  const r = await stackModels(a, b);
  assert.deepEqual(r.rewritten.sort(), ['/enc.0/norm1/LayerNormalization', '/enc.0/norm2/LayerNormalization', '/norm/LayerNormalization']);
  assert.deepEqual(r.model.weightInfo('onnx::MatMul_175').shape, [64, 192]);
  // the in-projection's output is Q_A Q_B | K_A K_B | V_A V_B: A's query columns first, then B's
  const w = r.model.getFloat32('onnx::MatMul_175').data;
  const wa = a.getFloat32('onnx::MatMul_175').data;
  const wb = b.getFloat32('onnx::MatMul_175').data;
  assert.equal(w[0 * 192 + 32], 0, 'A rows do not feed B query columns');
  assert.equal(w[0 * 192 + 64], wa[0 * 96 + 32], 'A key column 0 follows both query blocks');
  assert.equal(w[32 * 192 + 96], wb[0 * 96 + 32], 'B key column 0 follows A key columns');
  const heads = r.groups.filter((g) => g.kind === 'heads');
  assert.equal(heads[0]!.heads!.count, 2);
});

function linearNet(seed: number, dims: readonly number[], { bias = false }: { bias?: boolean } = {}): OnnxModel {
  const r = rng(seed);
  const g = new GraphBuilder(17);
  g.input('x', ['batch', dims[0]!]);
  let prev = 'x';
  for (let i = 0; i + 1 < dims.length; i++) {
    const [din, dout] = [dims[i]!, dims[i + 1]!];
    // the seed's init: torch.rand(d_out, d_in) / sqrt(d_out)
    const w = new Float32Array(dout * din).map(() => r() / Math.sqrt(dout));
    g.initializer(`layers.${i}.weight`, new Tensor([dout, din], w));
    const ins = [prev, `layers.${i}.weight`];
    if (bias) {
      g.initializer(`layers.${i}.bias`, new Tensor([dout], new Float32Array(dout).map(() => r() - 0.5)));
      ins.push(`layers.${i}.bias`);
    }
    const out = i + 2 === dims.length ? 'y' : `h${i}`;
    g.node('Gemm', ins, [out], { transB: 1 });
    prev = out;
  }
  g.output('y', ['batch', dims[dims.length - 1]!]);
  return g.build();
}

test("stackModels, inputs 'separate' (the seed's form): two 1000→512→2048→1000 linear nets on their own inputs, stacked block-diagonally, exact", async () => {
  const a = linearNet(1, [1000, 512, 2048, 1000]);
  const b = linearNet(2, [1000, 512, 2048, 1000]);
  const r = await stackModels(a, b, { inputs: 'separate', checkSamples: 16 });
  assert.deepEqual(r.model.weightInfo('layers.0.weight').shape, [1024, 2000]);
  assert.deepEqual(r.model.weightInfo('layers.1.weight').shape, [4096, 1024]);
  assert.deepEqual(r.model.weightInfo('layers.2.weight').shape, [2000, 4096]);
  const rand = rng(7);
  const n = 32;
  const x1 = new Tensor([n, 1000], new Float32Array(n * 1000).map(() => rand() / Math.sqrt(1000)));
  const x2 = new Tensor([n, 1000], new Float32Array(n * 1000).map(() => rand() / Math.sqrt(1000)));
  const x = new Tensor([n, 2000], sideBySide(x1, x2));
  const y = await run(r.model, x);
  assertAllClose(y.data, sideBySide(await run(a, x1), await run(b, x2)), { rtol: 1e-4, atol: 1e-6, label: 'seed stack' });
});

test('stackModels refuses two different architectures, naming what differs, before any compute', async () => {
  const a = linearNet(1, [6, 5, 3]);
  const wider = linearNet(2, [6, 7, 3]);
  const e = await assertBasinError(() => stackModels(a, wider), 'models_mismatch');
  assert.match(e.message, /'layers\.0\.weight' has shape \[5, 6\] in one and \[7, 6\] in the other/);
  const withBias = linearNet(3, [6, 5, 3], { bias: true });
  const e2 = await assertBasinError(() => stackModels(a, withBias), 'models_mismatch');
  assert.match(e2.message, /node 'Gemm_0' \(Gemm\) reads or writes other values/);
  const mlp = await loadOnnx(path.join(FIXTURES, 'mlp_small_seed0.onnx'));
  const resnet = await loadOnnx(path.join(FIXTURES, 'resnet_small_seed0.onnx'));
  const e3 = await assertBasinError(() => stackModels(mlp, resnet), 'models_mismatch');
  assert.match(e3.message, /not one architecture/);
});

test('stackModels refuses a tensor in no permutation group whose values differ (it cannot be one value for both)', async () => {
  const build = (scale: number) => {
    const g = new GraphBuilder(17);
    g.input('x', ['batch', 4]);
    g.initializer('w', new Tensor([3, 4], new Float32Array(12).fill(0.5)));
    g.initializer('s', new Tensor([], new Float32Array([scale])));
    g.node('Gemm', ['x', 'w'], ['h'], { transB: 1 });
    g.node('Mul', ['h', 's'], ['y']);
    g.output('y', ['batch', 3]);
    return g.build();
  };
  const e = await assertBasinError(() => stackModels(build(2), build(3)), 'models_mismatch');
  assert.match(e.message, /tensor 's' is in no permutation group/);
  // equal shared scalars are fine: one value serves both halves
  const r = await stackModels(build(2), build(2));
  assert.deepEqual(r.model.weightInfo('w').shape, [6, 4]);
});
