/**
 * Matrix engine: products against a naive float64 triple loop, across shapes, transpose classes, dtypes and both
 * sides of the TypeScript/onnxruntime crossover; Gram sums; session caching; argument errors.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertAllClose, assertBasinError, randn, rng } from './helpers.js';
import {
  MATMUL_CROSSOVER_FLOPS,
  disposeEngine,
  engineThreads,
  gramSum,
  matmul,
  matmulAccumulate,
  matmulTs,
  setEngineThreads,
  type GramTerm,
} from '../src/engine/matmul.js';
import { BasinError } from '../src/errors.js';
import { cachedSessionCount } from '../src/engine/ort.js';

after(() => disposeEngine());

function randomF32(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = randn(r);
  return x;
}

/** op(A)·op(B) in float64 by the definition, reading the stored operands with explicit index maps. */
function naive(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number, transA: boolean, transB: boolean): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) {
        const aip = transA ? a[p * m + i]! : a[i * k + p]!;
        const bpj = transB ? b[j * k + p]! : b[p * n + j]!;
        s += aip * bpj;
      }
      c[i * n + j] = s;
    }
  }
  return c;
}

/** Tolerance for a float32 product with contraction length k against a float64 reference. */
function f32Tol(a: ArrayLike<number>, b: ArrayLike<number>, k: number): { rtol: number; atol: number } {
  let amax = 0;
  let bmax = 0;
  for (let i = 0; i < a.length; i++) amax = Math.max(amax, Math.abs(a[i]!));
  for (let i = 0; i < b.length; i++) bmax = Math.max(bmax, Math.abs(b[i]!));
  // Rounding of a length-k float32 dot product: ~k·2⁻²⁴·Σ|a||b| in the worst case; the inputs are exact in float32.
  return { rtol: 1e-4, atol: 1e-5 * Math.sqrt(Math.max(k, 1)) * amax * bmax };
}

const TRANS: [boolean, boolean][] = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 7, 1],
  [1, 300, 1],
  [1, 9, 13],
  [11, 6, 1],
  [5, 1, 8], // outer product
  [3, 5, 7],
  [17, 4, 29],
  [64, 64, 64],
  [1, 512, 300],
  [700, 96, 1],
  [97, 150, 61],
  [33, 257, 129],
];

