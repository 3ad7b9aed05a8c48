/**
 * Prove two models compute the same function by running them on the same inputs. `align` and `permute` call it
 * on their output before writing it; `basin verify` exposes it. The comparison itself lives in compare.ts (outputs,
 * permutation points and hidden values, each against a tolerance derived from float rounding: tolerance.ts).
 */

/**
 * @deprecated the old fixed relative threshold; equivalence now uses a tolerance derived from float rounding per
 * value (src/verify/tolerance.ts) and this constant decides nothing. Kept so that reports and callers still build.
 */
export const VERIFY_RTOL = 1e-4;

/** Random inputs live with the one data feed (data/feed.ts); re-exported for existing importers. */
export { randomFeeds } from '../data/feed.js';

export {
  compareModels,
  assertEquivalent,
  checkHasOutputs,
  describeDiff,
  verifySummary,
  type CompareOptions,
  type ComparePermutation,
  type ValueDiff,
  type ValueKind,
  type OutputDiff,
  type VerifyResult,
} from './compare.js';
