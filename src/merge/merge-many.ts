/**
 * MergeMany (Git Re-Basin, Ainsworth et al. 2023, Algorithm 3): bring N models of one architecture into one
 * basin and average them.
 *
 * The matching method (a row of the matching-method table, looked up by name) supplies a consensus matcher: where
 * the permutations start (weight matching: the identity; activation matching: every model activation-matched to
 * model 0) and one step, model k matched against the (weighted) mean of the other models as currently aligned, by
 * the method's own objective (weights: the others' aligned weights; activations: the others' aligned activations).
 * Each round visits the models in a random order; rounds repeat until a whole round changes no permutation (or
 * `maxIter` rounds). For two models with activation matching the result is `align --method activation` then the
 * average.
 *
 * The result is unique only up to one permutation applied to every model; it is expressed in model 0's frame
 * (model 0's permutations are the identity), so merging a model with permuted copies of itself gives it back.
 * Every aligned model is checked to compute what its source computes before the (weighted) average is taken.
 */
import { BasinError, q } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import type { Assignment, PermutationSpec } from '../spec/spec.js';
import { invert, seededRandom, shuffle } from '../spec/apply.js';
import { permuteModel } from '../spec/permute-model.js';
import { verifyPermuted, type VerifyOptions } from '../verify/verify-permuted.js';
import type { ActivationData, ActivationMatchingOptions } from '../match/activation-matching.js';
import { matchingMethod } from '../match/registry.js';
import type { ConsensusMatcher } from '../match/consensus.js';
import { ON_DEMAND_KEEP_BYTES } from '../onnx/on-demand-tensors.js';
import { numel } from '../tensor/tensor.js';
import { withPointsFromGraph } from '../match/graph-points.js';
import { averageModels, checkMergeable } from './interpolate.js';

export interface MergeManyProgress {
  /** 'start': the starting permutations are found; 'match': one MergeMany step; 'round': a round ended; 'verify': a model was checked. */
  phase: 'start' | 'match' | 'round' | 'verify';
  round?: number;
  model?: number;
  /** Permutations changed in this step or round. */
  changed?: number;
  /** The round's objective (see MergeManyResult.rounds). */
  objective?: number;
}

export interface MergeManyOptions {
  /** Weight of each model in the averages (normalized; default equal). */
  weights?: readonly number[];
  /** A matching method by name (default 'weight'; see MATCHING_METHODS): its own objective drives every step. */
  method?: string;
  /** Data for methods that read activations (read once). */
  data?: ActivationData;
  /** Options of the activation matching (limit, batchSize, ...). */
  activation?: ActivationMatchingOptions;
  /** Seed of the visiting order and of the weight-matching sweeps (default 0). */
  seed?: number;
  /** Maximum number of rounds (default 100). */
  maxIter?: number;
  /** How each aligned model is checked against its source; false for weights-only models, which cannot run. */
  verify?: VerifyOptions | false;
  onProgress?: (p: MergeManyProgress) => void;
}

export interface MergeManyResult {
  merged: OnnxModel;
  /** One assignment per model, in model 0's frame (identity for model 0); apply to model k to align it. */
  perms: Assignment[];
  /**
   * The method's objective after each round. Weight matching: Σ over model pairs i < j of <aligned θ_i,
   * aligned θ_j> over the spec's tensors (unweighted; never lowered). Activation matching: Σ over models of the
   * summed correlation of its matched units with the others' aligned mean.
   */
  rounds: number[];
  /** True when the last round changed no permutation. */
  converged: boolean;
  /** What was done besides plain MergeMany (activation-matching notes). */
  notes: string[];
}

