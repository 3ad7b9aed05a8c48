/**
 * Zoo models for issue 12 item 6 (quantized models), built here with GraphBuilder in the forms onnxruntime's
 * quantizers write: quantize_static's QDQ form (int8 weights with per-channel scales -> DequantizeLinear -> MatMul /
 * Conv / Gemm, int32 biases through DequantizeLinear, activations through QuantizeLinear -> DequantizeLinear pairs
 * with per-tensor scales), quantize_dynamic's form (DynamicQuantizeLinear on the activation, MatMulInteger, Cast,
 * Mul by the scales), and the QOperator form (QLinearConv, QLinearMatMul). The hidden units of each layer are a
 * symmetry by construction; expected/NAME.json lists them. Also a torch export (scripts/zoo/export_q.py: eager-mode
 * static quantization, fbgemm per-channel, which torch writes in QDQ form with Constant nodes). `ZOO_Q` has the
 * zoo's entry shape.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import * as onnx from '../../src/onnx/proto.js';
import { GraphBuilder, tensorProto } from '../../src/onnx/build.js';
import { loadOnnx, OnnxModel } from '../../src/onnx/model.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { randn, rng } from '../helpers.js';

/** Random weights fixed by their name (the same model on every run). */
function weight(name: string, shape: number[], scale = 0.5): Tensor {
  let h = 2166136261;
  for (const c of name) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
  const r = rng(h);
  const n = shape.reduce((a, b) => a * b, 1);
  return new Tensor(shape, Float32Array.from({ length: n }, () => randn(r) * scale));
}

/** Symmetric int8 quantization of `w` along `axis` (one scale per position; null: per tensor): ints and scales. */
export function quantize(w: Tensor, axis: number | null, bits: 'I8' | 'U8' = 'I8'): { q: Tensor; scale: Tensor; zp: Tensor } {
  const n = axis === null ? 1 : w.shape[axis]!;
  const inner = axis === null ? w.size : w.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const max = new Float32Array(n);
  w.data.forEach((v, i) => {
    const c = Math.floor(i / inner) % n;
    max[c] = Math.max(max[c]!, Math.abs(v));
  });
  const scale = Float32Array.from(max, (m) => (m > 0 ? m / 127 : 1));
  const zero = bits === 'U8' ? 128 : 0;
  const q = Float32Array.from(w.data, (v, i) => Math.max(-127, Math.min(127, Math.round(v / scale[Math.floor(i / inner) % n]!))) + zero);
  const dims = axis === null ? [] : [n];
  return { q: new Tensor(w.shape, q), scale: new Tensor(dims, scale), zp: new Tensor(dims, new Float32Array(n).fill(zero)) };
}

/** Adds weight `name` quantized along `axis` as name_q (int8), name_scale, name_zp, and a DequantizeLinear to `name`. */
function qdqWeight(g: GraphBuilder, name: string, w: Tensor, axis: number | null): GraphBuilder {
  const { q, scale, zp } = quantize(w, axis);
  return g
    .initializer(`${name}_q`, q, { dtype: 'I8' })
    .initializer(`${name}_scale`, scale)
    .initializer(`${name}_zp`, zp, { dtype: 'I8' })
    .node('DequantizeLinear', [`${name}_q`, `${name}_scale`, `${name}_zp`], [name], axis === null ? {} : { axis }, { name: `${name}_dq` });
}

/** An int32 bias quantized with one scale per output unit (as quantize_static writes: scale = x_scale · w_scale). */
function qdqBias(g: GraphBuilder, name: string, b: Tensor): GraphBuilder {
  const scale = new Tensor([b.size], Float32Array.from(b.data, () => 1 / 4096));
  const q = new Tensor([b.size], Float32Array.from(b.data, (v) => Math.round(v * 4096)));
  return g
    .initializer(`${name}_q`, q, { dtype: 'I32' })
    .initializer(`${name}_scale`, scale)
    .node('DequantizeLinear', [`${name}_q`, `${name}_scale`], [name], { axis: 0 }, { name: `${name}_dq` });
}

/** An activation through QuantizeLinear -> DequantizeLinear (uint8, one scale and zero point for the tensor). */
function qdqAct(g: GraphBuilder, x: string, y: string, scale: number, zp: number): GraphBuilder {
  return g
    .initializer(`${y}_s`, new Tensor([], Float32Array.of(scale)))
    .initializer(`${y}_z`, new Tensor([], Float32Array.of(zp)), { dtype: 'U8' })
    .node('QuantizeLinear', [x, `${y}_s`, `${y}_z`], [`${y}_q`], {}, { name: `${y}_quant` })
    .node('DequantizeLinear', [`${y}_q`, `${y}_s`, `${y}_z`], [y], {}, { name: `${y}_dequant` });
}

