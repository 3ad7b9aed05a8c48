/**
 * Symmetric eigendecomposition: Householder tridiagonalization, then implicit QL with Wilkinson shifts (the
 * EISPACK tred2/tql2 pair, as in JAMA), reorganized so every inner loop runs along contiguous row-major memory.
 *
 * Layout choices: the trailing block keeps only its upper triangle, and one pass per step both applies the
 * rank-2 update and computes the next step's matvec; Q = H_0⋯H_{n-3} is accumulated directly as Qᵀ, whose rows
 * are the columns of Q, so each QL rotation, which mixes two columns of the eigenvector matrix, touches two
 * contiguous rows. Cost ≈ 4/3·n³ (reduction) + 4/3·n³ (Qᵀ) + 6n per rotation, with ~2 QL sweeps per eigenvalue
 * (2n² rotations, ~12n³ flops: most of the time; measured on a random 1024×1024).
 */
import { BasinError } from '../errors.js';
import { EPS, checkMatrix, householder, maxAbs } from './dense.js';

export interface EighResult {
  /** Eigenvalues, descending. */
  values: Float64Array;
  /**
   * n×n row-major; column j is the unit eigenvector for values[j], so A = V·diag(values)·Vᵀ. Each column's entry
   * of largest magnitude is positive (a deterministic choice of sign).
   */
  vectors: Float64Array;
}

/** QL iterations allowed per eigenvalue before giving up (typically 1–3 are needed). */
const MAX_ITER = 60;

/**
 * Eigenvalues (descending) and orthonormal eigenvectors of the symmetric n×n matrix `a` (row-major). The matrix
 * used is (A + Aᵀ)/2, so rounding-level asymmetry is harmless. The input is not modified.
 *
 * Errors: 'invalid_argument' for a wrong length; 'non_finite' for NaN/Inf entries.
 */
export function eigh(a: Float64Array, n: number): EighResult {
  checkMatrix('a', a, n, n);
  if (n === 0) return { values: new Float64Array(0), vectors: new Float64Array(0) };
  // Work on A / max|A| so squares cannot overflow or underflow; the eigenvalues are scaled back at the end.
  const scale = maxAbs(a) || 1;
  const inv = 1 / scale;
  const w = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) w[i * n + j] = 0.5 * (a[i * n + j]! + a[j * n + i]!) * inv;
  }
  const d = new Float64Array(n);
  const e = new Float64Array(n); // e[i] couples i and i+1; e[n-1] = 0
  const vt = tridiagonalize(w, n, d, e);
  tql(d, e, vt, n);

  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => d[y]! - d[x]! || x - y);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const src = order[j]! * n;
    values[j] = d[order[j]!]! * scale;
    // Sign: the entry of largest magnitude positive.
    let best = 0;
    let sign = 1;
    for (let i = 0; i < n; i++) {
      const x = vt[src + i]!;
      if (Math.abs(x) > best) {
        best = Math.abs(x);
        sign = x < 0 ? -1 : 1;
      }
    }
    for (let i = 0; i < n; i++) vectors[i * n + j] = sign * vt[src + i]!;
  }
  return { values, vectors };
}

/**
 * Reduce the symmetric `w` (only its upper triangle is read; it is overwritten) to tridiagonal form T = Qᵀ·W·Q;
 * fills d (diagonal) and e (off-diagonal) and returns Qᵀ (n×n row-major).
 *
 * Step k reflects row k's tail and updates the trailing block S := H·S·H = S − v·qᵀ − q·vᵀ with
 * q = p − (τ/2)(pᵀv)·v, p = τ·S·v. Only S's upper triangle is kept, and the pass that updates S for step k also
 * computes the symmetric matvec S'·v' for step k+1 (v' is built from the first updated row), so each step streams
 * the upper triangle once instead of reading the full block twice.
 */
