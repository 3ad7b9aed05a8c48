/**
 * Householder QR (thin) and linear least squares.
 *
 * The factorization works on Aᵀ so that every column of A, and every reflector, is a contiguous row.
 */
import { BasinError } from '../errors.js';
import { EPS, checkDim, checkMatrix, householder, transpose64 } from './dense.js';
import { svd } from './svd.js';

export interface QrResult {
  /** m×r with orthonormal columns, r = min(m, n). */
  q: Float64Array;
  /** r×n upper triangular (trapezoidal when n > m), with a non-negative diagonal. */
  r: Float64Array;
}

interface Factored {
  /** n×m: row j holds the reflector of step j at columns j .. m-1 (v[j] = 1), and R's column j above it. */
  at: Float64Array;
  taus: Float64Array;
  /** R's diagonal (the reflectors overwrite it in `at`). */
  diag: Float64Array;
  m: number;
  n: number;
  k: number;
}

function factor(a: Float64Array, m: number, n: number): Factored {
  const at = transpose64(a, m, n);
  const k = Math.min(m, n);
  const taus = new Float64Array(k);
  const diag = new Float64Array(k);
  for (let j = 0; j < k; j++) {
    const vo = j * m;
    const { tau, beta } = householder(at, vo + j, m - j);
    taus[j] = tau;
    diag[j] = beta;
    if (tau === 0) continue;
    for (let c = j + 1; c < n; c++) {
      const co = c * m;
      let s = 0;
      for (let i = j; i < m; i++) s += at[co + i]! * at[vo + i]!;
      if (s === 0) continue;
      s *= tau;
      for (let i = j; i < m; i++) at[co + i] = at[co + i]! - s * at[vo + i]!;
    }
  }
  return { at, taus, diag, m, n, k };
}

/** Apply Qᵀ = H_{k-1}⋯H_0 to the columns of B given as the rows of bt (nrhs×m), in place. */
function applyQt(f: Factored, bt: Float64Array, nrhs: number): void {
  const { at, taus, m, k } = f;
  for (let j = 0; j < k; j++) {
    const tau = taus[j]!;
    if (tau === 0) continue;
    const vo = j * m;
    for (let c = 0; c < nrhs; c++) {
      const co = c * m;
      let s = 0;
      for (let i = j; i < m; i++) s += bt[co + i]! * at[vo + i]!;
      s *= tau;
      for (let i = j; i < m; i++) bt[co + i] = bt[co + i]! - s * at[vo + i]!;
    }
  }
}

/**
 * Thin QR of the m×n matrix `a` (row-major): A = Q·R with Q m×r orthonormal columns and R r×n upper triangular,
 * r = min(m, n), diag(R) >= 0. The input is not modified.
 *
 * Errors: 'invalid_argument' for a wrong length; 'non_finite' for NaN/Inf entries.
 */
export function qr(a: Float64Array, m: number, n: number): QrResult {
  checkMatrix('a', a, m, n);
  const f = factor(a, m, n);
  const { at, taus, diag, k } = f;
  const r = new Float64Array(k * n);
  for (let j = 0; j < k; j++) {
    r[j * n + j] = diag[j]!;
    for (let c = j + 1; c < n; c++) r[j * n + c] = at[c * m + j]!;
  }
  // Q = H_0⋯H_{k-1}·[I_k; 0], accumulated backwards on the rows of Qᵀ (columns of Q). Column c is still e_c when
  // H_j with j > c is applied, and e_c has no entries at rows >= j, so only columns >= j change.
  const qt = new Float64Array(k * m);
  for (let c = 0; c < k; c++) qt[c * m + c] = 1;
  for (let j = k - 1; j >= 0; j--) {
    const tau = taus[j]!;
    if (tau === 0) continue;
    const vo = j * m;
    for (let c = j; c < k; c++) {
      const co = c * m;
      let s = 0;
      for (let i = j; i < m; i++) s += qt[co + i]! * at[vo + i]!;
      if (s === 0) continue;
      s *= tau;
      for (let i = j; i < m; i++) qt[co + i] = qt[co + i]! - s * at[vo + i]!;
    }
  }
  return { q: transpose64(qt, k, m), r };
}

