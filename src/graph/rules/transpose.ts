/** Transpose: output axis i is input axis perm[i] (default: reversed). */
import type { Rule } from '../rule.js';
import { attrInts } from '../model-view.js';

export const transpose: Rule = (ctx) => {
  const x = ctx.node.inputs[0]!;
  const y = ctx.node.outputs[0]!;
  const r = ctx.rank(x);
  const perm = attrInts(ctx.node, 'perm') ?? Array.from({ length: r }, (_, i) => r - 1 - i);
  perm.forEach((p, i) => ctx.link(ctx.dim(x, p), ctx.dim(y, i)));
};
