import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Tensor } from '../src/tensor/tensor.js';
import { GraphBuilder } from '../src/onnx/build.js';
import { loadOnnx, type OnnxModel } from '../src/onnx/model.js';
import type { Feed } from '../src/onnx/session.js';
import { openDataset } from '../src/data/open.js';
import { PermutationSpec, type Assignment } from '../src/spec/spec.js';
import type { PermutationSpecJson } from '../src/spec/types.js';
import { randomAssignment } from '../src/spec/apply.js';
import { permuteModel, resolveSpec, verifyPermuted } from '../src/align/align-onnx.js';
import { inferPermutationSpec, probeModel } from '../src/graph/index.js';
import { CorrelationAccumulator, standardizeSamples, unitBlock } from '../src/match/correlation.js';
import { accumulateCorrelations, activationMatching, layerNormReads, restrictSpec } from '../src/match/activation-matching.js';
import { disposeEngine } from '../src/engine/matmul.js';
import { FIXTURES, assertAllClose, assertBasinError, randn, rng } from './helpers.js';

after(() => disposeEngine());

const TRAIN = path.join(FIXTURES, 'fmnist_train4k.safetensors');

// --- independent float64 references ------------------------------------------------------------------------

/** Units x samples in float64: moveaxis(axis, 0) of a row-major array, the block offset..offset+n*inner of the axis. */
function rowsOf(data: ArrayLike<number>, shape: number[], axis: number, offset = 0, n = shape[axis]!, inner = 1): number[][] {
  const rows: number[][] = Array.from({ length: n }, () => []);
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((x, y) => x * y, 1));
  const total = shape.reduce((x, y) => x * y, 1);
  for (let flat = 0; flat < total; flat++) {
    const idx = shape.map((d, i) => Math.floor(flat / strides[i]!) % d);
    const pos = idx[axis]! - offset;
    if (pos < 0 || pos >= n * inner) continue;
    rows[Math.floor(pos / inner)]!.push(data[flat]!);
  }
  return rows;
}

/** Pearson correlation of every row of x with every row of y (two-pass, float64). */
function corrRef(x: number[][], y: number[][]): number[] {
  const mean = (r: number[]) => r.reduce((s, v) => s + v, 0) / r.length;
  const out: number[] = [];
  for (const a of x) {
    const ma = mean(a);
    const sa = Math.sqrt(a.reduce((s, v) => s + (v - ma) ** 2, 0) / a.length);
    for (const b of y) {
      const mb = mean(b);
      const sb = Math.sqrt(b.reduce((s, v) => s + (v - mb) ** 2, 0) / b.length);
      let c = 0;
      for (let k = 0; k < a.length; k++) c += (a[k]! - ma) * (b[k]! - mb);
      out.push(c / a.length / (sa * sb));
    }
  }
  return out;
}

function randomArray(n: number, r: () => number, { mean = 0, scale = 1 } = {}): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = mean + scale * randn(r);
  return x;
}

/** Applying p to B undoes `applied` (the permutation that made B from A): applied[p[i]] = i for every perm. */
function assertUndoes(found: Assignment, applied: Assignment): void {
  for (const [name, q] of applied) {
    const p = found.get(name);
    assert.ok(p, `no permutation found for ${name}`);
    for (let i = 0; i < p.length; i++) assert.equal(q[p[i]!], i, `${name}[${i}]`);
  }
}

// --- the accumulator -------------------------------------------------------------------------------------------

test('streamed correlation equals a direct float64 computation (units on the last axis, on a middle axis, in a block)', async () => {
  const r = rng(7);
  const cases: { shape: number[]; axis: number; offset?: number; n?: number; inner?: number }[] = [
    { shape: [6, 5, 7], axis: 2 }, // tokens: [batch, seq, units]
    { shape: [4, 3, 5, 6], axis: 1 }, // conv: [batch, channels, h, w]
    { shape: [5, 12], axis: 1, offset: 4, n: 3, inner: 2 }, // one base perm inside a concat/expand axis
    { shape: [9, 4], axis: 0 }, // units first: every other axis is samples
  ];
  for (const c of cases) {
    const acc = new CorrelationAccumulator(c.n ?? c.shape[c.axis]!);
    const allA: number[][] = [];
    const allB: number[][] = [];
    for (let batch = 0; batch < 3; batch++) {
      const size = c.shape.reduce((x, y) => x * y, 1);
      // large offsets against a unit spread: E[ab] - E[a]E[b] would cancel badly without the shift
      const a = randomArray(size, r, { mean: 40, scale: 0.5 });
      const b = new Float32Array(size);
      for (let i = 0; i < size; i++) b[i] = -30 + 0.7 * (a[i]! - 40) + 0.3 * randn(r);
      const opts = { offset: c.offset, n: c.n, inner: c.inner };
      await acc.add(unitBlock(a, c.shape, c.axis, opts), unitBlock(b, c.shape, c.axis, opts));
      const ra = rowsOf(a, c.shape, c.axis, c.offset, c.n, c.inner);
      const rb = rowsOf(b, c.shape, c.axis, c.offset, c.n, c.inner);
      ra.forEach((row, i) => (allA[i] = [...(allA[i] ?? []), ...row]));
      rb.forEach((row, i) => (allB[i] = [...(allB[i] ?? []), ...row]));
    }
    assert.equal(acc.count, allA[0]!.length);
    assertAllClose(acc.correlation(), corrRef(allA, allB), { rtol: 1e-4, atol: 2e-5, label: `shape [${c.shape}] axis ${c.axis}` });
  }
});

