/**
 * Streaming cross-correlation of two models' hidden units, the score of activation matching.
 *
 * A unit block is a slice of one activation value: `n` units on one axis (optionally a block of that axis, each
 * unit spread over `inner` consecutive positions, as derived permutations lay them out). Every other axis (batch,
 * spatial, sequence) and the `inner` positions are samples. The accumulator keeps, in float64, per-unit sums and
 * sums of squares of A and B and the n×n cross-moment Σ a_i b_j; the activations themselves are never kept.
 *
 * Numerics: E[ab] − E[a]E[b] cancels badly when a unit's mean is large against its spread (post-ReLU units, a
 * residual stream with a large offset). So every sample is shifted by the per-unit mean of the first batch before
 * it is accumulated (the classic shifted-data algorithm; covariance is shift-invariant), and the cross-moment of
 * each batch — a float32 product through the engine — adds into the float64 total. `addMoments` takes a batch
 * already reduced to moments about shifts of its own (what the moment graph of activation matching computes,
 * moment-graph.ts) and folds it into the same totals exactly.
 */
import { BasinError, shapeStr } from '../errors.js';
import { matmul } from '../engine/matmul.js';
import { axisView } from '../tensor/tensor.js';

/**
 * `n` units read from one axis of a row-major tensor: unit i is positions offset + i*inner .. + inner of the axis.
 * The view [outer, axisSize, rest] is the tensor around that axis.
 */
export interface UnitBlock {
  data: Float32Array;
  outer: number;
  axisSize: number;
  rest: number;
  offset: number;
  n: number;
  inner: number;
}

/** The units of `axis` of a tensor of `shape` (the whole axis, or the block offset .. offset + n*inner). */
export function unitBlock(
  data: Float32Array,
  shape: readonly number[],
  axis: number,
  { offset = 0, n, inner = 1 }: { offset?: number; n?: number; inner?: number } = {},
): UnitBlock {
  if (!(Number.isInteger(axis) && axis >= 0 && axis < shape.length)) {
    throw new BasinError('invalid_argument', `axis ${axis} is out of range for shape ${shapeStr(shape)}`, { axis, shape });
  }
  const { outer, n: axisSize, inner: rest } = axisView(shape, axis);
  const units = n ?? Math.floor((axisSize - offset) / inner);
  if (!(units >= 0 && inner >= 1 && offset >= 0 && offset + units * inner <= axisSize)) {
    throw new BasinError('shape_mismatch', `a block of ${units} units x ${inner} at offset ${offset} does not fit axis ${axis} of shape ${shapeStr(shape)}`, {
      axis,
      shape,
    });
  }
  if (data.length !== outer * axisSize * rest) {
    throw new BasinError('shape_mismatch', `${data.length} values for shape ${shapeStr(shape)}`, { shape, found: data.length });
  }
  return { data, outer, axisSize, rest, offset, n: units, inner };
}

/**
 * The block with every sample standardized across its units: x[i, s] -> (x[i, s] - mean_s) / std_s, mean and std
 * taken over the n units of sample s (what a LayerNorm over the unit axis sees, without its affine part). A compact
 * copy [outer, n, inner*rest].
 */
export function standardizeSamples(b: UnitBlock, eps = 1e-5): UnitBlock {
  const { data, outer, axisSize, rest, offset, n, inner } = b;
  const run = inner * rest;
  const out = new Float32Array(outer * n * run);
  const mean = new Float64Array(run);
  const sq = new Float64Array(run);
  for (let o = 0; o < outer; o++) {
    mean.fill(0);
    sq.fill(0);
    const src = (o * axisSize + offset) * rest;
    for (let i = 0; i < n; i++) {
      const s = src + i * run;
      for (let k = 0; k < run; k++) {
        const v = data[s + k]!;
        mean[k]! += v;
        sq[k]! += v * v;
      }
    }
    for (let k = 0; k < run; k++) {
      const mu = mean[k]! / n;
      mean[k] = mu;
      sq[k] = 1 / Math.sqrt(Math.max(sq[k]! / n - mu * mu, 0) + eps);
    }
    const dst = o * n * run;
    for (let i = 0; i < n; i++) {
      const s = src + i * run;
      const d = dst + i * run;
      for (let k = 0; k < run; k++) out[d + k] = (data[s + k]! - mean[k]!) * sq[k]!;
    }
  }
  return { data: out, outer, axisSize: n, rest: run, offset: 0, n, inner: 1 };
}

/** Samples per unit in one block. */
export function blockSamples(b: UnitBlock): number {
  return b.outer * b.inner * b.rest;
}

