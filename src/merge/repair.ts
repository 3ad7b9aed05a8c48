/**
 * REPAIR (Jordan et al. 2022, "REPAIR: REnormalizing Permuted Activations for Interpolation Repair"): after
 * interpolating two aligned networks, give every hidden layer's output channels the mean and standard deviation
 * they would have if statistics interpolated like the weights do, and fold that affine correction into the
 * producing layer's weights. For graphs without BatchNormalization (BN folded into Conv by the exporter) and MLPs.
 *
 * For each affine producer (see producers.ts) and channel c, on the same data:
 *   target  μ_t = (1 − α)·μ_A + α·μ_B,   σ_t = (1 − α)·σ_A + α·σ_B
 * (μ, σ: per-channel mean and population std of the end-point models' output at that node, over the batch and
 * spatial/sequence axes). Then, producers in topological order by level (producers that do not depend on each
 * other share a pass), the merged model's current μ_c and variance v_c are measured with every upstream producer
 * already corrected, and
 *   s = σ_t / sqrt(v_c + eps),   W'[c] = s·W[c],   b'[c] = s·(b[c] − μ_c) + μ_t
 * so the output becomes s·(y − μ_c) + μ_t. eps (default 1e-5) is BatchNorm's: it keeps s finite for channels
 * whose merged output is (nearly) constant — those with v_c <= eps are reported as `degenerate`; eps = 0 makes
 * the correction exact (a channel with v_c = 0 then only has its mean shifted). A producer without a bias gets
 * a zero bias first.
 */
import { BasinError, q } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import { axisView } from '../tensor/tensor.js';
import { addZeroBiases } from './add-bias.js';
import { Calibration, type CalibrationData, type CalibrationOptions } from './calibration.js';
import { captureChannelStats, type CaptureTarget } from './capture.js';
import { summarize, type ChannelStats, type Summary } from './channel-stats.js';
import { GraphView } from './graph.js';
import { checkMergeable } from './interpolate.js';
import { findAffineProducers, type AffineProducer, type SkippedProducer } from './producers.js';
import { readF64, writeF64 } from './weights.js';

export interface MergeEndpoints {
  readonly a: OnnxModel;
  readonly b: OnnxModel;
  /** Where the merged model sits between them: 0 = A, 1 = B. */
  readonly alpha: number;
}

export interface RepairOptions extends CalibrationOptions {
  /** Added to the merged variance before the square root (default 1e-5, as BatchNorm). */
  eps?: number;
}

export interface RepairedLayer {
  /** The Conv / Gemm / MatMul node and the value whose channels were renormalized. */
  readonly node: string;
  readonly op: AffineProducer['op'];
  readonly output: string;
  readonly weight: string;
  readonly bias: string;
  /** True when the node had no bias and a zero one was added. */
  readonly biasAdded: boolean;
  readonly channels: number;
  /** 0 for producers with no producer upstream; one pass over the data per level. */
  readonly level: number;
  /** Per channel: the targets, the merged model's statistics before the correction, and the scale applied. */
  readonly targetMean: Float64Array;
  readonly targetStd: Float64Array;
  readonly meanBefore: Float64Array;
  readonly stdBefore: Float64Array;
  readonly scale: Float64Array;
  readonly summary: {
    readonly targetStd: Summary;
    readonly stdBefore: Summary;
    /** σ_c / σ_t before the correction (1 = already right; REPAIR's "variance collapse" shows as < 1). */
    readonly stdRatioBefore: Summary;
    readonly maxMeanErrorBefore: number;
    readonly scale: Summary;
  };
  /** Channels whose merged variance was <= eps (their correction leans on eps). */
  readonly degenerate: readonly number[];
}

export interface RepairResult {
  readonly model: OnnxModel;
  readonly layers: readonly RepairedLayer[];
  /** Producers that were not repaired, and why. */
  readonly skipped: readonly SkippedProducer[];
  /** Passes over the data: one per end point, one per level of the merged model. */
  readonly passes: number;
  readonly samples: number;
  readonly alpha: number;
  readonly eps: number;
}

function checkEndpointValues(m: OnnxModel, which: string, producers: readonly AffineProducer[]): void {
  const defined = new Set<string>();
  for (const n of m.proto.graph?.node ?? []) for (const o of n.output ?? []) defined.add(o);
  for (const p of producers) {
    if (!defined.has(p.output)) {
      throw new BasinError('models_mismatch', `the merged model's ${p.op} output ${q(p.output)} (node ${q(p.node.name)}) does not exist in end point ${which} ${q(m.path ?? '')}: the models must come from the same export`, {
        file: m.path,
        node: p.node.name,
        tensor: p.output,
      });
    }
  }
}

/** Scale the `axis` slices of a flat tensor by s[c]. */
function scaleSlices(data: Float64Array, shape: readonly number[], axis: number, s: Float64Array): void {
  const { outer, n, inner } = axisView(shape, axis);
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < n; c++) {
      const k = s[c]!;
      const base = (o * n + c) * inner;
      for (let i = 0; i < inner; i++) data[base + i] = data[base + i]! * k;
    }
  }
}

/**
 * REPAIR the merged model of `endpoints` (A, aligned B, alpha) on `data`.
 * @throws BasinError invalid_argument (end models that do not match the merged one, bad options); the data feed's codes naming the file and sample
 */
