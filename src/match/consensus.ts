/**
 * What every matching method offers MergeMany (Git Re-Basin, Algorithm 3): match one model against the weighted
 * mean of the others, each aligned by its current permutations, by the method's own objective. MergeMany calls
 * `start` once, then `step` for every model in turn until a round changes nothing; it never looks at the method.
 */
import { BasinError, q } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import type { OnnxModel } from '../onnx/model.js';
import type { Assignment, PermutationSpec } from '../spec/spec.js';
import { identityAssignment, permuteTensor } from '../spec/apply.js';
import { weightMatching } from './weight-matching.js';
import { matchingTensor } from './dequantized.js';

/** A model as matching methods see it: its spec tensors, and a runnable graph when it has one. */
export interface MatchModel {
  /** The spec's tensors, float32, keyed by the spec's names (torch names for a state_dict). */
  tensors: ReadonlyMap<string, Tensor>;
  /** A graph computing the model with these weights (its ONNX file, a borrowed export, or the MLP basin builds). */
  graph?: OnnxModel;
  /** How messages name the model (its path). */
  label?: string;
}

export interface ConsensusMatcher {
  /** Starting permutations, one per model (model 0's is the identity). */
  start(): Promise<Assignment[]>;
  /**
   * Permutations of model k that best match the mean of the other models (each aligned by `perms`), weighted by
   * `weights` (one per model, model k's ignored, the others' renormalized). `perms[k]` is the starting point.
   */
  step(k: number, perms: readonly Assignment[], weights: readonly number[], seed: number): Promise<Assignment>;
  /** The method's objective for a set of permutations (higher is better), reported per MergeMany round. */
  objective(perms: readonly Assignment[], weights: readonly number[]): number;
  /** What was done besides the plain method (fallbacks), for reports. */
  readonly notes: string[];
}

/** The spec tensors of MatchModel from a graph whose initializers carry the spec's names (integer ones dequantized, dequantized.ts). */
export function matchModelOf(spec: PermutationSpec, graph: OnnxModel): MatchModel {
  return { tensors: new Map(spec.tensors().map((t) => [t, matchingTensor(graph, t)])), graph, label: graph.path };
}

/** Weights c_j of the other models in model k's target (Σ c_j = 1; equal when the others weigh nothing). */
export function otherWeights(k: number, weights: readonly number[]): number[] {
  const rest = 1 - weights[k]!;
  const n = weights.length;
  return weights.map((w, j) => (j === k ? 0 : rest > 0 ? w / rest : 1 / (n - 1)));
}

/** Σ_j c_j · (model j's spec tensors aligned by perms[j]), in float64 then rounded to float32. */
export function alignedMean(spec: PermutationSpec, models: readonly MatchModel[], perms: readonly Assignment[], c: readonly number[]): Map<string, Tensor> {
  const target = new Map<string, Tensor>();
  for (const t of spec.tensors()) {
    const first = tensorOf(models[0]!, t, 0);
    const xs: Float32Array[] = [];
    const cs: number[] = [];
    models.forEach((m, j) => {
      if (!(c[j]! > 0)) return;
      xs.push(permuteTensor(spec, perms[j]!, t, tensorOf(m, t, j)));
      cs.push(c[j]!);
    });
    target.set(t, new Tensor(first.shape, weightedSum(first.size, xs, cs)));
  }
  return target;
}

/** Elements summed in float64 at a time by weightedSum. */
const SUM_CHUNK = 1 << 16;

/**
 * Σ_j cs[j]·xs[j] per element, in float64 in the order of `xs` starting from +0, rounded once to float32; summed a
 * chunk at a time, so no float64 copy of the whole tensor is made (a 2 GiB table's took 4 GiB).
 */
function weightedSum(size: number, xs: readonly Float32Array[], cs: readonly number[]): Float32Array {
  const out = new Float32Array(size);
  const acc = new Float64Array(Math.min(SUM_CHUNK, size));
  for (let from = 0; from < size; from += SUM_CHUNK) {
    const n = Math.min(SUM_CHUNK, size - from);
    acc.fill(0, 0, n);
    for (let j = 0; j < xs.length; j++) addScaled(acc, xs[j]!, cs[j]!, from, n);
    for (let e = 0; e < n; e++) out[from + e] = acc[e]!;
  }
  return out;
}

/** acc[e] += c·x[from + e] for e < n. */
function addScaled(acc: Float64Array, x: Float32Array, c: number, from: number, n: number): void {
  for (let e = 0; e < n; e++) acc[e] = acc[e]! + c * x[from + e]!;
}

export function tensorOf(m: MatchModel, t: string, k: number): Tensor {
  const x = m.tensors.get(t);
  if (!x) throw new BasinError('invalid_argument', `model ${k}${m.label ? ` (${q(m.label)})` : ''} lacks spec tensor ${q(t)}`, { tensor: t, index: k });
  return x;
}

/**
 * Weight matching's consensus: model k is weight-matched against the weighted mean of the others' aligned weights,
 * starting from its current permutations; everything starts from the identity. Objective: Σ over model pairs
 * i < j of <aligned θ_i, aligned θ_j> over the spec's tensors (unweighted; a step never lowers it).
 */
export function weightConsensus(spec: PermutationSpec, models: readonly MatchModel[]): ConsensusMatcher {
  const names = spec.tensors();
  return {
    notes: [],
    start: async () => models.map(() => identityAssignment(spec)),
    step: async (k, perms, weights, seed) => {
      const target = alignedMean(spec, models, perms, otherWeights(k, weights));
      return (await weightMatching(spec, target, models[k]!.tensors, { init: perms[k], seed })).perms;
    },
    objective: (perms) => {
      // Σ_{i<j} <x_i, x_j> = (||Σ x_i||² − Σ ||x_i||²) / 2
      let total = 0;
      for (const t of names) {
        const xs = models.map((m, k) => permuteTensor(spec, perms[k]!, t, tensorOf(m, t, k)));
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
    },
  };
}
