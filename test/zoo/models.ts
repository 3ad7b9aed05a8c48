/**
 * The regression zoo: small models with known symmetries, each with its expected group structure in
 * `expected/NAME.json` (see check.ts). Hand-built graphs (GraphBuilder) for onnxruntime contrib ops and for weight
 * patterns that stress matching; field models by path where ../shared/field has them (skipped elsewhere).
 * Adding a model is one entry here and one JSON file.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { GraphBuilder, attr } from '../../src/onnx/build.js';
import { loadOnnx, type OnnxModel } from '../../src/onnx/model.js';
import type { Feed } from '../../src/onnx/session.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { randn, rng } from '../helpers.js';
import { ZOO_Y } from './models-y.js';
import { ZOO_Q } from './models-q.js';
import { ZOO_CF } from './models-cf.js';
import { ZOO_CF_TORCH } from './models-cf-torch.js';

export const SHARED = new URL('../../../../shared/', import.meta.url).pathname;
export const FIELD = path.join(SHARED, 'field');

export interface ZooModel {
  /** Also the name of its expected/NAME.json. */
  name: string;
  /** What it shows, one line. */
  what: string;
  /** The model, or undefined when its file is not here (field and fixture files). */
  load(): Promise<OnnxModel | undefined>;
  /** Inputs for the probe and the checks (default: sampleFeeds, batch 3). */
  feeds?(seed: number): Record<string, Feed>;
}

/** Random weights, fixed by the name (so each model is the same on every run). */
export function weight(name: string, shape: number[], scale = 0.5): Tensor {
  let h = 2166136261;
  for (const c of name) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
  const r = rng(h);
  const n = shape.reduce((a, b) => a * b, 1);
  return new Tensor(shape, Float32Array.from({ length: n }, () => randn(r) * scale));
}

const MS = { domain: 'com.microsoft' };

function fromFile(file: string): () => Promise<OnnxModel | undefined> {
  return async () => (existsSync(file) ? loadOnnx(file) : undefined);
}

/** Linear layers through each com.microsoft activation: FastGelu(+bias), BiasGelu, QuickGelu(alpha), Gelu. */
export function contribGeluMlp(): OnnxModel {
  const g = new GraphBuilder(17).importDomain('com.microsoft', 1).input('x', ['batch', 6]);
  const widths = [6, 8, 10, 12, 14, 4];
  for (let i = 0; i < 5; i++) g.initializer(`w${i}`, weight(`gelu.w${i}`, [widths[i]!, widths[i + 1]!]));
  for (let i = 0; i < 2; i++) g.initializer(`b${i}`, weight(`gelu.b${i}`, [widths[i + 1]!]));
  return g
    .node('MatMul', ['x', 'w0'], ['m0'], {}, { name: 'fc0' })
    .node('FastGelu', ['m0', 'b0'], ['a0'], {}, { ...MS, name: 'fast_gelu' })
    .node('MatMul', ['a0', 'w1'], ['m1'], {}, { name: 'fc1' })
    .node('BiasGelu', ['m1', 'b1'], ['a1'], {}, { ...MS, name: 'bias_gelu' })
    .node('MatMul', ['a1', 'w2'], ['m2'], {}, { name: 'fc2' })
    .node('QuickGelu', ['m2'], ['a2'], { alpha: 1.702 }, { ...MS, name: 'quick_gelu' })
    .node('MatMul', ['a2', 'w3'], ['m3'], {}, { name: 'fc3' })
    .node('Gelu', ['m3'], ['a3'], {}, { ...MS, name: 'gelu' })
    .node('MatMul', ['a3', 'w4'], ['y'], {}, { name: 'head' })
    .output('y', ['batch', 4])
    .build();
}

/**
 * A residual stream of width 8 through SkipLayerNormalization (with its sum output feeding the next block),
 * SkipSimplifiedLayerNormalization and a final SimplifiedLayerNormalization (RMSNorm, which onnxruntime registers in
 * the ai.onnx domain); MLPs (8 -> 12 -> 8, 8 -> 16 -> 8) before the first two.
 */
