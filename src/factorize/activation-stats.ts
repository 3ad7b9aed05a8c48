/**
 * Streamed second-order statistics of a layer's inputs (and optionally its target outputs), the only thing the
 * factorize core needs from calibration data: the sample count, Σx, XᵀX and, with targets, Σy, XᵀY and Σ‖y‖².
 * Batches are added one at a time; the activations themselves are never kept.
 *
 * Numerics: every batch is shifted by the per-feature mean of the first batch before it is accumulated (the
 * shifted-data algorithm; covariances are shift-invariant), converted to float64, and its cross products run in
 * float64 through the matrix engine (MLAS DGEMM) into float64 totals, so centring later does not cancel
 * catastrophically for post-ReLU inputs whose mean is large against their spread.
 */
import { BasinError, q, shapeStr } from '../errors.js';
import { matmulAccumulate } from '../engine/matmul.js';

export interface ActivationStatsOptions {
  /** Target width m: batches then carry Y [rows, m] (the outputs to fit); omit to fit the layer's own map. */
  outFeatures?: number;
  /** Names the layer in error messages. */
  layer?: string;
}

type Rows = Float32Array | Float64Array;

/** Running sums over calibration rows of X [rows, inFeatures] (and Y [rows, outFeatures]). */
export class ActivationStats {
  readonly inFeatures: number;
  readonly outFeatures: number | undefined;
  readonly layer: string;
  /** Rows seen so far. */
  count = 0;
  /** Shifts (the first batch's means) subtracted before accumulating. */
  shiftX: Float64Array;
  shiftY: Float64Array | undefined;
  /** Σ(x − shiftX), Σ(x − shiftX)(x − shiftX)ᵀ (d×d row-major). */
  readonly sumX: Float64Array;
  readonly xtx: Float64Array;
  /** With targets: Σ(y − shiftY), Σ(x − shiftX)(y − shiftY)ᵀ (d×m), Σ‖y − shiftY‖². */
  readonly sumY: Float64Array | undefined;
  readonly xty: Float64Array | undefined;
  sumSqY = 0;

  /**
   * Errors: 'invalid_argument' when inFeatures (or outFeatures) is not a positive integer, naming the layer.
   */
  constructor(inFeatures: number, opts: ActivationStatsOptions = {}) {
    this.layer = opts.layer ?? 'layer';
    for (const [what, v] of [['inFeatures', inFeatures], ['outFeatures', opts.outFeatures ?? 1]] as const) {
      if (!(Number.isSafeInteger(v) && v >= 1)) {
        throw new BasinError('invalid_argument', `layer ${q(this.layer)}: ${what} must be a positive integer, got ${v}`, { node: this.layer, found: v });
      }
    }
    this.inFeatures = inFeatures;
    this.outFeatures = opts.outFeatures;
    this.shiftX = new Float64Array(inFeatures);
    this.sumX = new Float64Array(inFeatures);
    this.xtx = new Float64Array(inFeatures * inFeatures);
    if (opts.outFeatures !== undefined) {
      this.shiftY = new Float64Array(opts.outFeatures);
      this.sumY = new Float64Array(opts.outFeatures);
      this.xty = new Float64Array(inFeatures * opts.outFeatures);
    }
  }

  /**
   * Add a batch: `x` holds rows×inFeatures values row-major; `y` rows×outFeatures when the stats were created with
   * targets (and must be absent otherwise).
   *
   * Errors: 'shape_mismatch' when a length does not match rows × width; 'invalid_argument' for y given or missing
   * against the constructor; 'non_finite' naming the first NaN/Inf sample and feature. All before any sum changes.
   */
  async add(x: Rows, rows: number, y?: Rows): Promise<void> {
    const d = this.inFeatures;
    const m = this.outFeatures;
    if (!(Number.isSafeInteger(rows) && rows >= 0)) {
      throw new BasinError('invalid_argument', `layer ${q(this.layer)}: rows must be a non-negative integer, got ${rows}`, { node: this.layer, found: rows });
    }
    checkRows(this.layer, 'inputs', x, rows, d);
    if (m === undefined) {
      if (y !== undefined) {
        throw new BasinError('invalid_argument', `layer ${q(this.layer)}: got targets but the statistics were created without outFeatures`, { node: this.layer });
      }
    } else {
      if (y === undefined) {
        throw new BasinError('invalid_argument', `layer ${q(this.layer)}: targets y [${rows}, ${m}] are required (the statistics were created with outFeatures ${m})`, { node: this.layer });
      }
      checkRows(this.layer, 'targets', y, rows, m);
    }
    if (rows === 0) return;
    if (this.count === 0) {
      meanRows(x, rows, d, this.shiftX);
      if (y !== undefined && this.shiftY) meanRows(y, rows, m!, this.shiftY);
    }
    const u = shifted(x, rows, d, this.shiftX, this.sumX);
    await matmulAccumulate(this.xtx, u, [rows, d], u, [rows, d], { transA: true });
    if (y !== undefined && m !== undefined && this.shiftY && this.sumY && this.xty) {
      const v = shifted(y, rows, m, this.shiftY, this.sumY);
      let s = 0;
      for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
      this.sumSqY += s;
      await matmulAccumulate(this.xty, u, [rows, d], v, [rows, m], { transA: true });
    }
    this.count += rows;
  }
}

function checkRows(layer: string, what: string, a: Rows, rows: number, width: number): void {
  if (!(a instanceof Float32Array || a instanceof Float64Array)) {
    throw new BasinError('invalid_argument', `layer ${q(layer)}: ${what} must be a Float32Array or Float64Array`, { node: layer });
  }
  if (a.length !== rows * width) {
    throw new BasinError('shape_mismatch', `layer ${q(layer)}: ${what} hold ${a.length} values but ${shapeStr([rows, width])} needs ${rows * width}`, {
      node: layer,
      expected: [rows, width],
      found: a.length,
    });
  }
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i]!)) {
      const r = Math.floor(i / width);
      throw new BasinError('non_finite', `layer ${q(layer)}: ${what} sample ${r} feature ${i - r * width} is ${a[i]}`, {
        node: layer,
        index: [r, i - r * width],
        found: a[i],
      });
    }
  }
}

function meanRows(a: Rows, rows: number, width: number, out: Float64Array): void {
  out.fill(0);
  for (let r = 0; r < rows; r++) {
    const o = r * width;
    for (let j = 0; j < width; j++) out[j] = out[j]! + a[o + j]!;
  }
  for (let j = 0; j < width; j++) out[j] = out[j]! / rows;
}

/** a − shift as float64 (rows×width), adding each row into `sum`. */
function shifted(a: Rows, rows: number, width: number, shift: Float64Array, sum: Float64Array): Float64Array {
  const u = new Float64Array(rows * width);
  for (let r = 0; r < rows; r++) {
    const o = r * width;
    for (let j = 0; j < width; j++) {
      const v = a[o + j]! - shift[j]!;
      u[o + j] = v;
      sum[j] = sum[j]! + v;
    }
  }
  return u;
}
