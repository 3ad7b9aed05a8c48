import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GraphBuilder, attr } from '../src/onnx/build.js';
import type { OnnxModel } from '../src/onnx/model.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { openFeeds } from '../src/data/feed-source.js';
import { Tensor } from '../src/tensor/tensor.js';
import { captureLayerStats, type LayerStats } from '../src/factorize/capture.js';
import { findLayers } from '../src/factorize/layers.js';
import { ConvStats } from '../src/factorize/conv-stats.js';
import { factorizeConv } from '../src/factorize/factorize-conv.js';
import { factorizeModel } from '../src/factorize/factorize-model.js';
import { budgetPolicy, rankLayerOf } from '../src/factorize/rank-policies.js';
import { assertAllClose, randn, rng } from './helpers.js';

async function stats(model: OnnxModel, dir: string, name: string, shape: number[], seed: number): Promise<{ file: string; st: LayerStats[] }> {
  const r = rng(seed);
  const per = shape.slice(1).reduce((a, b) => a * b, 1);
  const file = path.join(dir, `${name}.safetensors`);
  // inputs of decaying variance per feature, so that the curve falls gradually
  const data = Float32Array.from({ length: shape[0]! * per }, (_, i) => randn(r) * Math.pow(0.85, i % per));
  await writeSafetensors(file, [{ name: 'x', dtype: 'F32', shape, data }]);
  const feeds = await openFeeds(file, model, { limit: shape[0]! });
  return { file, st: await captureLayerStats(model, findLayers(model), feeds) };
}

test('rankLayerOf: a Gemm storing Wᵀ (transB = 1, alpha, beta) has the curve of the MatMul+Add computing the same map', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-policy-'));
  const d = 12;
  const m = 9;
  const r = rng(3);
  const wt = Float32Array.from({ length: m * d }, () => randn(r)); // [m, d]
  const c = Float32Array.from({ length: m }, () => randn(r));
  const gemm = new GraphBuilder(17);
  gemm.input('x', ['batch', d]);
  gemm.initializer('w', new Tensor([m, d], wt));
  gemm.initializer('c', new Tensor([m], c));
  gemm.node('Gemm', ['x', 'w', 'c'], ['y'], { transB: 1, alpha: attr.float(2), beta: attr.float(0.5) }, { name: 'g' });
  gemm.output('y', ['batch', m]);
  const mm = new GraphBuilder(17);
  mm.input('x', ['batch', d]);
  const w = new Float32Array(d * m);
  for (let i = 0; i < d; i++) for (let j = 0; j < m; j++) w[i * m + j] = 2 * wt[j * d + i]!;
  mm.initializer('w', new Tensor([d, m], w));
  mm.initializer('c', new Tensor([m], c.map((v) => 0.5 * v)));
  mm.node('MatMul', ['x', 'w'], ['xw'], {}, { name: 'g' });
  mm.node('Add', ['xw', 'c'], ['y']);
  mm.output('y', ['batch', m]);
  const a = gemm.build();
  const b = mm.build();
  const la = await rankLayerOf(a, (await stats(a, dir, 'a', [300, d], 5)).st[0]!);
  const lb = await rankLayerOf(b, (await stats(b, dir, 'b', [300, d], 5)).st[0]!);
  assert.equal(la.op, 'matmul');
  assert.equal(la.inFeatures, d);
  assert.equal(la.outFeatures, m);
  assert.equal(la.bias, true);
  assert.equal(la.curve.length, m + 1);
  assertAllClose(Float64Array.from(la.curve), Float64Array.from(lb.curve), { rtol: 1e-6, atol: 1e-9 });
  // full rank reproduces the layer; the curve does not rise with rank
  assert.ok(la.curve[m]! < 1e-9, `nmse at full rank ${la.curve[m]}`);
  for (let k = 1; k <= m; k++) assert.ok(la.curve[k]! <= la.curve[k - 1]! + 1e-12);
  assert.ok(la.curve[0]! > 0.5);
});

