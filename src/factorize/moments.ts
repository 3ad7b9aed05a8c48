/**
 * Centred moments of a regression Y ≈ X·M + b, built from streamed ActivationStats: everything the closed form,
 * ALS and the error of any candidate (M, b) need, in float64. With N samples, x̄ and ȳ the means:
 *
 *   Cxx = (1/N)·Σ(x − x̄)(x − x̄)ᵀ   [d, d]      Cxy = (1/N)·Σ(x − x̄)(y − ȳ)ᵀ   [d, m]      trCyy = (1/N)·Σ‖y − ȳ‖²
 *
 * For the best intercept b = ȳ − x̄ᵀM, the mean squared residual per sample is
 * trCyy − 2⟨M, Cxy⟩ + ⟨M, Cxx·M⟩ (objective.ts), so the seed's objective ‖Y − (X·Wa·Wb + b)‖² is a function of these
 * alone. When the targets are the layer's own outputs Y = X·W + b₀ they need not be streamed at all:
 * Cxy = Cxx·W and trCyy = ⟨W, Cxx·W⟩ (`momentsOfMap`).
 */
import { BasinError, q, shapeStr } from '../errors.js';
import { matmul } from '../engine/matmul.js';
import type { ActivationStats } from './activation-stats.js';

export interface RegressionMoments {
  layer: string;
  /** Samples (rows) the statistics were taken over. */
  n: number;
  inFeatures: number;
  outFeatures: number;
  meanX: Float64Array;
  meanY: Float64Array;
  /** [d, d] row-major, population covariance of the inputs. */
  cxx: Float64Array;
  /** [d, m] row-major, cross-covariance of inputs and targets. */
  cxy: Float64Array;
  /** Total variance of the targets per sample: (1/N)·Σ‖y − ȳ‖². */
  trCyy: number;
}

export function centred(stats: ActivationStats): { mu: Float64Array; meanX: Float64Array; cxx: Float64Array } {
  const n = stats.count;
  if (!(n >= 1)) {
    throw new BasinError('data_required', `layer ${q(stats.layer)}: no calibration samples were added to its statistics`, { node: stats.layer });
  }
  const d = stats.inFeatures;
  const mu = new Float64Array(d);
  const meanX = new Float64Array(d);
  for (let j = 0; j < d; j++) {
    mu[j] = stats.sumX[j]! / n;
    meanX[j] = stats.shiftX[j]! + mu[j]!;
  }
  const cxx = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) cxx[i * d + j] = stats.xtx[i * d + j]! / n - mu[i]! * mu[j]!;
  }
  // Exactly symmetric, whatever order the engine summed in.
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < i; j++) {
      const v = 0.5 * (cxx[i * d + j]! + cxx[j * d + i]!);
      cxx[i * d + j] = v;
      cxx[j * d + i] = v;
    }
  }
  return { mu, meanX, cxx };
}

/**
 * Moments of the streamed targets (stats created with outFeatures).
 *
 * Errors: 'data_required' when no sample was added; 'invalid_argument' when the stats carry no targets.
 */
export function momentsOfTargets(stats: ActivationStats): RegressionMoments {
  const { mu, meanX, cxx } = centred(stats);
  const m = stats.outFeatures;
  if (m === undefined || !stats.sumY || !stats.xty || !stats.shiftY) {
    throw new BasinError('invalid_argument', `layer ${q(stats.layer)}: its statistics hold no targets (create them with outFeatures)`, { node: stats.layer });
  }
  const n = stats.count;
  const d = stats.inFeatures;
  const mv = new Float64Array(m);
  const meanY = new Float64Array(m);
  let mv2 = 0;
  for (let j = 0; j < m; j++) {
    mv[j] = stats.sumY[j]! / n;
    meanY[j] = stats.shiftY[j]! + mv[j]!;
    mv2 += mv[j]! * mv[j]!;
  }
  const cxy = new Float64Array(d * m);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < m; j++) cxy[i * m + j] = stats.xty[i * m + j]! / n - mu[i]! * mv[j]!;
  }
  return { layer: stats.layer, n, inFeatures: d, outFeatures: m, meanX, meanY, cxx, cxy, trCyy: Math.max(0, stats.sumSqY / n - mv2) };
}

/**
 * Moments of the layer's own outputs Y = X·W + bias, with W [d, m] row-major (input-major, as Gemm/MatMul store
 * it; torch's Linear weight [out, in] is its transpose).
 *
 * Errors: 'data_required' when no sample was added; 'shape_mismatch' when W or bias do not fit the statistics'
 * inFeatures, naming the layer.
 */
export async function momentsOfMap(stats: ActivationStats, w: Float64Array, outFeatures: number, bias?: Float64Array): Promise<RegressionMoments> {
  const d = stats.inFeatures;
  const m = outFeatures;
  if (!(w instanceof Float64Array) || w.length !== d * m) {
    throw new BasinError('shape_mismatch', `layer ${q(stats.layer)}: weight holds ${w.length} values but ${shapeStr([d, m])} is needed for ${d} inputs`, {
      node: stats.layer,
      expected: [d, m],
      found: w.length,
    });
  }
  if (bias !== undefined && bias.length !== m) {
    throw new BasinError('shape_mismatch', `layer ${q(stats.layer)}: bias has ${bias.length} values, expected ${m}`, { node: stats.layer, expected: m, found: bias.length });
  }
  const { meanX, cxx } = centred(stats);
  const cxy = await matmul(cxx, [d, d], w, [d, m]);
  let tr = 0;
  for (let i = 0; i < cxy.length; i++) tr += w[i]! * cxy[i]!;
  const meanY = await matmul(meanX, [1, d], w, [d, m]);
  if (bias) for (let j = 0; j < m; j++) meanY[j] = meanY[j]! + bias[j]!;
  return { layer: stats.layer, n: stats.count, inFeatures: d, outFeatures: m, meanX, meanY, cxx, cxy, trCyy: Math.max(0, tr) };
}

/**
 * The seed's denominator, Y.var(): the unbiased variance of every output value of the layer (all samples and all
 * output features pooled around one grand mean), from the moments of one or more blocks of output features that
 * share their samples (the groups of a grouped conv).
 */
export function outputVariance(parts: readonly Pick<RegressionMoments, 'n' | 'meanY' | 'trCyy'>[]): number {
  const first = parts[0];
  if (!first) return 0;
  const n = first.n;
  let count = 0;
  let grand = 0;
  for (const p of parts) {
    for (let j = 0; j < p.meanY.length; j++) grand += p.meanY[j]!;
    count += p.meanY.length;
  }
  grand /= count;
  let ss = 0;
  for (const p of parts) {
    ss += n * p.trCyy;
    for (let j = 0; j < p.meanY.length; j++) ss += n * (p.meanY[j]! - grand) ** 2;
  }
  const total = n * count;
  return total > 1 ? ss / (total - 1) : 0;
}

/**
 * nmse = MSE / Y.var(), as the seed defines it: `residual` is the mean squared residual per sample summed over
 * the `outputs` output features; a layer whose outputs do not vary has nmse 0 when fitted exactly.
 */
export function nmseOf(residual: number, outputs: number, variance: number): number {
  const mse = Math.max(0, residual) / outputs;
  if (variance > 0) return mse / variance;
  return mse > 0 ? Infinity : 0;
}
