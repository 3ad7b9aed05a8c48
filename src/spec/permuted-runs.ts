/**
 * Reading a tensor "as permuted" without making the permuted copy: the permuted tensor's elements, in order, are
 * runs of `run` contiguous elements of the original (its unpermuted trailing axes, e.g. a conv's kernel window),
 * one run per position along the last permuted axis, taken through that axis's index array; the axes before it
 * are walked with their own index arrays. Used where a permuted copy would cost a pass and a buffer per tensor:
 * the weight-matching objective (<A_t, P(B_t)>) and the exact-copy check (A_t == P(B_t) bit for bit).
 */
import type { Assignment, PermutationSpec } from './spec.js';

export interface PermutedRuns {
  /** Index array of the last permuted axis: the permuted element j of a block starts at base + ci[j]·run. */
  ci: Int32Array;
  /** Size of the last permuted axis. */
  lastSize: number;
  /** Elements per run (product of the axes after the last permuted one). */
  run: number;
}

/**
 * Calls `visit(dst, base)` for each position of the axes before the last permuted one, in order: the permuted
 * tensor's elements dst … dst + lastSize·run − 1 are the original's runs at base + ci[j]·run (j < lastSize).
 * Stops early, returning false, when `visit` returns false. Returns null (and visits nothing) when no axis of
 * tensor `name` is permuted: the tensor reads as it is.
 * @throws BasinError invalid_argument when `perms` lacks a permutation the tensor's axes use (spec.axisIndex)
 */
export function forEachPermutedRun(
  spec: PermutationSpec,
  perms: Assignment,
  name: string,
  shape: readonly number[],
  visit: (dst: number, base: number, runs: PermutedRuns) => boolean,
): boolean | null {
  const index = shape.map((size, axis) => spec.axisIndex(name, axis, size, perms));
  let last = index.length - 1;
  while (last >= 0 && !index[last]) last--;
  if (last < 0) return null;
  let run = 1;
  for (let k = last + 1; k < shape.length; k++) run *= shape[k]!;
  // strides[k]: elements per step of axis k (k <= last)
  const strides = new Array<number>(last + 1);
  let stride = run;
  for (let k = last; k >= 0; k--) {
    strides[k] = stride;
    stride *= shape[k]!;
  }
  const lastSize = shape[last]!;
  const runs: PermutedRuns = { ci: index[last]!, lastSize, run };
  let outer = 1; // positions of axes 0..last-1
  for (let k = 0; k < last; k++) outer *= shape[k]!;
  const counter = new Array<number>(last).fill(0);
  let dst = 0;
  for (let o = 0; o < outer; o++) {
    let base = 0;
    for (let k = 0; k < last; k++) base += (index[k] ? index[k]![counter[k]!]! : counter[k]!) * strides[k]!;
    if (!visit(dst, base, runs)) return false;
    dst += lastSize * run;
    for (let k = last - 1; k >= 0; k--) {
      if (++counter[k]! < shape[k]!) break;
      counter[k] = 0;
    }
  }
  return true;
}
