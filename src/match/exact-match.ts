/**
 * Exact copies: when B is an exact permutation of A, find that permutation and return it, whatever ties the
 * assignment solver met. Weight matching's costs are float32 products: units whose weights are all zero, or so
 * small that their products underflow (near-dead channels of a pretrained net: |w| ~ 1e-23), all cost the same,
 * and the solver may pair them wrongly: the aligned model computes the same function (they are dead) but its
 * weights differ from A's. This pass pairs units by their weights themselves, bit for bit.
 *
 * 1. One pass over the spec tensors compares B, permuted by the solver's assignment, with A bit for bit (no copy
 *    is made: B is read through per-axis index arrays). All equal and the heads structure holds: that assignment is
 *    returned (the usual case for a copy: one read of each tensor, nothing hashed). A tensor that differs must
 *    have the same order-independent fingerprint (two sums of mixed bit patterns) in A and B, else B is not a
 *    permuted copy and nothing is done: for independently trained models that is decided on the first tensor.
 * 2. Each base permutation's units are keyed by a hash of their sorted values over every placement (independent of
 *    the other permutations); a unit the solver paired with a different key is re-paired with a unit of its key.
 * 3. Then, a few rounds: units are keyed by their values in order, with the other axes permuted by the current
 *    assignment, and re-paired the same way (this tells apart units with equal values in another order); a
 *    permutation some of whose units find no partner is left for the next round.
 * 4. The result is kept only if the heads structure holds (tied heads permutations move whole heads alike) and every
 *    spec tensor of B, permuted, equals A's bit for bit; otherwise the solver's assignment stands. Not told apart in
 *    every case: dead units of two layers that differ only in the signs of their zero weights (-0 / +0).
 */
import { Tensor, axisToRows } from '../tensor/tensor.js';
import { forEachPermutedRun } from '../spec/permuted-runs.js';
import type { Assignment, PermutationSpec } from '../spec/spec.js';
import { permuteTensor } from '../spec/apply.js';
import { releaseReads } from '../io/lazy-tensors.js';

type Keys = string[];

/**
 * The assignment under which B's spec tensors equal A's bit for bit, starting from `start` (the solver's), or
 * undefined when B is not an exact permutation of A (or none was found).
 */
export function exactPermutation(spec: PermutationSpec, a: ReadonlyMap<string, Tensor>, b: ReadonlyMap<string, Tensor>, start: Assignment, work?: ExactMatchWork): Assignment | undefined {
  const perms: Assignment = new Map([...start].map(([k, v]) => [k, Int32Array.from(v)]));
  // One pass: a tensor equal after the solver's assignment holds the same values as A's (fingerprints agree);
  // a tensor that differs must at least hold the same values in another order.
  let allEqual = true;
  for (const name of spec.tensors()) {
    const [ta, tb] = [a.get(name)!, b.get(name)!];
    const equal = permutedEqual(spec, perms, name, ta, tb);
    releaseReads(a, b); // lazily read tensors (ta and tb read again if needed): buffers reused for the next ones
    if (equal) continue;
    allEqual = false;
    if (work) work.fingerprinted++;
    const [fa, fb] = [fingerprint(ta.data), fingerprint(tb.data)];
    if (fa[0] !== fb[0] || fa[1] !== fb[1]) return undefined;
  }
  // the solver's assignment already exact (the usual case): every key would agree and nothing would change
  if (allEqual && headsHold(spec, perms)) return perms;
  const keys = (model: ReadonlyMap<string, Tensor>, side: 'a' | 'b', p: string, with_: Assignment | undefined, sorted: boolean): Keys => {
    work?.keyings.push({ side, perm: p, sorted });
    return unitKeys(spec, model, p, with_, sorted, work);
  };
  for (const p of spec.free) {
    if (repair(perms.get(p)!, keys(a, 'a', p, undefined, true), keys(b, 'b', p, undefined, true)) === 'failed') return undefined;
  }
  // A's keys in order depend on nothing: keyed once. B's keys of perm p depend on the perms of every axis of the
  // tensors p reaches: keyed again only when one of those changed since.
  const keysA = new Map<string, Keys>();
  const keysB = new Map<string, { stamp: string; keys: Keys }>();
  const version = new Map<string, number>(spec.free.map((p) => [p, 0]));
  const deps = dependencies(spec);
  for (let round = 0; round < 8; round++) {
    let changed = false;
    for (const p of spec.free) {
      let ka = keysA.get(p);
      if (!ka) keysA.set(p, (ka = keys(a, 'a', p, undefined, false)));
      const stamp = deps.get(p)!.map((q) => version.get(q) ?? 0).join(',');
      let kb = keysB.get(p);
      if (!kb || kb.stamp !== stamp) keysB.set(p, (kb = { stamp, keys: keys(b, 'b', p, perms, false) }));
      const r = repair(perms.get(p)!, ka, kb.keys);
      // a unit with no partner yet: another permutation is still off; the next round may fix it
      if (r === 'changed') {
        changed = true;
        version.set(p, version.get(p)! + 1);
      }
    }
    if (!changed) break;
  }
  if (!headsHold(spec, perms) || !equalAfter(spec, a, b, perms)) return undefined;
  return perms;
}