/** quantize_static QDQ MLP 6-16-12-4: per-channel int8 weights (axis 1 of [in, out]), int32 biases, QDQ activations. */
export function qdqMlp(): OnnxModel {
  const g = new GraphBuilder(17).input('x', ['batch', 6]);
  qdqAct(g, 'x', 'xd', 1 / 255, 0);
  qdqWeight(g, 'w0', weight('qdq.w0', [6, 16]), 1);
  qdqBias(g, 'b0', weight('qdq.b0', [16]));
  qdqWeight(g, 'w1', weight('qdq.w1', [16, 12]), 1);
  qdqBias(g, 'b1', weight('qdq.b1', [12]));
  qdqWeight(g, 'w2', weight('qdq.w2', [12, 4]), null);
  g.node('MatMul', ['xd', 'w0'], ['m0'], {}, { name: 'fc0' })
    .node('Add', ['m0', 'b0'], ['h0'], {}, { name: 'fc0_bias' })
    .node('Relu', ['h0'], ['a0']);
  qdqAct(g, 'a0', 'a0d', 4 / 255, 0);
  g.node('MatMul', ['a0d', 'w1'], ['m1'], {}, { name: 'fc1' })
    .node('Add', ['m1', 'b1'], ['h1'], {}, { name: 'fc1_bias' })
    .node('Relu', ['h1'], ['a1']);
  qdqAct(g, 'a1', 'a1d', 8 / 255, 0);
  return g.node('MatMul', ['a1d', 'w2'], ['y'], {}, { name: 'head' }).output('y', ['batch', 4]).build();
}

/**
 * quantize_static QDQ CNN: x [b, 3, 8, 8] -> Conv 3->8 (3x3) -> Relu -> Conv 8->6 (3x3) -> Relu -> GlobalAveragePool
 * -> Flatten -> Gemm 6->5 (transB); int8 weights per output channel (axis 0), int32 biases, QDQ activations.
 */
export function qdqCnn(): OnnxModel {
  const g = new GraphBuilder(17).input('x', ['batch', 3, 8, 8]);
  qdqAct(g, 'x', 'xd', 1 / 255, 0);
  qdqWeight(g, 'c1', weight('qcnn.c1', [8, 3, 3, 3]), 0);
  qdqBias(g, 'c1b', weight('qcnn.c1b', [8]));
  qdqWeight(g, 'c2', weight('qcnn.c2', [6, 8, 3, 3]), 0);
  qdqBias(g, 'c2b', weight('qcnn.c2b', [6]));
  qdqWeight(g, 'fc', weight('qcnn.fc', [5, 6]), 0);
  g.node('Conv', ['xd', 'c1', 'c1b'], ['h1'], { pads: [1, 1, 1, 1] }, { name: 'conv1' }).node('Relu', ['h1'], ['a1']);
  qdqAct(g, 'a1', 'a1d', 4 / 255, 0);
  g.node('Conv', ['a1d', 'c2', 'c2b'], ['h2'], { pads: [1, 1, 1, 1] }, { name: 'conv2' }).node('Relu', ['h2'], ['a2']);
  qdqAct(g, 'a2', 'a2d', 8 / 255, 0);
  return g
    .node('GlobalAveragePool', ['a2d'], ['p'])
    .node('Flatten', ['p'], ['f'])
    .node('Gemm', ['f', 'fc'], ['y'], { transB: 1 }, { name: 'head' })
    .output('y', ['batch', 5])
    .build();
}

/** One quantize_dynamic layer: DynamicQuantizeLinear(x) -> MatMulInteger(W uint8) -> Cast -> Mul(x_scale · w_scale) -> + bias. */
function dynamicLayer(g: GraphBuilder, x: string, y: string, w: Tensor, b: Tensor, perChannel: boolean): GraphBuilder {
  const { q, scale, zp } = quantize(w, perChannel ? 1 : null, 'U8');
  return g
    .initializer(`${y}_wq`, q, { dtype: 'U8' })
    .initializer(`${y}_wscale`, scale)
    .initializer(`${y}_wzp`, zp, { dtype: 'U8' })
    .initializer(`${y}_b`, b)
    .node('DynamicQuantizeLinear', [x], [`${x}_q`, `${x}_s`, `${x}_z`], {}, { name: `${y}_dql` })
    .node('MatMulInteger', [`${x}_q`, `${y}_wq`, `${x}_z`, `${y}_wzp`], [`${y}_i32`], {}, { name: `${y}_matmul` })
    .node('Cast', [`${y}_i32`], [`${y}_f`], { to: 1 })
    .node('Mul', [`${x}_s`, `${y}_wscale`], [`${y}_scale`])
    .node('Mul', [`${y}_f`, `${y}_scale`], [`${y}_m`])
    .node('Add', [`${y}_m`, `${y}_b`], [y]);
}

