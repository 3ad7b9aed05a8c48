/**
 * Per-channel statistics of activations, accumulated batch by batch in float64 without keeping the activations.
 * Each batch is reduced exactly (two passes: mean, then squared deviations) and folded in two ways at once:
 *  - population: Chan et al.'s pairwise merge of (count, mean, M2), i.e. the mean and the variance (ddof 0) over
 *    every value of the channel in all batches, independent of how the data was batched;
 *  - per-batch averages: the mean over batches of each batch's mean and of its unbiased (n − 1) variance, each
 *    batch weighing the same — what torch's BatchNorm keeps in running_mean/running_var in train mode with
 *    momentum=None (a cumulative moving average of the batch statistics).
 */
import { BasinError, q, shapeStr } from '../errors.js';
import { axisView, type Tensor } from '../tensor/tensor.js';

export interface Summary {
  readonly min: number;
  readonly mean: number;
  readonly max: number;
}

export function summarize(v: ArrayLike<number>): Summary {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!;
    if (x < min) min = x;
    if (x > max) max = x;
    sum += x;
  }
  return { min, mean: v.length ? sum / v.length : NaN, max };
}

export class ChannelStats {
  /** Values per channel seen so far. */
  count = 0;
  /** Batches seen. */
  batches = 0;
  private readonly mean: Float64Array;
  private readonly m2: Float64Array;
  private readonly batchMeanSum: Float64Array;
  private readonly batchVarSum: Float64Array;
  /** Batches with a single value per channel, which have no unbiased variance. */
  private singleValueBatches = 0;

  constructor(
    /** The value the statistics are of, for messages. */
    readonly value: string,
    readonly channels: number,
    /** Channel axis of the value (negative counts from the end). */
    readonly axis: number,
  ) {
    this.mean = new Float64Array(channels);
    this.m2 = new Float64Array(channels);
    this.batchMeanSum = new Float64Array(channels);
    this.batchVarSum = new Float64Array(channels);
  }

  /** Fold one batch of the value in. */
  add(t: Tensor): void {
    const axis = this.axis < 0 ? this.axis + t.rank : this.axis;
    if (axis < 0 || axis >= t.rank || t.shape[axis] !== this.channels) {
      throw new BasinError(
        'shape_mismatch',
        `${q(this.value)} has shape ${shapeStr(t.shape)}; expected ${this.channels} channels on axis ${this.axis}`,
        { tensor: this.value, shape: t.shape, expected: this.channels, axis: this.axis },
      );
    }
    const { outer, n: C, inner } = axisView(t.shape, axis);
    const n = outer * inner;
    if (n === 0) return;
    const d = t.data;
    const bm = new Float64Array(C);
    const bm2 = new Float64Array(C);
    for (let o = 0; o < outer; o++) {
      for (let c = 0; c < C; c++) {
        const base = (o * C + c) * inner;
        let s = 0;
        for (let i = 0; i < inner; i++) s += d[base + i]!;
        bm[c] = bm[c]! + s;
      }
    }
    for (let c = 0; c < C; c++) bm[c] = bm[c]! / n;
    for (let o = 0; o < outer; o++) {
      for (let c = 0; c < C; c++) {
        const base = (o * C + c) * inner;
        const m = bm[c]!;
        let s = 0;
        for (let i = 0; i < inner; i++) {
          const e = d[base + i]! - m;
          s += e * e;
        }
        bm2[c] = bm2[c]! + s;
      }
    }
    let finite = true;
    const na = this.count;
    const tot = na + n;
    for (let c = 0; c < C; c++) {
      const delta = bm[c]! - this.mean[c]!;
      this.mean[c] = this.mean[c]! + (delta * n) / tot;
      this.m2[c] = this.m2[c]! + bm2[c]! + (delta * delta * na * n) / tot;
      this.batchMeanSum[c] = this.batchMeanSum[c]! + bm[c]!;
      if (n > 1) this.batchVarSum[c] = this.batchVarSum[c]! + bm2[c]! / (n - 1);
      if (!Number.isFinite(bm[c]!) || !Number.isFinite(bm2[c]!)) finite = false;
    }
    if (!finite) {
      throw new BasinError('non_finite', `${q(this.value)} holds non-finite values (NaN or ±Infinity) on the calibration data`, { tensor: this.value });
    }
    if (n === 1) this.singleValueBatches += 1;
    this.count = tot;
    this.batches += 1;
  }

  private need(): void {
    if (this.count === 0) throw new BasinError('data_invalid', `no values of ${q(this.value)} were seen; calibration needs data`, { tensor: this.value });
  }

  /** Mean over all values of each channel. */
  populationMean(): Float64Array {
    this.need();
    return this.mean.slice();
  }

  /** Variance (ddof 0) over all values of each channel. */
  populationVar(): Float64Array {
    this.need();
    return this.m2.map((v) => v / this.count);
  }

  populationStd(): Float64Array {
    return this.populationVar().map(Math.sqrt);
  }

  /** Mean over batches of the per-batch channel means (torch's momentum=None running_mean). */
  batchAveragedMean(): Float64Array {
    this.need();
    return this.batchMeanSum.map((v) => v / this.batches);
  }

  /** Mean over batches of the per-batch unbiased channel variances (torch's momentum=None running_var). */
  batchAveragedVar(): Float64Array {
    this.need();
    if (this.singleValueBatches > 0) {
      throw new BasinError(
        'data_invalid',
        `${this.singleValueBatches} batch(es) held a single value per channel of ${q(this.value)}, which has no unbiased variance (torch refuses such batches in train mode); use another batch size or limit`,
        { tensor: this.value, found: this.singleValueBatches },
      );
    }
    return this.batchVarSum.map((v) => v / this.batches);
  }
}
