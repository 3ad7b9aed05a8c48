/**
 * Conv: X [N, C, ...], W [M, C/group, k...], B [M] -> Y [N, M, ...]. group=1: X.1~W.1 and Y.1~W.0~B. Depthwise
 * (group = C, one input channel per group): input and output channels are one group, X.1~Y.1~W.0~B (a channel
 * multiplier m > 1 makes Y.1 the input channels expanded by m). Other groupings: see groupedChannels. Spatial axes
 * and kernel axes mix neighbouring positions and are frozen. ConvTranspose has W [C, M/group, k...]: its input
 * channels are `group` blocks with their own orders (W's rows), its output channels one within-group order (W's
 * axis 1) repeated over the groups.
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
  } else groupedChannels(ctx, group, ctx.dim(x, 1)!, ctx.dim(w, 1)!, yC, cin, ctx.shape(y)![1]!);
};

/**
 * A grouped Conv (1 < group, not depthwise): output group j reads only input group j. The input channels are
 * [group, C/group] with one within-group permutation shared by every group (it is W's axis 1, the same for all
 * output channels); the output channels are `group` blocks, each with its own permutation (W's axis 0 rows of one
 * group read the same inputs). Moving whole groups as blocks is also valid, but the input side would then need a
 * block map tied to the output side's with a shared within-block order, which a spec cannot express: the group
 * order stays fixed.
 */
function groupedChannels(ctx: RuleContext, group: number, xC: number, wIn: number, yC: number, cin: number, cout: number): void {
  if (cin % group !== 0 || cout % group !== 0 || ctx.shape(ctx.node.inputs[1]!)![1]! * group !== cin) {
    const why = `grouped Conv (group=${group}) does not split ${cin} input and ${cout} output channels evenly`;
    ctx.freeze(xC, why);
    ctx.freeze(wIn, why);
    ctx.freeze(yC, why);
    return;
  }
  const groupsIn = ctx.virtual(group);
  ctx.freeze(groupsIn, `order of the ${group} groups of a grouped Conv`);
  ctx.factor(xC, [groupsIn, wIn]);
  ctx.concat(yC, Array.from({ length: group }, () => ctx.virtual(cout / group)));
  ctx.note(yC, 'conv');
}

export const convTranspose: Rule = (ctx) => {
  const [x, w, b] = ctx.node.inputs as [string, string, string | undefined];
  const y = ctx.node.outputs[0]!;
  const group = attrInt(ctx.node, 'group', 1);
  spatial(ctx, x, w, y, 'ConvTranspose');
  const yC = ctx.dim(y, 1)!;
  if (b) ctx.link(ctx.dim(b, 0), yC);
  ctx.link(ctx.dim(x, 1), ctx.dim(w, 0));
  if (group === 1) {
    ctx.link(ctx.dim(w, 1), yC);
    ctx.note(yC, 'conv');
    return;
  }
  const cin = ctx.shape(x)![1]!;
  const cout = ctx.shape(y)![1]!;
  const wOut = ctx.shape(w)![1]!;
  if (cin % group !== 0 || wOut * group !== cout) {
    const why = `grouped ConvTranspose (group=${group}) does not split ${cin} input and ${cout} output channels evenly`;
    ctx.freeze(ctx.dim(x, 1), why);
    ctx.freeze(ctx.dim(w, 1), why);
    ctx.freeze(yC, why);
    return;
  }
  if (group === cin && wOut === 1) {
    // depthwise: channel j in, channel j out
    ctx.invariant(ctx.dim(w, 1));
    ctx.link(ctx.dim(x, 1), yC);
    ctx.note(yC, 'conv');
    return;
  }
  if (group === cin) {
    // one input channel per group feeding wOut outputs: moving it moves a whole output group (not expressible)
    ctx.freeze(ctx.dim(x, 1), `input channels of grouped ConvTranspose (group=${group}), one per group: the group order stays fixed`);
  } else {
    // the mirror of a grouped Conv: input group j (W's rows, each its own order) feeds output group j, whose
    // within-group order is W's axis 1, shared by every group
    ctx.concat(ctx.dim(x, 1)!, Array.from({ length: group }, () => ctx.virtual(cin / group)));
  }
  const groupsOut = ctx.virtual(group);
  ctx.freeze(groupsOut, `order of the ${group} groups of a grouped ConvTranspose`);
  ctx.factor(yC, [groupsOut, ctx.dim(w, 1)!]);
  ctx.note(yC, 'conv');
};
