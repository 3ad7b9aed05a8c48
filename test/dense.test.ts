/**
 * Dense decompositions: reconstruction and orthogonality checked with naive float64 loops, against matrices whose
 * spectra are known in closed form (diagonal, 2×2, tridiagonal Toeplitz, Q·diag·Qᵀ built from explicit
 * Householder reflections), plus the error codes.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertAllClose, assertBasinError, randn, rng } from './helpers.js';
import { eigh } from '../src/linalg/eigh.js';
import { svd } from '../src/linalg/svd.js';
import { qr, solveLeastSquares } from '../src/linalg/qr.js';
import { cholesky, choleskySolve } from '../src/linalg/cholesky.js';
import { matrixOperator, randomizedRange, randomizedSvd, topKEig, type LinearOperator } from '../src/linalg/randomized.js';
import { disposeEngine } from '../src/engine/matmul.js';
import { BasinError } from '../src/errors.js';

after(() => disposeEngine());

// ---- naive reference helpers (independent of the code under test) ----

function mul(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p]! * b[p * n + j]!;
      c[i * n + j] = s;
    }
  }
  return c;
}

function tr(a: ArrayLike<number>, m: number, n: number): Float64Array {
  const t = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j]!;
  return t;
}

function eye(n: number): Float64Array {
  const e = new Float64Array(n * n);
  for (let i = 0; i < n; i++) e[i * n + i] = 1;
  return e;
}

function randomMatrix(m: number, n: number, seed: number): Float64Array {
  const r = rng(seed);
  return Float64Array.from({ length: m * n }, () => randn(r));
}

function randomSymmetric(n: number, seed: number): Float64Array {
  const a = randomMatrix(n, n, seed);
  const s = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) s[i * n + j] = 0.5 * (a[i * n + j]! + a[j * n + i]!);
  return s;
}

/** An n×n orthogonal matrix as a product of explicit reflections I − 2vvᵀ/(vᵀv). */
function orthogonal(n: number, seed: number, reflections = 6): Float64Array {
  const r = rng(seed);
  let q = eye(n);
  for (let t = 0; t < reflections; t++) {
    const v = Float64Array.from({ length: n }, () => randn(r));
    let vv = 0;
    for (const x of v) vv += x * x;
    const h = eye(n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) h[i * n + j] = h[i * n + j]! - (2 * v[i]! * v[j]!) / vv;
    q = mul(q, h, n, n, n);
  }
  return q;
}

/** Q·diag(w)·Qᵀ. */
function withSpectrum(q: Float64Array, w: ArrayLike<number>, n: number): Float64Array {
  const qw = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) qw[i * n + j] = q[i * n + j]! * w[j]!;
  return mul(qw, tr(q, n, n), n, n, n);
}

