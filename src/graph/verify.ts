/**
 * Check an inferred spec by running: permute a model's weights with random permutations (respecting heads ties,
 * src/spec/permute-model.ts permuteRandomly) and compare its outputs with the original's. This is the ground truth the tracer's rules are tested against.
 */
import type { OnnxModel } from '../onnx/model.js';
import type { Feed } from '../onnx/session.js';
import { permuteRandomly } from '../spec/permute-model.js';
import type { PermutationSpecJson } from '../spec/types.js';
import { compareModels, type ValueDiff } from '../verify/verify.js';

export { permuteRandomly, type PermutedModel } from '../spec/permute-model.js';

export interface InvarianceReport {
  /** max |permuted - original| / max |original| over every output. */
  maxRelError: number;
  changedFraction: number;
  /**
   * Every output, activation point (un-permuted) and hidden value within its float-rounding tolerance
   * (src/verify/compare.ts): the spec's points are checked along with its weights.
   */
  equivalent: boolean;
  /** The value furthest from its tolerance. */
  worst: ValueDiff;
}

/**
 * Permute with a random assignment and run both models on `feeds`: how far the outputs moved, and whether every
 * value (outputs, the spec's activation points un-permuted, hidden values as sorted values) kept within rounding.
 * @throws BasinError spec_invalid when `json` does not fit the weights; onnx_runtime from the runs
 */
export async function checkInvariance(
  model: OnnxModel,
  json: PermutationSpecJson,
  feeds: Readonly<Record<string, Feed>>,
  { seed = 1 }: { seed?: number } = {},
): Promise<InvarianceReport> {
  const { model: permuted, spec, assignment, changedFraction } = permuteRandomly(model, json, seed);
  const r = await compareModels(model, permuted, [feeds], { permutation: { spec, assignment } });
  return { maxRelError: r.maxRel, changedFraction, equivalent: r.equivalent, worst: r.worst };
}
