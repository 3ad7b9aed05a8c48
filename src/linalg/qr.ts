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

/**
 * Four consecutive reflectors H_j0⋯H_j0+3 in compact WY form I − V·T·Vᵀ (LAPACK dlarft, forward): V holds the
 * vectors zero-padded over rows j0 … m-1, T is 4×4 upper triangular.
 */
interface Block4 {
  j0: number;
  len: number;
  v: Float64Array;
  t: Float64Array;
}

function block4(at: Float64Array, taus: Float64Array, m: number, j0: number): Block4 {
  const len = m - j0;
  const v = new Float64Array(4 * len);
  for (let r = 0; r < 4; r++) {
    const j = j0 + r;
    v[r * len + r] = 1;
    for (let i = j + 1; i < m; i++) v[r * len + i - j0] = at[j * m + i]!;
  }
  const g = new Float64Array(16);
  for (let p = 0; p < 4; p++) {
    for (let q = p + 1; q < 4; q++) {
      let s = 0;
      for (let i = q; i < len; i++) s += v[p * len + i]! * v[q * len + i]!;
      g[p * 4 + q] = s;
    }
  }
  const t = new Float64Array(16);
  for (let r = 0; r < 4; r++) {
    const tau = taus[j0 + r]!;
    t[r * 4 + r] = tau;
    for (let i = 0; i < r; i++) {
      let w = 0;
      for (let p = i; p < r; p++) w += t[i * 4 + p]! * g[p * 4 + r]!;
      t[i * 4 + r] = -tau * w;
    }
  }
  return { j0, len, v, t };
}

/**
 * x := (I − V·T·Vᵀ)·x (or with Tᵀ when `trans`, which applies the product's transpose), for the vector
 * x = buf[off + j0 .. off + m): two passes over x for four reflectors.
 */
function applyBlock4(b: Block4, buf: Float64Array, off: number, trans: boolean): void {
  const { len, v, t } = b;
  const o = off + b.j0;
  const v1 = len, v2 = 2 * len, v3 = 3 * len;
  let y0 = 0, y1 = 0, y2 = 0, y3 = 0;
  for (let i = 0; i < len; i++) {
    const x = buf[o + i]!;
    y0 += v[i]! * x;
    y1 += v[v1 + i]! * x;
    y2 += v[v2 + i]! * x;
    y3 += v[v3 + i]! * x;
  }
  if (y0 === 0 && y1 === 0 && y2 === 0 && y3 === 0) return;
  let z0: number, z1: number, z2: number, z3: number;
  if (trans) {
    z0 = t[0]! * y0;
    z1 = t[1]! * y0 + t[5]! * y1;
    z2 = t[2]! * y0 + t[6]! * y1 + t[10]! * y2;
    z3 = t[3]! * y0 + t[7]! * y1 + t[11]! * y2 + t[15]! * y3;
  } else {
    z0 = t[0]! * y0 + t[1]! * y1 + t[2]! * y2 + t[3]! * y3;
    z1 = t[5]! * y1 + t[6]! * y2 + t[7]! * y3;
    z2 = t[10]! * y2 + t[11]! * y3;
    z3 = t[15]! * y3;
  }
  for (let i = 0; i < len; i++) {
    buf[o + i] = buf[o + i]! - (v[i]! * z0 + v[v1 + i]! * z1 + v[v2 + i]! * z2 + v[v3 + i]! * z3);
  }
}

/** Apply H_j = I − τ·v·vᵀ (v in row j of at, from column j) to x = buf[off + j .. off + m). */
function applyOne(at: Float64Array, m: number, j: number, tau: number, buf: Float64Array, off: number): void {
  if (tau === 0) return;
  const vo = j * m;
  let s = 0;
  for (let i = j; i < m; i++) s += buf[off + i]! * at[vo + i]!;
  if (s === 0) return;
  s *= tau;
  for (let i = j; i < m; i++) buf[off + i] = buf[off + i]! - s * at[vo + i]!;
}

/**
 * Householder QR on Aᵀ's rows, in panels of four columns: each panel is factored column by column, then its four
 * reflectors reach the remaining columns together in WY form.
 */
function factor(a: Float64Array, m: number, n: number): Factored {
  const at = transpose64(a, m, n);
  const k = Math.min(m, n);
  const taus = new Float64Array(k);
  const diag = new Float64Array(k);
  let j0 = 0;
  for (; j0 < k; j0 += 4) {
    const j1 = Math.min(k, j0 + 4);
    for (let j = j0; j < j1; j++) {
      const { tau, beta } = householder(at, j * m + j, m - j);
      taus[j] = tau;
      diag[j] = beta;
      for (let c = j + 1; c < j1; c++) applyOne(at, m, j, tau, at, c * m);
    }
    if (j1 - j0 === 4) {
      const blk = block4(at, taus, m, j0);
      for (let c = j1; c < n; c++) applyBlock4(blk, at, c * m, true);
    } else {
      for (let j = j0; j < j1; j++) for (let c = j1; c < n; c++) applyOne(at, m, j, taus[j]!, at, c * m);
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
  // Blocks of four in reverse: the last, partial block first (one reflector at a time), then full ones.
  const full = k - (k % 4);
  for (let j = k - 1; j >= full; j--) for (let c = j; c < k; c++) applyOne(at, m, j, taus[j]!, qt, c * m);
  for (let j0 = full - 4; j0 >= 0; j0 -= 4) {
    const blk = block4(at, taus, m, j0);
    for (let c = j0; c < k; c++) applyBlock4(blk, qt, c * m, false);
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
