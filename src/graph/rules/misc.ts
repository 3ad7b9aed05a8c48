/**
 * Small rules: Expand broadcasts its input; Constant and ConstantOfShape produce values that no permutation of
 * the graph changes by itself (a Constant tensor is a weight, permuted with whatever it is used with; a filled
 * tensor is the same under any permutation); Shape and Size read only sizes.
 */
import { linkBroadcast, normAxis, type Rule } from '../rule.js';
import { attrInts } from '../model-view.js';

export const expand: Rule = (ctx) => linkBroadcast(ctx, [ctx.node.inputs[0]!], ctx.node.outputs[0]!);

export const constant: Rule = (ctx) => {
  for (const y of ctx.node.outputs) for (let i = 0; i < ctx.rank(y); i++) ctx.invariant(ctx.dim(y, i));
};

export const sizeOnly: Rule = (ctx) => {
  const x = ctx.node.inputs[0]!;
  for (let i = 0; i < ctx.rank(x); i++) ctx.invariant(ctx.dim(x, i));
};

/** Pad: axes with zero padding on both sides pass through; padded axes (or unknown pads) are frozen. */
export const pad: Rule = (ctx) => {
  const x = ctx.node.inputs[0]!;
  const y = ctx.node.outputs[0]!;
  const r = ctx.rank(x);
  const pads = ctx.opset < 11 ? attrInts(ctx.node, 'pads') : ctx.node.inputs[1] ? ctx.ints(ctx.node.inputs[1]) : undefined;
  const axesIn = ctx.node.inputs[3];
  const axes = axesIn ? ctx.ints(axesIn)?.map((a) => normAxis(a, r)!) : Array.from({ length: r }, (_, i) => i);
  const padded = new Set<number>();
  if (!pads || !axes) for (let i = 0; i < r; i++) padded.add(i);
  else axes.forEach((a, k) => (pads[k] !== 0 || pads[k + axes.length] !== 0) && padded.add(a));
  for (let i = 0; i < r; i++) {
    if (!padded.has(i)) ctx.link(ctx.dim(x, i), ctx.dim(y, i));
    else {
      ctx.freeze(ctx.dim(x, i), 'padded axis');
      ctx.freeze(ctx.dim(y, i), 'padded axis');
    }
  }
  for (const extra of ctx.node.inputs.slice(1)) if (extra) for (let i = 0; i < ctx.rank(extra); i++) ctx.invariant(ctx.dim(extra, i));
};
