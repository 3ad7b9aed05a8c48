/**
 * Thin SVD: one-sided (Hestenes) Jacobi, preconditioned by the eigenvectors of the Gram matrix.
 *
 * For m >= n: V₀ from eigh(AᵀA) nearly diagonalizes the problem, so B = A·V₀ has nearly orthogonal columns and
 * one-sided Jacobi finishes it in a sweep or two, rotating B's columns and V₀'s columns together. The result has
 * Jacobi's accuracy, not the Gram matrix's: the singular values come from the column norms of B (not from the
 * square roots of AᵀA's eigenvalues, which lose the small ones to cancellation), U's columns are orthogonal to
 * within the rotation threshold, and V is a product of orthogonal factors. A wide A is handled through Aᵀ.
 */
import { BasinError } from '../errors.js';
import { matmulTs } from '../engine/matmul.js';
import { EPS, checkMatrix, transpose64 } from './dense.js';
import { eigh } from './eigh.js';

export interface SvdResult {
  /** m×r, orthonormal columns (r = min(m, n)). */
  u: Float64Array;
  /** r singular values, descending, >= 0. */
  s: Float64Array;
  /** r×n, orthonormal rows: A = U·diag(s)·Vᵀ. */
  vt: Float64Array;
}

const MAX_SWEEPS = 40;

/**
 * Thin singular value decomposition of the m×n matrix `a` (row-major): A = U·diag(s)·Vᵀ. The input is not
 * modified. Columns for zero singular values are completed to an orthonormal set. Signs are deterministic: the
 * entry of largest magnitude is positive in each column of U when m >= n, and in each row of Vᵀ otherwise.
 *
 * Errors: 'invalid_argument' for a wrong length; 'non_finite' for NaN/Inf entries.
 */
export function svd(a: Float64Array, m: number, n: number): SvdResult {
  checkMatrix('a', a, m, n);
  if (m >= n) return tallSvd(a, m, n);
  // A = (Aᵀ)ᵀ = (U' S V'ᵀ)ᵀ = V' S U'ᵀ.
  const t = tallSvd(transpose64(a, m, n), n, m);
  return { u: transpose64(t.vt, m, m), s: t.s, vt: transpose64(t.u, n, m) };
}

function tallSvd(a: Float64Array, m: number, n: number): SvdResult {
  if (n === 0) return { u: new Float64Array(0), s: new Float64Array(0), vt: new Float64Array(0) };
  // Preconditioner: V₀ = eigenvectors of AᵀA (computed on A/max|A| so the Gram matrix cannot overflow).
  let amax = 0;
  for (let i = 0; i < a.length; i++) amax = Math.max(amax, Math.abs(a[i]!));
  const as = new Float64Array(a.length);
  const inv = amax > 0 ? 1 / amax : 1;
  for (let i = 0; i < a.length; i++) as[i] = a[i]! * inv;
  const gram = matmulTs(as, [m, n], as, [m, n], { transA: true });
  const v0 = eigh(gram, n).vectors;
  // bt = (A·V₀)ᵀ = V₀ᵀ·Aᵀ: row j is column j of B; vt = V₀ᵀ: row j is column j of V.
  const bt = matmulTs(v0, [n, n], as, [m, n], { transA: true, transB: true });
  const vt = transpose64(v0, n, n);

  // One-sided Jacobi on the rows of bt: rotate pairs until every pair is orthogonal to within tol.
  const tol = Math.max(1, Math.sqrt(m)) * EPS;
  const norms = new Float64Array(n);
  const tile = Math.max(1, Math.floor(16384 / m));
  let converged = false;
  for (let sweep = 0; sweep < MAX_SWEEPS && !converged; sweep++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      const o = j * m;
      for (let i = 0; i < m; i++) s += bt[o + i]! * bt[o + i]!;
      norms[j] = s;
    }
    converged = true;
    // Pairs in tiles of rows (block-cyclic order, as LAPACK's dgesvj) so both row blocks stay in cache.
    for (let pb = 0; pb < n; pb += tile) {
      const pe = Math.min(n, pb + tile);
      for (let qb = pb; qb < n; qb += tile) {
        const qe = Math.min(n, qb + tile);
        for (let p = pb; p < pe; p++) {
          for (let q = Math.max(qb, p + 1); q < qe; q++) {
            if (rotatePair(bt, vt, norms, m, n, p, q, tol)) converged = false;
          }
        }
      }
    }
  }
  if (!converged) {
    throw new BasinError('invalid_argument', `svd: one-sided Jacobi did not converge in ${MAX_SWEEPS} sweeps for a ${m}×${n} matrix`, {
      shape: [m, n],
    });
  }

  // Singular values are the column norms; sort descending.
  const sv = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let s = 0;
    const o = j * m;
    for (let i = 0; i < m; i++) s += bt[o + i]! * bt[o + i]!;
    sv[j] = Math.sqrt(s);
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => sv[y]! - sv[x]! || x - y);
  const s = new Float64Array(n);
  const ut = new Float64Array(n * m); // rows: columns of U
  const vtOut = new Float64Array(n * n);
  const zero: number[] = [];
  for (let j = 0; j < n; j++) {
    const src = order[j]!;
    const sj = sv[src]!;
    s[j] = sj * amax;
    vtOut.set(vt.subarray(src * n, src * n + n), j * n);
    if (sj > 0) {
      const invs = 1 / sj;
      for (let i = 0; i < m; i++) ut[j * m + i] = bt[src * m + i]! * invs;
    } else {
      zero.push(j);
    }
  }
  if (zero.length) completeOrthonormal(ut, m, n, zero);
  // Sign convention: the entry of largest magnitude in each column of U is positive (V's row flips with it).
  for (let j = 0; j < n; j++) {
    let best = 0;
    let neg = false;
    for (let i = 0; i < m; i++) {
      const x = ut[j * m + i]!;
      if (Math.abs(x) > best) {
        best = Math.abs(x);
        neg = x < 0;
      }
    }
    if (neg) {
      for (let i = 0; i < m; i++) ut[j * m + i] = -ut[j * m + i]!;
      for (let i = 0; i < n; i++) vtOut[j * n + i] = -vtOut[j * n + i]!;
    }
  }
  return { u: transpose64(ut, n, m), s, vt: vtOut };
}

