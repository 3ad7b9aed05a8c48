/**
 * Matching methods, one row each, with one interface: two models (spec tensors, and a runnable graph when the
 * method reads activations) plus optional data → permutations that make B match A and a report; and, for
 * MergeMany, a consensus matcher that matches one model against the others by the same objective. align,
 * interpolate and merge look methods up here by name (`--method`) and never branch on them.
 */
import { BasinError, q } from '../errors.js';
import type { PermutationSpec } from '../spec/spec.js';
import { weightMatching, type MatchingResult, type SweepInfo } from './weight-matching.js';
import type { ActivationData, ActivationMatchingOptions } from './activation-matching.js';
import { weightConsensus, type ConsensusMatcher, type MatchModel } from './consensus.js';

export interface MatchOptions extends Omit<ActivationMatchingOptions, 'weights' | 'seed'> {
  /** Starting point of weight matching: 'greedy' (default), 'identity' (the seeds'), or 'best' of both. */
  init?: 'best' | 'greedy' | 'identity';
  /** Seed of the sweep order (weight matching, and activation matching's weight-matching fallback). */
  seed?: number;
  maxIter?: number;
  tol?: number;
  onSweep?: (info: SweepInfo) => void;
}

/** Permutations and the method's report: objective per sweep, and notes (fallbacks, samples) when it has them. */
export interface MethodResult extends MatchingResult {
  notes?: string[];
  /** Samples the method ran the models on (methods that read activations). */
  samples?: number;
}

export interface MatchingMethod {
  readonly description: string;
  /** Whether the method runs the models on data: then each model needs a graph, and `data` is required. */
  readonly readsActivations: boolean;
  /** Permutations of B that make it match A. */
  match(spec: PermutationSpec, a: MatchModel, b: MatchModel, data: ActivationData | undefined, opts: MatchOptions): Promise<MethodResult>;
  /** The MergeMany matcher of this method over `models` (reads the data once, when it reads any). */
  consensus(spec: PermutationSpec, models: readonly MatchModel[], data: ActivationData | undefined, opts: MatchOptions): Promise<ConsensusMatcher>;
}

function graphsOf(a: MatchModel, b: MatchModel) {
  if (!a.graph || !b.graph) {
    const which = !a.graph ? a : b;
    throw new BasinError('invalid_argument', `activation matching runs both models: ${q(which.label ?? 'a model')} has no graph (ONNX models carry theirs; a state_dict needs --arch mlp or --graph MODEL.onnx)`, {
      file: which.label,
    });
  }
  return { a: a.graph, b: b.graph };
}

/**
 * The matching-method table: each row takes two models (+ data for methods that read activations) and gives the
 * permutations of B that match A, with a report; `consensus` is its MergeMany matcher. Rows: `weight` (Git Re-Basin
 * weight matching, Ainsworth et al. 2023 Alg. 1) and `activation` (Git Re-Basin activation matching: correlations
 * of the models' activations at each permutation's points, Li et al. 2015 / Ainsworth et al. 2023 §3.1).
 */
export const MATCHING_METHODS = {
  weight: {
    description: 'Git Re-Basin weight matching: coordinate descent over permutations, one LAP per step',
    readsActivations: false,
    match: (spec, a, b, _data, opts) => weightMatching(spec, a.tensors, b.tensors, opts),
    consensus: async (spec, models) => weightConsensus(spec, models),
  },
  activation: {
    description: 'Git Re-Basin activation matching: units paired by the correlation of their activations on the data, one LAP per permutation',
    readsActivations: true,
    match: async (spec, a, b, data, opts) => {
      if (data === undefined) throw new BasinError('invalid_argument', "matching method 'activation' needs data (--data): inputs to run both models on", {});
      const g = graphsOf(a, b);
      // loaded on use: weight matching of state_dicts needs no sessions (start-up time)
      const { activationMatching } = await import('./activation-matching.js');
      return activationMatching(spec, g.a, g.b, data, { ...opts, weights: { a: a.tensors, b: b.tensors } });
    },
    consensus: async (spec, models, data, opts) => (await import('./activation-consensus.js')).activationConsensus(spec, models, data, opts),
  },
} satisfies Record<string, MatchingMethod>;

export type MatchingMethodName = keyof typeof MATCHING_METHODS;

/** The names of the matching-method table's rows, as `--method` takes them. */
export const MATCHING_METHOD_NAMES = Object.keys(MATCHING_METHODS) as MatchingMethodName[];

/** The method registered under `name`; BasinError 'invalid_argument' listing the known names otherwise. */
export function matchingMethod(name: string): MatchingMethod {
  if (!Object.hasOwn(MATCHING_METHODS, name)) {
    throw new BasinError('invalid_argument', `unknown matching method ${q(name)} (known: ${MATCHING_METHOD_NAMES.join(', ')})`, { found: name, expected: MATCHING_METHOD_NAMES });
  }
  return MATCHING_METHODS[name as MatchingMethodName];
}
