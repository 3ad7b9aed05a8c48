/**
 * Activation points for a spec that has none (a state_dict's spec from `--arch mlp` or a user's `--spec`): the
 * points of the spec inferred from the graph the models run through, permutation by permutation, where both specs
 * put a permutation of the same size on the same tensor axis.
 */
import { BasinError } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import { PermutationSpec } from '../spec/spec.js';
import type { PermutationSpecJson } from '../spec/types.js';
import { inferSpec } from '../graph/infer-spec.js';

/**
 * `spec` with points copied from `graphSpec` (same tensor names) for every permutation that has none: the first
 * (tensor, axis) of the permutation where `graphSpec` has a permutation of the same size with points. Permutations
 * left without points are solved by weight matching (activation matching says so in its notes).
 */
export function withGraphPoints(spec: PermutationSpecJson, graphSpec: PermutationSpecJson): PermutationSpecJson {
  const perms = { ...(spec.perms ?? {}) };
  const sizes = new Map<string, number | undefined>();
  for (const [name, info] of Object.entries(perms)) sizes.set(name, info.size);
  for (const [tensor, refs] of Object.entries(spec.axes_to_perm)) {
    refs.forEach((ref, axis) => {
      if (typeof ref !== 'string' || perms[ref]?.points?.length || (perms[ref] && (perms[ref].concat || perms[ref].expand))) return;
      const g = graphSpec.axes_to_perm[tensor]?.[axis];
      if (typeof g !== 'string') return;
      const gi = graphSpec.perms?.[g];
      if (!gi?.points?.length || gi.concat || gi.expand) return;
      const size = sizes.get(ref);
      if (size !== undefined && gi.size !== undefined && size !== gi.size) return;
      perms[ref] = { ...(perms[ref] ?? { size: gi.size }), points: gi.points.map((p) => ({ ...p })) };
    });
  }
  return { ...spec, perms };
}

/**
 * `spec` (validated, with the graph's initializer names) with points for the permutations that have none, taken
 * from the spec basin infers from `graph`; `spec` itself when every base permutation has points or when the graph
 * tracer cannot read the graph (those permutations are then weight-matched, and the notes say so).
 */
export async function withPointsFromGraph(spec: PermutationSpec, graph: OnnxModel): Promise<PermutationSpec> {
  const missing = spec.free.some((p) => !spec.perms.get(p)!.info.points?.length);
  if (!missing) return spec;
  let inferred: PermutationSpecJson;
  try {
    inferred = (await inferSpec(graph)).spec;
  } catch (e) {
    if (e instanceof BasinError && e.code !== 'onnx_invalid') return spec;
    throw e;
  }
  const shapes = new Map(spec.tensors().map((t) => [t, graph.weightInfo(t).shape]));
  return PermutationSpec.fromJson(withGraphPoints(spec.toJson(), inferred), shapes, 'spec with the graph\'s points');
}
