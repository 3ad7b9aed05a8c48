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
