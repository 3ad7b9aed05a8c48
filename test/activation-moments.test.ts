/**
 * The moment graph (src/match/moment-graph.ts): every model side by side in one session computing each point's
 * moments. Checked against correlations computed here in float64 (two-pass) from the raw activations, on points of
 * every layout it handles: conv channels with a large offset (the batched product, and the shift that keeps float32
 * accurate), [batch, units] values (the Gemm path), blocks of a derived (concat) permutation, a point read through
 * LayerNorm (standardized per sample), three models (every pair), a fixed-batch model and an fp16 model; and the
 * renaming of one model's names inside subgraphs.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor } from '../src/tensor/tensor.js';
import { GraphBuilder, attr } from '../src/onnx/build.js';
import type { OnnxModel } from '../src/onnx/model.js';
import { createSession, type Feed } from '../src/onnx/session.js';
import { resolveSpec } from '../src/align/align-onnx.js';
import type { PermutationSpecJson } from '../src/spec/types.js';
import { accumulateMoments, pairIndex } from '../src/match/activation-matching.js';
import { CorrelationAccumulator, unitBlock } from '../src/match/correlation.js';
import { disposeEngine } from '../src/engine/matmul.js';
import { createSession as createOrtSession, runtime } from '../src/engine/ort.js';
import { momentModel, momentNames } from '../src/match/moment-graph.js';
import { assertAllClose, randn, rng } from './helpers.js';

after(() => disposeEngine());

function randomArray(n: number, r: () => number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => scale * randn(r));
}

/**
 * x [batch, 2, 6, 6] -> Conv (6 channels, 3x3, pad 1) + 40 -> c -> Relu -> r -> ReduceMean over space -> g [batch, 6];
 * g -> MatMul wo -> y. A second conv (wl) + 40 -> l, as [batch, 36, 6] -> t -> LayerNormalization over the 6
 * channels -> ln -> MatMul wo2 -> y2. The first conv's channels carry the concat [Q, R] of two base permutations
 * (3 + 3); the second's carry L, read through LayerNorm.
 */
function model(seed: number, { batch = 'batch' as string | number, dtype = 'F32' as 'F32' | 'F16', offset = 40 } = {}): OnnxModel {
  const r = rng(seed);
  const g = new GraphBuilder(17)
    .input('x', [batch, 2, 6, 6], dtype)
    .initializer('w', new Tensor([6, 2, 3, 3], randomArray(108, r, 0.5)), { dtype })
    .initializer('wl', new Tensor([6, 2, 3, 3], randomArray(108, r, 0.5)), { dtype })
    .initializer('off', new Tensor([1], Float32Array.of(offset)), { dtype })
    .initializer('shape', { dims: [3], int64: [0, 6, 36] })
    .initializer('gamma', new Tensor([6], Float32Array.from({ length: 6 }, () => 1 + 0.1 * randn(r))), { dtype })
    .initializer('beta', new Tensor([6], randomArray(6, r, 0.1)), { dtype })
    .node('Conv', ['x', 'w'], ['c0'], { pads: [1, 1, 1, 1] })
    .node('Add', ['c0', 'off'], ['c'])
    .node('Relu', ['c'], ['r'])
    .node('ReduceMean', ['r'], ['g'], { axes: [2, 3], keepdims: 0 })
    .node('Conv', ['x', 'wl'], ['l0'], { pads: [1, 1, 1, 1] })
    .node('Add', ['l0', 'off'], ['l'])
    .node('Reshape', ['l', 'shape'], ['l3'])
    .node('Transpose', ['l3'], ['t'], { perm: [0, 2, 1] })
    .node('LayerNormalization', ['t', 'gamma', 'beta'], ['ln'], { axis: -1 })
    .initializer('wo', new Tensor([6, 2], randomArray(12, r)), { dtype })
    .initializer('wo2', new Tensor([6, 2], randomArray(12, r)), { dtype })
    .node('MatMul', ['g', 'wo'], ['y'])
    .node('MatMul', ['ln', 'wo2'], ['y2'])
    .output('y', [batch, 2], dtype)
    .output('y2', [batch, 36, 2], dtype);
  return g.build();
}

