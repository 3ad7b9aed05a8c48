import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { f16ToF32, f32ToF16 } from '../src/dtype.js';
import { Tensor } from '../src/tensor/tensor.js';
import { GraphBuilder } from '../src/onnx/build.js';
import { loadOnnx, type OnnxModel } from '../src/onnx/model.js';
import { openDataset } from '../src/data/open.js';
import { evaluate } from '../src/eval/evaluate.js';
import { averageModels, interpolateModels } from '../src/merge/interpolate.js';
import { CORRECTION_NAMES, correction } from '../src/merge/corrections.js';
import { FIXTURES, assertAllClose, assertBasinError, randn, rng } from './helpers.js';

const REFS = new URL('../../test/refs/', import.meta.url).pathname;

interface Parts {
  w: Float32Array; // [3, 4] F32, raw storage
  h: Float32Array; // [3] F16 values (exactly representable)
  d: Float64Array; // [3] F64
  k: Float32Array; // Constant node [3]
}

function parts(seed: number): Parts {
  const r = rng(seed);
  const f16 = (): number => f16ToF32(f32ToF16(randn(r)));
  return {
    w: Float32Array.from({ length: 12 }, () => randn(r)),
    h: Float32Array.from({ length: 3 }, f16),
    d: Float64Array.from({ length: 3 }, () => randn(r) / 3),
    k: Float32Array.from({ length: 3 }, () => randn(r)),
  };
}

/** y = ((x @ w^T + h) + d) * k, with a Reshape whose int64 shape is a non-float constant. */
function model(p: Parts, { shapeConst = [-1, 4], wShape = [3, 4] }: { shapeConst?: number[]; wShape?: number[] } = {}): OnnxModel {
  const g = new GraphBuilder(17);
  g.input('x', ['batch', 4]);
  g.initializer('shape', { dims: [shapeConst.length], int64: shapeConst });
  g.initializer('w', new Tensor(wShape, p.w));
  g.initializer('h', new Tensor([3], p.h), { dtype: 'F16' });
  g.initializer('d', new Tensor([3], Float32Array.from(p.d)), { dtype: 'F64' });
  g.constant('k', new Tensor([3], p.k));
  g.node('Reshape', ['x', 'shape'], ['xr']);
  g.node('Gemm', ['xr', 'w'], ['y0'], { transB: 1 });
  g.node('Cast', ['h'], ['hf'], { to: 1 });
  g.node('Add', ['y0', 'hf'], ['y1']);
  g.node('Cast', ['d'], ['df'], { to: 1 });
  g.node('Add', ['y1', 'df'], ['y2']);
  g.node('Mul', ['y2', 'k'], ['y']);
  g.output('y', ['batch', 3]);
  return g.build();
}

function f64(m: OnnxModel, name: string): Float64Array {
  const raw = m.getRaw(name);
  return new Float64Array(raw.buffer, raw.byteOffset, raw.byteLength / 8);
}

test('interpolateModels: every float weight is (1-a)A + aB in its own dtype; other constants kept', () => {
  const pa = parts(1);
  const pb = parts(2);
  // F64 weights must round-trip exactly: set them through raw bytes (the builder went through float32)
  const A = model(pa);
  const B = model(pb);
  A.setRaw('d', new Uint8Array(pa.d.buffer));
  B.setRaw('d', new Uint8Array(pb.d.buffer));
  for (const alpha of [0.3, 0.5, -0.25, 1.5]) {
    const M = interpolateModels(A, B, alpha);
    const lerp = (x: number, y: number): number => (1 - alpha) * x + alpha * y;
    assert.deepEqual(Array.from(M.getFloat32('w').data), Array.from(pa.w, (x, i) => Math.fround(lerp(x, pb.w[i]!))), `w at ${alpha}`);
    assert.deepEqual(Array.from(M.getFloat32('k').data), Array.from(pa.k, (x, i) => Math.fround(lerp(x, pb.k[i]!))), `k at ${alpha}`);
    // F16: rounded once, to nearest
    assert.deepEqual(Array.from(M.getFloat32('h').data), Array.from(pa.h, (x, i) => f16ToF32(f32ToF16(lerp(x, pb.h[i]!)))), `h at ${alpha}`);
    assert.deepEqual(Array.from(f64(M, 'd')), Array.from(pa.d, (x, i) => lerp(x, pb.d[i]!)), `d at ${alpha}`);
    assert.equal(M.weightInfo('h').dtype, 'F16');
    assert.equal(M.weightInfo('d').dtype, 'F64');
    assert.equal(M.weightInfo('k').storage, 'constant');
    assert.deepEqual(M.getInts('shape'), [-1, 4]);
  }
  // the end points are exact
  for (const [alpha, src] of [[0, A], [1, B]] as const) {
    const M = interpolateModels(A, B, alpha);
    for (const n of A.weights()) assert.deepEqual(M.getRaw(n), src.getRaw(n), `${n} at alpha ${alpha}`);
  }
  // the inputs are untouched
  assert.deepEqual(Array.from(A.getFloat32('w').data), Array.from(pa.w));
});