test('a constant unit correlates 0 with everything; an empty accumulator gives zeros', async () => {
  const acc = new CorrelationAccumulator(2);
  assertAllClose(acc.correlation(), [0, 0, 0, 0]);
  const a = Float32Array.of(1, 5, 2, 5, 3, 5); // unit 1 constant
  const b = Float32Array.of(2, 1, 4, 2, 6, 3);
  await acc.add(unitBlock(a, [3, 2], 1), unitBlock(b, [3, 2], 1));
  assertAllClose(acc.correlation(), [1, 1, 0, 0], { atol: 1e-6 });
});

test('standardizing samples across units matches a direct per-sample z-score', () => {
  const r = rng(3);
  const shape = [3, 4, 5];
  const x = randomArray(60, r, { mean: 2, scale: 3 });
  const s = standardizeSamples(unitBlock(x, shape, 1));
  for (let o = 0; o < 3; o++) {
    for (let k = 0; k < 5; k++) {
      const col = [0, 1, 2, 3].map((i) => x[o * 20 + i * 5 + k]!);
      const m = col.reduce((p, v) => p + v, 0) / 4;
      const sd = Math.sqrt(col.reduce((p, v) => p + (v - m) ** 2, 0) / 4 + 1e-5);
      col.forEach((v, i) => assertAllClose(s.data[o * 20 + i * 5 + k]!, (v - m) / sd, { rtol: 1e-5, atol: 1e-6 }));
    }
  }
});

// --- small graphs ------------------------------------------------------------------------------------------------

/** x [batch, 6] -> Gemm(W1 [5, 6], b1) -> h -> Relu -> r -> Gemm(W2 [3, 5]) -> y */
function mlpGraph(seed: number): { model: OnnxModel; w1: Float32Array; b1: Float32Array } {
  const r = rng(seed);
  const w1 = randomArray(30, r);
  const b1 = randomArray(5, r, { scale: 0.3 });
  const model = new GraphBuilder(17)
    .input('x', ['batch', 6])
    .initializer('w1', new Tensor([5, 6], w1))
    .initializer('b1', new Tensor([5], b1))
    .initializer('w2', new Tensor([3, 5], randomArray(15, r)))
    .node('Gemm', ['x', 'w1', 'b1'], ['h'], { transB: 1 })
    .node('Relu', ['h'], ['r'])
    .node('Gemm', ['r', 'w2'], ['y'], { transB: 1 })
    .output('y', ['batch', 3])
    .build();
  return { model, w1, b1 };
}

const mlpGraphSpec = (points = true): PermutationSpecJson => ({
  axes_to_perm: { w1: ['P', null], b1: ['P'], w2: [null, 'P'] },
  perms: points ? { P: { size: 5, points: [{ value: 'h', axis: 1 }, { value: 'r', axis: -1 }] } } : {},
});

test('accumulateCorrelations sums the correlations of every point, as computed directly from the weights', async () => {
  const A = mlpGraph(1);
  const B = mlpGraph(2);
  const spec = await resolveSpec(A.model, mlpGraphSpec());
  const r = rng(5);
  const batches = [0, 1, 2].map(() => ({ x: new Tensor([16, 6], randomArray(96, r)) }));
  const { correlations, points, samples } = await accumulateCorrelations(spec, A.model, B.model, batches);
  assert.equal(samples, 48);
  assert.equal(points.get('P'), 2);
  // h = x W1ᵀ + b1 and relu(h), in float64 from the weights
  const acts = (m: { w1: Float32Array; b1: Float32Array }, relu: boolean) => {
    const rows: number[][] = Array.from({ length: 5 }, () => []);
    for (const { x } of batches) {
      for (let s = 0; s < 16; s++) {
        for (let i = 0; i < 5; i++) {
          let h = m.b1[i]!;
          for (let k = 0; k < 6; k++) h += x.data[s * 6 + k]! * m.w1[i * 6 + k]!;
          rows[i]!.push(relu ? Math.max(h, 0) : h);
        }
      }
    }
    return rows;
  };
  const pre = corrRef(acts(A, false), acts(B, false));
  const post = corrRef(acts(A, true), acts(B, true));
  // A unit dead on every sample has no correlation; the reference gives NaN there, the accumulator 0.
  const expected = pre.map((v, i) => v + (Number.isFinite(post[i]!) ? post[i]! : 0));
  assertAllClose(correlations.get('P')!, expected, { rtol: 1e-4, atol: 1e-5 });
});