export function contribSkipNorm(): OnnxModel {
  const g = new GraphBuilder(17).importDomain('com.microsoft', 1).input('x', ['batch', 5, 4]);
  g.initializer('w_in', weight('skip.w_in', [4, 8]))
    .initializer('w_a', weight('skip.w_a', [8, 12]))
    .initializer('w_b', weight('skip.w_b', [12, 8]))
    .initializer('gamma', weight('skip.gamma', [8]))
    .initializer('beta', weight('skip.beta', [8]))
    .initializer('bias', weight('skip.bias', [8]))
    .initializer('w_up', weight('skip.w_up', [8, 16]))
    .initializer('w_down', weight('skip.w_down', [16, 8]))
    .initializer('gamma2', weight('skip.gamma2', [8]))
    .initializer('gamma3', weight('skip.gamma3', [8]))
    .initializer('w_out', weight('skip.w_out', [8, 3]));
  return g
    .node('MatMul', ['x', 'w_in'], ['h0'], {}, { name: 'embed' })
    .node('MatMul', ['h0', 'w_a'], ['g0'], {}, { name: 'block0_up' })
    .node('Gelu', ['g0'], ['g1'], {}, { ...MS, name: 'block0_gelu' })
    .node('MatMul', ['g1', 'w_b'], ['f0'], {}, { name: 'block0_down' })
    .node('SkipLayerNormalization', ['f0', 'h0', 'gamma', 'beta', 'bias'], ['n0', '', '', 'h1'], { epsilon: 1e-5 }, { ...MS, name: 'skip_ln' })
    .node('MatMul', ['n0', 'w_up'], ['u'], {}, { name: 'mlp_up' })
    .node('Relu', ['u'], ['r'])
    .node('MatMul', ['r', 'w_down'], ['f1'], {}, { name: 'mlp_down' })
    .node('SkipSimplifiedLayerNormalization', ['f1', 'h1', 'gamma2'], ['n1'], { epsilon: 1e-5 }, { ...MS, name: 'skip_rms' })
    .node('SimplifiedLayerNormalization', ['n1', 'gamma3'], ['n2'], { epsilon: 1e-5, axis: -1 }, { name: 'rms' })
    .node('MatMul', ['n2', 'w_out'], ['y'], {}, { name: 'head' })
    .output('y', ['batch', 5, 3])
    .build();
}

/** FusedMatMul with transB (a weight stored [out, in]), with transA (a transposed activation) and alpha. */
export function contribFusedMatMul(): OnnxModel {
  const g = new GraphBuilder(17).importDomain('com.microsoft', 1).input('x', ['batch', 4]);
  g.initializer('w1', weight('fmm.w1', [8, 4])).initializer('w2', weight('fmm.w2', [8, 6])).initializer('w3', weight('fmm.w3', [3, 6]));
  return g
    .node('FusedMatMul', ['x', 'w1'], ['h'], { transB: 1, alpha: 0.5 }, { ...MS, name: 'fc1' })
    .node('Tanh', ['h'], ['a'])
    .node('Transpose', ['a'], ['at'], { perm: [1, 0] })
    .node('FusedMatMul', ['at', 'w2'], ['h2'], { transA: 1, alpha: attr.float(2) }, { ...MS, name: 'fc2' })
    .node('Sigmoid', ['h2'], ['a2'])
    .node('FusedMatMul', ['a2', 'w3'], ['y'], { transB: 1 }, { ...MS, name: 'head' })
    .output('y', ['batch', 3])
    .build();
}

/**
 * com.microsoft Attention (packed QKV weights [8, 8+8+12], 2 heads: head size 4 for Q/K, 6 for V) between two
 * linear layers.
 */
export function contribAttention(): OnnxModel {
  const g = new GraphBuilder(17).importDomain('com.microsoft', 1).input('x', ['batch', 5, 4]);
  g.initializer('w_in', weight('att.w_in', [4, 8]))
    .initializer('qkv_w', weight('att.qkv_w', [8, 28]))
    .initializer('qkv_b', weight('att.qkv_b', [28]))
    .initializer('w_o', weight('att.w_o', [12, 3]));
  return g
    .node('MatMul', ['x', 'w_in'], ['h'], {}, { name: 'embed' })
    .node('Attention', ['h', 'qkv_w', 'qkv_b'], ['att'], { num_heads: 2, qkv_hidden_sizes: [8, 8, 12] }, { ...MS, name: 'attention' })
    .node('MatMul', ['att', 'w_o'], ['y'], {}, { name: 'out_proj' })
    .output('y', ['batch', 5, 3])
    .build();
}

