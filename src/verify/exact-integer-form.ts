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
 * documents the effect (its `reduce_range` option: 7-bit weights "for better accuracy on non-VNNI CPUs").
 *
 * The exact form re-expresses each constant int8 weight of those ops, with its constant zero point, as uint8:
 * q' = q + 128 and zp' = zp + 128 (bit for bit: q XOR 0x80), so (q' - zp') = (q - zp) and the model computes the
 * same function; onnxruntime's uint8 × uint8 kernels widen to 16 bits before multiplying and add in int32, exactly.
 * Only nodes whose activation operand is known to be uint8 (its zero point is a uint8 constant, its declared type or
 * its producer, DynamicQuantizeLinear, QuantizeLinear or Cast, says so, or the op quantizes it to uint8 itself) are
 * rewritten. quantize_static's QDQ form (DequantizeLinear of an int8 weight -> MatMul / Gemm / Conv, activations
 * dequantized from uint8) is rewritten the same way at the DequantizeLinear, which dequantizes to the same floats:
 * onnxruntime fuses DQ -> MatMul / Conv / Gemm -> QuantizeLinear into QLinearMatMul / QLinearConv / QGemm with the
 * same u8 · s8 kernels (measured with onnxruntime-node 1.30 on AVX2: a QDQ MatMul, Conv or Gemm clipped like the
 * QOperator ops). int8 × int8 products (int8 activations) were exact there and are left as they are. Weights may be
 * initializers or Constant nodes (torch exports). The model written to disk is never this form.
 */
import * as onnx from '../onnx/proto.js';
import { freshNamer } from '../onnx/fresh-names.js';
import { OnnxModel } from '../onnx/model.js';
import { DTYPES } from '../dtype.js';
import { numel } from '../tensor/tensor.js';

/**
 * The largest form built (bytes): protobuf holds at most 2 GiB, and the form inlines every weight plus the uint8
 * copies. A larger model (a quantized LLM with external data) is compared as it is, as before the form existed.
 */
export const EXACT_FORM_MAX_BYTES = 2 ** 31 - 2 ** 26;

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

/** The float ops whose weight (input 1) a DequantizeLinear of an int8 constant feeds in quantize_static's QDQ form. */
const QDQ_PRODUCTS: ReadonlySet<string> = new Set([':MatMul', ':Gemm', ':Conv', ':ConvTranspose']);

/** Nodes that give their first output a known element type: the index of the zero point that sets it, or its type. */
const TYPED_OUTPUTS: ReadonlyMap<string, number | 'u8'> = new Map<string, number | 'u8'>([
  [':DynamicQuantizeLinear', 'u8'],
  [':QuantizeLinear', 2],
  [':QLinearConv', 7],
  [':QLinearMatMul', 7],
  ['com.microsoft:QGemm', 8],
]);

/** What the rewrite reads of a graph and the graphs around it: constants (initializers and Constant nodes), producers, consumers, declared types. */
interface GraphFacts {
  readonly consts: ReadonlyMap<string, onnx.TensorProto>;
  readonly producers: ReadonlyMap<string, onnx.NodeProto>;
  readonly consumers: ReadonlyMap<string, readonly onnx.NodeProto[]>;
  readonly declared: ReadonlyMap<string, number>;
}

/** `g`'s facts, over those of the graphs around it (a subgraph reads outer values by name; its own names shadow them). */
function facts(g: onnx.GraphProto, outer?: GraphFacts): GraphFacts {
  const consts = new Map(outer?.consts);
  for (const t of g.initializer ?? []) consts.set(t.name ?? '', t);
  const producers = new Map(outer?.producers);
  const consumers = new Map<string, onnx.NodeProto[]>();
  for (const n of g.node ?? []) {
    for (const o of n.output ?? []) producers.set(o, n);
    for (const i of n.input ?? []) {
      if (i === '') continue;
      const list = consumers.get(i);
      if (list) list.push(n);
      else consumers.set(i, [n]);
    }
    const value = key(n) === ':Constant' ? (n.attribute ?? []).find((a) => a.name === 'value')?.t : undefined;
    if (value && n.output?.[0]) consts.set(n.output[0], value);
  }
  const declared = new Map(outer?.declared);
  for (const v of [...(g.input ?? []), ...(g.valueInfo ?? [])]) {
    const t = onnx.tensorTypeOf(v.type ?? undefined)?.elemType;
    if (t) declared.set(v.name ?? '', t);
  }
  return { consts, producers, consumers, declared };
}

/** The subgraphs of `g`'s nodes (If branches, Loop and Scan bodies), one level down. */
function subgraphs(g: onnx.GraphProto): onnx.GraphProto[] {
  return (g.node ?? []).flatMap((n) => (n.attribute ?? []).flatMap((a) => [...(a.g ? [a.g] : []), ...(a.graphs ?? [])]));
}

