/**
 * Quantized models (issue 12 item 6): the tracer follows QDQ weights, integer ops and onnxruntime's quantized
 * contrib ops; integer weights are permuted bit for bit with their per-channel scales and zero points; integer
 * arithmetic keeps outputs bit-identical; matching reads dequantized weights; merging quantized weights is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attr, GraphBuilder } from '../src/onnx/build.js';
import { loadOnnx, OnnxModel } from '../src/onnx/model.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createSession } from '../src/onnx/session.js';
import * as onnx from '../src/onnx/proto.js';
import { Tensor } from '../src/tensor/tensor.js';
import { checkInvariance, inferPermutationSpec, probeModel } from '../src/graph/index.js';
import { PermutationSpec } from '../src/spec/spec.js';
import { permuteModel, weightShapes } from '../src/spec/permute-model.js';
import { alignOnnxModels, randomlyPermute } from '../src/align/align-onnx.js';
import { matchingTensor } from '../src/match/dequantized.js';
import { exactIntegerForm } from '../src/verify/exact-integer-form.js';
import { interpolateModels } from '../src/merge/interpolate.js';
import { assertBasinError, randn, randomPermutation, rng } from './helpers.js';
import { dynamicMlp, qdqMlp, qlinearNet, quantize } from './zoo/models-q.js';

async function run(model: OnnxModel, x: Tensor): Promise<Float32Array> {
  const s = await createSession(model);
  try {
    return (await s.run({ [s.inputNames[0]!]: x }))[s.outputNames[0]!]!.data;
  } finally {
    await s.release();
  }
}

function input(shape: number[], seed: number): Tensor {
  const r = rng(seed);
  return new Tensor(shape, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r()));
}

async function infer(model: OnnxModel) {
  return inferPermutationSpec(model, await probeModel(model));
}

/** src gathered along `axis` of a row-major [rows, cols] byte-per-element tensor (out[.., i, ..] = in[.., p[i], ..]). */
function gather2d(src: Uint8Array, rows: number, cols: number, axis: 0 | 1, p: Int32Array): Uint8Array {
  const out = new Uint8Array(src.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[i * cols + j] = axis === 0 ? src[p[i]! * cols + j]! : src[i * cols + p[j]!]!;
  return out;
}

test('QDQ MLP: a hidden permutation moves the int8 weight bytes, the per-channel scales and zero points and the int32 bias with it', async () => {
  const a = qdqMlp();
  const r = await infer(a);
  const p0 = r.spec.axes_to_perm['w0_q']![1]!;
  assert.equal(r.spec.axes_to_perm['w0_scale']![0], p0);
  assert.equal(r.spec.axes_to_perm['w0_zp']![0], p0);
  assert.equal(r.spec.axes_to_perm['b0_q']![0], p0);
  assert.equal(r.spec.axes_to_perm['w1_q']![0], p0);
  const spec = PermutationSpec.fromJson(r.spec, weightShapes(a), 'inferred');
  const perm = randomPermutation(16, rng(5));
  const assignment = new Map([...spec.perms.keys()].map((k) => [k, k === p0 ? perm : Int32Array.from({ length: spec.perms.get(k)!.size }, (_, i) => i)]));
  const b = permuteModel(a, spec, assignment);
  assert.deepEqual(b.getRaw('w0_q'), gather2d(a.getRaw('w0_q'), 6, 16, 1, perm));
  assert.deepEqual(b.getRaw('w1_q'), gather2d(a.getRaw('w1_q'), 16, 12, 0, perm));
  const scaleA = a.getFloat32('w0_scale').data;
  assert.deepEqual([...b.getFloat32('w0_scale').data], [...perm].map((i) => scaleA[i]!));
  const biasA = new Int32Array(a.getRaw('b0_q').buffer.slice(0));
  assert.deepEqual([...new Int32Array(b.getRaw('b0_q').buffer.slice(0))], [...perm].map((i) => biasA[i]!));
  const x = input([5, 6], 3);
  const [ya, yb] = [await run(a, x), await run(b, x)];
  for (let i = 0; i < ya.length; i++) assert.ok(Math.abs(ya[i]! - yb[i]!) <= 1e-5 * (1 + Math.abs(ya[i]!)), `output ${i}: ${ya[i]} vs ${yb[i]}`);
});

test('integer ops (QLinearConv, QLinearMatMul; DynamicQuantizeLinear, MatMulInteger): a random permutation keeps the exact integer outputs bit for bit', async () => {
  // compared in the exact integer form: onnxruntime's u8 x s8 kernels without VNNI saturate in an order-dependent way
  for (const [model, shape] of [
    [qlinearNet(), [2, 3, 6, 6]],
    [dynamicMlp(), [4, 6]],
  ] as const) {
    const r = await infer(model);
    assert.equal(r.groups.length, 2);
    for (const seed of [1, 2]) {
      const { model: b, changedFraction } = await randomlyPermute(model, r.spec, seed);
      assert.ok(changedFraction > 0, 'the float scales moved');
      const x = input([...shape], seed + 10);
      assert.deepEqual(await run(exactIntegerForm(b) ?? b, x), await run(exactIntegerForm(model) ?? model, x));
    }
  }
});

test('matching reads an int8 weight dequantized with its per-channel scale: within half a step of the float weight', () => {
  const r = rng(4);
  const w = new Tensor([5, 3], Float32Array.from({ length: 15 }, () => randn(r)));
  const { q, scale, zp } = quantize(w, 1, 'U8');
  const model = new GraphBuilder(17)
    .input('x', ['batch', 5])
    .initializer('wq', q, { dtype: 'U8' })
    .initializer('ws', scale)
    .initializer('wz', zp, { dtype: 'U8' })
    .node('DequantizeLinear', ['wq', 'ws', 'wz'], ['w'], { axis: 1 })
    .node('MatMul', ['x', 'w'], ['y'])
    .output('y', ['batch', 3])
    .build();
  const d = matchingTensor(model, 'wq');
  assert.deepEqual(d.shape, [5, 3]);
  for (let i = 0; i < 15; i++) {
    const step = scale.data[i % 3]!;
    assert.ok(Math.abs(d.data[i]! - w.data[i]!) <= step / 2 + 1e-7, `element ${i}: ${d.data[i]} vs ${w.data[i]} (step ${step})`);
  }
});

test('align(A, permuted A) of a QDQ model recovers the int8 weights bit for bit', async () => {
  const a = qdqMlp();
  const r = await infer(a);
  const { model: b } = await randomlyPermute(a, r.spec, 9);
  assert.notDeepEqual(b.getRaw('w0_q'), a.getRaw('w0_q'));
  const { aligned } = await alignOnnxModels(a, b, r.spec);
  for (const name of a.constants()) assert.deepEqual(aligned.getRaw(name), a.getRaw(name), name);
});

test('blocked DequantizeLinear (opset 21, block_size 4 along the input axis): whole blocks move, the order inside a block stays', async () => {
  const r = rng(6);
  const w0 = new Tensor([4, 8], Float32Array.from({ length: 32 }, () => randn(r)));
  const q = new Tensor([8, 6], Float32Array.from({ length: 48 }, () => Math.round(randn(r) * 40)));
  const scale = new Tensor([2, 6], Float32Array.from({ length: 12 }, (_, i) => 0.01 * (i + 1)));
  const model = new GraphBuilder(21)
    .input('x', ['batch', 4])
    .initializer('w0', w0)
    .initializer('wq', q, { dtype: 'I8' })
    .initializer('ws', scale)
    .node('MatMul', ['x', 'w0'], ['h'], {}, { name: 'fc0' })
    .node('Relu', ['h'], ['a'])
    .node('DequantizeLinear', ['wq', 'ws'], ['w1'], { axis: 0, block_size: 4 }, { name: 'dq' })
    .node('MatMul', ['a', 'w1'], ['y'], {}, { name: 'head' })
    .output('y', ['batch', 6])
    .build();
  const res = await infer(model);
  const g = res.groups.find((x) => x.members.some((m) => m.tensor === 'w0' && m.axis === 1));
  assert.ok(g, JSON.stringify(res.groups));
  assert.equal(g.kind, 'expand');
  assert.equal(g.size, 8);
  const base = res.groups.find((x) => x.name === g.follows?.[0]);
  assert.equal(base?.size, 2);
  assert.ok(base.members.some((m) => m.tensor === 'ws' && m.axis === 0), 'the block scales move with the blocks');
  const inv = await checkInvariance(model, res.spec, { x: input([3, 4], 2) }, { seed: 3 });
  assert.ok(inv.equivalent && inv.maxRelError < 1e-5, JSON.stringify(inv.worst));
});

test('com.microsoft quantized ops: DynamicQuantizeMatMul, QLinearLeakyRelu, QGemm, QLinearSigmoid, QLinearAdd, MatMulIntegerToFloat', async () => {
  const r = rng(8);
  const f = (shape: number[]) => new Tensor(shape, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => randn(r)));
  const w0 = quantize(f([6, 16]), 1);
  const w1 = quantize(f([16, 12]), 1);
  const w2 = quantize(f([12, 4]), 1);
  const s = (v: number) => new Tensor([], Float32Array.of(v));
  const MS = { domain: 'com.microsoft' };
  const model = new GraphBuilder(17)
    .importDomain('com.microsoft', 1)
    .input('x', ['batch', 6])
    .initializer('w0', w0.q, { dtype: 'I8' })
    .initializer('w0s', w0.scale)
    .initializer('b0', f([16]))
    .initializer('w1', w1.q, { dtype: 'I8' })
    .initializer('w1s', w1.scale)
    .initializer('w1z', w1.zp, { dtype: 'I8' })
    .initializer('c1', new Tensor([12], Float32Array.from(f([12]).data, (v) => Math.round(v * 50))), { dtype: 'I32' })
    .initializer('add', new Tensor([12], Float32Array.from(f([12]).data, (v) => 128 + Math.round(v * 30))), { dtype: 'U8' })
    .initializer('w2', w2.q, { dtype: 'I8' })
    .initializer('w2s', w2.scale)
    .initializer('as', s(0.05))
    .initializer('az', new Tensor([], Float32Array.of(128)), { dtype: 'U8' })
    .initializer('gs', s(0.1))
    .initializer('ss', s(1 / 255))
    .initializer('sz', new Tensor([], Float32Array.of(0)), { dtype: 'U8' })
    .node('DynamicQuantizeMatMul', ['x', 'w0', 'w0s', '', 'b0'], ['h0'], {}, { ...MS, name: 'fc0' })
    .node('QuantizeLinear', ['h0', 'as', 'az'], ['h0q'])
    .node('QLinearLeakyRelu', ['h0q', 'as', 'az', 'as', 'az'], ['a0'], { alpha: 0.1 }, { ...MS, name: 'leaky' })
    .node('QGemm', ['a0', 'as', 'az', 'w1', 'w1s', 'w1z', 'c1', 'gs', 'az'], ['g1'], {}, { ...MS, name: 'fc1' })
    .node('QLinearSigmoid', ['g1', 'gs', 'az', 'ss', 'sz'], ['s1'], {}, { ...MS, name: 'sigmoid' })
    .node('QLinearAdd', ['s1', 'ss', 'sz', 'add', 'ss', 'sz', 'gs', 'az'], ['t1'], {}, { ...MS, name: 'shift' })
    .node('DequantizeLinear', ['t1', 'gs', 'az'], ['t1f'])
    .node('DynamicQuantizeLinear', ['t1f'], ['t1q', 't1s', 't1z'])
    .node('MatMulIntegerToFloat', ['t1q', 'w2', 't1s', 'w2s', 't1z'], ['y'], {}, { ...MS, name: 'head' })
    .output('y', ['batch', 4])
    .build();
  const res = await infer(model);
  const sizes = res.groups.map((g) => [g.size, g.kind]);
  assert.deepEqual(sizes, [[16, 'free'], [12, 'free']], JSON.stringify(res.groups.map((g) => g.description)));
  const [g0, g1] = res.groups as [(typeof res.groups)[0], (typeof res.groups)[0]];
  assert.deepEqual(g0.members.map((m) => `${m.tensor}:${m.axis}`).sort(), ['b0:0', 'w0:1', 'w0s:0', 'w1:0'].sort());
  assert.deepEqual(g1.members.map((m) => `${m.tensor}:${m.axis}`).sort(), ['add:0', 'c1:0', 'w1:1', 'w1s:0', 'w1z:0', 'w2:0'].sort());
  for (const seed of [1, 2]) {
    const inv = await checkInvariance(model, res.spec, { x: input([3, 6], seed) }, { seed });
    assert.ok(inv.equivalent && inv.maxRelError < 1e-5, JSON.stringify(inv.worst));
  }
});