const SPEC: PermutationSpecJson = {
  axes_to_perm: { w: ['C', null, null, null], wl: ['L', null, null, null], gamma: ['L'], beta: ['L'], wo: ['C', null], wo2: ['L', null] },
  perms: {
    Q: { size: 3 },
    R: { size: 3 },
    C: { size: 6, concat: ['Q', 'R'], points: [{ value: 'c', axis: 1 }, { value: 'r', axis: 1 }, { value: 'g', axis: -1 }] },
    L: { size: 6, points: [{ value: 't', axis: 2 }, { value: 'l', axis: 1 }] },
  },
};

/** Units x samples (float64) of `axis` of a row-major array, units offset .. offset + n. */
function rowsOf(data: ArrayLike<number>, shape: readonly number[], axis: number, offset: number, n: number): number[][] {
  const rows: number[][] = Array.from({ length: n }, () => []);
  const inner = shape.slice(axis + 1).reduce((x, y) => x * y, 1);
  const size = shape[axis]!;
  for (let flat = 0; flat < data.length; flat++) {
    const u = Math.floor(flat / inner) % size;
    if (u >= offset && u < offset + n) rows[u - offset]!.push(data[flat]!);
  }
  return rows;
}

/** Each sample (column) standardized across the units (rows), float64. */
function standardized(rows: number[][]): number[][] {
  const n = rows.length;
  const out = rows.map((r) => r.slice());
  for (let s = 0; s < rows[0]!.length; s++) {
    const col = rows.map((r) => r[s]!);
    const m = col.reduce((a, b) => a + b, 0) / n;
    const sd = Math.sqrt(col.reduce((a, b) => a + (b - m) ** 2, 0) / n + 1e-5);
    for (let i = 0; i < n; i++) out[i]![s] = (col[i]! - m) / sd;
  }
  return out;
}

/** Pearson correlation of every row of x with every row of y (two-pass, float64). */
function corrRef(x: number[][], y: number[][]): number[] {
  const stats = (r: number[]) => {
    const m = r.reduce((s, v) => s + v, 0) / r.length;
    return { d: r.map((v) => v - m), sd: Math.sqrt(r.reduce((s, v) => s + (v - m) ** 2, 0) / r.length) };
  };
  const xs = x.map(stats);
  const ys = y.map(stats);
  const out: number[] = [];
  for (const a of xs) {
    for (const b of ys) {
      let c = 0;
      for (let k = 0; k < a.d.length; k++) c += a.d[k]! * b.d[k]!;
      out.push(a.sd * b.sd === 0 ? 0 : c / a.d.length / (a.sd * b.sd));
    }
  }
  return out;
}

/** The activations of each model at `values` over every batch, as float32 arrays with their shapes. */
async function activations(models: OnnxModel[], values: string[], batches: Record<string, Feed>[]) {
  const out: { shape: readonly number[]; data: number[] }[][][] = [];
  for (const m of models) {
    const s = await createSession(m, { extraOutputs: values });
    const perBatch = [];
    for (const feeds of batches) {
      const y = await s.run(feeds, values);
      perBatch.push(values.map((v) => ({ shape: y[v]!.shape, data: Array.from(y[v]!.data) })));
    }
    out.push(perBatch);
    await s.release();
  }
  return out;
}

