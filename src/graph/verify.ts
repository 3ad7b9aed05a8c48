/**
 * Check an inferred spec by running: permute a model's weights with random permutations (respecting heads ties)
 * and compare its outputs with the original's. This is the ground truth the tracer's rules are tested against.
 */
import { BasinError } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import { createSession, type Feed } from '../onnx/session.js';
import { applyAssignment, randomAssignment } from '../spec/apply.js';
import { PermutationSpec, type Assignment } from '../spec/spec.js';
import type { PermutationSpecJson } from '../spec/types.js';
import { Tensor } from '../tensor/tensor.js';

export interface PermutedModel {
  model: OnnxModel;
  assignment: Assignment;
  /** Fraction of float weight elements whose value changed. */
  changedFraction: number;
}

/** A copy of `model` with every spec axis permuted by a random assignment drawn from `seed`. */
export function permuteModel(model: OnnxModel, json: PermutationSpecJson, seed: number): PermutedModel {
  const shapes = new Map(model.weights().map((n) => [n, model.weightInfo(n).shape] as const));
  const spec = PermutationSpec.fromJson(json, shapes, 'inferred');
  const assignment = randomAssignment(spec, seed);
  const tensors = new Map(spec.tensors().map((n) => [n, { shape: shapes.get(n)!, data: model.getFloat32(n).data }] as const));
  const permuted = applyAssignment(spec, assignment, tensors);
  const out = model.clone();
  let changed = 0;
  let total = 0;
  for (const name of model.weights()) {
    const before = tensors.get(name)?.data ?? model.getFloat32(name).data;
    const after = permuted.get(name)?.data ?? before;
    total += before.length;
    for (let i = 0; i < before.length; i++) if (before[i] !== after[i]) changed++;
    if (permuted.has(name)) out.setFloat32(name, new Tensor(shapes.get(name)!, after as Float32Array));
  }
  return { model: out, assignment, changedFraction: total ? changed / total : 0 };
}

export interface InvarianceReport {
  /** max |permuted - original| / max |original| over every output. */
  maxRelError: number;
  changedFraction: number;
}

/** Permute, run both models on `feeds`, and measure how far the outputs moved. */
export async function checkInvariance(
  model: OnnxModel,
  json: PermutationSpecJson,
  feeds: Readonly<Record<string, Feed>>,
  { seed = 1 }: { seed?: number } = {},
): Promise<InvarianceReport> {
  const { model: permuted, changedFraction } = permuteModel(model, json, seed);
  const a = await createSession(model);
  const b = await createSession(permuted);
  try {
    const ya = await a.run(feeds);
    const yb = await b.run(feeds);
    let maxRelError = 0;
    for (const [name, t] of Object.entries(ya)) {
      const u = yb[name];
      if (!u || u.data.length !== t.data.length) throw new BasinError('verify_failed', `output '${name}' differs in shape after permuting`, { tensor: name });
      let scale = 0;
      let diff = 0;
      for (let i = 0; i < t.data.length; i++) {
        scale = Math.max(scale, Math.abs(t.data[i]!));
        diff = Math.max(diff, Math.abs(t.data[i]! - u.data[i]!));
      }
      maxRelError = Math.max(maxRelError, scale > 0 ? diff / scale : diff);
    }
    return { maxRelError, changedFraction };
  } finally {
    await a.release();
    await b.release();
  }
}