test('merging quantized models is refused (unsupported), naming the integer weight; an aligned exact copy merges to itself', async () => {
  const a = qdqMlp();
  const r = await infer(a);
  const { model: b } = await randomlyPermute(a, r.spec, 3);
  const err = await assertBasinError(() => interpolateModels(a, b, 0.5), 'unsupported');
  assert.match(err.message, /'w0_q' is a quantized integer weight/);
  assert.match(err.message, /DequantizeLinear node 'w0_dq'/);
  const { aligned } = await alignOnnxModels(a, b, r.spec);
  const mid = interpolateModels(a, aligned, 0.5);
  for (const name of a.constants()) assert.deepEqual(mid.getRaw(name), a.getRaw(name), name);
});

test('fake quantization (float weight -> QuantizeLinear -> DequantizeLinear, as QAT exports write it): the float weight and its per-channel scales form the hidden group', async () => {
  const r = rng(12);
  const f = (shape: number[]) => new Tensor(shape, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => randn(r)));
  const model = new GraphBuilder(17)
    .input('x', ['batch', 5])
    .initializer('w0', f([5, 7]))
    .initializer('s0', new Tensor([7], Float32Array.from({ length: 7 }, (_, i) => 0.01 * (i + 2))))
    .initializer('z0', new Tensor([7]), { dtype: 'I8' })
    .initializer('w1', f([7, 3]))
    .node('QuantizeLinear', ['w0', 's0', 'z0'], ['w0q'], { axis: 1 }, { name: 'w0_quant' })
    .node('DequantizeLinear', ['w0q', 's0', 'z0'], ['w0d'], { axis: 1 }, { name: 'w0_dequant' })
    .node('MatMul', ['x', 'w0d'], ['h'], {}, { name: 'fc0' })
    .node('Relu', ['h'], ['a'])
    .node('MatMul', ['a', 'w1'], ['y'], {}, { name: 'head' })
    .output('y', ['batch', 3])
    .build();
  const res = await infer(model);
  assert.equal(res.groups.length, 1);
  const g = res.groups[0]!;
  assert.equal(g.size, 7);
  assert.match(g.description, /^MLP hidden units of fc0/);
  assert.deepEqual(g.members.map((m) => `${m.tensor}:${m.axis}`).sort(), ['s0:0', 'w0:1', 'w1:0', 'z0:0']);
  const inv = await checkInvariance(model, res.spec, { x: input([4, 5], 1) }, { seed: 2 });
  assert.ok(inv.equivalent && inv.maxRelError < 1e-5, JSON.stringify(inv.worst));
});

