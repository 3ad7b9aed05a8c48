/**
 * Zoo models for issue 12 items 1-4 (grouped convolutions, per-head constants, a fused qkv reshaped to
 * (B, N, 3, H, d), channel shuffles): graphs built here, whose symmetries follow from the construction, and small
 * torch exports in this folder (scripts/zoo/export_y.py). Each has its expected groups in expected/NAME.json.
 * `ZOO_Y` has the zoo's entry shape ({ name, what, load }), for the zoo table.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { GraphBuilder } from '../../src/onnx/build.js';
import { loadOnnx, type OnnxModel } from '../../src/onnx/model.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { randn, rng } from '../helpers.js';

const HERE = new URL('../../../test/zoo/', import.meta.url).pathname;
const FIELD = new URL('../../../../shared/field/', import.meta.url).pathname;

/** Random weights fixed by their name (the same model on every run, whatever is built first). */
function weight(name: string, shape: number[], scale = 0.5): Tensor {
  let h = 2166136261;
  for (const c of name) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
  const r = rng(h);
  const n = shape.reduce((a, b) => a * b, 1);
  return new Tensor(shape, Float32Array.from({ length: n }, () => randn(r) * scale));
}
const i64 = (values: number[]) => ({ dims: [values.length], int64: values });
const scalar = (v: number) => ({ dims: [], int64: [v] });

/** x [b, 4, 6, 6] -> 1x1 conv to 8 -> Relu -> 3x3 conv 8 -> 12, group 4 -> Relu -> 1x1 conv to 5 -> mean. */
export function groupedConvNet(): OnnxModel {
  return new GraphBuilder(17)
    .input('x', ['batch', 4, 6, 6])
    .initializer('w1', weight('gconv.w1', [8, 4, 1, 1]))
    .initializer('b1', weight('gconv.b1', [8]))
    .initializer('wg', weight('gconv.wg', [12, 2, 3, 3]))
    .initializer('bg', weight('gconv.bg', [12]))
    .initializer('w2', weight('gconv.w2', [5, 12, 1, 1]))
    .node('Conv', ['x', 'w1', 'b1'], ['h1'], {}, { name: 'conv1' })
    .node('Relu', ['h1'], ['a1'])
    .node('Conv', ['a1', 'wg', 'bg'], ['hg'], { group: 4, pads: [1, 1, 1, 1] }, { name: 'gconv' })
    .node('Relu', ['hg'], ['ag'])
    .node('Conv', ['ag', 'w2'], ['h2'], {}, { name: 'conv2' })
    .node('ReduceMean', ['h2'], ['y'], { axes: [2, 3], keepdims: 0 })
    .output('y', ['batch', 5])
    .build();
}

/**
 * One attention block, 2 heads of 4 over T=4 tokens, with a per-head bias constant [1, 2, 4, 4] added to the
 * scores (Swin's folded relative-position bias).
 */
