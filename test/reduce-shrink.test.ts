/**
 * shrinkModel and parseWidthSpec: exactness where the math allows (full width, activations of rank ≤ the kept
 * width, PCA on linear networks, embedding tables), error falling with width, the numpy reference at half width,
 * and every bad request refused before compute.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GraphBuilder } from '../src/onnx/build.js';
import { loadOnnx, type OnnxModel } from '../src/onnx/model.js';
import { createSession, type Feed } from '../src/onnx/session.js';
import { writeSafetensors, SafetensorsFile } from '../src/io/safetensors.js';
import { Tensor } from '../src/tensor/tensor.js';
import { inferSpec } from '../src/graph/infer-spec.js';
import { shrinkModel } from '../src/reduce/shrink-model.js';
import { parseWidthSpec } from '../src/reduce/width-spec.js';
import { FIXTURES, assertAllClose, assertBasinError, randn, rng } from './helpers.js';

const MLP = path.join(FIXTURES, 'mlp_small_seed0.onnx');
const TRAIN = path.join(FIXTURES, 'fmnist_train4k.safetensors');
const TEST = path.join(FIXTURES, 'fmnist_test1k.safetensors');
const dir = mkdtempSync(path.join(tmpdir(), 'basin-shrink-'));

/** The first n test images [n, 784] and their labels. */
async function testImages(n: number): Promise<{ x: Tensor; labels: Float32Array }> {
  const st = await SafetensorsFile.open(TEST);
  try {
    const scale = st.entry('input').dtype === 'U8' ? 1 / 255 : 1;
    const src = (await st.readFloat32('input')).data;
    return { x: new Tensor([n, 784], Float32Array.from(src.subarray(0, n * 784), (v) => v * scale)), labels: (await st.readFloat32('label')).data.subarray(0, n) };
  } finally {
    await st.close();
  }
}

async function run(model: OnnxModel, feeds: Record<string, Feed>): Promise<Float32Array> {
  const s = await createSession(model);
  try {
    return Object.values(await s.run(feeds))[0]!.data;
  } finally {
    await s.release();
  }
}

function nmse(a: Float32Array, b: Float32Array): number {
  let mean = 0;
  for (const v of b) mean += v;
  mean /= b.length;
  let e = 0;
  let v2 = 0;
  for (let i = 0; i < a.length; i++) (e += (a[i]! - b[i]!) ** 2, v2 += (b[i]! - mean) ** 2);
  return e / v2;
}

function accuracy(logits: Float32Array, labels: Float32Array, classes = 10): number {
  let ok = 0;
  for (let i = 0; i < labels.length; i++) {
    const row = logits.subarray(i * classes, (i + 1) * classes);
    if (row.indexOf(Math.max(...row)) === labels[i]) ok++;
  }
  return ok / labels.length;
}

async function randomData(name: string, n: number, shape: number[], seed: number): Promise<string> {
  const r = rng(seed);
  const per = shape.reduce((a, b) => a * b, 1);
  const file = path.join(dir, `${name}.safetensors`);
  await writeSafetensors(file, [{ name: 'input', dtype: 'F32', shape: [n, ...shape], data: Float32Array.from({ length: n * per }, () => randn(r)) }]);
  return file;
}

const normal = (n: number, r: () => number): Float32Array => Float32Array.from({ length: n }, () => randn(r));

test('parseWidthSpec: per group, a fraction for all, a factor; unknown and derived groups and bad values named', async () => {
  const groups = (await inferSpec(await loadOnnx(MLP))).groups;
  assert.deepEqual([...parseWidthSpec('P_0=64,P_1=0.25', groups)], [['P_0', 64], ['P_1', 32]]);
  assert.deepEqual([...parseWidthSpec('0.5', groups)], [['P_0', 64], ['P_1', 64]]);
  assert.deepEqual([...parseWidthSpec('1.5x', groups, new Map([['P_0', 100], ['P_1', 128]]))], [['P_0', 150], ['P_1', 192]]);
  const e = await assertBasinError(() => parseWidthSpec('P_9=3', groups), 'invalid_argument');
  assert.match(e.message, /'P_9'/);
  const z = await assertBasinError(() => parseWidthSpec('P_1=0', groups), 'invalid_argument');
  assert.match(z.message, /'P_1'/);
  await assertBasinError(() => parseWidthSpec('P_1=abc', groups), 'invalid_argument');
  const vit = (await inferSpec(await loadOnnx(path.join(FIXTURES, 'vit_small_seed0.onnx')))).groups;
  const h = await assertBasinError(() => parseWidthSpec('P_1=24', vit), 'invalid_argument');
  assert.match(h.message, /head size 16/);
  const d = await assertBasinError(() => parseWidthSpec('cat(P_1,P_1,P_2)=48', vit), 'invalid_argument');
  assert.match(d.message, /derived/);
});

