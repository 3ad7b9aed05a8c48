/**
 * Applying permutations to tensors. Gathers work on any TypedArray (and on raw bytes with an element width),
 * so a checkpoint's tensors are permuted exactly in their stored dtype: no float32 round trip.
 */
import { BasinError, q } from '../errors.js';
import { axisView } from '../tensor/tensor.js';
import type { Assignment, PermutationSpec } from './spec.js';

export type AnyTypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

export interface ShapedArray<T extends AnyTypedArray = AnyTypedArray> {
  shape: readonly number[];
  data: T;
}

/**
 * out[..., i, ...] = data[..., index[i], ...] along `axis`. `elementBytes` > 1 treats a Uint8Array as raw bytes
 * of elements that wide. Elements are moved as 4-, 2- or 1-byte words (never through float registers, so NaN
 * payloads survive), with a block copy when the trailing size is large.
 */
export function gatherAxis<T extends AnyTypedArray>(data: T, shape: readonly number[], axis: number, index: ArrayLike<number>, elementBytes = 1): T {
  const { outer, n, inner: innerElems } = axisView(shape, axis);
  if (index.length !== n) throw new BasinError('shape_mismatch', `index of length ${index.length} for axis ${axis} of size ${n}`, { axis, shape });
  const out = new (data.constructor as new (n: number) => T)(data.length);
  const bytes = innerElems * elementBytes * (data as Uint8Array).BYTES_PER_ELEMENT;
  const src = wordView(data, bytes);
  const dst = wordView(out, bytes);
  const inner = bytes / src.BYTES_PER_ELEMENT;
  if (inner >= 64) {
    for (let o = 0; o < outer; o++) {
      const base = o * n * inner;
      for (let i = 0; i < n; i++) {
        const s = base + index[i]! * inner;
        (dst as Uint8Array).set((src as Uint8Array).subarray(s, s + inner), base + i * inner);
      }
    }
    return out;
  }
  // one call per outer block: a small function V8 optimizes after a few calls (nested in one loop, a gather run
  // once per tensor would run interpreted until on-stack replacement)
  if (inner === 1) for (let o = 0; o < outer; o++) gatherWords(dst, src, o * n, index, n);
  else for (let o = 0; o < outer; o++) gatherBlocks(dst, src, o * n * inner, index, n, inner);
  return out;
}

type Words = Uint32Array | Uint16Array | Uint8Array;

function gatherWords(dst: Words, src: Words, base: number, index: ArrayLike<number>, n: number): void {
  for (let i = 0; i < n; i++) dst[base + i] = src[base + index[i]!]!;
}

function gatherBlocks(dst: Words, src: Words, base: number, index: ArrayLike<number>, n: number, inner: number): void {
  for (let i = 0; i < n; i++) {
    let d = base + i * inner;
    let s = base + index[i]! * inner;
    for (let k = 0; k < inner; k++) dst[d++] = src[s++]!;
  }
}

/** The widest unsigned word view of `a` whose width divides the bytes of one moved block. */
function wordView(a: AnyTypedArray, blockBytes: number): Uint32Array | Uint16Array | Uint8Array {
  const buf = a.buffer as ArrayBuffer;
  if (blockBytes % 4 === 0 && a.byteOffset % 4 === 0) return new Uint32Array(buf, a.byteOffset, a.byteLength / 4);
  if (blockBytes % 2 === 0 && a.byteOffset % 2 === 0) return new Uint16Array(buf, a.byteOffset, a.byteLength / 2);
  return new Uint8Array(buf, a.byteOffset, a.byteLength);
}

/**
 * Permute every spec axis of one tensor; axes listed in `exceptAxis` are left alone (the seeds' except_axis).
 * @throws BasinError invalid_argument when the assignment lacks one of the permutations the tensor's axes use
 */
export function permuteTensor<T extends AnyTypedArray>(
  spec: PermutationSpec,
  assignment: Assignment,
  name: string,
  t: ShapedArray<T>,
  { exceptAxis = -1, elementBytes = 1 }: { exceptAxis?: number; elementBytes?: number } = {},
): T {
  const refs = spec.axesToPerm.get(name);
  let data = t.data;
  if (!refs) return data;
  for (let axis = 0; axis < refs.length; axis++) {
    if (axis === exceptAxis || refs[axis] === null) continue;
    const idx = spec.axisIndex(name, axis, t.shape[axis]!, assignment);
    if (idx) data = gatherAxis(data, t.shape, axis, idx, elementBytes);
  }
  return data;
}

