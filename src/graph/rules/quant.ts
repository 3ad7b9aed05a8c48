/**
 * Quantization ops of the ai.onnx domain (semantics: ONNX operator docs, opsets 10–21).
 * - QuantizeLinear(x, y_scale, y_zero_point?) → saturate(round(x / scale) + zp) and DequantizeLinear(x, x_scale,
 *   x_zero_point?) → (x − zp)·scale are elementwise: every axis passes through. Scale and zero point are per tensor
 *   (one value: invariant), per axis (1-D along attribute `axis`, default 1: permuted with that axis), or blocked
 *   (opset 21 `block_size` > 0: same rank as x, one value per block of `axis`: whole blocks move together, the
 *   order inside a block stays).
 * - DynamicQuantizeLinear(x) → y, y_scale, y_zero_point: the scale comes from min and max over the whole tensor, so
 *   it holds under any permutation; y follows x.
 * - MatMulInteger(A, B, a_zero_point?, b_zero_point?) and QLinearMatMul(a, a_scale, a_zp, b, b_scale, b_zp,
 *   y_scale, y_zp): MatMul on A and B; per-row parameters follow A's (and y's) rows, per-column ones B's columns.
 * - ConvInteger(x, w, x_zero_point?, w_zero_point?) and QLinearConv(x, x_scale, x_zp, w, w_scale, w_zp, y_scale,
 *   y_zp, B?): Conv on x, w (and the int32 bias B); per-output-channel w parameters follow the output channels.
 * Integer weights are permuted bit-exactly like float ones (src/spec/permute-model.ts moves stored bytes).
 */
import { linkSame, normAxis, type Rule, type RuleContext } from '../rule.js';
import type { DimId } from '../dims.js';
import { attrInt, type NodeView } from '../model-view.js';
import { matmul } from './matmul.js';
import { conv } from './conv.js';

/** The same context with the node seen as having other inputs (an integer op handed to its float op's rule). */
export function withInputs(ctx: RuleContext, inputs: string[], node: Partial<NodeView> = {}): RuleContext {
  return { ...ctx, node: { ...ctx.node, ...node, inputs } };
}

/**
 * A scale or zero point of data whose quantized axis is `d`: one value is per tensor (invariant); a 1-D tensor
 * holds one value per position of `d` and is linked with it. Anything else is frozen, naming the parameter.
 */
export function quantParam(ctx: RuleContext, param: string | undefined, d: DimId | undefined): void {
  if (!param) return;
  const s = ctx.shape(param);
  if (!s) return;
  if (s.reduce((a, b) => a * b, 1) === 1) {
    for (let i = 0; i < s.length; i++) ctx.invariant(ctx.dim(param, i));
    return;
  }
  if (s.length === 1 && d !== undefined) return ctx.link(ctx.dim(param, 0), d);
  ctx.freezeValue(param, `quantization parameter of shape [${s.join(', ')}] of '${ctx.node.opType}' is neither per tensor nor per axis`);
}

/** The row axis (second to last) of a MatMul operand, or undefined for a vector. */
function rows(ctx: RuleContext, v: string): DimId | undefined {
  return ctx.rank(v) >= 2 ? ctx.dim(v, -2) : undefined;
}

/** The column axis (last) of a MatMul's second operand, or undefined for a vector. */
function cols(ctx: RuleContext, v: string): DimId | undefined {
  return ctx.rank(v) >= 2 ? ctx.dim(v, -1) : undefined;
}

