/**
 * Matching methods, one row each. A method takes a validated spec and the two models' tensors and returns the
 * permutations that make B match A. Activation matching (which needs data and a runnable graph) registers here too.
 */
import type { Tensor } from '../tensor/tensor.js';
import type { PermutationSpec } from '../spec/spec.js';
import { weightMatching, type MatchingResult, type SweepInfo } from './weight-matching.js';

export interface MatchOptions {
  /** Starting point of weight matching: 'greedy' (default), 'identity' (the seeds'), or 'best' of both. */
  init?: 'best' | 'greedy' | 'identity';
  seed?: number;
  maxIter?: number;
  tol?: number;
  onSweep?: (info: SweepInfo) => void;
}

export interface MatchingMethod {
  description: string;
  match(spec: PermutationSpec, a: ReadonlyMap<string, Tensor>, b: ReadonlyMap<string, Tensor>, opts: MatchOptions): Promise<MatchingResult>;
}

export const MATCHING_METHODS = {
  weight: {
    description: 'Git Re-Basin weight matching: coordinate descent over permutations, one LAP per step',
    match: (spec, a, b, opts) => weightMatching(spec, a, b, opts),
  },
} satisfies Record<string, MatchingMethod>;

export type MatchingMethodName = keyof typeof MATCHING_METHODS;