describe('matmul', () => {
  test('the test shapes lie on both sides of the crossover', () => {
    const flops = SHAPES.map(([m, k, n]) => 2 * m * k * n);
    assert.ok(flops.some((f) => f <= MATMUL_CROSSOVER_FLOPS), 'no shape runs in TypeScript');
    assert.ok(flops.filter((f) => f > MATMUL_CROSSOVER_FLOPS).length >= 3, 'too few shapes run on the engine');
  });

  for (const [m, k, n] of SHAPES) {
    for (const [transA, transB] of TRANS) {
      test(`${m}×${k}·${k}×${n} transA=${transA} transB=${transB}`, async () => {
        const a = randomF32(m * k, m * 1000 + k);
        const b = randomF32(k * n, n * 1000 + k + 1);
        const aShape: [number, number] = transA ? [k, m] : [m, k];
        const bShape: [number, number] = transB ? [n, k] : [k, n];
        const got = await matmul(a, aShape, b, bShape, { transA, transB });
        assert.ok(got instanceof Float32Array);
        assertAllClose(got, naive(a, b, m, k, n, transA, transB), { ...f32Tol(a, b, k), label: 'auto' });
      });
    }
  }

  test('both backends agree with the reference on the same products', async () => {
    for (const [m, k, n] of [
      [6, 5, 4],
      [40, 33, 21],
      [128, 64, 96],
    ] as const) {
      for (const [transA, transB] of TRANS) {
        const a = randomF32(m * k, 7 + m);
        const b = randomF32(k * n, 8 + n);
        const aShape: [number, number] = transA ? [k, m] : [m, k];
        const bShape: [number, number] = transB ? [n, k] : [k, n];
        const ref = naive(a, b, m, k, n, transA, transB);
        const tol = f32Tol(a, b, k);
        assertAllClose(await matmul(a, aShape, b, bShape, { transA, transB, backend: 'ts' }), ref, { ...tol, label: 'ts' });
        assertAllClose(await matmul(a, aShape, b, bShape, { transA, transB, backend: 'engine' }), ref, { ...tol, label: 'engine' });
        assertAllClose(matmulTs(a, aShape, b, bShape, { transA, transB }), ref, { ...tol, label: 'matmulTs' });
      }
    }
  });

  test('float64 operands multiply in float64 on both paths', async () => {
    for (const [m, k, n] of [
      [3, 4, 5],
      [90, 70, 80],
    ] as const) {
      for (const [transA, transB] of TRANS) {
        const r = rng(m + k + n);
        const a = Float64Array.from({ length: m * k }, () => randn(r) / 3);
        const b = Float64Array.from({ length: k * n }, () => randn(r) / 7);
        const aShape: [number, number] = transA ? [k, m] : [m, k];
        const bShape: [number, number] = transB ? [n, k] : [k, n];
        const ref = naive(a, b, m, k, n, transA, transB);
        for (const backend of ['auto', 'ts', 'engine'] as const) {
          const got = await matmul(a, aShape, b, bShape, { transA, transB, backend });
          assert.ok(got instanceof Float64Array, backend);
          assertAllClose(got, ref, { rtol: 1e-12, atol: 1e-12, label: `f64 ${backend}` });
        }
      }
    }
  });

  test('empty dims give empty or zero products', async () => {
    assert.equal((await matmul(new Float32Array(0), [0, 3], new Float32Array(12), [3, 4])).length, 0);
    assert.equal((await matmul(new Float32Array(6), [2, 3], new Float32Array(0), [3, 0])).length, 0);
    const z = await matmul(new Float32Array(0), [2, 0], new Float32Array(0), [0, 3], { backend: 'engine' });
    assert.deepEqual(Array.from(z), [0, 0, 0, 0, 0, 0]);
  });

  test('operands may be views into larger buffers', async () => {
    const big = randomF32(50_000, 3);
    const a = big.subarray(17, 17 + 120 * 90);
    const b = big.subarray(20_001, 20_001 + 90 * 70);
    const ref = naive(a, b, 120, 90, 70, false, false);
    assertAllClose(await matmul(a, [120, 90], b, [90, 70], { backend: 'engine' }), ref, f32Tol(a, b, 90));
  });

  test('concurrent products on one cached session are each correct', async () => {
    const jobs = Array.from({ length: 6 }, (_, i) => {
      const m = 40 + 7 * i;
      const a = randomF32(m * 80, 100 + i);
      const b = randomF32(60 * 80, 200 + i);
      return { m, a, b, ref: naive(a, b, m, 80, 60, false, true) };
    });
    const outs = await Promise.all(jobs.map((j) => matmul(j.a, [j.m, 80], j.b, [60, 80], { transB: true, backend: 'engine' })));
    outs.forEach((o, i) => assertAllClose(o, jobs[i]!.ref, f32Tol(jobs[i]!.a, jobs[i]!.b, 80)));
  });

  test('sessions are created once per class and released by disposeEngine', async () => {
    await disposeEngine();
    assert.equal(cachedSessionCount(), 0);
    const a = randomF32(100 * 100, 1);
    const b = randomF32(100 * 100, 2);
    await matmul(a, [100, 100], b, [100, 100], { backend: 'engine' });
    assert.equal(cachedSessionCount(), 1);
    for (let i = 0; i < 5; i++) await matmul(a, [50, 200], b, [200, 50], { backend: 'engine' });
    assert.equal(cachedSessionCount(), 1, 'a new shape must reuse the session of its class');
    await matmul(a, [100, 100], b, [100, 100], { transA: true, backend: 'engine' });
    await matmul(Float64Array.from(a), [100, 100], Float64Array.from(b), [100, 100], { backend: 'engine' });
    assert.equal(cachedSessionCount(), 3);
    await disposeEngine();
    assert.equal(cachedSessionCount(), 0);
    const again = await matmul(a, [100, 100], b, [100, 100], { backend: 'engine' });
    assertAllClose(again, naive(a, b, 100, 100, 100, false, false), f32Tol(a, b, 100));
  });

  test('inner-dim mismatch is shape_mismatch naming both shapes', async () => {
    const a = new Float32Array(6);
    const b = new Float32Array(8);
    const e = await assertBasinError(() => matmul(a, [2, 3], b, [4, 2]), 'shape_mismatch');
    assert.deepEqual(e.details['aShape'], [2, 3]);
    assert.deepEqual(e.details['bShape'], [4, 2]);
    await assertBasinError(() => matmul(a, [2, 3], b, [2, 4], { transB: true }), 'shape_mismatch');
    await assertBasinError(() => matmul(a, [2, 3], new Float32Array(6), [2, 3], { transA: false }), 'shape_mismatch');
    await assertBasinError(() => matmul(a, [3, 2], new Float32Array(6), [3, 2], { transA: true, transB: true }), 'shape_mismatch');
    // Trans flags that make the same buffers compatible succeed.
    assert.equal((await matmul(a, [3, 2], new Float32Array(6), [3, 2], { transA: true })).length, 4);
  });

  test('bad operands are invalid_argument', async () => {
    const a = new Float32Array(6);
    await assertBasinError(() => matmul(a, [2, 2], a, [2, 3]), 'invalid_argument');
    await assertBasinError(() => matmul(a, [2, 3.5], a, [3, 2]), 'invalid_argument');
    await assertBasinError(() => matmul(a, [-2, -3], a, [3, 2]), 'invalid_argument');
    await assertBasinError(() => matmul(a, [2, 3, 1] as unknown as [number, number], a, [3, 2]), 'invalid_argument');
    await assertBasinError(
      () => matmul(a, [2, 3], new Float64Array(6) as unknown as Float32Array, [3, 2]),
      'invalid_argument',
    );
    await assertBasinError(() => matmul([1, 2] as unknown as Float32Array, [1, 2], a, [2, 3]), 'invalid_argument');
    await assertBasinError(() => matmul(a, [2, 3], a, [3, 2], { backend: 'gpu' as 'ts' }), 'invalid_argument');
  });

  test('thread count: validated, applied to sessions created afterwards', async () => {
    assert.throws(() => setEngineThreads(0), (e: unknown) => e instanceof BasinError && e.code === 'invalid_argument');
    assert.throws(() => setEngineThreads(1.5), (e: unknown) => e instanceof BasinError && e.code === 'invalid_argument');
    try {
      setEngineThreads(1);
      assert.equal(engineThreads(), 1);
      await disposeEngine();
      const a = randomF32(80 * 80, 4);
      assertAllClose(await matmul(a, [80, 80], a, [80, 80], { backend: 'engine' }), naive(a, a, 80, 80, 80, false, false), f32Tol(a, a, 80));
    } finally {
      setEngineThreads(null);
      await disposeEngine();
    }
    assert.ok(engineThreads() >= 1);
  });
});

