/**
 * The role of every axis of every constant tensor when two models are stacked (stack-tensor.ts), read from the
 * permutation groups the graph tracer finds on model A: an axis in a group (free, heads, expand) is stacked
 * whole, an axis in a concat group is stacked part by part, an axis that reaches the graph output is stacked in
 * concat mode and averaged in mean mode, an axis that reaches the graph input is shared (or stacked when the two
 * models get separate inputs), and every other axis (kernel taps, token positions) is shared.
 */
import { BasinError, q } from '../errors.js';
import type { InferResult } from '../graph/types.js';
import { MEAN, SHARED, stackedAxis, type AxisRole } from './stack-tensor.js';

export type StackOutputs = 'concat' | 'mean';
export type StackInputs = 'shared' | 'separate';

/**
 * Axis roles per tensor name, for tensors of the given shapes (see the file comment).
 * @throws BasinError onnx_unsupported_op for a concat group with fixed blocks (positions no group owns inside a
 *   stacked axis), naming the tensor
 */
export function axisRoles(
  inferred: InferResult,
  shapes: ReadonlyMap<string, readonly number[]>,
  { outputs, inputs }: { outputs: StackOutputs; inputs: StackInputs },
): Map<string, AxisRole[]> {
  const spec = inferred.spec;
  const perms = spec.perms ?? {};
  const roles = new Map<string, AxisRole[]>();
  for (const [name, shape] of shapes) roles.set(name, shape.map(() => SHARED));
  for (const f of inferred.frozen) {
    const out = /^reaches graph output /.test(f.reason);
    const inp = /^reaches graph input /.test(f.reason);
    const role = out ? (outputs === 'concat' ? 'stack' : 'mean') : inp && inputs === 'separate' ? 'stack' : 'shared';
    if (role === 'shared') continue;
    for (const m of f.members) {
      const r = roles.get(m.tensor);
      if (!r || m.axis >= r.length) continue;
      r[m.axis] = role === 'mean' ? MEAN : stackedAxis([shapes.get(m.tensor)![m.axis]!]);
    }
  }
  for (const [name, refs] of Object.entries(spec.axes_to_perm)) {
    const r = roles.get(name);
    if (!r) continue;
    refs.forEach((ref, axis) => {
      if (ref === null || axis >= r.length) return;
      const size = shapes.get(name)![axis]!;
      const parts = perms[ref]?.concat;
      if (!parts) {
        r[axis] = stackedAxis([size]);
        return;
      }
      const sizes = parts.map((p) => {
        if (typeof p === 'number') {
          throw new BasinError(
            'onnx_unsupported_op',
            `tensor ${q(name)} axis ${axis} is a concatenation with a fixed block of ${p} positions (${q(ref)}): basin cannot stack two models there`,
            { tensor: name, axis },
          );
        }
        const s = perms[p]?.size;
        if (s === undefined) throw new BasinError('spec_invalid', `concat permutation ${q(ref)} names ${q(p)}, which the spec does not size`, { tensor: name, axis });
        return s;
      });
      if (sizes.reduce((s, x) => s + x, 0) !== size) {
        throw new BasinError('spec_size_mismatch', `tensor ${q(name)} axis ${axis} has ${size} positions but its concat parts ${q(ref)} sum to ${sizes.reduce((s, x) => s + x, 0)}`, { tensor: name, axis });
      }
      r[axis] = stackedAxis(sizes);
    });
  }
  return roles;
}