/**
 * The block as a matrix, each value minus its unit's shift, with the per-unit sums and sums of squares of the
 * shifted values added into `sum` and `sq` on the way. When a unit is one position of the last axis
 * (inner*rest = 1) the matrix is samples × units ('cols', a strided gather); otherwise units × samples ('rows',
 * contiguous runs of inner*rest values).
 */
function shifted(b: UnitBlock, shift: Float64Array, sum: Float64Array, sq: Float64Array): { data: Float32Array; layout: 'rows' | 'cols'; m: number } {
  const { data, outer, axisSize, rest, offset, n, inner } = b;
  const run = inner * rest;
  const m = outer * run;
  const out = new Float32Array(n * m);
  if (run === 1) {
    for (let o = 0; o < outer; o++) {
      const s = o * axisSize + offset;
      const d = o * n;
      for (let i = 0; i < n; i++) {
        const v = data[s + i]! - shift[i]!;
        out[d + i] = v;
        sum[i]! += v;
        sq[i]! += v * v;
      }
    }
    return { data: out, layout: 'cols', m };
  }
  for (let i = 0; i < n; i++) {
    const c = shift[i]!;
    const rowStart = i * m;
    let s1 = 0;
    let s2 = 0;
    for (let o = 0; o < outer; o++) {
      const s = (o * axisSize + offset) * rest + i * run;
      const d = rowStart + o * run;
      for (let k = 0; k < run; k++) {
        const v = data[s + k]! - c;
        out[d + k] = v;
        s1 += v;
        s2 += v * v;
      }
    }
    sum[i]! += s1;
    sq[i]! += s2;
  }
  return { data: out, layout: 'rows', m };
}

/** Per-unit mean of one block, in float64. */
export function unitMeans(b: UnitBlock): Float64Array {
  const { data, outer, axisSize, rest, offset, n, inner } = b;
  const run = inner * rest;
  const sums = new Float64Array(n);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < n; i++) {
      const s = (o * axisSize + offset) * rest + i * run;
      let acc = 0;
      for (let k = 0; k < run; k++) acc += data[s + k]!;
      sums[i]! += acc;
    }
  }
  const count = outer * run;
  for (let i = 0; i < n; i++) sums[i] = count ? sums[i]! / count : 0;
  return sums;
}

export interface CorrelationOptions {
  /** Added to σa_i·σb_j in the denominator (default 1e-12): a constant unit correlates 0 with everything. */
  eps?: number;
}

/** One batch of two n-unit activations as moments about per-unit shifts (see CorrelationAccumulator.addMoments). */
export interface BatchMoments {
  /** Samples per unit in the batch. */
  count: number;
  meanA: ArrayLike<number>;
  sumA: ArrayLike<number>;
  sqA: ArrayLike<number>;
  meanB: ArrayLike<number>;
  sumB: ArrayLike<number>;
  sqB: ArrayLike<number>;
  /** n×n, row-major, rows: A's units. */
  cross: ArrayLike<number>;
}

/** Running moments of two n-unit activations over the same samples. */
export class CorrelationAccumulator {
  readonly n: number;
  /** Samples accumulated so far (per unit). */
  count = 0;
  private readonly sumA: Float64Array;
  private readonly sumB: Float64Array;
  private readonly sqA: Float64Array;
  private readonly sqB: Float64Array;
  private readonly cross: Float64Array;
  private shiftA: Float64Array | undefined;
  private shiftB: Float64Array | undefined;

  constructor(n: number) {
    if (!(Number.isSafeInteger(n) && n >= 0)) throw new BasinError('invalid_argument', `unit count must be a non-negative integer, got ${n}`, { found: n });
    this.n = n;
    this.sumA = new Float64Array(n);
    this.sumB = new Float64Array(n);
    this.sqA = new Float64Array(n);
    this.sqB = new Float64Array(n);
    this.cross = new Float64Array(n * n);
  }

  /** Add one batch: the same samples seen through A's block and B's block (same layout, same sample count). */
  async add(a: UnitBlock, b: UnitBlock): Promise<void> {
    const n = this.n;
    if (a.n !== n || b.n !== n) {
      throw new BasinError('shape_mismatch', `blocks of ${a.n} and ${b.n} units for a correlation of ${n} units`, { expected: n, found: [a.n, b.n] });
    }
    const samples = blockSamples(a);
    if (blockSamples(b) !== samples || a.outer !== b.outer || a.inner * a.rest !== b.inner * b.rest) {
      throw new BasinError('shape_mismatch', `A's block has ${samples} samples per unit but B's has ${blockSamples(b)}: the two activations must have the same shape`, {
        expected: samples,
        found: blockSamples(b),
      });
    }
    if (samples === 0 || n === 0) return;
    this.shiftA ??= unitMeans(a);
    this.shiftB ??= unitMeans(b);
    const sa = shifted(a, this.shiftA, this.sumA, this.sqA);
    const sb = shifted(b, this.shiftB, this.sumB, this.sqB);
    const m = sa.m;
    const p =
      sa.layout === 'rows'
        ? await matmul(sa.data, [n, m], sb.data, [n, m], { transB: true })
        : await matmul(sa.data, [m, n], sb.data, [m, n], { transA: true });
    const c = this.cross;
    for (let i = 0; i < p.length; i++) c[i] = c[i]! + p[i]!;
    this.count += samples;
  }