/** Columns of the rows×cols matrix are orthonormal. */
function assertOrthonormalColumns(v: Float64Array, rows: number, cols: number, atol: number, label: string): void {
  assertAllClose(mul(tr(v, rows, cols), v, cols, rows, cols), eye(cols), { rtol: 0, atol, label });
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

const descending = (x: ArrayLike<number>): boolean => Array.from(x).every((v, i, arr) => i === 0 || v <= arr[i - 1]!);

// ---- eigh ----

describe('eigh', () => {
  function checkDecomposition(a: Float64Array, n: number, tol: number): { values: Float64Array; vectors: Float64Array } {
    const copy = Float64Array.from(a);
    const { values, vectors } = eigh(a, n);
    assert.deepEqual(a, copy, 'input modified');
    assert.ok(descending(values), 'values not descending');
    assertOrthonormalColumns(vectors, n, n, tol, 'VᵀV');
    const vd = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) vd[i * n + j] = vectors[i * n + j]! * values[j]!;
    const scale = Math.max(maxAbs(a), 1e-300);
    assertAllClose(mul(vd, tr(vectors, n, n), n, n, n), a, { rtol: 0, atol: tol * scale, label: 'V·diag(w)·Vᵀ' });
    return { values, vectors };
  }

  test('diagonal matrix: its entries, sorted, with unit eigenvectors', () => {
    const d = [3, -1, 7, 0, 2.5];
    const n = d.length;
    const a = new Float64Array(n * n);
    d.forEach((v, i) => (a[i * n + i] = v));
    const { values, vectors } = checkDecomposition(a, n, 1e-14);
    assertAllClose(values, [7, 3, 2.5, 0, -1], { atol: 1e-14 });
    // Column j is the unit vector at the position of the j-th largest entry (sign fixed positive).
    const pos = [2, 0, 4, 3, 1];
    pos.forEach((p, j) => assertAllClose(vectors[p * n + j]!, 1, { atol: 1e-14 }));
  });

  test('2×2 closed form', () => {
    for (const [a, b, c] of <[number, number, number][]>[
      [2, 1, 2],
      [1, 1e-3, 1],
      [5, -3, -4],
      [0, 1, 0],
      [1e-8, 2e-8, 3e-8],
    ]) {
      const mean = (a + c) / 2;
      const rad = Math.hypot((a - c) / 2, b);
      const { values } = checkDecomposition(Float64Array.from([a, b, b, c]), 2, 1e-14);
      assertAllClose(values, [mean + rad, mean - rad], { rtol: 1e-13, atol: 1e-22 });
    }
  });

  test('tridiagonal Toeplitz: λ_k = a + 2b·cos(kπ/(n+1))', () => {
    for (const [n, a, b] of [
      [3, 2, -1],
      [50, 2, -1],
      [101, 0.5, 0.25],
    ] as const) {
      const m = new Float64Array(n * n);
      for (let i = 0; i < n; i++) {
        m[i * n + i] = a;
        if (i + 1 < n) m[i * n + i + 1] = m[(i + 1) * n + i] = b;
      }
      const expected = Array.from({ length: n }, (_, k) => a + 2 * b * Math.cos(((k + 1) * Math.PI) / (n + 1))).sort((x, y) => y - x);
      const { values } = checkDecomposition(m, n, 1e-13);
      assertAllClose(values, expected, { rtol: 0, atol: 1e-13 });
    }
  });

  test('Q·diag(w)·Qᵀ with a known spectrum, repeated values included', () => {
    const n = 40;
    const q = orthogonal(n, 5);
    const w = Array.from({ length: n }, (_, i) => (i < 10 ? 3 : i < 20 ? -2 : i - 20)); // 3 ×10, -2 ×10, 0..19
    const a = withSpectrum(q, w, n);
    const { values } = checkDecomposition(a, n, 1e-13);
    assertAllClose(values, [...w].sort((x, y) => y - x), { rtol: 0, atol: 1e-12 });
  });

  test('random symmetric matrices, several sizes', () => {
    for (const n of [1, 2, 3, 7, 33, 150]) checkDecomposition(randomSymmetric(n, 100 + n), n, 1e-12);
  });

  test('scaling: tiny and huge matrices', () => {
    for (const s of [1e-150, 1e150]) {
      const a = randomSymmetric(12, 9).map((x) => x * s);
      checkDecomposition(a, 12, 1e-13);
    }
    const z = checkDecomposition(new Float64Array(9), 3, 0);
    assert.deepEqual(Array.from(z.values), [0, 0, 0]);
  });

  test('empty matrix', () => {
    const { values, vectors } = eigh(new Float64Array(0), 0);
    assert.equal(values.length, 0);
    assert.equal(vectors.length, 0);
  });

  test('errors: wrong length, non-finite', async () => {
    await assertBasinError(() => eigh(new Float64Array(5), 2), 'invalid_argument');
    await assertBasinError(() => eigh(new Float32Array(4) as unknown as Float64Array, 2), 'invalid_argument');
    await assertBasinError(() => eigh(Float64Array.from([1, NaN, NaN, 1]), 2), 'non_finite');
    await assertBasinError(() => eigh(Float64Array.from([1, 0, 0, Infinity]), 2), 'non_finite');
  });
});

