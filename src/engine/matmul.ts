/**
 * The matrix engine: row-major products op(A)·op(B) through onnxruntime, with a TypeScript kernel below the size
 * where a session.run's fixed cost dominates.
 *
 * Graphs: one `Gemm` node per (dtype, transA, transB) class, with dynamic dims, built on first use and cached
 * (see ort.ts). Gemm's transA/transB attributes let MLAS read the transposed operand while packing, so no
 * transpose is ever materialized in JS or in the graph. MatMul with Transpose nodes in the graph was measured
 * too: onnxruntime fuses Transpose+MatMul into one FusedMatMul, and the two were within run-to-run noise of each
 * other at n = 512 and 1024 for all four classes (80–156 GFLOP/s best-of, float32, 2 cores), so the single-node
 * Gemm graph was kept as the simpler one.
 *
 * float64 operands run through the same machinery (MLAS has a DGEMM kernel: 35–85 GFLOP/s measured at
 * n = 256–1024), which the randomized decompositions in linalg use.
 */
import { BasinError, shapeStr } from '../errors.js';
import type ort from 'onnxruntime-node';
import { cachedSession, runtime, runtimeError, type EngineDType, type GraphSpec } from './ort.js';
import { writesPreallocatedOutputs } from './runtime.js';
import { giveScratch, takeScratch } from './scratch.js';

export { disposeEngine, setEngineThreads, engineThreads } from './ort.js';

export type MatShape = readonly [number, number];
export type FloatMatrix = Float32Array | Float64Array;

export interface MatmulOptions {
  /** Use Aᵀ: `a` is stored as aShape = [k, m]. */
  transA?: boolean;
  /** Use Bᵀ: `b` is stored as bShape = [n, k]. */
  transB?: boolean;
  /**
   * 'auto' (default): the TypeScript kernel below MATMUL_CROSSOVER_FLOPS, onnxruntime above.
   * 'engine' / 'ts' force one path (benchmarks and tests).
   */
  backend?: 'auto' | 'engine' | 'ts';
}

/**
 * Products of at most this many flops (2·m·k·n) run in TypeScript.
 *
 * Measured with bench/matmul.ts (best-of timing, this 2-core machine, float32, Node 20, onnxruntime-node 1.30):
 * a cached session.run costs ~10 µs even for 4×4, while the TypeScript kernel runs at ~1 GFLOP/s at n = 8 and
 * 3–4 GFLOP/s from n = 32 up. Largest product the TS kernel won: 24×24·24×24 (27,648 flops: 8.2 µs vs 10.6 µs);
 * smallest the engine won: 1×128·128×128 and 128×128·128×1 (32,768 flops: 34 / 23 µs vs 15 / 11 µs), and
 * 28×28·28×28 (43,904 flops: 12.3 µs vs 10.9 µs). The crossover sits between, and near it both paths take
 * about the same time, so the choice is not sensitive.
 */
export const MATMUL_CROSSOVER_FLOPS = 30_000;

interface Dims {
  m: number;
  k: number;
  n: number;
  transA: boolean;
  transB: boolean;
}

function checkShape(name: string, data: FloatMatrix, shape: MatShape): void {
  if (!Array.isArray(shape) || shape.length !== 2) {
    throw new BasinError('invalid_argument', `'${name}' shape must be [rows, cols], got ${JSON.stringify(shape)}`, {
      expected: '[rows, cols]',
      found: shape,
    });
  }
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new BasinError('invalid_argument', `'${name}' shape ${shapeStr(shape)} has a dim that is not a non-negative integer`, {
        shape,
      });
    }
  }
  if (!(data instanceof Float32Array || data instanceof Float64Array)) {
    throw new BasinError('invalid_argument', `'${name}' must be a Float32Array or Float64Array`, {
      expected: 'Float32Array | Float64Array',
      found: Object.prototype.toString.call(data),
    });
  }
  if (data.length !== shape[0] * shape[1]) {
    throw new BasinError(
      'invalid_argument',
      `'${name}' has ${data.length} elements but its shape ${shapeStr(shape)} needs ${shape[0] * shape[1]}`,
      { shape, expected: shape[0] * shape[1], found: data.length },
    );
  }
}