test('interpolateModels: mismatched models and bad alpha', async () => {
  const p = parts(3);
  const A = model(p);
  await assertBasinError(() => interpolateModels(A, model(p, { shapeConst: [-1, 2, 2] }).clone(), 0.5), 'models_mismatch');
  const e1 = await assertBasinError(() => interpolateModels(A, model(p, { shapeConst: [0, 4] }), 0.5), 'models_mismatch');
  assert.equal(e1.details.tensor, 'shape');
  const e2 = await assertBasinError(() => interpolateModels(A, model({ ...p, w: new Float32Array(12) }, { wShape: [4, 3] }), 0.5), 'models_mismatch');
  assert.equal(e2.details.tensor, 'w');
  // a weight stored in another dtype
  const g = new GraphBuilder(17);
  g.input('x', ['batch', 4]).initializer('w', new Tensor([3, 4], p.w), { dtype: 'F16' }).node('Gemm', ['x', 'w'], ['y'], { transB: 1 }).output('y');
  const h = new GraphBuilder(17);
  h.input('x', ['batch', 4]).initializer('w', new Tensor([3, 4], p.w)).node('Gemm', ['x', 'w'], ['y'], { transB: 1 }).output('y');
  const e3 = await assertBasinError(() => interpolateModels(g.build(), h.build(), 0.5), 'models_mismatch');
  assert.equal(e3.details.tensor, 'w');
  // a weight only one model has, either way round
  const extra = new GraphBuilder(17);
  extra.input('x', ['batch', 4]).initializer('w', new Tensor([3, 4], p.w)).initializer('v', new Tensor([3])).node('Gemm', ['x', 'w', 'v'], ['y'], { transB: 1 }).output('y');
  assert.equal((await assertBasinError(() => interpolateModels(h.build(), extra.build(), 0.5), 'models_mismatch')).details.tensor, 'v');
  assert.equal((await assertBasinError(() => interpolateModels(extra.build(), h.build(), 0.5), 'models_mismatch')).details.tensor, 'v');
  for (const bad of [NaN, Infinity]) await assertBasinError(() => interpolateModels(A, A, bad), 'invalid_argument');
});

