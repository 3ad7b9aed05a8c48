/**
 * Small dense linear algebra in TypeScript on float64 row-major matrices: shared argument checks, Householder
 * reflectors and a few helpers. The decompositions live one per file (eigh.ts, svd.ts, qr.ts, cholesky.ts,
 * randomized.ts) and import from here; src/index.ts re-exports them.
 *
 * Conventions: a matrix is a Float64Array holding rows×cols values row-major; results are fresh arrays (inputs are
 * never modified); eigen- and singular values come sorted descending.
 */
import { BasinError, shapeStr } from '../errors.js';

export const EPS = 2 ** -52;

/** Check a dimension argument: a non-negative safe integer. */
export function checkDim(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new BasinError('invalid_argument', `'${name}' must be a non-negative integer, got ${v}`, {
      expected: 'integer >= 0',
      found: v,
    });
  }
}

/**
 * Check that `a` is a Float64Array of rows×cols finite values. 'invalid_argument' for a wrong type or length,
 * 'non_finite' naming the first NaN/Inf entry.
 */
export function checkMatrix(name: string, a: Float64Array, rows: number, cols: number): void {
  checkDim(`${name} rows`, rows);
  checkDim(`${name} cols`, cols);
  if (!(a instanceof Float64Array)) {
    throw new BasinError('invalid_argument', `'${name}' must be a Float64Array (row-major ${rows}×${cols})`, {
      expected: 'Float64Array',
      found: Object.prototype.toString.call(a),
    });
  }
  if (a.length !== rows * cols) {
    throw new BasinError(
      'invalid_argument',
      `'${name}' has ${a.length} elements but ${shapeStr([rows, cols])} needs ${rows * cols}`,
      { shape: [rows, cols], expected: rows * cols, found: a.length },
    );
  }
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i]!)) {
      const r = Math.floor(i / cols);
      const c = i - r * cols;
      throw new BasinError('non_finite', `'${name}' has a non-finite value ${a[i]} at [${r}, ${c}]`, {
        shape: [rows, cols],
        index: [r, c],
        found: a[i],
      });
    }
  }
}

/** Row-major transpose of a rows×cols matrix. */
export function transpose64(a: Float64Array, rows: number, cols: number): Float64Array {
  const t = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    const ri = i * cols;
    for (let j = 0; j < cols; j++) t[j * rows + i] = a[ri + j]!;
  }
  return t;
}

/** Largest absolute value (0 for an empty array). */
export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const v = Math.abs(a[i]!);
    if (v > m) m = v;
  }
  return m;
}

/**
 * Householder reflector for x = buf[off .. off+len): finds v (v[0] = 1) and tau with (I - tau·v·vᵀ)·x = beta·e1,
 * beta = ‖x‖ ≥ 0 (Golub & Van Loan, Alg. 5.1.1, with the cancellation-free choice of v[0]).
 * Writes v into buf[off .. off+len) in place of x and returns { tau, beta }. tau = 0 means no reflection (x is
 * already a non-negative multiple of e1, and then v is e1).
 */
export function householder(buf: Float64Array, off: number, len: number): { tau: number; beta: number } {
  const x0 = buf[off]!;
  // Scale to avoid overflow/underflow in the sum of squares.
  let scale = 0;
  for (let i = 1; i < len; i++) scale = Math.max(scale, Math.abs(buf[off + i]!));
  if (scale === 0) {
    if (x0 >= 0) {
      buf[off] = 1;
      return { tau: 0, beta: x0 };
    }
    // x = x0·e1 with x0 < 0: reflect to -x0 with v = e1, tau = 2.
    buf[off] = 1;
    return { tau: 2, beta: -x0 };
  }
  scale = Math.max(scale, Math.abs(x0));
  let sigma = 0;
  for (let i = 1; i < len; i++) {
    const t = buf[off + i]! / scale;
    sigma += t * t;
  }
  const xs = x0 / scale;
  const mu = Math.sqrt(xs * xs + sigma);
  const v0 = xs <= 0 ? xs - mu : -sigma / (xs + mu);
  const tau = (2 * v0 * v0) / (sigma + v0 * v0);
  const inv = 1 / (v0 * scale);
  buf[off] = 1;
  for (let i = 1; i < len; i++) buf[off + i] = buf[off + i]! * inv;
  return { tau, beta: mu * scale };
}

/** Deterministic standard normals (mulberry32 + Box–Muller), for the randomized methods. */
export function gaussianMatrix(rows: number, cols: number, seed: number): Float64Array {
  let s = seed >>> 0;
  const uniform = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < out.length; i += 2) {
    const u = Math.max(uniform(), 1e-300);
    const r = Math.sqrt(-2 * Math.log(u));
    const th = 2 * Math.PI * uniform();
    out[i] = r * Math.cos(th);
    if (i + 1 < out.length) out[i + 1] = r * Math.sin(th);
  }
  return out;
}
