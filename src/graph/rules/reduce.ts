/**
 * Symmetric reductions (ReduceMean, ReduceSum, ReduceMax, ...): the result does not depend on the order of the
 * reduced axes, so they are invariant (a mean over the channel axis is unchanged by a channel permutation); the
 * other axes pass through. Reduced axes kept with keepdims have size 1. A mean over the last axis is how a
 * decomposed LayerNorm starts, which the report uses to describe residual streams.
 */
import { normAxis, type Rule } from '../rule.js';
import { attrInt, attrInts } from '../model-view.js';

export const reduce: Rule = (ctx) => {
  const x = ctx.node.inputs[0]!;
  const y = ctx.node.outputs[0]!;
  const r = ctx.rank(x);
  const keep = attrInt(ctx.node, 'keepdims', 1) === 1;
  let axes = attrInts(ctx.node, 'axes');
  const axesInput = ctx.node.inputs[1];
  if (axes === undefined && axesInput) {
    axes = ctx.ints(axesInput);
    if (axes === undefined) return ctx.freezeValue(x, `reduction axes are not constant`);
  }
  let reduced: Set<number>;
  if (!axes || axes.length === 0) {
    const noop = attrInt(ctx.node, 'noop_with_empty_axes', 0) === 1;
    reduced = new Set(noop ? [] : Array.from({ length: r }, (_, i) => i));
  } else reduced = new Set(axes.map((a) => normAxis(a, r)!));
  let j = 0;
  for (let i = 0; i < r; i++) {
    const d = ctx.dim(x, i);
    if (reduced.has(i)) {
      ctx.invariant(d);
      if (keep) ctx.invariant(ctx.dim(y, j++));
      if (i === r - 1 && keep && ctx.node.opType === 'ReduceMean') ctx.note(d, 'norm');
    } else ctx.link(d, ctx.dim(y, j++));
  }
};
