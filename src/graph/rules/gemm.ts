/**
 * Gemm: Y = alpha * A' B' + beta * C, A' = transA ? Aᵀ : A ([M, K]), B' = transB ? Bᵀ : B ([K, N]). The
 * contraction K links A and B; M passes from A to Y, N from B to Y; C broadcasts onto [M, N].
 */
import { linkBroadcast, type Rule } from '../rule.js';
import { attrInt } from '../model-view.js';

export const gemm: Rule = (ctx) => {
  const [a, b, c] = ctx.node.inputs;
  const y = ctx.node.outputs[0]!;
  const ta = attrInt(ctx.node, 'transA', 0);
  const tb = attrInt(ctx.node, 'transB', 0);
  const aM = ctx.dim(a!, ta ? 1 : 0);
  const aK = ctx.dim(a!, ta ? 0 : 1);
  const bK = ctx.dim(b!, tb ? 1 : 0);
  const bN = ctx.dim(b!, tb ? 0 : 1);
  ctx.link(aK, bK);
  ctx.link(aM, ctx.dim(y, 0));
  ctx.link(bN, ctx.dim(y, 1));
  if (c) linkBroadcast(ctx, [c], y);
  if (ctx.isWeight(b!)) ctx.note(ctx.dim(y, 1), 'linear');
  if (ctx.isWeight(a!)) ctx.note(ctx.dim(y, 0), 'linear');
};