function checkOperands(a: FloatMatrix, aShape: MatShape, b: FloatMatrix, bShape: MatShape, opts: MatmulOptions): Dims {
  checkShape('a', a, aShape);
  checkShape('b', b, bShape);
  if (a.constructor !== b.constructor) {
    throw new BasinError(
      'invalid_argument',
      `'a' is a ${a.constructor.name} but 'b' is a ${b.constructor.name}; convert one so both have the same dtype`,
      { expected: a.constructor.name, found: b.constructor.name },
    );
  }
  const transA = opts.transA === true;
  const transB = opts.transB === true;
  const [m, ka] = transA ? [aShape[1], aShape[0]] : [aShape[0], aShape[1]];
  const [kb, n] = transB ? [bShape[1], bShape[0]] : [bShape[0], bShape[1]];
  if (ka !== kb) {
    const opA = transA ? `Aᵀ with A ${shapeStr(aShape)}` : `A ${shapeStr(aShape)}`;
    const opB = transB ? `Bᵀ with B ${shapeStr(bShape)}` : `B ${shapeStr(bShape)}`;
    throw new BasinError(
      'shape_mismatch',
      `cannot multiply ${opA} by ${opB}: inner dims ${ka} and ${kb} differ`,
      { expected: ka, found: kb, aShape: [...aShape], bShape: [...bShape], transA, transB },
    );
  }
  return { m, k: ka, n, transA, transB };
}

/**
 * The TypeScript kernel: out += op(A)·op(B), accumulated in float64 (`out`); callers round once into float32.
 *
 * i-k-j loop, blocked over k so a block of B rows stays in cache, with a 2-row × 4-k register block: each pass
 * over a block of B rows updates two C rows (~3–4 GFLOP/s on V8, against ~1 for the plain i-k-j loop). B is read
 * in place; with transB it is first packed into a float64 k×n buffer, except when A has a single row, where the
 * product is n dot products of contiguous rows instead (packing would cost as much as the product); a single
 * column of B makes it m dot products. With transA,
 * op(A) is packed (m·k copies against 2·m·k·n flops).
 */
function kernel(a: FloatMatrix, b: FloatMatrix, d: Dims, out: Float64Array): void {
  const { m, k, n, transA, transB } = d;
  let ap: FloatMatrix = a;
  if (transA) {
    const t = new Float64Array(m * k);
    for (let p = 0; p < k; p++) for (let i = 0; i < m; i++) t[i * k + p] = a[p * m + i]!;
    ap = t;
  }
  if (n === 1) {
    // Matrix-vector: b is a k-vector whether or not it is transposed.
    for (let i = 0; i < m; i++) {
      const ai = i * k;
      let s = 0;
      for (let p = 0; p < k; p++) s += ap[ai + p]! * b[p]!;
      out[i] = out[i]! + s;
    }
    return;
  }
  if (transB && m === 1) {
    for (let j = 0; j < n; j++) {
      const bj = j * k;
      let s = 0;
      for (let p = 0; p < k; p++) s += ap[p]! * b[bj + p]!;
      out[j] = out[j]! + s;
    }
    return;
  }
  let bp: FloatMatrix = b;
  if (transB) {
    const t = new Float64Array(k * n);
    for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) t[p * n + j] = b[j * k + p]!;
    bp = t;
  }
  // ~128 KiB of B rows per block.
  const kc = Math.max(4, Math.floor(16384 / Math.max(n, 1))) & ~3;
  for (let p0 = 0; p0 < k; p0 += kc) {
    const p1 = Math.min(k, p0 + kc);
    let i = 0;
    // one call per pair of rows: a small function V8 optimizes after a few calls (the same loops nested here ran
    // interpreted until on-stack replacement: the first products of a process took 30 ms instead of 1.5)
    for (; i + 1 < m; i += 2) rowPair(ap, i * k, i * k + k, bp, out, i * n, p0, p1, n);
    for (; i < m; i++) {
      const ci = i * n;
      const ai = i * k;
      for (let p = p0; p < p1; p++) {
        const a0 = ap[ai + p]!;
        const b0 = p * n;
        for (let j = 0; j < n; j++) out[ci + j] = out[ci + j]! + a0 * bp[b0 + j]!;
      }
    }
  }
}

