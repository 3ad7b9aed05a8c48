/**
 * Loss and accuracy along the straight line between two models, naive and with B aligned (and optionally with
 * the merged models' statistics repaired), with the barrier of each curve: what the Git Re-Basin paper plots.
 */
import type { OnnxModel } from '../onnx/model.js';
import type { Dataset } from '../data/dataset.js';
import { evaluate } from '../eval/evaluate.js';
import type { FeedSource } from '../data/feed-source.js';
import type { EvalTask } from '../eval/metrics.js';
import { barrierOf } from '../eval/barrier.js';
import { BasinError } from '../errors.js';
import { requireGraph, type LoadedModel } from '../models/load.js';
import { specSourceOf } from '../models/model-spec.js';
import { alignOnnxModels } from '../align/align-onnx.js';
import type { ProbeInputs } from '../align/infer-spec.js';
import { matchingMethod, type MatchingMethodName } from '../match/registry.js';
import type { ActivationData } from '../match/activation-matching.js';
import { correction, type CorrectionName, type CorrectionOptions } from '../merge/corrections.js';
import type { CalibrationData } from '../merge/calibration.js';
import { openDataRef, type DataRef, type FeedOptions } from '../data/data-ref.js';
import { openEvalData } from '../eval/eval-data.js';
import type { PermutationSpecJson } from '../spec/types.js';
import { curveSpecs } from './blends.js';

export interface CurvePoint {
  alpha: number;
  /** Mean cross-entropy: nats per sample (classification) or nats/token (lm). */
  loss: number;
  /** Per sample (classification) or next-token (lm). */
  accuracy: number;
  /** lm: exp(loss). */
  perplexity?: number;
}

export interface InterpolationCurve {
  name: string;
  points: CurvePoint[];
  /** max over α of loss(α) − the straight line between the end points' losses (nats). */
  barrier: number;
  barrierAlpha: number;
  /** The same for accuracy, measured downwards (the chord minus the curve). */
  accuracyBarrier: number;
}

/** Makes (1−α)·A + α·B, optionally post-processed (BN reset, REPAIR). */
export type Blend = (alpha: number) => Promise<OnnxModel>;

export interface CurveSpec {
  name: string;
  blend: Blend;
}

export interface ProgressEvent {
  done: number;
  total: number;
  label: string;
}

/**
 * `steps` evenly spaced interpolation coefficients from 0 to 1, both ends included.
 * @throws BasinError invalid_argument unless `steps` is an integer ≥ 2
 */
export function alphaGrid(steps: number): number[] {
  if (!Number.isInteger(steps) || steps < 2) throw new BasinError('invalid_argument', `--steps must be an integer ≥ 2 (the two end points), got ${steps}`, {});
  return Array.from({ length: steps }, (_, i) => i / (steps - 1));
}

/**
 * One interpolation curve from its points: the loss barrier (eval/barrier.ts barrierOf, in the loss's units) and
 * where it is, and the accuracy barrier (the drop below the chord of the end accuracies, as a fraction).
 * @throws BasinError invalid_argument for fewer than two points or non-finite values
 */
export function curveOf(name: string, points: CurvePoint[]): InterpolationCurve {
  const alphas = points.map((p) => p.alpha);
  const { barrier, alpha } = barrierOf(alphas, points.map((p) => p.loss));
  const acc = barrierOf(alphas, points.map((p) => -p.accuracy));
  return { name, points, barrier, barrierAlpha: alpha, accuracyBarrier: acc.barrier };
}

/**
 * Evaluate every curve at every α on the test data (a labelled Dataset, or a FeedSource of token ids for language
 * models), for `task` (evaluate's rule; default 'auto').
 * @throws BasinError models_mismatch; the evaluator's and data feed's codes naming the file and sample
 */
export async function interpolationCurves(
  curves: CurveSpec[],
  test: Dataset | FeedSource,
  { alphas, batchSize = 500, task = 'auto', onProgress }: { alphas: number[]; batchSize?: number; task?: EvalTask | 'auto'; onProgress?: (e: ProgressEvent) => void },
): Promise<InterpolationCurve[]> {
  const total = curves.length * alphas.length;
  let done = 0;
  const out: InterpolationCurve[] = [];
  for (const c of curves) {
    const points: CurvePoint[] = [];
    for (const alpha of alphas) {
      onProgress?.({ done, total, label: `${c.name} α=${alpha.toFixed(2)}` });
      const model = await c.blend(alpha);
      const r = await evaluate(model, test, { batchSize, task });
      points.push({ alpha, loss: r.loss, accuracy: r.accuracy, ...(r.perplexity !== undefined ? { perplexity: r.perplexity } : {}) });
      done++;
    }
    out.push(curveOf(c.name, points));
  }
  onProgress?.({ done, total, label: 'done' });
  return out;
}

/** Loss and accuracy at α = 0.5 (or the α closest to it). */
export function midpoint(c: InterpolationCurve): CurvePoint {
  return c.points.reduce((best, p) => (Math.abs(p.alpha - 0.5) < Math.abs(best.alpha - 0.5) ? p : best));
}