test('com.microsoft QLinearConcat: the concatenated axis is the two quantized branches one after another', async () => {
  const r = rng(13);
  const f = (shape: number[]) => new Tensor(shape, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => randn(r)));
  const s = (v: number) => new Tensor([], Float32Array.of(v));
  const model = new GraphBuilder(17)
    .importDomain('com.microsoft', 1)
    .input('x', ['batch', 6])
    .initializer('wa', f([6, 4]))
    .initializer('wb', f([6, 5]))
    .initializer('wc', f([9, 3]))
    .initializer('s', s(0.05))
    .initializer('z', new Tensor([], Float32Array.of(128)), { dtype: 'U8' })
    .node('MatMul', ['x', 'wa'], ['ha'], {}, { name: 'fa' })
    .node('MatMul', ['x', 'wb'], ['hb'], {}, { name: 'fb' })
    .node('QuantizeLinear', ['ha', 's', 'z'], ['qa'])
    .node('QuantizeLinear', ['hb', 's', 'z'], ['qb'])
    .node('QLinearConcat', ['s', 'z', 'qa', 's', 'z', 'qb', 's', 'z'], ['qc'], { axis: 1 }, { domain: 'com.microsoft', name: 'cat' })
    .node('DequantizeLinear', ['qc', 's', 'z'], ['c'])
    .node('MatMul', ['c', 'wc'], ['y'], {}, { name: 'head' })
    .output('y', ['batch', 3])
    .build();
  const res = await infer(model);
  const cat = res.groups.find((g) => g.kind === 'concat');
  assert.equal(cat?.size, 9, JSON.stringify(res.groups));
  assert.deepEqual(cat.members.map((m) => `${m.tensor}:${m.axis}`), ['wc:0']);
  const sizes = res.groups.filter((g) => g.kind === 'free').map((g) => [g.size, g.members.map((m) => `${m.tensor}:${m.axis}`).join(' ')]);
  assert.deepEqual(sizes, [[4, 'wa:1'], [5, 'wb:1']]);
  const inv = await checkInvariance(model, res.spec, { x: input([3, 6], 1) }, { seed: 4 });
  assert.ok(inv.equivalent && inv.maxRelError < 1e-5, JSON.stringify(inv.worst));
});

