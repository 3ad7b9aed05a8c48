/**
 * factorizeMatrix: the seed's `factorize_matrix`, solved robustly. A linear map Y = X·W + b (W [in, out], or an
 * already factorized pair Wa·Wb) is replaced by Wa [in, r] and Wb [r, out] and a new bias chosen to minimize
 * ‖Y − (X·Wa·Wb + bias)‖² over calibration inputs, from streamed statistics:
 *
 *   - start from the closed-form optimum (reduced-rank.ts: whiten by the activations with a rank-revealing
 *     factorization, truncate, un-whiten), where the seed starts from the plain SVD of W and solves with a
 *     least squares that silently fails on rank-deficient activations;
 *   - refine with `iters` ALS iterations (als.ts), keeping the best iterate, so they can only lower the error;
 *   - the seed's early exits: a rank >= min(in, out) gives one least-squares matrix (kind 'full'); a rank >= the
 *     latent rank of a given pair leaves it unchanged (kind 'unchanged'); both report rank −1, as the seed does.
 *
 * nmse is the seed's: the mean squared error over every output value divided by Y.var() (unbiased, all values
 * pooled), with Y the layer's original outputs (bias included) or the targets the statistics were given.
 */
import { BasinError, q, shapeStr } from '../errors.js';
import { matmul } from '../engine/matmul.js';
import { svd } from '../linalg/svd.js';
import { ActivationStats } from './activation-stats.js';
import { refineAls } from './als.js';
import { momentsOfMap, momentsOfTargets, nmseOf, outputVariance, type RegressionMoments } from './moments.js';
import { interceptOf, residualOfFactors, residualOfMatrix } from './objective.js';
import { resolveRank } from './rank.js';
import { DEFAULT_RCOND, ReducedRank } from './reduced-rank.js';

type Floats = Float32Array | Float64Array;

/** The map to factorize: one matrix W [in, out] (Gemm/MatMul layout; torch's Linear weight is Wᵀ) … */
export interface SingleMap {
  w: Floats;
  inFeatures: number;
  outFeatures: number;
  bias?: Floats;
}
/** … or an already factorized pair Wa [in, latent] · Wb [latent, out]. */
export interface FactorizedMap {
  wa: Floats;
  wb: Floats;
  inFeatures: number;
  latent: number;
  outFeatures: number;
  bias?: Floats;
}
export type LinearMap = SingleMap | FactorizedMap;

/** Calibration rows given whole (small cases): X [rows, in] and optionally the targets Y [rows, out]. */
export interface MatrixSamples {
  x: Floats;
  rows: number;
  y?: Floats;
}

export interface FactorizeOptions {
  /** ALS iterations after the start (default 3, the seed's). */
  iters?: number;
  /** Start: 'closed-form' (default) or 'svd' (the seed's truncated SVD of W, for comparison). */
  init?: 'closed-form' | 'svd';
  /** Whitening cutoff (reduced-rank.ts). */
  rcond?: number;
  /** Names the layer in error messages. */
  layer?: string;
}

export interface LowRankSolution {
  /** 'factorized': Wa·Wb; 'full': one least-squares matrix in wa, wb null; 'unchanged': the given pair. */
  kind: 'factorized' | 'full' | 'unchanged';
  /** [in, rank] ([in, out] for 'full'; [in, latent] for 'unchanged'), row-major. */
  wa: Float64Array;
  /** [rank, out], or null for 'full'. */
  wb: Float64Array | null;
  /** [out]: the new bias (the original one is part of it). */
  bias: Float64Array;
  /** The latent rank, or −1 when the map was not factorized (the seed's convention). */
  rank: number;
  /** MSE / Y.var() of the returned map on the calibration statistics. */
  nmse: number;
  /** nmse of the start (closed form or SVD), then after each ALS iteration. */
  nmseHistory: number[];
  /** Numerical rank of the input covariance (inputs minus dead and dependent ones). */
  activationRank: number;
}

/** What solveLowRank returns: residuals (mean squared error per sample, summed over outputs) instead of nmse. */
export interface MapSolution extends Omit<LowRankSolution, 'nmse' | 'nmseHistory'> {
  residual: number;
  residualHistory: number[];
}

function toF64(a: Floats): Float64Array {
  return a instanceof Float64Array ? a : Float64Array.from(a);
}

function checkFinite(layer: string, what: string, a: Floats): void {
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i]!)) {
      throw new BasinError('non_finite', `layer ${q(layer)}: ${what} has a non-finite value ${a[i]} at flat index ${i}`, { node: layer, tensor: what, index: i, found: a[i] });
    }
  }
}