test('parseWidthSpec refuses a fractional number of units for one group (P_0=64.5), naming the group and the value; 0.5 and 64 stay valid', async () => {
  const groups = (await inferSpec(await loadOnnx(MLP))).groups;
  const e = await assertBasinError(() => parseWidthSpec('P_0=64.5', groups), 'invalid_argument');
  assert.match(e.message, /group 'P_0' .*'64\.5' is a fractional number of units/);
  assert.deepEqual([...parseWidthSpec('P_0=0.5,P_1=64', groups)], [['P_0', 64], ['P_1', 64]]);
});

test('shrinkModel refuses bad requests before any statistics: width above the current one, heads, PCA on BatchNorm groups, no data', async () => {
  const mlp = await loadOnnx(MLP);
  const big = await assertBasinError(() => shrinkModel(mlp, TRAIN, { widths: new Map([['P_1', 129]]) }), 'invalid_argument');
  assert.match(big.message, /'P_1'/);
  await assertBasinError(() => shrinkModel(mlp, null, { widths: new Map([['P_1', 64]]) }), 'data_required');
  const bn = await loadOnnx(path.join(FIXTURES, 'resnet_small_seed0_bn.onnx'));
  const pca = await assertBasinError(() => shrinkModel(bn, TRAIN, { widths: new Map([['P_1', 8]]), method: 'pca-act' }), 'invalid_argument');
  assert.match(pca.message, /'P_1'.*BatchNormalization/);
  const vit = await loadOnnx(path.join(FIXTURES, 'vit_small_seed0.onnx'));
  const heads = await assertBasinError(() => shrinkModel(vit, TRAIN, { widths: new Map([['P_2', 20]]) }), 'invalid_argument');
  assert.match(heads.message, /'P_2'.*head size 16/);
});

test('at full width every method reproduces the MLP fixture (test images, float rounding)', async () => {
  const mlp = await loadOnnx(MLP);
  const { x } = await testImages(200);
  const ref = await run(mlp, { input: x });
  for (const method of ['select', 'pca-act', 'pca-weight'] as const) {
    const r = await shrinkModel(mlp, TRAIN, { widths: new Map([['P_0', 128], ['P_1', 128]]), method, feed: { limit: 500 } });
    const y = await run(r.model, { input: x });
    assertAllClose(y, ref, { rtol: 1e-4, atol: 1e-4, label: method });
    assert.equal(r.paramsAfter, r.paramsBefore);
  }
});