/** y[i][j] = sum_k (a[i][k] - az)(b[k][j] - bz), in exact integers: MatMulInteger as the ONNX spec defines it. */
function integerMatMul(a: Uint8Array, az: number, b: Int8Array, bz: number, m: number, k: number, n: number): Int32Array {
  const y = new Int32Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let t = 0; t < k; t++) y[i * n + j]! += (a[i * k + t]! - az) * (b[t * n + j]! - bz);
  return y;
}

test('exact integer form: uint8 x int8 products whose pair sums overflow 16 bits equal the exact int32 sums (MatMulInteger, ConvInteger)', async () => {
  const r = rng(21);
  const [m, k, n] = [3, 16, 5];
  // activations near 255 and weights near +-127 of one sign per pair: u8*s8 pair sums reach 2 * 255 * 127 > 32767
  const a = Uint8Array.from({ length: m * k }, () => 200 + Math.floor(r() * 56));
  const b = Int8Array.from({ length: k * n }, (_, i) => (Math.floor(i / n / 2) % 2 === 0 ? 1 : -1) * (100 + Math.floor(r() * 28)));
  const bq = new Tensor([k, n], Float32Array.from(b));
  const matmul = new GraphBuilder(17)
    .input('a', ['m', k], 'U8')
    .initializer('b', bq, { dtype: 'I8' })
    .initializer('az', new Tensor([], Float32Array.of(3)), { dtype: 'U8' })
    .initializer('bz', new Tensor([], Float32Array.of(-2)), { dtype: 'I8' })
    .node('MatMulInteger', ['a', 'b', 'az', 'bz'], ['y'], {}, { name: 'mmi' })
    .output('y', ['m', n], 'I32')
    .build();
  const form = exactIntegerForm(matmul);
  assert.ok(form, 'a uint8 x int8 MatMulInteger has an exact form');
  assert.equal(form.weightInfo('b.basin_u8').dtype, 'U8');
  const run32 = async (model: OnnxModel, feed: Record<string, { data: Uint8Array; dims: number[]; type: 'uint8' }>) => {
    const s = await createSession(model);
    try {
      return (await s.run(feed))[s.outputNames[0]!]!.data; // int32 results, exact in float32 (|y| < 2^24)
    } finally {
      await s.release();
    }
  };
  const want = integerMatMul(a, 3, b, -2, m, k, n);
  const pairSum = (i: number, t: number, j: number) => a[i * k + t]! * b[t * n + j]! + a[i * k + t + 1]! * b[(t + 1) * n + j]!;
  assert.ok(Math.abs(pairSum(0, 0, 0)) > 32767, 'the test provokes 16-bit overflow');
  assert.deepEqual([...(await run32(form, { a: { data: a, dims: [m, k], type: 'uint8' } }))], [...want]);
  // ConvInteger 1x1 over a 1x1 image is the same product (onnxruntime has no int8-weight ConvInteger kernel at all)
  const w = new Tensor([n, k, 1, 1], Float32Array.from({ length: n * k }, (_, i) => b[(i % k) * n + Math.floor(i / k)]!));
  const conv = new GraphBuilder(17)
    .input('x', ['m', k, 1, 1], 'U8')
    .initializer('w', w, { dtype: 'I8' })
    .initializer('xz', new Tensor([], Float32Array.of(3)), { dtype: 'U8' })
    .node('ConvInteger', ['x', 'w', 'xz'], ['y'], {}, { name: 'ci' })
    .output('y', ['m', n, 1, 1], 'I32')
    .build();
  const convForm = exactIntegerForm(conv);
  assert.ok(convForm);
  assert.deepEqual([...(await run32(convForm, { x: { data: a, dims: [m, k, 1, 1], type: 'uint8' } }))], [...integerMatMul(a, 3, b, 0, m, k, n)]);
});

