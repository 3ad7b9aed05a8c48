/**
 * Conv: X [N, C, ...], W [M, C/group, k...], B [M] -> Y [N, M, ...]. group=1: X.1~W.1 and Y.1~W.0~B. Depthwise
 * (group = C, one input channel per group): input and output channels are one group, X.1~Y.1~W.0~B (a channel
 * multiplier m > 1 makes Y.1 the input channels expanded by m). Other groupings freeze the channels. Spatial axes
 * and kernel axes mix neighbouring positions and are frozen. ConvTranspose has W [C, M/group, k...].
 */
import type { Rule, RuleContext } from '../rule.js';
import { attrInt } from '../model-view.js';

function spatial(ctx: RuleContext, x: string, w: string, y: string, op: string): void {
  for (let i = 2; i < ctx.rank(x); i++) ctx.freeze(ctx.dim(x, i), `spatial axis of ${op}`);
  for (let i = 2; i < ctx.rank(y); i++) ctx.freeze(ctx.dim(y, i), `spatial axis of ${op}`);
  for (let i = 2; i < ctx.rank(w); i++) ctx.freeze(ctx.dim(w, i), `kernel axis of ${op}`);
  ctx.link(ctx.dim(x, 0), ctx.dim(y, 0));
}

export const conv: Rule = (ctx) => {
  const [x, w, b] = ctx.node.inputs as [string, string, string | undefined];
  const y = ctx.node.outputs[0]!;
  const group = attrInt(ctx.node, 'group', 1);
  spatial(ctx, x, w, y, 'Conv');
  const cin = ctx.shape(x)![1]!;
  const wIn = ctx.shape(w)![1]!;
  const yC = ctx.dim(y, 1)!;
  ctx.link(ctx.dim(w, 0), yC);
  if (b) ctx.link(ctx.dim(b, 0), yC);
  if (group === 1) {
    ctx.link(ctx.dim(x, 1), ctx.dim(w, 1));
    ctx.note(yC, 'conv');
  } else if (group === cin && wIn === 1) {
    const mult = ctx.shape(y)![1]! / cin;
    ctx.invariant(ctx.dim(w, 1));
    if (mult === 1) ctx.link(ctx.dim(x, 1), yC);
    else {
      const m = ctx.virtual(mult);
      ctx.freeze(m, `channel multiplier of depthwise Conv`);
      ctx.factor(yC, [ctx.dim(x, 1)!, m]);
    }
    ctx.note(yC, 'conv');
  } else {
    const why = `grouped Conv (group=${group}) mixes channels within groups`;
    ctx.freeze(ctx.dim(x, 1), why);
    ctx.freeze(ctx.dim(w, 1), why);
    ctx.freeze(yC, why);
  }
};

export const convTranspose: Rule = (ctx) => {
  const [x, w, b] = ctx.node.inputs as [string, string, string | undefined];
  const y = ctx.node.outputs[0]!;
  const group = attrInt(ctx.node, 'group', 1);
  spatial(ctx, x, w, y, 'ConvTranspose');
  const yC = ctx.dim(y, 1);
  ctx.link(ctx.dim(w, 1), yC);
  if (b) ctx.link(ctx.dim(b, 0), yC);
  if (group === 1) {
    ctx.link(ctx.dim(x, 1), ctx.dim(w, 0));
    ctx.note(yC, 'conv');
  } else {
    const why = `grouped ConvTranspose (group=${group}) mixes channels within groups`;
    ctx.freeze(ctx.dim(x, 1), why);
    ctx.freeze(ctx.dim(w, 0), why);
    ctx.freeze(yC, why);
  }
};
