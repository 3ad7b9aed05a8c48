/**
 * Normalizations. BatchNormalization and InstanceNormalization: per-channel parameters [C] on X.1, every axis
 * passes through (instance statistics over the spatial axes do not care about their order). LayerNormalization:
 * every axis passes through (mean and variance over the normalized axes do not care about their order), scale
 * and bias broadcast along the normalized axes; the optional Mean/InvStdDev outputs keep the leading axes.
 */
import { linkBroadcast, linkSame, normAxis, type Rule } from '../rule.js';
import { attrInt } from '../model-view.js';

export const batchNorm: Rule = (ctx) => {
  const [x, ...params] = ctx.node.inputs as [string, ...string[]];
  const y = ctx.node.outputs[0]!;
  linkSame(ctx, x, y);
  const c = ctx.dim(x, 1);
  for (const p of params) if (p) ctx.link(ctx.dim(p, 0), c);
  for (const o of ctx.node.outputs.slice(1)) if (o) ctx.link(ctx.dim(o, 0), c);
  ctx.note(c, 'batchnorm');
};

export const instanceNorm: Rule = (ctx) => {
  const [x, scale, bias] = ctx.node.inputs as [string, string, string];
  const y = ctx.node.outputs[0]!;
  linkSame(ctx, x, y);
  ctx.link(ctx.dim(scale, 0), ctx.dim(x, 1));
  ctx.link(ctx.dim(bias, 0), ctx.dim(x, 1));
};

export const layerNorm: Rule = (ctx) => {
  const [x, scale, bias] = ctx.node.inputs as [string, string, string | undefined];
  const y = ctx.node.outputs[0]!;
  const r = ctx.rank(x);
  const axis = normAxis(attrInt(ctx.node, 'axis', -1), r) ?? r - 1;
  linkSame(ctx, x, y);
  linkBroadcast(ctx, [scale, ...(bias ? [bias] : [])], y);
  for (let i = axis; i < r; i++) ctx.note(ctx.dim(y, i), 'norm');
  for (const o of ctx.node.outputs.slice(1)) {
    if (!o) continue;
    for (let i = 0; i < ctx.rank(o); i++) {
      if (i < axis) ctx.link(ctx.dim(o, i), ctx.dim(x, i));
      else ctx.invariant(ctx.dim(o, i));
    }
  }
};
