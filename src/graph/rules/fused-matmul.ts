/**
 * onnxruntime `com.microsoft` FusedMatMul(A, B; alpha, transA, transB, transBatchA, transBatchB) =
 * alpha · A' B' (docs/ContribOperators.md), A' = A with its last two axes swapped when transA (B' likewise), then
 * numpy MatMul. The contraction K links A' and B'; M and N pass through; batch axes broadcast. transBatchA/B move
 * the batch axes into the matrix axes: that mixing is not traced, and the node freezes (with that reason).
 */
import type { Rule } from '../rule.js';
import { attrInt } from '../model-view.js';

export const fusedMatMul: Rule = (ctx) => {
  const [a, b] = ctx.node.inputs as [string, string];
  const y = ctx.node.outputs[0]!;
  if (attrInt(ctx.node, 'transBatchA', 0) || attrInt(ctx.node, 'transBatchB', 0)) {
    const why = `FusedMatMul with transBatchA/transBatchB moves batch axes into the matrix axes (not traced)`;
    for (const v of [a, b, y]) ctx.freezeValue(v, why);
    return;
  }
  const ra = ctx.rank(a);
  const rb = ctx.rank(b);
  const ry = ctx.rank(y);
  if (ra < 2 || rb < 2) {
    const why = `FusedMatMul with a 1-D operand (not traced)`;
    for (const v of [a, b, y]) ctx.freezeValue(v, why);
    return;
  }
  const ta = attrInt(ctx.node, 'transA', 0);
  const tb = attrInt(ctx.node, 'transB', 0);
  const aM = ctx.dim(a, ta ? ra - 1 : ra - 2);
  const aK = ctx.dim(a, ta ? ra - 2 : ra - 1);
  const bK = ctx.dim(b, tb ? rb - 1 : rb - 2);
  const bN = ctx.dim(b, tb ? rb - 2 : rb - 1);
  ctx.link(aK, bK);
  ctx.link(aM, ctx.dim(y, ry - 2));
  ctx.link(bN, ctx.dim(y, ry - 1));
  const sy = ctx.shape(y)!;
  for (const [v, r] of [
    [a, ra],
    [b, rb],
  ] as const) {
    const s = ctx.shape(v)!;
    for (let i = 0; i < r - 2; i++) {
      const j = ry - 2 - (r - 2) + i;
      const d = ctx.dim(v, i);
      if (s[i] === 1 && sy[j] !== 1) ctx.invariant(d);
      else ctx.link(d, ctx.dim(y, j));
    }
  }
  const wa = ctx.isWeight(a);
  const wb = ctx.isWeight(b);
  if (wb) ctx.note(ctx.dim(y, ry - 1), 'linear');
  else if (wa) ctx.note(ctx.dim(y, ry - 2), 'linear');
  else ctx.note(aK, 'attention');
};