export function biasedAttention(): OnnxModel {
  const g = new GraphBuilder(17).input('x', ['batch', 4, 6]);
  for (const n of ['q', 'k', 'v']) g.initializer(`w_${n}`, weight(`bias_att.w_${n}`, [6, 8]));
  return g
    .initializer('w_in', weight('bias_att.w_in', [6, 6]))
    .initializer('w_o', weight('bias_att.w_o', [8, 6]))
    .initializer('rel_bias', weight('bias_att.rel_bias', [1, 2, 4, 4], 2))
    .initializer('heads_shape', i64([0, 4, 2, 4]))
    .initializer('merge_shape', i64([0, 4, 8]))
    .node('MatMul', ['x', 'w_in'], ['h'], {}, { name: 'embed' })
    .node('MatMul', ['h', 'w_q'], ['q0'], {}, { name: 'q_proj' })
    .node('MatMul', ['h', 'w_k'], ['k0'], {}, { name: 'k_proj' })
    .node('MatMul', ['h', 'w_v'], ['v0'], {}, { name: 'v_proj' })
    .node('Reshape', ['q0', 'heads_shape'], ['q1'])
    .node('Reshape', ['k0', 'heads_shape'], ['k1'])
    .node('Reshape', ['v0', 'heads_shape'], ['v1'])
    .node('Transpose', ['q1'], ['q'], { perm: [0, 2, 1, 3] })
    .node('Transpose', ['k1'], ['kt'], { perm: [0, 2, 3, 1] })
    .node('Transpose', ['v1'], ['v'], { perm: [0, 2, 1, 3] })
    .node('MatMul', ['q', 'kt'], ['s0'], {}, { name: 'scores' })
    .node('Add', ['s0', 'rel_bias'], ['s'], {}, { name: 'add_bias' })
    .node('Softmax', ['s'], ['p'], { axis: -1 })
    .node('MatMul', ['p', 'v'], ['o0'], {}, { name: 'attend' })
    .node('Transpose', ['o0'], ['o1'], { perm: [0, 2, 1, 3] })
    .node('Reshape', ['o1', 'merge_shape'], ['o2'])
    .node('MatMul', ['o2', 'w_o'], ['y'], {}, { name: 'out_proj' })
    .output('y', ['batch', 4, 6])
    .build();
}

/** A fused qkv [6, 24] reshaped to (B, N, 3, 2, 4), transposed to (3, B, 2, N, 4), q/k/v taken by Gather. */
export function stackedQkv(index: 'gather' | 'split'): OnnxModel {
  const g = new GraphBuilder(17)
    .input('x', ['batch', 5, 6])
    .initializer('w_in', weight('stacked.w_in', [6, 6]))
    .initializer('qkv_w', weight('stacked.qkv_w', [6, 24]))
    .initializer('qkv_b', weight('stacked.qkv_b', [24]))
    .initializer('w_o', weight('stacked.w_o', [8, 6]))
    .initializer('stack_shape', i64([0, 5, 3, 2, 4]))
    .initializer('merge_shape', i64([0, 5, 8]))
    .node('MatMul', ['x', 'w_in'], ['h'], {}, { name: 'embed' })
    .node('MatMul', ['h', 'qkv_w'], ['qkv0'], {}, { name: 'qkv' })
    .node('Add', ['qkv0', 'qkv_b'], ['qkv1'])
    .node('Reshape', ['qkv1', 'stack_shape'], ['qkv2'], {}, { name: 'stack' })
    .node('Transpose', ['qkv2'], ['qkv3'], { perm: [2, 0, 3, 1, 4] }, { name: 'to_front' });
  if (index === 'gather') {
    ['q', 'k', 'v'].forEach((n, i) => g.initializer(`i_${n}`, scalar(i)).node('Gather', ['qkv3', `i_${n}`], [n], { axis: 0 }, { name: `take_${n}` }));
  } else {
    g.initializer('ones', i64([1, 1, 1])).initializer('ax0', i64([0]));
    g.node('Split', ['qkv3', 'ones'], ['q1', 'k1', 'v1'], { axis: 0 }, { name: 'unbind' });
    for (const n of ['q', 'k', 'v']) g.node('Squeeze', [`${n}1`, 'ax0'], [n]);
  }
  return g
    .node('Transpose', ['k'], ['kt'], { perm: [0, 1, 3, 2] })
    .node('MatMul', ['q', 'kt'], ['s'], {}, { name: 'scores' })
    .node('Softmax', ['s'], ['p'], { axis: -1 })
    .node('MatMul', ['p', 'v'], ['o0'], {}, { name: 'attend' })
    .node('Transpose', ['o0'], ['o1'], { perm: [0, 2, 1, 3] })
    .node('Reshape', ['o1', 'merge_shape'], ['o2'])
    .node('MatMul', ['o2', 'w_o'], ['y'], {}, { name: 'out_proj' })
    .output('y', ['batch', 5, 6])
    .build();
}

