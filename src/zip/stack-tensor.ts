/**
 * Placing two models' copies of one tensor side by side. Every axis of a tensor has a role:
 *   - `stack`: a hidden axis (a permutation group, or an output axis in concat mode): the new axis holds A's units
 *     then B's (per part for a concat group: Q_A Q_B | K_A K_B | V_A V_B), and a tensor with several such axes is
 *     block-diagonal (A's block, B's block, zeros elsewhere: no path from one model's units to the other's);
 *   - `shared`: an axis both halves read the same way (the input features, kernel taps, token positions);
 *   - `mean`: an output axis in mean mode: one set of outputs, each the average of A's and B's.
 * A tensor with no stacked axis is one value for both halves: averaged when it has a mean axis (the output bias),
 * else A's and B's copies must be equal.
 */
import { BasinError, q } from '../errors.js';
import { Tensor, numel, strides } from '../tensor/tensor.js';

/** Where A's and B's index i of one axis go in the stacked axis (length 2n). */
export interface StackedAxis {
  readonly role: 'stack';
  readonly a: Int32Array;
  readonly b: Int32Array;
}

export type AxisRole = StackedAxis | { readonly role: 'shared' } | { readonly role: 'mean' };

export const SHARED: AxisRole = { role: 'shared' };
export const MEAN: AxisRole = { role: 'mean' };

/**
 * The stacked axis for a concatenation of parts of `sizes` positions each: part k of A then part k of B, part by
 * part (a plain axis is one part).
 */
export function stackedAxis(sizes: readonly number[]): StackedAxis {
  const n = sizes.reduce((s, x) => s + x, 0);
  const a = new Int32Array(n);
  const b = new Int32Array(n);
  let src = 0;
  for (const size of sizes) {
    for (let i = 0; i < size; i++) {
      a[src + i] = 2 * src + i;
      b[src + i] = 2 * src + size + i;
    }
    src += size;
  }
  return { role: 'stack', a, b };
}

/**
 * A's and B's copies of tensor `name` (same shape) placed side by side by `roles` (one per axis; see the file
 * comment). Values stay float32 (the caller writes them back in the tensor's own dtype).
 * @throws BasinError models_mismatch for a tensor in no group whose copies differ (it cannot be one value for both)
 */
export function stackTensor(name: string, ta: Tensor, tb: Tensor, roles: readonly AxisRole[]): Tensor {
  const stacked = roles.map((r, i) => (r.role === 'stack' ? i : -1)).filter((i) => i >= 0);
  const mean = roles.some((r) => r.role === 'mean');
  if (stacked.length === 0) {
    if (mean) {
      const out = new Float32Array(ta.size);
      for (let i = 0; i < out.length; i++) out[i] = 0.5 * ta.data[i]! + 0.5 * tb.data[i]!;
      return new Tensor(ta.shape, out);
    }
    for (let i = 0; i < ta.size; i++) {
      if (!Object.is(ta.data[i], tb.data[i])) {
        throw new BasinError(
          'models_mismatch',
          `tensor ${q(name)} is in no permutation group (no hidden axis to place A's and B's copies side by side) and differs between the two models (element ${i}: ${ta.data[i]} vs ${tb.data[i]})`,
          { tensor: name },
        );
      }
    }
    return ta;
  }
  const shape = ta.shape.map((d, i) => (roles[i]!.role === 'stack' ? 2 * d : d));
  const out = new Float32Array(numel(shape));
  const dst = strides(shape);
  const scale = mean ? 0.5 : 1;
  const rank = shape.length;
  for (const [which, t] of [['a', ta], ['b', tb]] as const) {
    // per axis: where each source index lands in the output, as an element offset
    const offsets = ta.shape.map((n, ax) => {
      const r = roles[ax]!;
      const o = new Float64Array(n);
      for (let c = 0; c < n; c++) o[c] = (r.role === 'stack' ? r[which][c]! : c) * dst[ax]!;
      return o;
    });
    let src = 0;
    const walk = (ax: number, base: number): void => {
      const o = offsets[ax]!;
      if (ax === rank - 1) {
        for (let c = 0; c < o.length; c++) out[base + o[c]!] = scale * t.data[src++]!;
        return;
      }
      for (let c = 0; c < o.length; c++) walk(ax + 1, base + o[c]!);
    };
    if (rank === 0) out[0] = scale * t.data[0]!;
    else walk(0, 0);
  }
  return new Tensor(shape, out);
}