/** Rows ci/n and ci/n + 1 of out += A·B over the k-block [p0, p1): A's two rows start at ai and aj, B is k×n. */
function rowPair(ap: FloatMatrix, ai: number, aj: number, bp: FloatMatrix, out: Float64Array, ci: number, p0: number, p1: number, n: number): void {
  const cj = ci + n;
  let p = p0;
  for (; p + 3 < p1; p += 4) {
    const a0 = ap[ai + p]!, a1 = ap[ai + p + 1]!, a2 = ap[ai + p + 2]!, a3 = ap[ai + p + 3]!;
    const c0 = ap[aj + p]!, c1 = ap[aj + p + 1]!, c2 = ap[aj + p + 2]!, c3 = ap[aj + p + 3]!;
    const b0 = p * n, b1 = b0 + n, b2 = b1 + n, b3 = b2 + n;
    for (let j = 0; j < n; j++) {
      const x0 = bp[b0 + j]!, x1 = bp[b1 + j]!, x2 = bp[b2 + j]!, x3 = bp[b3 + j]!;
      out[ci + j] = out[ci + j]! + (a0 * x0 + a1 * x1 + a2 * x2 + a3 * x3);
      out[cj + j] = out[cj + j]! + (c0 * x0 + c1 * x1 + c2 * x2 + c3 * x3);
    }
  }
  for (; p < p1; p++) {
    const a0 = ap[ai + p]!, c0 = ap[aj + p]!;
    const b0 = p * n;
    for (let j = 0; j < n; j++) {
      const x = bp[b0 + j]!;
      out[ci + j] = out[ci + j]! + a0 * x;
      out[cj + j] = out[cj + j]! + c0 * x;
    }
  }
}

/** op(A)·op(B) with the TypeScript kernel only (synchronous; for small products and as the benchmark baseline). */
export function matmulTs(a: Float32Array, aShape: MatShape, b: Float32Array, bShape: MatShape, opts?: MatmulOptions): Float32Array;
export function matmulTs(a: Float64Array, aShape: MatShape, b: Float64Array, bShape: MatShape, opts?: MatmulOptions): Float64Array;
export function matmulTs(a: FloatMatrix, aShape: MatShape, b: FloatMatrix, bShape: MatShape, opts: MatmulOptions = {}): FloatMatrix {
  const d = checkOperands(a, aShape, b, bShape, opts);
  const acc = new Float64Array(d.m * d.n);
  kernel(a, b, d, acc);
  return a instanceof Float32Array ? Float32Array.from(acc) : acc;
}

function gemmGraph(dtype: EngineDType, transA: boolean, transB: boolean): GraphSpec {
  return {
    name: `basin_gemm_${dtype}_${transA ? 't' : 'n'}${transB ? 't' : 'n'}`,
    inputs: [
      { name: 'A', dtype, dims: transA ? ['k', 'm'] : ['m', 'k'] },
      { name: 'B', dtype, dims: transB ? ['n', 'k'] : ['k', 'n'] },
    ],
    outputs: [{ name: 'Y', dtype, dims: ['m', 'n'] }],
    nodes: [{ opType: 'Gemm', inputs: ['A', 'B'], outputs: ['Y'], intAttrs: { transA: transA ? 1 : 0, transB: transB ? 1 : 0 } }],
  };
}

async function engineProduct(a: FloatMatrix, aShape: MatShape, b: FloatMatrix, bShape: MatShape, d: Dims, into?: FloatMatrix): Promise<FloatMatrix> {
  const dtype: EngineDType = a instanceof Float32Array ? 'float32' : 'float64';
  const key = `gemm:${dtype}:${d.transA ? 't' : 'n'}${d.transB ? 't' : 'n'}`;
  const session = await cachedSession(key, () => gemmGraph(dtype, d.transA, d.transB));
  let y: ort.Tensor | undefined;
  // The output is allocated here and passed as a pre-allocated fetch: onnxruntime-node's own output path costs
  // ~8 ms per MiB of result on this machine (measured: a 512³ Gemm took 10.6 ms with it, 1.8 ms with a fresh
  // Float32Array passed in), which dwarfed the product itself for weight matching's n×n costs.
  const result = !writesPreallocatedOutputs() ? undefined : (into ?? (dtype === 'float32' ? new Float32Array(d.m * d.n) : new Float64Array(d.m * d.n)));
  try {
    const Tensor = runtime().Tensor;
    const feeds = { A: new Tensor(dtype, a, [aShape[0], aShape[1]]), B: new Tensor(dtype, b, [bShape[0], bShape[1]]) };
    const out = result ? await session.run(feeds, { Y: new Tensor(dtype, result, [d.m, d.n]) }) : await session.run(feeds);
    y = out['Y'];
  } catch (e) {
    throw runtimeError(`Gemm ${d.m}×${d.k}·${d.k}×${d.n}`, e);
  }
  const data = y?.data;
  if (!(data instanceof (a instanceof Float32Array ? Float32Array : Float64Array)) || data.length !== d.m * d.n) {
    throw new BasinError('onnx_runtime', `onnxruntime returned an unexpected output for Gemm ${d.m}×${d.k}·${d.k}×${d.n}`, {
      expected: [d.m, d.n],
      found: y?.dims,
    });
  }
  return result ?? (data as FloatMatrix);
}

