/**
 * The rule table for onnxruntime's `com.microsoft` contrib ops (the ops its transformer optimizer writes; semantics
 * from onnxruntime docs/ContribOperators.md). An op not listed freezes what it touches, like any unknown op.
 */
import type { Rule } from '../rule.js';
import { contribElementwise } from './contrib-elementwise.js';
import { skipLayerNorm } from './skip-layer-norm.js';
import { fusedMatMul } from './fused-matmul.js';
import { attention, multiHeadAttention } from './contrib-attention.js';
import { layerNorm } from './norm.js';
import { QUANT_CONTRIB_RULES } from './quant-contrib.js';

export const CONTRIB_DOMAIN = 'com.microsoft';

export const CONTRIB_RULES: ReadonlyMap<string, Rule> = new Map<string, Rule>([
  ...['Gelu', 'FastGelu', 'BiasGelu', 'QuickGelu', 'BiasAdd'].map((op) => [op, contribElementwise] as const),
  ['SkipLayerNormalization', skipLayerNorm],
  ['SkipSimplifiedLayerNormalization', skipLayerNorm],
  ['LayerNormalization', layerNorm],
  ['SimplifiedLayerNormalization', layerNorm],
  ['FusedMatMul', fusedMatMul],
  ['Attention', attention],
  ['MultiHeadAttention', multiHeadAttention],
  ...QUANT_CONTRIB_RULES,
]);
