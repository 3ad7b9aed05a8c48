/**
 * Float costs for quantized weights. Weight matching compares weights as real numbers, so an integer weight (a QDQ
 * model's int8/uint8 tensor, an integer op's operand) is read in its dequantized form scale·(q − zero_point), with
 * the scale and zero point of the node that reads it (per tensor, per axis or blocked): DequantizeLinear,
 * QLinearConv, QLinearMatMul, com.microsoft QGemm / DynamicQuantizeMatMul / MatMulIntegerToFloat. MatMulInteger and
 * ConvInteger apply their scale after the op (a Mul on the output), so their weights read as q − zero_point.
 * The permutation found is applied to the stored integers, bit-exactly (src/spec/permute-model.ts).
 */
import { DTYPES } from '../dtype.js';
import type { OnnxModel } from '../onnx/model.js';
import { Tensor, axisView } from '../tensor/tensor.js';

interface QuantRead {
  scale?: string;
  zeroPoint?: string;
  /** The quantized axis (negative: from the end). */
  axis: number;
  blockSize: number;
}

/** Where each op keeps the scale and zero point of the operand at input `i`, and its quantized axis. */
function quantRead(opType: string, domain: string, inputs: readonly string[], i: number, attr: (n: string, d: number) => number): QuantRead | undefined {
  const at = (s: number, z: number, axis: number): QuantRead => ({ scale: inputs[s] || undefined, zeroPoint: inputs[z] || undefined, axis, blockSize: 0 });
  const ms = domain === 'com.microsoft';
  if (!domain || ms) {
    if ((opType === 'DequantizeLinear' || opType === 'QuantizeLinear') && i === 0) return { ...at(1, 2, attr('axis', 1)), blockSize: attr('block_size', 0) };
  }
  if (!domain) {
    if (opType === 'QLinearConv' && i === 3) return at(4, 5, 0);
    if (opType === 'QLinearMatMul' && i === 3) return at(4, 5, -1);
    if (opType === 'QLinearMatMul' && i === 0) return at(1, 2, -2);
    if (opType === 'MatMulInteger' && i === 1) return { zeroPoint: inputs[3] || undefined, axis: -1, blockSize: 0 };
    if (opType === 'MatMulInteger' && i === 0) return { zeroPoint: inputs[2] || undefined, axis: -2, blockSize: 0 };
    if (opType === 'ConvInteger' && i === 1) return { zeroPoint: inputs[3] || undefined, axis: 0, blockSize: 0 };
  }
  if (ms) {
    if (opType === 'QGemm' && i === 3) return at(4, 5, attr('transB', 0) ? 0 : 1);
    if (opType === 'DynamicQuantizeMatMul' && i === 1) return at(2, 3, -1);
    if (opType === 'MatMulIntegerToFloat' && i === 1) return at(3, 5, -1);
  }
  return undefined;
}

/** The node that reads integer tensor `name` as quantized data (with a scale or zero point), or undefined. */
export function quantizedReader(model: OnnxModel, name: string): { node: string; opType: string } | undefined {
  for (const [k, n] of (model.proto.graph?.node ?? []).entries()) {
    const i = (n.input ?? []).indexOf(name);
    if (i >= 0 && quantRead(n.opType ?? '', n.domain && n.domain !== 'ai.onnx' ? n.domain : '', n.input ?? [], i, () => 0)) {
      return { node: n.name || `${n.opType}_${k}`, opType: n.opType ?? '' };
    }
  }
  return undefined;
}

/**
 * The tensor weight matching compares for spec tensor `name`: a float weight as float32; an integer weight
 * dequantized by the first node that reads it (scale and zero point must be constants, else they count as 1 and
 * 0); an integer weight no quantization op reads, as its integer values.
 * @throws BasinError non_finite (a NaN float weight or scale), as OnnxModel.getFloat32
 */
export function matchingTensor(model: OnnxModel, name: string): Tensor {
  if (DTYPES[model.weightInfo(name).dtype].isFloat) return model.viewFloat32(name);
  const q = model.getFloat32(name);
  let read: QuantRead | undefined;
  for (const n of model.proto.graph?.node ?? []) {
    const inputs = n.input ?? [];
    const i = inputs.indexOf(name);
    if (i < 0) continue;
    const attr = (a: string, d: number): number => {
      const v = (n.attribute ?? []).find((x) => x.name === a)?.i;
      return v === undefined || v === null ? d : Number(v);
    };
    read = quantRead(n.opType ?? '', n.domain && n.domain !== 'ai.onnx' ? n.domain : '', inputs, i, attr);
    if (read) break;
  }
  if (!read) return q;
  const param = (p: string | undefined): Tensor | undefined => (p && model.has(p) ? model.getFloat32(p) : undefined);
  const scale = param(read.scale);
  const zp = param(read.zeroPoint);
  const rank = q.shape.length;
  const axis = read.axis < 0 ? read.axis + rank : read.axis;
  if (rank === 0 || axis < 0 || axis >= rank) return q;
  const { n, inner } = axisView(q.shape, axis);
  const bs = read.blockSize > 0 ? read.blockSize : 0;
  // the parameter's element for data element i: per tensor (one value), per axis (1-D), or blocked (x's rank)
  const index = (p: Tensor, i: number): number | undefined => {
    if (p.size === 1) return 0;
    const j = Math.floor(i / inner) % n;
    if (!bs) return p.size === n ? j : undefined;
    const nb = Math.ceil(n / bs);
    const o = Math.floor(i / (inner * n));
    const k = i % inner;
    const at = (o * nb + Math.floor(j / bs)) * inner + k;
    return at < p.size ? at : undefined;
  };
  const out = new Float32Array(q.size);
  for (let i = 0; i < q.size; i++) {
    const s = scale ? index(scale, i) : undefined;
    const z = zp ? index(zp, i) : undefined;
    out[i] = Math.fround((q.data[i]! - (z === undefined ? 0 : zp!.data[z]!)) * (s === undefined ? 1 : scale!.data[s]!));
  }
  return new Tensor(q.shape, out);
}