/** quantize_dynamic MLP 6-16-12-4 (transformers.js model_quantized.onnx form): per-channel then per-tensor uint8 weights. */
export function dynamicMlp(): OnnxModel {
  const g = new GraphBuilder(17).input('x', ['batch', 6]);
  dynamicLayer(g, 'x', 'h0', weight('dyn.w0', [6, 16]), weight('dyn.b0', [16]), true).node('Relu', ['h0'], ['a0']);
  dynamicLayer(g, 'a0', 'h1', weight('dyn.w1', [16, 12]), weight('dyn.b1', [12]), false).node('Relu', ['h1'], ['a1']);
  return dynamicLayer(g, 'a1', 'y', weight('dyn.w2', [12, 4]), weight('dyn.b2', [4]), true).output('y', ['batch', 4]).build();
}

/**
 * QOperator form: QuantizeLinear -> QLinearConv 3->8 (int8 per-channel weights, int32 bias) -> QLinearConv 8->6 ->
 * DequantizeLinear -> GlobalAveragePool -> Flatten -> QuantizeLinear -> QLinearMatMul 6->5 (per-tensor) ->
 * DequantizeLinear. All activations uint8.
 */
export function qlinearNet(): OnnxModel {
  const g = new GraphBuilder(17).input('x', ['batch', 3, 6, 6]);
  const act = (name: string, scale: number, zp: number): void => {
    g.initializer(`${name}_s`, new Tensor([], Float32Array.of(scale))).initializer(`${name}_z`, new Tensor([], Float32Array.of(zp)), { dtype: 'U8' });
  };
  act('x', 1 / 255, 0);
  act('a1', 6 / 255, 128);
  act('a2', 12 / 255, 128);
  act('f', 4 / 255, 128);
  act('y', 16 / 255, 128);
  const param = (name: string, w: Tensor, axis: number | null): void => {
    const { q, scale, zp } = quantize(w, axis);
    g.initializer(`${name}_q`, q, { dtype: 'I8' }).initializer(`${name}_scale`, scale).initializer(`${name}_zp`, zp, { dtype: 'I8' });
  };
  param('c1', weight('ql.c1', [8, 3, 3, 3]), 0);
  param('c2', weight('ql.c2', [6, 8, 3, 3]), 0);
  param('fc', weight('ql.fc', [6, 5]), null);
  g.initializer('c1_b', new Tensor([8], Float32Array.from(weight('ql.c1b', [8]).data, (v) => Math.round(v * 2000))), { dtype: 'I32' });
  g.initializer('c2_b', new Tensor([6], Float32Array.from(weight('ql.c2b', [6]).data, (v) => Math.round(v * 300))), { dtype: 'I32' });
  return g
    .node('QuantizeLinear', ['x', 'x_s', 'x_z'], ['xq'], {}, { name: 'x_quant' })
    .node('QLinearConv', ['xq', 'x_s', 'x_z', 'c1_q', 'c1_scale', 'c1_zp', 'a1_s', 'a1_z', 'c1_b'], ['a1'], { pads: [1, 1, 1, 1] }, { name: 'conv1' })
    .node('QLinearConv', ['a1', 'a1_s', 'a1_z', 'c2_q', 'c2_scale', 'c2_zp', 'a2_s', 'a2_z', 'c2_b'], ['a2'], { pads: [1, 1, 1, 1] }, { name: 'conv2' })
    .node('DequantizeLinear', ['a2', 'a2_s', 'a2_z'], ['a2d'], {}, { name: 'a2_dequant' })
    .node('GlobalAveragePool', ['a2d'], ['p'])
    .node('Flatten', ['p'], ['f'])
    .node('QuantizeLinear', ['f', 'f_s', 'f_z'], ['fq'], {}, { name: 'f_quant' })
    .node('QLinearMatMul', ['fq', 'f_s', 'f_z', 'fc_q', 'fc_scale', 'fc_zp', 'y_s', 'y_z'], ['yq'], {}, { name: 'head' })
    .node('DequantizeLinear', ['yq', 'y_s', 'y_z'], ['y'], {}, { name: 'y_dequant' })
    .output('y', ['batch', 5])
    .build();
}


