/**
 * onnxruntime `com.microsoft` SkipLayerNormalization(input, skip, gamma, beta?, bias?) and
 * SkipSimplifiedLayerNormalization(input, skip, gamma, bias?) (docs/ContribOperators.md): s = input + skip + bias,
 * output = LayerNorm(s)·gamma + beta (Simplified: RMSNorm, no beta) over the last axis (hidden size H). Outputs:
 * output [B, S, H], mean and inv_std_var (optional, one value per position: [B, S, 1]), input_skip_bias_sum
 * (optional, s itself). Mean and variance over H do not care about its order, so every axis passes through; gamma,
 * beta and bias ([H]) permute with H; skip may be [B, S, H], [1, S, H] or [S, H] and broadcasts. The sum is a
 * residual connection.
 */
import { linkBroadcast, type Rule } from '../rule.js';

export const skipLayerNorm: Rule = (ctx) => {
  const [output, mean, invStd, sum] = ctx.node.outputs;
  const input = ctx.node.inputs[0]!;
  const inputs = ctx.node.inputs.filter((i) => i && ctx.shape(i));
  linkBroadcast(ctx, inputs, output!);
  if (sum) linkBroadcast(ctx, inputs, sum);
  const r = ctx.rank(input);
  for (const stat of [mean, invStd]) {
    if (!stat) continue;
    const rs = ctx.rank(stat);
    // leading axes are the input's; the last (size 1, or absent) is the statistic's own
    for (let i = 0; i < rs; i++) {
      if (i < r - 1 && ctx.shape(stat)![i] === ctx.shape(input)![i]) ctx.link(ctx.dim(stat, i), ctx.dim(input, i));
      else ctx.invariant(ctx.dim(stat, i));
    }
  }
  if (r > 0) {
    ctx.note(ctx.dim(output!, r - 1), 'norm');
    ctx.note(ctx.dim(output!, r - 1), 'residual');
  }
};