describe('matmulAccumulate', () => {
  test('adds alpha·op(A)·op(B) into a float64 buffer', async () => {
    const a = randomF32(30 * 20, 5);
    const b = randomF32(40 * 20, 6);
    const out = Float64Array.from({ length: 30 * 40 }, (_, i) => i / 100);
    const start = Float64Array.from(out);
    await matmulAccumulate(out, a, [30, 20], b, [40, 20], { transB: true, alpha: -2 });
    const ref = naive(a, b, 30, 20, 40, false, true).map((v, i) => start[i]! - 2 * v);
    assertAllClose(out, ref, { rtol: 1e-5, atol: 1e-4 });
    await assertBasinError(() => matmulAccumulate(new Float64Array(5), a, [30, 20], b, [40, 20], { transB: true }), 'shape_mismatch');
  });
});

describe('gramSum', () => {
  function gramRef(rowsA: number, rowsB: number, terms: GramTerm[]): Float64Array {
    const out = new Float64Array(rowsA * rowsB);
    for (const t of terms) {
      const p = naive(t.a, t.b, rowsA, t.cols, rowsB, false, true);
      for (let i = 0; i < p.length; i++) out[i] = out[i]! + p[i]!;
    }
    return out;
  }

  function makeTerms(rowsA: number, rowsB: number, cols: number[], seed: number): GramTerm[] {
    return cols.map((c, i) => ({ a: randomF32(rowsA * c, seed + 2 * i), b: randomF32(rowsB * c, seed + 2 * i + 1), cols: c, label: `t${i}` }));
  }

  test('sums narrow (concatenated) and wide (direct) terms', async () => {
    const terms = makeTerms(48, 37, [1, 3, 200, 0, 16, 1, 130, 5], 11);
    const got = await gramSum(48, 37, terms);
    assert.ok(got instanceof Float64Array);
    assertAllClose(got, gramRef(48, 37, terms), { rtol: 1e-4, atol: 1e-3 });
  });

  test('a small chunk cap splits the concatenation without changing the sum', async () => {
    const terms = makeTerms(20, 20, [7, 9, 2, 11, 4, 6, 1], 21);
    const ref = gramRef(20, 20, terms);
    for (const cap of [1, 100, 20 * 12, 1 << 20]) {
      assertAllClose(await gramSum(20, 20, terms, { maxChunkElements: cap }), ref, { rtol: 1e-4, atol: 1e-4, label: `cap ${cap}` });
    }
  });

  test('accumulates into a given buffer', async () => {
    const terms = makeTerms(10, 12, [3, 4], 31);
    const out = new Float64Array(120).fill(1.5);
    const got = await gramSum(10, 12, terms, { out });
    assert.equal(got, out);
    assertAllClose(out, gramRef(10, 12, terms).map((v) => v + 1.5), { rtol: 1e-5, atol: 1e-5 });
  });

  test('transposed terms (stored cols × rows) sum as aᵀ·b, mixed with row-major ones, narrow and wide, repeatedly', async () => {
    // reference: each transposed term turned row-major by hand, then the row-major reference
    const rowsA = 33;
    const rowsB = 29;
    const plain = makeTerms(rowsA, rowsB, [2, 140, 5], 51);
    const stored = makeTerms(rowsA, rowsB, [3, 1, 150, 7], 61);
    const transposeOf = (x: Float32Array, rows: number, cols: number) => {
      const y = new Float32Array(rows * cols);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) y[c * rows + r] = x[r * cols + c]!;
      return y;
    };
    // stored[i].a is rowsA × cols row-major; its transposed form is cols × rowsA
    const transposed = stored.map((t) => ({ a: transposeOf(t.a, rowsA, t.cols), b: transposeOf(t.b, rowsB, t.cols), cols: t.cols, transposed: true, label: t.label }));
    const ref = gramRef(rowsA, rowsB, [...plain, ...stored]);
    for (let round = 0; round < 3; round++) {
      assertAllClose(await gramSum(rowsA, rowsB, [transposed[0]!, plain[0]!, transposed[1]!, plain[1]!, transposed[2]!, plain[2]!, transposed[3]!]), ref, { rtol: 1e-4, atol: 1e-3, label: `round ${round}` });
    }
    assertAllClose(await gramSum(rowsA, rowsB, [...transposed, ...plain], { maxChunkElements: 100 }), ref, { rtol: 1e-4, atol: 1e-3 });
  });

  test('no terms give zeros', async () => {
    assert.deepEqual(Array.from(await gramSum(2, 3, [])), [0, 0, 0, 0, 0, 0]);
  });

  test('a term of the wrong size is shape_mismatch naming it', async () => {
    const terms = makeTerms(4, 5, [2, 3], 41);
    terms[1] = { ...terms[1]!, b: new Float32Array(4 * 3) };
    const e = await assertBasinError(() => gramSum(4, 5, terms), 'shape_mismatch');
    assert.equal(e.details.tensor, 't1');
    await assertBasinError(() => gramSum(4, 5, makeTerms(4, 5, [2], 1), { out: new Float64Array(3) }), 'shape_mismatch');
    await assertBasinError(() => gramSum(4, 5, makeTerms(4, 5, [2], 1), { maxChunkElements: 0 }), 'invalid_argument');
    await assertBasinError(() => gramSum(-1, 5, []), 'invalid_argument');
  });
});

describe('fuzz', () => {
  test('random shapes and lengths: a product or a BasinError', async () => {
    const r = rng(99);
    const dims = [0, 1, 2, 3, 40, -1, 1.5, NaN];
    const pick = (): number => dims[Math.floor(r() * dims.length)]!;
    for (let it = 0; it < 200; it++) {
      const aShape: [number, number] = [pick(), pick()];
      const bShape: [number, number] = [pick(), pick()];
      const a = new Float32Array(Math.floor(r() * 50));
      const b = new Float32Array(Math.floor(r() * 50));
      // Sometimes make the lengths consistent so valid products are exercised too.
      const sized = (s: [number, number], x: Float32Array): Float32Array =>
        r() < 0.5 && s.every((d) => Number.isInteger(d) && d >= 0) ? new Float32Array(s[0] * s[1]).fill(1) : x;
      try {
        await matmul(sized(aShape, a), aShape, sized(bShape, b), bShape, { transA: r() < 0.5, transB: r() < 0.5 });
      } catch (e) {
        assert.ok(e instanceof BasinError, `non-BasinError escaped: ${String(e)}`);
      }
    }
  });
});
