import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { factorizeModel } from '../src/factorize/factorize-model.js';
import { GraphBuilder, attr } from '../src/onnx/build.js';
import { loadOnnx, type OnnxModel } from '../src/onnx/model.js';
import { createSession } from '../src/onnx/session.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { Tensor } from '../src/tensor/tensor.js';
import { FIXTURES, assertAllClose, assertBasinError, randn, rng } from './helpers.js';

const MLP = path.join(FIXTURES, 'mlp_small_seed0.onnx');
const TRAIN = path.join(FIXTURES, 'fmnist_train4k.safetensors');
const FP16 = new URL('../../../shared/field/field-fp16-onnx-seed0.onnx', import.meta.url).pathname;

/** The first n training images as float32 [n, 784] (pixels / 255, as the feed scales U8). */
async function images(n: number): Promise<Float32Array> {
  const st = await SafetensorsFile.open(TRAIN);
  try {
    const scale = st.entry('input').dtype === 'U8' ? 1 / 255 : 1;
    const src = (await st.readFloat32('input')).data;
    return Float32Array.from(src.subarray(0, n * 784), (v) => v * scale);
  } finally {
    await st.close();
  }
}

/** y = x·Wᵀ + b for a torch-layout weight W [out, in] (Gemm transB = 1), in float64. */
function linearT(x: Float64Array, rows: number, w: Float32Array, b: Float32Array, inF: number, outF: number): Float64Array {
  const y = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++) for (let o = 0; o < outF; o++) {
    let s = b[o]!;
    for (let i = 0; i < inF; i++) s += x[r * inF + i]! * w[o * inF + i]!;
    y[r * outF + o] = s;
  }
  return y;
}
/** y = x·A (+ b) for A [inF, outF] row-major. */
function linear(x: Float64Array, rows: number, a: Float32Array, inF: number, outF: number, b?: Float32Array): Float64Array {
  const y = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++) for (let o = 0; o < outF; o++) {
    let s = b ? b[o]! : 0;
    for (let i = 0; i < inF; i++) s += x[r * inF + i]! * a[i * outF + o]!;
    y[r * outF + o] = s;
  }
  return y;
}
const relu = (x: Float64Array): Float64Array => x.map((v) => Math.max(0, v));

function newInitializer(model: OnnxModel, suffix: string, weight: string): string {
  const names = model.constants().filter((n) => n.startsWith(weight) && n.includes(suffix));
  assert.equal(names.length, 1, `one ${suffix} initializer for ${weight}: ${names.join(', ')}`);
  return names[0]!;
}