// ---- svd ----

describe('svd', () => {
  function check(a: Float64Array, m: number, n: number, tol: number): { u: Float64Array; s: Float64Array; vt: Float64Array } {
    const copy = Float64Array.from(a);
    const res = svd(a, m, n);
    const { u, s, vt } = res;
    assert.deepEqual(a, copy, 'input modified');
    const r = Math.min(m, n);
    assert.equal(u.length, m * r);
    assert.equal(s.length, r);
    assert.equal(vt.length, r * n);
    assert.ok(descending(s), 's not descending');
    assert.ok(s.every((x) => x >= 0), 's negative');
    assertOrthonormalColumns(u, m, r, tol, 'UᵀU');
    assertOrthonormalColumns(tr(vt, r, n), n, r, tol, 'VᵀV');
    const us = new Float64Array(m * r);
    for (let i = 0; i < m; i++) for (let j = 0; j < r; j++) us[i * r + j] = u[i * r + j]! * s[j]!;
    assertAllClose(mul(us, vt, m, r, n), a, { rtol: 0, atol: tol * Math.max(maxAbs(a), 1e-300), label: 'U·S·Vᵀ' });
    return res;
  }

  test('known singular values: U₀·diag(σ)·V₀ᵀ from explicit orthogonal factors', () => {
    for (const [m, n] of [
      [30, 12],
      [12, 30],
      [20, 20],
    ] as const) {
      const r = Math.min(m, n);
      const u0 = orthogonal(m, m);
      const v0 = orthogonal(n, n + 50);
      const sigma = Array.from({ length: r }, (_, i) => 10 * Math.pow(0.5, i));
      // A = U₀[:, :r]·diag(σ)·V₀[:, :r]ᵀ
      const a = new Float64Array(m * n);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let t = 0;
          for (let k = 0; k < r; k++) t += u0[i * m + k]! * sigma[k]! * v0[j * n + k]!;
          a[i * n + j] = t;
        }
      }
      const { s } = check(a, m, n, 1e-13);
      assertAllClose(s, sigma, { rtol: 0, atol: 1e-13 * sigma[0]! });
    }
  });

  test('singular values are the square roots of the eigenvalues of AᵀA', () => {
    const m = 25;
    const n = 9;
    const a = randomMatrix(m, n, 77);
    const { s } = check(a, m, n, 1e-13);
    const { values } = eigh(mul(tr(a, m, n), a, n, m, n), n);
    assertAllClose(
      s,
      Array.from(values, (v) => Math.sqrt(Math.max(v, 0))),
      { rtol: 1e-10 },
    );
  });

  test('tall, wide, square, vectors', () => {
    for (const [m, n] of [
      [1, 1],
      [1, 6],
      [6, 1],
      [5, 3],
      [3, 5],
      [64, 64],
      [120, 45],
      [45, 120],
    ] as const) {
      check(randomMatrix(m, n, m * 31 + n), m, n, 1e-12);
    }
  });

  test('rank-deficient and zero matrices keep orthonormal factors', () => {
    const m = 30;
    const n = 20;
    const a = mul(randomMatrix(m, 3, 1), randomMatrix(3, n, 2), m, 3, n);
    const { s } = check(a, m, n, 1e-12);
    assert.ok(s[2]! > 1e-3);
    for (let i = 3; i < n; i++) assert.ok(s[i]! < 1e-12 * s[0]!, `s[${i}] = ${s[i]}`);
    const z = check(new Float64Array(12), 4, 3, 0);
    assert.deepEqual(Array.from(z.s), [0, 0, 0]);
    check(new Float64Array(12), 3, 4, 0);
  });

  test('empty and non-finite', async () => {
    const e = svd(new Float64Array(0), 0, 4);
    assert.equal(e.s.length, 0);
    assert.equal(e.vt.length, 0);
    assert.equal(svd(new Float64Array(0), 3, 0).u.length, 0);
    await assertBasinError(() => svd(Float64Array.from([1, 2, NaN]), 1, 3), 'non_finite');
    await assertBasinError(() => svd(new Float64Array(4), 3, 2), 'invalid_argument');
  });
});

