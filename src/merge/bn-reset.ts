/**
 * Reset the statistics of every BatchNormalization node of a (merged) model on data, as PyTorch's usual fix for
 * interpolated BatchNorm networks does (reset_running_stats, momentum=None, forward passes in train mode).
 *
 * BN nodes are processed in topological order, by level: a BN's input statistics are measured with every BN
 * upstream of it already reset (and running in inference mode), so the stored statistics are those the BN really
 * sees when the model is used; BNs that do not depend on each other share one pass. Per channel, over the batch
 * and all spatial axes, accumulated in float64 without keeping activations.
 *
 * Which statistics are stored (`statistics`):
 *  - 'torch' (default): running_mean = mean over batches of the batch means, running_var = mean over batches of
 *    the UNBIASED (n − 1) batch variances, every batch weighing the same: exactly what torch leaves in
 *    running_mean/running_var after a momentum=None reset over the same batches, so a model reset here and one
 *    reset in torch agree. It depends (slightly) on the batch size.
 *  - 'population': the mean and the population variance (ddof 0) over all the data at once, batch-independent.
 * The one difference from torch's one-pass train-mode reset: there, BNs downstream see inputs normalized with
 * the *batch* statistics of upstream BNs; here with their reset statistics, as at inference time.
 */
import { BasinError, q } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import { numel } from '../tensor/tensor.js';
import { Calibration, type CalibrationData, type CalibrationOptions } from './calibration.js';
import { captureChannelStats } from './capture.js';
import { GraphView, type GraphNode } from './graph.js';
import { readF64, writeF64 } from './weights.js';

export type BatchNormStatistics = 'torch' | 'population';

export interface ResetBatchNormOptions extends CalibrationOptions {
  statistics?: BatchNormStatistics;
}

export interface BatchNormReset {
  /** The BatchNormalization node. */
  readonly node: string;
  /** Its input value, whose statistics were measured. */
  readonly input: string;
  /** The mean and variance tensors that were rewritten. */
  readonly mean: string;
  readonly var: string;
  readonly channels: number;
  /** 0 for BNs with no BN upstream; a BN's level is above every BN it depends on. */
  readonly level: number;
  /** Largest change of the stored mean, and the range of new/old variance. */
  readonly maxMeanChange: number;
  readonly varRatio: { readonly min: number; readonly max: number };
}

export interface ResetBatchNormResult {
  readonly model: OnnxModel;
  readonly layers: readonly BatchNormReset[];
  /** Passes over the data (one per level). */
  readonly passes: number;
  /** Samples per pass. */
  readonly samples: number;
  readonly statistics: BatchNormStatistics;
}

interface BnNode {
  readonly node: GraphNode;
  readonly input: string;
  readonly mean: string;
  readonly var: string;
  readonly channels: number;
}

function findBatchNorms(model: OnnxModel, view: GraphView): BnNode[] {
  const label = model.path ?? '(in-memory model)';
  const floats = new Set(model.weights());
  const out: BnNode[] = [];
  for (const n of view.nodes) {
    if (n.opType !== 'BatchNormalization' || (n.domain !== '' && n.domain !== 'ai.onnx')) continue;
    if (view.intAttr(n, 'training_mode', 0) !== 0) {
      throw new BasinError(
        'onnx_unsupported_op',
        `${q(label)}: BatchNormalization ${q(n.name)} was exported in training mode (training_mode=1); export the model in eval mode (torch: model.eval(), training=TrainingMode.PRESERVE keeps the BN nodes)`,
        { file: model.path, node: n.name },
      );
    }
    if (n.attrs.has('spatial') && view.intAttr(n, 'spatial', 1) === 0) {
      throw new BasinError('onnx_unsupported_op', `${q(label)}: BatchNormalization ${q(n.name)} has spatial=0 (per-element statistics), which basin does not reset`, {
        file: model.path,
        node: n.name,
      });
    }
    const [x, , , mean, variance] = n.inputs;
    for (const [what, v] of [['mean', mean], ['variance', variance]] as const) {
      if (!v || !floats.has(v)) {
        throw new BasinError('onnx_unsupported_op', `${q(label)}: the ${what} of BatchNormalization ${q(n.name)} (${q(v ?? '')}) is not a stored float tensor, so it cannot be reset`, {
          file: model.path,
          node: n.name,
          tensor: v,
        });
      }
      if (view.uses(v) > 1) {
        throw new BasinError('onnx_unsupported_op', `${q(label)}: the ${what} tensor ${q(v)} of BatchNormalization ${q(n.name)} is shared with other nodes; it cannot be reset for one of them`, {
          file: model.path,
          node: n.name,
          tensor: v,
        });
      }
    }
    const channels = numel(model.weightInfo(mean!).shape);
    if (numel(model.weightInfo(variance!).shape) !== channels) {
      throw new BasinError('onnx_invalid', `${q(label)}: BatchNormalization ${q(n.name)} has ${channels} means but a variance of another size`, {
        file: model.path,
        node: n.name,
      });
    }
    out.push({ node: n, input: x!, mean: mean!, var: variance!, channels });
  }
  return out;
}

