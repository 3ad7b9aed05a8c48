/**
 * onnxruntime's quantized `com.microsoft` ops (semantics: onnxruntime docs/ContribOperators.md), each handed to its
 * float op's rule with the quantization parameters placed like quant.ts places them:
 * - QLinearAdd / QLinearMul(A, A_scale, A_zp, B, B_scale, B_zp, C_scale, C_zp): broadcast of A and B.
 * - QLinearSigmoid / QLinearLeakyRelu(X, X_scale, X_zp, Y_scale, Y_zp): elementwise.
 * - QGemm(A, a_scale, a_zp, B, b_scale, b_zp, C?, y_scale?, y_zp?; transA, transB): Gemm; b's parameters per
 *   column of B' (per output unit).
 * - DynamicQuantizeMatMul(A, B, b_scale, b_zp?, bias?) and MatMulIntegerToFloat(A, B, a_scale, b_scale, a_zp?, b_zp?,
 *   bias?): MatMul; b's parameters and the bias per column.
 * - QLinearGlobalAveragePool(X, x_scale, x_zp, y_scale, y_zp; channels_last): a global pool.
 * - QLinearConcat(Y_scale, Y_zp, then (X, X_scale, X_zp) per input; axis): Concat of the X's.
 * - QuantizeLinear / DequantizeLinear: as in the ai.onnx domain.
 */
import { linkBroadcast, linkSame, type Rule } from '../rule.js';
import { attrInt } from '../model-view.js';
import { broadcast } from './elementwise.js';
import { concat } from './concat.js';
import { gemm } from './gemm.js';
import { matmul } from './matmul.js';
import { globalPool } from './pool.js';
import { quantizeLinear, quantParam, withInputs } from './quant.js';

const binary: Rule = (ctx) => {
  const [a, as, azp, b, bs, bzp, cs, czp] = ctx.node.inputs as string[];
  broadcast(withInputs(ctx, [a!, b!], { opType: ctx.node.opType === 'QLinearAdd' ? 'Add' : 'Mul' }));
  for (const p of [as, azp, bs, bzp, cs, czp]) quantParam(ctx, p, undefined);
};

const unary: Rule = (ctx) => {
  const [x, xs, xzp, ys, yzp] = ctx.node.inputs as string[];
  linkSame(ctx, x!, ctx.node.outputs[0]!);
  for (const p of [xs, xzp, ys, yzp]) quantParam(ctx, p, undefined);
};

const qGemm: Rule = (ctx) => {
  const [a, as, azp, b, bs, bzp, c, ys, yzp] = ctx.node.inputs as string[];
  gemm(withInputs(ctx, c ? [a!, b!, c] : [a!, b!]));
  const n = ctx.dim(b!, attrInt(ctx.node, 'transB', 0) ? 0 : 1);
  for (const p of [as, azp, ys, yzp]) quantParam(ctx, p, undefined);
  for (const p of [bs, bzp]) quantParam(ctx, p, n);
};

const matMulToFloat = (scales: { a?: number[]; b: number[]; bias: number }): Rule => (ctx) => {
  const ins = ctx.node.inputs;
  const [a, b] = ins as [string, string];
  const y = ctx.node.outputs[0]!;
  matmul(withInputs(ctx, [a, b]));
  for (const i of scales.a ?? []) quantParam(ctx, ins[i], undefined);
  for (const i of scales.b) quantParam(ctx, ins[i], ctx.dim(b, -1));
  const bias = ins[scales.bias];
  if (bias) linkBroadcast(ctx, [bias], y);
};

const qGlobalPool: Rule = (ctx) => {
  const [x, xs, xzp, ys, yzp] = ctx.node.inputs as string[];
  const y = ctx.node.outputs[0]!;
  for (const p of [xs, xzp, ys, yzp]) quantParam(ctx, p, undefined);
  if (!attrInt(ctx.node, 'channels_last', 0)) return globalPool(withInputs(ctx, [x!]));
  const r = ctx.rank(x!);
  ctx.link(ctx.dim(x!, 0), ctx.dim(y, 0));
  ctx.link(ctx.dim(x!, r - 1), ctx.dim(y, r - 1));
  for (let i = 1; i < r - 1; i++) {
    ctx.invariant(ctx.dim(x!, i));
    ctx.invariant(ctx.dim(y, i));
  }
};

const qConcat: Rule = (ctx) => {
  const ins = ctx.node.inputs;
  const xs = ins.filter((_, i) => i >= 2 && (i - 2) % 3 === 0);
  concat(withInputs(ctx, xs));
  ins.forEach((p, i) => (i < 2 || (i - 2) % 3 !== 0) && quantParam(ctx, p, undefined));
};

export const QUANT_CONTRIB_RULES: ReadonlyArray<readonly [string, Rule]> = [
  ['QuantizeLinear', quantizeLinear], // the com.microsoft forms older quantizers write (per-axis before opset 13)
  ['DequantizeLinear', quantizeLinear],
  ['QLinearAdd', binary],
  ['QLinearMul', binary],
  ['QLinearSigmoid', unary],
  ['QLinearLeakyRelu', unary],
  ['QGemm', qGemm],
  ['DynamicQuantizeMatMul', matMulToFloat({ b: [2, 3], bias: 4 })],
  ['MatMulIntegerToFloat', matMulToFloat({ a: [2, 4], b: [3, 5], bias: 6 })],
  ['QLinearGlobalAveragePool', qGlobalPool],
  ['QLinearConcat', qConcat],
];
