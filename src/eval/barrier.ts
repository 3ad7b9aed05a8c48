/**
 * The loss barrier of a linear interpolation path between two models, and the checks its inputs share with the
 * chart that draws it (src/report/plot.ts).
 */
import { BasinError } from '../errors.js';

/** Where a loss curve rises furthest above its chord. */
export interface Barrier {
  /** max over the points of loss(α) − chord(α); 0 when the curve never rises above its chord. */
  barrier: number;
  /** The α of that maximum (the first one, on ties). */
  alpha: number;
  /** Its index in `alphas`. */
  index: number;
}

/**
 * The loss barrier of one interpolation curve (Frankle et al. 2020, "Linear Mode Connectivity and the Lottery
 * Ticket Hypothesis"; Ainsworth et al. 2023, "Git Re-Basin", §2): the loss at the worst interior α minus the
 * linear interpolation of the end losses, i.e. the largest gap loss(α) − chord(α), where the chord is the straight
 * line through the first and the last point, (α₀, loss₀) and (α₁, loss₁), evaluated at α. With α₀ = 0, α₁ = 1 that
 * is loss(α) − ((1 − α)·loss(0) + α·loss(1)). The end points lie on the chord, so the barrier is never below 0.
 *
 * Units: those of `loss` (nats per sample for classification, nats/token for language models). Pass −accuracy
 * for an accuracy barrier.
 * @param alphas the interpolation coefficients, strictly increasing (usually 0 … 1)
 * @param loss one value per α
 * @throws BasinError invalid_argument for fewer than two points, unequal lengths, non-finite values or α not
 *   strictly increasing (naming the index at fault)
 */
export function barrierOf(alphas: readonly number[], loss: readonly number[]): Barrier {
  checkAlphas(alphas, 'alphas');
  checkSeries(loss, alphas.length, 'loss', {});
  const n = alphas.length;
  const a0 = alphas[0]!;
  const a1 = alphas[n - 1]!;
  const l0 = loss[0]!;
  const l1 = loss[n - 1]!;
  let best: Barrier = { barrier: 0, alpha: a0, index: 0 };
  for (let i = 0; i < n; i++) {
    const t = (alphas[i]! - a0) / (a1 - a0);
    const gap = loss[i]! - ((1 - t) * l0 + t * l1);
    if (gap > best.barrier) best = { barrier: gap, alpha: alphas[i]!, index: i };
  }
  return best;
}

function bad(message: string, details: Record<string, unknown> = {}): BasinError {
  return new BasinError('invalid_argument', message, details);
}

/** @throws BasinError invalid_argument unless `alphas` is ≥ 2 finite, strictly increasing numbers. */
export function checkAlphas(alphas: readonly number[], what: string): void {
  if (!Array.isArray(alphas)) throw bad(`${what} must be an array of numbers`, { found: typeof alphas });
  if (alphas.length < 2) {
    throw bad(`${what} needs at least 2 points (the two end points), found ${alphas.length}`, { expected: '>= 2', found: alphas.length });
  }
  for (let i = 0; i < alphas.length; i++) {
    const a = alphas[i];
    if (typeof a !== 'number' || !Number.isFinite(a)) {
      throw bad(`${what}[${i}] is ${String(a)}; every α must be a finite number`, { index: i, found: a });
    }
    if (i > 0 && !(a > alphas[i - 1]!)) {
      throw bad(`${what} must be strictly increasing, but ${what}[${i}] = ${a} follows ${alphas[i - 1]}`, {
        index: i,
        found: [alphas[i - 1], a],
      });
    }
  }
}

/** @throws BasinError invalid_argument unless `values` is `n` finite numbers (within `range` when given). */
export function checkSeries(
  values: readonly number[],
  n: number,
  what: string,
  details: Record<string, unknown>,
  range?: [number, number, string],
): void {
  if (!Array.isArray(values)) throw bad(`${what} must be an array of numbers`, { ...details, found: typeof values });
  if (values.length !== n) {
    throw bad(`${what} has ${values.length} values but there are ${n} α points; give one value per α`, {
      ...details,
      expected: n,
      found: values.length,
    });
  }
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw bad(`${what}[${i}] is ${String(v)}; a curve needs finite values (a diverged model? drop that point)`, {
        ...details,
        index: i,
        found: v,
      });
    }
    if (range && (v < range[0] || v > range[1])) {
      throw bad(`${what}[${i}] = ${v} is outside [${range[0]}, ${range[1]}]; ${range[2]}`, { ...details, index: i, found: v });
    }
  }
}