function checkLength(layer: string, what: string, a: Floats, shape: readonly number[]): void {
  const need = shape.reduce((x, y) => x * y, 1);
  if (!(a instanceof Float32Array || a instanceof Float64Array) || a.length !== need) {
    throw new BasinError('shape_mismatch', `layer ${q(layer)}: ${what} must hold ${shapeStr(shape)} = ${need} values, got ${a?.length}`, {
      node: layer,
      tensor: what,
      expected: shape,
      found: a?.length,
    });
  }
  checkFinite(layer, what, a);
}

/**
 * Check a map's shapes against itself (and `inputs` when given). Errors: 'invalid_argument' for non-integer dims,
 * 'shape_mismatch' for arrays of the wrong size, 'non_finite' for NaN/Inf weights; all name the layer.
 */
export function checkMap(layer: string, map: LinearMap, inputs?: number): void {
  const dims: [string, number][] = [
    ['inFeatures', map.inFeatures],
    ['outFeatures', map.outFeatures],
  ];
  if ('wa' in map) dims.push(['latent', map.latent]);
  for (const [what, v] of dims) {
    if (!(Number.isSafeInteger(v) && v >= 1)) {
      throw new BasinError('invalid_argument', `layer ${q(layer)}: ${what} must be a positive integer, got ${v}`, { node: layer, found: v });
    }
  }
  if (inputs !== undefined && map.inFeatures !== inputs) {
    throw new BasinError('shape_mismatch', `layer ${q(layer)}: the weight takes ${map.inFeatures} inputs but the calibration activations have ${inputs} features`, {
      node: layer,
      expected: inputs,
      found: map.inFeatures,
    });
  }
  if ('wa' in map) {
    checkLength(layer, 'Wa', map.wa, [map.inFeatures, map.latent]);
    checkLength(layer, 'Wb', map.wb, [map.latent, map.outFeatures]);
  } else {
    checkLength(layer, 'W', map.w, [map.inFeatures, map.outFeatures]);
  }
  if (map.bias !== undefined) checkLength(layer, 'bias', map.bias, [map.outFeatures]);
}

/** Check iters / init / rcond. Errors: 'invalid_argument' naming the layer. */
export function checkOptions(layer: string, opts: FactorizeOptions): void {
  const iters = opts.iters ?? 3;
  if (!(Number.isSafeInteger(iters) && iters >= 0 && iters <= 1000)) {
    throw new BasinError('invalid_argument', `layer ${q(layer)}: iters must be an integer in [0, 1000], got ${String(iters)}`, { node: layer, found: iters });
  }
  const init = opts.init ?? 'closed-form';
  if (init !== 'closed-form' && init !== 'svd') {
    throw new BasinError('invalid_argument', `layer ${q(layer)}: init must be 'closed-form' or 'svd', got ${JSON.stringify(init)}`, { node: layer, found: init });
  }
  const rcond = opts.rcond ?? DEFAULT_RCOND;
  if (!(Number.isFinite(rcond) && rcond >= 0 && rcond < 1)) {
    throw new BasinError('invalid_argument', `layer ${q(layer)}: rcond must be in [0, 1), got ${rcond}`, { node: layer, found: rcond });
  }
}

/** The map as one [in, out] float64 matrix (Wa·Wb for a pair). */
export async function denseMap(map: LinearMap): Promise<Float64Array> {
  if ('wa' in map) return matmul(toF64(map.wa), [map.inFeatures, map.latent], toF64(map.wb), [map.latent, map.outFeatures]);
  return toF64(map.w);
}

/** The seed's start: the truncated SVD of W (or Wa·Wb), scaled by √s on both sides. */
async function svdStart(map: LinearMap, k: number): Promise<{ wa: Float64Array; wb: Float64Array }> {
  const { inFeatures: d, outFeatures: m } = map;
  const { u, s, vt } = svd(await denseMap(map), d, m);
  const n = Math.min(d, m);
  const wa = new Float64Array(d * k);
  const wb = new Float64Array(k * m);
  for (let i = 0; i < k; i++) {
    const sq = Math.sqrt(s[i]!);
    for (let a = 0; a < d; a++) wa[a * k + i] = u[a * n + i]! * sq;
    for (let c = 0; c < m; c++) wb[i * m + c] = vt[i * m + c]! * sq;
  }
  return { wa, wb };
}

/**
 * The core on moments (shapes already checked): resolve the rank, take the seed's early exits, else closed form
 * (or SVD start) plus ALS. Residuals, not nmse, so that callers pooling several blocks (conv groups) can form the
 * seed's nmse over all of them. `reduced` may pass a decomposition already made for these moments.
 */
