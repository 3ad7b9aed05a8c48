/**
 * Filled values: a ConstantOfShape output holds one value everywhere, and so does anything that only moves or
 * selects its elements (Slice, Reshape, Transpose, Expand, ...). Every permutation of any axis leaves such a
 * value unchanged, so the nodes that carve it up tie nothing: torch's recurrent exports slice one zero tensor
 * [layers·D, batch, H] into every layer's initial state, which would otherwise force all layers onto one
 * hidden permutation.
 */
import type { NodeView } from './model-view.js';
import type { Rule } from './rule.js';

/** Default-domain ops whose output is made of its first input's elements only (the other inputs are indices, shapes). */
const LAYOUT_OPS = new Set(['Slice', 'Reshape', 'Transpose', 'Expand', 'Squeeze', 'Unsqueeze', 'Flatten', 'Identity', 'Cast', 'Tile', 'Gather', 'Split', 'CastLike']);

/** Names of filled values, in one pass over the nodes (in order). */
export function filledValues(nodes: readonly NodeView[]): Set<string> {
  const filled = new Set<string>();
  for (const n of nodes) {
    if (n.domain) continue;
    if (n.opType === 'ConstantOfShape' || (LAYOUT_OPS.has(n.opType) && filled.has(n.inputs[0] ?? ''))) for (const o of n.outputs) if (o) filled.add(o);
  }
  return filled;
}

/** Whether `node` only rearranges a filled value (its rule is then `filledRule`). */
export function rearrangesFilled(node: NodeView, filled: ReadonlySet<string>): boolean {
  return !node.domain && LAYOUT_OPS.has(node.opType) && filled.has(node.inputs[0] ?? '');
}

/** Every axis of the node's values is unchanged by any permutation: no link, no freeze. */
export const filledRule: Rule = (ctx) => {
  for (const v of [...ctx.node.inputs, ...ctx.node.outputs]) if (v) for (let i = 0; i < ctx.rank(v); i++) ctx.invariant(ctx.dim(v, i));
};