test('factorizeModel on the fixture MLP: the rewritten graph computes the returned factors (JS forward), parameter counts match', async () => {
  const model = await loadOnnx(MLP);
  const r = await factorizeModel(model, TRAIN, { rank: 0.25, minFeatures: 128, feed: { limit: 1000 } });
  assert.equal(r.samples, 1000);
  const byName = new Map(r.layers.map((l) => [l.name, l]));
  assert.equal(byName.get('/layers.0/Gemm')!.rank, 32); // 0.25 · min(784, 128)
  assert.equal(byName.get('/layers.1/Gemm')!.rank, 32);
  assert.equal(byName.get('/head/Gemm')!.rank, null);
  assert.match(byName.get('/head/Gemm')!.kept!, /min-features 128/);
  for (const l of r.layers.filter((x) => x.rank !== null)) assert.ok(l.nmse! > 0 && l.nmse! < 0.05, `${l.name} nmse ${l.nmse}`);
  // Parameters, counted from the shapes: 784→128, 128→128 at rank 32, the head unchanged.
  const before = 784 * 128 + 128 + 128 * 128 + 128 + 128 * 10 + 10;
  const after = 32 * (784 + 128) + 128 + 32 * (128 + 128) + 128 + 128 * 10 + 10;
  assert.equal(r.paramsBefore, before);
  assert.equal(r.paramsAfter, after);
  assert.equal(byName.get('/layers.0/Gemm')!.paramsAfter, 32 * (784 + 128) + 128);

  // JS forward from the output's factors and the original head, against onnxruntime on the rewritten graph.
  const out = r.model;
  const f = (n: string): Float32Array => out.getFloat32(n).data;
  const n = 16;
  const x = await images(n);
  const x64 = Float64Array.from(x);
  const a0 = newInitializer(out, '.basin_a', 'layers.0.weight');
  const b0 = newInitializer(out, '.basin_b', 'layers.0.weight');
  const c0 = newInitializer(out, '.basin_bias', 'layers.0.bias');
  const a1 = newInitializer(out, '.basin_a', 'layers.1.weight');
  const b1 = newInitializer(out, '.basin_b', 'layers.1.weight');
  const c1 = newInitializer(out, '.basin_bias', 'layers.1.bias');
  assert.deepEqual(out.weightInfo(a0).shape, [784, 32]);
  assert.deepEqual(out.weightInfo(b0).shape, [32, 128]);
  assert.ok(!out.has('layers.0.weight') && !out.has('layers.1.weight'), 'replaced weights are removed');
  let h = relu(linear(linear(x64, n, f(a0), 784, 32), n, f(b0), 32, 128, f(c0)));
  h = relu(linear(linear(h, n, f(a1), 128, 32), n, f(b1), 32, 128, f(c1)));
  const logits = linearT(h, n, f('head.weight'), f('head.bias'), 128, 10);
  const s = await createSession(out);
  try {
    const got = await s.run({ input: new Tensor([n, 784], x) });
    assertAllClose(got.logits!.data, Float32Array.from(logits), { rtol: 1e-4, atol: 1e-4 });
  } finally {
    await s.release();
  }
  // and the factorized model stays close to the original (nmse ~1e-3 per layer)
  const s0 = await createSession(model);
  try {
    const ref = (await s0.run({ input: new Tensor([n, 784], x) })).logits!.data;
    let err = 0;
    let norm = 0;
    for (let i = 0; i < ref.length; i++) (err += (ref[i]! - logits[i]!) ** 2), (norm += ref[i]! ** 2);
    assert.ok(err / norm < 0.05, `relative logit error ${err / norm}`);
    assert.ok(r.outputNmse.logits! > 0 && r.outputNmse.logits! < 0.01, `output nmse ${r.outputNmse.logits}`);
  } finally {
    await s0.release();
  }
});

/** x [n, d] random normal in a safetensors file named `input`. */
async function randomData(dir: string, n: number, sampleShape: number[], seed: number): Promise<string> {
  const r = rng(seed);
  const per = sampleShape.reduce((a, b) => a * b, 1);
  const file = path.join(dir, `x${seed}.safetensors`);
  await writeSafetensors(file, [{ name: 'input', dtype: 'F32', shape: [n, ...sampleShape], data: Float32Array.from({ length: n * per }, () => randn(r)) }]);
  return file;
}

/** A [rows, cols] matrix of rank k: (rows×k)·(k×cols), random normal. */
function lowRank(rows: number, cols: number, k: number, r: () => number): Float32Array {
  const u = Array.from({ length: rows * k }, () => randn(r));
  const v = Array.from({ length: k * cols }, () => randn(r));
  const m = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) {
    let s = 0;
    for (let t = 0; t < k; t++) s += u[i * k + t]! * v[t * cols + j]!;
    m[i * cols + j] = s / Math.sqrt(k * cols);
  }
  return m;
}

async function outputsOf(model: OnnxModel, x: Tensor): Promise<Float32Array> {
  const s = await createSession(model);
  try {
    return Object.values(await s.run({ input: x }))[0]!.data;
  } finally {
    await s.release();
  }
}