/** What the exact pass hashed (for tests and profiles): one entry per keying of a permutation's units. */
export interface ExactMatchWork {
  keyings: { side: 'a' | 'b'; perm: string; sorted: boolean }[];
  /** Float values hashed into unit keys, all keyings together. */
  values: number;
  /** Tensors whose order-independent fingerprint was computed (those that differ after the solver's assignment). */
  fingerprinted: number;
}

/**
 * For each base perm p: the base perms on the other axes of the tensors p reaches (what B's in-order keys of p are
 * permuted by), sorted; p itself only where it also sits on another axis of one of those tensors.
 */
function dependencies(spec: PermutationSpec): Map<string, string[]> {
  const byTensor = new Map<string, { perm: string; axis: number }[]>();
  for (const [p, placements] of spec.permToAxes) {
    for (const pl of placements) {
      const list = byTensor.get(pl.tensor) ?? [];
      list.push({ perm: p, axis: pl.axis });
      byTensor.set(pl.tensor, list);
    }
  }
  const deps = new Map<string, string[]>();
  for (const p of spec.free) {
    const set = new Set<string>();
    for (const pl of spec.permToAxes.get(p) ?? []) for (const o of byTensor.get(pl.tensor) ?? []) if (o.axis !== pl.axis) set.add(o.perm);
    deps.set(p, [...set].sort());
  }
  return deps;
}

/** Two sums (mod 2^32) of mixed float32 bit patterns: equal for any reordering of the same values. */
function fingerprint(x: Float32Array): [number, number] {
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  // in chunk calls of a small function (one loop over a whole tensor ran interpreted until on-stack replacement)
  const sums = new Uint32Array(2);
  for (let from = 0; from < bits.length; from += 4096) fingerprintChunk(bits, from, Math.min(bits.length, from + 4096), sums);
  return [sums[0]!, sums[1]!];
}

/** Adds bits[from..to) into the two running sums (mod 2^32). */
function fingerprintChunk(bits: Uint32Array, from: number, to: number, sums: Uint32Array): void {
  let s1 = sums[0]!;
  let s2 = sums[1]!;
  for (let i = from; i < to; i++) {
    const v = bits[i]!;
    s1 = (s1 + mix(v, 0x9e3779b9)) >>> 0;
    s2 = (s2 + mix(v, 0x85ebca6b)) >>> 0;
  }
  sums[0] = s1;
  sums[1] = s2;
}