/** What `interpolationStudy` compares and on what. */
export interface InterpolationStudyOptions {
  /** Test data: a path (labelled samples, or token ids for a language model) or data already open with its task. */
  test: string | { readonly data: Dataset | FeedSource; readonly task: EvalTask };
  /** What the loss scores (default 'auto', see evaluate). */
  task?: EvalTask | 'auto';
  /** The α values (alphaGrid). */
  alphas: number[];
  /** A row of the matching-method table aligning B first, or 'none' (default 'weight'). */
  method?: MatchingMethodName | 'none';
  /** Data the method reads (default: the correction's data). */
  alignData?: DataRef<ActivationData>;
  /** The user's spec and its label; default: the model's own (models/model-spec.ts). */
  spec?: PermutationSpecJson;
  specLabel?: string;
  probe?: ProbeInputs;
  /** A row of the corrections table applied at every α of a third curve, with its data. */
  correction?: { readonly name: CorrectionName; readonly data: DataRef<CalibrationData>; readonly opts?: CorrectionOptions };
  /** How data paths are read (named inputs, dims, input and label names). */
  feed?: Omit<FeedOptions, 'limit'>;
  /** Samples of the test data, and of the alignment / correction data. */
  testLimit?: number;
  statsLimit?: number;
  seed?: number;
  /** Lines to show (what starts) and the evaluation's progress. */
  onProgress?: (e: ProgressEvent | { readonly message: string }) => void;
}

export interface InterpolationStudy {
  task: EvalTask;
  /** Test samples evaluated at every α. */
  samples: number;
  curves: InterpolationCurve[];
  /** How B was aligned (null for 'none'). */
  align: { method: MatchingMethodName; objective_before: number; objective_after: number; sweeps: number; seconds: number; verify_max_rel: number } | null;
  correction: { name: CorrectionName; samples: number | undefined } | null;
}

/**
 * Loss and accuracy along (1−α)·A + α·B: naive, with B aligned by `method`, and with `correction` (see curveSpecs).
 * Both models must run (a graph each); everything is checked before the first data pass.
 * @throws BasinError graph_required (a weights-only model), invalid_argument (unknown method or correction, a
 *   method without data, a correction the graph cannot take), the spec's, the data readers' and verify_failed.
 */
export async function interpolationStudy(a: LoadedModel, b: LoadedModel, opts: InterpolationStudyOptions): Promise<InterpolationStudy> {
  requireGraph(a, 'interpolate');
  requireGraph(b, 'interpolate');
  const methodName = opts.method ?? 'weight';
  const method = methodName === 'none' ? undefined : matchingMethod(methodName);
  const fix = opts.correction ? correction(opts.correction.name) : undefined;
  fix?.check(a.model, a.source.path);
  // the correction's data doubles as the alignment's (a path, or a Dataset / FeedSource both readers take)
  const alignRef = opts.alignData ?? (opts.correction?.data as DataRef<ActivationData> | undefined);
  if (method?.readsActivations && alignRef === undefined) {
    throw new BasinError('invalid_argument', `--align ${methodName} needs data: --align-data TRAIN (or --repair/--reset-bn TRAIN)`, { option: '--align', found: methodName });
  }
  const feed = { ...opts.feed, limit: opts.statsLimit };
  const { task, data: test } =
    typeof opts.test === 'string' ? await openEvalData(opts.test, a.model, { ...opts.feed, limit: opts.testLimit, task: opts.task }) : opts.test;
  const fixData = opts.correction ? await openDataRef(opts.correction.data, a.model, feed) : undefined;
  let aligned: OnnxModel | null = null;
  let align: InterpolationStudy['align'] = null;
  if (method) {
    opts.onProgress?.({ message: `aligning B to A (${methodName} matching)…` });
    const data = method.readsActivations ? (opts.alignData === undefined && fixData ? (fixData as ActivationData) : await openDataRef(alignRef!, a.model, feed)) : undefined;
    const r = await alignOnnxModels(a.model, b.model, specSourceOf(a, { spec: opts.spec, specLabel: opts.specLabel, probe: opts.probe }), {
      method: methodName,
      data,
      limit: opts.statsLimit,
      seed: opts.seed,
      specLabel: opts.specLabel,
    });
    aligned = r.aligned;
    align = { method: methodName as MatchingMethodName, objective_before: r.match.objectiveBefore, objective_after: r.match.objectiveAfter, sweeps: r.match.sweeps.length, seconds: r.match.seconds, verify_max_rel: r.verify.maxRel };
    opts.onProgress?.({ message: `aligned ${r.match.perms.size} permutation group(s) in ${r.match.seconds < 1 ? `${(r.match.seconds * 1000).toFixed(0)} ms` : `${r.match.seconds.toFixed(2)} s`}; aligned B verified (relative difference ${r.verify.maxRel.toExponential(1)})` });
  }
  const fixCurve = opts.correction && fixData ? { name: opts.correction.name, data: fixData, opts: opts.correction.opts } : null;
  const curves = await interpolationCurves(curveSpecs(a.model, b.model, aligned, `${methodName} matching`, fixCurve), test, {
    alphas: opts.alphas,
    task,
    onProgress: opts.onProgress,
  });
  const size = fixData && typeof (fixData as { size?: unknown }).size === 'number' ? (fixData as { size: number }).size : undefined;
  return { task, samples: test.size, curves, align, correction: opts.correction ? { name: opts.correction.name, samples: size } : null };
}
