/**
 * Rank-revealing Cholesky with complete (diagonal) pivoting of a symmetric positive semidefinite matrix:
 * Pᵀ·A·P ≈ L·Lᵀ with L d×p lower trapezoidal, p the numerical rank (LAPACK dpstrf; Higham, "Accuracy and
 * Stability of Numerical Algorithms", §10.3). Each step takes the largest remaining diagonal entry of the Schur
 * complement as the pivot and stops when it falls to `rcond` times the largest diagonal entry of A, so inputs that
 * are exactly dead (a zero row and column) or linear combinations of earlier pivots are never divided by.
 *
 * This is the factorization the factorize core whitens with: it costs d³/6 multiply-adds, most of them in engine
 * products (a symmetric eigensolver costs ~70 times more, all in TypeScript), and the dropped pivots are the directions in which the activations carry no variance.
 */
import { BasinError } from '../errors.js';
import { matmul } from '../engine/matmul.js';

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

/** Panel width of the blocked factorization and solves: the JS work is ~n²·PANEL/2, the rest runs in the engine. */
const PANEL = 32;

/**
 * Pivoted Cholesky of the symmetric PSD n×n row-major `a` (not modified). Pivots stop when the largest remaining
 * diagonal entry is at most `rcond`·max(diag A) (or is not positive).
 *
 * Blocked as LAPACK dpstrf: within a panel of PANEL columns each column is computed left-looking from the panel's
 * earlier columns (pivot choice needs the up-to-date Schur diagonal, kept in `diag`), then the trailing block is
 * updated at once, A₂₂ −= L₂₁·L₂₁ᵀ, through the matrix engine (float64). Rows and columns are swapped physically.
 *
 * Errors: 'invalid_argument' for a wrong length or an rcond outside [0, 1); 'non_finite' for a NaN/Inf entry.
 */
export async function pivotedCholesky(a: Float64Array, n: number, rcond: number): Promise<PivotedCholesky> {
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
  const w = Float64Array.from(a);
  const diag = new Float64Array(n);
  let dmax = 0;
  for (let i = 0; i < n; i++) {
    diag[i] = w[i * n + i]!;
    dmax = Math.max(dmax, diag[i]!);
  }
  const tol = rcond * dmax;
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  const l = new Float64Array(n * n); // row = position, column = pivot step
  let rank = 0;
  let done = false;
  for (let j0 = 0; j0 < n && !done; j0 += PANEL) {
    const j1 = Math.min(n, j0 + PANEL);
    let j = j0;
    for (; j < j1; j++) {
      let best = j;
      for (let i = j + 1; i < n; i++) if (diag[i]! > diag[best]!) best = i;
      const dpiv = diag[best]!;
      if (!(dpiv > tol) || !(dpiv > 0)) {
        done = true;
        break;
      }
      if (best !== j) swapPositions(w, l, diag, perm, n, j, best);
      const ljj = Math.sqrt(dpiv);
      l[j * n + j] = ljj;
      const inv = 1 / ljj;
      const lj = j * n;
      for (let i = j + 1; i < n; i++) {
        const li = i * n;
        let s = w[li + j]!;
        for (let t = j0; t < j; t++) s -= l[li + t]! * l[lj + t]!;
        const lij = s * inv;
        l[li + j] = lij;
        diag[i] = diag[i]! - lij * lij;
      }
      rank = j + 1;
    }
    const width = j - j0;
    const rest = n - j1;
    if (done || rest === 0 || width === 0) continue;
    // Trailing update A[j1:, j1:] −= L[j1:, j0:j1]·L[j1:, j0:j1]ᵀ.
    const panel = new Float64Array(rest * width);
    for (let i = 0; i < rest; i++) panel.set(l.subarray((j1 + i) * n + j0, (j1 + i) * n + j0 + width), i * width);
    const upd = await matmul(panel, [rest, width], panel, [rest, width], { transB: true });
    for (let i = 0; i < rest; i++) {
      const wi = (j1 + i) * n + j1;
      const ui = i * rest;
      for (let c = 0; c < rest; c++) w[wi + c] = w[wi + c]! - upd[ui + c]!;
    }
  }
  const out = new Float64Array(n * rank);
  for (let i = 0; i < n; i++) out.set(l.subarray(i * n, i * n + Math.min(rank, i + 1)), i * rank);
  return { n, rank, perm, l: out };
}

