/**
 * The rank-revealing pivoted Cholesky and the solves the factorize core whitens and refines with, checked by
 * reconstruction (Pᵀ·A·P = L·Lᵀ) and by residuals, on sizes that cross the blocked panels (32).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { pivotedCholesky, solvePsd } from '../src/factorize/pivoted-cholesky.js';
import { assertAllClose, assertBasinError, randn, rng } from './helpers.js';

/** G·Gᵀ for a random n×k G: PSD of rank min(n, k). */
function gram(n: number, k: number, r: () => number): Float64Array {
  const g = Float64Array.from({ length: n * k }, () => randn(r));
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let t = 0; t < k; t++) a[i * n + j] = a[i * n + j]! + g[i * k + t]! * g[j * k + t]!;
  return a;
}

function matvec(a: Float64Array, n: number, x: Float64Array, cols: number): Float64Array {
  const out = new Float64Array(n * cols);
  for (let i = 0; i < n; i++) for (let t = 0; t < n; t++) for (let c = 0; c < cols; c++) out[i * cols + c] = out[i * cols + c]! + a[i * n + t]! * x[t * cols + c]!;
  return out;
}

test('pivoted Cholesky reveals the rank of PSD matrices across panels and reconstructs Pᵀ·A·P = L·Lᵀ', async () => {
  const r = rng(21);
  for (const [n, k] of [[70, 5], [70, 40], [100, 100], [33, 33]] as const) {
    const a = gram(n, k, r);
    const pc = await pivotedCholesky(a, n, 1e-10);
    assert.equal(pc.rank, Math.min(n, k), `rank of ${n}×${n} Gram of ${k} columns`);
    const rec = new Float64Array(n * n);
    const ref = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let t = 0; t < pc.rank; t++) s += pc.l[i * pc.rank + t]! * pc.l[j * pc.rank + t]!;
        rec[i * n + j] = s;
        ref[i * n + j] = a[pc.perm[i]! * n + pc.perm[j]!]!;
      }
    }
    assertAllClose(rec, ref, { rtol: 1e-9, atol: 1e-9 * n, label: `${n}/${k} reconstruction` });
    // Upper triangle of L₁ is zero, its diagonal positive and non-increasing (complete pivoting).
    for (let i = 1; i < pc.rank; i++) assert.ok(pc.l[i * pc.rank + i]! <= pc.l[(i - 1) * pc.rank + i - 1]! * (1 + 1e-12));
  }
  assert.equal((await pivotedCholesky(new Float64Array(16), 4, 1e-10)).rank, 0);
});

test('solvePsd solves SPD systems, and singular consistent ones with zero weight on the dropped pivots', async () => {
  const r = rng(22);
  const n = 45;
  const a = gram(n, 60, r);
  const x = Float64Array.from({ length: n * 3 }, () => randn(r));
  assertAllClose(await solvePsd(a, n, matvec(a, n, x, 3), 3, 1e-12), x, { rtol: 1e-6, atol: 1e-6, label: 'SPD solve' });
  // Rank 20 of 45 with two exactly zero rows/columns (dead units): A·x = b holds, dead coordinates are 0.
  const s = gram(n, 20, r);
  for (const dead of [3, 40]) for (let i = 0; i < n; i++) s[dead * n + i] = s[i * n + dead] = 0;
  const b = matvec(s, n, Float64Array.from({ length: n * 2 }, () => randn(r)), 2);
  const sol = await solvePsd(s, n, b, 2, 1e-10);
  assertAllClose(matvec(s, n, sol, 2), b, { rtol: 1e-7, atol: 1e-7, label: 'singular solve residual' });
  for (const dead of [3, 40]) assert.deepEqual([sol[dead * 2], sol[dead * 2 + 1]], [0, 0]);
});

test('pivoted Cholesky rejects non-finite entries, wrong sizes and a bad rcond', async () => {
  await assertBasinError(() => pivotedCholesky(new Float64Array([1, Number.NaN, Number.NaN, 1]), 2, 1e-10), 'non_finite');
  await assertBasinError(() => pivotedCholesky(new Float64Array(5), 2, 1e-10), 'invalid_argument');
  await assertBasinError(() => pivotedCholesky(new Float64Array(4), 2, 1), 'invalid_argument');
});