test('a random permutation of a small MLP is recovered exactly; a perm without points falls back to weight matching', async () => {
  const { model: a } = mlpGraph(11);
  const r = rng(9);
  const batches = [0, 1].map(() => ({ x: new Tensor([64, 6], randomArray(384, r)) }));
  for (const withPoints of [true, false]) {
    const spec = await resolveSpec(a, mlpGraphSpec(withPoints));
    const applied = randomAssignment(spec, 4);
    const b = permuteModel(a, spec, applied);
    const res = await activationMatching(spec, a, b, batches);
    assertUndoes(res.perms, applied);
    if (withPoints) {
      assert.deepEqual(res.notes, []);
      assert.ok(res.objectiveAfter > res.objectiveBefore);
    } else {
      assert.equal(res.notes.length, 1);
      assert.match(res.notes[0]!, /'P'.*weight matching/);
    }
  }
});

/** x [batch, 5, 8] -> q, k, v (MatMul to H*dh) -> heads -> softmax(q kᵀ/2) v -> merge heads -> MatMul wo -> y. */
function attentionGraph(seed: number, heads: number, dh: number): OnnxModel {
  const r = rng(seed);
  const d = 8;
  const w = (shape: number[]) => new Tensor(shape, randomArray(shape.reduce((x, y) => x * y, 1), r, { scale: 0.5 }));
  const g = new GraphBuilder(17)
    .input('x', ['batch', 5, d])
    .initializer('wo', w([heads * dh, d]))
    .initializer('split', { dims: [4], int64: [0, 0, heads, dh] })
    .initializer('merge', { dims: [3], int64: [0, 0, heads * dh] })
    .constant('scale', 0.5);
  for (const p of ['q', 'k', 'v']) g.initializer(`w${p}`, w([d, heads * dh])).node('MatMul', ['x', `w${p}`], [p]).node('Reshape', [p, 'split'], [`${p}r`]);
  g.node('Transpose', ['qr'], ['qh'], { perm: [0, 2, 1, 3] })
    .node('Transpose', ['kr'], ['kh'], { perm: [0, 2, 3, 1] })
    .node('Transpose', ['vr'], ['vh'], { perm: [0, 2, 1, 3] })
    .node('MatMul', ['qh', 'kh'], ['s'])
    .node('Mul', ['s', 'scale'], ['ss'])
    .node('Softmax', ['ss'], ['p'], { axis: -1 })
    .node('MatMul', ['p', 'vh'], ['o'])
    .node('Transpose', ['o'], ['ot'], { perm: [0, 2, 1, 3] })
    .node('Reshape', ['ot', 'merge'], ['om'])
    .node('MatMul', ['om', 'wo'], ['y'])
    .output('y', ['batch', 5, d]);
  return g.build();
}

function attentionSpec(heads: number, dh: number, voPoints = true): PermutationSpecJson {
  const n = heads * dh;
  return {
    axes_to_perm: { wq: [null, 'P_qk'], wk: [null, 'P_qk'], wv: [null, 'P_vo'], wo: ['P_vo', null] },
    perms: {
      P_qk: { size: n, heads: { count: heads, tie: 'attn' }, points: [{ value: 'q', axis: 2 }, { value: 'k', axis: 2 }] },
      P_vo: { size: n, heads: { count: heads, tie: 'attn' }, ...(voPoints ? { points: [{ value: 'v', axis: 2 }, { value: 'om', axis: 2 }] } : {}) },
    },
  };
}

