/**
 * The form of a quantized model that onnxruntime computes exactly on every CPU, for verification.
 *
 * ONNX defines the integer products of MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv (and onnxruntime's
 * DynamicQuantizeMatMul, MatMulIntegerToFloat, QGemm) as exact int32 sums of (a - a_zero_point)·(b - b_zero_point).
 * onnxruntime's x86-64 kernels for uint8 activations × int8 weights on CPUs without VNNI (AVX2, AVX-512 before
 * VNNI) add adjacent pairs of u8·s8 products in int16 with saturation (vpmaddubsw), so a sum that overflows 16 bits
 * is clipped, and where it is clipped depends on the order of the reduction axis. A permutation of that axis (the
 * hidden units basin permutes) then changes the outputs as onnxruntime computes them there, by whole quantization
 * steps, though the model's function (as ONNX defines it) is unchanged. onnxruntime's own quantization tool
 * documents the effect (its `reduce_range` option: 7-bit weights "for better accuracy on non-VNNI CPUs"), and its
 * graph optimizer re-expresses int8 weights of QDQ models as uint8 on x86 for the same reason.
 *
 * The exact form re-expresses each constant int8 weight of those ops, with its constant zero point, as uint8:
 * q' = q + 128 and zp' = zp + 128 (bit for bit: q XOR 0x80), so (q' - zp') = (q - zp) and the model computes the
 * same function; onnxruntime's uint8 × uint8 kernels widen to 16 bits before multiplying and add in int32, exactly.
 * Only nodes whose activation operand is known to be uint8 (its zero point is a uint8 constant, it comes from
 * DynamicQuantizeLinear, or the op quantizes it to uint8 itself) are rewritten; the model written to disk is never
 * this form.
 */
import * as onnx from '../onnx/proto.js';
import { freshNamer } from '../onnx/fresh-names.js';
import { OnnxModel } from '../onnx/model.js';

/** Input positions of an integer product op: its 8-bit weight, the weight's zero point, and the activation's zero point. */
interface IntegerProduct {
  readonly weight: number;
  readonly weightZeroPoint: number;
  /** Input index of the activation's zero point; 'u8' when the op quantizes its float activation to uint8 itself. */
  readonly activationZeroPoint: number | 'u8';
  /** Input index of the activation (to find a DynamicQuantizeLinear producer). */
  readonly activation: number;
}

/** Integer product ops by `domain:opType` ('' for ai.onnx), from the ONNX operator spec and onnxruntime's ContribOperators.md. */
const INTEGER_PRODUCTS: ReadonlyMap<string, IntegerProduct> = new Map([
  [':MatMulInteger', { activation: 0, weight: 1, activationZeroPoint: 2, weightZeroPoint: 3 }],
  [':ConvInteger', { activation: 0, weight: 1, activationZeroPoint: 2, weightZeroPoint: 3 }],
  [':QLinearMatMul', { activation: 0, weight: 3, activationZeroPoint: 2, weightZeroPoint: 5 }],
  [':QLinearConv', { activation: 0, weight: 3, activationZeroPoint: 2, weightZeroPoint: 5 }],
  ['com.microsoft:DynamicQuantizeMatMul', { activation: 0, weight: 1, activationZeroPoint: 'u8', weightZeroPoint: 3 }],
  ['com.microsoft:MatMulIntegerToFloat', { activation: 0, weight: 1, activationZeroPoint: 4, weightZeroPoint: 5 }],
  ['com.microsoft:QGemm', { activation: 0, weight: 3, activationZeroPoint: 2, weightZeroPoint: 5 }],
]);

const INT8 = 3;
const UINT8 = 2;

function key(n: onnx.NodeProto): string {
  const domain = n.domain === 'ai.onnx' ? '' : (n.domain ?? '');
  return `${domain}:${n.opType}`;
}

/**
 * `model`'s exact integer form (see the module comment): a new model in which every constant int8 weight of an
 * integer product op with a uint8 activation reads a uint8 copy (q XOR 0x80) with a uint8 zero point (zp + 128;
 * 128 where the op has none). Returns undefined when no node qualifies (the model is already computed exactly).
 * Deterministic in the graph alone, so a model and its permuted copy get the same form. External data is inlined
 * (the form exists only to be run); weights in subgraphs are left as they are.
 */