// ---- qr ----

describe('qr', () => {
  test('A = Q·R, orthonormal Q, upper-triangular R with a non-negative diagonal', () => {
    for (const [m, n] of [
      [1, 1],
      [4, 1],
      [1, 4],
      [6, 4],
      [4, 6],
      [50, 50],
      [80, 30],
      [30, 80],
    ] as const) {
      const a = randomMatrix(m, n, 3 * m + n);
      const copy = Float64Array.from(a);
      const { q, r } = qr(a, m, n);
      assert.deepEqual(a, copy);
      const k = Math.min(m, n);
      assertOrthonormalColumns(q, m, k, 1e-13, `QᵀQ ${m}×${n}`);
      for (let i = 0; i < k; i++) {
        assert.ok(r[i * n + i]! >= 0, `R[${i},${i}] < 0`);
        for (let j = 0; j < i; j++) assert.equal(r[i * n + j], 0, `R[${i},${j}] below diagonal`);
      }
      assertAllClose(mul(q, r, m, k, n), a, { rtol: 0, atol: 1e-13 * maxAbs(a), label: `QR ${m}×${n}` });
    }
  });

  test('rank-deficient columns still give an orthonormal Q', () => {
    const m = 10;
    const a = new Float64Array(m * 3);
    for (let i = 0; i < m; i++) {
      a[i * 3] = i + 1;
      a[i * 3 + 1] = 2 * (i + 1); // parallel to column 0
      a[i * 3 + 2] = 0; // zero column
    }
    const { q, r } = qr(a, m, 3);
    assertOrthonormalColumns(q, m, 3, 1e-13, 'QᵀQ');
    assertAllClose(mul(q, r, m, 3, 3), a, { atol: 1e-12 });
  });

  test('non-finite input', async () => {
    await assertBasinError(() => qr(Float64Array.from([1, Infinity]), 2, 1), 'non_finite');
  });
});

// ---- cholesky ----

describe('cholesky', () => {
  function spd(n: number, seed: number): Float64Array {
    const b = randomMatrix(n, n, seed);
    const a = mul(b, tr(b, n, n), n, n, n);
    for (let i = 0; i < n; i++) a[i * n + i] = a[i * n + i]! + n;
    return a;
  }

  test('L·Lᵀ = A with L lower triangular, positive diagonal', () => {
    for (const n of [1, 2, 5, 40]) {
      const a = spd(n, n);
      const l = cholesky(a, n);
      for (let i = 0; i < n; i++) {
        assert.ok(l[i * n + i]! > 0);
        for (let j = i + 1; j < n; j++) assert.equal(l[i * n + j], 0);
      }
      assertAllClose(mul(l, tr(l, n, n), n, n, n), a, { rtol: 1e-13, atol: 1e-12 });
    }
  });

  test('known factor', () => {
    // [[4, 2], [2, 5]] = [[2, 0], [1, 2]]·[[2, 1], [0, 2]]
    assertAllClose(cholesky(Float64Array.from([4, 2, 2, 5]), 2), [2, 0, 1, 2], { atol: 1e-15 });
  });

  test('choleskySolve solves A·X = B', () => {
    const n = 30;
    const a = spd(n, 8);
    const x0 = randomMatrix(n, 3, 9);
    const b = mul(a, x0, n, n, 3);
    assertAllClose(choleskySolve(cholesky(a, n), n, b, 3), x0, { rtol: 1e-10, atol: 1e-10 });
  });

  test('not positive definite: invalid_argument naming the pivot', async () => {
    let e = await assertBasinError(() => cholesky(Float64Array.from([4, 0, 0, 0, -1, 0, 0, 0, 1]), 3), 'invalid_argument');
    assert.equal(e.details['pivot'], 1);
    // Positive diagonal, indefinite: [[1, 2], [2, 1]] has eigenvalues 3 and −1; the second pivot is 1 − 4 = −3.
    e = await assertBasinError(() => cholesky(Float64Array.from([1, 2, 2, 1]), 2), 'invalid_argument');
    assert.equal(e.details['pivot'], 1);
    assert.equal(e.details.found, -3);
    // Semidefinite (singular): the last pivot is 0.
    e = await assertBasinError(() => cholesky(Float64Array.from([1, 1, 1, 1]), 2), 'invalid_argument');
    assert.equal(e.details['pivot'], 1);
    e = await assertBasinError(() => cholesky(Float64Array.from([0]), 1), 'invalid_argument');
    assert.equal(e.details['pivot'], 0);
  });

  test('other errors', async () => {
    await assertBasinError(() => cholesky(Float64Array.from([1, NaN, NaN, 1]), 2), 'non_finite');
    await assertBasinError(() => choleskySolve(Float64Array.from([1, 0, 0, 1]), 2, new Float64Array(3), 2), 'shape_mismatch');
  });
});