  /**
   * Add one batch given as moments about a shift of the batch's own (the moment graph's outputs, moment-graph.ts):
   * `count` samples per unit; per unit of A, the shift `meanA` and Σ(a − meanA), Σ(a − meanA)²; the same for B;
   * and the n×n cross moment Σ(a − meanA)(b − meanB)ᵀ (rows: A's units). Folded into the totals exactly (float64),
   * whatever the shift, so the batch shift only has to be near the mean for float32 to be accurate.
   */
  addMoments(m: BatchMoments): void {
    const n = this.n;
    const lengths = [m.meanA, m.sumA, m.sqA, m.meanB, m.sumB, m.sqB].map((x) => x.length);
    if (lengths.some((l) => l !== n) || m.cross.length !== n * n) {
      throw new BasinError('shape_mismatch', `batch moments of ${lengths.join('/')} units and a ${m.cross.length}-value cross moment for a correlation of ${n} units`, {
        expected: n,
        found: lengths,
      });
    }
    if (!(Number.isSafeInteger(m.count) && m.count >= 0)) throw new BasinError('invalid_argument', `sample count must be a non-negative integer, got ${m.count}`, { found: m.count });
    if (m.count === 0 || n === 0) return;
    this.shiftA ??= Float64Array.from(m.meanA);
    this.shiftB ??= Float64Array.from(m.meanB);
    const c = m.count;
    const da = new Float64Array(n);
    const db = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const a = m.meanA[i]! - this.shiftA[i]!;
      const b = m.meanB[i]! - this.shiftB[i]!;
      da[i] = a;
      db[i] = b;
      this.sumA[i]! += m.sumA[i]! + c * a;
      this.sumB[i]! += m.sumB[i]! + c * b;
      this.sqA[i]! += m.sqA[i]! + 2 * a * m.sumA[i]! + c * a * a;
      this.sqB[i]! += m.sqB[i]! + 2 * b * m.sumB[i]! + c * b * b;
    }
    const x = this.cross;
    for (let i = 0; i < n; i++) {
      const a = da[i]!;
      const sa = m.sumA[i]!;
      const row = i * n;
      for (let j = 0; j < n; j++) x[row + j] = x[row + j]! + m.cross[row + j]! + a * m.sumB[j]! + sa * db[j]! + c * a * db[j]!;
    }
    this.count += c;
  }

  /** Per-unit means of A and B. */
  means(): { a: Float64Array; b: Float64Array } {
    const f = (sum: Float64Array, shift: Float64Array | undefined) => sum.map((s, i) => (this.count ? s / this.count : 0) + (shift?.[i] ?? 0));
    return { a: f(this.sumA, this.shiftA), b: f(this.sumB, this.shiftB) };
  }

  /**
   * Covariances and standard deviations: cov[i, j] = E[a_i b_j] − μa_i μb_j, row-major n×n (rows: A's units), and
   * σ of every unit of A and of B (population, over the samples accumulated so far).
   */
  moments(): { cov: Float64Array; sdA: Float64Array; sdB: Float64Array } {
    const n = this.n;
    const c = this.count;
    const cov = new Float64Array(n * n);
    if (c === 0) return { cov, sdA: new Float64Array(n), sdB: new Float64Array(n) };
    const mA = this.sumA.map((s) => s / c);
    const mB = this.sumB.map((s) => s / c);
    const sdA = this.sqA.map((s, i) => Math.sqrt(Math.max(s / c - mA[i]! * mA[i]!, 0)));
    const sdB = this.sqB.map((s, i) => Math.sqrt(Math.max(s / c - mB[i]! * mB[i]!, 0)));
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) cov[i * n + j] = this.cross[i * n + j]! / c - mA[i]! * mB[j]!;
    return { cov, sdA, sdB };
  }

  /** corr[i, j] = (E[a_i b_j] − μa_i μb_j) / (σa_i σb_j + eps), row-major n×n (rows: A's units). */
  correlation({ eps = 1e-12 }: CorrelationOptions = {}): Float64Array {
    const n = this.n;
    const { cov, sdA, sdB } = this.moments();
    const out = new Float64Array(n * n);
    if (this.count === 0) return out;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[i * n + j] = cov[i * n + j]! / (sdA[i]! * sdB[j]! + eps);
    return out;
  }
}
