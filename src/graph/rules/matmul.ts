/**
 * MatMul (numpy semantics): [..., M, K] x [..., K, N] -> [..., M, N]; 1-D operands gain and lose an axis. The
 * contraction links K on both sides; M and N pass through; leading (batch) axes broadcast. With a weight on
 * either side this is a Linear layer; with activations on both sides it is attention: Q·Kᵀ links the within-head
 * dims of Q and K (and the head axes, as batch axes), scores·V links the head axes and passes V's within-head dim.
 */
import type { Rule } from '../rule.js';

export const matmul: Rule = (ctx) => {
  const [a, b] = ctx.node.inputs as [string, string];
  const y = ctx.node.outputs[0]!;
  const ra = ctx.rank(a);
  const rb = ctx.rank(b);
  const ry = ctx.rank(y);
  const sa = ctx.shape(a)!;
  const sb = ctx.shape(b)!;
  const sy = ctx.shape(y)!;
  const aK = ctx.dim(a, ra - 1);
  const bK = ctx.dim(b, rb === 1 ? 0 : rb - 2);
  ctx.link(aK, bK);
  if (ra >= 2) ctx.link(ctx.dim(a, ra - 2), ctx.dim(y, rb === 1 ? ry - 1 : ry - 2));
  if (rb >= 2) ctx.link(ctx.dim(b, rb - 1), ctx.dim(y, ry - 1));
  const yBatch = ry - (ra >= 2 ? 1 : 0) - (rb >= 2 ? 1 : 0);
  for (const [v, r, s] of [
    [a, ra, sa],
    [b, rb, sb],
  ] as const) {
    const nb = r - 2;
    for (let i = 0; i < nb; i++) {
      const j = yBatch - nb + i;
      const d = ctx.dim(v, i);
      if (s[i] === 1 && sy[j] !== 1) ctx.invariant(d);
      else ctx.link(d, ctx.dim(y, j));
    }
  }
  const wa = ctx.isWeight(a);
  const wb = ctx.isWeight(b);
  if (wb && rb >= 2) ctx.note(ctx.dim(y, ry - 1), 'linear');
  else if (wa && ra >= 2) ctx.note(ctx.dim(y, rb === 1 ? ry - 1 : ry - 2), 'linear');
  else if (!wa && !wb) ctx.note(aK, 'attention');
};