test('exact integer form: float models, uint8 weights and int8 activations are left as they are; QDQ int8 weights of uint8 activations are not', () => {
  const r = rng(22);
  const q = new Tensor([4, 2], Float32Array.from({ length: 8 }, () => Math.round(randn(r) * 50)));
  const build = (act: 'U8' | 'I8', wt: 'U8' | 'I8') =>
    new GraphBuilder(17)
      .input('a', ['m', 4], act)
      .initializer('b', wt === 'U8' ? new Tensor([4, 2], q.data.map((v) => v + 128)) : q, { dtype: wt })
      .initializer('az', new Tensor([], Float32Array.of(0)), { dtype: act })
      .node('MatMulInteger', ['a', 'b', 'az'], ['y'])
      .output('y', ['m', 2], 'I32')
      .build();
  assert.equal(exactIntegerForm(build('U8', 'U8')), undefined);
  assert.equal(exactIntegerForm(build('I8', 'I8')), undefined);
  assert.ok(exactIntegerForm(build('U8', 'I8')));
  assert.ok(exactIntegerForm(qlinearNet()));
  assert.equal(exactIntegerForm(qlinearNet(), { maxBytes: 1000 }), undefined, 'a form past protobuf\'s limit is not built');
  const qdq = exactIntegerForm(qdqMlp());
  assert.ok(qdq, 'int8 DequantizeLinear weights of MatMuls with uint8 QDQ activations have an exact form');
  for (const w of ['w0_q', 'w1_q', 'w2_q']) assert.equal(qdq.weightInfo(`${w}.basin_u8`).dtype, 'U8');
});

/** Round half to even, as onnxruntime requantizes. */
function rne(v: number): number {
  const f = Math.floor(v);
  return v - f !== 0.5 ? Math.round(v) : f % 2 === 0 ? f : f + 1;
}

/** uint8 activations near 255 and int8 weights near +-127 with one sign per pair of rows (u8*s8 pair sums above 32767). */
function overflowing(m: number, k: number, n: number, seed: number): { a: Uint8Array; b: Int8Array } {
  const r = rng(seed);
  const a = Uint8Array.from({ length: m * k }, () => 200 + Math.floor(r() * 56));
  const b = Int8Array.from({ length: k * n }, (_, i) => (Math.floor(i / n / 2) % 2 === 0 ? 1 : -1) * (100 + Math.floor(r() * 28)));
  return { a, b };
}