/**
 * One Jacobi step on rows p < q of bt (columns of B): if they are not orthogonal to within tol, rotate them (and
 * rows p, q of vt) so they are. Returns whether it rotated.
 */
function rotatePair(bt: Float64Array, vt: Float64Array, norms: Float64Array, m: number, n: number, p: number, q: number, tol: number): boolean {
  const alpha = norms[p]!;
  const beta = norms[q]!;
  if (alpha === 0 || beta === 0) return false;
  const po = p * m;
  const qo = q * m;
  let g0 = 0, g1 = 0, g2 = 0, g3 = 0;
  let i = 0;
  for (; i + 3 < m; i += 4) {
    g0 += bt[po + i]! * bt[qo + i]!;
    g1 += bt[po + i + 1]! * bt[qo + i + 1]!;
    g2 += bt[po + i + 2]! * bt[qo + i + 2]!;
    g3 += bt[po + i + 3]! * bt[qo + i + 3]!;
  }
  for (; i < m; i++) g0 += bt[po + i]! * bt[qo + i]!;
  const gamma = g0 + g1 + (g2 + g3);
  if (Math.abs(gamma) <= tol * Math.sqrt(alpha * beta)) return false;
  // Rotation that zeroes gamma (Rutishauser): the smaller root t of t² + 2ζt − 1 = 0.
  const zeta = (beta - alpha) / (2 * gamma);
  const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
  const c = 1 / Math.sqrt(1 + t * t);
  const s = c * t;
  for (let k = 0; k < m; k++) {
    const x = bt[po + k]!;
    const y = bt[qo + k]!;
    bt[po + k] = c * x - s * y;
    bt[qo + k] = s * x + c * y;
  }
  const pv = p * n;
  const qv = q * n;
  for (let k = 0; k < n; k++) {
    const x = vt[pv + k]!;
    const y = vt[qv + k]!;
    vt[pv + k] = c * x - s * y;
    vt[qv + k] = s * x + c * y;
  }
  norms[p] = alpha - t * gamma;
  norms[q] = beta + t * gamma;
  return true;
}

/**
 * Fill rows `missing` of ut (k×m, rows orthonormal elsewhere) with unit vectors orthogonal to every other row.
 * Each new row starts from the coordinate vector e_i least covered by the current rows (largest
 * ‖P⊥e_i‖² = 1 − Σ_h ut[h][i]², which is at least (m − rows)/m), projected out of them twice.
 */
function completeOrthonormal(ut: Float64Array, m: number, k: number, missing: readonly number[]): void {
  const have: number[] = [];
  const skip = new Set(missing);
  for (let j = 0; j < k; j++) if (!skip.has(j)) have.push(j);
  const covered = new Float64Array(m);
  const addRow = (h: number): void => {
    for (let i = 0; i < m; i++) covered[i] = covered[i]! + ut[h * m + i]! * ut[h * m + i]!;
  };
  for (const h of have) addRow(h);
  const w = new Float64Array(m);
  for (const j of missing) {
    let best = 0;
    for (let i = 1; i < m; i++) if (covered[i]! < covered[best]!) best = i;
    w.fill(0);
    w[best] = 1;
    for (let pass = 0; pass < 2; pass++) {
      for (const h of have) {
        const o = h * m;
        let d = 0;
        for (let i = 0; i < m; i++) d += ut[o + i]! * w[i]!;
        for (let i = 0; i < m; i++) w[i] = w[i]! - d * ut[o + i]!;
      }
    }
    let nrm = 0;
    for (let i = 0; i < m; i++) nrm += w[i]! * w[i]!;
    nrm = Math.sqrt(nrm);
    for (let i = 0; i < m; i++) ut[j * m + i] = w[i]! / nrm;
    have.push(j);
    addRow(j);
  }
}