/**
 * A copy of `model` with every BatchNormalization node's mean and variance recomputed on `data`.
 * @throws BasinError invalid_argument (no BatchNorm, bad options); the data feed's codes (data_invalid, data_shape_mismatch) naming the file and sample
 */
export async function resetBatchNorm(model: OnnxModel, data: CalibrationData, opts: ResetBatchNormOptions = {}): Promise<ResetBatchNormResult> {
  const statistics = opts.statistics ?? 'torch';
  if (statistics !== 'torch' && statistics !== 'population') {
    throw new BasinError('invalid_argument', `'statistics' must be 'torch' or 'population', got ${q(String(statistics))}`, { found: statistics });
  }
  const view = new GraphView(model);
  const bns = findBatchNorms(model, view);
  if (bns.length === 0) {
    throw new BasinError(
      'invalid_argument',
      `${q(model.path ?? '(in-memory model)')} has no BatchNormalization nodes (was BatchNorm folded into the Convs by the exporter?), so there are no statistics to reset; use REPAIR instead (correction 'repair', --repair), which renormalizes the Conv/Gemm outputs directly`,
      { file: model.path },
    );
  }
  const calib = new Calibration(data, opts);
  const levelOf = view.levels(new Map(bns.map((b, i) => [b.node.index, i])));
  const passes = Math.max(...levelOf.values()) + 1;
  const out = model.clone();
  const layers: BatchNormReset[] = [];
  for (let level = 0; level < passes; level++) {
    const group = bns.filter((_, i) => levelOf.get(i) === level);
    const stats = await captureChannelStats(
      out,
      group.map((b) => ({ value: b.input, channels: b.channels, axis: 1 })),
      calib,
      { inputName: opts.inputName, onProgress: opts.onProgress, phase: `BatchNorm level ${level + 1}/${passes}`, pass: level + 1, passes },
    );
    for (const b of group) {
      const s = stats.get(b.input)!;
      const mean = statistics === 'torch' ? s.batchAveragedMean() : s.populationMean();
      const variance = statistics === 'torch' ? s.batchAveragedVar() : s.populationVar();
      const oldMean = readF64(out, b.mean);
      const oldVar = readF64(out, b.var);
      let maxMeanChange = 0;
      let rmin = Infinity;
      let rmax = -Infinity;
      for (let c = 0; c < b.channels; c++) {
        maxMeanChange = Math.max(maxMeanChange, Math.abs(mean[c]! - oldMean[c]!));
        const r = variance[c]! / oldVar[c]!;
        rmin = Math.min(rmin, r);
        rmax = Math.max(rmax, r);
      }
      writeF64(out, b.mean, mean);
      writeF64(out, b.var, variance);
      layers.push({ node: b.node.name, input: b.input, mean: b.mean, var: b.var, channels: b.channels, level, maxMeanChange, varRatio: { min: rmin, max: rmax } });
    }
  }
  return { model: out, layers, passes, samples: calib.size ?? 0, statistics };
}
