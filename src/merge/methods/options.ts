/**
 * Checks of merge-method options shared by the rows of the merge-method table: each throws BasinError
 * invalid_argument naming the option and the value, before any tensor is read.
 */
import { BasinError } from '../../errors.js';
import type { MergeMethodName, MergeMethodOptions, MergeOptionName } from './method.js';

const FLAG: Record<MergeOptionName, string> = { weights: '--weights', normalize: '--normalize', t: '--t', lambda: '--lambda', density: '--density', seed: '--seed' };

/** The CLI flag of an option. */
export const optionFlag = (o: MergeOptionName): string => FLAG[o];

/** Refuse options the method does not read (a `--density` given to linear would be silently ignored otherwise). */
export function checkUsed(method: MergeMethodName, opts: MergeMethodOptions, used: readonly MergeOptionName[]): void {
  for (const k of Object.keys(opts) as MergeOptionName[]) {
    if (opts[k] === undefined || used.includes(k)) continue;
    throw new BasinError('invalid_argument', `${FLAG[k]} is not an option of --merge ${method} (it reads ${used.length ? used.map((u) => FLAG[u]).join(', ') : 'no options'})`, { option: FLAG[k], found: method });
  }
}

/**
 * One weight per model, finite (default 1 each). `nonNegative`: refuse negative weights and an all-zero list
 * (averages); task-vector methods accept negative weights (a negated task vector removes a skill).
 */
export function modelWeights(w: readonly number[] | undefined, models: number, nonNegative: boolean): number[] {
  if (w === undefined) return Array.from({ length: models }, () => 1);
  if (w.length !== models) throw new BasinError('invalid_argument', `--weights has ${w.length} value(s) for ${models} models; give one weight per model (the base takes none)`, { option: '--weights', expected: models, found: w.length });
  w.forEach((v, i) => {
    if (!Number.isFinite(v)) throw new BasinError('invalid_argument', `--weights: weight ${i + 1} is ${v}; weights must be finite`, { option: '--weights', index: i, found: v });
    if (nonNegative && v < 0) throw new BasinError('invalid_argument', `--weights: weight ${i + 1} is ${v}; this method's weights must be non-negative`, { option: '--weights', index: i, found: v });
  });
  if (nonNegative && w.every((v) => v === 0)) throw new BasinError('invalid_argument', '--weights are all 0; give at least one positive weight', { option: '--weights', found: [...w] });
  return [...w];
}

/** TIES / DARE density: the fraction kept, in (0, 1] (default `fallback`). */
export function density(d: number | undefined, fallback: number): number {
  const v = d ?? fallback;
  if (!(Number.isFinite(v) && v > 0 && v <= 1)) throw new BasinError('invalid_argument', `--density must be in (0, 1] (the fraction of each task vector kept), got ${v}`, { option: '--density', found: v });
  return v;
}

/** A finite number option (λ). */
export function finite(name: MergeOptionName, v: number | undefined, fallback: number): number {
  const x = v ?? fallback;
  if (!Number.isFinite(x)) throw new BasinError('invalid_argument', `${FLAG[name]} must be a finite number, got ${x}`, { option: FLAG[name], found: x });
  return x;
}

/** DARE's seed: an integer in [0, 2³²). */
export function seed(s: number | undefined): number {
  const v = s ?? 0;
  if (!(Number.isInteger(v) && v >= 0 && v < 2 ** 32)) throw new BasinError('invalid_argument', `--seed must be an integer in [0, 2^32), got ${v}`, { option: '--seed', found: v });
  return v;
}
