/**
 * The one function that permutes a model's weights: a spec and an assignment applied to every spec tensor, raw
 * bytes gathered in each tensor's stored dtype (exact for every dtype, F16 and BF16 included). Align, merge,
 * permute and the graph tracer's invariance checks all permute through it.
 */
import { DTYPES } from '../dtype.js';
import type { OnnxModel } from '../onnx/model.js';
import { permuteTensor, randomAssignment } from './apply.js';
import { PermutationSpec, type Assignment } from './spec.js';
import type { PermutationSpecJson } from './types.js';

/** Integer dtypes of quantized weights, which a spec may permute like float ones (bit-exactly). */
export const QUANT_DTYPES: ReadonlySet<string> = new Set(['I8', 'U8', 'I16', 'U16', 'I32']);

/** Each weight's shape, by name (what PermutationSpec.fromJson checks a spec against): float and quantized integer tensors. */
export function weightShapes(model: OnnxModel): Map<string, readonly number[]> {
  const floats = model.weights();
  const have = new Set(floats);
  const quant = model.constants().filter((n) => !have.has(n) && quantized(model, n));
  return new Map([...floats, ...quant].map((n) => [n, model.weightInfo(n).shape]));
}

function quantized(model: OnnxModel, name: string): boolean {
  try {
    return QUANT_DTYPES.has(model.weightInfo(name).dtype);
  } catch {
    return false; // a dtype basin does not read (string, int4): never permuted
  }
}

/**
 * A copy of `model` with `perms` applied to every tensor of `spec`: axis a of tensor t is gathered by the
 * permutation spec.axesToPerm(t)[a] names (out[..., i, ...] = in[..., perm[i], ...]). The source is not changed.
 * Exact: stored bytes are moved, never converted.
 * @throws BasinError spec_invalid / shape_mismatch from permuteTensor when the assignment does not fit the spec
 */
export function permuteModel(model: OnnxModel, spec: PermutationSpec, perms: Assignment): OnnxModel {
  const out = model.clone();
  for (const name of spec.tensors()) {
    const info = model.weightInfo(name);
    const raw = model.getRaw(name);
    const moved = permuteTensor(spec, perms, name, { shape: info.shape, data: raw }, { elementBytes: DTYPES[info.dtype].bytes });
    // no axis of it permuted (a frozen tensor the spec lists): left as it is, not an edit (a 2 GiB table stays in
    // its data file); else the gathered copy is handed over without another copy
    if (moved !== raw) out.setRaw(name, moved, { owned: true });
  }
  return out;
}

/**
 * Fraction (0 … 1) of weight elements (float and quantized integer) whose value differs between two models with the
 * same weights. Reads every float weight, so a NaN is BasinError non_finite naming the tensor. `touched`: the only
 * tensors that may differ (a model permuted from `before`); the others are read once, from `before`, and count as
 * unchanged (a frozen 2 GiB table is not read twice).
 */
export function changedFraction(before: OnnxModel, after: OnnxModel, touched?: ReadonlySet<string>): number {
  let changed = 0;
  let total = 0;
  for (const name of weightShapes(before).keys()) {
    const dtype = DTYPES[before.weightInfo(name).dtype];
    if (touched && !touched.has(name)) {
      const n = dtype.isFloat ? before.getFloat32(name).data.length : before.getRaw(name).length / dtype.bytes;
      total += n;
      continue;
    }
    if (dtype.isFloat) {
      const x = before.getFloat32(name).data;
      const y = after.getFloat32(name).data;
      total += x.length;
      for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) changed++;
      continue;
    }
    const [x, y] = [before.getRaw(name), after.getRaw(name)];
    const w = dtype.bytes;
    total += x.length / w;
    for (let i = 0; i < x.length; i += w) {
      for (let k = 0; k < w; k++) {
        if (x[i + k] !== y[i + k]) {
          changed++;
          break;
        }
      }
    }
  }
  return total ? changed / total : 0;
}

/** A randomly permuted copy of a model, with what was applied. */
export interface PermutedModel {
  model: OnnxModel;
  spec: PermutationSpec;
  assignment: Assignment;
  /** Fraction of weight elements (float and quantized integer) whose value changed. */
  changedFraction: number;
}

/**
 * A copy of `model` with every axis of `json` permuted by a random assignment drawn from `seed` (heads ties kept;
 * the same seed gives the same assignment). Nothing is run: check the copy with checkInvariance or compareModels.
 * @throws BasinError spec_invalid when `json` does not fit the model's weights
 */
export function permuteRandomly(model: OnnxModel, json: PermutationSpecJson, seed: number): PermutedModel {
  const spec = PermutationSpec.fromJson(json, weightShapes(model), 'inferred');
  const assignment = randomAssignment(spec, seed);
  const out = permuteModel(model, spec, assignment);
  return { model: out, spec, assignment, changedFraction: changedFraction(model, out) };
}