test('select + refit is exact when the hidden activations have rank ≤ the kept width (scaled copies behind ReLU)', async () => {
  const r = rng(3);
  const n = 12;
  const w1 = new Float32Array(10 * 2 * n);
  const b1 = new Float32Array(2 * n);
  const base = normal(10 * n, r);
  const bb = normal(n, r);
  // units n … 2n−1 are 2.5 × units 0 … n−1: ReLU(2.5·z) = 2.5·ReLU(z), so the activations have rank ≤ n
  for (let i = 0; i < 10; i++) for (let j = 0; j < n; j++) (w1[i * 2 * n + j] = base[i * n + j]!, w1[i * 2 * n + n + j] = 2.5 * base[i * n + j]!);
  for (let j = 0; j < n; j++) (b1[j] = bb[j]!, b1[n + j] = 2.5 * bb[j]!);
  const g = new GraphBuilder(17);
  g.input('input', ['batch', 10]);
  g.initializer('w1', new Tensor([10, 2 * n], w1)).initializer('b1', new Tensor([2 * n], b1));
  g.initializer('w2', new Tensor([2 * n, 7], normal(2 * n * 7, r))).initializer('b2', new Tensor([7], normal(7, r)));
  g.node('MatMul', ['input', 'w1'], ['h0']).node('Add', ['h0', 'b1'], ['h1']).node('Relu', ['h1'], ['h2']).node('MatMul', ['h2', 'w2'], ['y0']).node('Add', ['y0', 'b2'], ['y']);
  g.output('y', ['batch', 7]);
  const model = g.build();
  const data = await randomData('rankdef', 400, [10], 4);
  const res = await shrinkModel(model, data, { widths: new Map([['P_0', n]]) });
  assert.equal(res.groups[0]!.exact, true);
  assert.deepEqual(res.model.weightInfo('w1').shape, [10, n]);
  const x = new Tensor([50, 10], normal(500, rng(9))); // inputs the calibration never saw
  assertAllClose(await run(res.model, { input: x }), await run(model, { input: x }), { rtol: 1e-4, atol: 1e-4 });
  // one unit fewer than the rank is not exact
  const less = await shrinkModel(model, data, { widths: new Map([['P_0', n - 1]]) });
  assert.equal(less.groups[0]!.exact, false);
  assert.ok(less.groups[0]!.outputNmse! > 1e-6, `nmse ${less.groups[0]!.outputNmse}`);
});

test('exact is claimed only when established: with fewer calibration samples than units the same rank-deficient step is "fitted", naming the sample count', async () => {
  const r = rng(3);
  const n = 12;
  const w1 = new Float32Array(10 * 2 * n);
  const base = normal(10 * n, r);
  for (let i = 0; i < 10; i++) for (let j = 0; j < n; j++) (w1[i * 2 * n + j] = base[i * n + j]!, w1[i * 2 * n + n + j] = 2.5 * base[i * n + j]!);
  const g = new GraphBuilder(17);
  g.input('input', ['batch', 10]);
  g.initializer('w1', new Tensor([10, 2 * n], w1)).initializer('w2', new Tensor([2 * n, 7], normal(2 * n * 7, r)));
  g.node('MatMul', ['input', 'w1'], ['h0']).node('Relu', ['h0'], ['h2']).node('MatMul', ['h2', 'w2'], ['y']);
  g.output('y', ['batch', 7]);
  const model = g.build();
  // 10 samples for 24 units: the activation rank (≤ 9) says nothing about the network
  const few = await shrinkModel(model, await randomData('few', 10, [10], 5), { widths: new Map([['P_0', n]]) });
  assert.equal(few.groups[0]!.exact, false);
  assert.match(few.groups[0]!.reason ?? '', /10 calibration sample\(s\) for 24 units/);
  const enough = await shrinkModel(model, await randomData('enough', 200, [10], 5), { widths: new Map([['P_0', n]]) });
  assert.equal(enough.groups[0]!.exact, true, enough.groups[0]!.reason);
});