/** `g` and every graph nested in it, each with its facts (outer scopes included). */
function scopes(g: onnx.GraphProto, outer?: GraphFacts): { graph: onnx.GraphProto; f: GraphFacts }[] {
  const f = facts(g, outer);
  return [{ graph: g, f }, ...subgraphs(g).flatMap((s) => scopes(s, f))];
}

/** The names `g` defines or reads (its nested subgraphs have their own scope entry). */
function namesIn(g: onnx.GraphProto): string[] {
  const values = [...(g.initializer ?? []), ...(g.input ?? []), ...(g.output ?? []), ...(g.valueInfo ?? [])].map((v) => v.name ?? '');
  return [...values, ...(g.node ?? []).flatMap((n) => [...(n.input ?? []), ...(n.output ?? [])])];
}

/** An int8 or uint8 tensor's bytes (raw_data, or the int32_data ONNX stores them in). */
function bytesOf(t: onnx.TensorProto): Uint8Array {
  return t.rawData && t.rawData.length > 0 ? Uint8Array.from(t.rawData) : Uint8Array.from(t.int32Data ?? [], (v) => v & 0xff);
}

/** The element type of value `name` where the graph tells it (a constant, a declared type, a quantizing producer); 0 when unknown. */
function elemType(name: string, f: GraphFacts): number {
  const c = f.consts.get(name);
  if (c) return c.dataType ?? 0;
  const declared = f.declared.get(name);
  if (declared) return declared;
  const p = f.producers.get(name);
  // torch exports QuantizeLinear -> Cast(to uint8) -> DequantizeLinear
  if (p && key(p) === ':Cast') return Number((p.attribute ?? []).find((a) => a.name === 'to')?.i ?? 0);
  const typed = p && p.output?.[0] === name ? TYPED_OUTPUTS.get(key(p)) : undefined;
  if (typed === 'u8') return UINT8;
  if (typed === undefined) return 0;
  const zp = p!.input?.[typed] ?? '';
  if (zp !== '') return f.consts.get(zp)?.dataType ?? 0;
  // QuantizeLinear without a zero point gives uint8 (unless opset 21's output_dtype says otherwise)
  const outputDtype = (p!.attribute ?? []).find((a) => a.name === 'output_dtype');
  return key(p!) === ':QuantizeLinear' && !outputDtype ? UINT8 : 0;
}

/**
 * `model`'s exact integer form (see the module comment): a new model in which every constant int8 weight of an
 * integer product op with a uint8 activation reads a uint8 copy (q XOR 0x80) with a uint8 zero point (zp + 128;
 * 128 where the op has none), and so does every DequantizeLinear of a constant int8 weight that feeds a MatMul,
 * Gemm or Conv whose activation is dequantized from uint8 (onnxruntime fuses those into the same integer kernels).
 * Constants may be initializers or Constant nodes. Returns undefined when no node qualifies (the model is already
 * computed exactly). Deterministic in the graph alone, so a model and its permuted copy get the same form. External
 * data is inlined (the form exists only to be run), so a model whose form would exceed `maxBytes` (default
 * EXACT_FORM_MAX_BYTES, protobuf's limit) gets none. Nodes in subgraphs (If branches, Loop and Scan bodies: merged
 * decoders) are rewritten too; the uint8 copies are main-graph initializers.
 */
export function exactIntegerForm(model: OnnxModel, { maxBytes = EXACT_FORM_MAX_BYTES }: { maxBytes?: number } = {}): OnnxModel | undefined {
  if (!needsExactForm(model) || formBytes(model) > maxBytes) return undefined;
  const proto = onnx.decodeModel(model.toBytes({ inlineExternal: true }));
  const g = proto.graph!;
  const all = scopes(g);
  const fresh = freshNamer(g);
  for (const { graph } of all.slice(1)) for (const name of namesIn(graph)) fresh(name); // a subgraph's names are taken too
  const initsAreInputs = (g.input ?? []).some((v) => (g.initializer ?? []).some((t) => t.name === v.name));
  const converted = new Map<onnx.TensorProto, string>(); // int8 tensor -> its uint8 copy
  // copies go to the main graph, where every subgraph reads them by name
  const add = (name: string, dims: bigint[], bytes: Uint8Array): string => {
    const t = onnx.create(onnx.TensorProtoSchema, { name, dims, dataType: UINT8, rawData: bytes });
    (g.initializer ??= []).push(t);
    if (initsAreInputs) (g.input ??= []).push(onnx.valueInfo({ name, type: onnx.tensorType(UINT8, dims) }));
    return name;
  };
  const zeros128 = new Map<string, string>(); // dims -> a uint8 constant of 128s
  const zero128 = (dims: bigint[]): string => {
    const k = dims.join(',');
    const n = dims.reduce((a, b) => a * Number(b), 1);
    return zeros128.get(k) ?? zeros128.set(k, add(fresh('basin_u8_zero_point'), dims, new Uint8Array(n).fill(128))).get(k)!;
  };
  for (const { graph, f } of all) {
    const asUint8 = (name: string): string => {
      const t = f.consts.get(name)!;
      const done = converted.get(t);
      if (done) return done;
      const bytes = bytesOf(t);
      for (let i = 0; i < bytes.length; i++) bytes[i] = bytes[i]! ^ 0x80;
      const copy = add(fresh(`${name}.basin_u8`), [...(t.dims ?? [])], bytes);
      converted.set(t, copy);
      return copy;
    };
    for (const n of graph.node ?? []) {
      const op = INTEGER_PRODUCTS.get(key(n));
      const inputs = [...(n.input ?? [])];
      if (op && qualifies(op, inputs, f)) {
        inputs[op.weight] = asUint8(inputs[op.weight]!);
        while (inputs.length <= op.weightZeroPoint) inputs.push('');
        const zp = inputs[op.weightZeroPoint]!;
        inputs[op.weightZeroPoint] = zp === '' ? zero128([]) : asUint8(zp);
        n.input = inputs;
      } else if (qdqWeight(n, f)) {
        inputs[0] = asUint8(inputs[0]!);
        while (inputs.length < 3) inputs.push('');
        inputs[2] = inputs[2] === '' ? zero128([...(f.consts.get(inputs[1]!)!.dims ?? [])]) : asUint8(inputs[2]!);
        n.input = inputs;
      }
    }
  }
  return OnnxModel.fromProto(proto, { path: model.path });
}

