/**
 * The PCA core's fast paths against the plain decomposition: a block-diagonal matrix (two stacked models) is
 * decomposed per block and must span the same top-q subspace as one eigh of the whole; weights with fewer columns
 * than units (Wᵀ·W, the smaller side) asked for more directions than their rank keep every direction they have.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eigh } from '../src/linalg/eigh.js';
import { symmetricBlocks, topEigenvectors } from '../src/reduce/pca.js';
import { assertAllClose, rng } from './helpers.js';

/** G·Gᵀ of a random m×m G: symmetric PSD with distinct eigenvalues. */
function psd(m: number, r: () => number): Float64Array {
  const g = Float64Array.from({ length: m * m }, () => r() - 0.5);
  const a = new Float64Array(m * m);
  for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) for (let k = 0; k < m; k++) a[i * m + j] = a[i * m + j]! + g[i * m + k]! * g[j * m + k]!;
  return a;
}

/** E·Eᵀ [n, n] of E [n, q]. */
function projector(e: Float64Array, n: number, qk: number): Float64Array {
  const p = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < qk; k++) p[i * n + j] = p[i * n + j]! + e[i * qk + k]! * e[j * qk + k]!;
  return p;
}

test('symmetricBlocks finds the two models of a stack, and the per-block decomposition spans the same top-q subspace as one eigh', async () => {
  const r = rng(3);
  const m = 20;
  const n = 2 * m;
  const a = new Float64Array(n * n);
  const b0 = psd(m, r);
  const b1 = psd(m, r);
  // interleave: units 0, 2, 4 … are model A's, 1, 3, 5 … model B's (blocks need not be contiguous)
  for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) {
    a[2 * i * n + 2 * j] = b0[i * m + j]!;
    a[(2 * i + 1) * n + 2 * j + 1] = b1[i * m + j]!;
  }
  const blocks = symmetricBlocks(a, n);
  assert.deepEqual(blocks.map((x) => x.length), [m, m]);
  assert.ok(blocks.every((x) => x.every((u) => u % 2 === x[0]! % 2)));
  const qk = 30;
  const fast = await topEigenvectors(a, n, qk);
  const full = eigh(a, n);
  const ref = new Float64Array(n * qk);
  for (let i = 0; i < n; i++) for (let j = 0; j < qk; j++) ref[i * qk + j] = full.vectors[i * n + j]!;
  assertAllClose(projector(fast.e, n, qk), projector(ref, n, qk), { atol: 1e-8, rtol: 0 });
  let trace = 0;
  let kept = 0;
  for (let i = 0; i < n; i++) trace += a[i * n + i]!;
  for (let j = 0; j < qk; j++) kept += full.values[j]!;
  assertAllClose([fast.dropped], [(trace - kept) / trace], { atol: 1e-12, rtol: 1e-9 });
});