/** QuantizeLinear and DequantizeLinear: x and y elementwise; scale and zero point per tensor, per axis or blocked. */
export const quantizeLinear: Rule = (ctx) => {
  const [x, scale, zp] = ctx.node.inputs as [string, string, string | undefined];
  const y = ctx.node.outputs[0]!;
  linkSame(ctx, x, y);
  const r = ctx.rank(x);
  const s = ctx.shape(scale) ?? [];
  const blockSize = attrInt(ctx.node, 'block_size', 0);
  const axis = normAxis(attrInt(ctx.node, 'axis', 1), r);
  if (blockSize <= 0 || s.reduce((a, b) => a * b, 1) === 1) {
    const d = axis === undefined ? undefined : ctx.dim(x, axis);
    quantParam(ctx, scale, d);
    quantParam(ctx, zp, d);
    return;
  }
  // blocked: the scale has x's rank, with ceil(n / block_size) along the axis
  const n = axis === undefined ? 0 : ctx.shape(x)![axis]!;
  if (axis === undefined || s.length !== r || n % blockSize !== 0 || s[axis] !== n / blockSize) {
    const why = `blocked quantization (block_size=${blockSize}) of '${ctx.node.opType}' that does not split the axis into whole blocks`;
    ctx.freezeValue(x, why);
    ctx.freezeValue(scale, why);
    if (zp) ctx.freezeValue(zp, why);
    return;
  }
  for (const p of [scale, zp]) {
    if (!p) continue;
    for (let i = 0; i < r; i++) if (i !== axis) ctx.link(ctx.dim(p, i), ctx.dim(x, i));
  }
  const inner = ctx.virtual(blockSize);
  ctx.freeze(inner, `order within a quantization block (block_size=${blockSize})`);
  ctx.factor(ctx.dim(x, axis)!, [ctx.dim(scale, axis)!, inner]);
  if (zp) ctx.link(ctx.dim(zp, axis), ctx.dim(scale, axis));
};

/** DynamicQuantizeLinear: y follows x; its scale and zero point are scalars over the whole tensor. */
export const dynamicQuantizeLinear: Rule = (ctx) => {
  linkSame(ctx, ctx.node.inputs[0]!, ctx.node.outputs[0]!);
  for (const p of ctx.node.outputs.slice(1)) quantParam(ctx, p, undefined);
};

/** MatMulInteger: MatMul of A and B; a_zero_point per row of A, b_zero_point per column of B. */
export const matMulInteger: Rule = (ctx) => {
  const [a, b, azp, bzp] = ctx.node.inputs as [string, string, string | undefined, string | undefined];
  matmul(withInputs(ctx, [a, b]));
  quantParam(ctx, azp, rows(ctx, a));
  quantParam(ctx, bzp, cols(ctx, b));
};

/** QLinearMatMul: MatMul of a and b; a's and y's parameters per row, b's per column. */
export const qLinearMatMul: Rule = (ctx) => {
  const [a, as, azp, b, bs, bzp, ys, yzp] = ctx.node.inputs as string[];
  const y = ctx.node.outputs[0]!;
  matmul(withInputs(ctx, [a!, b!]));
  for (const p of [as, azp]) quantParam(ctx, p, rows(ctx, a!));
  for (const p of [bs, bzp]) quantParam(ctx, p, cols(ctx, b!));
  for (const p of [ys, yzp]) quantParam(ctx, p, rows(ctx, y));
};

/** ConvInteger: Conv of x and w (no bias); x_zero_point per input channel, w_zero_point per output channel. */
export const convInteger: Rule = (ctx) => {
  const [x, w, xzp, wzp] = ctx.node.inputs as [string, string, string | undefined, string | undefined];
  conv(withInputs(ctx, [x, w]));
  quantParam(ctx, xzp, ctx.dim(x, 1));
  quantParam(ctx, wzp, ctx.dim(w, 0));
};

/** QLinearConv: Conv of x and w with the int32 bias B; w's parameters per output channel. */
export const qLinearConv: Rule = (ctx) => {
  const [x, xs, xzp, w, ws, wzp, ys, yzp, bias] = ctx.node.inputs as string[];
  const y = ctx.node.outputs[0]!;
  conv(withInputs(ctx, bias ? [x!, w!, bias] : [x!, w!]));
  for (const p of [xs, xzp]) quantParam(ctx, p, ctx.dim(x!, 1));
  for (const p of [ws, wzp]) quantParam(ctx, p, ctx.dim(w!, 0));
  for (const p of [ys, yzp]) quantParam(ctx, p, ctx.dim(y, 1));
};
