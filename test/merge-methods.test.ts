/**
 * The merge-method table (src/merge/methods/): every method against the independent numpy implementation of its
 * paper's definition (scripts/ref_merge_methods.py → test/refs/merge_methods.json, DARE with the masks stored
 * there), the option checks, and mergeTensors on small ONNX models: BatchNorm statistics, dtype rounding,
 * non-float constants, mismatches named, DARE seeded.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { f16ToF32, f32ToF16 } from '../src/dtype.js';
import { GraphBuilder } from '../src/onnx/build.js';
import type { OnnxModel } from '../src/onnx/model.js';
import { Tensor } from '../src/tensor/tensor.js';
import { MERGE_METHODS, MERGE_METHOD_NAMES, mergeMethod, type MergeMethodName, type MergeMethodOptions } from '../src/merge/methods/index.js';
import { mergeTensors, seededKeepMask } from '../src/merge/methods/merge-tensors.js';
import { assertAllClose, assertBasinError, randn, rng } from './helpers.js';

interface RefCase {
  method: MergeMethodName;
  options: MergeMethodOptions;
  shape: number[];
  models: number[][];
  base?: number[];
  masks?: number[][];
  expected: number[];
}
const REF = JSON.parse(readFileSync(new URL('../../test/refs/merge_methods.json', import.meta.url), 'utf8')) as { cases: RefCase[] };

test('every merge method has reference cases', () => {
  const covered = new Set(REF.cases.map((c) => c.method));
  assert.deepEqual([...covered].sort(), [...MERGE_METHOD_NAMES].sort());
});

for (const [i, c] of REF.cases.entries()) {
  test(`${c.method} case ${i} (${JSON.stringify(c.options)}) equals the numpy reference to 1e-6`, () => {
    const m = mergeMethod(c.method);
    const opts = m.resolve(c.options, c.models.length);
    const got = m.tensor(
      c.models.map((x) => Float64Array.from(x)),
      c.base ? Float64Array.from(c.base) : undefined,
      opts,
      {
        name: 't',
        shape: c.shape,
        keepMask: (k, density, size) => {
          assert.equal(density, c.options.density);
          assert.equal(size, c.masks![k]!.length);
          return Uint8Array.from(c.masks![k]!);
        },
      },
    );
    assertAllClose(got, c.expected, { atol: 1e-6, rtol: 0 });
  });
}

test('TIES keeps at least one entry, and exactly the top ⌊density·n⌋ magnitudes', () => {
  const base = new Float64Array(5);
  const theta = Float64Array.from([0.1, -0.5, 0.3, -0.2, 0.05]);
  const r = MERGE_METHODS.ties.resolve({ density: 0.4 }, 1);
  // one model: the elected sign is its own, the disjoint mean is itself: the 2 largest magnitudes survive
  assert.deepEqual(Array.from(MERGE_METHODS.ties.tensor([theta], base, r, { name: 'x', shape: [5] })), [0, -0.5, 0.3, 0, 0]);
  const r1 = MERGE_METHODS.ties.resolve({ density: 0.01 }, 1);
  assert.deepEqual(Array.from(MERGE_METHODS.ties.tensor([theta], base, r1, { name: 'x', shape: [5] })), [0, -0.5, 0, 0, 0]);
});

test('TIES elects the sign by mass and averages only the agreeing entries', () => {
  const base = Float64Array.from([1, 1]);
  const a = Float64Array.from([1 + 3, 1 - 1]); // τ = [3, -1]
  const b = Float64Array.from([1 - 1, 1 - 1]); // τ = [-1, -1]
  const c = Float64Array.from([1 - 1, 1 + 4]); // τ = [-1, 4]
  const r = MERGE_METHODS.ties.resolve({ density: 1 }, 3);
  // entry 0: sum 1 > 0 → only +3 agrees → 3/1; entry 1: sum 2 > 0 → only +4 → 4/1
  assert.deepEqual(Array.from(MERGE_METHODS.ties.tensor([a, b, c], base, r, { name: 'x', shape: [2] })), [4, 5]);
});

test('options: unknown method, unused option, density, weights count, t, seed, base and model count are refused naming the option', async () => {
  let e = await assertBasinError(() => mergeMethod('soup'), 'invalid_argument');
  assert.match(e.message, /soup/);
  e = await assertBasinError(() => MERGE_METHODS.linear.resolve({ density: 0.5 }, 2), 'invalid_argument');
  assert.match(e.message, /--density is not an option of --merge linear/);
  for (const d of [0, -0.1, 1.5, Number.NaN]) {
    e = await assertBasinError(() => MERGE_METHODS.ties.resolve({ density: d }, 2), 'invalid_argument');
    assert.match(e.message, /--density must be in \(0, 1\]/);
  }
  e = await assertBasinError(() => MERGE_METHODS['dare-ties'].resolve({}, 2), 'invalid_argument');
  assert.match(e.message, /needs --density/);
  e = await assertBasinError(() => MERGE_METHODS['task-arithmetic'].resolve({ weights: [1, 2, 3] }, 2), 'invalid_argument');
  assert.match(e.message, /--weights has 3 value\(s\) for 2 models/);
  e = await assertBasinError(() => MERGE_METHODS.average.resolve({ weights: [1, -1] }, 2), 'invalid_argument');
  assert.match(e.message, /non-negative/);
  e = await assertBasinError(() => MERGE_METHODS.slerp.resolve({ t: 1.5 }, 2), 'invalid_argument');
  assert.match(e.message, /--t must be in \[0, 1\]/);
  e = await assertBasinError(() => MERGE_METHODS['dare-linear'].resolve({ density: 0.5, seed: -1 }, 2), 'invalid_argument');
  assert.match(e.message, /--seed/);
  e = await assertBasinError(() => MERGE_METHODS.linear.resolve({ weights: [1, -1] }, 2), 'invalid_argument');
  assert.match(e.message, /sum to 0/);
  // base and model count, before any tensor is read
  const [m0, m1, m2] = [mlp(1), mlp(2), mlp(3)];
  e = await assertBasinError(() => mergeTensors([m0, m1], undefined, MERGE_METHODS.ties, MERGE_METHODS.ties.resolve({}, 2)), 'invalid_argument');
  assert.match(e.message, /--merge ties needs --base/);
  e = await assertBasinError(() => mergeTensors([m0, m1], m2, MERGE_METHODS.linear, MERGE_METHODS.linear.resolve({}, 2)), 'invalid_argument');
  assert.match(e.message, /does not use a base/);
  e = await assertBasinError(() => mergeTensors([m0, m1, m2], undefined, MERGE_METHODS.slerp, MERGE_METHODS.slerp.resolve({}, 3)), 'invalid_argument');
  assert.match(e.message, /exactly 2 model/);
});

/** A Gemm-BN-Relu-Gemm model with weights drawn from `seed`; dtype of the weights, optional shape change. */
function mlp(seed: number, { dtype = 'F32', hidden = 4, axes = [0] }: { dtype?: 'F32' | 'F16'; hidden?: number; axes?: number[] } = {}): OnnxModel {
  const r = rng(seed);
  const t = (shape: number[]) => new Tensor(shape, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => randn(r)));
  const g = new GraphBuilder(17);
  g.input('x', ['batch', 3]);
  g.initializer('fc1.weight', t([hidden, 3]), { dtype });
  g.initializer('fc1.bias', t([hidden]), { dtype });
  g.node('Gemm', ['x', 'fc1.weight', 'fc1.bias'], ['h'], { transB: 1 });
  g.initializer('bn.weight', t([hidden]), { dtype });
  g.initializer('bn.bias', t([hidden]), { dtype });
  g.initializer('bn.mean', t([hidden]), { dtype });
  g.initializer('bn.var', new Tensor([hidden], Float32Array.from({ length: hidden }, () => 0.5 + r())), { dtype });
  g.node('BatchNormalization', ['h', 'bn.weight', 'bn.bias', 'bn.mean', 'bn.var'], ['hb']);
  g.node('Relu', ['hb'], ['hr']);
  g.initializer('axes', { dims: [axes.length], int64: axes });
  g.node('Unsqueeze', ['hr', 'axes'], ['hu']);
  g.node('Squeeze', ['hu', 'axes'], ['hs']);
  g.initializer('fc2.weight', t([2, hidden]), { dtype });
  g.node('Gemm', ['hs', 'fc2.weight'], ['y'], { transB: 1 });
  g.output('y', ['batch', 2]);
  return g.build({ path: `mlp${seed}.onnx` });
}

