/**
 * The assignment steps shared by every matching method: one LAP for a plain permutation, and the two-level
 * solve for attention heads tied across several permutations.
 */
import { solveAssignment } from '../linalg/lap.js';
import { composeHeads } from '../spec/apply.js';
import type { PermutationSpec } from '../spec/spec.js';

/** The permutation maximizing sum_i score[i, perm[i]] (score is n x n, row-major). */
export function solveSingle(cost: Float64Array, n: number): Int32Array[] {
  return [solveAssignment(cost, n, n, { maximize: true }).rowToCol];
}

/**
 * Heads tied across several perms (Q/K and V/O of one attention block): for every pair of heads (a, b), the best
 * within-head assignment of each perm, summed; then the LAP over heads picks the head map.
 */
export function solveHeads(spec: PermutationSpec, names: string[], costs: Float64Array[]): Int32Array[] {
  const h = spec.perms.get(names[0]!)!.info.heads!.count;
  const pairValue = new Float64Array(h * h);
  const within: Int32Array[][][] = names.map(() => Array.from({ length: h }, () => new Array<Int32Array>(h)));
  names.forEach((p, k) => {
    const n = spec.perms.get(p)!.size;
    const d = n / h;
    const block = new Float64Array(d * d);
    for (let ha = 0; ha < h; ha++) {
      for (let hb = 0; hb < h; hb++) {
        for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) block[i * d + j] = costs[k]![(ha * d + i) * n + hb * d + j]!;
        const r = solveAssignment(block, d, d, { maximize: true });
        pairValue[ha * h + hb]! += r.total;
        within[k]![ha]![hb] = r.rowToCol;
      }
    }
  });
  const map = solveAssignment(pairValue, h, h, { maximize: true }).rowToCol;
  return names.map((_, k) => composeHeads(map, Array.from({ length: h }, (_, ha) => within[k]![ha]![map[ha]!]!)));
}

export function trace(cost: Float64Array, perm: Int32Array): number {
  const n = perm.length;
  let s = 0;
  for (let i = 0; i < n; i++) s += cost[i * n + perm[i]!]!;
  return s;
}