export async function repairModel(merged: OnnxModel, endpoints: MergeEndpoints, data: CalibrationData, opts: RepairOptions = {}): Promise<RepairResult> {
  const { a, b, alpha } = endpoints;
  if (!(Number.isFinite(alpha) && alpha >= 0 && alpha <= 1)) {
    throw new BasinError('invalid_argument', `REPAIR needs 0 <= alpha <= 1 (its target std interpolates the end points' stds), got ${alpha}`, { found: alpha });
  }
  const eps = opts.eps ?? 1e-5;
  if (!(Number.isFinite(eps) && eps >= 0)) throw new BasinError('invalid_argument', `'eps' must be a finite non-negative number, got ${eps}`, { found: eps });
  checkMergeable(merged, a, { base: 'merged model', other: 'A' });
  checkMergeable(merged, b, { base: 'merged model', other: 'B' });
  const view = new GraphView(merged);
  const { producers, skipped } = findAffineProducers(merged, view);
  if (producers.length === 0) {
    throw new BasinError(
      'invalid_argument',
      `${q(merged.path ?? '(in-memory model)')} has no layer REPAIR can renormalize (Conv, Gemm, or MatMul + bias Add with a nonlinearity after it)` +
        (skipped.length ? `; skipped: ${skipped.map((s) => `${q(s.node)} (${s.reason})`).join(', ')}` : ''),
      { file: merged.path, skipped },
    );
  }
  checkEndpointValues(a, 'A', producers);
  checkEndpointValues(b, 'B', producers);

  const calib = new Calibration(data, opts);
  const levelOf = view.levels(new Map(producers.map((p, i) => [p.outputNode.index, i])));
  const levels = Math.max(...levelOf.values()) + 1;
  const passes = levels + 2;
  const targets: CaptureTarget[] = producers.map((p) => ({ value: p.output, channels: p.channels, axis: p.axis }));
  const common = { inputName: opts.inputName, onProgress: opts.onProgress, passes };
  const statsA = await captureChannelStats(a, targets, calib, { ...common, phase: 'A statistics', pass: 1 });
  const statsB = await captureChannelStats(b, targets, calib, { ...common, phase: 'B statistics', pass: 2 });

  const { model: work, names: added } = addZeroBiases(
    merged,
    producers.filter((p) => p.bias === undefined).map((p) => ({ nodeIndex: p.node.index, weight: p.weight, channels: p.channels })),
  );
  const layers: RepairedLayer[] = [];
  for (let level = 0; level < levels; level++) {
    const group = producers.filter((_, i) => levelOf.get(i) === level);
    const stats = await captureChannelStats(
      work,
      group.map((p) => ({ value: p.output, channels: p.channels, axis: p.axis })),
      calib,
      { ...common, phase: `REPAIR level ${level + 1}/${levels}`, pass: level + 3 },
    );
    for (const p of group) layers.push(correct(work, p, added.get(p.node.index), statsA.get(p.output)!, statsB.get(p.output)!, stats.get(p.output)!, alpha, eps, level));
  }
  return { model: work, layers, skipped, passes, samples: calib.size ?? 0, alpha, eps };
}

function correct(
  work: OnnxModel,
  p: AffineProducer,
  addedBias: string | undefined,
  sa: ChannelStats,
  sb: ChannelStats,
  sc: ChannelStats,
  alpha: number,
  eps: number,
  level: number,
): RepairedLayer {
  const C = p.channels;
  const ma = sa.populationMean();
  const mb = sb.populationMean();
  const da = sa.populationStd();
  const db = sb.populationStd();
  const mc = sc.populationMean();
  const vc = sc.populationVar();
  const targetMean = new Float64Array(C);
  const targetStd = new Float64Array(C);
  const stdBefore = new Float64Array(C);
  const scale = new Float64Array(C);
  const ratio = new Float64Array(C);
  const degenerate: number[] = [];
  let maxMeanErrorBefore = 0;
  for (let c = 0; c < C; c++) {
    targetMean[c] = (1 - alpha) * ma[c]! + alpha * mb[c]!;
    targetStd[c] = (1 - alpha) * da[c]! + alpha * db[c]!;
    stdBefore[c] = Math.sqrt(vc[c]!);
    const denom = Math.sqrt(vc[c]! + eps);
    scale[c] = denom > 0 ? targetStd[c]! / denom : 1;
    if (vc[c]! <= eps) degenerate.push(c);
    ratio[c] = stdBefore[c]! / targetStd[c]!;
    maxMeanErrorBefore = Math.max(maxMeanErrorBefore, Math.abs(mc[c]! - targetMean[c]!));
  }
  const w = readF64(work, p.weight);
  scaleSlices(w, work.weightInfo(p.weight).shape, p.weightAxis, scale);
  writeF64(work, p.weight, w);
  const biasName = p.bias ?? addedBias!;
  const bias = readF64(work, biasName);
  const beta = p.biasScale;
  for (let c = 0; c < C; c++) bias[c] = (scale[c]! * (beta * bias[c]! - mc[c]!) + targetMean[c]!) / beta;
  writeF64(work, biasName, bias);
  return {
    node: p.node.name,
    op: p.op,
    output: p.output,
    weight: p.weight,
    bias: biasName,
    biasAdded: p.bias === undefined,
    channels: C,
    level,
    targetMean,
    targetStd,
    meanBefore: mc,
    stdBefore,
    scale,
    summary: {
      targetStd: summarize(targetStd),
      stdBefore: summarize(stdBefore),
      stdRatioBefore: summarize(ratio),
      maxMeanErrorBefore,
      scale: summarize(scale),
    },
    degenerate,
  };
}