const f32 = (m: OnnxModel, n: string) => Array.from(m.getFloat32(n).data);

test('mergeTensors: every float weight by the method, BN statistics by the plain mean, constants kept', () => {
  const base = mlp(10);
  const models = [mlp(11), mlp(12)];
  const opts = MERGE_METHODS['task-arithmetic'].resolve({ weights: [1, 2], lambda: 0.5 }, 2);
  const { merged, statistics } = mergeTensors(models, base, MERGE_METHODS['task-arithmetic'], opts);
  assert.deepEqual(statistics.sort(), ['bn.mean', 'bn.var']);
  for (const n of ['fc1.weight', 'fc1.bias', 'bn.weight', 'bn.bias', 'fc2.weight']) {
    const b = f32(base, n);
    const x = f32(models[0]!, n);
    const y = f32(models[1]!, n);
    const want = b.map((v, i) => Math.fround(v + 0.5 * (1 * (x[i]! - v) + 2 * (y[i]! - v))));
    assert.deepEqual(f32(merged, n), want, n);
  }
  for (const n of ['bn.mean', 'bn.var']) {
    const x = f32(models[0]!, n);
    const y = f32(models[1]!, n);
    assert.deepEqual(f32(merged, n), x.map((v, i) => Math.fround(v / 2 + y[i]! / 2)), n);
  }
  assert.deepEqual(merged.getInts('axes'), [0]);
});

