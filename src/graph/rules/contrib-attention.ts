/**
 * onnxruntime `com.microsoft` attention ops (docs/ContribOperators.md), traced as the unfused graph they replace.
 *
 * Attention(input [B, S, D], weights [D, Dq+Dk+Dv], bias [Dq+Dk+Dv], mask_index?, past?, attention_bias?; num_heads,
 * qkv_hidden_sizes) -> output [B, S, Dv]: one packed projection, split into Q, K, V (sizes from qkv_hidden_sizes,
 * else three equal thirds), each Q/K/V axis heads × head size (head-major, as the kernel reads it).
 * MultiHeadAttention(query [B, S, Dq], key [B, L, Dq], value [B, L, Dv], bias? [Dq+Dq+Dv], key_padding_mask?,
 * attention_bias?; num_heads) -> output [B, S, Dv]: the same with Q, K, V computed outside.
 *
 * Symmetries (the ones basin finds for the unfused graph): the heads permute together in Q, K, V and the output
 * (one heads class H); inside a head, Q and K share one within-head permutation (the score is a sum over it) and V
 * and the output another. An attention_bias [B|1, H, S, T] permutes with the heads. Past/present key-value caches,
 * rotary embeddings, packed 5-D query forms and 4-D key/value caches are not traced: the node freezes, saying why.
 */
import type { DimId } from '../dims.js';
import type { RuleContext, Rule } from '../rule.js';
import { attrInt, attrInts } from '../model-view.js';

function freezeNode(ctx: RuleContext, why: string): void {
  for (const v of [...ctx.node.inputs, ...ctx.node.outputs]) if (v && ctx.isFloat(v)) ctx.freezeValue(v, why);
}

/** attention_bias [B|1, H, S, T]: heads with H, S with the queries' sequence axis, T with the keys'. */
function linkAttentionBias(ctx: RuleContext, bias: string | undefined, h: DimId, batch: DimId | undefined, seqQ: DimId | undefined, seqK: DimId | undefined): void {
  if (!bias || !ctx.shape(bias)) return;
  const s = ctx.shape(bias)!;
  if (s.length !== 4) return ctx.freezeValue(bias, `attention_bias of rank ${s.length} (expected [batch, heads, S, T])`);
  const axes = [batch, h, seqQ, seqK];
  for (let i = 0; i < 4; i++) {
    if (s[i] === 1) ctx.invariant(ctx.dim(bias, i));
    else ctx.link(ctx.dim(bias, i), axes[i]);
  }
}

function headSplit(ctx: RuleContext, heads: number, sizes: readonly number[]): string | undefined {
  if (!(heads > 0)) return `num_heads ${heads} is not a positive count`;
  const bad = sizes.find((n) => !(n > 0) || n % heads !== 0);
  if (bad !== undefined) return `a Q/K/V size ${bad} is not a multiple of num_heads ${heads}`;
  if (sizes[0] !== sizes[1]) return `Q and K sizes differ (${sizes[0]} vs ${sizes[1]})`;
  return undefined;
}