test('a residual stream and a block hidden group reduced together: each consumer refitted against its original pre-activation on the reduced stream; exact when both have rank ≤ the kept width', async () => {
  // x → s1 = ReLU(x·W0) (stream, 2n units, units n+j = 2.5·unit j) → h = ReLU(s1·W1) (2k units, same copies)
  //   → s2 = ReLU(s1 + h·W2) (W2's columns copied the same way, so s2 keeps the copies) → y = s2·W3
  const r = rng(21);
  const n = 6;
  const k = 5;
  const copies = (rows: number, half: number): Float32Array => {
    const b = normal(rows * half, r);
    const w = new Float32Array(rows * 2 * half);
    for (let i = 0; i < rows; i++) for (let j = 0; j < half; j++) (w[i * 2 * half + j] = b[i * half + j]!, w[i * 2 * half + half + j] = 2.5 * b[i * half + j]!);
    return w;
  };
  const g = new GraphBuilder(17);
  g.input('input', ['batch', 8]);
  g.initializer('w0', new Tensor([8, 2 * n], copies(8, n)));
  g.initializer('w1', new Tensor([2 * n, 2 * k], copies(2 * n, k)));
  g.initializer('w2', new Tensor([2 * k, 2 * n], copies(2 * k, n)));
  g.initializer('w3', new Tensor([2 * n, 4], normal(2 * n * 4, r)));
  g.node('MatMul', ['input', 'w0'], ['a0']).node('Relu', ['a0'], ['s1']);
  g.node('MatMul', ['s1', 'w1'], ['a1']).node('Relu', ['a1'], ['h']);
  g.node('MatMul', ['h', 'w2'], ['a2']).node('Add', ['s1', 'a2'], ['a3']).node('Relu', ['a3'], ['s2']);
  g.node('MatMul', ['s2', 'w3'], ['y']);
  g.output('y', ['batch', 4]);
  const model = g.build();
  const groups = (await inferSpec(model)).groups;
  const stream = groups.find((x) => x.size === 2 * n)!;
  const hidden = groups.find((x) => x.size === 2 * k)!;
  const data = await randomData('residual', 300, [8], 22);
  const res = await shrinkModel(model, data, { widths: new Map([[stream.name, n], [hidden.name, k]]) });
  assert.deepEqual(res.model.weightInfo('w2').shape, [k, n]);
  const x = new Tensor([40, 8], normal(320, rng(23)));
  assertAllClose(await run(res.model, { input: x }), await run(model, { input: x }), { rtol: 1e-4, atol: 1e-4 });
  for (const gr of res.groups) assert.equal(gr.exact, true, `${gr.group}: ${gr.reason}`);
  // the hidden group at its full width after the stream: its consumer w2 (outputs already reduced) keeps its
  // current weights along the directions the data never excite (the copies), read at the kept output positions
  const full = await shrinkModel(model, data, { widths: new Map([[stream.name, n], [hidden.name, 2 * k]]) });
  assertAllClose(await run(full.model, { input: x }), await run(model, { input: x }), { rtol: 1e-4, atol: 1e-4 });
});

test('grow and shrink count multiply-adds one way (reduce/cost.ts): the same numbers for the same model and data, equal to a hand count per token of the sequence', async () => {
  // [b, t, 10] → MatMul 10×24 (+bias) → ReLU → MatMul 24×7: per token 10·24 + 24·7 = 408 multiply-adds
  const r = rng(31);
  const g = new GraphBuilder(17);
  g.input('input', ['b', 't', 10]);
  g.initializer('w1', new Tensor([10, 24], normal(240, r))).initializer('b1', new Tensor([24], normal(24, r)));
  g.initializer('w2', new Tensor([24, 7], normal(168, r)));
  g.node('MatMul', ['input', 'w1'], ['h0']).node('Add', ['h0', 'b1'], ['h1']).node('Relu', ['h1'], ['h2']).node('MatMul', ['h2', 'w2'], ['y']);
  g.output('y', ['b', 't', 7]);
  const model = g.build();
  const t = 5;
  const data = await randomData('seq', 64, [t, 10], 32);
  const { growModel } = await import('../src/reduce/grow-model.js');
  const grown = await growModel(model, { widths: new Map([['P_0', 48]]), data });
  const shrunk = await shrinkModel(model, data, { widths: new Map([['P_0', 12]]) });
  assert.equal(grown.macsBefore, t * 408);
  assert.equal(shrunk.macsBefore, t * 408);
  assert.equal(grown.macsAfter, t * (10 * 48 + 48 * 7));
  assert.equal(shrunk.macsAfter, t * (10 * 12 + 12 * 7));
  assert.equal(grown.macsSample, 'input [5, 10]');
  assert.equal(shrunk.macsSample, 'input [5, 10]');
  assert.equal(grown.paramsBefore, shrunk.paramsBefore);
  assert.equal(shrunk.paramsBefore, 240 + 24 + 168);
});

