/**
 * Cholesky factorization A = L·Lᵀ of a symmetric positive definite matrix, and solves with the factor.
 */
import { BasinError } from '../errors.js';
import { checkDim, checkMatrix } from './dense.js';

/**
 * Lower-triangular L (n×n row-major, zeros above the diagonal) with A = L·Lᵀ. Only the lower triangle of `a` is
 * read. Row-oriented (Cholesky–Banachiewicz): every inner product runs along two contiguous rows of L.
 *
 * Errors: 'invalid_argument' naming the pivot when A is not positive definite (a pivot <= 0); 'non_finite' for
 * NaN/Inf entries.
 */
export function cholesky(a: Float64Array, n: number): Float64Array {
  checkMatrix('a', a, n, n);
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    for (let j = 0; j <= i; j++) {
      const rj = j * n;
      let s = a[ri + j]!;
      for (let k = 0; k < j; k++) s -= l[ri + k]! * l[rj + k]!;
      if (i === j) {
        if (!(s > 0)) {
          throw new BasinError(
            'invalid_argument',
            `matrix is not positive definite: pivot ${i} of ${n} is ${s} (must be > 0); if it should be positive semidefinite, add a small ridge to the diagonal`,
            { index: i, pivot: i, found: s, shape: [n, n] },
          );
        }
        l[ri + i] = Math.sqrt(s);
      } else {
        l[ri + j] = s / l[rj + j]!;
      }
    }
  }
  return l;
}

/**
 * Solve A·X = B given A's Cholesky factor L (n×n, from `cholesky`) and B n×nrhs (row-major): forward substitution
 * with L, then back substitution with Lᵀ.
 *
 * Errors: 'shape_mismatch' when B does not have n rows; 'invalid_argument' for a wrong L; 'non_finite' for
 * NaN/Inf entries.
 */
export function choleskySolve(l: Float64Array, n: number, b: Float64Array, nrhs: number): Float64Array {
  checkMatrix('l', l, n, n);
  checkDim('nrhs', nrhs);
  if (!(b instanceof Float64Array) || b.length !== n * nrhs) {
    throw new BasinError(
      'shape_mismatch',
      `'b' must hold ${n}×${nrhs} = ${n * nrhs} values to match the ${n}×${n} factor, got ${b instanceof Float64Array ? b.length : 'a non-Float64Array'}`,
      { expected: [n, nrhs], found: b instanceof Float64Array ? b.length : Object.prototype.toString.call(b) },
    );
  }
  checkMatrix('b', b, n, nrhs);
  const x = Float64Array.from(b);
  // L·Y = B
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    const d = l[ri + i]!;
    for (let k = 0; k < i; k++) {
      const lik = l[ri + k]!;
      if (lik === 0) continue;
      for (let c = 0; c < nrhs; c++) x[i * nrhs + c] = x[i * nrhs + c]! - lik * x[k * nrhs + c]!;
    }
    for (let c = 0; c < nrhs; c++) x[i * nrhs + c] = x[i * nrhs + c]! / d;
  }
  // Lᵀ·X = Y
  for (let i = n - 1; i >= 0; i--) {
    const d = l[i * n + i]!;
    for (let c = 0; c < nrhs; c++) x[i * nrhs + c] = x[i * nrhs + c]! / d;
    for (let k = 0; k < i; k++) {
      const lik = l[i * n + k]!;
      if (lik === 0) continue;
      for (let c = 0; c < nrhs; c++) x[k * nrhs + c] = x[k * nrhs + c]! - lik * x[i * nrhs + c]!;
    }
  }
  return x;
}