test('rankLayerOf: a grouped Conv (group 2, 3×3, pads) curve at index k is the nmse factorizeConv reports at total rank 2k (closed form)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-policy-'));
  const r = rng(11);
  const [C, O, g] = [4, 6, 2];
  const w = Float32Array.from({ length: O * (C / g) * 9 }, () => randn(r));
  const b = Float32Array.from({ length: O }, () => randn(r));
  const gb = new GraphBuilder(17);
  gb.input('x', ['batch', C, 6, 6]);
  gb.initializer('w', new Tensor([O, C / g, 3, 3], w));
  gb.initializer('b', new Tensor([O], b));
  gb.node('Conv', ['x', 'w', 'b'], ['y'], { group: g, pads: [1, 1, 1, 1], kernel_shape: [3, 3] }, { name: 'conv' });
  gb.output('y', ['batch', O, 6, 6]);
  const model = gb.build();
  const { st } = await stats(model, dir, 'c', [40, C, 6, 6], 2);
  const layer = await rankLayerOf(model, st[0]!);
  assert.equal(layer.op, 'conv');
  assert.equal(layer.groups, 2);
  assert.equal(layer.kernelArea, 9);
  assert.equal(layer.curve.length, O / g + 1);
  const cs = st[0]!.stats;
  assert.ok(cs instanceof ConvStats);
  for (const k of [1, 2]) {
    const sol = await factorizeConv(cs, { w: Float64Array.from(w), bias: Float64Array.from(b) }, k * g, { iters: 0 });
    assertAllClose([layer.curve[k]!], [sol.nmse], { rtol: 1e-6, atol: 1e-12 });
  }
});

test('budgetPolicy through factorizeModel: {maxNmse} gives each layer the smallest rank under the ceiling, {keep} stays in budget', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-policy-'));
  const r = rng(8);
  const d = 16;
  const h = 14;
  const m = 12;
  const gb = new GraphBuilder(17);
  gb.input('x', ['batch', d]);
  gb.initializer('w1', new Tensor([d, h], Float32Array.from({ length: d * h }, () => randn(r))));
  gb.initializer('w2', new Tensor([h, m], Float32Array.from({ length: h * m }, () => randn(r))));
  gb.node('MatMul', ['x', 'w1'], ['h'], {}, { name: 'l1' });
  gb.node('Tanh', ['h'], ['t']);
  gb.node('MatMul', ['t', 'w2'], ['y'], {}, { name: 'l2' });
  gb.output('y', ['batch', m]);
  const model = gb.build();
  const { file, st } = await stats(model, dir, 'x', [400, d], 4);
  const curves = await Promise.all(st.map((s) => rankLayerOf(model, s)));
  const E = 0.05;
  const res = await factorizeModel(model, file, { policy: budgetPolicy(model, { maxNmse: E }), minFeatures: 0, iters: 0 });
  for (const [i, name] of ['l1', 'l2'].entries()) {
    const rep = res.layers.find((l) => l.name === name)!;
    const c = curves[i]!.curve;
    // the smallest rank whose curve value is <= E, from the curve read here
    let k = 1;
    while (k < c.length && c[k]! > E) k++;
    assert.equal(rep.rank, k, `${name}: curve ${Array.from(c).map((v) => v.toFixed(3))}`);
    assert.ok(rep.nmse! <= E * (1 + 1e-6), `${name} nmse ${rep.nmse}`);
    assert.match(rep.reason ?? '', /nmse <= 0.05/);
  }
  const keep = await factorizeModel(model, file, { policy: budgetPolicy(model, { keep: 0.5 }), minFeatures: 0, iters: 0 });
  const dense = d * h + h * m;
  const after = keep.layers.reduce((s, l) => s + l.paramsAfter, 0);
  assert.ok(after <= 0.5 * dense, `${after} > 0.5 · ${dense}: ${JSON.stringify(keep.layers.map((l) => [l.rank, l.paramsAfter, l.kept, l.reason]))}`);
});