/**
 * Apply an assignment to every tensor the spec names; tensors it does not name are returned as they are.
 * @throws BasinError as permuteTensor
 */
export function applyAssignment<T extends AnyTypedArray>(
  spec: PermutationSpec,
  assignment: Assignment,
  tensors: ReadonlyMap<string, ShapedArray<T>>,
): Map<string, ShapedArray<T>> {
  const out = new Map<string, ShapedArray<T>>();
  for (const [name, t] of tensors) out.set(name, { shape: t.shape, data: permuteTensor(spec, assignment, name, t) });
  return out;
}

/** The assignment that moves nothing: every free permutation of `spec` is 0 … n−1. */
export function identityAssignment(spec: PermutationSpec): Assignment {
  const a: Assignment = new Map();
  for (const name of spec.free) a.set(name, identity(spec.perms.get(name)!.size));
  return a;
}

export function identity(n: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return p;
}

/** xorshift-based generator so a seed gives the same permutations on every platform. */
export function seededRandom(seed: number): () => number {
  // murmur3's finalizer first: xorshift started from nearby seeds (1, 2, 3) gives nearly the same first draws, so
  // a 2-head map came out the same for every small seed
  let s = (seed >>> 0) ^ 0x9e3779b9;
  s = Math.imul(s ^ (s >>> 16), 0x85ebca6b) >>> 0;
  s = Math.imul(s ^ (s >>> 13), 0xc2b2ae35) >>> 0;
  s = (s ^ (s >>> 16)) >>> 0;
  if (s === 0) s = 0x6d2b79f5;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

export function shuffle(n: number, random: () => number): Int32Array {
  const p = identity(n);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

/** A random permutation for every base perm; heads-tied perms move whole heads identically, shuffled within. */
export function randomAssignment(spec: PermutationSpec, seed: number): Assignment {
  const random = seededRandom(seed);
  const a: Assignment = new Map();
  const headMaps = new Map<string, Int32Array>();
  for (const name of spec.free) {
    const p = spec.perms.get(name)!;
    const heads = p.info.heads;
    if (!heads) {
      a.set(name, shuffle(p.size, random));
      continue;
    }
    let map = headMaps.get(heads.tie);
    if (!map) {
      map = shuffle(heads.count, random);
      headMaps.set(heads.tie, map);
    }
    a.set(name, composeHeads(map, Array.from({ length: heads.count }, () => shuffle(p.size / heads.count, random))));
  }
  return a;
}

/** The full permutation that sends head h's block to head map[h]'s block, reordered within by within[h]. */
export function composeHeads(map: Int32Array, within: Int32Array[]): Int32Array {
  const d = within[0]?.length ?? 0;
  const out = new Int32Array(map.length * d);
  for (let h = 0; h < map.length; h++) {
    const w = within[h]!;
    for (let j = 0; j < d; j++) out[h * d + j] = map[h]! * d + w[j]!;
  }
  return out;
}

/**
 * Check an assignment covers the spec's base perms with valid permutations of the right sizes.
 * @throws BasinError invalid_argument (a permutation missing or not a permutation of 0 … n−1), shape_mismatch (wrong length), naming it
 */
export function checkAssignment(spec: PermutationSpec, assignment: Assignment, what = 'permutation'): void {
  for (const name of spec.free) {
    const p = assignment.get(name);
    const size = spec.perms.get(name)!.size;
    if (!p) throw new BasinError('invalid_argument', `${what} for ${q(name)} is missing`, { perm: name });
    if (p.length !== size) throw new BasinError('shape_mismatch', `${what} for ${q(name)} has length ${p.length}, expected ${size}`, { perm: name, expected: size, found: p.length });
    const seen = new Uint8Array(size);
    for (let i = 0; i < size; i++) {
      const v = p[i]!;
      if (!(v >= 0 && v < size) || seen[v]) throw new BasinError('invalid_argument', `${what} for ${q(name)} is not a permutation of 0..${size - 1} (at index ${i})`, { perm: name });
      seen[v] = 1;
    }
  }
}

/** The inverse permutation q of p (q[p[i]] = i), so that gathering by p then by q restores the order. */
export function invert(p: ArrayLike<number>): Int32Array {
  const inv = new Int32Array(p.length);
  for (let i = 0; i < p.length; i++) inv[p[i]!] = i;
  return inv;
}