// ---- least squares ----

describe('solveLeastSquares', () => {
  test('consistent overdetermined system recovers x', () => {
    const m = 40;
    const n = 7;
    const a = randomMatrix(m, n, 1);
    const x0 = randomMatrix(n, 2, 2);
    const { x, rank } = solveLeastSquares(a, m, n, mul(a, x0, m, n, 2), 2);
    assert.equal(rank, n);
    assertAllClose(x, x0, { rtol: 1e-10, atol: 1e-12 });
  });

  test('inconsistent system: the residual is orthogonal to range(A)', () => {
    const m = 30;
    const n = 5;
    const a = randomMatrix(m, n, 3);
    const b = randomMatrix(m, 1, 4);
    const { x } = solveLeastSquares(a, m, n, b, 1);
    const res = mul(a, x, m, n, 1).map((v, i) => v - b[i]!);
    assertAllClose(mul(tr(a, m, n), res, n, m, 1), new Float64Array(n), { atol: 1e-12 });
  });

  test('rank-deficient and wide systems give the minimum-norm solution', () => {
    // Rank 2, 12×5: the minimum-norm least-squares solution is the pseudoinverse's, x = A⁺b, characterized by
    // Aᵀ(Ax − b) = 0 and x ⟂ null(A) (x = Aᵀy for some y).
    const a = mul(randomMatrix(12, 2, 5), randomMatrix(2, 5, 6), 12, 2, 5);
    const b = randomMatrix(12, 1, 7);
    const { x, rank } = solveLeastSquares(a, 12, 5, b, 1);
    assert.equal(rank, 2);
    const res = mul(a, x, 12, 5, 1).map((v, i) => v - b[i]!);
    assertAllClose(mul(tr(a, 12, 5), res, 5, 12, 1), new Float64Array(5), { atol: 1e-10 });
    // x ⟂ null(A): with A = L·R (R 2×5), null(A) = null(R); check R·z = 0 ⇒ xᵀz = 0 for a basis of null(R), i.e.
    // x lies in the row space: projecting x onto rowspace(A) (via the explicit normal-equation solve) changes nothing.
    const aat = mul(a, tr(a, 12, 5), 12, 5, 12);
    const { x: y } = solveLeastSquares(aat, 12, 12, mul(a, x, 12, 5, 1), 1);
    assertAllClose(mul(tr(a, 12, 5), y, 5, 12, 1), x, { atol: 1e-8 });

    // Wide, full row rank: A·x = b exactly and x = Aᵀ(AAᵀ)⁻¹b.
    const w = randomMatrix(3, 8, 8);
    const bw = randomMatrix(3, 1, 9);
    const sol = solveLeastSquares(w, 3, 8, bw, 1);
    assert.equal(sol.rank, 3);
    assertAllClose(mul(w, sol.x, 3, 8, 1), bw, { atol: 1e-12 });
    const wwt = mul(w, tr(w, 3, 8), 3, 8, 3);
    // 3×3 solve by Cramer's rule, independent of the code under test.
    const det3 = (m: ArrayLike<number>): number =>
      m[0]! * (m[4]! * m[8]! - m[5]! * m[7]!) - m[1]! * (m[3]! * m[8]! - m[5]! * m[6]!) + m[2]! * (m[3]! * m[7]! - m[4]! * m[6]!);
    const d = det3(wwt);
    const yv = [0, 1, 2].map((c) => {
      const mc = Float64Array.from(wwt);
      for (let r = 0; r < 3; r++) mc[r * 3 + c] = bw[r]!;
      return det3(mc) / d;
    });
    assertAllClose(sol.x, mul(tr(w, 3, 8), yv, 8, 3, 1), { rtol: 1e-9, atol: 1e-12 });
  });

  test('errors', async () => {
    const a = randomMatrix(4, 2, 1);
    await assertBasinError(() => solveLeastSquares(a, 4, 2, new Float64Array(3), 1), 'shape_mismatch');
    await assertBasinError(() => solveLeastSquares(a, 4, 2, new Float64Array(4), 1, { rcond: -1 }), 'invalid_argument');
    await assertBasinError(() => solveLeastSquares(a, 4, 2, Float64Array.from([1, 2, NaN, 4]), 1), 'non_finite');
  });
});