/**
 * Row-major product op(A)·op(B), where op(X) is X or Xᵀ per `transA` / `transB`.
 *
 * `aShape` and `bShape` are the stored shapes: with transA, `a` holds a [k, m] matrix and op(A) is m×k. Products of
 * at most MATMUL_CROSSOVER_FLOPS run in TypeScript (float64 accumulation); larger ones run through a cached
 * onnxruntime Gemm session (MLAS, float32 or float64 accumulation per the operands' dtype). Both operands must
 * have the same dtype; the result has it too.
 *
 * Errors: 'shape_mismatch' when the inner dims differ (the message names both stored shapes);
 * 'invalid_argument' for a shape that does not match its data; 'onnx_runtime' when the session fails.
 */
export function matmul(a: Float32Array, aShape: MatShape, b: Float32Array, bShape: MatShape, opts?: MatmulOptions): Promise<Float32Array>;
export function matmul(a: Float64Array, aShape: MatShape, b: Float64Array, bShape: MatShape, opts?: MatmulOptions): Promise<Float64Array>;
export function matmul(a: FloatMatrix, aShape: MatShape, b: FloatMatrix, bShape: MatShape, opts: MatmulOptions = {}): Promise<FloatMatrix> {
  return product(a, aShape, b, bShape, opts);
}

/** matmul without the dtype overloads: the result has the operands' dtype. */
async function product(a: FloatMatrix, aShape: MatShape, b: FloatMatrix, bShape: MatShape, opts: MatmulOptions, into?: FloatMatrix): Promise<FloatMatrix> {
  const d = checkOperands(a, aShape, b, bShape, opts);
  const backend = opts.backend ?? 'auto';
  if (backend !== 'auto' && backend !== 'engine' && backend !== 'ts') {
    throw new BasinError('invalid_argument', `'backend' must be 'auto', 'engine' or 'ts', got ${JSON.stringify(backend)}`, {
      expected: ['auto', 'engine', 'ts'],
      found: backend,
    });
  }
  const flops = 2 * d.m * d.k * d.n;
  // An empty result or an empty contraction needs no session (and onnxruntime's zero-size handling is not ours).
  const empty = d.m === 0 || d.n === 0 || d.k === 0;
  if (backend === 'ts' || empty || (backend === 'auto' && flops <= MATMUL_CROSSOVER_FLOPS)) {
    const acc = new Float64Array(d.m * d.n);
    kernel(a, b, d, acc);
    return a instanceof Float32Array ? Float32Array.from(acc) : acc;
  }
  return engineProduct(a, aShape, b, bShape, d, into);
}

/**
 * out += alpha · op(A)·op(B), with `out` a float64 m×n buffer. Returns `out`. Use it to sum products of
 * different shapes into one float64 matrix; when the terms share their row counts, `gramSum` is faster.
 */
export async function matmulAccumulate(
  out: Float64Array,
  a: FloatMatrix,
  aShape: MatShape,
  b: FloatMatrix,
  bShape: MatShape,
  opts: MatmulOptions & { alpha?: number } = {},
): Promise<Float64Array> {
  const d = checkOperands(a, aShape, b, bShape, opts);
  checkOut(out, d.m, d.n);
  const alpha = opts.alpha ?? 1;
  const p = await product(a, aShape, b, bShape, opts);
  for (let i = 0; i < p.length; i++) out[i] = out[i]! + alpha * p[i]!;
  return out;
}

function checkOut(out: Float64Array, m: number, n: number): void {
  if (!(out instanceof Float64Array) || out.length !== m * n) {
    throw new BasinError(
      'shape_mismatch',
      `'out' must be a Float64Array of ${m}×${n} = ${m * n} elements, got ${out instanceof Float64Array ? out.length : 'another type'}`,
      { expected: [m, n], found: out instanceof Float64Array ? out.length : Object.prototype.toString.call(out) },
    );
  }
}

/**
 * One term A_i·B_iᵀ of a Gram sum: `a` is rowsA×cols and `b` is rowsB×cols, both row-major; with `transposed`,
 * `a` is stored cols×rowsA and `b` cols×rowsB (the term is aᵀ·b: a weight matrix's columns as units, read in place).
 */