/** Check every use's correlation, for every model pair, against the float64 reference. */
async function checkAgainstReference(models: OnnxModel[], batches: Record<string, Feed>[], expectVia: 'graph' | 'sessions', atol = 2e-5) {
  const spec = await resolveSpec(models[0]!, SPEC);
  const notes: string[] = [];
  const pm = await accumulateMoments(spec, models, batches, {}, notes);
  assert.equal(pm.via, expectVia);
  assert.match(notes.join('\n'), /'L' is read through LayerNorm: matched on the 1 LayerNorm input/);
  // C's three points count for Q and R block by block (6 uses), L keeps only its LayerNorm input t
  assert.deepEqual(
    pm.uses.map((u) => `${u.value}:${u.base}`),
    ['c:Q', 'c:R', 'r:Q', 'r:R', 'g:Q', 'g:R', 't:L'],
  );
  const where: Record<string, { axis: number; offset: number; n: number; std: boolean }> = {
    'c:Q': { axis: 1, offset: 0, n: 3, std: false },
    'c:R': { axis: 1, offset: 3, n: 3, std: false },
    'r:Q': { axis: 1, offset: 0, n: 3, std: false },
    'r:R': { axis: 1, offset: 3, n: 3, std: false },
    'g:Q': { axis: 1, offset: 0, n: 3, std: false },
    'g:R': { axis: 1, offset: 3, n: 3, std: false },
    't:L': { axis: 2, offset: 0, n: 6, std: true },
  };
  const values = ['c', 'r', 'g', 't'];
  const acts = await activations(models, values, batches);
  const rows = (m: number, u: { value: string; base: string }) => {
    const w = where[`${u.value}:${u.base}`]!;
    const all: number[][] = Array.from({ length: w.n }, () => []);
    for (const b of acts[m]!) {
      const a = b[values.indexOf(u.value)]!;
      const r = rowsOf(a.data, a.shape, w.axis, w.offset, w.n);
      const rr = w.std ? standardized(r) : r;
      rr.forEach((row, i) => all[i]!.push(...row));
    }
    return all;
  };
  const n = models.length;
  pm.uses.forEach((u, k) => {
    for (let j = 0; j < n; j++) {
      for (let l = j + 1; l < n; l++) {
        const acc = pm.pairs[k]![pairIndex(j, l, n)]!;
        const expected = corrRef(rows(j, u), rows(l, u));
        assertAllClose(acc.correlation(), expected, { rtol: 1e-4, atol, label: `${u.value} (${u.base}) models ${j}, ${l}` });
      }
    }
  });
}

/** Batches of float32 inputs (converted to fp16 for an fp16 model by the feed). */
function batchesOf(sizes: number[], seed: number): Record<string, Feed>[] {
  const r = rng(seed);
  return sizes.map((b) => ({ x: new Tensor([b, 2, 6, 6], randomArray(b * 72, r)) }));
}

test('three models through the moment graph: every pair and every point layout equals a float64 reference', async () => {
  await checkAgainstReference([model(1), model(2), model(3)], batchesOf([5, 7, 3], 11), 'graph');
});

test('the per-model sessions (the fallback) give the same correlations', async () => {
  const models = [model(4), model(5)];
  const spec = await resolveSpec(models[0]!, SPEC);
  const batches = batchesOf([8, 8], 12);
  const g = await accumulateMoments(spec, models, batches, { moments: 'graph' });
  const s = await accumulateMoments(spec, models, batches, { moments: 'sessions' });
  assert.equal(g.via, 'graph');
  assert.equal(s.via, 'sessions');
  g.pairs.forEach((p, k) => assertAllClose(p[0]!.correlation(), s.pairs[k]![0]!.correlation(), { rtol: 1e-4, atol: 1e-5, label: g.uses[k]!.value }));
});

test('a fixed-batch model and an fp16 model go through the moment graph too', async () => {
  await checkAgainstReference([model(6, { batch: 4 }), model(7, { batch: 4 })], batchesOf([4, 4, 4], 13), 'graph');
  // onnxruntime runs fp16 Conv/Add on the CPU in float32 between inserted casts; where the graph casts a point back
  // to float32 it drops the fp16 round trip, so the graph reads the points unrounded and the reference rounded to
  // fp16. Without the offset of 40 (fp16 spacing 1/32 there) that rounding is ~1e-3 of a unit's spread.
  await checkAgainstReference([model(8, { dtype: 'F16', offset: 0 }), model(9, { dtype: 'F16', offset: 0 })], batchesOf([6, 6], 14), 'graph', 2e-3);
});