// ---- randomized ----

describe('randomized', () => {
  const n = 120;
  const q = orthogonal(n, 1234, 8);
  const w = Array.from({ length: n }, (_, i) => 50 * Math.pow(0.7, i)); // fast decay: top-k well separated
  const a = withSpectrum(q, w, n);

  /** ‖P₁ − P₂‖max between the projectors onto two k-dim column spaces. */
  function projectorGap(x: Float64Array, y: Float64Array, rows: number, k: number): number {
    const px = mul(x, tr(x, rows, k), rows, k, rows);
    const py = mul(y, tr(y, rows, k), rows, k, rows);
    let g = 0;
    for (let i = 0; i < px.length; i++) g = Math.max(g, Math.abs(px[i]! - py[i]!));
    return g;
  }

  function topColumns(m: Float64Array, rows: number, cols: number, k: number): Float64Array {
    const out = new Float64Array(rows * k);
    for (let i = 0; i < rows; i++) for (let j = 0; j < k; j++) out[i * k + j] = m[i * cols + j]!;
    return out;
  }

  test('topKEig on a float64 matrix: values and subspace of the known spectrum', async () => {
    const k = 8;
    const { values, vectors } = await topKEig(a, n, k);
    assertAllClose(values, w.slice(0, k), { rtol: 1e-10 });
    assertOrthonormalColumns(vectors, n, k, 1e-12, 'vectors');
    assert.ok(projectorGap(vectors, topColumns(q, n, n, k), n, k) < 1e-8);
  });

  test('topKEig on a float32 matrix runs the products in float32', async () => {
    const k = 6;
    const { values, vectors } = await topKEig(Float32Array.from(a), n, k);
    assertAllClose(values, w.slice(0, k), { rtol: 1e-4 });
    assert.ok(projectorGap(vectors, topColumns(q, n, n, k), n, k) < 1e-3);
  });

  test('topKEig picks eigenvalues by magnitude and is deterministic per seed', async () => {
    const spec = Array.from({ length: 30 }, (_, i) => (i === 0 ? -100 : 10 * Math.pow(0.5, i)));
    const m = withSpectrum(orthogonal(30, 77), spec, 30);
    const r1 = await topKEig(m, 30, 3, { seed: 5 });
    assertAllClose(r1.values, [-100, 5, 2.5], { rtol: 1e-9 });
    const r2 = await topKEig(m, 30, 3, { seed: 5 });
    assert.deepEqual(r1.vectors, r2.vectors);
  });

  test('randomizedSvd of a low-rank matrix', async () => {
    const rows = 90;
    const cols = 60;
    const u0 = orthogonal(rows, 3);
    const v0 = orthogonal(cols, 4);
    const sigma = [9, 5, 3, 1];
    const m = new Float64Array(rows * cols);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) {
        let t = 0;
        for (let k = 0; k < sigma.length; k++) t += u0[i * rows + k]! * sigma[k]! * v0[j * cols + k]!;
        m[i * cols + j] = t;
      }
    }
    const { u, s, vt } = await randomizedSvd(matrixOperator(m, rows, cols), 4, { oversample: 5, powerIters: 1 });
    assertAllClose(s, sigma, { rtol: 1e-10 });
    assertOrthonormalColumns(u, rows, 4, 1e-12, 'U');
    const us = new Float64Array(rows * 4);
    for (let i = 0; i < rows; i++) for (let j = 0; j < 4; j++) us[i * 4 + j] = u[i * 4 + j]! * s[j]!;
    assertAllClose(mul(us, vt, rows, 4, cols), m, { atol: 1e-10 });
  });

  test('randomizedRange: orthonormal basis containing the range of a low-rank operator', async () => {
    const rows = 50;
    const cols = 40;
    const l = randomMatrix(rows, 3, 1);
    const r = randomMatrix(3, cols, 2);
    const m = mul(l, r, rows, 3, cols);
    const { q: basis, cols: width } = await randomizedRange(matrixOperator(m, rows, cols), 3, { oversample: 2 });
    assert.equal(width, 5);
    assertOrthonormalColumns(basis, rows, width, 1e-12, 'Q');
    // Q·Qᵀ·M = M
    const qtm = mul(tr(basis, rows, width), m, width, rows, cols);
    assertAllClose(mul(basis, qtm, rows, width, cols), m, { atol: 1e-10 });
  });

  test('errors: operator sizes, k out of range, bad options', async () => {
    await assertBasinError(() => topKEig(a, n, n + 1), 'invalid_argument');
    await assertBasinError(() => topKEig(a, n, 2, { oversample: -1 }), 'invalid_argument');
    await assertBasinError(() => topKEig(a, n, 2, { seed: 0.5 }), 'invalid_argument');
    await assertBasinError(() => topKEig(matrixOperator(a, n, n), n - 1, 2), 'shape_mismatch');
    await assertBasinError(() => matrixOperator(a, n, n + 1), 'invalid_argument');
    const bad: LinearOperator = { rows: 10, cols: 10, apply: async (_x, p) => new Float64Array(9 * p) };
    await assertBasinError(() => randomizedRange(bad, 2), 'shape_mismatch');
    const nan: LinearOperator = { rows: 4, cols: 4, apply: async (_x, p) => new Float64Array(4 * p).fill(NaN) };
    await assertBasinError(() => topKEig(nan, 4, 1), 'non_finite');
  });
});

// ---- fuzz: bad sizes and values never escape as anything but BasinError ----

describe('fuzz', () => {
  test('random dims, lengths and values: a result or a BasinError', async () => {
    const r = rng(2024);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
    const values = [0, 1, -1, 1e-300, 1e300, NaN, Infinity];
    for (let it = 0; it < 300; it++) {
      const m = pick([0, 1, 2, 3, 5, -1, 2.5]);
      const n = pick([0, 1, 2, 4, -2, 1.5]);
      const len = Math.max(0, Math.floor(r() * 30));
      const a = Float64Array.from({ length: len }, () => (r() < 0.1 ? pick(values) : randn(r)));
      const calls: (() => unknown)[] = [
        () => eigh(a, m),
        () => svd(a, m, n),
        () => qr(a, m, n),
        () => cholesky(a, m),
        () => solveLeastSquares(a, m, n, a.slice(0, Math.max(0, m)), 1),
      ];
      for (const call of calls) {
        try {
          call();
        } catch (e) {
          assert.ok(e instanceof BasinError, `non-BasinError escaped: ${String(e)}`);
        }
      }
    }
  });
});