/** conv 4 -> 8, Relu, channel shuffle with 2 groups ([b, 2, 4, h, w] -> transpose -> [b, 8, h, w]), conv 8 -> 6. */
export function shuffleNet(): OnnxModel {
  return new GraphBuilder(17)
    .input('x', ['batch', 4, 5, 5])
    .initializer('w1', weight('shuffle.w1', [8, 4, 1, 1]))
    .initializer('b1', weight('shuffle.b1', [8]))
    .initializer('w2', weight('shuffle.w2', [6, 8, 3, 3]))
    .initializer('split_shape', i64([0, 2, 4, 5, 5]))
    .initializer('merge_shape', i64([0, 8, 5, 5]))
    .node('Conv', ['x', 'w1', 'b1'], ['h1'], {}, { name: 'conv1' })
    .node('Relu', ['h1'], ['a1'])
    .node('Reshape', ['a1', 'split_shape'], ['g1'], {}, { name: 'shuffle_split' })
    .node('Transpose', ['g1'], ['g2'], { perm: [0, 2, 1, 3, 4] }, { name: 'shuffle' })
    .node('Reshape', ['g2', 'merge_shape'], ['s'], {}, { name: 'shuffle_merge' })
    .node('Conv', ['s', 'w2'], ['h2'], {}, { name: 'conv2' })
    .node('ReduceMean', ['h2'], ['y'], { axes: [2, 3], keepdims: 0 })
    .output('y', ['batch', 6])
    .build();
}

function fromFile(file: string): () => Promise<OnnxModel | undefined> {
  return async () => (existsSync(file) ? loadOnnx(file) : undefined);
}
const built = (f: () => OnnxModel) => async (): Promise<OnnxModel | undefined> => f();

export const ZOO_Y: readonly { name: string; what: string; load(): Promise<OnnxModel | undefined> }[] = [
  { name: 'grouped-conv', what: 'Conv 1x1, grouped 3x3 Conv (group 4), Conv 1x1 (built)', load: built(groupedConvNet) },
  { name: 'zoo-resnext-micro', what: 'ResNeXt-style bottlenecks with grouped 3x3 convs (4 groups of 8)', load: fromFile(path.join(FIELD, 'zoo-resnext-micro.onnx')) },
  { name: 'regnety-micro', what: 'RegNetY blocks (grouped convs, squeeze-excitation), torch export', load: fromFile(path.join(HERE, 'regnety-micro.onnx')) },
  { name: 'per-head-bias-attention', what: 'attention with a per-head bias constant [1, heads, T, T] on the scores (built)', load: built(biasedAttention) },
  { name: 'zoo-swin-micro', what: 'torchvision Swin (folded relative-position bias, qkv as (B, N, 3, H, d))', load: fromFile(path.join(FIELD, 'zoo-swin-micro.onnx')) },
  { name: 'stacked-qkv-gather', what: 'fused qkv reshaped to (B, N, 3, H, d), q/k/v by Gather (built)', load: built(() => stackedQkv('gather')) },
  { name: 'stacked-qkv-split', what: 'fused qkv reshaped to (B, N, 3, H, d), q/k/v by Split + Squeeze (built)', load: built(() => stackedQkv('split')) },
  { name: 'timm-vit-micro', what: 'timm ViT blocks (qkv.reshape(B, N, 3, H, d).permute.unbind), torch export', load: fromFile(path.join(HERE, 'timm-vit-micro.onnx')) },
  { name: 'channel-shuffle', what: 'Conv, channel shuffle (2 groups), Conv (built)', load: built(shuffleNet) },
  { name: 'shufflenet-micro', what: 'ShuffleNetV2 blocks (chunk, concat, channel shuffle), torch export', load: fromFile(path.join(HERE, 'shufflenet-micro.onnx')) },
];
