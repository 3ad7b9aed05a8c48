/**
 * Elementwise ops. Unary ops (Relu, Gelu, Erf, Sqrt, ...) act on each element alone, so every axis passes through.
 * Binary/variadic ops broadcast numpy-style: right-aligned axes of equal size are linked, size-1 axes are not, so a
 * residual Add puts both branches (and everything linked to them) in one group.
 */
import { linkBroadcast, linkSame, type Rule } from '../rule.js';

export const unary: Rule = (ctx) => {
  const x = ctx.node.inputs[0]!;
  const y = ctx.node.outputs[0]!;
  // extra inputs (Clip min/max, Dropout ratio) are scalars and broadcast harmlessly
  linkBroadcast(ctx, ctx.node.inputs.filter((i) => i && i !== x && ctx.shape(i)), y);
  linkSame(ctx, x, y);
};

/** Dropout: output 0 is the input at inference; the optional mask output does not constrain anything. */
export const dropout: Rule = (ctx) => {
  linkSame(ctx, ctx.node.inputs[0]!, ctx.node.outputs[0]!);
  const mask = ctx.node.outputs[1];
  if (mask) for (let i = 0; i < ctx.rank(mask); i++) ctx.invariant(ctx.dim(mask, i));
};

export const broadcast: Rule = (ctx) => {
  const y = ctx.node.outputs[0]!;
  const inputs = ctx.node.inputs.filter((i) => i);
  linkBroadcast(ctx, inputs, y);
  if (ctx.node.opType === 'Add' || ctx.node.opType === 'Sum') {
    // a residual Add: two activations meeting at full size on an axis
    const acts = inputs.filter((i) => !ctx.isWeight(i) && ctx.isFloat(i));
    const sy = ctx.shape(y)!;
    if (acts.length >= 2) {
      for (let i = 0; i < sy.length; i++) {
        const full = acts.every((a) => {
          const s = ctx.shape(a)!;
          const j = i - (sy.length - s.length);
          return j >= 0 && s[j] === sy[i];
        });
        if (full) ctx.note(ctx.dim(y, i), 'residual');
      }
    }
  }
};

/** Cast between float types is elementwise; a cast out of floats leaves the traced graph, so its input freezes. */
export const cast: Rule = (ctx) => {
  const x = ctx.node.inputs[0]!;
  const y = ctx.node.outputs[0]!;
  if (ctx.isFloat(y) || !ctx.isFloat(x)) return linkSame(ctx, x, y);
  ctx.freezeValue(x, `op 'Cast' turns it into a non-float value`);
};
