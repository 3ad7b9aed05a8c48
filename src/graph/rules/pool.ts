/**
 * Pooling. Windowed pools (MaxPool, AveragePool, LpPool) mix neighbouring positions: batch and channels pass
 * through, spatial axes are frozen (a MaxPool Indices output encodes channel offsets, and freezes with them as a
 * non-float value). Global pools read every position alike: spatial axes are invariant.
 */
import type { Rule } from '../rule.js';

export const pool: Rule = (ctx) => {
  const x = ctx.node.inputs[0]!;
  const r = ctx.rank(x);
  for (const y of ctx.node.outputs) {
    if (!y) continue;
    ctx.link(ctx.dim(x, 0), ctx.dim(y, 0));
    ctx.link(ctx.dim(x, 1), ctx.dim(y, 1));
    for (let i = 2; i < r; i++) ctx.freeze(ctx.dim(y, i), `spatial axis of ${ctx.node.opType}`);
  }
  for (let i = 2; i < r; i++) ctx.freeze(ctx.dim(x, i), `spatial axis of ${ctx.node.opType}`);
};

export const globalPool: Rule = (ctx) => {
  const x = ctx.node.inputs[0]!;
  const y = ctx.node.outputs[0]!;
  ctx.link(ctx.dim(x, 0), ctx.dim(y, 0));
  ctx.link(ctx.dim(x, 1), ctx.dim(y, 1));
  for (let i = 2; i < ctx.rank(x); i++) {
    ctx.invariant(ctx.dim(x, i));
    ctx.invariant(ctx.dim(y, i));
  }
};
