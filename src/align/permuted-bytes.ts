/**
 * One tensor's stored bytes permuted along its spec axes, in one pass into a buffer the caller gives (reused
 * memory): the same bytes as spec/apply.ts permuteTensor with `elementBytes`, which gathers axis by axis into a
 * fresh buffer per axis (at 59 MB a conv weight, two fresh buffers and two passes per tensor written).
 */
import { BasinError, q } from '../errors.js';
import type { Assignment, PermutationSpec } from '../spec/spec.js';
import { forEachPermutedRun } from '../spec/permuted-runs.js';

/**
 * Write tensor `name` (stored bytes `src` of `shape`, `elementBytes` per element) permuted by `perms` into `out`
 * (same length as `src`, not overlapping it). A tensor no spec axis permutes is copied as it is.
 * @throws BasinError shape_mismatch when the lengths disagree with the shape; invalid_argument when `perms` lacks
 *   a permutation the tensor uses
 */
export function permuteBytesInto(spec: PermutationSpec, perms: Assignment, name: string, shape: readonly number[], elementBytes: number, src: Uint8Array, out: Uint8Array): void {
  const elements = shape.reduce((a, d) => a * d, 1);
  if (src.length !== elements * elementBytes || out.length !== src.length) {
    throw new BasinError('shape_mismatch', `tensor ${q(name)}: ${src.length} bytes in, ${out.length} out, for ${elements} elements of ${elementBytes} bytes`, { tensor: name, found: src.length });
  }
  const all = forEachPermutedRun(spec, perms, name, shape, (dst, base, { ci, lastSize, run }) => {
    const bytes = run * elementBytes;
    if (bytes % 4 === 0 && src.byteOffset % 4 === 0 && out.byteOffset % 4 === 0) {
      const w = bytes / 4;
      copyRuns(new Uint32Array(out.buffer, out.byteOffset, out.length / 4), (dst * elementBytes) / 4, new Uint32Array(src.buffer, src.byteOffset, src.length / 4), (base * elementBytes) / 4, ci, lastSize, w);
    } else copyRuns(out, dst * elementBytes, src, base * elementBytes, ci, lastSize, bytes);
    return true;
  });
  if (all === null) out.set(src);
}

/** out[o + j·w … + w) = src[s + ci[j]·w … + w) for j < n: word loops for short runs, set() for long ones. */
function copyRuns(out: Uint32Array | Uint8Array, o: number, src: Uint32Array | Uint8Array, s: number, ci: Int32Array, n: number, w: number): void {
  if (w >= 64) {
    for (let j = 0; j < n; j++) out.set(src.subarray(s + ci[j]! * w, s + ci[j]! * w + w), o + j * w);
    return;
  }
  for (let j = 0; j < n; j++) {
    const from = s + ci[j]! * w;
    const to = o + j * w;
    for (let k = 0; k < w; k++) out[to + k] = src[from + k]!;
  }
}