export function exactIntegerForm(model: OnnxModel): OnnxModel | undefined {
  if (!needsExactForm(model)) return undefined;
  const proto = onnx.decodeModel(model.toBytes({ inlineExternal: true }));
  const g = proto.graph!;
  const fresh = freshNamer(g);
  const inits = new Map((g.initializer ?? []).map((t) => [t.name ?? '', t]));
  const initsAreInputs = (g.input ?? []).some((v) => inits.has(v.name ?? ''));
  const producers = new Map<string, onnx.NodeProto>();
  for (const n of g.node ?? []) for (const o of n.output ?? []) producers.set(o, n);
  const converted = new Map<string, string>(); // int8 tensor -> its uint8 copy
  const add = (name: string, dims: bigint[], bytes: Uint8Array): string => {
    const t = onnx.create(onnx.TensorProtoSchema, { name, dims, dataType: UINT8, rawData: bytes });
    (g.initializer ??= []).push(t);
    if (initsAreInputs) (g.input ??= []).push(onnx.valueInfo({ name, type: onnx.tensorType(UINT8, dims) }));
    return name;
  };
  const asUint8 = (name: string): string => {
    const done = converted.get(name);
    if (done) return done;
    const t = inits.get(name)!;
    const bytes = model.getRaw(name);
    for (let i = 0; i < bytes.length; i++) bytes[i] = bytes[i]! ^ 0x80;
    const copy = add(fresh(`${name}.basin_u8`), [...(t.dims ?? [])], bytes);
    converted.set(name, copy);
    return copy;
  };
  let zero128: string | undefined;
  for (const n of g.node ?? []) {
    const op = INTEGER_PRODUCTS.get(key(n));
    const inputs = [...(n.input ?? [])];
    if (!op || !qualifies(op, inputs, inits, producers)) continue;
    inputs[op.weight] = asUint8(inputs[op.weight]!);
    while (inputs.length <= op.weightZeroPoint) inputs.push('');
    const zp = inputs[op.weightZeroPoint]!;
    inputs[op.weightZeroPoint] = zp === '' ? (zero128 ??= add(fresh('basin_u8_zero_point'), [], Uint8Array.of(128))) : asUint8(zp);
    n.input = inputs;
  }
  return OnnxModel.fromProto(proto, { path: model.path });
}

/** Whether some node of `model`'s main graph qualifies (read from the decoded proto, without copying weights). */
function needsExactForm(model: OnnxModel): boolean {
  const g = model.proto.graph;
  if (!g || !(g.node ?? []).some((n) => INTEGER_PRODUCTS.has(key(n)))) return false;
  const inits = new Map((g.initializer ?? []).map((t) => [t.name ?? '', t]));
  const producers = new Map<string, onnx.NodeProto>();
  for (const n of g.node ?? []) for (const o of n.output ?? []) producers.set(o, n);
  return (g.node ?? []).some((n) => {
    const op = INTEGER_PRODUCTS.get(key(n));
    return op !== undefined && qualifies(op, n.input ?? [], inits, producers);
  });
}

/** The weight is an int8 initializer, its zero point absent or an int8 initializer, and the activation uint8. */
function qualifies(
  op: IntegerProduct,
  inputs: readonly string[],
  inits: ReadonlyMap<string, onnx.TensorProto>,
  producers: ReadonlyMap<string, onnx.NodeProto>,
): boolean {
  const w = inits.get(inputs[op.weight] ?? '');
  if (!w || w.dataType !== INT8) return false;
  const zpName = inputs[op.weightZeroPoint] ?? '';
  if (zpName !== '' && inits.get(zpName)?.dataType !== INT8) return false;
  if (op.activationZeroPoint === 'u8') return true;
  const azName = inputs[op.activationZeroPoint] ?? '';
  const az = inits.get(azName);
  if (az) return az.dataType === UINT8;
  const fromDynamic = (name: string): boolean => producers.get(name)?.opType === 'DynamicQuantizeLinear';
  return fromDynamic(inputs[op.activation] ?? '') || (azName !== '' && fromDynamic(azName));
}