/**
 * A copy of `model` in quantize_dynamic form (as onnxruntime writes transformers.js `model_quantized.onnx`): every
 * Gemm with a 2-D float weight (transA = transB = 0, alpha = beta = 1) becomes DynamicQuantizeLinear(x) ->
 * MatMulInteger(x_q, W_q, x_zp, W_zp) -> Cast -> Mul(x_scale · W_scale) -> Add(bias), named like the Gemm. W_q is a
 * uint8 tensor keeping the weight's name, with one scale and zero point per output unit where `perChannel(name)`.
 */
export function dynamicQuantized(model: OnnxModel, perChannel: (weight: string) => boolean): OnnxModel {
  const proto = onnx.decodeModel(model.toBytes({ inlineExternal: true }));
  const g = proto.graph!;
  const nodes: onnx.NodeProto[] = [];
  const plain = (n: onnx.NodeProto): boolean =>
    (n.attribute ?? []).every((a) => (a.name === 'alpha' || a.name === 'beta' ? a.f === 1 : a.name === 'transA' || a.name === 'transB' ? Number(a.i) === 0 : false));
  for (const n of g.node ?? []) {
    const [x, w, bias] = n.input ?? [];
    const at = (g.initializer ?? []).findIndex((t) => t.name === w);
    if (n.opType !== 'Gemm' || at < 0 || !plain(n) || !x || !w) {
      nodes.push(n);
      continue;
    }
    const { q, scale, zp } = quantize(model.getFloat32(w), perChannel(w) ? 1 : null, 'U8');
    g.initializer!.splice(at, 1, tensorProto(w, q, { dtype: 'U8' }), tensorProto(`${w}_scale`, scale), tensorProto(`${w}_zp`, zp, { dtype: 'U8' }));
    const base = n.name ?? w;
    const out = n.output![0]!;
    const node = (opType: string, input: string[], output: string[], attribute: onnx.AttributeProto[] = [], name = `${base}/${opType}`) =>
      nodes.push(onnx.create(onnx.NodeProtoSchema, { name, opType, input, output, attribute }));
    node('DynamicQuantizeLinear', [x], [`${base}/x_q`, `${base}/x_scale`, `${base}/x_zp`]);
    node('MatMulInteger', [`${base}/x_q`, w, `${base}/x_zp`, `${w}_zp`], [`${base}/i32`], [], base);
    node('Cast', [`${base}/i32`], [`${base}/f`], [onnx.attribute({ name: 'to', type: onnx.AttributeProto_AttributeType.INT, i: 1n })]);
    node('Mul', [`${base}/x_scale`, `${w}_scale`], [`${base}/scale`], [], `${base}/Mul_scale`);
    node('Mul', [`${base}/f`, `${base}/scale`], [bias ? `${base}/m` : out]);
    if (bias) node('Add', [`${base}/m`, bias], [out]);
  }
  g.node = nodes;
  return OnnxModel.fromProto(proto);
}

const built = (f: () => OnnxModel) => async () => f();
const HERE = new URL('../../../test/zoo/', import.meta.url).pathname;
const fromFile = (file: string) => async () => (existsSync(file) ? loadOnnx(file) : undefined);

export const ZOO_Q = [
  { name: 'qdq-mlp', what: 'quantize_static QDQ MLP: int8 weights per channel, int32 biases, QDQ activations', load: built(qdqMlp) },
  { name: 'qdq-cnn', what: 'quantize_static QDQ CNN: Conv/Gemm int8 weights per output channel, int32 biases', load: built(qdqCnn) },
  { name: 'dynamic-mlp', what: 'quantize_dynamic MLP: DynamicQuantizeLinear, MatMulInteger (uint8, per-channel zero points), Cast, Mul', load: built(dynamicMlp) },
  {
    name: 'torch-qcnn-micro',
    what: 'torch eager static quantization (fbgemm, per-channel int8), QDQ export with Constant-node weights: Conv, Conv, Linear, Linear',
    load: fromFile(path.join(HERE, 'torch-qcnn-micro.onnx')),
  },
  {
    name: 'gpt2-dynamic-quant',
    what: 'the field GPT-2 in quantize_dynamic form (MatMulInteger, uint8 weights; per-channel c_attn/c_fc, per-tensor c_proj)',
    load: async () => {
      const file = path.join(HERE, '../../../shared/field/zoo-gpt2-small.onnx');
      return existsSync(file) ? dynamicQuantized(await loadOnnx(file), (w) => !w.includes('c_proj')) : undefined;
    },
  },
  { name: 'qlinear-net', what: 'QOperator form: QLinearConv (int8 per-channel, int32 bias), QLinearMatMul', load: built(qlinearNet) },
];
