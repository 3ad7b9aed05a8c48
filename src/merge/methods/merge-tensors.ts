/**
 * Apply a merge method to whole models, one tensor at a time: for each float weight (ONNX initializers and
 * Constant-node tensors, a state_dict's float tensors) the models' (and the base's) values are read as float64,
 * merged by the method's row, and written once into a copy of model 0, rounded to the stored dtype (F16/BF16/F32
 * round once; F64 stays exact). Only one merged tensor and its inputs are in flight at a time.
 *
 * What is not merged by the method:
 *   - non-float constants (shapes, axes, integer buffers): must be identical in every model (models_mismatch
 *     otherwise) and are kept;
 *   - BatchNorm running statistics (inputs 3 and 4 of a BatchNormalization node, or tensors named
 *     `…running_mean`, `…running_var`, `…num_batches_tracked`) under a task-vector method: the plain mean of the
 *     models. A task vector of a variance can make it negative, and trimming or electing signs of statistics
 *     means nothing; `--reset-bn TRAIN` recomputes them on data.
 * DARE's keep masks: model k's mask of tensor `name` is drawn from a PRNG seeded by (seed, name, k), so the
 * result does not depend on the order tensors are visited in.
 */
import { BasinError } from '../../errors.js';
import type { OnnxModel } from '../../onnx/model.js';
import { seededRandom } from '../../spec/apply.js';
import { checkMergeable } from '../interpolate.js';
import { readF64, writeF64 } from '../weights.js';
import type { MergeMethod, ResolvedMergeOptions } from './method.js';

export interface MergeTensorsResult {
  merged: OnnxModel;
  /** Tensors merged as statistics (the models' mean), not by the method. */
  statistics: string[];
}

/** FNV-1a of a string, for per-tensor seeds. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h >>> 0;
}

/**
 * DARE's keep mask of model `k` for tensor `name`: entry i kept when the (seed, name, k) PRNG's i-th draw is below
 * `density`.
 */
export function seededKeepMask(seed: number, name: string, k: number, density: number, size: number): Uint8Array {
  const random = seededRandom((fnv1a(name) ^ Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(k + 1, 0x85ebca6b)) >>> 0);
  const keep = new Uint8Array(size);
  for (let i = 0; i < size; i++) keep[i] = random() < density ? 1 : 0;
  return keep;
}

const STAT_SUFFIXES = ['running_mean', 'running_var', 'num_batches_tracked'];

/** Whether a tensor's name marks it a BatchNorm statistic (`…running_mean`, `…running_var`, `…num_batches_tracked`). */
export function isStatisticName(name: string): boolean {
  return STAT_SUFFIXES.some((s) => name.endsWith(s));
}

/** BatchNorm statistics among `model`'s weights (see the file comment). */
export function statisticTensors(model: OnnxModel): Set<string> {
  const out = new Set<string>();
  const floats = new Set(model.weights());
  for (const n of model.proto.graph?.node ?? []) {
    if (n.opType !== 'BatchNormalization' || (n.domain && n.domain !== 'ai.onnx')) continue;
    for (const i of [3, 4]) {
      const name = n.input?.[i];
      if (name && floats.has(name)) out.add(name);
    }
  }
  for (const name of floats) if (isStatisticName(name)) out.add(name);
  return out;
}

/**
 * Merge `models` (aligned already, one architecture) with `method` and its resolved options; `base` for
 * task-vector methods.
 * @throws BasinError models_mismatch naming the tensor and files (a weight missing, another shape or dtype, a
 *   non-float constant that differs), invalid_argument (a base missing or not wanted, a model count the method
 *   does not take)
 */
export function mergeTensors(models: readonly OnnxModel[], base: OnnxModel | undefined, method: MergeMethod, opts: ResolvedMergeOptions): MergeTensorsResult {
  checkModels(models, base, method);
  const first = models[0]!;
  const stats = method.needsBase ? statisticTensors(first) : new Set<string>();
  const out = first.clone();
  const statistics: string[] = [];
  for (const name of first.weights()) {
    const isStat = stats.has(name);
    if (isStat) statistics.push(name);
    const merged = mergeOneTensor(
      models.map((m) => readF64(m, name)),
      base ? readF64(base, name) : undefined,
      method,
      opts,
      { name, shape: first.weightInfo(name).shape, statistic: isStat },
    );
    writeF64(out, name, merged);
  }
  return { merged: out, statistics };
}

/**
 * One merged tensor: a BatchNorm statistic (`ctx.statistic`, task-vector methods) as the models' plain mean, any
 * other tensor by the method's row, DARE's masks seeded by (seed, name, model). `inputs`: the aligned models'
 * values as float64, one flat array each; the caller rounds the result once into the stored dtype. Shared by the
 * in-memory merge (mergeTensors) and the streaming one (merge/merge-checkpoints.ts).
 */
export function mergeOneTensor(
  inputs: readonly Float64Array[],
  base: Float64Array | undefined,
  method: MergeMethod,
  opts: ResolvedMergeOptions,
  ctx: { readonly name: string; readonly shape: readonly number[]; readonly statistic: boolean },
): Float64Array {
  if (ctx.statistic) {
    const merged = new Float64Array(inputs[0]!.length);
    for (const x of inputs) for (let i = 0; i < x.length; i++) merged[i] = merged[i]! + x[i]! / inputs.length;
    return merged;
  }
  const seed = opts.seed ?? 0;
  return method.tensor(inputs, base, opts, {
    name: ctx.name,
    shape: ctx.shape,
    keepMask: (k, density, size) => seededKeepMask(seed, ctx.name, k, density, size),
  });
}

/**
 * The checks of mergeTensors, cheap (shapes, dtypes, constants), for callers that must refuse bad input before
 * aligning: every model and the base share model 0's weights.
 */
export function checkModels(models: readonly OnnxModel[], base: OnnxModel | undefined, method: MergeMethod): void {
  if (method.needsBase && !base) throw new BasinError('invalid_argument', `--merge ${method.name} needs --base BASE: the model the others were fine-tuned from (task vectors are θᵢ − θ_base)`, { option: '--base', found: method.name });
  if (!method.needsBase && base) throw new BasinError('invalid_argument', `--merge ${method.name} does not use a base model; --base is for task-arithmetic, ties, dare-linear and dare-ties`, { option: '--base', found: method.name });
  const { min, max } = method.models;
  if (models.length < min || (max !== undefined && models.length > max)) {
    throw new BasinError('invalid_argument', `--merge ${method.name} takes ${max === min ? `exactly ${min}` : max === undefined ? `at least ${min}` : `${min} to ${max}`} model(s)${method.needsBase ? ' besides the base' : ''}, got ${models.length}`, { option: '--merge', expected: max ?? min, found: models.length });
  }
  const ref = base ?? models[0]!;
  const refName = base ? 'base' : 'model 1';
  models.forEach((m, k) => {
    if (m !== ref) checkMergeable(ref, m, { base: refName, other: `model ${k + 1}` });
  });
}