test('addMoments folds batch moments about any shift exactly: same totals as adding the raw blocks', async () => {
  const r = rng(21);
  const n = 3;
  const viaBlocks = new CorrelationAccumulator(n);
  const viaMoments = new CorrelationAccumulator(n);
  for (let batch = 0; batch < 3; batch++) {
    const count = 50;
    const a = Array.from({ length: count * n }, () => 20 + randn(r));
    const b = a.map((v) => -5 + 0.5 * v + randn(r));
    // [count, n] blocks, units on the last axis
    await viaBlocks.add(unitBlock(Float32Array.from(a), [count, n], 1), unitBlock(Float32Array.from(b), [count, n], 1));
    // moments about an arbitrary shift, computed here in float64
    const shiftA = Array.from({ length: n }, () => 20 + 3 * randn(r));
    const shiftB = Array.from({ length: n }, () => 5 * randn(r));
    const fa = Float32Array.from(a);
    const fb = Float32Array.from(b);
    const sumA = new Float64Array(n);
    const sqA = new Float64Array(n);
    const sumB = new Float64Array(n);
    const sqB = new Float64Array(n);
    const cross = new Float64Array(n * n);
    for (let s = 0; s < count; s++) {
      for (let i = 0; i < n; i++) {
        const x = fa[s * n + i]! - shiftA[i]!;
        const y = fb[s * n + i]! - shiftB[i]!;
        sumA[i]! += x;
        sqA[i]! += x * x;
        sumB[i]! += y;
        sqB[i]! += y * y;
        for (let j = 0; j < n; j++) cross[i * n + j]! += x * (fb[s * n + j]! - shiftB[j]!);
      }
    }
    viaMoments.addMoments({ count, meanA: shiftA, sumA, sqA, meanB: shiftB, sumB, sqB, cross });
  }
  assert.equal(viaMoments.count, viaBlocks.count);
  assertAllClose(viaMoments.correlation(), viaBlocks.correlation(), { rtol: 1e-5, atol: 1e-6 });
  const ma = viaMoments.means();
  const mb = viaBlocks.means();
  assertAllClose(ma.a, mb.a, { rtol: 1e-6 });
  assertAllClose(ma.b, mb.b, { rtol: 1e-6 });
});

test('models with subgraphs share one moment graph: names inside If branches are renamed with their model', async () => {
  const branch = (op: string, out: string) => new GraphBuilder(17).node(op, ['h', 'w'], [out]).output(out);
  const ifModel = (w: number[]) =>
    new GraphBuilder(17)
      .input('x', ['b', 3])
      .initializer('w', new Tensor([3], Float32Array.from(w)))
      .initializer('c', { dims: [], int64: [1] })
      .node('Cast', ['c'], ['cb'], { to: 9 })
      .node('Relu', ['x'], ['h'])
      .node('If', ['cb'], ['y'], { then_branch: attr.graph(branch('Add', 'o1')), else_branch: attr.graph(branch('Sub', 'o2')) })
      .output('y', ['b', 3])
      .build();
  // the two models differ only in the weight their then-branch reads
  const bytes = momentModel([ifModel([1, 2, 3]), ifModel([10, 20, 30])], [{ value: 'y', axis: 1, axisSize: 3, offset: 0, n: 3, inner: 1, standardize: false, run: 1 }]);
  assert.ok(bytes);
  const session = await createOrtSession(bytes, 'test');
  const x = Float32Array.from({ length: 12 }, (_, i) => i - 5); // relu rows: 0 0 0 | 0 0 0 | 1 2 3 | 4 5 6
  const out = await session.run({ x: new (runtime().Tensor)('float32', x, [4, 3]), [momentNames.shift(0)]: new (runtime().Tensor)('float32', new Float32Array(7), [7, 1]) });
  await session.release();
  const ya = [[1, 2, 3], [1, 2, 3], [2, 4, 6], [5, 7, 9]];
  const yb = [[10, 20, 30], [10, 20, 30], [11, 22, 33], [14, 25, 36]];
  const rows = [0, 1, 2].map((i) => ya.map((r) => r[i]!)).concat([0, 1, 2].map((i) => yb.map((r) => r[i]!)), [[1, 1, 1, 1]]);
  const gram = rows.flatMap((r) => rows.map((c) => r.reduce((t, v, s) => t + v * c[s]!, 0)));
  assertAllClose(out[momentNames.gram(0)]!.data as Float32Array, gram, { rtol: 1e-6 });
  assert.deepEqual(Array.from(out[momentNames.shape(0)]!.data as BigInt64Array, Number), [4, 3, 1]);
});