export interface LeastSquaresOptions {
  /**
   * Relative cutoff for rank: directions with singular value (or |R_jj|) at most rcond times the largest are
   * treated as zero. Default max(m, n)·ε.
   */
  rcond?: number;
}

export interface LeastSquaresResult {
  /** n×nrhs minimizer of ‖A·X − B‖_F; the minimum-norm one when A is rank deficient or wide. */
  x: Float64Array;
  /** Numerical rank of A under rcond. */
  rank: number;
}

/**
 * Solve min ‖A·X − B‖ for A m×n and B m×nrhs (row-major). Full-rank tall or square A goes through Householder QR;
 * a wide or (numerically) rank-deficient A through the SVD, giving the minimum-norm solution.
 *
 * Errors: 'shape_mismatch' when B's length is not m·nrhs; 'invalid_argument' for bad dims or rcond;
 * 'non_finite' for NaN/Inf entries.
 */
export function solveLeastSquares(
  a: Float64Array,
  m: number,
  n: number,
  b: Float64Array,
  nrhs: number,
  opts: LeastSquaresOptions = {},
): LeastSquaresResult {
  checkMatrix('a', a, m, n);
  checkDim('nrhs', nrhs);
  if (!(b instanceof Float64Array) || b.length !== m * nrhs) {
    throw new BasinError(
      'shape_mismatch',
      `'b' must hold ${m}×${nrhs} = ${m * nrhs} values to match 'a' with ${m} rows, got ${b instanceof Float64Array ? b.length : 'a non-Float64Array'}`,
      { expected: [m, nrhs], found: b instanceof Float64Array ? b.length : Object.prototype.toString.call(b) },
    );
  }
  checkMatrix('b', b, m, nrhs);
  const rcond = opts.rcond ?? Math.max(m, n, 1) * EPS;
  if (!(Number.isFinite(rcond) && rcond >= 0 && rcond < 1)) {
    throw new BasinError('invalid_argument', `'rcond' must be in [0, 1), got ${rcond}`, { found: rcond });
  }
  const x = new Float64Array(n * nrhs);
  if (m === 0 || n === 0 || nrhs === 0) return { x, rank: 0 };

  if (m >= n) {
    const f = factor(a, m, n);
    let dmax = 0;
    for (let j = 0; j < n; j++) dmax = Math.max(dmax, Math.abs(f.diag[j]!));
    let fullRank = dmax > 0;
    for (let j = 0; j < n && fullRank; j++) if (Math.abs(f.diag[j]!) <= rcond * dmax) fullRank = false;
    if (fullRank) {
      const bt = transpose64(b, m, nrhs);
      applyQt(f, bt, nrhs);
      // Back substitution R·x = (Qᵀb)[:n], R[j][c] = at[c*m + j] for c > j.
      for (let c = 0; c < nrhs; c++) {
        const co = c * m;
        for (let j = n - 1; j >= 0; j--) {
          let s = bt[co + j]!;
          for (let t = j + 1; t < n; t++) s -= f.at[t * m + j]! * x[t * nrhs + c]!;
          x[j * nrhs + c] = s / f.diag[j]!;
        }
      }
      return { x, rank: n };
    }
  }

  // Minimum-norm solution through the SVD: X = V·diag(1/s)·Uᵀ·B over the directions above the cutoff.
  const { u, s, vt } = svd(a, m, n);
  const k = s.length;
  const cutoff = rcond * (s[0] ?? 0);
  let rank = 0;
  while (rank < k && s[rank]! > cutoff) rank++;
  const y = new Float64Array(rank * nrhs); // diag(1/s)·Uᵀ·B
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < rank; j++) {
      const uij = u[i * k + j]!;
      if (uij === 0) continue;
      for (let c = 0; c < nrhs; c++) y[j * nrhs + c] = y[j * nrhs + c]! + uij * b[i * nrhs + c]!;
    }
  }
  for (let j = 0; j < rank; j++) for (let c = 0; c < nrhs; c++) y[j * nrhs + c] = y[j * nrhs + c]! / s[j]!;
  for (let j = 0; j < rank; j++) {
    for (let t = 0; t < n; t++) {
      const v = vt[j * n + t]!;
      for (let c = 0; c < nrhs; c++) x[t * nrhs + c] = x[t * nrhs + c]! + v * y[j * nrhs + c]!;
    }
  }
  return { x, rank };
}