export async function solveLowRank(mom: RegressionMoments, map: LinearMap, rank: number, opts: FactorizeOptions & { reduced?: ReducedRank } = {}): Promise<MapSolution> {
  const layer = opts.layer ?? mom.layer;
  const { inFeatures: d, outFeatures: m } = mom;
  const width = 'wa' in map ? map.latent : m;
  const k = resolveRank(layer, rank, d, width);
  const rcond = opts.rcond ?? DEFAULT_RCOND;
  if (k >= d || k >= m) {
    // rank >= min(in, out): factorizing would not shrink anything; one least-squares matrix.
    const rr = opts.reduced ?? (await ReducedRank.fit(mom, { rcond, spectrum: false }));
    const ls = await rr.leastSquares();
    const residual = await residualOfMatrix(mom, ls);
    return { kind: 'full', wa: ls, wb: null, bias: await interceptOf(mom, ls, m), rank: -1, residual, residualHistory: [residual], activationRank: rr.activationRank };
  }
  if ('wa' in map && k >= map.latent) {
    const wa = toF64(map.wa);
    const wb = toF64(map.wb);
    const best = await interceptOf(mom, wa, map.latent, wb);
    const bias = map.bias ? toF64(map.bias) : new Float64Array(m);
    // Mean of ‖y − x·M − b‖² = E(M) + ‖b* − b‖² (b* the best intercept).
    let off = 0;
    for (let j = 0; j < m; j++) off += (best[j]! - bias[j]!) ** 2;
    const residual = (await residualOfFactors(mom, wa, wb, map.latent)) + off;
    return { kind: 'unchanged', wa, wb, bias, rank: -1, residual, residualHistory: [residual], activationRank: -1 };
  }
  const rr = opts.reduced ?? (await ReducedRank.fit(mom, { rcond }));
  const start = (opts.init ?? 'closed-form') === 'svd' ? await svdStart(map, k) : await rr.factors(k);
  const als = await refineAls(mom, rr, start, k, opts.iters ?? 3, rcond);
  return {
    kind: 'factorized',
    wa: als.wa,
    wb: als.wb,
    bias: await interceptOf(mom, als.wa, k, als.wb),
    rank: k,
    residual: als.residual,
    residualHistory: als.history,
    activationRank: rr.activationRank,
  };
}

/**
 * Factorize a linear layer Y = X·W + bias (or re-factorize a pair Wa·Wb to a lower rank) on calibration data.
 *
 * `data`: streamed ActivationStats of the layer's inputs (with targets when created with outFeatures, else the
 * targets are the layer's own outputs), or the samples themselves. `rank`: an integer, or a fraction of the
 * inputs (resolveRank). Returns {kind, wa, wb, bias, rank, nmse, …} (LowRankSolution).
 *
 * Errors (all naming the layer, all before any decomposition): 'invalid_argument' for a bad rank, iters, init
 * or rcond and for dims that are not positive integers; 'shape_mismatch' when the weight, bias or targets do not
 * fit the activations; 'non_finite' for NaN/Inf weights or samples; 'data_required' for statistics without
 * samples.
 */
export async function factorizeMatrix(data: ActivationStats | MatrixSamples, map: LinearMap, rank: number, opts: FactorizeOptions = {}): Promise<LowRankSolution> {
  const layer = opts.layer ?? (data instanceof ActivationStats ? data.layer : 'layer');
  checkOptions(layer, opts);
  checkMap(layer, map, data instanceof ActivationStats ? data.inFeatures : undefined);
  resolveRank(layer, rank, map.inFeatures, 'wa' in map ? map.latent : map.outFeatures);
  let stats: ActivationStats;
  if (data instanceof ActivationStats) {
    stats = data;
    if (stats.outFeatures !== undefined && stats.outFeatures !== map.outFeatures) {
      throw new BasinError('shape_mismatch', `layer ${q(layer)}: the targets have ${stats.outFeatures} features but the weight has ${map.outFeatures} outputs`, {
        node: layer,
        expected: map.outFeatures,
        found: stats.outFeatures,
      });
    }
  } else {
    stats = new ActivationStats(map.inFeatures, { layer, outFeatures: data.y ? map.outFeatures : undefined });
    await stats.add(data.x, data.rows, data.y);
  }
  const mom = stats.outFeatures !== undefined ? momentsOfTargets(stats) : await momentsOfMap(stats, await denseMap(map), map.outFeatures, map.bias ? toF64(map.bias) : undefined);
  const sol = await solveLowRank(mom, map, rank, { ...opts, layer });
  const variance = outputVariance([mom]);
  const m = map.outFeatures;
  const { residual, residualHistory, ...rest } = sol;
  return { ...rest, nmse: nmseOf(residual, m, variance), nmseHistory: residualHistory.map((r) => nmseOf(r, m, variance)) };
}