test('exact integer form: quantize_static QDQ (DequantizeLinear of int8 weights, initializer or Constant with torch\'s QuantizeLinear -> Cast, per tensor or per channel) equals exact requantized int32 sums', async () => {
  const [m, k, n] = [3, 64, 5];
  const { a, b } = overflowing(m, k, n, 23);
  const s = (v: number, dims: number[] = []) => new Tensor(dims, new Float32Array(dims[0] ?? 1).fill(v));
  // y = DQ(Q(DQ(Q(x)) @ DQ(w))): x and y uint8 (scale 1, 256; zero point 0, 128), w int8 (scale 1, zero point 0)
  const want = Float32Array.from(integerMatMul(a, 0, b, 0, m, k, n), (t) => (Math.max(0, Math.min(255, rne(t / 256) + 128)) - 128) * 256);
  for (const perChannel of [false, true])
    for (const asConstant of [false, true]) {
      const g = new GraphBuilder(17).input('x', ['m', k]);
      if (asConstant) g.constant('w', new Tensor([k, n], Float32Array.from(b)), { dtype: 'I8' }).constant('wz', s(0, perChannel ? [n] : []), { dtype: 'I8' });
      else g.initializer('w', new Tensor([k, n], Float32Array.from(b)), { dtype: 'I8' }).initializer('wz', s(0, perChannel ? [n] : []), { dtype: 'I8' });
      g.initializer('ws', s(1, perChannel ? [n] : []))
        .initializer('xs', s(1))
        .initializer('xz', s(0), { dtype: 'U8' })
        .initializer('ys', s(256))
        .initializer('yz', s(128), { dtype: 'U8' });
      if (asConstant) g.node('QuantizeLinear', ['x', 'xs', 'xz'], ['xq0']).node('Cast', ['xq0'], ['xq'], { to: 2 }); // as torch exports it
      else g.node('QuantizeLinear', ['x', 'xs', 'xz'], ['xq']);
      const model = g
        .node('DequantizeLinear', ['xq', 'xs', 'xz'], ['xd'])
        .node('DequantizeLinear', ['w', 'ws', 'wz'], ['wd'], perChannel ? { axis: 1 } : {})
        .node('MatMul', ['xd', 'wd'], ['h'], {}, { name: 'fc' })
        .node('QuantizeLinear', ['h', 'ys', 'yz'], ['hq'])
        .node('DequantizeLinear', ['hq', 'ys', 'yz'], ['y'])
        .output('y', ['m', n])
        .build();
      const form = exactIntegerForm(model);
      assert.ok(form, `perChannel ${perChannel} constant ${asConstant}`);
      assert.equal(form.weightInfo('w.basin_u8').dtype, 'U8');
      assert.deepEqual(model.getRaw('w'), Uint8Array.from(b, (v) => v & 255), 'the model itself is left as it was');
      assert.deepEqual([...(await run(form, new Tensor([m, k], Float32Array.from(a))))], [...want], `perChannel ${perChannel} constant ${asConstant}`);
    }
});

test('exact integer form: QDQ Conv (1x1) and Gemm (transB) with per-output-channel int8 weights equal exact requantized int32 sums', async () => {
  const [m, k, n] = [3, 64, 5];
  const { a, b } = overflowing(m, k, n, 29);
  const wt = Float32Array.from({ length: n * k }, (_, i) => b[(i % k) * n + Math.floor(i / k)]!); // [n, k]: b transposed
  const want = Float32Array.from(integerMatMul(a, 0, b, 0, m, k, n), (t) => (Math.max(0, Math.min(255, rne(t / 256) + 128)) - 128) * 256);
  for (const op of ['Conv', 'Gemm'] as const) {
    const xShape = op === 'Conv' ? [m, k, 1, 1] : [m, k];
    const model = new GraphBuilder(17)
      .input('x', op === 'Conv' ? ['m', k, 1, 1] : ['m', k])
      .initializer('w', new Tensor(op === 'Conv' ? [n, k, 1, 1] : [n, k], wt), { dtype: 'I8' })
      .initializer('ws', new Tensor([n], new Float32Array(n).fill(1)))
      .initializer('wz', new Tensor([n], new Float32Array(n)), { dtype: 'I8' })
      .initializer('xs', new Tensor([], Float32Array.of(1)))
      .initializer('xz', new Tensor([], Float32Array.of(0)), { dtype: 'U8' })
      .initializer('ys', new Tensor([], Float32Array.of(256)))
      .initializer('yz', new Tensor([], Float32Array.of(128)), { dtype: 'U8' })
      .node('QuantizeLinear', ['x', 'xs', 'xz'], ['xq'])
      .node('DequantizeLinear', ['xq', 'xs', 'xz'], ['xd'])
      .node('DequantizeLinear', ['w', 'ws', 'wz'], ['wd'], { axis: 0 })
      .node(op, ['xd', 'wd'], ['h'], op === 'Gemm' ? { transB: 1 } : {}, { name: 'layer' })
      .node('QuantizeLinear', ['h', 'ys', 'yz'], ['hq'])
      .node('DequantizeLinear', ['hq', 'ys', 'yz'], ['y'])
      .output('y', op === 'Conv' ? ['m', n, 1, 1] : ['m', n])
      .build();
    const form = exactIntegerForm(model);
    assert.ok(form, op);
    assert.deepEqual([...(await run(form, new Tensor(xShape, Float32Array.from(a))))], [...want], op);
  }
});