function mix(v: number, seed: number): number {
  let h = Math.imul(v ^ seed, 0xcc9e2d51);
  h = (h << 15) | (h >>> 17);
  h = Math.imul(h, 0x1b873593);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * One key per unit of base perm `p` of a model: a 64-bit hash of the unit's values over all placements, sorted
 * (`sorted`), or in order with the other axes of each tensor permuted by `perms` (none for A, the target).
 */
function unitKeys(spec: PermutationSpec, model: ReadonlyMap<string, Tensor>, p: string, perms: Assignment | undefined, sorted: boolean, work?: ExactMatchWork): Keys {
  const n = spec.perms.get(p)!.size;
  const h1 = new Uint32Array(n).fill(0x811c9dc5);
  const h2 = new Uint32Array(n).fill(0x01000193);
  for (const pl of spec.permToAxes.get(p)!) {
    let t = model.get(pl.tensor)!;
    if (perms) t = new Tensor(t.shape, permuteTensor(spec, perms, pl.tensor, t, { exceptAxis: pl.axis }));
    const rows = axisToRows(t, pl.axis);
    const width = rows.cols * pl.inner;
    if (work) work.values += n * width;
    for (let i = 0; i < n; i++) {
      let unit = rows.data.subarray((pl.offset + i * pl.inner) * rows.cols, (pl.offset + (i + 1) * pl.inner) * rows.cols);
      if (sorted) unit = Float32Array.from(unit).sort();
      const bits = new Uint32Array(unit.buffer, unit.byteOffset, width);
      let x = h1[i]!;
      let y = h2[i]!;
      for (let k = 0; k < width; k++) {
        x = Math.imul(x ^ bits[k]!, 16777619) >>> 0;
        y = mix(y ^ bits[k]!, k);
      }
      h1[i] = x;
      h2[i] = y;
    }
  }
  return Array.from({ length: n }, (_, i) => `${h1[i]!.toString(16)}:${h2[i]!.toString(16)}`);
}

/**
 * Re-pair the units of one permutation (new B slice i = old B slice perm[i]) so that keyB[perm[i]] = keyA[i],
 * keeping every pair that already agrees. 'failed' when some unit of A has no unit of B left with its key.
 */
function repair(perm: Int32Array, keyA: Keys, keyB: Keys): 'same' | 'changed' | 'failed' {
  const n = perm.length;
  const next = new Int32Array(n).fill(-1);
  const used = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    if (keyB[perm[i]!] === keyA[i]) {
      next[i] = perm[i]!;
      used[perm[i]!] = 1;
    }
  }
  const pool = new Map<string, number[]>();
  for (let j = n - 1; j >= 0; j--) {
    if (used[j]) continue;
    const list = pool.get(keyB[j]!);
    if (list) list.push(j);
    else pool.set(keyB[j]!, [j]);
  }
  let changed = false;
  for (let i = 0; i < n; i++) {
    if (next[i] !== -1) continue;
    const j = pool.get(keyA[i]!)?.pop();
    if (j === undefined) return 'failed';
    next[i] = j;
    changed = true;
  }
  perm.set(next);
  return changed ? 'changed' : 'same';
}

/** Tied heads permutations move whole heads, the same heads in every perm of the tie. */
function headsHold(spec: PermutationSpec, perms: Assignment): boolean {
  const headMaps = new Map<string, string>();
  for (const p of spec.free) {
    const heads = spec.perms.get(p)!.info.heads;
    if (!heads) continue;
    const perm = perms.get(p)!;
    const d = perm.length / heads.count;
    const map: number[] = [];
    for (let h = 0; h < heads.count; h++) {
      const g = Math.floor(perm[h * d]! / d);
      for (let k = 1; k < d; k++) if (Math.floor(perm[h * d + k]! / d) !== g) return false;
      map.push(g);
    }
    const key = map.join(',');
    const seen = headMaps.get(heads.tie);
    if (seen !== undefined && seen !== key) return false;
    headMaps.set(heads.tie, key);
  }
  return true;
}

function equalAfter(spec: PermutationSpec, a: ReadonlyMap<string, Tensor>, b: ReadonlyMap<string, Tensor>, perms: Assignment): boolean {
  for (const name of spec.tensors()) if (!permutedEqual(spec, perms, name, a.get(name)!, b.get(name)!)) return false;
  return true;
}

/**
 * Whether B's tensor `name`, permuted by `perms`, equals A's bit for bit, without materializing the permuted
 * copy: B is read through each axis's index array; the unpermuted trailing axes (a conv's kernel window) are
 * compared as contiguous runs. Stops at the first differing element.
 */
export function permutedEqual(spec: PermutationSpec, perms: Assignment, name: string, ta: Tensor, tb: Tensor): boolean {
  const shape = ta.shape;
  const x = new Uint32Array(ta.data.buffer, ta.data.byteOffset, ta.data.length);
  const y = new Uint32Array(tb.data.buffer, tb.data.byteOffset, tb.data.length);
  if (x.length !== y.length) return false;
  const all = forEachPermutedRun(spec, perms, name, shape, (dst, base, { ci, lastSize, run }) => runsEqual(x, dst, y, base, ci, lastSize, run));
  if (all !== null) return all;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** Whether x[dst + j·run + r] === y[base + ci[j]·run + r] for every j < n, r < run. */
function runsEqual(x: Uint32Array, dst: number, y: Uint32Array, base: number, ci: Int32Array, n: number, run: number): boolean {
  for (let j = 0; j < n; j++) {
    const d = dst + j * run;
    const src = base + ci[j]! * run;
    for (let r = 0; r < run; r++) if (x[d + r] !== y[src + r]) return false;
  }
  return true;
}