function same(x: Int32Array, y: Int32Array): boolean {
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/**
 * Model weights normalized to sum to 1 (default: equal).
 * @throws BasinError invalid_argument for a count other than `n`, a negative or non-finite weight, or a sum of 0
 */
export function normalizedWeights(n: number, weights: readonly number[] | undefined): number[] {
  const w = weights ?? new Array<number>(n).fill(1);
  if (w.length !== n) {
    throw new BasinError('invalid_argument', `mergeMany got ${n} models but ${w.length} weights; give one weight per model`, { expected: n, found: w.length });
  }
  w.forEach((v, i) => {
    if (!(Number.isFinite(v) && v >= 0)) throw new BasinError('invalid_argument', `weight ${i} is ${v}; model weights must be finite and non-negative`, { index: i, found: v });
  });
  const total = w.reduce((s, v) => s + v, 0);
  if (!(total > 0 && Number.isFinite(total))) {
    throw new BasinError('invalid_argument', `the model weights sum to ${total}; give at least one positive weight`, { found: w });
  }
  return w.map((v) => v / total);
}

/** Permutations expressed in another frame: first `p`, then the global `g` (new slice i = old slice p[g[i]]). */
function compose(spec: PermutationSpec, p: Assignment, g: Assignment): Assignment {
  const out: Assignment = new Map();
  for (const name of spec.free) {
    const pi = p.get(name)!;
    const gi = g.get(name)!;
    const c = new Int32Array(pi.length);
    for (let i = 0; i < c.length; i++) c[i] = pi[gi[i]!]!;
    out.set(name, c);
  }
  return out;
}

/** What alignMany returns: MergeMany's permutations, without the models they align. */
export interface AlignManyResult {
  /** One assignment per model, in model 0's frame (identity for model 0). */
  perms: Assignment[];
  /** The matcher's objective after each round. */
  rounds: number[];
  /** True when the last round changed no permutation. */
  converged: boolean;
  notes: string[];
}

/**
 * MergeMany's rounds (see the file comment) on `n` models through `matcher` (a matching method's consensus, over
 * in-memory tensors or tensors read from disk when used): start, then every model matched in a seeded random order
 * until a round changes nothing or `maxIter` rounds; the permutations are then expressed in model 0's frame.
 * Reads nothing itself: what it costs in time and memory is the matcher's.
 * @param opts.weights normalized model weights (one per model)
 */
export async function alignMany(
  spec: PermutationSpec,
  matcher: ConsensusMatcher,
  n: number,
  opts: { weights: readonly number[]; seed: number; maxIter: number; onProgress?: (p: MergeManyProgress) => void },
): Promise<AlignManyResult> {
  const { weights: w, seed, maxIter, onProgress } = opts;
  let perms: Assignment[] = await matcher.start();
  onProgress?.({ phase: 'start' });

  const rounds: number[] = [];
  const random = seededRandom(seed);
  let converged = false;
  for (let round = 0; round < maxIter && !converged; round++) {
    const order = shuffle(n, random);
    let changedRound = 0;
    for (const k of order) {
      const next = await matcher.step(k, perms, w, seed + round * n + k);
      let changed = 0;
      for (const name of spec.free) if (!same(next.get(name)!, perms[k]!.get(name)!)) changed++;
      if (changed > 0) perms = perms.map((p, j) => (j === k ? next : p));
      changedRound += changed;
      onProgress?.({ phase: 'match', round, model: k, changed });
    }
    rounds.push(matcher.objective(perms, w));
    converged = changedRound === 0;
    onProgress?.({ phase: 'round', round, changed: changedRound, objective: rounds[rounds.length - 1] });
  }
  // Into model 0's frame: g = inverse of model 0's permutations, applied after every model's own.
  const g: Assignment = new Map(spec.free.map((name) => [name, invert(perms[0]!.get(name)!)]));
  return { perms: perms.map((p) => compose(spec, p, g)), rounds, converged, notes: [...matcher.notes] };
}

/**
 * Float32 bytes of recent tensors each model's on-demand map keeps while matching: twice the largest tensor a
 * permutation reaches (a cost product's pair), at least ON_DEMAND_KEEP_BYTES. A tensor no permutation reaches (a
 * frozen 2 GiB table) is read again where it is used (the objectives, the exact-copy check), never kept: kept,
 * it was the model's size again per model.
 */
function mergeKeepBytes(spec: PermutationSpec, model: OnnxModel): number {
  let largest = 0;
  for (const t of spec.tensors()) if (spec.axesToPerm.get(t)!.some((p) => p !== null)) largest = Math.max(largest, 4 * numel(model.weightInfo(t).shape));
  return Math.max(ON_DEMAND_KEEP_BYTES, 2 * largest);
}

/**
 * Align `models` to one another by MergeMany with `opts.method` and average them (see the file comment).
 * @param models ONNX graphs of one architecture (for a state_dict: its graph with the state_dict's weights)
 * @param spec a spec validated against models[0] (initializer names)
 * @throws BasinError invalid_argument (fewer than 2 models, bad weights, unknown method, missing data),
 *   models_mismatch (different weights), verify_failed (an aligned model computes something else)
 */
export async function mergeMany(models: readonly OnnxModel[], spec: PermutationSpec, opts: MergeManyOptions = {}): Promise<MergeManyResult> {
  const { seed = 0, maxIter = 100, onProgress } = opts;
  const n = models.length;
  if (n < 2) throw new BasinError('invalid_argument', `mergeMany needs at least 2 models, got ${n}`, { found: n });
  const method = matchingMethod(opts.method ?? 'weight');
  if (!(Number.isSafeInteger(maxIter) && maxIter >= 1)) throw new BasinError('invalid_argument', `'maxIter' must be a positive integer, got ${maxIter}`, { found: maxIter });
  const w = normalizedWeights(n, opts.weights);
  models.forEach((m, k) => {
    if (k > 0) checkMergeable(models[0]!, m, { base: 'model 0', other: `model ${k}` });
  });
  // a spec without points (a state_dict MLP's, a user's) reads activations where the graph's own spec does
  const matchSpec = method.readsActivations ? await withPointsFromGraph(spec, models[0]!) : spec;
  const keep = mergeKeepBytes(spec, models[0]!);
  // loaded here: merge-checkpoints.ts imports this module for alignMany, and a safetensors job does not load the ONNX stack
  const { onDemandMatchModel } = await import('../align/align-onnx.js');
  const matcher = await method.consensus(
    matchSpec,
    models.map((m) => onDemandMatchModel(spec, m, keep)),
    opts.data,
    { seed, ...opts.activation },
  );
  const { perms: final, rounds, converged, notes } = await alignMany(spec, matcher, n, { weights: w, seed, maxIter, onProgress });
  const alignedModels: OnnxModel[] = [];
  for (let k = 0; k < n; k++) {
    const isIdentity = spec.free.every((name) => final[k]!.get(name)!.every((v, i) => v === i));
    if (isIdentity) {
      alignedModels.push(models[k]!);
      continue;
    }
    const m = permuteModel(models[k]!, spec, final[k]!);
    if (opts.verify !== false) {
      await verifyPermuted(models[k]!, m, `model ${k}${models[k]!.path ? ` (${q(models[k]!.path!)})` : ''} aligned by mergeMany`, opts.verify);
      onProgress?.({ phase: 'verify', model: k });
    }
    alignedModels.push(m);
  }
  const merged = averageModels(alignedModels, w);
  return { merged, perms: final, rounds, converged, notes };
}