test('quantize_static QDQ MLP 64-96-64-10 with full-range int8 weights (QuantizeLinear right after each MatMul, as the quantizer folds Relu): a random permutation verifies and keeps the int8 bytes', async () => {
  const r = rng(26);
  const g = new GraphBuilder(17).input('x', ['batch', 64]);
  const act = (x: string, y: string): void => {
    g.initializer(`${y}_s`, new Tensor([], Float32Array.of(1 / 255)))
      .initializer(`${y}_z`, new Tensor([], Float32Array.of(0)), { dtype: 'U8' })
      .node('QuantizeLinear', [x, `${y}_s`, `${y}_z`], [`${y}_q`])
      .node('DequantizeLinear', [`${y}_q`, `${y}_s`, `${y}_z`], [y]);
  };
  const layer = (x: string, y: string, i: number, o: number, axis: number | null): void => {
    const { q, scale, zp } = quantize(new Tensor([i, o], Float32Array.from({ length: i * o }, () => randn(r))), axis);
    g.initializer(`${y}_wq`, q, { dtype: 'I8' })
      .initializer(`${y}_ws`, scale)
      .initializer(`${y}_wz`, zp, { dtype: 'I8' })
      .node('DequantizeLinear', [`${y}_wq`, `${y}_ws`, `${y}_wz`], [`${y}_w`], axis === null ? {} : { axis })
      .node('MatMul', [x, `${y}_w`], [y], {}, { name: `${y}_fc` });
  };
  act('x', 'xd');
  layer('xd', 'h0', 64, 96, 1);
  act('h0', 'a0');
  layer('a0', 'h1', 96, 64, null);
  act('h1', 'a1');
  layer('a1', 'y', 64, 10, 1);
  const model = g.output('y', ['batch', 10]).build();
  const res = await infer(model);
  assert.equal(res.groups.filter((x) => x.kind === 'free').length, 2, JSON.stringify(res.groups.map((x) => [x.kind, x.size])));
  // randomlyPermute verifies its output (verify_failed otherwise), here in the exact integer form
  const { model: b, perms, verify } = await randomlyPermute(model, res.spec, 3);
  assert.ok(verify.equivalent);
  const p0 = res.spec.axes_to_perm['h0_wq']![1]!;
  assert.deepEqual(b.getRaw('h0_wq'), gather2d(model.getRaw('h0_wq'), 64, 96, 1, perms.get(p0)!));
  assert.equal(b.weightInfo('h0_wq').dtype, 'I8');
});

test('exact integer form: a MatMulInteger without zero points reads its activation type from the graph input; a weight shared with a DequantizeLinear and another MatMulInteger stays int8 for them', async () => {
  const [m, k, n] = [3, 16, 5];
  const { a, b } = overflowing(m, k, n, 24);
  const bq = new Tensor([k, n], Float32Array.from(b));
  const model = new GraphBuilder(17)
    .input('a', ['m', k], 'U8')
    .input('s', ['m', k], 'I8')
    .initializer('b', bq, { dtype: 'I8' })
    .initializer('bz', new Tensor([n], Float32Array.from({ length: n }, (_, j) => j - 2)), { dtype: 'I8' })
    .initializer('bs', new Tensor([], Float32Array.of(0.5)))
    .node('MatMulInteger', ['a', 'b'], ['y'], {}, { name: 'u8' })
    .node('MatMulInteger', ['s', 'b', '', 'bz'], ['z'], {}, { name: 's8' })
    .node('DequantizeLinear', ['b', 'bs'], ['bd'])
    .output('y', ['m', n], 'I32')
    .output('z', ['m', n], 'I32')
    .output('bd', [k, n])
    .build();
  const form = exactIntegerForm(model);
  assert.ok(form, 'the graph input says the activation is uint8');
  const node = (name: string) => form.proto.graph!.node!.find((x) => x.name === name)!;
  assert.deepEqual(node('u8').input, ['a', 'b.basin_u8', '', 'basin_u8_zero_point']);
  assert.deepEqual(node('s8').input, ['s', 'b', '', 'bz'], 'int8 activations are left as they are');
  const r = rng(25);
  const s8 = Int8Array.from({ length: m * k }, () => Math.floor(r() * 256) - 128);
  const sess = await createSession(form);
  try {
    const out = await sess.runRaw({ a: { data: a, dims: [m, k], type: 'uint8' }, s: { data: s8, dims: [m, k], type: 'int8' } });
    assert.deepEqual([...out.y!.data], [...integerMatMul(a, 0, b, 0, m, k, n)]);
    const z = new Int32Array(m * n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let t = 0; t < k; t++) z[i * n + j]! += s8[i * k + t]! * (b[t * n + j]! - (j - 2));
    assert.deepEqual([...out.z!.data], [...z]);
    assert.deepEqual([...out.bd!.data], [...Float32Array.from(b, (v) => v * 0.5)]);
  } finally {
    await sess.release();
  }
});