test('heads-tied permutations on an attention graph: head map and within-head assignments recovered exactly', async () => {
  const heads = 4;
  const dh = 3;
  const a = attentionGraph(21, heads, dh);
  const r = rng(13);
  const batches = [0, 1, 2].map(() => ({ x: new Tensor([24, 5, 8], randomArray(24 * 40, r)) }));
  for (const voPoints of [true, false]) {
    const spec = await resolveSpec(a, attentionSpec(heads, dh, voPoints));
    const applied = randomAssignment(spec, 8);
    // the applied permutation moves whole heads (not the identity head map), so the test is not trivial
    const headOf = (p: Int32Array, h: number) => Math.floor(p[h * dh]! / dh);
    assert.ok([0, 1, 2, 3].some((h) => headOf(applied.get('P_qk')!, h) !== h));
    const b = permuteModel(a, spec, applied);
    await verifyPermuted(a, b, 'permuted attention graph');
    const res = await activationMatching(spec, a, b, batches);
    assertUndoes(res.perms, applied);
    if (!voPoints) assert.match(res.notes.join('\n'), /heads tie 'attn'.*'P_vo'.*weight matching/);
  }
});

test('the fixture MLP permuted at random is recovered exactly from the training images, with progress per batch', async () => {
  const a = await loadOnnx(path.join(FIXTURES, 'mlp_small_seed0.onnx'));
  const spec = await resolveSpec(a, {
    axes_to_perm: {
      'layers.0.weight': ['P_0', null], 'layers.0.bias': ['P_0'],
      'layers.1.weight': ['P_1', 'P_0'], 'layers.1.bias': ['P_1'],
      'head.weight': [null, 'P_1'],
    },
    perms: {
      P_0: { size: 128, points: [{ value: '/layers.0/Gemm_output_0', axis: 1 }, { value: '/Relu_output_0', axis: 1 }] },
      P_1: { size: 128, points: [{ value: '/layers.1/Gemm_output_0', axis: 1 }, { value: '/Relu_1_output_0', axis: 1 }] },
    },
  });
  const applied = randomAssignment(spec, 3);
  const b = permuteModel(a, spec, applied);
  const data = await openDataset(TRAIN);
  const progress: number[] = [];
  const res = await activationMatching(spec, a, b, data, { limit: 500, batchSize: 128, onProgress: (p) => progress.push(p.samples) });
  assert.deepEqual(progress, [128, 256, 384, 500]);
  assert.equal(res.samples, 500);
  assertUndoes(res.perms, applied);
  // matched units are the same unit: correlation 1 at the pre-activation (ReLU outputs of dead units give 0)
  for (const c of res.correlations) assert.ok(c.after > 0.9 && c.after <= 1 + 1e-6, `${c.perm}: ${c.after}`);
});

test('the fixture ViT permuted at random (inferred spec: residual stream, heads, MLP) is recovered exactly', async () => {
  for (const file of ['vit_small_seed0.onnx', 'vit_small_seed0_opset17.onnx']) {
    const a = await loadOnnx(path.join(FIXTURES, file));
    const spec = await resolveSpec(a, inferPermutationSpec(a, await probeModel(a.proto)).spec);
    assert.ok(spec.ties.size === 1, 'the ViT has one heads tie');
    const applied = randomAssignment(spec, 5);
    const b = permuteModel(a, spec, applied);
    const res = await activationMatching(spec, a, b, await openDataset(TRAIN, { limit: 256 }));
    assertUndoes(res.perms, applied);
    // the residual stream is read through 3 LayerNorms: their inputs are what it is matched on
    assert.match(res.notes.join('\n'), /read through LayerNorm: matched on the 3 LayerNorm input\(s\)/);
  }
});

test('the fixture ResNet permuted at random (conv channels, residual adds) is recovered exactly', async () => {
  const a = await loadOnnx(path.join(FIXTURES, 'resnet_small_seed0.onnx'));
  const spec = await resolveSpec(a, inferPermutationSpec(a, await probeModel(a.proto)).spec);
  const applied = randomAssignment(spec, 9);
  const b = permuteModel(a, spec, applied);
  const res = await activationMatching(spec, a, b, await openDataset(TRAIN, { limit: 64 }), { batchSize: 32 });
  assertUndoes(res.perms, applied);
  assert.deepEqual(res.notes, []);
});

test('restrictSpec keeps only the chosen base perms: others become null axes or fixed blocks of a concat', () => {
  const shapes = new Map<string, number[]>([['w', [9, 2]], ['v', [2, 12]], ['u', [3, 4]]]);
  const spec = PermutationSpec.fromJson(
    {
      axes_to_perm: { w: ['cat', null], v: [null, 'flat'], u: ['A', 'B'] },
      perms: { cat: { size: 9, concat: ['A', 2, 'B'] }, flat: { size: 12, expand: { of: 'A', inner: 4 } } },
    },
    shapes,
  );
  const json = restrictSpec(spec, new Set(['B']));
  assert.deepEqual(json.axes_to_perm, { w: ['cat', null], u: [null, 'B'] });
  assert.deepEqual(json.perms!['cat']!.concat, [3, 2, 'B']);
  const sub = PermutationSpec.fromJson(json, shapes);
  assert.deepEqual(sub.free, ['B']);
  assert.deepEqual(sub.placementsOn('w', 0), [{ base: 'B', offset: 5, inner: 1 }]);
});

