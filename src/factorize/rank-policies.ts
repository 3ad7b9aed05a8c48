/**
 * The rank policies of `basin factorize --keep F`, `--max-nmse E` and auto (no rank option): each turns the
 * selected layers' input statistics (capture.ts) into the allocator's view of them, a RankLayer with its whole
 * nmse-vs-rank curve, and the allocator's choices back into a LayerRank per layer (dense → kept, with the reason).
 *
 * The curve of a layer is that of its OWN outputs Y = X·W + b (momentsOfMap): one closed-form decomposition
 * (ReducedRank.fit(...).residualCurve()) per Gemm/MatMul, one per group of a Conv (group i's im2col rows against its
 * O/g output channels), pooled by nmseCurve over all O outputs with the layer's Y.var() (outputVariance), i.e. the
 * nmse factorizeMatrix / factorizeConv report for the closed form at each rank. Gemm alpha, beta and transB are
 * folded into W [in, out] exactly as factorizeModel does.
 */
import { BasinError, q } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import { allocateRanks, denseParams, nmseCurve, type RankBudget, type RankChoice, type RankLayer } from './allocate.js';
import { autoRanks, defaultMeasure, type AutoLayer, type AutoOptions, type LatencyMeasure } from './auto-ranks.js';
import type { LayerStats } from './capture.js';
import { fanIn } from './conv-geometry.js';
import { groupMatrix, groupSlice } from './factorize-conv.js';
import { ConvStats } from './conv-stats.js';
import type { LayerRank, RankPolicy } from './factorize-model.js';
import { layerTimingShape, type LatencyOptions } from './latency.js';
import { linearMap } from './layers.js';
import { momentsOfMap, outputVariance, type RegressionMoments } from './moments.js';
import { ReducedRank } from './reduced-rank.js';

/**
 * A selected layer as the allocator sees it: dims, groups, bias, and its nmse at every rank index (k latent
 * channels per group) from the calibration statistics and the layer's own weight and bias in `model`.
 *
 * Errors: those of momentsOfMap ('shape_mismatch', 'data_required') and of the decomposition, naming the layer.
 */
export async function rankLayerOf(model: OnnxModel, { layer, stats }: LayerStats): Promise<RankLayer> {
  const w = model.getFloat32(layer.weight).data;
  const b = layer.bias !== undefined ? model.getFloat32(layer.bias).data : undefined;
  if ((layer.op === 'Conv') !== stats instanceof ConvStats) {
    throw new BasinError('shape_mismatch', `layer ${q(layer.name)}: its statistics are not those of a ${layer.op}`, { node: layer.name });
  }
  if (stats instanceof ConvStats && layer.op === 'Conv') {
    const g = layer.geometry.groups;
    const f = fanIn(layer.geometry);
    const o = layer.outFeatures;
    const og = o / g;
    const parts: RegressionMoments[] = [];
    const curves: Float64Array[] = [];
    for (let i = 0; i < g; i++) {
      const mom = await momentsOfMap(stats.groups[i]!, groupMatrix(w, o, f, g, i), og, groupSlice(b, og, i));
      parts.push(mom);
      curves.push((await ReducedRank.fit(mom)).residualCurve());
    }
    const [kh, kw] = layer.geometry.kernel;
    return { name: layer.name, op: 'conv', inFeatures: layer.inFeatures, outFeatures: o, kernelArea: kh * kw, groups: g, bias: b !== undefined, curve: nmseCurve(curves, o, outputVariance(parts)) };
  }
  if (stats instanceof ConvStats || layer.op === 'Conv') throw new BasinError('shape_mismatch', `layer ${q(layer.name)}: conv statistics`, { node: layer.name });
  const { inFeatures: d, outFeatures: m } = layer;
  const map = linearMap(layer, w, b);
  const mom = await momentsOfMap(stats, map.w, m, map.bias);
  const curve = nmseCurve([(await ReducedRank.fit(mom)).residualCurve()], m, outputVariance([mom]));
  return { name: layer.name, op: 'matmul', inFeatures: d, outFeatures: m, bias: b !== undefined, curve };
}

/** The allocator's choice as a LayerRank: a rank with the rule's reason, or kept with it. */
function toLayerRank(c: RankChoice & { denseMs?: number; factorizedMs?: number }): LayerRank {
  const latency = c.denseMs !== undefined ? { denseMs: c.denseMs, factorizedMs: c.factorizedMs } : {};
  if (c.rank === 'dense' || c.rank < 1) return { keep: c.reason, ...latency };
  return { rank: c.rank, reason: c.reason, ...latency };
}

/**
 * `--keep F` / `--max-nmse E`: allocateRanks over the selected layers' curves (see allocate.ts for the rules).
 *
 * The written pair always carries a bias (the fitted intercept ȳ − x̄ᵀM), also for a layer that had none, so the
 * layers are given to the allocator with a bias, and F is scaled by (true dense parameters) / (dense parameters
 * counted with a bias everywhere): the written layers then hold at most F of their true dense parameters (a layer
 * without a bias that stays dense is counted with one: conservative).
 *
 * Errors: allocateRanks' ('invalid_argument' for F outside (0, 1] or a negative E), raised after the statistics.
 */
export function budgetPolicy(model: OnnxModel, budget: RankBudget): RankPolicy {
  return async (layers) => {
    const ranked: RankLayer[] = [];
    for (const s of layers) ranked.push(await rankLayerOf(model, s));
    const withBias = ranked.map((l) => ({ ...l, bias: true }));
    let b = budget;
    if ('keep' in budget && typeof budget.keep === 'number') {
      const dense = ranked.reduce((s, l) => s + denseParams(l), 0);
      const counted = withBias.reduce((s, l) => s + denseParams(l), 0);
      if (counted > dense) b = { keep: (budget.keep * dense) / counted };
    }
    return allocateRanks(withBias, b).layers.map(toLayerRank);
  };
}

export interface AutoPolicyOptions extends AutoOptions {
  /** Samples per timed run (default 32): a Gemm/MatMul is timed on rows = batch × its rows per sample. */
  batch?: number;
  /** How each layer is timed (default: alone in onnxruntime, measureLayerLatency with `latency`). */
  measure?: LatencyMeasure;
  latency?: LatencyOptions;
}

/**
 * Auto (no rank option): autoRanks over the selected layers: a layer is factorized at the highest laddered rank
 * with fewer multiply-adds and nmse ≤ `maxNmse` (default 0.01) that is measured faster alone in onnxruntime, else
 * kept with the reason (no rank within the ceiling, or the timings).
 * The LayerRanks carry denseMs / factorizedMs. Errors: autoRanks'.
 */
export function autoPolicy(model: OnnxModel, opts: AutoPolicyOptions = {}): RankPolicy {
  const batch = opts.batch ?? 32;
  return async (layers) => {
    const auto: AutoLayer[] = [];
    for (const s of layers) auto.push({ ...(await rankLayerOf(model, s)), shape: layerTimingShape(s, batch) });
    const res = await autoRanks(auto, opts.measure ?? defaultMeasure(opts.latency), { margin: opts.margin, maxNmse: opts.maxNmse });
    return res.layers.map(toLayerRank);
  };
}
