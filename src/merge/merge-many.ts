/**
 * MergeMany (Git Re-Basin, Ainsworth et al. 2023, Algorithm 3): bring N models of one architecture into one
 * basin and average them.
 *
 * Each round visits the models in a random order; model k is weight-matched against the (weighted) mean of the
 * other models' currently aligned weights, starting from its current permutations. Rounds repeat until a whole
 * round changes no permutation (or `maxIter` rounds). With method 'activation' every model is first
 * activation-matched to model 0 on the data, then refined by the same rounds.
 *
 * The result is unique only up to one permutation applied to every model; it is expressed in model 0's frame
 * (model 0's permutations are the identity), so merging a model with permuted copies of itself gives it back.
 * Every aligned model is checked to compute what its source computes before the (weighted) average is taken.
 */
import { BasinError, q } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import { Tensor } from '../tensor/tensor.js';
import type { Assignment, PermutationSpec } from '../spec/spec.js';
import { identityAssignment, invert, permuteTensor, seededRandom, shuffle } from '../spec/apply.js';
import { permuteModel, verifyPermuted, type VerifyOptions } from '../align/align-onnx.js';
import { weightMatching } from '../match/weight-matching.js';
import { activationMatching, type ActivationData, type ActivationMatchingOptions } from '../match/activation-matching.js';
import { averageModels, checkMergeable } from './interpolate.js';

export interface MergeManyProgress {
  /** 'activation': model `model` was activation-matched to model 0; 'match': one MergeMany step; 'round': a round ended; 'verify': a model was checked. */
  phase: 'activation' | 'match' | 'round' | 'verify';
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
  /** 'weight' (default): MergeMany from identity permutations; 'activation': start from activation matching to model 0. */
  method?: 'weight' | 'activation';
  /** Data for method 'activation' (a Dataset or a re-iterable list of feeds: it is read once per model). */
  data?: ActivationData;
  /** Options of the activation matching (limit, batchSize, ...). */
  activation?: ActivationMatchingOptions;
  /** Seed of the visiting order and of the weight-matching sweeps (default 0). */
  seed?: number;
  /** Maximum number of rounds (default 100). */
  maxIter?: number;
  /** How each aligned model is checked against its source. */
  verify?: VerifyOptions;
  onProgress?: (p: MergeManyProgress) => void;
}