test('layerNormReads finds LayerNormalization and the decomposed ReduceMean/Sub/Div form, and nothing else', () => {
  const op = new GraphBuilder(17)
    .input('x', ['batch', 4, 6])
    .initializer('g', new Tensor([6], new Float32Array(6).fill(1)))
    .node('LayerNormalization', ['x', 'g'], ['y'], { axis: -1 })
    .node('ReduceMean', ['x'], ['m2'], { axes: [1] }) // a mean over tokens: no Sub/Div after it
    .output('y', ['batch', 4, 6])
    .output('m2')
    .build();
  const reads = layerNormReads(op);
  assert.deepEqual([...reads.keys()], ['x']);
  assert.deepEqual(reads.get('x')!.map((f) => f(3)), [[2]]);
  const dec = new GraphBuilder(13)
    .input('x', ['batch', 4, 6])
    .constant('eps', 1e-5)
    .node('ReduceMean', ['x'], ['m'], { axes: [-1] })
    .node('Sub', ['x', 'm'], ['c'])
    .node('Mul', ['c', 'c'], ['c2'])
    .node('ReduceMean', ['c2'], ['v'], { axes: [-1] })
    .node('Add', ['v', 'eps'], ['ve'])
    .node('Sqrt', ['ve'], ['sd'])
    .node('Div', ['c', 'sd'], ['y'])
    .output('y', ['batch', 4, 6])
    .build();
  const r2 = layerNormReads(dec);
  assert.deepEqual([...r2.keys()], ['x']);
  assert.deepEqual(r2.get('x')!.map((f) => f(3)), [[2]]);
});

// --- errors ------------------------------------------------------------------------------------------------------

test('errors: a point of the wrong size names the value; unknown values, wrong data shapes and empty data are refused', async () => {
  const { model: a } = mlpGraph(1);
  const { model: b } = mlpGraph(2);
  const feeds = [{ x: new Tensor([4, 6]) }];
  const g = new GraphBuilder(17)
    .input('x', ['batch', 6])
    .initializer('w1', new Tensor([5, 6]))
    .initializer('b1', new Tensor([5]))
    .initializer('w2', new Tensor([3, 5]))
    .node('Gemm', ['x', 'w1', 'b1'], ['h'], { transB: 1 })
    .node('Relu', ['h'], ['r'])
    .node('Gemm', ['r', 'w2'], ['y'], { transB: 1 })
    .output('y', ['batch', 3]);
  const model = g.build();
  const withPoints = async (points: { value: string; axis: number }[]) =>
    PermutationSpec.fromJson({ ...mlpGraphSpec(false), perms: { P: { size: 5, points } } }, new Map([['w1', [5, 6]], ['b1', [5]], ['w2', [3, 5]]]));
  const e = await assertBasinError(async () => activationMatching(await withPoints([{ value: 'y', axis: 1 }]), model, model, feeds), 'spec_size_mismatch');
  assert.equal(e.details['value'], 'y');
  assert.equal(e.details.found, 3);
  await assertBasinError(async () => activationMatching(await withPoints([{ value: 'nope', axis: 1 }]), a, b, feeds), 'spec_invalid');
  await assertBasinError(async () => activationMatching(await withPoints([{ value: 'h', axis: 2 }]), a, b, feeds), 'spec_invalid');
  await assertBasinError(async () => activationMatching(await withPoints([{ value: 'w1', axis: 0 }]), a, b, feeds), 'spec_invalid');
  const spec = await resolveSpec(a, mlpGraphSpec());
  // data checked against the model input before anything runs: 784-pixel images for a 6-input model
  const d = await assertBasinError(async () => activationMatching(spec, a, b, await openDataset(TRAIN)), 'data_shape_mismatch');
  assert.equal(d.details.tensor, 'x');
  await assertBasinError(() => activationMatching(spec, a, b, [{ x: new Tensor([4, 7]) }]), 'data_shape_mismatch');
  await assertBasinError(() => activationMatching(spec, a, b, [{ y: new Tensor([4, 6]) } as Record<string, Feed>]), 'invalid_argument');
  await assertBasinError(() => activationMatching(spec, a, b, []), 'data_invalid');
  await assertBasinError(() => activationMatching(spec, a, b, feeds, { limit: 0 }), 'invalid_argument');
});