test('PCA folding is exact on a linear network at the weights\' rank, on weights (data-free) and on activations', async () => {
  const r = rng(5);
  const rank = 5;
  const u = normal(20 * rank, r);
  const v = normal(rank * 24, r);
  const w1 = new Float32Array(20 * 24);
  for (let i = 0; i < 20; i++) for (let j = 0; j < 24; j++) for (let k = 0; k < rank; k++) w1[i * 24 + j] = w1[i * 24 + j]! + u[i * rank + k]! * v[k * 24 + j]!;
  const g = new GraphBuilder(17);
  g.input('input', ['batch', 20]);
  g.initializer('w1', new Tensor([20, 24], w1)).initializer('b1', new Tensor([24], normal(24, r)));
  g.initializer('w2', new Tensor([24, 6], normal(24 * 6, r))).initializer('b2', new Tensor([6], normal(6, r)));
  g.node('MatMul', ['input', 'w1'], ['h0']).node('Add', ['h0', 'b1'], ['h1']).node('MatMul', ['h1', 'w2'], ['y0']).node('Add', ['y0', 'b2'], ['y']);
  g.output('y', ['batch', 6]);
  const model = g.build();
  const x = new Tensor([30, 20], normal(600, rng(11)));
  const ref = await run(model, { input: x });
  // [W1 | b1] has rank 6 (5 + the bias direction): 6 units hold it exactly
  const pw = await shrinkModel(model, null, { widths: new Map([['P_0', rank + 1]]), method: 'pca-weight' });
  assert.equal(pw.groups[0]!.exact, true);
  assert.deepEqual(pw.model.weightInfo('w2').shape, [rank + 1, 6]);
  assertAllClose(await run(pw.model, { input: x }), ref, { rtol: 1e-4, atol: 1e-4, label: 'pca-weight' });
  const data = await randomData('linear', 300, [20], 6);
  const pa = await shrinkModel(model, data, { widths: new Map([['P_0', rank + 1]]), method: 'pca-act' });
  assert.equal(pa.groups[0]!.exact, true);
  assertAllClose(await run(pa.model, { input: x }), ref, { rtol: 1e-4, atol: 1e-4, label: 'pca-act' });
  // below the rank, PCA is not exact and says so
  const low = await shrinkModel(model, null, { widths: new Map([['P_0', rank - 1]]), method: 'pca-weight' });
  assert.equal(low.groups[0]!.exact, false);
});

test('embedding-table compression round trip: a Gather table of rank 4 folds into 4 columns exactly, ids in and logits out', async () => {
  const r = rng(8);
  const vocab = 40;
  const d = 16;
  const a = normal(vocab * 4, r);
  const b = normal(4 * d, r);
  const table = new Float32Array(vocab * d);
  for (let i = 0; i < vocab; i++) for (let j = 0; j < d; j++) for (let k = 0; k < 4; k++) table[i * d + j] = table[i * d + j]! + a[i * 4 + k]! * b[k * d + j]!;
  const g = new GraphBuilder(17);
  g.input('ids', ['batch', 5], 'I64');
  g.initializer('table', new Tensor([vocab, d], table));
  g.initializer('w', new Tensor([d, 9], normal(d * 9, r))).initializer('bw', new Tensor([9], normal(9, r)));
  g.node('Gather', ['table', 'ids'], ['e']).node('MatMul', ['e', 'w'], ['y0']).node('Add', ['y0', 'bw'], ['y']);
  g.output('y', ['batch', 5, 9]);
  const model = g.build();
  const groups = (await inferSpec(model)).groups;
  const embed = groups.find((x) => x.size === d);
  assert.ok(embed, `a group of the table's ${d} columns: ${groups.map((x) => `${x.name}:${x.size}`).join(', ')}`);
  const res = await shrinkModel(model, null, { widths: new Map([[embed.name, 4]]), method: 'pca-weight' });
  assert.deepEqual(res.model.weightInfo('table').shape, [vocab, 4]);
  assert.equal(res.groups[0]!.exact, true);
  const ids = { data: BigInt64Array.from({ length: 3 * 5 }, (_, i) => BigInt((i * 7) % vocab)), dims: [3, 5], type: 'int64' as const };
  assertAllClose(await run(res.model, { ids }), await run(model, { ids }), { rtol: 1e-4, atol: 1e-4 });
});