/** com.microsoft MultiHeadAttention: separate Q, K, V projections, a packed bias, 2 heads of 4, an output projection. */
export function contribMultiHeadAttention(): OnnxModel {
  const g = new GraphBuilder(17).importDomain('com.microsoft', 1).input('x', ['batch', 5, 6]);
  for (const n of ['q', 'k', 'v']) g.initializer(`w_${n}`, weight(`mha.w_${n}`, [6, 8]));
  g.initializer('qkv_b', weight('mha.qkv_b', [24])).initializer('w_o', weight('mha.w_o', [8, 6]));
  return g
    .node('MatMul', ['x', 'w_q'], ['q'], {}, { name: 'q_proj' })
    .node('MatMul', ['x', 'w_k'], ['k'], {}, { name: 'k_proj' })
    .node('MatMul', ['x', 'w_v'], ['v'], {}, { name: 'v_proj' })
    .node('MultiHeadAttention', ['q', 'k', 'v', 'qkv_b'], ['att'], { num_heads: 2 }, { ...MS, name: 'mha' })
    .node('MatMul', ['att', 'w_o'], ['y'], {}, { name: 'out_proj' })
    .output('y', ['batch', 5, 6])
    .build();
}

/**
 * An MLP 6-16-12-4 whose hidden layers hold dead and near-dead units: units whose every weight is zero (exact ties),
 * and units whose weights are ~1e-23 (their weight-matching costs, products ~1e-46, underflow float32 to zero:
 * ties for the assignment solver, yet distinct weights).
 */
export function deadUnitsMlp(): OnnxModel {
  const g = new GraphBuilder(17).input('x', ['batch', 6]);
  const w0 = weight('dead.w0', [16, 6]);
  const b0 = weight('dead.b0', [16]);
  const w1 = weight('dead.w1', [12, 16]);
  const b1 = weight('dead.b1', [12]);
  const w2 = weight('dead.w2', [4, 12]);
  const tiny = (t: Tensor, rows: number[], axis: 0 | 1, scale: number): void => {
    const [n, m] = t.shape.length === 2 ? (t.shape as [number, number]) : [t.shape[0]!, 1];
    for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) if (rows.includes(axis === 0 ? i : j)) t.data[i * m + j] = t.data[i * m + j]! * scale;
  };
  // hidden 1: units 0-2 near-dead, 3-4 dead; hidden 2: units 0-3 near-dead, 4-5 dead
  for (const [t, axis] of [[w0, 0], [b0, 0], [w1, 1]] as const) tiny(t, [0, 1, 2], axis, 1e-23);
  for (const [t, axis] of [[w0, 0], [b0, 0], [w1, 1]] as const) tiny(t, [3, 4], axis, 0);
  for (const [t, axis] of [[w1, 0], [b1, 0], [w2, 1]] as const) tiny(t, [0, 1, 2, 3], axis, 1e-23);
  for (const [t, axis] of [[w1, 0], [b1, 0], [w2, 1]] as const) tiny(t, [4, 5], axis, 0);
  return g
    .initializer('w0', w0)
    .initializer('b0', b0)
    .initializer('w1', w1)
    .initializer('b1', b1)
    .initializer('w2', w2)
    .node('Gemm', ['x', 'w0', 'b0'], ['h0'], { transB: 1 }, { name: 'fc0' })
    .node('Relu', ['h0'], ['a0'])
    .node('Gemm', ['a0', 'w1', 'b1'], ['h1'], { transB: 1 }, { name: 'fc1' })
    .node('Relu', ['h1'], ['a1'])
    .node('Gemm', ['a1', 'w2'], ['y'], { transB: 1 }, { name: 'head' })
    .output('y', ['batch', 4])
    .build();
}

/**
 * An MLP 6-16-3 whose hidden layer is a com.microsoft FusedGemm (Gemm + Relu, as onnxruntime fuses them): an op
 * with no rule yet, so every hidden axis freezes (the "nothing to align" case). `seed` varies the weights.
 */
