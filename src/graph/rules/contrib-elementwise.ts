/**
 * onnxruntime `com.microsoft` elementwise ops as the transformer optimizer writes them (docs/ContribOperators.md):
 * Gelu(X), QuickGelu(X; alpha) = X·sigmoid(alpha·X), FastGelu(X, bias?) = gelu(X + bias), BiasGelu(A, B) =
 * gelu(A + B), BiasAdd(X, bias, skip) = X + bias + skip. Each output element reads the same position of every
 * input, the 1-D bias broadcast along the last axis: numpy broadcasting, as for Add, so every axis passes through
 * and the bias permutes with the last axis. BiasAdd's skip is a residual connection.
 */
import { linkBroadcast, type Rule } from '../rule.js';

export const contribElementwise: Rule = (ctx) => {
  const y = ctx.node.outputs[0]!;
  const inputs = ctx.node.inputs.filter((i) => i && ctx.shape(i));
  linkBroadcast(ctx, inputs, y);
  if (ctx.node.opType === 'BiasAdd') {
    const r = ctx.rank(y);
    if (r > 0) ctx.note(ctx.dim(y, r - 1), 'residual');
  }
};