function tridiagonalize(w: Float64Array, n: number, d: Float64Array, e: Float64Array): Float64Array {
  const vs = new Float64Array(n * n); // row k holds the reflector of step k at columns k+1 .. n-1
  const taus = new Float64Array(n);
  const p = new Float64Array(n);
  const q = new Float64Array(n);
  const reflect = (k: number): void => {
    // Reflector for step k from w[k, k+1:], into vs row k.
    const off = k * n + k + 1;
    vs.set(w.subarray(off, k * n + n), off);
    const { tau, beta } = householder(vs, off, n - k - 1);
    taus[k] = tau;
    e[k] = beta;
  };
  if (n >= 3) {
    reflect(0);
    // p = S·v for S = w[1:, 1:] from its upper triangle.
    const v = vs; // v_0[j] = vs[j] for j >= 1
    for (let i = 1; i < n; i++) {
      const row = i * n;
      const vi = v[i]!;
      let acc = w[row + i]! * vi;
      for (let j = i + 1; j < n; j++) {
        const s = w[row + j]!;
        acc += s * v[j]!;
        p[j] = p[j]! + s * vi;
      }
      p[i] = p[i]! + acc;
    }
  }
  for (let k = 0; k + 2 < n; k++) {
    const tau = taus[k]!;
    const vo = k * n; // v_k[j] = vs[vo + j], j >= k+1
    d[k] = w[k * n + k]!;
    let pv = 0;
    for (let j = k + 1; j < n; j++) {
      p[j] = tau * p[j]!;
      pv += p[j]! * vs[vo + j]!;
    }
    const half = 0.5 * tau * pv;
    for (let j = k + 1; j < n; j++) q[j] = p[j]! - half * vs[vo + j]!;
    // First row of the block, then the next reflector from it.
    {
      const row = (k + 1) * n;
      const vi = vs[vo + k + 1]!;
      const qi = q[k + 1]!;
      for (let j = k + 1; j < n; j++) w[row + j] = w[row + j]! - (vi * q[j]! + qi * vs[vo + j]!);
    }
    const next = k + 3 < n;
    if (next) {
      reflect(k + 1);
      p.fill(0, k + 2, n);
    }
    const wo = (k + 1) * n; // v_{k+1}[j] = vs[wo + j], j >= k+2
    for (let i = k + 2; i < n; i++) {
      const row = i * n;
      const vi = vs[vo + i]!;
      const qi = q[i]!;
      if (next) {
        const ui = vs[wo + i]!;
        const sd = w[row + i]! - 2 * vi * qi;
        w[row + i] = sd;
        let acc = sd * ui;
        for (let j = i + 1; j < n; j++) {
          const s = w[row + j]! - (vi * q[j]! + qi * vs[vo + j]!);
          w[row + j] = s;
          acc += s * vs[wo + j]!;
          p[j] = p[j]! + s * ui;
        }
        p[i] = p[i]! + acc;
      } else {
        for (let j = i; j < n; j++) w[row + j] = w[row + j]! - (vi * q[j]! + qi * vs[vo + j]!);
      }
    }
  }
  if (n >= 2) {
    d[n - 2] = w[(n - 2) * n + n - 2]!;
    e[n - 2] = w[(n - 2) * n + n - 1]!;
  }
  d[n - 1] = w[n * n - 1]!;
  e[n - 1] = 0;

  return accumulateQt(vs, taus, n);
}

/**
 * Qᵀ = H_{n-3}⋯H_0, built as M := M·H_k for k = n-3 … 0 starting from I. Right-multiplication acts on each row on
 * its own, and four reflectors at a time are folded into compact WY form, H_a·H_b·H_c·H_d = I − V·T·Vᵀ (T upper
 * triangular, LAPACK dlarft), so each row takes them in two passes (y = row·V, then row −= (y·T)·Vᵀ) instead of
 * eight. Row i is untouched by reflectors with k >= i (its entries there are 0), so a block from lo only visits
 * rows > lo.
 */
function accumulateQt(vs: Float64Array, taus: Float64Array, n: number): Float64Array {
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) m[i * n + i] = 1;
  let hi = n - 3;
  for (; hi - 3 >= 0; hi -= 4) {
    const lo = hi - 3;
    // V = [v_hi, v_hi-1, v_hi-2, v_lo]; reflector k lives in vs row k, zero at columns <= k.
    const o0 = hi * n, o1 = o0 - n, o2 = o1 - n, o3 = o2 - n;
    const t0 = taus[hi]!, t1 = taus[hi - 1]!, t2 = taus[hi - 2]!, t3 = taus[lo]!;
    // Inner products of the vectors (only the overlap j > k of the later one matters).
    let g01 = 0, g02 = 0, g03 = 0, g12 = 0, g13 = 0, g23 = 0;
    for (let j = lo + 1; j < n; j++) {
      const a0 = vs[o0 + j]!, a1 = vs[o1 + j]!, a2 = vs[o2 + j]!, a3 = vs[o3 + j]!;
      g01 += a0 * a1;
      g02 += a0 * a2;
      g03 += a0 * a3;
      g12 += a1 * a2;
      g13 += a1 * a3;
      g23 += a2 * a3;
    }
    // T (upper triangular), column by column: T[:i, i] = −τ_i · T[:i, :i] · (V[:, :i]ᵀ v_i).
    const T00 = t0;
    const T01 = -t1 * T00 * g01;
    const T11 = t1;
    const T02 = -t2 * (T00 * g02 + T01 * g12);
    const T12 = -t2 * (T11 * g12);
    const T22 = t2;
    const T03 = -t3 * (T00 * g03 + T01 * g13 + T02 * g23);
    const T13 = -t3 * (T11 * g13 + T12 * g23);
    const T23 = -t3 * (T22 * g23);
    const T33 = t3;
    for (let i = lo + 1; i < n; i++) {
      const row = i * n;
      let y0 = 0, y1 = 0, y2 = 0, y3 = 0;
      for (let j = lo + 1; j < n; j++) {
        const x = m[row + j]!;
        y0 += x * vs[o0 + j]!;
        y1 += x * vs[o1 + j]!;
        y2 += x * vs[o2 + j]!;
        y3 += x * vs[o3 + j]!;
      }
      if (y0 === 0 && y1 === 0 && y2 === 0 && y3 === 0) continue;
      // z = y·T
      const z0 = y0 * T00;
      const z1 = y0 * T01 + y1 * T11;
      const z2 = y0 * T02 + y1 * T12 + y2 * T22;
      const z3 = y0 * T03 + y1 * T13 + y2 * T23 + y3 * T33;
      for (let j = lo + 1; j < n; j++) {
        m[row + j] = m[row + j]! - (z0 * vs[o0 + j]! + z1 * vs[o1 + j]! + z2 * vs[o2 + j]! + z3 * vs[o3 + j]!);
      }
    }
  }
  // The last few (k = hi … 0) one at a time.
  for (let k = hi; k >= 0; k--) {
    const tau = taus[k]!;
    if (tau === 0) continue;
    const vo = k * n;
    for (let i = k + 1; i < n; i++) {
      const row = i * n;
      let s = 0;
      for (let j = k + 1; j < n; j++) s += m[row + j]! * vs[vo + j]!;
      if (s === 0) continue;
      s *= tau;
      for (let j = k + 1; j < n; j++) m[row + j] = m[row + j]! - s * vs[vo + j]!;
    }
  }
  return m;
}