test('an exactly low-rank MatMul+Add and a low-rank strided grouped Conv are recovered: outputs unchanged within float rounding', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-fact-'));
  const r = rng(7);
  // MatMul [64 → 48] of rank 8, + bias, Relu, MatMul [48 → 40] of rank 6 (no Add)
  const g = new GraphBuilder(17);
  g.input('input', ['batch', 64]);
  g.initializer('w1', new Tensor([64, 48], lowRank(64, 48, 8, r)));
  g.initializer('b1', new Tensor([48], Float32Array.from({ length: 48 }, () => randn(r))));
  g.initializer('w2', new Tensor([48, 40], lowRank(48, 40, 6, r)));
  g.node('MatMul', ['input', 'w1'], ['h0']).node('Add', ['h0', 'b1'], ['h1']).node('Relu', ['h1'], ['h2']).node('MatMul', ['h2', 'w2'], ['y']);
  g.output('y', ['batch', 40]);
  const model = g.build();
  const data = await randomData(dir, 300, [64], 1);
  const res = await factorizeModel(model, data, { rank: 8, minFeatures: 32 });
  assert.deepEqual(res.layers.map((l) => l.rank), [8, 8]);
  for (const l of res.layers) assert.ok(l.nmse! < 1e-9, `${l.name} nmse ${l.nmse}`);
  assert.ok(!res.model.proto.graph!.node!.some((nd) => nd.input?.includes('w1') || nd.input?.includes('b1')));
  assert.ok(res.outputNmse.y! < 1e-9, `model output nmse ${res.outputNmse.y}`);
  const x = new Tensor([20, 64], Float32Array.from({ length: 20 * 64 }, () => randn(r)));
  assertAllClose(await outputsOf(res.model, x), await outputsOf(model, x), { rtol: 1e-4, atol: 1e-4 });

  // Conv 3×3, stride 2, pads 1, group 2: 8 → 16 channels, each group's [8 out, 4·9] weight of rank 2
  const cg = new GraphBuilder(13);
  cg.input('input', ['batch', 8, 9, 9]);
  const w = new Float32Array(16 * 4 * 9);
  for (let gi = 0; gi < 2; gi++) w.set(lowRank(8, 36, 2, r), gi * 8 * 36);
  cg.initializer('cw', new Tensor([16, 4, 3, 3], w));
  cg.initializer('cb', new Tensor([16], Float32Array.from({ length: 16 }, () => randn(r))));
  cg.node('Conv', ['input', 'cw', 'cb'], ['y'], { strides: [2, 2], pads: [1, 1, 1, 1], group: 2, kernel_shape: [3, 3] });
  cg.output('y', ['batch', 16, 5, 5]);
  const conv = cg.build();
  const cdata = await randomData(dir, 40, [8, 9, 9], 2);
  const cres = await factorizeModel(conv, cdata, { rank: 4, minChannels: 8 });
  assert.equal(cres.layers[0]!.rank, 4);
  assert.ok(cres.layers[0]!.nmse! < 1e-9, `nmse ${cres.layers[0]!.nmse}`);
  const ops = cres.model.proto.graph!.node!.map((nd) => nd.opType);
  assert.deepEqual(ops, ['Conv', 'Conv']);
  const cx = new Tensor([3, 8, 9, 9], Float32Array.from({ length: 3 * 8 * 81 }, () => randn(r)));
  assertAllClose(await outputsOf(cres.model, cx), await outputsOf(conv, cx), { rtol: 1e-4, atol: 1e-4 });
  // parameters: 2 groups × (2·36 + 8·2), bias 16
  assert.equal(cres.layers[0]!.paramsAfter, 4 * 36 + 16 * 2 + 16);
  assert.equal(cres.paramsAfter, 4 * 36 + 16 * 2 + 16);
});

