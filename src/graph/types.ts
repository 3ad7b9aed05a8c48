/** Public types of the graph tracer's report. */
import type { FrozenAxis, PermPoint, PermutationSpecJson } from '../spec/types.js';

export interface GroupMember {
  tensor: string;
  axis: number;
}

export type GroupKind = 'free' | 'heads' | 'expand' | 'concat';

export interface GroupReport {
  /** The permutation's name in the spec. */
  name: string;
  size: number;
  kind: GroupKind;
  /** Weight axes that name this permutation directly in axes_to_perm. */
  members: GroupMember[];
  /** Activation values (with axis) whose axis this permutation moves. */
  points: PermPoint[];
  description: string;
  heads?: { count: number; tie: string };
  /** For derived perms: the base perms they follow. */
  follows?: string[];
}

export interface FrozenGroupReport {
  size: number;
  /** Weight axes of the frozen class (size > 1). */
  members: GroupMember[];
  node?: string;
  reason: string;
}

/**
 * A partial freeze: a permuted axis whose blocks must share one permutation although a finer reading could move
 * them separately (q, k, v of a fused projection stacked as (B, N, 3, H, d) and read by more than index nodes).
 */
export interface PartialFreezeReport {
  /** The shared permutation (a concat of one permutation repeated). */
  group: string;
  members: GroupMember[];
  node: string;
  reason: string;
}

export interface InferResult {
  spec: PermutationSpecJson;
  groups: GroupReport[];
  frozen: FrozenGroupReport[];
  /** Ties the tracer keeps that a finer analysis could separate (absent when none). */
  partial?: PartialFreezeReport[];
}
