/**
 * Check an inferred spec by running: permute a model's weights with random permutations (respecting heads ties)
 * and compare its outputs with the original's. This is the ground truth the tracer's rules are tested against.
 */
import type { OnnxModel } from '../onnx/model.js';
import type { Feed } from '../onnx/session.js';
import { randomAssignment } from '../spec/apply.js';
import { PermutationSpec, type Assignment } from '../spec/spec.js';
import type { PermutationSpecJson } from '../spec/types.js';
import { changedFraction, permuteModel as permuteWeights, weightShapes } from '../align/align-onnx.js';
import { compareModels } from '../verify/verify.js';

export interface PermutedModel {
  model: OnnxModel;
  assignment: Assignment;
  /** Fraction of float weight elements whose value changed. */
  changedFraction: number;
}

/** A copy of `model` with every spec axis permuted by a random assignment drawn from `seed`. */
export function permuteModel(model: OnnxModel, json: PermutationSpecJson, seed: number): PermutedModel {
  const spec = PermutationSpec.fromJson(json, weightShapes(model), 'inferred');
  const assignment = randomAssignment(spec, seed);
  const out = permuteWeights(model, spec, assignment);
  return { model: out, assignment, changedFraction: changedFraction(model, out) };
}

export interface InvarianceReport {
  /** max |permuted - original| / max |original| over every output. */
  maxRelError: number;
  changedFraction: number;
}

/** Permute with a random assignment and run both models on `feeds`: how far the outputs moved. */
export async function checkInvariance(
  model: OnnxModel,
  json: PermutationSpecJson,
  feeds: Readonly<Record<string, Feed>>,
  { seed = 1 }: { seed?: number } = {},
): Promise<InvarianceReport> {
  const { model: permuted, changedFraction } = permuteModel(model, json, seed);
  const r = await compareModels(model, permuted, [feeds]);
  return { maxRelError: r.maxRel, changedFraction };
}