test('select on the MLP fixture: error falls as width grows; half width keeps accuracy within 2 points and near the numpy reference', async () => {
  const mlp = await loadOnnx(MLP);
  const { x, labels } = await testImages(1000);
  const ref = await run(mlp, { input: x });
  const refs = JSON.parse(readFileSync(new URL('../../test/refs/shrink_mlp_small.json', import.meta.url), 'utf8')) as { before: { accuracy: number }; widths: Record<string, { accuracy: number; test_output_nmse: number }> };
  const errs: number[] = [];
  for (const w of [16, 32, 64]) {
    const r = await shrinkModel(mlp, TRAIN, { widths: new Map([['P_0', w], ['P_1', w]]) });
    const y = await run(r.model, { input: x });
    errs.push(nmse(y, ref));
    const acc = accuracy(y, labels);
    const want = refs.widths[String(w)]!;
    assert.ok(Math.abs(acc - want.accuracy) <= 0.01, `width ${w}: accuracy ${acc}, numpy reference ${want.accuracy}`);
    assert.ok(errs.at(-1)! < 3 * want.test_output_nmse + 1e-4, `width ${w}: output nmse ${errs.at(-1)}, reference ${want.test_output_nmse}`);
    if (w === 64) assert.ok(acc >= accuracy(ref, labels) - 0.02, `half width accuracy ${acc}`);
  }
  assert.ok(errs[0]! > errs[1]! && errs[1]! > errs[2]!, `output nmse by width 16, 32, 64: ${errs.join(', ')}`);
});

test('a tied embedding (Gather table that is also the output Gemm): PCA folds it once and keeps one tensor; selection and grow refuse it', async () => {
  const r = rng(12);
  const vocab = 30;
  const d = 12;
  const a = normal(vocab * 3, r);
  const b = normal(3 * d, r);
  const table = new Float32Array(vocab * d);
  for (let i = 0; i < vocab; i++) for (let j = 0; j < d; j++) for (let k = 0; k < 3; k++) table[i * d + j] = table[i * d + j]! + a[i * 3 + k]! * b[k * d + j]!;
  const g = new GraphBuilder(17);
  g.input('ids', ['batch'], 'I64');
  g.initializer('table', new Tensor([vocab, d], table));
  g.node('Gather', ['table', 'ids'], ['e']).node('Gemm', ['e', 'table'], ['logits'], { transB: 1 });
  g.output('logits', ['batch', vocab]);
  const model = g.build();
  const groups = (await inferSpec(model)).groups;
  const embed = groups.find((x) => x.size === d);
  assert.ok(embed, `a group of the table's columns: ${groups.map((x) => `${x.name}:${x.size}`).join(', ')}`);
  const res = await shrinkModel(model, null, { widths: new Map([[embed.name, 3]]), method: 'pca-weight' });
  assert.deepEqual(res.model.weightInfo('table').shape, [vocab, 3]);
  assert.equal(res.model.weights().length, 1);
  const ids = { data: BigInt64Array.from({ length: 8 }, (_, i) => BigInt((i * 11) % vocab)), dims: [8], type: 'int64' as const };
  assertAllClose(await run(res.model, { ids }), await run(model, { ids }), { rtol: 1e-4, atol: 1e-4 });
  const data = path.join(dir, 'ids.safetensors');
  await writeSafetensors(data, [{ name: 'ids', dtype: 'I64', shape: [40], data: new Uint8Array(BigInt64Array.from({ length: 40 }, (_, i) => BigInt(i % vocab)).buffer) }]);
  const sel = await assertBasinError(() => shrinkModel(model, data, { widths: new Map([[embed.name, 3]]) }), 'invalid_argument');
  assert.match(sel.message, /'table' is tied/);
  const { growModel } = await import('../src/reduce/grow-model.js');
  const grow = await assertBasinError(() => growModel(model, { widths: new Map([[embed.name, 24]]) }), 'invalid_argument');
  assert.match(grow.message, /'table' is tied/);
});