export interface MergeManyResult {
  merged: OnnxModel;
  /** One assignment per model, in model 0's frame (identity for model 0); apply to model k to align it. */
  perms: Assignment[];
  /**
   * Objective after each round: Σ over model pairs i < j of <aligned θ_i, aligned θ_j> over the spec's tensors
   * (unweighted). MergeMany never lowers it.
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

function normalizedWeights(n: number, weights: readonly number[] | undefined): number[] {
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

/** True for a one-shot async iterator (a generator): it cannot be read once per model. */
function isOneShot(data: ActivationData): boolean {
  const it = (data as { [Symbol.asyncIterator]?: () => unknown })[Symbol.asyncIterator];
  if (typeof it === 'function' && it.call(data) === data) return true;
  const sit = (data as { [Symbol.iterator]?: () => unknown })[Symbol.iterator];
  return typeof sit === 'function' && sit.call(data) === data;
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

export async function mergeMany(models: readonly OnnxModel[], spec: PermutationSpec, opts: MergeManyOptions = {}): Promise<MergeManyResult> {
  const { method = 'weight', seed = 0, maxIter = 100, onProgress } = opts;
  const n = models.length;
  if (n < 2) throw new BasinError('invalid_argument', `mergeMany needs at least 2 models, got ${n}`, { found: n });
  if (method !== 'weight' && method !== 'activation') {
    throw new BasinError('invalid_argument', `unknown method ${q(String(method))} (known: 'weight', 'activation')`, { found: method });
  }
  if (!(Number.isSafeInteger(maxIter) && maxIter >= 1)) throw new BasinError('invalid_argument', `'maxIter' must be a positive integer, got ${maxIter}`, { found: maxIter });
  const w = normalizedWeights(n, opts.weights);
  models.forEach((m, k) => {
    if (k > 0) checkMergeable(models[0]!, m, { base: 'model 0', other: `model ${k}` });
  });
  const names = spec.tensors();
  const notes: string[] = [];

  const perms: Assignment[] = models.map(() => identityAssignment(spec));
  if (method === 'activation') {
    const data = opts.data;
    if (data === undefined) throw new BasinError('invalid_argument', "method 'activation' needs data: give a data set (or batches of feeds)", {});
    if (n > 2 && isOneShot(data)) {
      throw new BasinError('invalid_argument', "method 'activation' reads the data once per model: give a Dataset or an array of feeds, not a one-shot iterator", {});
    }
    for (let k = 1; k < n; k++) {
      const r = await activationMatching(spec, models[0]!, models[k]!, data, { seed, ...opts.activation });
      perms[k] = r.perms;
      for (const note of r.notes) if (!notes.includes(note)) notes.push(note);
      onProgress?.({ phase: 'activation', model: k });
    }
  }

  // Spec tensors of each model, as loaded and as currently aligned.
  const source = models.map((m) => new Map(names.map((t) => [t, m.getFloat32(t)])));
  const alignedOf = (k: number) => new Map(names.map((t) => [t, new Tensor(source[k]!.get(t)!.shape, permuteTensor(spec, perms[k]!, t, source[k]!.get(t)!))]));
  const aligned = models.map((_, k) => alignedOf(k));

  const objective = (): number => {
    // Σ_{i<j} <x_i, x_j> = (||Σ x_i||² − Σ ||x_i||²) / 2
    let total = 0;
    for (const t of names) {
      const xs = aligned.map((m) => m.get(t)!.data);
      const len = xs[0]!.length;
      for (let e = 0; e < len; e++) {
        let s = 0;
        let s2 = 0;
        for (const x of xs) {
          const v = x[e]!;
          s += v;
          s2 += v * v;
        }
        total += (s * s - s2) / 2;
      }
    }
    return total;
  };

  const rounds: number[] = [];
  const random = seededRandom(seed);
  let converged = false;
  for (let round = 0; round < maxIter && !converged; round++) {
    const order = shuffle(n, random);
    let changedRound = 0;
    for (const k of order) {
      // The weighted mean of every other model's aligned weights.
      const rest = 1 - w[k]!;
      const target = new Map<string, Tensor>();
      for (const t of names) {
        const shape = aligned[k]!.get(t)!.shape;
        const acc = new Float64Array(aligned[k]!.get(t)!.size);
        for (let j = 0; j < n; j++) {
          if (j === k) continue;
          const c = rest > 0 ? w[j]! / rest : 1 / (n - 1);
          const x = aligned[j]!.get(t)!.data;
          for (let e = 0; e < acc.length; e++) acc[e] += c * x[e]!;
        }
        target.set(t, new Tensor(shape, Float32Array.from(acc)));
      }
      const r = await weightMatching(spec, target, source[k]!, { init: perms[k], seed: seed + round * n + k });
      let changed = 0;
      for (const name of spec.free) if (!same(r.perms.get(name)!, perms[k]!.get(name)!)) changed++;
      if (changed > 0) {
        perms[k] = r.perms;
        aligned[k] = alignedOf(k);
      }
      changedRound += changed;
      onProgress?.({ phase: 'match', round, model: k, changed });
    }
    rounds.push(objective());
    converged = changedRound === 0;
    onProgress?.({ phase: 'round', round, changed: changedRound, objective: rounds[rounds.length - 1] });
  }

  // Into model 0's frame: g = inverse of model 0's permutations, applied after every model's own.
  const g: Assignment = new Map(spec.free.map((name) => [name, invert(perms[0]!.get(name)!)]));
  const final = perms.map((p) => compose(spec, p, g));
  const alignedModels: OnnxModel[] = [];
  for (let k = 0; k < n; k++) {
    const isIdentity = spec.free.every((name) => final[k]!.get(name)!.every((v, i) => v === i));
    if (isIdentity) {
      alignedModels.push(models[k]!);
      continue;
    }
    const m = permuteModel(models[k]!, spec, final[k]!);
    await verifyPermuted(models[k]!, m, `model ${k}${models[k]!.path ? ` (${q(models[k]!.path!)})` : ''} aligned by mergeMany`, opts.verify);
    onProgress?.({ phase: 'verify', model: k });
    alignedModels.push(m);
  }
  const merged = averageModels(alignedModels, w);
  return { merged, perms: final, rounds, converged, notes };
}
