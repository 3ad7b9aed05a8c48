/**
 * Randomized range finding (Halko, Martinsson & Tropp 2011, Alg. 4.4: subspace iteration with re-orthonormalization)
 * and what it is for: the top-k eigenpairs of a symmetric matrix (PCA width changes) and a rank-k SVD (low-rank
 * factorization), when only the leading subspace is needed.
 *
 * The large products go through a LinearOperator; `matrixOperator` runs them on the matrix engine (onnxruntime
 * Gemm, in the matrix's own dtype). The small dense work (QR of the n×l blocks, the l×l eigen/SVD problems) is
 * float64 TypeScript.
 */
import { BasinError } from '../errors.js';
import { matmul, matmulTs, type FloatMatrix } from '../engine/matmul.js';
import { checkDim, gaussianMatrix } from './dense.js';
import { eigh } from './eigh.js';
import { qr } from './qr.js';
import { svd, type SvdResult } from './svd.js';

/** A rows×cols matrix known only through block products. Blocks are row-major float64. */
export interface LinearOperator {
  readonly rows: number;
  readonly cols: number;
  /** A·X for X cols×p; returns rows×p. */
  apply(x: Float64Array, p: number): Promise<Float64Array>;
  /** Aᵀ·X for X rows×p; returns cols×p. Omit it for a symmetric A (then `apply` serves for both). */
  applyT?(x: Float64Array, p: number): Promise<Float64Array>;
}

export interface RandomizedOptions {
  /** Extra columns beyond k in the sketch (default 10). */
  oversample?: number;
  /** Subspace (power) iterations after the first sketch (default 4). More sharpens slowly decaying spectra. */
  powerIters?: number;
  /** Seed of the Gaussian test matrix (default 0): the same seed gives the same result. */
  seed?: number;
}

export interface TopKEigResult {
  /** k eigenvalues of largest magnitude, in descending order of magnitude (descending for a PSD matrix). */
  values: Float64Array;
  /** n×k row-major, orthonormal columns; column j pairs with values[j]. */
  vectors: Float64Array;
}

/**
 * An operator over a dense rows×cols row-major matrix whose products run on the matrix engine. A Float32Array
 * matrix multiplies float32 blocks (its blocks are rounded to float32 and the products come back as float64); a
 * Float64Array one multiplies in float64.
 */
export function matrixOperator(a: FloatMatrix, rows: number, cols: number): LinearOperator {
  checkDim('rows', rows);
  checkDim('cols', cols);
  if (!(a instanceof Float32Array || a instanceof Float64Array) || a.length !== rows * cols) {
    throw new BasinError(
      'invalid_argument',
      `matrix must be a Float32Array or Float64Array of ${rows}×${cols} = ${rows * cols} values, got ${a instanceof Float32Array || a instanceof Float64Array ? a.length : Object.prototype.toString.call(a)}`,
      { shape: [rows, cols], found: (a as { length?: number }).length },
    );
  }
  const product = async (x: Float64Array, p: number, transA: boolean): Promise<Float64Array> => {
    const inner = transA ? rows : cols;
    if (a instanceof Float32Array) {
      const y = await matmul(a, [rows, cols], Float32Array.from(x), [inner, p], { transA });
      return Float64Array.from(y);
    }
    return matmul(a, [rows, cols], x, [inner, p], { transA });
  };
  return {
    rows,
    cols,
    apply: (x, p) => product(x, p, false),
    applyT: (x, p) => product(x, p, true),
  };
}

interface Resolved {
  oversample: number;
  powerIters: number;
  seed: number;
}

function resolve(opts: RandomizedOptions): Resolved {
  const oversample = opts.oversample ?? 10;
  const powerIters = opts.powerIters ?? 4;
  const seed = opts.seed ?? 0;
  checkDim('oversample', oversample);
  checkDim('powerIters', powerIters);
  if (!Number.isSafeInteger(seed)) {
    throw new BasinError('invalid_argument', `'seed' must be an integer, got ${seed}`, { found: seed });
  }
  return { oversample, powerIters, seed };
}

function checkK(k: number, limit: number, what: string): void {
  checkDim('k', k);
  if (k > limit) {
    throw new BasinError('invalid_argument', `'k' is ${k} but ${what} allows at most ${limit}`, { expected: `<= ${limit}`, found: k });
  }
}

async function call(f: (x: Float64Array, p: number) => Promise<Float64Array>, x: Float64Array, p: number, outRows: number, name: string): Promise<Float64Array> {
  const y = await f(x, p);
  if (!(y instanceof Float64Array) || y.length !== outRows * p) {
    throw new BasinError(
      'shape_mismatch',
      `operator ${name} returned ${y instanceof Float64Array ? `${y.length} values` : 'a non-Float64Array'}, expected ${outRows}×${p} = ${outRows * p}`,
      { expected: [outRows, p], found: y instanceof Float64Array ? y.length : Object.prototype.toString.call(y) },
    );
  }
  return y;
}

/** Orthonormal basis (rows×l) of the column space of a rows×l block, by Householder QR. */
function orth(y: Float64Array, rows: number, l: number): Float64Array {
  return qr(y, rows, l).q;
}

/**
 * An orthonormal rows×l basis Q (l = min(k + oversample, rows, cols)) whose span approximately contains the
 * leading k-dimensional column space of the operator: Y = A·Ω for Gaussian Ω, then `powerIters` rounds of
 * Q ← orth(A·orth(Aᵀ·Q)). Returns the basis and l.
 *
 * Errors: 'invalid_argument' for k out of range or bad options; 'shape_mismatch' when the operator returns a
 * block of the wrong size; 'non_finite' when it returns NaN/Inf.
 */