test('averageModels: normalized weights, equal by default, argument errors', async () => {
  const ps = [parts(4), parts(5), parts(6)];
  const ms = ps.map((p) => model(p));
  const M = averageModels(ms, [1, 2, 1]);
  assertAllClose(M.getFloat32('w').data, Array.from(ps[0]!.w, (x, i) => 0.25 * x + 0.5 * ps[1]!.w[i]! + 0.25 * ps[2]!.w[i]!), { rtol: 1e-6, atol: 1e-7 });
  assertAllClose(M.getFloat32('k').data, Array.from(ps[0]!.k, (x, i) => 0.25 * x + 0.5 * ps[1]!.k[i]! + 0.25 * ps[2]!.k[i]!), { rtol: 1e-6, atol: 1e-7 });
  const E = averageModels(ms);
  assertAllClose(E.getFloat32('w').data, Array.from(ps[0]!.w, (x, i) => (x + ps[1]!.w[i]! + ps[2]!.w[i]!) / 3), { rtol: 1e-6, atol: 1e-7 });
  // two models with weights (1, 1) are the alpha = 0.5 interpolation
  assert.deepEqual(averageModels(ms.slice(0, 2)).getRaw('w'), interpolateModels(ms[0]!, ms[1]!, 0.5).getRaw('w'));
  // one model, or a zero weight on the others: that model exactly
  assert.deepEqual(averageModels([ms[1]!]).getRaw('w'), ms[1]!.getRaw('w'));
  assert.deepEqual(averageModels(ms, [0, 3, 0]).getRaw('k'), ms[1]!.getRaw('k'));
  await assertBasinError(() => averageModels([]), 'invalid_argument');
  await assertBasinError(() => averageModels(ms, [1, 1]), 'invalid_argument');
  await assertBasinError(() => averageModels(ms, [1, -1, 1]), 'invalid_argument');
  await assertBasinError(() => averageModels(ms, [1, NaN, 1]), 'invalid_argument');
  await assertBasinError(() => averageModels(ms, [1, Infinity, 1]), 'invalid_argument');
  await assertBasinError(() => averageModels(ms, [0, 0, 0]), 'invalid_argument');
  await assertBasinError(() => averageModels([ms[0]!, model(parts(7), { shapeConst: [-1, 1, 4] })]), 'models_mismatch');
});

test('interpolateModels on the fixture MLP pair reproduces the naive curve of test/refs/merge_mlp_small.json', async () => {
  const ref = JSON.parse(readFileSync(path.join(REFS, 'merge_mlp_small.json'), 'utf8')) as {
    naive: { curve: { alpha: number; loss: number; acc: number }[] };
  };
  const A = await loadOnnx(path.join(FIXTURES, 'mlp_small_seed0.onnx'));
  const B = await loadOnnx(path.join(FIXTURES, 'mlp_small_seed1.onnx'));
  const ds = await openDataset(path.join(FIXTURES, 'fmnist_test1k.safetensors'));
  for (const pt of ref.naive.curve) {
    const r = await evaluate(interpolateModels(A, B, pt.alpha), ds);
    assertAllClose(r.loss, pt.loss, { rtol: 1e-4, atol: 0, label: `loss at ${pt.alpha}` });
    assertAllClose(r.accuracy, pt.acc, { atol: 0.0015, rtol: 0, label: `accuracy at ${pt.alpha}` });
  }
});

test('corrections table: names, descriptions, unknown name, data requirement, reset-bn refuses a graph without BatchNorm naming the file', async () => {
  assert.deepEqual([...CORRECTION_NAMES].sort(), ['repair', 'reset-bn']);
  for (const n of CORRECTION_NAMES) {
    assert.ok(correction(n).description.length > 10);
    assert.equal(correction(n).needsData, true);
  }
  const e = await assertBasinError(() => correction('ties'), 'invalid_argument');
  assert.match(e.message, /reset-bn/);
  await assertBasinError(() => correction('toString'), 'invalid_argument');
  await assertBasinError(() => correction('none'), 'invalid_argument');
  const A = model(parts(8));
  await assertBasinError(() => correction('repair').apply(A, { a: A, b: A, alpha: 0.5 }, undefined, {}), 'invalid_argument');
  await assertBasinError(() => correction('reset-bn').apply(A, { a: A, b: A, alpha: 0.5 }, undefined, {}), 'invalid_argument');
  // the row's own check, before any compute: this graph has no BatchNormalization node
  const c = await assertBasinError(() => correction('reset-bn').check(A, 'models/a\u001b[2J.onnx'), 'invalid_argument');
  assert.match(c.message, /'models\/a\\x1b\[2J\.onnx' has no BatchNormalization/);
  assert.match(c.message, /use --repair/);
  correction('repair').check(A, 'a.onnx');
  const bn = await loadOnnx(path.join(FIXTURES, 'resnet_small_seed0_bn.onnx'));
  correction('reset-bn').check(bn, 'resnet_small_seed0_bn.onnx');
});
