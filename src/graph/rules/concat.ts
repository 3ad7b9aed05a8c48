/**
 * Concat and Split along an axis: the axis is its parts one after another (a block-diagonal `concat` perm, each
 * part permuted by its own group); every other axis passes through.
 */
import { normAxis, type Rule } from '../rule.js';
import { attrInt } from '../model-view.js';

export const concat: Rule = (ctx) => {
  const y = ctx.node.outputs[0]!;
  const r = ctx.rank(y);
  const axis = normAxis(attrInt(ctx.node, 'axis', 0), r)!;
  const parts: number[] = [];
  for (const x of ctx.node.inputs) {
    if (!x || !ctx.shape(x)) continue;
    for (let i = 0; i < r; i++) {
      if (i === axis) {
        if (ctx.shape(x)![i]! > 0) parts.push(ctx.dim(x, i)!);
      } else ctx.link(ctx.dim(x, i), ctx.dim(y, i));
    }
  }
  ctx.concat(ctx.dim(y, axis)!, parts);
};

export const split: Rule = (ctx) => {
  const x = ctx.node.inputs[0]!;
  const r = ctx.rank(x);
  const axis = normAxis(attrInt(ctx.node, 'axis', 0), r)!;
  const parts: number[] = [];
  for (const y of ctx.node.outputs) {
    if (!y || !ctx.shape(y)) continue;
    for (let i = 0; i < r; i++) {
      if (i === axis) {
        if (ctx.shape(y)![i]! > 0) parts.push(ctx.dim(y, i)!);
      } else ctx.link(ctx.dim(x, i), ctx.dim(y, i));
    }
  }
  ctx.concat(ctx.dim(x, axis)!, parts);
};