export interface GramTerm {
  a: Float32Array;
  b: Float32Array;
  cols: number;
  transposed?: boolean;
  /** Names the term in error messages (e.g. the tensor name). */
  label?: string;
}

export interface GramSumOptions {
  /** Accumulate into this float64 rowsA×rowsB buffer instead of a fresh zeroed one. */
  out?: Float64Array;
  /**
   * Cap, in elements per operand, on the concatenation buffers (default 2^24 = 64 MiB of float32 per side). Terms
   * are packed into chunks under the cap; a term larger than the cap runs on its own without a copy.
   */
  maxChunkElements?: number;
}

/**
 * Terms at least this wide run as their own product. Measured (rows = 512, transB): one Gemm over the
 * concatenation of 8 terms of 256 columns took as long as the 8 separate Gemms (16.5 vs 16.7 ms), so copying
 * wide terms buys nothing; for 64 terms of 8 columns the concatenated product took 3.3 ms against 14.7 ms.
 */
const GRAM_DIRECT_COLS = 128;

/**
 * Gram products with at most this many contraction columns run in the TypeScript kernel, accumulating into the
 * sum directly; all others go through `product` (which itself keeps products under MATMUL_CROSSOVER_FLOPS in
 * TypeScript). 0: none. It was 16 while every engine product took a fresh n×n output buffer (4–5 ms of page faults
 * per 512² product on this VM, against ~1 ms in the kernel); with outputs in reused scratch buffers, a rank-d
 * product costs the engine ~0.1–0.3 ms plus the float64 add. Measured on the trained 784-512x3 align (10 runs
 * each, medians): cost phase 191 ms with 16, 143 ms with 2, 131 ms with 0.
 */
const GRAM_TS_MAX_K = 0;

/**
 * Σ_i A_i·B_iᵀ into one float64 rowsA×rowsB matrix (the weight-matching cost matrix).
 *
 * Narrow terms (biases, norms, small heads) are concatenated along the contraction axis,
 * Σ_i A_i B_iᵀ = [A_1 … A_k]·[B_1 … B_k]ᵀ, so they cost one Gemm (or a few, when the concatenation would exceed
 * `maxChunkElements`) instead of one session.run each. Terms of GRAM_DIRECT_COLS columns or more run on their own,
 * where MLAS is already at full speed and a copy would only add time. Every product, float32 from the engine, is
 * added into the float64 result.
 *
 * Errors: 'shape_mismatch' when a term's arrays do not hold rowsA×cols and rowsB×cols elements (naming the term).
 */
