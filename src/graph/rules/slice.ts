/**
 * Slice: an unsliced (full-range) axis passes through. A contiguous, step-1 slice of an axis makes the output one
 * block of it: the axis becomes [before, output, after] (a fused QKV projection sliced into Q, K and V is three
 * such blocks). Strided, reversed, or non-constant slices of an axis freeze it.
 */
import { normAxis, type Rule } from '../rule.js';
import { attrInts } from '../model-view.js';

export const slice: Rule = (ctx) => {
  const x = ctx.node.inputs[0]!;
  const y = ctx.node.outputs[0]!;
  const sx = ctx.shape(x)!;
  const sy = ctx.shape(y)!;
  const r = sx.length;
  let starts: number[] | undefined;
  let axes: number[] | undefined;
  let steps: number[] | undefined;
  if (ctx.opset < 10) {
    starts = attrInts(ctx.node, 'starts');
    axes = attrInts(ctx.node, 'axes');
  } else {
    const [, s, , a, st] = ctx.node.inputs;
    starts = s ? ctx.ints(s) : undefined;
    axes = a ? ctx.ints(a) : undefined;
    steps = st ? ctx.ints(st) : undefined;
    if (a && !axes) starts = undefined;
    if (st && !steps) starts = undefined;
  }
  const spec = new Map<number, { start: number; step: number }>();
  if (starts) {
    starts.forEach((s, k) => {
      const axis = normAxis(axes ? axes[k]! : k, r)!;
      spec.set(axis, { start: s, step: steps ? steps[k]! : 1 });
    });
  }
  for (let i = 0; i < r; i++) {
    const dx = ctx.dim(x, i)!;
    const dy = ctx.dim(y, i)!;
    if (sx[i] === sy[i] && (spec.get(i)?.step ?? 1) === 1) {
      ctx.link(dx, dy);
      continue;
    }
    const s = spec.get(i);
    if (!starts) {
      ctx.freeze(dx, `Slice bounds are not constant`);
      ctx.freeze(dy, `Slice bounds are not constant`);
      continue;
    }
    if (!s || s.step !== 1) {
      ctx.freeze(dx, `strided Slice (step ${s?.step}) of this axis`);
      ctx.freeze(dy, `strided Slice (step ${s?.step}) of this axis`);
      continue;
    }
    const n = sx[i]!;
    const start = Math.min(Math.max(s.start < 0 ? s.start + n : s.start, 0), n);
    const len = sy[i]!;
    const parts: number[] = [];
    if (start > 0) parts.push(ctx.virtual(start));
    parts.push(dy);
    if (n - start - len > 0) parts.push(ctx.virtual(n - start - len));
    ctx.concat(dx, parts);
  }
};