test('planted low-rank layers behind a 3-D MatMul input and a Gemm with alpha, beta and transB = 0 are recovered exactly', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-fact-'));
  const r = rng(11);
  // x [batch, 5, 40] → MatMul W [40, 36] of rank 4 (+ Add bias) → Flatten → Gemm alpha 0.5, beta 2, B [180, 20] of rank 3
  const g = new GraphBuilder(17);
  g.input('input', ['batch', 5, 40]);
  g.initializer('w', new Tensor([40, 36], lowRank(40, 36, 4, r)));
  g.initializer('b', new Tensor([36], Float32Array.from({ length: 36 }, () => randn(r))));
  g.initializer('gw', new Tensor([180, 20], lowRank(180, 20, 3, r)));
  g.initializer('gc', new Tensor([20], Float32Array.from({ length: 20 }, () => randn(r))));
  g.node('MatMul', ['input', 'w'], ['m']).node('Add', ['m', 'b'], ['a']).node('Relu', ['a'], ['h']).node('Flatten', ['h'], ['f'], { axis: 1 });
  g.node('Gemm', ['f', 'gw', 'gc'], ['y'], { alpha: attr.float(0.5), beta: attr.float(2), transB: 0 });
  g.output('y', ['batch', 20]);
  const model = g.build();
  const data = await randomData(dir, 200, [5, 40], 3);
  const res = await factorizeModel(model, data, { rank: 4, minFeatures: 16 });
  assert.deepEqual(res.layers.map((l) => [l.op, l.rank]), [['MatMul', 4], ['Gemm', 4]]);
  for (const l of res.layers) assert.ok(l.nmse! < 1e-9, `${l.name} nmse ${l.nmse}`);
  assert.equal(res.layers[0]!.macsBefore, 5 * 40 * 36); // 5 rows per sample
  assert.equal(res.layers[0]!.macsAfter, 5 * 4 * (40 + 36));
  const x = new Tensor([6, 5, 40], Float32Array.from({ length: 6 * 200 }, () => randn(r)));
  assertAllClose(await outputsOf(res.model, x), await outputsOf(model, x), { rtol: 1e-4, atol: 1e-4 });
});

test('a layer whose rank is >= min(in, out) is left alone and reported so', async () => {
  const model = await loadOnnx(MLP);
  const r = await factorizeModel(model, TRAIN, { rank: 128, minFeatures: 128, feed: { limit: 100 } });
  for (const name of ['/layers.0/Gemm', '/layers.1/Gemm']) {
    const l = r.layers.find((x) => x.name === name)!;
    assert.equal(l.rank, null);
    assert.match(l.kept!, />= min\(in, out\) = 128/);
    assert.equal(l.paramsAfter, l.paramsBefore);
  }
  assert.equal(r.paramsAfter, r.paramsBefore);
  assert.deepEqual(r.model.proto.graph!.node!.map((n) => n.opType), model.proto.graph!.node!.map((n) => n.opType));
});

test('an fp16 model stays fp16: new initializers in F16, the output runs in onnxruntime', async () => {
  const model = await loadOnnx(FP16);
  const r = await factorizeModel(model, TRAIN, { rank: 32, minFeatures: 128, feed: { limit: 200 } });
  const a = newInitializer(r.model, '.basin_a', 'layers.0.weight');
  assert.equal(r.model.weightInfo(a).dtype, 'F16');
  assert.equal(r.model.weightInfo(newInitializer(r.model, '.basin_bias', 'layers.1.bias')).dtype, 'F16');
  const x = await images(4);
  const s = await createSession(r.model);
  try {
    const got = await s.run({ input: new Tensor([4, 784], x) });
    assert.deepEqual([...got.logits!.shape], [4, 10]);
    assert.ok(got.logits!.data.every(Number.isFinite));
  } finally {
    await s.release();
  }
});

test('errors before any compute: no layer qualifies (names the thresholds), bad ranks, bad iters', async () => {
  const model = await loadOnnx(MLP);
  const missing = '/nonexistent/calib.safetensors'; // never opened: the checks come first
  const e = await assertBasinError(() => factorizeModel(model, missing, { rank: 0.25 }), 'nothing_to_factorize');
  assert.match(e.message, /--min-features 256/);
  assert.match(e.message, /--min-channels 256/);
  assert.match(e.message, /layers\.0\/Gemm/);
  for (const rank of [0, -1, 2.5, Number.NaN, Infinity]) {
    await assertBasinError(() => factorizeModel(model, missing, { rank, minFeatures: 1 }), 'invalid_argument');
  }
  await assertBasinError(() => factorizeModel(model, missing, { minFeatures: 1 }), 'invalid_argument');
  await assertBasinError(() => factorizeModel(model, missing, { rank: 8, minFeatures: 1, iters: -1 }), 'invalid_argument');
  await assertBasinError(() => factorizeModel(model, missing, { rank: 8, minFeatures: -3 }), 'invalid_argument');
  // and the data file is then the next thing checked
  await assertBasinError(() => factorizeModel(model, missing, { rank: 8, minFeatures: 1 }), 'file_not_found');
});
