/**
 * Activation points for a spec that has none (a state_dict's spec from `--arch mlp` or a user's `--spec`): the
 * points of the spec inferred from the graph the models run through, permutation by permutation, where both specs
 * put a permutation of the same size on the same tensor axis.
 */
import { BasinError, q } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import { PermutationSpec } from '../spec/spec.js';
import type { PermutationSpecJson } from '../spec/types.js';
import { inferSpec } from '../align/infer-spec.js';

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

/** Ops that apply a layer's weights to their data input: what a layer reads is its input there. */
const LAYER_OPS = new Set(['MatMul', 'Gemm', 'Conv', 'ConvTranspose']);

/**
 * Values of `model` that a layer with weights reads: an input of a MatMul/Gemm/Conv/ConvTranspose (default domain)
 * whose other operand is a weight (an initializer or Constant, or a value computed from weights only, such as a
 * Transpose or Cast of one). Attention's MatMuls of two activations are not layers.
 */
export function layerInputs(model: OnnxModel): Set<string> {
  const nodes = model.proto.graph?.node ?? [];
  const fixed = new Set(model.constants());
  for (const n of nodes) {
    const ins = (n.input ?? []).filter((i) => i);
    if (ins.length > 0 && ins.every((i) => fixed.has(i))) for (const o of n.output ?? []) if (o) fixed.add(o);
  }
  const out = new Set<string>();
  for (const n of nodes) {
    if (!LAYER_OPS.has(n.opType ?? '') || (n.domain && n.domain !== 'ai.onnx')) continue;
    const ins = n.input ?? [];
    const [x, w] = [ins[0], ins[1]];
    if (x && w && !fixed.has(x) && fixed.has(w)) out.add(x);
    if (x && w && fixed.has(x) && !fixed.has(w)) out.add(w); // MatMul(W, x): the weight on the left
  }
  return out;
}

/**
 * The points activation matching reads under the 'layer-inputs' rule: for every base permutation that has at least
 * one point read by a layer with weights (`layerInputs`), only those points (what the next layer reads: an MLP's
 * post-ReLU activations, as in Git Re-Basin's activation matching, a CNN's post-ReLU feature maps and the pooled
 * features the classifier reads); permutations with none keep all their points. `notes` says where it applied.
 */
export function preferLayerInputs<T extends { value: string; base: string }>(model: OnnxModel, uses: readonly T[], notes: string[]): T[] {
  const read = layerInputs(model);
  const keep = new Map<string, T[]>();
  for (const u of uses) if (read.has(u.value)) keep.set(u.base, [...(keep.get(u.base) ?? []), u]);
  for (const [base, list] of keep) {
    const all = uses.filter((u) => u.base === base).length;
    if (list.length < all) notes.push(`${q(base)} is matched on the ${list.length} value(s) that layers with weights read (${list.map((u) => q(u.value)).join(', ')}), not all ${all} points`);
  }
  return uses.filter((u) => !keep.has(u.base) || keep.get(u.base)!.includes(u));
}