/** An upper bound on the form's size: every constant inlined, every int8 one twice. */
function formBytes(model: OnnxModel): number {
  let bytes = 0;
  for (const name of model.constants()) {
    const info = (() => {
      try {
        return model.weightInfo(name);
      } catch {
        return undefined; // a type basin does not read (strings): not an int8 weight, and small
      }
    })();
    if (info) bytes += numel(info.shape) * DTYPES[info.dtype].bytes * (info.dtype === 'I8' ? 2 : 1);
  }
  return bytes;
}

/** Whether some node of `model`'s graphs qualifies (read from the decoded proto, without copying weights). */
function needsExactForm(model: OnnxModel): boolean {
  const g = model.proto.graph;
  if (!g || !hasCandidate(g)) return false; // a float model (every verification) stops here, before the maps are built
  return scopes(g).some(({ graph, f }) =>
    (graph.node ?? []).some((n) => {
      const op = INTEGER_PRODUCTS.get(key(n));
      return op !== undefined ? qualifies(op, n.input ?? [], f) : qdqWeight(n, f);
    }),
  );
}

/** Whether `g` or a graph nested in it has an integer product or a DequantizeLinear (the nodes the form can rewrite). */
function hasCandidate(g: onnx.GraphProto): boolean {
  return (g.node ?? []).some((n) => INTEGER_PRODUCTS.has(key(n)) || key(n) === ':DequantizeLinear') || subgraphs(g).some(hasCandidate);
}

/** The weight is an int8 constant, its zero point absent or an int8 constant, and the activation uint8. */
function qualifies(op: IntegerProduct, inputs: readonly string[], f: GraphFacts): boolean {
  const w = f.consts.get(inputs[op.weight] ?? '');
  if (!w || w.dataType !== INT8) return false;
  const zpName = inputs[op.weightZeroPoint] ?? '';
  if (zpName !== '' && f.consts.get(zpName)?.dataType !== INT8) return false;
  if (op.activationZeroPoint === 'u8') return true;
  const azName = inputs[op.activationZeroPoint] ?? '';
  if (azName !== '' && elemType(azName, f) === UINT8) return true;
  return elemType(inputs[op.activation] ?? '', f) === UINT8;
}

/**
 * A DequantizeLinear of an int8 constant (zero point absent or an int8 constant, scale a constant) whose output is
 * the weight (input 1) of a MatMul, Gemm or Conv whose activation (input 0) is dequantized from uint8: the QDQ form
 * onnxruntime fuses into QLinearMatMul / QLinearConv / MatMulIntegerToFloat, with the u8 × s8 kernels.
 */
function qdqWeight(n: onnx.NodeProto, f: GraphFacts): boolean {
  if (key(n) !== ':DequantizeLinear') return false;
  const [x = '', scale = '', zp = ''] = n.input ?? [];
  if (f.consts.get(x)?.dataType !== INT8 || !f.consts.has(scale)) return false;
  if (zp !== '' && f.consts.get(zp)?.dataType !== INT8) return false;
  const out = n.output?.[0] ?? '';
  return (f.consumers.get(out) ?? []).some((c) => {
    if (!QDQ_PRODUCTS.has(key(c)) || c.input?.[1] !== out) return false;
    const act = f.producers.get(c.input?.[0] ?? '');
    return act !== undefined && key(act) === ':DequantizeLinear' && elemType(act.input?.[0] ?? '', f) === UINT8;
  });
}
