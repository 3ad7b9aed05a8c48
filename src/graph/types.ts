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

export interface InferResult {
  spec: PermutationSpecJson;
  groups: GroupReport[];
  frozen: FrozenGroupReport[];
}