export function fusedGemmMlp(seed: number): GraphBuilder {
  return new GraphBuilder(17)
    .importDomain('com.microsoft', 1)
    .input('x', ['batch', 6])
    .initializer('w0', weight(`fg${seed}.w0`, [16, 6]))
    .initializer('b0', weight(`fg${seed}.b0`, [16]))
    .initializer('w1', weight(`fg${seed}.w1`, [3, 16]))
    .node('FusedGemm', ['x', 'w0', 'b0'], ['h'], { transB: 1, activation: 'Relu' }, { ...MS, name: 'fused_fc0' })
    .node('Gemm', ['h', 'w1'], ['y'], { transB: 1 }, { name: 'head' })
    .output('y', ['batch', 3]);
}

const built = (f: () => OnnxModel) => async () => f();

/** Silero VAD's real inputs: 512 samples at 16 kHz, zero LSTM state (batch 1). */
export function sileroFeeds(seed: number): Record<string, Feed> {
  const r = rng(seed);
  return {
    input: new Tensor([1, 512], Float32Array.from({ length: 512 }, () => (r() - 0.5) * 0.2)),
    sr: { data: BigInt64Array.from([16000n]), dims: [], type: 'int64' },
    h: new Tensor([2, 1, 64]),
    c: new Tensor([2, 1, 64]),
  };
}

export const ZOO: readonly ZooModel[] = [
  { name: 'mlp-small', what: 'the shared Fashion-MNIST MLP 784-128-128-10 (Gemm, Relu)', load: fromFile(path.join(SHARED, 'fixtures', 'mlp_small_seed0.onnx')) },
  { name: 'resnet-small', what: 'the shared residual CNN (Conv, BatchNorm folded, two stages)', load: fromFile(path.join(SHARED, 'fixtures', 'resnet_small_seed0.onnx')) },
  { name: 'vit-small', what: 'the shared ViT (torch MultiheadAttention [S, B·H, d] form, 2 heads)', load: fromFile(path.join(SHARED, 'fixtures', 'vit_small_seed0.onnx')) },
  { name: 'field-tied-embedding', what: 'tiny LM, head tied to the embedding (transposed copy), int64 token ids', load: fromFile(path.join(FIELD, 'field-tied-embedding-seed0.onnx')) },
  { name: 'field-ort-contrib-gelu', what: 'the shared MLP with com.microsoft Gelu (onnxruntime transformer optimizer)', load: fromFile(path.join(FIELD, 'field-ort-contrib-gelu-seed0.onnx')) },
  { name: 'contrib-gelu-mlp', what: 'com.microsoft FastGelu, BiasGelu, QuickGelu, Gelu between MatMuls', load: built(contribGeluMlp) },
  { name: 'contrib-skip-norm', what: 'com.microsoft SkipLayerNormalization / SkipSimplifiedLayerNormalization, SimplifiedLayerNormalization residual stream', load: built(contribSkipNorm) },
  { name: 'contrib-fused-matmul', what: 'com.microsoft FusedMatMul with transA, transB, alpha', load: built(contribFusedMatMul) },
  { name: 'contrib-attention', what: 'com.microsoft Attention, packed QKV, qkv_hidden_sizes [8, 8, 12], 2 heads', load: built(contribAttention) },
  { name: 'contrib-mha', what: 'com.microsoft MultiHeadAttention, separate Q/K/V, packed bias, 2 heads', load: built(contribMultiHeadAttention) },
  { name: 'dead-units-mlp', what: 'MLP with dead (all-zero) and near-dead (1e-23) hidden units', load: built(deadUnitsMlp) },
  {
    name: 'zoo-silero-vad',
    what: 'pretrained Silero VAD: network inside If branches, LSTMs; declares ai.onnx.training, used by no node',
    load: fromFile(path.join(FIELD, 'zoo-silero-vad.onnx')),
    feeds: sileroFeeds,
  },
  { name: 'zoo-gpt2-small', what: 'GPT-2 style decoder (HF Conv1D, fused c_attn, gelu_new, tied head), 2 layers', load: fromFile(path.join(FIELD, 'zoo-gpt2-small.onnx')) },
  ...ZOO_Y,
  ...ZOO_Q,
  ...ZOO_CF,
  ...ZOO_CF_TORCH,
];