export async function gramSum(rowsA: number, rowsB: number, terms: readonly GramTerm[], opts: GramSumOptions = {}): Promise<Float64Array> {
  for (const [name, v] of [['rowsA', rowsA], ['rowsB', rowsB]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new BasinError('invalid_argument', `'${name}' must be a non-negative integer, got ${v}`, { found: v });
    }
  }
  const out = opts.out ?? new Float64Array(rowsA * rowsB);
  checkOut(out, rowsA, rowsB);
  const cap = opts.maxChunkElements ?? 1 << 24;
  if (!(Number.isSafeInteger(cap) && cap >= 1)) {
    throw new BasinError('invalid_argument', `'maxChunkElements' must be a positive integer, got ${cap}`, { found: cap });
  }
  terms.forEach((t, idx) => {
    const label = t.label ?? `term ${idx}`;
    if (!Number.isSafeInteger(t.cols) || t.cols < 0) {
      throw new BasinError('invalid_argument', `'${label}': cols must be a non-negative integer, got ${t.cols}`, { tensor: label, found: t.cols });
    }
    if (!(t.a instanceof Float32Array) || !(t.b instanceof Float32Array)) {
      throw new BasinError('invalid_argument', `'${label}': a and b must be Float32Arrays`, { tensor: label });
    }
    if (t.a.length !== rowsA * t.cols || t.b.length !== rowsB * t.cols) {
      throw new BasinError(
        'shape_mismatch',
        `'${label}': expected a ${shapeStr([rowsA, t.cols])} and b ${shapeStr([rowsB, t.cols])}, got ${t.a.length} and ${t.b.length} elements`,
        { tensor: label, expected: [rowsA * t.cols, rowsB * t.cols], found: [t.a.length, t.b.length] },
      );
    }
  });
  const perCol = Math.max(rowsA, rowsB, 1);
  // Each product lands in a scratch buffer from a small pool (taken and given back around one product, so
  // concurrent sums never share one), and is added into `out` at once: no n² allocation (zeroing, page faults,
  // garbage) per product.
  /** out += a·bᵀ (a rowsA×k, b rowsB×k), or aᵀ·b when `transposed` (a k×rowsA, b k×rowsB). */
  const addProduct = async (a: Float32Array, b: Float32Array, k: number, transposed: boolean): Promise<void> => {
    if (k <= GRAM_TS_MAX_K) {
      // a thin product (a rank-d correction): the TypeScript kernel adds it straight into `out`, in float64
      kernel(a, b, { m: rowsA, k, n: rowsB, transA: transposed, transB: !transposed }, out);
      return;
    }
    const scratch = takeScratch(rowsA * rowsB);
    try {
      const p = transposed
        ? await product(a, [k, rowsA], b, [k, rowsB], { transA: true }, scratch)
        : await product(a, [rowsA, k], b, [rowsB, k], { transB: true }, scratch);
      addInto(out, p as Float32Array);
    } finally {
      giveScratch(scratch);
    }
  };
  // Small terms are packed side by side into chunks (row-major terms as columns, transposed ones as rows: one
  // chunk per layout); wide ones run on their own, straight from the caller's arrays.
  const chunks = { rows: { terms: [] as GramTerm[], cols: 0 }, transposed: { terms: [] as GramTerm[], cols: 0 } };
  const flush = async (t: boolean): Promise<void> => {
    const ch = t ? chunks.transposed : chunks.rows;
    const width = ch.cols;
    if (width > 0) {
      const a = takeScratch(rowsA * width);
      const b = takeScratch(rowsB * width);
      let off = 0;
      for (const x of ch.terms) {
        if (t) {
          a.set(x.a, off * rowsA);
          b.set(x.b, off * rowsB);
        } else {
          copyColumns(x.a, rowsA, x.cols, a, width, off);
          copyColumns(x.b, rowsB, x.cols, b, width, off);
        }
        off += x.cols;
      }
      await addProduct(a, b, width, t);
      giveScratch(a);
      giveScratch(b);
    }
    ch.terms = [];
    ch.cols = 0;
  };
  for (const t of terms) {
    if (t.cols === 0) continue;
    const tr = t.transposed === true;
    if (t.cols >= GRAM_DIRECT_COLS || t.cols * perCol > cap) {
      await addProduct(t.a, t.b, t.cols, tr);
      continue;
    }
    const ch = tr ? chunks.transposed : chunks.rows;
    if ((ch.cols + t.cols) * perCol > cap) await flush(tr);
    ch.terms.push(t);
    ch.cols += t.cols;
  }
  await flush(false);
  await flush(true);
  return out;
}

/** out += p, elementwise (float32 into float64), in chunks of ADD_CHUNK: each a call of a small function. */
function addInto(out: Float64Array, p: Float32Array): void {
  // One loop over an n² product ran interpreted until on-stack replacement on its first call (the first 512²
  // product of a process); chunk calls are optimized after a few.
  const n = p.length;
  for (let from = 0; from < n; from += ADD_CHUNK) addChunk(out, p, from, from + ADD_CHUNK < n ? from + ADD_CHUNK : n);
}

const ADD_CHUNK = 4096;

function addChunk(out: Float64Array, p: Float32Array, from: number, to: number): void {
  let i = from;
  for (; i + 3 < to; i += 4) {
    out[i] = out[i]! + p[i]!;
    out[i + 1] = out[i + 1]! + p[i + 1]!;
    out[i + 2] = out[i + 2]! + p[i + 2]!;
    out[i + 3] = out[i + 3]! + p[i + 3]!;
  }
  for (; i < to; i++) out[i] = out[i]! + p[i]!;
}

/** Copy a rows×cols matrix into columns [off, off + cols) of a rows×width one. */
function copyColumns(src: Float32Array, rows: number, cols: number, dst: Float32Array, width: number, off: number): void {
  if (cols >= 64) {
    for (let r = 0; r < rows; r++) dst.set(src.subarray(r * cols, (r + 1) * cols), r * width + off);
    return;
  }
  for (let r = 0; r < rows; r++) {
    const s = r * cols;
    const d = r * width + off;
    for (let c = 0; c < cols; c++) dst[d + c] = src[s + c]!;
  }
}