export const attention: Rule = (ctx) => {
  const [input, weights, bias, , past, attnBias, pastSeq] = ctx.node.inputs;
  const [output, present] = ctx.node.outputs;
  const heads = attrInt(ctx.node, 'num_heads', 0);
  if (past || present || pastSeq) return freezeNode(ctx, `Attention with a past/present key-value cache (not traced)`);
  if (attrInt(ctx.node, 'do_rotary', 0)) return freezeNode(ctx, `Attention with rotary embeddings mixes within-head dims (not traced)`);
  const si = ctx.shape(input!);
  const sw = ctx.shape(weights!);
  if (!si || !sw || si.length !== 3 || sw.length !== 2) return freezeNode(ctx, `Attention input or weights of unexpected rank`);
  const sizes = attrInts(ctx.node, 'qkv_hidden_sizes') ?? [sw[1]! / 3, sw[1]! / 3, sw[1]! / 3];
  const bad = sizes.length !== 3 || sizes[0]! + sizes[1]! + sizes[2]! !== sw[1] ? `qkv_hidden_sizes [${sizes.join(', ')}] do not add up to the weights' ${sw[1]} columns` : headSplit(ctx, heads, sizes);
  if (bad) return freezeNode(ctx, `Attention: ${bad}`);
  ctx.link(ctx.dim(input!, 2), ctx.dim(weights!, 0));
  ctx.link(ctx.dim(input!, 0), ctx.dim(output!, 0));
  ctx.link(ctx.dim(input!, 1), ctx.dim(output!, 1));
  if (bias) ctx.link(ctx.dim(bias, 0), ctx.dim(weights!, 1));
  const h = ctx.virtual(heads);
  const dq = ctx.virtual(sizes[0]! / heads);
  const dv = ctx.virtual(sizes[2]! / heads);
  const [q, k, v] = sizes.map((n) => ctx.virtual(n)) as [DimId, DimId, DimId];
  ctx.factor(q, [h, dq]);
  ctx.factor(k, [h, dq]);
  ctx.factor(v, [h, dv]);
  ctx.concat(ctx.dim(weights!, 1)!, [q, k, v]);
  ctx.factor(ctx.dim(output!, 2)!, [h, dv]);
  linkAttentionBias(ctx, attnBias, h, ctx.dim(input!, 0), ctx.dim(input!, 1), ctx.dim(input!, 1));
  ctx.note(dq, 'attention');
  ctx.note(ctx.dim(output!, 2), 'attention');
};

export const multiHeadAttention: Rule = (ctx) => {
  const [query, key, value, bias, padMask, attnBias, pastKey, pastValue, pastSeq, cacheInd] = ctx.node.inputs;
  const [output, presentKey, presentValue, qk] = ctx.node.outputs;
  const heads = attrInt(ctx.node, 'num_heads', 0);
  if (pastKey || pastValue || presentKey || presentValue || pastSeq || cacheInd) return freezeNode(ctx, `MultiHeadAttention with a key-value cache (not traced)`);
  if (qk) return freezeNode(ctx, `MultiHeadAttention exposing its qk scores (not traced)`);
  const sq = ctx.shape(query!);
  const sk = key ? ctx.shape(key) : undefined;
  const sv = value ? ctx.shape(value) : undefined;
  if (!sq || !sk || !sv || sq.length !== 3 || sk.length !== 3 || sv.length !== 3) {
    return freezeNode(ctx, `MultiHeadAttention with packed or cached query/key/value (only separate [batch, seq, hidden] Q, K, V are traced)`);
  }
  const sizes = [sq[2]!, sk[2]!, sv[2]!];
  const bad = headSplit(ctx, heads, sizes);
  if (bad) return freezeNode(ctx, `MultiHeadAttention: ${bad}`);
  if (padMask && ctx.isFloat(padMask)) ctx.freezeValue(padMask, `key_padding_mask (not traced)`);
  const h = ctx.virtual(heads);
  const dq = ctx.virtual(sizes[0]! / heads);
  const dv = ctx.virtual(sizes[2]! / heads);
  ctx.factor(ctx.dim(query!, 2)!, [h, dq]);
  ctx.factor(ctx.dim(key!, 2)!, [h, dq]);
  ctx.factor(ctx.dim(value!, 2)!, [h, dv]);
  ctx.factor(ctx.dim(output!, 2)!, [h, dv]);
  if (bias) ctx.concat(ctx.dim(bias, 0)!, [ctx.dim(query!, 2)!, ctx.dim(key!, 2)!, ctx.dim(value!, 2)!]);
  ctx.link(ctx.dim(query!, 0), ctx.dim(output!, 0));
  ctx.link(ctx.dim(query!, 1), ctx.dim(output!, 1));
  ctx.link(ctx.dim(key!, 0), ctx.dim(query!, 0));
  ctx.link(ctx.dim(value!, 0), ctx.dim(query!, 0));
  ctx.link(ctx.dim(key!, 1), ctx.dim(value!, 1));
  linkAttentionBias(ctx, attnBias, h, ctx.dim(query!, 0), ctx.dim(query!, 1), ctx.dim(key!, 1));
  ctx.note(dq, 'attention');
  ctx.note(ctx.dim(output!, 2), 'attention');
};
