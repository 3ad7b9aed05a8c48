/**
 * Attention heads as units of a shrink: a heads group keeps whole heads (q/k rows of a head with its v rows and
 * its output-projection columns), chosen by backward elimination on the refit error: starting from every head,
 * the head whose removal leaves the smallest least-squares error of the output projection (refitted on the kept
 * heads' outputs to reproduce the original model's pre-activations) is dropped, until `keep` heads remain. The
 * error of a candidate set comes from the caller (`errorOf`, the same refit the reduction then applies). Heads
 * beyond `MAX_ELIMINATION` fall back to one pass ranking each head by the error of dropping it alone. (Michel et al.
 * 2019 and SliceGPT score heads by their effect on the output; this measures it with the refit included.)
 */

import { BasinError, q } from '../errors.js';
import type { GroupReport } from '../graph/types.js';
import { unitSize } from './width-spec.js';

/** Above this head count, one ranking pass instead of full backward elimination (H² refits). */
const MAX_ELIMINATION = 16;

export interface HeadChoice {
  /** Kept heads, ascending. */
  heads: number[];
  /** Kept positions (head h → h·headSize … h·headSize + headSize − 1), ascending. */
  idx: Int32Array;
}

/** Positions of `heads` (ascending) with `headSize` positions each. */
export function headPositions(heads: readonly number[], headSize: number): Int32Array {
  const out = new Int32Array(heads.length * headSize);
  heads.forEach((h, j) => {
    for (let s = 0; s < headSize; s++) out[j * headSize + s] = h * headSize + s;
  });
  return out;
}

/**
 * Keep `keep` of `count` heads (see the file comment). `errorOf(positions)` returns the refit error when only those
 * positions are kept (lower is better).
 */
export async function chooseHeads(count: number, headSize: number, keep: number, errorOf: (positions: Int32Array) => Promise<number>): Promise<HeadChoice> {
  let kept = Array.from({ length: count }, (_, h) => h);
  if (count > MAX_ELIMINATION) {
    const cost: number[] = [];
    for (const h of kept) cost[h] = await errorOf(headPositions(kept.filter((x) => x !== h), headSize));
    kept = [...kept].sort((a, b) => cost[b]! - cost[a]!).slice(0, keep).sort((a, b) => a - b);
    return { heads: kept, idx: headPositions(kept, headSize) };
  }
  while (kept.length > keep) {
    let best = -1;
    let bestErr = Infinity;
    for (const h of kept) {
      const err = await errorOf(headPositions(kept.filter((x) => x !== h), headSize));
      if (err < bestErr || best < 0) (best = h, bestErr = err);
    }
    kept = kept.filter((x) => x !== best);
  }
  return { heads: kept, idx: headPositions(kept, headSize) };
}

/**
 * Heads groups tied together (the Q/K and V/O groups of one attention) must keep one head count: a partner the
 * request leaves out is added with the same head count; partners named with different counts are refused.
 * @throws BasinError invalid_argument naming both groups
 */
export function addHeadPartners(plan: { group: GroupReport; to: number }[], groups: readonly GroupReport[]): void {
  for (const { group, to } of [...plan]) {
    if (!group.heads) continue;
    const heads = to / unitSize(group);
    for (const other of groups) {
      if (other === group || other.heads?.tie !== group.heads.tie) continue;
      const named = plan.find((p) => p.group.name === other.name);
      const want = heads * unitSize(other);
      if (!named) plan.push({ group: other, to: want });
      else if (named.to !== want) {
        throw new BasinError(
          'invalid_argument',
          `--width: heads groups ${q(group.name)} and ${q(other.name)} belong to one attention (query/key and value/output) and must keep one head count: ${q(group.name)} asks ${heads} heads, ${q(other.name)} ${named.to / unitSize(other)}`,
          { option: '--width', node: other.name },
        );
      }
    }
  }
}
