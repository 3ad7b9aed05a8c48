/**
 * Rank-revealing Cholesky with complete (diagonal) pivoting of a symmetric positive semidefinite matrix:
 * Pᵀ·A·P ≈ L·Lᵀ with L d×p lower trapezoidal, p the numerical rank (LAPACK dpstrf; Higham, "Accuracy and
 * Stability of Numerical Algorithms", §10.3). Each step takes the largest remaining diagonal entry of the Schur
 * complement as the pivot and stops when it falls to `rcond` times the largest diagonal entry of A, so inputs that
 * are exactly dead (a zero row and column) or linear combinations of earlier pivots are never divided by.
 *
 * This is the factorization the factorize core whitens with: it costs d³/6 multiply-adds (a symmetric eigensolver
 * costs ~70 times more), and the dropped pivots are the directions in which the activations carry no variance.
 */
import { BasinError } from '../errors.js';

export interface PivotedCholesky {
  /** Order of A. */
  n: number;
  /** Numerical rank p: the number of pivots taken. */
  rank: number;
  /** Pivot order: perm[i] is the row/column of A placed at position i; perm[0..rank) are the kept ones. */
  perm: Int32Array;
  /** L as rank×rank lower triangular top block plus the rows below, stored n×rank row-major in pivot order. */
  l: Float64Array;
}

/**
 * Pivoted Cholesky of the symmetric PSD n×n row-major `a` (only the lower triangle is read; not modified). Pivots
 * stop when the largest remaining diagonal entry is at most `rcond`·max(diag A) (or is not positive).
 *
 * Errors: 'invalid_argument' for a wrong length or an rcond outside [0, 1); 'non_finite' for a NaN/Inf entry.
 */
export function pivotedCholesky(a: Float64Array, n: number, rcond: number): PivotedCholesky {
  if (!(a instanceof Float64Array) || a.length !== n * n) {
    throw new BasinError('invalid_argument', `pivotedCholesky: expected ${n}×${n} values, got ${a.length}`, { expected: n * n, found: a.length });
  }
  if (!(Number.isFinite(rcond) && rcond >= 0 && rcond < 1)) {
    throw new BasinError('invalid_argument', `'rcond' must be in [0, 1), got ${rcond}`, { found: rcond });
  }
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i]!)) {
      throw new BasinError('non_finite', `pivotedCholesky: entry [${Math.floor(i / n)}, ${i % n}] is ${a[i]}`, { index: i, found: a[i] });
    }
  }
  const diag = new Float64Array(n);
  let dmax = 0;
  for (let i = 0; i < n; i++) {
    diag[i] = a[i * n + i]!;
    dmax = Math.max(dmax, diag[i]!);
  }
  const tol = rcond * dmax;
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  // rows[orig] holds row `orig` of L (columns 0..k), so each inner product runs over two contiguous rows.
  const rows = new Float64Array(n * n);
  let rank = 0;
  for (let k = 0; k < n; k++) {
    let best = k;
    for (let i = k + 1; i < n; i++) if (diag[perm[i]!]! > diag[perm[best]!]!) best = i;
    const piv = perm[best]!;
    const dpiv = diag[piv]!;
    if (!(dpiv > tol) || !(dpiv > 0)) break;
    perm[best] = perm[k]!;
    perm[k] = piv;
    const lkk = Math.sqrt(dpiv);
    const po = piv * n;
    rows[po + k] = lkk;
    const inv = 1 / lkk;
    for (let i = k + 1; i < n; i++) {
      const r = perm[i]!;
      const ro = r * n;
      // A[r][piv] from the lower triangle.
      let s = r > piv ? a[ro + piv]! : a[po + r]!;
      for (let t = 0; t < k; t++) s -= rows[ro + t]! * rows[po + t]!;
      const lik = s * inv;
      rows[ro + k] = lik;
      diag[r] = diag[r]! - lik * lik;
    }
    rank = k + 1;
  }
  const l = new Float64Array(n * rank);
  for (let i = 0; i < n; i++) {
    const src = perm[i]! * n;
    l.set(rows.subarray(src, src + Math.min(rank, i + 1)), i * rank);
  }
  return { n, rank, perm, l };
}

/** Z = L₁⁻¹·B for the rank×rank lower triangular top block L₁ and B rank×cols (row-major). Returns a new array. */
export function forwardSolve(pc: PivotedCholesky, b: Float64Array, cols: number): Float64Array {
  const { rank: p, l } = pc;
  const z = Float64Array.from(b);
  for (let i = 0; i < p; i++) {
    const zi = i * cols;
    for (let t = 0; t < i; t++) {
      const f = l[i * p + t]!;
      if (f === 0) continue;
      const zt = t * cols;
      for (let j = 0; j < cols; j++) z[zi + j] = z[zi + j]! - f * z[zt + j]!;
    }
    const inv = 1 / l[i * p + i]!;
    for (let j = 0; j < cols; j++) z[zi + j] = z[zi + j]! * inv;
  }
  return z;
}

/** X = L₁⁻ᵀ·B for B rank×cols (row-major). Returns a new array. */
export function backSolve(pc: PivotedCholesky, b: Float64Array, cols: number): Float64Array {
  const { rank: p, l } = pc;
  const x = Float64Array.from(b);
  for (let i = p - 1; i >= 0; i--) {
    const xi = i * cols;
    const inv = 1 / l[i * p + i]!;
    for (let j = 0; j < cols; j++) x[xi + j] = x[xi + j]! * inv;
    // Row i is final: remove its contribution from the rows above (column i of L₁ below the diagonal is row i).
    for (let t = 0; t < i; t++) {
      const f = l[i * p + t]!;
      if (f === 0) continue;
      const xt = t * cols;
      for (let j = 0; j < cols; j++) x[xt + j] = x[xt + j]! - f * x[xi + j]!;
    }
  }
  return x;
}

/** Rows perm[0..rank) of the n×cols matrix `m`: the kept (pivoted) coordinates, rank×cols. */
export function gatherPivots(pc: PivotedCholesky, m: Float64Array, cols: number): Float64Array {
  const out = new Float64Array(pc.rank * cols);
  for (let i = 0; i < pc.rank; i++) {
    const r = pc.perm[i]!;
    out.set(m.subarray(r * cols, r * cols + cols), i * cols);
  }
  return out;
}

/** The n×cols matrix with rows perm[0..rank) taken from the rank×cols `top` and every other row zero. */
export function scatterPivots(pc: PivotedCholesky, top: Float64Array, cols: number): Float64Array {
  const out = new Float64Array(pc.n * cols);
  for (let i = 0; i < pc.rank; i++) {
    const r = pc.perm[i]!;
    out.set(top.subarray(i * cols, i * cols + cols), r * cols);
  }
  return out;
}

/**
 * A least-squares solution X [n, cols] of A·X = B for symmetric PSD A [n, n]: through the pivoted factor, with
 * zero rows for the dropped pivots (the basic solution; on a singular A it solves the consistent part and never
 * divides by a vanishing pivot). This is the robust normal-equations solve ALS uses.
 */
export function solvePsd(a: Float64Array, n: number, b: Float64Array, cols: number, rcond: number): Float64Array {
  const pc = pivotedCholesky(a, n, rcond);
  return scatterPivots(pc, backSolve(pc, forwardSolve(pc, gatherPivots(pc, b, cols), cols), cols), cols);
}