/**
 * Implicit QL with Wilkinson shifts on the tridiagonal (d, e); d becomes the eigenvalues (unsorted) and each
 * rotation in plane (i, i+1) is applied to rows i and i+1 of `vt` (the eigenvector matrix, transposed). The
 * rotations of one sweep depend only on d and e, so they are recorded first and applied afterwards in one chain.
 */
function tql(d: Float64Array, e: Float64Array, vt: Float64Array, n: number): void {
  const cs = new Float64Array(n);
  const ss = new Float64Array(n);
  const carry = new Float64Array(n);
  let f = 0;
  let tst1 = 0;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]!) + Math.abs(e[l]!));
    let m = l;
    while (m < n - 1 && Math.abs(e[m]!) > EPS * tst1) m++;
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > MAX_ITER) {
          throw new BasinError('invalid_argument', `eigh: QL iteration did not converge for eigenvalue ${l} of ${n}`, {
            index: l,
            found: iter,
          });
        }
        // Wilkinson shift from the leading 2×2 block.
        let g = d[l]!;
        let p = (d[l + 1]! - g) / (2 * e[l]!);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l]! / (p + r);
        d[l + 1] = e[l]! * (p + r);
        const dl1 = d[l + 1]!;
        let h = g - d[l]!;
        for (let i = l + 2; i < n; i++) d[i] = d[i]! - h;
        f += h;

        p = d[m]!;
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1]!;
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i]!;
          h = c * p;
          r = Math.hypot(p, e[i]!);
          e[i + 1] = s * r;
          s = e[i]! / r;
          c = p / r;
          p = c * d[i]! - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]!);
          cs[i] = c;
          ss[i] = s;
        }
        rotateChain(vt, n, l, m, cs, ss, carry);
        p = (-s * s2 * c3 * el1 * e[l]!) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]!) > EPS * tst1);
    }
    d[l] = d[l]! + f;
    e[l] = 0;
  }
}

/**
 * Apply the rotations i = m-1 … l (rotation i mixes rows i and i+1 of vt: row_{i+1} := s·row_i + c·row_{i+1},
 * row_i := c·row_i − s·row_{i+1}) in order. The row being carried down the chain stays in `carry`, and four
 * rotations share one pass over the columns, which halves the loads and stores of applying them one by one.
 */
function rotateChain(vt: Float64Array, n: number, l: number, m: number, cs: Float64Array, ss: Float64Array, carry: Float64Array): void {
  carry.set(vt.subarray(m * n, m * n + n));
  let i = m - 1;
  for (; i - 3 >= l; i -= 4) {
    const c0 = cs[i]!, s0 = ss[i]!, c1 = cs[i - 1]!, s1 = ss[i - 1]!;
    const c2 = cs[i - 2]!, s2 = ss[i - 2]!, c3 = cs[i - 3]!, s3 = ss[i - 3]!;
    const r0 = i * n, r1 = r0 - n, r2 = r1 - n, r3 = r2 - n, up = r0 + n;
    for (let t = 0; t < n; t++) {
      let y = carry[t]!;
      let x = vt[r0 + t]!;
      vt[up + t] = s0 * x + c0 * y;
      y = c0 * x - s0 * y;
      x = vt[r1 + t]!;
      vt[r0 + t] = s1 * x + c1 * y;
      y = c1 * x - s1 * y;
      x = vt[r2 + t]!;
      vt[r1 + t] = s2 * x + c2 * y;
      y = c2 * x - s2 * y;
      x = vt[r3 + t]!;
      vt[r2 + t] = s3 * x + c3 * y;
      carry[t] = c3 * x - s3 * y;
    }
  }
  for (; i >= l; i--) {
    const c = cs[i]!, s = ss[i]!;
    const r0 = i * n;
    for (let t = 0; t < n; t++) {
      const x = vt[r0 + t]!;
      const y = carry[t]!;
      vt[r0 + n + t] = s * x + c * y;
      carry[t] = c * x - s * y;
    }
  }
  vt.set(carry, l * n);
}