test('mergeTensors: F16 weights are computed in float64 and rounded once to F16', () => {
  const base = mlp(20, { dtype: 'F16' });
  const models = [mlp(21, { dtype: 'F16' }), mlp(22, { dtype: 'F16' })];
  const m = MERGE_METHODS.ties;
  const { merged } = mergeTensors(models, base, m, m.resolve({ density: 0.5 }, 2));
  assert.equal(merged.weightInfo('fc1.weight').dtype, 'F16');
  const ref = m.tensor(
    models.map((x) => Float64Array.from(x.getFloat32('fc1.weight').data)),
    Float64Array.from(base.getFloat32('fc1.weight').data),
    m.resolve({ density: 0.5 }, 2),
    { name: 'fc1.weight', shape: [4, 3] },
  );
  assert.deepEqual(f32(merged, 'fc1.weight'), Array.from(ref, (v) => f16ToF32(f32ToF16(v))));
});

test('mergeTensors: a shape mismatch and a differing integer constant are models_mismatch naming the tensor', async () => {
  const base = mlp(30);
  let e = await assertBasinError(() => mergeTensors([mlp(31), mlp(32, { hidden: 5 })], base, MERGE_METHODS.ties, MERGE_METHODS.ties.resolve({}, 2)), 'models_mismatch');
  assert.match(e.message, /fc1\.weight/);
  assert.match(e.message, /mlp32\.onnx/);
  e = await assertBasinError(() => mergeTensors([mlp(31), mlp(33, { axes: [1] })], base, MERGE_METHODS.ties, MERGE_METHODS.ties.resolve({}, 2)), 'models_mismatch');
  assert.match(e.message, /axes/);
});

test('DARE: the masks are seeded per (seed, tensor, model), reproducible, with the density as keep rate; density 1 is task arithmetic', () => {
  const a = seededKeepMask(7, 'fc1.weight', 0, 0.3, 20000);
  assert.deepEqual(a, seededKeepMask(7, 'fc1.weight', 0, 0.3, 20000));
  assert.notDeepEqual(a, seededKeepMask(8, 'fc1.weight', 0, 0.3, 20000));
  assert.notDeepEqual(a, seededKeepMask(7, 'fc1.weight', 1, 0.3, 20000));
  assert.notDeepEqual(a, seededKeepMask(7, 'fc2.weight', 0, 0.3, 20000));
  const rate = a.reduce((s, v) => s + v, 0) / a.length;
  assert.ok(Math.abs(rate - 0.3) < 0.015, `keep rate ${rate}`);
  const base = mlp(40);
  const models = [mlp(41), mlp(42)];
  const run = (seed: number) => mergeTensors(models, base, MERGE_METHODS['dare-ties'], MERGE_METHODS['dare-ties'].resolve({ density: 0.5, seed }, 2)).merged;
  assert.deepEqual(f32(run(3), 'fc1.weight'), f32(run(3), 'fc1.weight'));
  assert.notDeepEqual(f32(run(3), 'fc1.weight'), f32(run(4), 'fc1.weight'));
  const d1 = mergeTensors(models, base, MERGE_METHODS['dare-linear'], MERGE_METHODS['dare-linear'].resolve({ density: 1 }, 2)).merged;
  const ta = mergeTensors(models, base, MERGE_METHODS['task-arithmetic'], MERGE_METHODS['task-arithmetic'].resolve({}, 2)).merged;
  for (const n of base.weights()) assert.deepEqual(f32(d1, n), f32(ta, n), n);
});

test('average and linear (normalized) agree with the weighted mean; slerp at t = 0 and 1 gives the end models bit for bit', () => {
  const models = [mlp(50), mlp(51)];
  const avg = mergeTensors(models, undefined, MERGE_METHODS.average, MERGE_METHODS.average.resolve({ weights: [1, 3] }, 2)).merged;
  const lin = mergeTensors(models, undefined, MERGE_METHODS.linear, MERGE_METHODS.linear.resolve({ weights: [0.25, 0.75] }, 2)).merged;
  for (const n of models[0]!.weights()) {
    const x = f32(models[0]!, n);
    const y = f32(models[1]!, n);
    const want = x.map((v, i) => Math.fround(0.25 * v + 0.75 * y[i]!));
    assertAllClose(f32(avg, n), want, { atol: 1e-6, rtol: 0 });
    assertAllClose(f32(lin, n), want, { atol: 1e-6, rtol: 0 });
  }
  for (const [t, k] of [[0, 0], [1, 1]] as const) {
    const s = mergeTensors(models, undefined, MERGE_METHODS.slerp, MERGE_METHODS.slerp.resolve({ t }, 2)).merged;
    for (const n of models[0]!.weights()) assert.deepEqual(f32(s, n), f32(models[k]!, n), `${n} t=${t}`);
  }
});