test('exact integer form: MatMulIntegers inside If branches (a merged decoder: one reads a main-graph weight, one its own) equal the exact int32 sums', async () => {
  const [m, k, n] = [3, 16, 5];
  const { a, b } = overflowing(m, k, n, 27);
  const neg = Int8Array.from(b, (v) => -v);
  const branch = (w: string, own?: Int8Array) => {
    const g = new GraphBuilder(17);
    if (own) g.initializer(w, new Tensor([k, n], Float32Array.from(own)), { dtype: 'I8' });
    return g.node('MatMulInteger', ['a', w, 'az', 'bz'], [`y_${w}`], {}, { name: `mmi_${w}` }).output(`y_${w}`, ['m', n], 'I32');
  };
  const model = new GraphBuilder(17)
    .input('a', ['m', k], 'U8')
    .input('c', [], 'BOOL')
    .initializer('b', new Tensor([k, n], Float32Array.from(b)), { dtype: 'I8' })
    .initializer('az', new Tensor([], Float32Array.of(3)), { dtype: 'U8' })
    .initializer('bz', new Tensor([], Float32Array.of(-2)), { dtype: 'I8' })
    .node('If', ['c'], ['y'], { then_branch: attr.graph(branch('b')), else_branch: attr.graph(branch('inner', neg)) }, { name: 'use_cache_branch' })
    .output('y', ['m', n], 'I32')
    .build();
  const form = exactIntegerForm(model);
  assert.ok(form, 'integer products in subgraphs have an exact form');
  const s = await createSession(form);
  try {
    for (const [c, w] of [[1, b], [0, neg]] as const) {
      const out = await s.runRaw({ a: { data: a, dims: [m, k], type: 'uint8' }, c: { data: Uint8Array.of(c), dims: [], type: 'bool' } });
      assert.deepEqual([...out.y!.data], [...integerMatMul(a, 3, w, -2, m, k, n)], `branch ${c ? 'then' : 'else'}`);
    }
  } finally {
    await s.release();
  }
});

test('exact integer form: a weight in external data, a typed (int32_data) zero point, initializers listed as graph inputs (IR 3)', async () => {
  const [m, k, n] = [3, 16, 5];
  const { a, b } = overflowing(m, k, n, 28);
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-exact-form-'));
  writeFileSync(path.join(dir, 'w.bin'), Uint8Array.from(b, (v) => v & 0xff));
  const proto = new GraphBuilder(10)
    .input('a', ['m', k], 'U8')
    .externalInitializer('b', new Tensor([k, n], Float32Array.from(b)), { dtype: 'I8', location: 'w.bin' })
    .initializer('az', new Tensor([], Float32Array.of(3)), { dtype: 'U8' })
    .initializer('bz', new Tensor([], Float32Array.of(-2)), { dtype: 'I8', storage: 'typed' })
    .node('MatMulInteger', ['a', 'b', 'az', 'bz'], ['y'], {}, { name: 'mmi' })
    .output('y', ['m', n], 'I32')
    .proto();
  proto.irVersion = 3n;
  for (const t of proto.graph!.initializer!) proto.graph!.input!.push(onnx.valueInfo({ name: t.name!, type: onnx.tensorType(t.dataType!, t.dims!) }));
  const file = path.join(dir, 'm.onnx');
  writeFileSync(file, onnx.encodeModel(proto));
  const model = await loadOnnx(file);
  assert.equal(model.weightInfo('b').storage, 'external');
  const form = exactIntegerForm(model);
  assert.ok(form);
  assert.deepEqual(form.proto.graph!.input!.map((v) => v.name), ['a', 'b', 'az', 'bz', 'b.basin_u8', 'bz.basin_u8'], 'the copies are graph inputs like every initializer');
  const s = await createSession(form);
  try {
    const out = await s.runRaw({ a: { data: a, dims: [m, k], type: 'uint8' } });
    assert.deepEqual([...out.y!.data], [...integerMatMul(a, 3, b, -2, m, k, n)]);
  } finally {
    await s.release();
  }
});