/** Swap positions i < k: rows and columns of the working matrix, rows of L, the diagonal and the permutation. */
function swapPositions(w: Float64Array, l: Float64Array, diag: Float64Array, perm: Int32Array, n: number, i: number, k: number): void {
  const ri = i * n;
  const rk = k * n;
  for (let c = 0; c < n; c++) {
    const t = w[ri + c]!;
    w[ri + c] = w[rk + c]!;
    w[rk + c] = t;
  }
  for (let r = 0; r < n; r++) {
    const o = r * n;
    const t = w[o + i]!;
    w[o + i] = w[o + k]!;
    w[o + k] = t;
  }
  for (let c = 0; c < i; c++) {
    const t = l[ri + c]!;
    l[ri + c] = l[rk + c]!;
    l[rk + c] = t;
  }
  const d = diag[i]!;
  diag[i] = diag[k]!;
  diag[k] = d;
  const p = perm[i]!;
  perm[i] = perm[k]!;
  perm[k] = p;
}

/** Rows [r0, r1) × columns [c0, c1) of L₁ (stored n×rank) as a contiguous block. */
function block(pc: PivotedCholesky, r0: number, r1: number, c0: number, c1: number): Float64Array {
  const p = pc.rank;
  const out = new Float64Array((r1 - r0) * (c1 - c0));
  for (let r = r0; r < r1; r++) out.set(pc.l.subarray(r * p + c0, r * p + c1), (r - r0) * (c1 - c0));
  return out;
}

/**
 * Z = L₁⁻¹·B for the rank×rank lower triangular top block L₁ and B rank×cols (row-major). Returns a new array.
 * Blocked: Z_b = L_bb⁻¹·(B_b − L_b,<b·Z_<b), the product through the engine, the small solve in JS.
 */
export async function forwardSolve(pc: PivotedCholesky, b: Float64Array, cols: number): Promise<Float64Array> {
  const { rank: p, l } = pc;
  const z = Float64Array.from(b);
  for (let i0 = 0; i0 < p; i0 += PANEL) {
    const i1 = Math.min(p, i0 + PANEL);
    if (i0 > 0) {
      const prod = await matmul(block(pc, i0, i1, 0, i0), [i1 - i0, i0], z.slice(0, i0 * cols), [i0, cols]);
      for (let t = 0; t < prod.length; t++) z[i0 * cols + t] = z[i0 * cols + t]! - prod[t]!;
    }
    for (let i = i0; i < i1; i++) {
      const zi = i * cols;
      for (let t = i0; t < i; t++) {
        const f = l[i * p + t]!;
        if (f === 0) continue;
        const zt = t * cols;
        for (let j = 0; j < cols; j++) z[zi + j] = z[zi + j]! - f * z[zt + j]!;
      }
      const inv = 1 / l[i * p + i]!;
      for (let j = 0; j < cols; j++) z[zi + j] = z[zi + j]! * inv;
    }
  }
  return z;
}

/** X = L₁⁻ᵀ·B for B rank×cols (row-major), blocked from the last rows up. Returns a new array. */
export async function backSolve(pc: PivotedCholesky, b: Float64Array, cols: number): Promise<Float64Array> {
  const { rank: p, l } = pc;
  const x = Float64Array.from(b);
  const last = Math.floor((p - 1) / PANEL) * PANEL;
  for (let i0 = last; i0 >= 0 && p > 0; i0 -= PANEL) {
    const i1 = Math.min(p, i0 + PANEL);
    if (i1 < p) {
      // X_b −= L[i1:p, i0:i1]ᵀ·X[i1:p]
      const prod = await matmul(block(pc, i1, p, i0, i1), [p - i1, i1 - i0], x.slice(i1 * cols, p * cols), [p - i1, cols], { transA: true });
      for (let t = 0; t < prod.length; t++) x[i0 * cols + t] = x[i0 * cols + t]! - prod[t]!;
    }
    for (let i = i1 - 1; i >= i0; i--) {
      const xi = i * cols;
      const inv = 1 / l[i * p + i]!;
      for (let j = 0; j < cols; j++) x[xi + j] = x[xi + j]! * inv;
      for (let t = i0; t < i; t++) {
        const f = l[i * p + t]!;
        if (f === 0) continue;
        const xt = t * cols;
        for (let j = 0; j < cols; j++) x[xt + j] = x[xt + j]! - f * x[xi + j]!;
      }
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
export async function solvePsd(a: Float64Array, n: number, b: Float64Array, cols: number, rcond: number): Promise<Float64Array> {
  const pc = await pivotedCholesky(a, n, rcond);
  return scatterPivots(pc, await backSolve(pc, await forwardSolve(pc, gatherPivots(pc, b, cols), cols), cols), cols);
}