export async function randomizedRange(op: LinearOperator, k: number, opts: RandomizedOptions = {}): Promise<{ q: Float64Array; cols: number }> {
  const { oversample, powerIters, seed } = resolve(opts);
  checkDim('operator rows', op.rows);
  checkDim('operator cols', op.cols);
  checkK(k, Math.min(op.rows, op.cols), `a ${op.rows}×${op.cols} operator`);
  const l = Math.min(k + oversample, op.rows, op.cols);
  if (l === 0) return { q: new Float64Array(0), cols: 0 };
  const applyT = op.applyT ? op.applyT.bind(op) : op.apply.bind(op);
  const apply = op.apply.bind(op);
  let q = orth(await call(apply, gaussianMatrix(op.cols, l, seed), l, op.rows, 'apply'), op.rows, l);
  for (let it = 0; it < powerIters; it++) {
    const z = orth(await call(applyT, q, l, op.cols, op.applyT ? 'applyT' : 'apply'), op.cols, l);
    q = orth(await call(apply, z, l, op.rows, 'apply'), op.rows, l);
  }
  return { q, cols: l };
}

/**
 * The k eigenpairs of largest magnitude of a symmetric n×n matrix (or symmetric operator), by randomized subspace
 * iteration and a Rayleigh–Ritz step: T = Qᵀ·A·Q (l×l) is diagonalized exactly and its leading Ritz pairs are
 * lifted back through Q. Accuracy follows the products: about 1e-6 relative for a float32 matrix on the engine.
 *
 * Errors: 'shape_mismatch' when the operator is not n×n; others as randomizedRange.
 */
export async function topKEig(a: FloatMatrix | LinearOperator, n: number, k: number, opts: RandomizedOptions = {}): Promise<TopKEigResult> {
  checkDim('n', n);
  const op = a instanceof Float32Array || a instanceof Float64Array ? matrixOperator(a, n, n) : a;
  if (op.rows !== n || op.cols !== n) {
    throw new BasinError('shape_mismatch', `topKEig needs an ${n}×${n} operator, got ${op.rows}×${op.cols}`, {
      expected: [n, n],
      found: [op.rows, op.cols],
    });
  }
  // A symmetric matrix: Aᵀ·Q = A·Q, so the range finder may use `apply` for both.
  const sym: LinearOperator = { rows: n, cols: n, apply: op.apply.bind(op) };
  const { q, cols: l } = await randomizedRange(sym, k, opts);
  if (k === 0 || l === 0) return { values: new Float64Array(0), vectors: new Float64Array(0) };
  const aq = await call(sym.apply, q, l, n, 'apply');
  const t = matmulTs(q, [n, l], aq, [n, l], { transA: true });
  for (let i = 0; i < l; i++) {
    for (let j = 0; j < i; j++) {
      const v = 0.5 * (t[i * l + j]! + t[j * l + i]!);
      t[i * l + j] = v;
      t[j * l + i] = v;
    }
  }
  const { values: theta, vectors: s } = eigh(t, l);
  const order = Array.from({ length: l }, (_, i) => i).sort((x, y) => Math.abs(theta[y]!) - Math.abs(theta[x]!) || x - y);
  const values = new Float64Array(k);
  const sk = new Float64Array(l * k);
  for (let j = 0; j < k; j++) {
    const src = order[j]!;
    values[j] = theta[src]!;
    for (let i = 0; i < l; i++) sk[i * k + j] = s[i * l + src]!;
  }
  return { values, vectors: matmulTs(q, [n, l], sk, [l, k]) };
}

/**
 * Rank-k truncated SVD A ≈ U·diag(s)·Vᵀ of a rows×cols matrix or operator: the range finder's basis Q, then the
 * exact SVD of the small l×cols matrix Qᵀ·A (computed as (Aᵀ·Q)ᵀ). u is rows×k, s has k values (descending), vt
 * is k×cols.
 *
 * For a dense matrix pass `matrixOperator(a, rows, cols)`.
 *
 * Errors: as randomizedRange.
 */
export async function randomizedSvd(a: LinearOperator, k: number, opts: RandomizedOptions = {}): Promise<SvdResult> {
  const { rows, cols } = a;
  const { q, cols: l } = await randomizedRange(a, k, opts);
  if (k === 0 || l === 0) return { u: new Float64Array(0), s: new Float64Array(0), vt: new Float64Array(0) };
  const applyT = a.applyT ? a.applyT.bind(a) : a.apply.bind(a);
  const bt = await call(applyT, q, l, cols, a.applyT ? 'applyT' : 'apply'); // cols×l = (Qᵀ·A)ᵀ
  // Bᵀ = U'·S·V'ᵀ  ⇒  A ≈ Q·B = (Q·V')·S·U'ᵀ.
  const small = svd(bt, cols, l);
  const u = matmulTs(q, [rows, l], small.vt, [l, l], { transB: true }); // rows×l = Q·V'
  const uk = new Float64Array(rows * k);
  for (let i = 0; i < rows; i++) uk.set(u.subarray(i * l, i * l + k), i * k);
  const vt = new Float64Array(k * cols); // rows of U'ᵀ
  for (let j = 0; j < k; j++) for (let i = 0; i < cols; i++) vt[j * cols + i] = small.u[i * l + j]!;
  return { u: uk, s: small.s.slice(0, k), vt };
}
